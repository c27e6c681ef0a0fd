/**
 * Seeded random inputs for the ranking-loss tests (mulberry32; independent of `tensor/rng.ts`).
 *
 * @module
 */

/** A uniform generator on `[0, 1)` from a 32-bit seed. */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal sample (Box–Muller). */
export function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** Options of {@linkcode randomRankingInputs}. */
export interface RandomInputOptions {
  /** Number of positives. */
  positives: number;
  /** Number of negatives. */
  negatives: number;
  /** Number of ignored entries (target -1). */
  ignored?: number;
  /**
   * `"none"`: negatives on a 0.01 grid, positives at odd multiples of 0.0005, so no
   * positive–negative tie (ties among negatives and among positives stay possible);
   * `"many"`: every logit on a 0.25 grid, so all kinds of ties occur.
   */
  ties?: "none" | "many";
  /** Targets of the positives: IoUs in `(0, 1]` (default) or all 1. */
  binary?: boolean;
}

/**
 * Shuffled logits and targets in the style of the official vector generator: negatives a
 * 70/30 mix of N(-2.5, 1) and N(0.3, 1), positives N(1, 1), IoUs U(0.05, 1) rounded to 0.001
 * with 5% set to 1.
 */
export function randomRankingInputs(
  seed: number,
  opts: RandomInputOptions,
): { logits: number[]; targets: number[] } {
  const rand = mulberry32(seed);
  const { positives, negatives, ignored = 0, ties = "none", binary = false } = opts;
  const logits: number[] = [];
  const targets: number[] = [];
  const grid = (x: number, step: number) => Math.round(x / step) * step;
  for (let k = 0; k < negatives; k++) {
    const x = rand() < 0.7 ? -2.5 + gaussian(rand) : 0.3 + gaussian(rand);
    logits.push(ties === "many" ? grid(x, 0.25) : Number(grid(x, 0.01).toFixed(2)));
    targets.push(0);
  }
  for (let k = 0; k < positives; k++) {
    const x = 1 + gaussian(rand);
    logits.push(ties === "many" ? grid(x, 0.25) : (2 * Math.round(x / 0.001 - 0.5) + 1) * 0.0005);
    const iou = rand() < 0.05
      ? 1
      : Math.max(0.001, Math.round((0.05 + 0.95 * rand()) * 1000) / 1000);
    targets.push(binary ? 1 : iou);
  }
  for (let k = 0; k < ignored; k++) {
    logits.push(gaussian(rand) * 2);
    targets.push(-1);
  }
  // Fisher–Yates shuffle of both arrays together.
  for (let i = logits.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [logits[i], logits[j]] = [logits[j], logits[i]];
    [targets[i], targets[j]] = [targets[j], targets[i]];
  }
  return { logits, targets };
}

/** Largest entry-wise absolute difference; `Infinity` for different lengths. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}
