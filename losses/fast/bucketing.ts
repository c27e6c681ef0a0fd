/**
 * Step 1 and 2 of the fast bucketed losses: sort the positives, then put every relevant
 * negative into its bucket, either by binary search over the sorted positives (`O(M log P)`)
 * or by the paper's full sort (`O(M log M)` with a comparison sort; a radix sort here).
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
}

/**
 * Bucket statistics. Bucket `k` (`0 <= k <= P`) holds the relevant negatives with exactly `k`
 * positives at or above them (positives come first on ties), i.e. the run between sorted
 * positives `k - 1` and `k`. Sums run over members in index order.
 */
export interface NegativeBuckets {
  /**
   * Bucket id + 1 of every entry, `[M]`; 0 for positives, ignored and below-threshold entries
   * (so a zero-initialised array needs no fill, and the scatter needs no branch).
   */
  slotOf: Int32Array;
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
 * Collects the positives (`target > 0`) and sorts them by descending logit, lower index first
 * on ties; `O(M + P log P)`.
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
  for (let i = 0; i < m; i++) if (targets[i] > 0) numPos++;
  const flatIndex = new Int32Array(numPos);
  const flatLogit = new Float64Array(numPos);
  for (let i = 0, k = 0; i < m; i++) {
    if (targets[i] > 0) {
      flatIndex[k] = i;
      flatLogit[k++] = logits[i];
    }
  }
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
  return { index, logit, target, threshold };
}

function emptyBuckets(m: number, numPos: number): NegativeBuckets {
  const min = new Float64Array(numPos + 1).fill(Infinity);
  const max = new Float64Array(numPos + 1).fill(-Infinity);
  return {
    slotOf: new Int32Array(m),
    count: new Float64Array(numPos + 1),
    sum: new Float64Array(numPos + 1),
    min,
    max,
    relevant: 0,
  };
}

function addMember(b: NegativeBuckets, k: number, s: number): void {
  b.count[k]++;
  b.sum[k] += s;
  if (s < b.min[k]) b.min[k] = s;
  if (s > b.max[k]) b.max[k] = s;
  b.relevant++;
}

/**
 * Number of positives scoring at or above `s`: the first position in the descending `logit`
 * array whose value is below `s` (binary search, `O(log P)`).
 *
 * @param logit Positive logits, descending.
 * @param s Query logit.
 * @returns A bucket id in `[0, P]`.
 */
export function positivesAtOrAbove(logit: Float64Array, s: number): number {
  let lo = 0;
  let hi = logit.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (logit[mid] >= s) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A uniform grid over `[t, max positive logit]` that answers "how many positives score at or
 * above `s`" for most `s` with one table read: each cell stores the answer at its upper edge
 * and, when no positive falls inside the cell, that is the answer for the whole cell. Cells
 * holding positives fall back to a binary search over the positives of that cell only. Callers
 * verify the hint with two comparisons, so rounding in the cell index never gives a wrong bucket.
 */
export class BucketGrid {
  readonly #sorted: Float64Array;
  readonly #t: number;
  readonly #scale: number;
  readonly #cells: number;
  /** `#upper[c + 1]` = answer at the upper edge of cell `c`; `#upper[0]` = P (at `t`). */
  readonly #upper: Int32Array;

  /**
   * Builds the grid with about 4 cells per positive (at least 1024, at most 2^22) in
   * `O(cells + P)`.
   *
   * @param sorted Positive logits, descending.
   * @param t Threshold (lower end of the grid).
   */
  constructor(sorted: Float64Array, t: number) {
    this.#sorted = sorted;
    this.#t = t;
    const range = sorted.length > 0 ? sorted[0] - t : 0;
    const cells = Math.min(1 << 22, Math.max(1024, 4 * sorted.length));
    this.#cells = range > 0 ? cells : 0;
    this.#scale = range > 0 ? cells / range : 0;
    this.#upper = new Int32Array(this.#cells + 1);
    // Edges rise with c, so the count of positives at or above them only falls: one merge.
    let k = sorted.length;
    this.#upper[0] = k;
    for (let c = 1; c <= this.#cells; c++) {
      const edge = t + c / this.#scale;
      while (k > 0 && sorted[k - 1] < edge) k--;
      this.#upper[c] = k;
    }
  }

  /**
   * A guess of `positivesAtOrAbove(sorted, s)` for `s >= t`; exact unless rounding put `s` in
   * a neighbouring cell.
   *
   * @param s Query logit, `>= t`.
   * @returns A bucket id in `[0, P]`.
   */
  hint(s: number): number {
    const c = Math.floor((s - this.#t) * this.#scale);
    if (c >= this.#cells) return c === this.#cells && this.#cells > 0 ? this.#upper[c] : 0;
    let lo = this.#upper[c + 1];
    let hi = this.#upper[c];
    const sorted = this.#sorted;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid] >= s) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/**
 * Buckets by search: one scan over the entries; each relevant negative (`target == 0`,
 * `logit >= t`) finds its bucket (the number of positives at or above it) with a
 * {@linkcode BucketGrid} hint checked by two comparisons, else a binary search over the sorted
 * positives, and is added to the bucket's count, sum, min and max. `O(M log P)` time at worst,
 * no sort of the negatives.
 *
 * @example
 * ```ts
 * import { bucketBySearch, sortPositives } from "./bucketing.ts";
 * import assert from "node:assert/strict";
 *
 * const s = [2, 1.5, 1, 0.5, 0];
 * const y = [0, 1, 0, 0, 1];
 * const b = bucketBySearch(s, y, sortPositives(s, y, 0));
 * assert.deepEqual(Array.from(b.slotOf), [1, 0, 2, 2, 0]);
 * assert.deepEqual(Array.from(b.count), [1, 2, 0]);
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`.
 * @param pos The sorted positives of the same call.
 * @returns The bucket statistics.
 */
export function bucketBySearch(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  pos: SortedPositives,
): NegativeBuckets {
  const m = targets.length;
  const b = emptyBuckets(m, pos.logit.length);
  const t = pos.threshold;
  const { slotOf } = b;
  const sorted = pos.logit;
  const numPos = sorted.length;
  const grid = new BucketGrid(sorted, t);
  // Per-bucket [count, sum, min, max] side by side: one cache line per update.
  const stats = new Float64Array(4 * (numPos + 1));
  for (let k = 0; k <= numPos; k++) {
    stats[4 * k + 2] = Infinity;
    stats[4 * k + 3] = -Infinity;
  }
  let relevant = 0;
  for (let i = 0; i < m; i++) {
    if (targets[i] !== 0) continue;
    const s = logits[i];
    if (!(s >= t)) continue;
    // k = #positives with logit >= s: a grid hint, checked exactly, else a binary search.
    let k = grid.hint(s);
    if (!((k === 0 || sorted[k - 1] >= s) && (k === numPos || sorted[k] < s))) {
      k = positivesAtOrAbove(sorted, s);
    }
    slotOf[i] = k + 1;
    const at = 4 * k;
    stats[at]++;
    stats[at + 1] += s;
    if (s < stats[at + 2]) stats[at + 2] = s;
    if (s > stats[at + 3]) stats[at + 3] = s;
    relevant++;
  }
  for (let k = 0; k <= numPos; k++) {
    b.count[k] = stats[4 * k];
    b.sum[k] = stats[4 * k + 1];
    b.min[k] = stats[4 * k + 2];
    b.max[k] = stats[4 * k + 3];
  }
  b.relevant = relevant;
  return b;
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
 * @returns The bucket statistics.
 */
export function bucketBySort(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  pos: SortedPositives,
): NegativeBuckets {
  const m = targets.length;
  const b = emptyBuckets(m, pos.logit.length);
  const t = pos.threshold;
  let n = 0;
  for (let i = 0; i < m; i++) {
    if (targets[i] > 0 || (targets[i] === 0 && logits[i] >= t)) n++;
  }
  const entries = new Int32Array(n);
  let k = 0;
  for (let i = 0; i < m; i++) if (targets[i] > 0) entries[k++] = i;
  for (let i = 0; i < m; i++) if (targets[i] === 0 && logits[i] >= t) entries[k++] = i;
  // Stable descending sort of [positives in index order, negatives in index order]: on ties
  // positives first, then lower index.
  const keys = new Float64Array(n);
  for (let r = 0; r < n; r++) keys[r] = logits[entries[r]];
  const sortedPositions = argsortDescending(keys);
  const order = new Int32Array(n);
  for (let r = 0; r < n; r++) order[r] = entries[sortedPositions[r]];
  let seen = 0;
  for (let r = 0; r < n; r++) {
    const i = order[r];
    if (targets[i] > 0) seen++;
    else b.slotOf[i] = seen + 1;
  }
  for (let i = 0; i < m; i++) if (b.slotOf[i] > 0) addMember(b, b.slotOf[i] - 1, logits[i]);
  return b;
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
