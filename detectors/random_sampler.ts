/**
 * mmdetection's `RandomSampler` on the host, as the stock two-stage
 * detectors use it (the baseline losses, `loss: "ce"`): of an image's
 * positives at most `floor(num * posFraction)` are drawn at random, then
 * negatives fill the rest of `num` (`neg_pos_ub = -1`: no bound relative to
 * the positives); ignored candidates are never drawn. The RPN draws 256 per
 * image with half positives, the RoI head 512 with a quarter.
 *
 * The draws are seeded by data the step computes (read-back proposals,
 * RoIs), hashed with {@linkcode samplerSeed}, so that a step gives the same
 * sample every time it runs and a resumed run repeats an uninterrupted one.
 *
 * @module
 */

import { crc32 } from "../data/png.ts";
import { Rng } from "../tensor/rng.ts";

/** How many candidates a {@linkcode sampleCandidates} draw keeps per image. */
export interface SamplerSettings {
  /** Candidates per image (RPN 256, RoI head 512). */
  num: number;
  /** Largest share of positives (RPN 0.5, RoI head 0.25). */
  posFraction: number;
}

/** The stock RPN's sampler: 256 anchors per image, at most half positives. */
export const RPN_SAMPLER: Readonly<SamplerSettings> = Object.freeze({ num: 256, posFraction: 0.5 });

/** The stock RoI head's sampler: 512 RoIs per image, at most a quarter positives. */
export const ROI_SAMPLER: Readonly<SamplerSettings> = Object.freeze({
  num: 512,
  posFraction: 0.25,
});

/** What {@linkcode sampleCandidates} keeps of one image. */
export interface SampledCandidates {
  /** The drawn positives, ascending. */
  positives: Int32Array;
  /** The drawn negatives, ascending. */
  negatives: Int32Array;
}

/**
 * `count` of `items` drawn without replacement (a partial Fisher–Yates
 * shuffle with `rng`), ascending; all of them, ascending, when there are no
 * more than `count` (drawing nothing from `rng`).
 *
 * @example
 * ```ts
 * import { drawSorted } from "./random_sampler.ts";
 * import { Rng } from "../tensor/rng.ts";
 * console.log(Array.from(drawSorted([9, 4, 7], 5, new Rng(0)))); // [4, 7, 9]
 * console.log(drawSorted([4, 7, 9, 11], 2, new Rng(0)).length); // 2
 * ```
 *
 * @param items Candidates (left unchanged).
 * @param count The most to keep.
 * @param rng The generator of the draw.
 */
export function drawSorted(items: ArrayLike<number>, count: number, rng: Rng): Int32Array {
  const pool = Array.from(items);
  if (pool.length <= count) return Int32Array.from(pool).sort();
  for (let i = 0; i < count; i++) {
    const j = i + rng.int(pool.length - i);
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return Int32Array.from(pool.slice(0, count)).sort();
}

/**
 * A seed from the bytes of the given arrays (CRC-32 of each, chained), for
 * the generator of a {@linkcode sampleCandidates} draw.
 *
 * @example The same data gives the same seed
 * ```ts
 * import { samplerSeed } from "./random_sampler.ts";
 * const a = samplerSeed(Float32Array.of(1, 2), Float32Array.of(3));
 * console.log(a === samplerSeed(Float32Array.of(1, 2), Float32Array.of(3))); // true
 * console.log(a === samplerSeed(Float32Array.of(1, 2), Float32Array.of(4))); // false
 * ```
 *
 * @param arrays Typed arrays whose contents seed the draw.
 * @returns An unsigned 32-bit seed.
 */
export function samplerSeed(...arrays: ArrayBufferView[]): number {
  let seed = 0;
  for (const a of arrays) {
    const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    seed = (Math.imul(seed, 0x9e3779b1) ^ crc32(bytes)) >>> 0;
  }
  return seed;
}

/**
 * Draws one image's candidates as mmdetection's `RandomSampler`: at most
 * `floor(num * posFraction)` positives, then at most `num` minus the
 * positives drawn of the negatives; when a kind has no more than its quota,
 * all of it is kept.
 *
 * @example 3 positives and 10 negatives, 8 with a quarter positives: 2 and 6
 * ```ts
 * import { sampleCandidates } from "./random_sampler.ts";
 * import { Rng } from "../tensor/rng.ts";
 * const negatives = Array.from({ length: 10 }, (_, i) => 10 + i);
 * const s = sampleCandidates([0, 1, 2], negatives, { num: 8, posFraction: 0.25 }, new Rng(1));
 * console.log(s.positives.length, s.negatives.length); // 2 6
 * ```
 *
 * @param positives Indices of the positive candidates.
 * @param negatives Indices of the negative candidates.
 * @param settings `num` and `posFraction`.
 * @param rng The generator (positives are drawn first, then negatives).
 * @throws {RangeError} When `num` is not a positive integer or `posFraction` is outside `[0, 1]`.
 */
export function sampleCandidates(
  positives: ArrayLike<number>,
  negatives: ArrayLike<number>,
  settings: SamplerSettings,
  rng: Rng,
): SampledCandidates {
  checkSamplerSettings("sampleCandidates", settings);
  const pos = drawSorted(positives, Math.floor(settings.num * settings.posFraction), rng);
  const neg = drawSorted(negatives, settings.num - pos.length, rng);
  return { positives: pos, negatives: neg };
}

/**
 * Checks sampler settings where they enter.
 *
 * @throws {RangeError} When `num` is not a positive integer or `posFraction` is outside `[0, 1]`.
 */
export function checkSamplerSettings(op: string, settings: SamplerSettings): void {
  const { num, posFraction } = settings;
  if (!(Number.isInteger(num) && num > 0)) {
    throw new RangeError(`${op}: sampler num ${num} is not a positive integer`);
  }
  if (!(posFraction >= 0 && posFraction <= 1)) {
    throw new RangeError(`${op}: sampler posFraction ${posFraction} is not within [0, 1]`);
  }
}

/** A generator seeded by {@linkcode samplerSeed} of `arrays`. */
export function samplerRng(...arrays: ArrayBufferView[]): Rng {
  return new Rng(samplerSeed(...arrays));
}
