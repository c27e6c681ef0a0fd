/**
 * Steps 1 and 2 of the fast bucketed losses: collect and sort the positives, then put every
 * relevant negative into its bucket, either by an `O(1)` grid lookup over the sorted positives
 * (`O(log P)` at worst) or by the paper's full sort of the relevant entries (a radix sort here).
 *
 * @module
 */

import { argsortDescending } from "./radix_sort.ts";

/** The positives of one call, sorted by descending logit (ties: lower index first). */
export interface SortedPositives {
  /** Original indices, `[P]`. */
  index: Int32Array;
  /** Logits, descending, `[P]`. */
  logit: Float64Array;
  /** Targets (IoU for Rank & Sort), `[P]`. */
  target: Float64Array;
  /** Relevance threshold `t = min positive logit - δ`. */
  threshold: number;
  /**
   * False when the scan met a logit or target that is not finite or a target above 1 (callers
   * that skipped the up-front validation of typed arrays re-validate to report the entry).
   */
  valid: boolean;
}

/**
 * Collects the positives (`target > 0`) in one pass, which also checks every entry of typed
 * arrays, and sorts them by descending logit, lower index first on ties; `O(M + P log P)`.
 *
 * @example
 * ```ts
 * import { sortPositives } from "./bucketing.ts";
 * import assert from "node:assert/strict";
 *
 * const p = sortPositives(new Float32Array([0.5, 2, 1, 2]), [1, 0.3, 0, 0.9], 0.5);
 * assert.deepEqual(Array.from(p.index), [1, 3, 0]);
 * assert.equal(p.threshold, 0);
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`.
 * @param delta `δ >= 0`.
 * @returns The sorted positives and the threshold (`NaN` when there is no positive).
 */
export function sortPositives(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  delta: number,
): SortedPositives {
  const m = targets.length;
  let numPos = 0;
  let valid = true;
  for (let i = 0; i < m; i++) {
    const y = targets[i];
    // Finite logit, finite target <= 1 (NaN fails every comparison).
    if (!(y <= 1 && y - y === 0 && logits[i] - logits[i] === 0)) valid = false;
    if (y > 0) numPos++;
  }
  const flatIndex = new Int32Array(numPos);
  for (let i = 0, k = 0; k < numPos; i++) if (targets[i] > 0) flatIndex[k++] = i;
  const flatLogit = new Float64Array(numPos);
  for (let k = 0; k < numPos; k++) flatLogit[k] = logits[flatIndex[k]];
  // Stable radix argsort: equal logits keep index order.
  const order = argsortDescending(flatLogit);
  const index = new Int32Array(numPos);
  const logit = new Float64Array(numPos);
  const target = new Float64Array(numPos);
  for (let k = 0; k < numPos; k++) {
    index[k] = flatIndex[order[k]];
    logit[k] = flatLogit[order[k]];
    target[k] = targets[index[k]];
  }
  const threshold = numPos > 0 ? logit[numPos - 1] - delta : NaN;
  return { index, logit, target, threshold, valid };
}

/**
 * Bucket statistics. Bucket `k` (`0 <= k <= P`) holds the relevant negatives with exactly `k`
 * positives at or above them (positives come first on ties), i.e. the run between sorted
 * positives `k - 1` and `k`. Sums run over members in index order.
 */
export interface NegativeBuckets {
  /** Members per bucket, `[P + 1]`. */
  count: Float64Array;
  /** Sum of the members' logits, `[P + 1]`. */
  sum: Float64Array;
  /** Smallest member logit, `[P + 1]` (`+Infinity` when empty). */
  min: Float64Array;
  /** Largest member logit, `[P + 1]` (`-Infinity` when empty). */
  max: Float64Array;
  /** Number of relevant negatives. */
  relevant: number;
}

/**
 * Number of positives scoring at or above `s`: the first position in the descending `logit`
 * array whose value is below `s` (binary search over `[lo, hi)`, `O(log (hi - lo))`).
 *
 * @param logit Positive logits, descending.
 * @param s Query logit.
 * @param lo A known lower bound of the answer (default 0).
 * @param hi A known upper bound of the answer (default `logit.length`).
 * @returns A bucket id in `[lo, hi]`.
 */
export function positivesAtOrAbove(
  logit: Float64Array,
  s: number,
  lo = 0,
  hi = logit.length,
): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (logit[mid] >= s) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Answers "how many positives score at or above `s`" (the bucket id of a negative with logit
 * `s >= t`) in `O(1)` for most `s`: a uniform grid of about 4 cells per positive over
 * `[t, max positive logit]`. The cell of a value is one float expression, monotone in the value,
 * and the positives are placed with that same expression, so a query only compares `s` with
 * the positives of its own cell (those in higher cells are above it, those in lower cells
 * below it, whatever the rounding). The answer is exact, ties included; a cell holding many
 * positives falls back to a binary search among them.
 *
 * @example
 * ```ts
 * import { BucketGrid } from "./bucketing.ts";
 * import assert from "node:assert/strict";
 *
 * const grid = new BucketGrid(new Float64Array([3, 2, 2, 1]), 0.5);
 * assert.deepEqual([4, 2, 1.5, 1, 0.7].map((s) => grid.bucketOf(s)), [0, 3, 3, 4, 4]);
 * ```
 */
export class BucketGrid {
  /** Positive logits, descending. */
  readonly sorted: Float64Array;
  /** Lower end of the grid, the threshold `t`. */
  readonly t: number;
  /** Cells per unit of logit. */
  readonly scale: number;
  /** Index of the last cell; values above the grid fall into it. */
  readonly last: number;
  /** `atOrAbove[c]` = number of positives in cells `>= c`, `[cells + 1]`. */
  readonly atOrAbove: Int32Array;

  /**
   * Builds the grid in `O(cells + P)`, with `4 P` cells (at least 256, at most `2^22`).
   *
   * @param sorted Positive logits, descending, all `>= t`.
   * @param t Threshold (lower end of the grid).
   */
  constructor(sorted: Float64Array, t: number) {
    this.sorted = sorted;
    this.t = t;
    const range = sorted.length > 0 ? sorted[0] - t : 0;
    const cells = range > 0 ? Math.min(1 << 22, Math.max(256, 4 * sorted.length)) : 1;
    this.scale = range > 0 ? cells / range : 0;
    this.last = cells - 1;
    this.atOrAbove = new Int32Array(cells + 1);
    // Positives descend, so their cells do not rise: count the positives per cell, then sum
    // from the top cell down.
    for (let j = 0; j < sorted.length; j++) this.atOrAbove[this.cellOf(sorted[j])]++;
    for (let c = cells - 1; c >= 0; c--) this.atOrAbove[c] += this.atOrAbove[c + 1];
  }

  /**
   * The cell of a value `s >= t`: `floor((s - t) * scale)`, capped at the last cell.
   *
   * @param s Value, `>= t`.
   * @returns A cell index.
   */
  cellOf(s: number): number {
    const c = Math.floor((s - this.t) * this.scale);
    return c < this.last ? c : this.last;
  }

  /**
   * Number of positives scoring at or above `s`, i.e. the bucket id of a negative with logit
   * `s >= t` (positives first on ties).
   *
   * @param s Query logit, `>= t`.
   * @returns A bucket id in `[0, P]`.
   */
  bucketOf(s: number): number {
    const c = this.cellOf(s);
    // Positives in higher cells are above s; those of cell c sit at
    // [atOrAbove[c + 1], atOrAbove[c]): count the ones at or above s.
    let k = this.atOrAbove[c + 1];
    const end = this.atOrAbove[c];
    if (end - k > 8) return positivesAtOrAbove(this.sorted, s, k, end);
    while (k < end && this.sorted[k] >= s) k++;
    return k;
  }
}

/** Zero statistics of `numPos + 1` buckets, `[count, sum, min, max]` side by side. */
function emptyStats(numPos: number): Float64Array {
  const stats = new Float64Array(4 * (numPos + 1));
  for (let k = 0; k <= numPos; k++) {
    stats[4 * k + 2] = Infinity;
    stats[4 * k + 3] = -Infinity;
  }
  return stats;
}

/** Adds a member with logit `s` to bucket `k` of interleaved statistics. */
function addMember(stats: Float64Array, k: number, s: number): void {
  const at = 4 * k;
  stats[at]++;
  stats[at + 1] += s;
  if (s < stats[at + 2]) stats[at + 2] = s;
  if (s > stats[at + 3]) stats[at + 3] = s;
}

/** Splits interleaved `[count, sum, min, max]` statistics into {@linkcode NegativeBuckets}. */
function unpackStats(stats: Float64Array, relevant: number): NegativeBuckets {
  const n = stats.length / 4;
  const b: NegativeBuckets = {
    count: new Float64Array(n),
    sum: new Float64Array(n),
    min: new Float64Array(n),
    max: new Float64Array(n),
    relevant,
  };
  for (let k = 0; k < n; k++) {
    b.count[k] = stats[4 * k];
    b.sum[k] = stats[4 * k + 1];
    b.min[k] = stats[4 * k + 2];
    b.max[k] = stats[4 * k + 3];
  }
  return b;
}

/**
 * Buckets by search: one scan over the entries; each relevant negative (`target == 0`,
 * `logit >= t`) finds its bucket (the number of positives at or above it) with a
 * {@linkcode BucketGrid} lookup, adds to the bucket's count, sum, min and max, and records
 * bucket id + 1 in `slots`. `O(M)` time for well-spread positives, `O(M log P)` at worst; no sort
 * of the negatives.
 *
 * @example
 * ```ts
 * import { bucketBySearch, sortPositives } from "./bucketing.ts";
 * import assert from "node:assert/strict";
 *
 * const s = [2, 1.5, 1, 0.5, 0];
 * const y = [0, 1, 0, 0, 1];
 * const slots = new Float64Array(5);
 * const b = bucketBySearch(s, y, sortPositives(s, y, 0), slots);
 * assert.deepEqual(Array.from(slots), [1, 0, 2, 2, 0]);
 * assert.deepEqual(Array.from(b.count), [1, 2, 0]);
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`.
 * @param pos The sorted positives of the same call.
 * @param slots Zero-filled, `[M]`: receives bucket id + 1 at every relevant negative, the other
 *   entries stay 0 (the losses pass their gradient array and overwrite it later).
 * @returns The bucket statistics.
 */
export function bucketBySearch(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  pos: SortedPositives,
  slots: Float64Array,
): NegativeBuckets {
  const m = targets.length;
  const t = pos.threshold;
  const grid = new BucketGrid(pos.logit, t);
  // Per-bucket [count, sum, min, max] side by side: one cache line per update.
  const stats = emptyStats(pos.logit.length);
  let relevant = 0;
  for (let i = 0; i < m; i++) {
    const s = logits[i];
    if (targets[i] !== 0 || !(s >= t)) continue;
    const k = grid.bucketOf(s);
    slots[i] = k + 1;
    addMember(stats, k, s);
    relevant++;
  }
  return unpackStats(stats, relevant);
}

/**
 * Buckets by the paper's full sort: the relevant entries `[positives in index order, relevant
 * negatives in index order]` are sorted stably by descending logit (so on ties positives come
 * first), walked top to bottom counting positives, and each negative gets the count so far as
 * its bucket. Statistics are then accumulated in index order, so the result is bit-identical to
 * {@linkcode bucketBySearch}. The sort is a radix argsort (`O(M)` passes over the entries).
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`.
 * @param pos The sorted positives of the same call.
 * @param slots Zero-filled, `[M]`: receives bucket id + 1 at every relevant negative.
 * @returns The bucket statistics.
 */
export function bucketBySort(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  pos: SortedPositives,
  slots: Float64Array,
): NegativeBuckets {
  const m = targets.length;
  const t = pos.threshold;
  let n = pos.index.length;
  for (let i = 0; i < m; i++) if (targets[i] === 0 && logits[i] >= t) n++;
  const entries = new Int32Array(n);
  let k = 0;
  for (let i = 0; i < m; i++) if (targets[i] > 0) entries[k++] = i;
  for (let i = 0; i < m; i++) if (targets[i] === 0 && logits[i] >= t) entries[k++] = i;
  // Stable descending sort of [positives in index order, negatives in index order]: on ties
  // positives first, then lower index.
  const keys = new Float64Array(n);
  for (let r = 0; r < n; r++) keys[r] = logits[entries[r]];
  const sortedPositions = argsortDescending(keys);
  let seen = 0;
  for (let r = 0; r < n; r++) {
    const i = entries[sortedPositions[r]];
    if (targets[i] > 0) seen++;
    else slots[i] = seen + 1;
  }
  const stats = emptyStats(pos.logit.length);
  for (let i = 0; i < m; i++) {
    if (slots[i] === 0) continue;
    addMember(stats, slots[i] - 1, logits[i]);
  }
  return unpackStats(stats, n - pos.index.length);
}

/**
 * Prototype (mean) of every non-empty bucket, clamped into the bucket's `[min, max]` so that
 * rounding never moves it past a member (spec Q12), listed top to bottom.
 *
 * @param b Bucket statistics.
 * @returns `id` (bucket id), `size` and `mean` of the non-empty buckets; means descending.
 */
export function bucketPrototypes(
  b: NegativeBuckets,
): { id: Int32Array; size: Float64Array; mean: Float64Array } {
  let numBuckets = 0;
  for (let k = 0; k < b.count.length; k++) if (b.count[k] > 0) numBuckets++;
  const id = new Int32Array(numBuckets);
  const size = new Float64Array(numBuckets);
  const mean = new Float64Array(numBuckets);
  for (let k = 0, q = 0; k < b.count.length; k++) {
    if (b.count[k] === 0) continue;
    id[q] = k;
    size[q] = b.count[k];
    mean[q] = Math.min(b.max[k], Math.max(b.min[k], b.sum[k] / b.count[k]));
    q++;
  }
  return { id, size, mean };
}
