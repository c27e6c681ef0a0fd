/**
 * Pieces of the summaries shared by COCO AP/AR and optimal LRP, computed the
 * way the Python references do: the mean over evaluated entries with numpy's
 * pairwise summation, and one line of pycocotools' `summarize()` printout with
 * Python's `'{:0.3f}'` rounding.
 *
 * @module
 */

import { A_N, R_N, T_N } from "./params.ts";

/** numpy's pairwise summation (`np.add.reduce` on a contiguous float64 array). */
function pairwiseSum(a: ArrayLike<number>, lo: number, n: number): number {
  if (n < 8) {
    let s = 0;
    for (let i = 0; i < n; i++) s += a[lo + i];
    return s;
  }
  if (n <= 128) {
    const r = [0, 0, 0, 0, 0, 0, 0, 0];
    for (let j = 0; j < 8; j++) r[j] = a[lo + j];
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += a[lo + i + j];
    let s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) s += a[lo + i];
    return s;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, lo, n2) + pairwiseSum(a, lo + n2, n - n2);
}

/**
 * Mean of the entries > -1 (NaN skipped), `-1` when there are none, like
 * pycocotools' summarize, summed as numpy sums.
 *
 * @example
 * ```ts
 * import { meanValid } from "./summary.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(meanValid([0.5, -1, NaN, 0.25]), 0.375);
 * assert.equal(meanValid([-1, -1]), -1);
 * ```
 *
 * @param values Entries, `-1` (or NaN) where not evaluated.
 * @returns Their mean, or `-1`.
 */
export function meanValid(values: number[]): number {
  const v = values.filter((x) => x > -1);
  return v.length === 0 ? -1 : pairwiseSum(v, 0, v.length) / v.length;
}

/**
 * One summary number of a precision array `[T][R][K][A][M]` (`ap`) or a recall
 * array `[T][K][A][M]`: the mean of the evaluated entries at IoU index `ti`
 * (every threshold when `-1`), area index `a` and sequence `m`, over the
 * categories `ks`, gathered in C order as numpy's masked mean sees them.
 *
 * @example
 * ```ts
 * import { summaryValue } from "./summary.ts";
 * import assert from "node:assert/strict";
 *
 * // Recall [T = 10][K = 2][A = 1][M = 1]: category 1 is not evaluated.
 * const recall = new Float64Array(20).map((_, i) => (i % 2 ? -1 : 0.5));
 * assert.equal(summaryValue(recall, false, { K: 2, A: 1, M: 1 }, [0, 1], -1, 0, 0), 0.5);
 * assert.equal(summaryValue(recall, false, { K: 2, A: 1, M: 1 }, [1], -1, 0, 0), -1);
 * ```
 *
 * @param values The precision or recall array.
 * @param ap True for a precision array (it has the `R` axis of 101 recall thresholds).
 * @param shape Its `K`, `A` and `M` sizes (`T` is 10, `R` is 101).
 * @param ks Category indices to average over.
 * @param ti IoU threshold index, or `-1` for all.
 * @param a Area range index.
 * @param m Sequence (maxDets) index.
 * @returns The mean, or `-1` when no entry is evaluated.
 */
export function summaryValue(
  values: Float64Array,
  ap: boolean,
  shape: { K: number; A?: number; M: number },
  ks: readonly number[],
  ti: number,
  a: number,
  m: number,
): number {
  const { K, M } = shape, A = shape.A ?? A_N;
  const t0 = ti < 0 ? 0 : ti, t1 = ti < 0 ? T_N : ti + 1;
  const rows = ap ? R_N : 1;
  const need = (t1 - t0) * rows * ks.length;
  if (scratch.length < need) scratch = new Float64Array(need);
  let n = 0;
  for (let t = t0; t < t1; t++) {
    for (let r = 0; r < rows; r++) {
      const base = ((t * rows + r) * K) * A;
      for (const k of ks) {
        const v = values[(base + k * A + a) * M + m];
        if (v > -1) scratch[n++] = v;
      }
    }
  }
  return n === 0 ? -1 : pairwiseSum(scratch, 0, n) / n;
}

/** The evaluated entries {@linkcode summaryValue} gathers, in order. */
let scratch = new Float64Array(0);

/** Python's `'{:0.3f}'.format(x)`: exact value, ties to even. */
function fixed3(x: number): string {
  if (Number.isInteger(x * 16) && !Number.isInteger(x * 1000)) {
    const n = x * 1000; // exact for multiples of 1/16
    if (n - Math.floor(n) === 0.5) {
      const f = Math.floor(n);
      const even = f % 2 === 0 ? f : f + 1;
      return (even / 1000).toFixed(3);
    }
  }
  return x.toFixed(3);
}

/**
 * One line of pycocotools' `summarize()` printout, the value rounded as
 * Python's `'{:0.3f}'` rounds it (ties to even).
 *
 * @example
 * ```ts
 * import { statLine } from "./summary.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   statLine("Average Precision", "(AP)", "0.50", "all", 100, 0.0625),
 *   " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.062",
 * );
 * ```
 *
 * @param title Left-hand title, padded to 18 characters.
 * @param type `"(AP)"`, `"(AR)"` or four spaces.
 * @param iou IoU threshold text, e.g. `"0.50:0.95"`.
 * @param area Area range label.
 * @param maxDets Detections kept per image.
 * @param v The value.
 * @param catIds Category group, as lvis-api's `print_results()` adds it (`"all"`, `"r"`, ...);
 *   omitted for pycocotools' layout.
 * @returns The line, without a newline.
 */
export function statLine(
  title: string,
  type: string,
  iou: string,
  area: string,
  maxDets: number,
  v: number,
  catIds?: string,
): string {
  const cats = catIds === undefined ? " " : ` catIds=${catIds.padStart(3)}`;
  return ` ${title.padEnd(18)} ${type} @[ IoU=${iou.padEnd(9)} | area=${area.padStart(6)} | ` +
    `maxDets=${String(maxDets).padStart(3)}${cats}] = ${fixed3(v)}`;
}
