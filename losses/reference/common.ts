/**
 * Shared pieces of the reference ranking losses: the result type, input validation and the
 * smoothed step `H` (its `δ = 0` form: docs/departures.md, Q4).
 *
 * @module
 */

/** What every ranking loss in `losses/reference/` and `losses/fast/` returns. */
export interface RankingLossResult {
  /** `rankingLoss + sortingLoss`. */
  loss: number;
  /** Mean ranking error over the positives (AP family: `1 - AP`). */
  rankingLoss: number;
  /** Mean sorting error over the positives (Rank & Sort family); 0 for the AP family. */
  sortingLoss: number;
  /**
   * Error-driven gradient with respect to every logit, `[M]`, for an upstream gradient of 1
   * (the official backward). Ignored and below-threshold entries are exactly 0.
   */
  grad: Float64Array;
}

/** Options shared by the ranking losses. */
export interface RankingLossOptions {
  /**
   * Half-width `δ >= 0` of the linear ramp of `H`. `δ = 0` selects the unit step with
   * `H(0) = 1`. Defaults: 1 for the AP family and aLRP, 0.5 for the Rank & Sort family.
   */
  delta?: number;
}

/**
 * The smoothed step `H(x)`: `clamp(x / (2δ) + 1/2, 0, 1)` for `δ > 0`, and the unit step
 * `x >= 0 ? 1 : 0` (so `H(0) = 1`) for `δ = 0`.
 *
 * @example Ramp and step
 * ```ts
 * import { smoothStep } from "./common.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(smoothStep(0, 0.5), 0.5);
 * assert.equal(smoothStep(0.25, 0.5), 0.75);
 * assert.equal(smoothStep(-2, 0.5), 0);
 * assert.equal(smoothStep(0, 0), 1);
 * ```
 *
 * @param x Logit difference `s_j - s_i` ("j above i" when positive).
 * @param delta Half-width of the ramp, `>= 0`.
 * @returns A value in `[0, 1]`.
 */
export function smoothStep(x: number, delta: number): number {
  if (delta === 0) return x >= 0 ? 1 : 0;
  const h = x / (2 * delta) + 0.5;
  return h <= 0 ? 0 : h >= 1 ? 1 : h;
}

/**
 * Binary search: the first index in `[u, v)` where `holds` is false, for a condition that holds
 * on a prefix of the range (`v` when it holds throughout). Every search of the losses is one:
 * counts of sorted keys at or above a value, merge positions, interval ids.
 *
 * @example Keys at or above 3 in a descending list
 * ```ts
 * import { partitionPoint } from "./common.ts";
 * import assert from "node:assert/strict";
 *
 * const keys = [5, 3, 3, 1];
 * assert.equal(partitionPoint(0, 4, (k) => keys[k] >= 3), 3);
 * assert.equal(partitionPoint(1, 4, (k) => keys[k] > 3), 1);
 * ```
 *
 * @param u First index of the range.
 * @param v End of the range (exclusive).
 * @param holds The condition at an index; true on a prefix of `[u, v)`.
 * @returns An index in `[u, v]`.
 */
export function partitionPoint(u: number, v: number, holds: (k: number) => boolean): number {
  let lo = u, hi = v;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (holds(mid)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Checks the inputs of a ranking loss where they enter and returns the resolved `δ`.
 *
 * Throws a `TypeError` for non-array-like inputs or different lengths, a `RangeError` for a
 * non-finite logit or target, a target above 1, or a `δ` that is negative or not finite.
 *
 * @example Lengths must match
 * ```ts
 * import { validateRankingInputs } from "./common.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(validateRankingInputs("rankSortLoss", [0.5, 0.1], [1, 0], 0.5), 0.5);
 * assert.throws(() => validateRankingInputs("rankSortLoss", [0.5], [1, 0], 0.5), TypeError);
 * ```
 *
 * @param name Name of the calling loss, used in error messages.
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`: `> 0` positive, `0` negative, `< 0` ignored; at most 1.
 * @param delta Requested `δ`.
 * @returns `delta`.
 */
export function validateRankingInputs(
  name: string,
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  delta: number,
): number {
  if (logits == null || typeof logits.length !== "number") {
    throw new TypeError(`Cannot compute ${name}: logits must be an array-like of numbers`);
  }
  if (targets == null || typeof targets.length !== "number") {
    throw new TypeError(`Cannot compute ${name}: targets must be an array-like of numbers`);
  }
  if (logits.length !== targets.length) {
    throw new TypeError(
      `Cannot compute ${name}: logits have length ${logits.length} but targets have length ${targets.length}`,
    );
  }
  if (typeof delta !== "number" || !Number.isFinite(delta) || delta < 0) {
    throw new RangeError(`Cannot compute ${name}: delta ${delta} must be a finite number >= 0`);
  }
  const m = logits.length;
  for (let i = 0; i < m; i++) {
    const s = logits[i];
    if (typeof s !== "number" || !Number.isFinite(s)) {
      throw new RangeError(`Cannot compute ${name}: logit ${i} is ${s}, expected a finite number`);
    }
    const y = targets[i];
    if (typeof y !== "number" || !Number.isFinite(y)) {
      throw new RangeError(`Cannot compute ${name}: target ${i} is ${y}, expected a finite number`);
    }
    if (y > 1) {
      throw new RangeError(`Cannot compute ${name}: target ${i} is ${y}, expected at most 1`);
    }
  }
  return delta;
}

/** Zero result for inputs with nothing to rank. */
export function emptyResult(m: number): RankingLossResult {
  return { loss: 0, rankingLoss: 0, sortingLoss: 0, grad: new Float64Array(m) };
}

/** A bucket: consecutive relevant negatives in the descending order (docs/departures.md, B1). */
export interface NegativeBucket {
  /** Original indices of the member negatives, in sorted (descending-logit) order. */
  members: number[];
  /** Prototype logit: the mean of the members' logits. */
  mean: number;
  /** Number of positives ranked above the bucket (0 for the top bucket). */
  positivesAbove: number;
}

/** Positives and negative buckets of one call, as the bucketed losses see them. */
export interface BucketedRanking {
  /** Original indices of the positives, sorted by descending logit (ties: lower index first). */
  positives: number[];
  /** Non-empty buckets of relevant negatives, top to bottom. */
  buckets: NegativeBucket[];
}

/**
 * The paper's bucketing (docs/departures.md, Q5): a stable descending sort of
 * `[positives in index order, negatives in index order]` (so on equal logits positives come
 * first, then lower indices), the threshold `t = min positive logit - δ`, and the maximal runs
 * of negatives with logit `>= t` between consecutive positives.
 *
 * The prototype is the plain mean of the run, clamped into the run's `[min, max]` so that
 * rounding can never move it past a member (docs/departures.md, Q12; the official code crashes
 * there).
 *
 * @example Two buckets around two positives
 * ```ts
 * import { sortAndBucket } from "./common.ts";
 * import assert from "node:assert/strict";
 *
 * const r = sortAndBucket([2, 1.5, 1, 0.5, 0], [0, 1, 0, 0, 1], 0);
 * assert.deepEqual(r.positives, [1, 4]);
 * assert.deepEqual(r.buckets.map((b) => b.members), [[0], [2, 3]]);
 * assert.equal(r.buckets[1].mean, 0.75);
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`: `> 0` positive, `0` negative, `< 0` ignored.
 * @param delta `δ >= 0`.
 * @returns The sorted positives and the non-empty buckets; no buckets when there is no positive.
 */
export function sortAndBucket(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  delta: number,
): BucketedRanking {
  const order: number[] = [];
  for (let i = 0; i < targets.length; i++) if (targets[i] > 0) order.push(i);
  const numPos = order.length;
  if (numPos === 0) return { positives: [], buckets: [] };
  for (let i = 0; i < targets.length; i++) if (targets[i] === 0) order.push(i);
  // Array.prototype.sort is stable: ties keep [positives, negatives] and index order.
  order.sort((a, b) => logits[b] - logits[a]);
  const positives = order.filter((i) => targets[i] > 0);
  const threshold = logits[positives[numPos - 1]] - delta;
  const buckets: NegativeBucket[] = [];
  let seen = 0;
  let current: NegativeBucket | null = null;
  for (const i of order) {
    if (logits[i] < threshold) break;
    if (targets[i] > 0) {
      seen++;
      current = null;
      continue;
    }
    if (current === null || current.positivesAbove !== seen) {
      current = { members: [], mean: 0, positivesAbove: seen };
      buckets.push(current);
    }
    current.members.push(i);
  }
  for (const b of buckets) {
    let sum = 0;
    let lo = Infinity;
    let hi = -Infinity;
    for (const i of b.members) {
      sum += logits[i];
      lo = Math.min(lo, logits[i]);
      hi = Math.max(hi, logits[i]);
    }
    b.mean = Math.min(hi, Math.max(lo, sum / b.members.length));
  }
  return { positives, buckets };
}
