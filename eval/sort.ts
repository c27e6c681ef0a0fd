/**
 * Stable orderings of the evaluation's index arrays, in the orders
 * pycocotools produces: by (category, image) cell, and by descending score
 * with ties in input order.
 *
 * @module
 */

/**
 * Indices `0..n-1` stably sorted by (category, image): two counting-sort passes.
 *
 * @example
 * ```ts
 * import { sortByCell } from "./sort.ts";
 * import assert from "node:assert/strict";
 *
 * const cat = Int32Array.of(1, 0, 1, 0), img = Int32Array.of(0, 1, 0, 0);
 * assert.deepEqual([...sortByCell(cat, img, 2, 2)], [3, 1, 0, 2]);
 * ```
 *
 * @param cat Category index of each item, in `[0, K)`.
 * @param img Image index of each item, in `[0, I)`.
 * @param K Number of categories.
 * @param I Number of images.
 * @returns Item indices by ascending (category, image), ties in input order.
 */
export function sortByCell(cat: Int32Array, img: Int32Array, K: number, I: number): Int32Array {
  const n = cat.length;
  const pass = (src: Int32Array, key: Int32Array, buckets: number): Int32Array => {
    const start = new Int32Array(buckets + 1);
    for (let j = 0; j < n; j++) start[key[src[j]] + 1]++;
    for (let b = 0; b < buckets; b++) start[b + 1] += start[b];
    const out = new Int32Array(n);
    for (let j = 0; j < n; j++) out[start[key[src[j]]]++] = src[j];
    return out;
  };
  const ident = new Int32Array(n);
  for (let j = 0; j < n; j++) ident[j] = j;
  return pass(pass(ident, img, I), cat, K);
}

/**
 * Stable sort of `idx` by descending `score[idx[i]]` (ties keep their order,
 * as numpy's `argsort(-score, kind="mergesort")` in pycocotools): insertion
 * sort of short runs, then bottom-up merges.
 *
 * @example
 * ```ts
 * import { sortByScoreDesc } from "./sort.ts";
 * import assert from "node:assert/strict";
 *
 * const score = Float64Array.of(0.5, 0.9, 0.5, 0.1);
 * assert.deepEqual([...sortByScoreDesc(Int32Array.of(0, 1, 2, 3), score)], [1, 0, 2, 3]);
 * ```
 *
 * @param idx Indices into `score`; sorted in place, and used as scratch.
 * @param score Score of each index.
 * @returns The sorted indices: `idx` itself, or a new array when there are more than 16.
 */
export function sortByScoreDesc(idx: Int32Array, score: Float64Array): Int32Array {
  const n = idx.length, RUN = 16;
  for (let lo = 0; lo < n; lo += RUN) {
    const hi = Math.min(lo + RUN, n);
    for (let i = lo + 1; i < hi; i++) {
      const v = idx[i], sv = score[v];
      let j = i - 1;
      while (j >= lo && score[idx[j]] < sv) {
        idx[j + 1] = idx[j];
        j--;
      }
      idx[j + 1] = v;
    }
  }
  if (n <= RUN) return idx;
  let src: Int32Array = idx, dst: Int32Array = new Int32Array(n);
  for (let width = RUN; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(lo + width, n), hi = Math.min(lo + 2 * width, n);
      let i = lo, j = mid, o = lo;
      while (i < mid && j < hi) dst[o++] = score[src[j]] > score[src[i]] ? src[j++] : src[i++];
      while (i < mid) dst[o++] = src[i++];
      while (j < hi) dst[o++] = src[j++];
    }
    const t = src;
    src = dst;
    dst = t;
  }
  return src;
}
