/**
 * Range sums for the native kernels, with four accumulators: a single running sum is bound by the
 * latency of each addition (~1.5 ns an element in V8), four independent ones by the loads. The
 * order of the additions differs from a plain loop's only in `f64` rounding, which the `f32`
 * results never see in practice.
 *
 * @module
 */

import type { TypedArray } from "../dtype.ts";

/** `sum x[k]` for `k` in `[start, stop)`. */
export function sumRange(x: TypedArray, start: number, stop: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, k = start;
  for (; k + 3 < stop; k += 4) {
    s0 += x[k];
    s1 += x[k + 1];
    s2 += x[k + 2];
    s3 += x[k + 3];
  }
  for (; k < stop; k++) s0 += x[k];
  return s0 + s1 + (s2 + s3);
}

/** `sum (x[k] - mu)^2` for `k` in `[start, stop)`; `mu = 0` gives the sum of squares. */
export function sumSquaredDeviations(
  x: TypedArray,
  start: number,
  stop: number,
  mu: number,
): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, k = start;
  for (; k + 3 < stop; k += 4) {
    const d0 = x[k] - mu, d1 = x[k + 1] - mu, d2 = x[k + 2] - mu, d3 = x[k + 3] - mu;
    s0 += d0 * d0;
    s1 += d1 * d1;
    s2 += d2 * d2;
    s3 += d3 * d3;
  }
  for (; k < stop; k++) {
    const d = x[k] - mu;
    s0 += d * d;
  }
  return s0 + s1 + (s2 + s3);
}
