/**
 * Repeat-factor sampling (Gupta et al., LVIS, 2019): images holding rare
 * categories are seen more often in an epoch.
 *
 * Contract: for threshold `t`, each category's image frequency `f_c` is the
 * fraction of the images holding at least one of its instances; its repeat
 * factor is `r_c = max(1, sqrt(t / f_c))`; an image's factor is the largest
 * `r_c` of its categories, and 1 for an image without annotations. As in
 * mmdetection's `ClassBalancedDataset`, an image with factor `r` appears
 * `ceil(r)` times in every epoch (so fractional factors round up; detectron2's
 * sampler instead draws `floor(r)` or `floor(r) + 1` at random per epoch).
 * mmdetection also gives images without annotations a pseudo-category of
 * their own when it keeps them; here their factor is 1.
 *
 * @module
 */

/** The threshold LVIS trains with (mmdetection's `oversample_thr`). */
export const LVIS_REPEAT_THRESHOLD = 1e-3;

/**
 * The repeat factor of each image.
 *
 * @example One category in every image, one in a tenth of them
 * ```ts
 * import { repeatFactors } from "./repeat_factors.ts";
 * import assert from "node:assert/strict";
 *
 * const labels = Array.from({ length: 10 }, (_, i) => (i === 0 ? [0, 1] : [0]));
 * const r = repeatFactors(labels, 0.5);
 * assert.equal(r[0], Math.sqrt(0.5 / 0.1)); // image 0 holds the rare category 1
 * assert.equal(r[1], 1); // max(1, sqrt(0.5 / 1))
 * ```
 *
 * @param labelsPerImage The category labels (any integers) of each image's annotations.
 * @param threshold Frequency below which a category is oversampled, in `(0, 1]`.
 * @returns One factor `>= 1` per image.
 * @throws {RangeError} When the threshold is not in `(0, 1]`.
 */
export function repeatFactors(
  labelsPerImage: readonly ArrayLike<number>[],
  threshold: number,
): Float64Array {
  if (typeof threshold !== "number" || !(threshold > 0 && threshold <= 1)) {
    throw new RangeError(`Repeat-factor threshold must be in (0, 1], got ${threshold}`);
  }
  const n = labelsPerImage.length;
  const distinct = labelsPerImage.map((labels) => new Set(Array.from(labels)));
  const imagesWith = new Map<number, number>();
  for (const set of distinct) for (const c of set) imagesWith.set(c, (imagesWith.get(c) ?? 0) + 1);
  const categoryFactor = new Map<number, number>();
  for (const [c, count] of imagesWith) {
    categoryFactor.set(c, Math.max(1, Math.sqrt(threshold / (count / n))));
  }
  return Float64Array.from(distinct, (set) => {
    let r = 1;
    for (const c of set) r = Math.max(r, categoryFactor.get(c)!);
    return r;
  });
}

/**
 * The image indices of one epoch before shuffling: image `i` repeated
 * `ceil(factors[i])` times, in order.
 *
 * @example
 * ```ts
 * import { repeatIndices } from "./repeat_factors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(repeatIndices([1, 2.2, 1, 2]), [0, 1, 1, 1, 2, 3, 3]);
 * ```
 *
 * @param factors Repeat factor per image (`>= 1`).
 * @returns Indices into the images.
 * @throws {RangeError} On a factor that is not a finite number `>= 1`.
 */
export function repeatIndices(factors: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < factors.length; i++) {
    const r = factors[i];
    if (!(r >= 1 && Number.isFinite(r))) {
      throw new RangeError(`Repeat factor of image ${i} is ${r}, expected a finite number >= 1`);
    }
    for (let k = 0; k < Math.ceil(r); k++) out.push(i);
  }
  return out;
}
