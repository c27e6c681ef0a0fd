/**
 * Accurate running sums used by the fast bucketed losses: compensated prefix sums over a
 * sorted sequence and a multi-channel Fenwick (binary indexed) tree.
 *
 * @module
 */

/**
 * Prefix sums kept as double-double (`hi + lo`, Knuth's TwoSum), so that the sum over any
 * range `[a, c)` is computed from two prefixes without the usual cancellation of large partial
 * sums.
 *
 * @example Range sums
 * ```ts
 * import { CompensatedPrefixSum } from "./prefix_sums.ts";
 * import assert from "node:assert/strict";
 *
 * const p = new CompensatedPrefixSum([1e16, 1, 1, -1e16]);
 * assert.equal(p.range(1, 3), 2);
 * assert.equal(p.range(0, 4), 2);
 * ```
 */
export class CompensatedPrefixSum {
  /** High parts of the prefixes, `[n + 1]`. */
  readonly hi: Float64Array;
  /** Low parts (rounding errors) of the prefixes, `[n + 1]`. */
  readonly lo: Float64Array;

  /**
   * Builds the prefixes of `values`.
   *
   * @param values Sequence to sum, `[n]`.
   */
  constructor(values: ArrayLike<number>) {
    const n = values.length;
    this.hi = new Float64Array(n + 1);
    this.lo = new Float64Array(n + 1);
    for (let k = 0; k < n; k++) {
      const a = this.hi[k];
      const b = values[k];
      const s = a + b;
      const bb = s - a;
      this.hi[k + 1] = s;
      this.lo[k + 1] = this.lo[k] + ((a - (s - bb)) + (b - bb));
    }
  }

  /**
   * Sum of `values[a..c)`.
   *
   * @param a First index.
   * @param c One past the last index (`c >= a`).
   * @returns The range sum.
   */
  range(a: number, c: number): number {
    return (this.hi[c] - this.hi[a]) + (this.lo[c] - this.lo[a]);
  }
}

/**
 * Fenwick tree over `n` positions with `channels` float64 values per position: point updates
 * and range sums in `O(log n)`. Range sums walk both ends only down to their common ancestor, so
 * nodes shared by the two prefixes are never added and subtracted.
 *
 * @example Range sums of two channels
 * ```ts
 * import { FenwickTree } from "./prefix_sums.ts";
 * import assert from "node:assert/strict";
 *
 * const t = new FenwickTree(5, 2);
 * t.add(1, 0, 1);
 * t.add(1, 1, 10);
 * t.add(3, 0, 1);
 * assert.equal(t.range(0, 4, 0), 2);
 * assert.equal(t.range(2, 5, 1), 0);
 * ```
 */
export class FenwickTree {
  readonly #tree: Float64Array;
  readonly #n: number;
  readonly #channels: number;

  /**
   * An all-zero tree.
   *
   * @param n Number of positions.
   * @param channels Values per position.
   */
  constructor(n: number, channels: number) {
    this.#n = n;
    this.#channels = channels;
    this.#tree = new Float64Array((n + 1) * channels);
  }

  /**
   * Adds `value` to channel `channel` at position `pos`.
   *
   * @param pos Position in `[0, n)`.
   * @param channel Channel in `[0, channels)`.
   * @param value Amount to add.
   */
  add(pos: number, channel: number, value: number): void {
    const t = this.#tree;
    const ch = this.#channels;
    for (let k = pos + 1; k <= this.#n; k += k & -k) t[k * ch + channel] += value;
  }

  /**
   * Sum of channel `channel` over positions `[a, c)`.
   *
   * @param a First position.
   * @param c One past the last position (`c >= a`).
   * @param channel Channel in `[0, channels)`.
   * @returns The range sum.
   */
  range(a: number, c: number, channel: number): number {
    const t = this.#tree;
    const ch = this.#channels;
    let sum = 0;
    while (c !== a) {
      if (c > a) {
        sum += t[c * ch + channel];
        c &= c - 1;
      } else {
        sum -= t[a * ch + channel];
        a &= a - 1;
      }
    }
    return sum;
  }

  /**
   * Adds `values[j]` to channel `j` at position `pos`, for every channel, in one walk.
   *
   * @param pos Position in `[0, n)`.
   * @param values One amount per channel.
   */
  addAll(pos: number, values: ArrayLike<number>): void {
    const t = this.#tree;
    const ch = this.#channels;
    for (let k = pos + 1; k <= this.#n; k += k & -k) {
      const base = k * ch;
      for (let j = 0; j < ch; j++) t[base + j] += values[j];
    }
  }

  /**
   * Sums of every channel over positions `[a, c)`, in one walk.
   *
   * @param a First position.
   * @param c One past the last position (`c >= a`).
   * @param out Receives one sum per channel.
   * @returns `out`.
   */
  rangeAll(a: number, c: number, out: Float64Array): Float64Array {
    const t = this.#tree;
    const ch = this.#channels;
    out.fill(0);
    while (c !== a) {
      if (c > a) {
        const base = c * ch;
        for (let j = 0; j < ch; j++) out[j] += t[base + j];
        c &= c - 1;
      } else {
        const base = a * ch;
        for (let j = 0; j < ch; j++) out[j] -= t[base + j];
        a &= a - 1;
      }
    }
    return out;
  }
}
