/**
 * Stable LSD radix argsort of float64 keys, descending: the typed-array sort the fast losses
 * use for the positives (by logit, by IoU) and for the optional full sort.
 *
 * @module
 */

/**
 * Positions `0..n-1` ordered by `keys` descending; equal keys keep their position order
 * (stable), and `-0` equals `0`. Four passes of 16-bit digits over the keys' order-preserving
 * 64-bit images (passes whose digit is the same for every key are skipped): `O(n)` time plus a
 * 65536-entry histogram per pass. `NaN` keys are not allowed.
 *
 * @example
 * ```ts
 * import { argsortDescending } from "./radix_sort.ts";
 * import assert from "node:assert/strict";
 *
 * const order = argsortDescending(new Float64Array([0.5, -1, 2, 0.5, -0, 0]));
 * assert.deepEqual(Array.from(order), [2, 0, 3, 4, 5, 1]);
 * ```
 *
 * @param keys Values to order, `[n]`.
 * @returns The ordering permutation, `[n]`.
 */
export function argsortDescending(keys: ArrayLike<number>): Int32Array {
  const n = keys.length;
  const f = new Float64Array(n);
  for (let i = 0; i < n; i++) f[i] = keys[i] === 0 ? 0 : keys[i];
  // Rewrite each key in place as an unsigned 64-bit image (words u[2i] low, u[2i+1] high on
  // little-endian hosts) that is smaller for larger keys. The usual ascending image is "flip
  // every bit" for negatives and "set the sign bit" otherwise; descending inverts it, so
  // negatives keep their bits and non-negatives get every bit but the (clear) sign flipped.
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < n; i++) {
    const hi = u[2 * i + 1];
    if (hi & 0x80000000) continue;
    u[2 * i + 1] = ~(hi | 0x80000000) >>> 0;
    u[2 * i] = ~u[2 * i] >>> 0;
  }
  let order = new Int32Array(n);
  let next = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const count = new Int32Array(65537);
  for (let pass = 0; pass < 4; pass++) {
    const word = pass < 2 ? 0 : 1;
    const shift = pass % 2 === 0 ? 0 : 16;
    count.fill(0);
    for (let i = 0; i < n; i++) count[((u[2 * i + word] >>> shift) & 0xffff) + 1]++;
    if (n > 0 && count[((u[word] >>> shift) & 0xffff) + 1] === n) continue; // one digit only
    for (let d = 0; d < 65536; d++) count[d + 1] += count[d];
    for (let r = 0; r < n; r++) {
      const i = order[r];
      next[count[(u[2 * i + word] >>> shift) & 0xffff]++] = i;
    }
    [order, next] = [next, order];
  }
  return order;
}
