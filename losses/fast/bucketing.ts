/**
 * Steps 1 and 2 of the fast bucketed losses: collect and sort the positives, then put every
 * relevant negative into its bucket, either by an `O(1)` grid lookup over the sorted positives
 * (`O(log P)` at worst) or by the paper's full sort of the relevant entries (a radix sort here).
 *
 * @module
 */

import { partitionPoint } from "../reference/common.ts";
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

/** What {@linkcode sortPositives} checks besides the targets. */
export interface SortPositivesOptions {
  /**
   * Check every logit (default true). With false only the positives' logits are checked, and
   * the caller checks the others (the bucketing scans report non-finite logits in
   * {@linkcode NegativeBuckets.finite}); the scan then reads the targets alone.
   */
  checkLogits?: boolean;
}

/**
 * Collects the positives (`target > 0`) in one pass, which also checks every target (and,
 * unless `checkLogits` is false, every logit), and sorts them by descending logit, lower index
 * first on ties; `O(M + P log P)`. Float32 targets are read as bit patterns.
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
 * @param options Whether to check every logit (default) or the positives' only.
 * @returns The sorted positives and the threshold (`NaN` when there is no positive).
 */
export function sortPositives(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  delta: number,
  options: SortPositivesOptions = {},
): SortedPositives {
  const { flatIndex, numPos, valid: targetsValid } = targets instanceof Float32Array
    ? collectFloat32(targets)
    : collect(targets);
  let valid = targetsValid;
  if (options.checkLogits ?? true) {
    for (let i = 0; i < logits.length; i++) if (!(logits[i] - logits[i] === 0)) valid = false;
  }
  const flatLogit = new Float64Array(numPos);
  for (let k = 0; k < numPos; k++) {
    flatLogit[k] = logits[flatIndex[k]];
    if (!(flatLogit[k] - flatLogit[k] === 0)) valid = false;
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
  return { index, logit, target, threshold, valid };
}

/** Flat indices of the positives, in index order (`flatIndex[0..numPos)`). */
interface Collected {
  flatIndex: Int32Array;
  numPos: number;
  /** Every target finite and at most 1. */
  valid: boolean;
}

/** The positives of any array-like, one pass (NaN fails every comparison). */
function collect(targets: ArrayLike<number>): Collected {
  const m = targets.length;
  let flatIndex: Int32Array = new Int32Array(256);
  let numPos = 0;
  let valid = true;
  for (let i = 0; i < m; i++) {
    const y = targets[i];
    if (!(y <= 1 && y - y === 0)) valid = false;
    if (y > 0) {
      if (numPos === flatIndex.length) flatIndex = grown(flatIndex);
      flatIndex[numPos++] = i;
    }
  }
  return { flatIndex, numPos, valid };
}

/**
 * {@linkcode collect} on float32 targets read as `Int32` bit patterns, with one predictable
 * branch per class: positives in `(0, 1]` are the patterns `[1, 0x3f800000]`; larger patterns
 * are targets above 1, `Infinity` or `NaN`; negative patterns in `[-2^23, -1]` are `-Infinity`
 * and negative `NaN`s; everything else (zeros, negative numbers) needs no work.
 */
function collectFloat32(targets: Float32Array): Collected {
  const m = targets.length;
  const bits = new Int32Array(targets.buffer, targets.byteOffset, m);
  let flatIndex: Int32Array = new Int32Array(256);
  let numPos = 0;
  let valid = true;
  for (let i = 0; i < m; i++) {
    const b = bits[i];
    // Literals, not module constants: the hot loop then stays in Int32 arithmetic.
    if (b > 0) {
      if (b > 0x3f800000) valid = false; // above 1.0f
      if (numPos === flatIndex.length) flatIndex = grown(flatIndex);
      flatIndex[numPos++] = i;
    } else if ((b + 0x800000) >>> 0 < 0x800000) {
      valid = false; // [-2^23, -1]: -Infinity (0xff800000) and negative NaNs
    }
  }
  return { flatIndex, numPos, valid };
}

/** A copy of `a` with twice the room. */
function grown(a: Int32Array): Int32Array {
  const b = new Int32Array(2 * a.length);
  b.set(a);
  return b;
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
  /**
   * A lower bound of the members' logits, `[P + 1]` (`+Infinity` when empty): the smallest
   * member, except from the `Float32Array` scan of {@linkcode bucketBySearch}, which gives the
   * logit of positive `k` (or `t`), the bucket's lower edge.
   */
  min: Float64Array;
  /**
   * An upper bound of the members' logits, `[P + 1]` (`-Infinity` when empty): the largest
   * member, or from the `Float32Array` scan the logit of positive `k - 1` (`+Infinity` for
   * bucket 0).
   */
  max: Float64Array;
  /** Number of relevant negatives. */
  relevant: number;
  /** Whether every logit the scan read was finite (callers that skipped that check use it). */
  finite: boolean;
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
  return partitionPoint(lo, hi, (k) => logit[k] >= s);
}

/**
 * Answers "how many positives score at or above `s`" (the bucket id of a negative with logit
 * `s >= t`) in `O(1)` for most `s`: a uniform grid of a few cells per positive over
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
   * Builds the grid in `O(cells + P)`, with `cellsPerPositive * P` cells (at least 256, at most
   * `maxCells`).
   *
   * @param sorted Positive logits, descending, all `>= t`.
   * @param t Threshold (lower end of the grid).
   * @param cellsPerPositive Cells per positive (default 4).
   * @param maxCells Most cells (default `2^22`).
   */
  constructor(sorted: Float64Array, t: number, cellsPerPositive = 4, maxCells = 1 << 22) {
    this.sorted = sorted;
    this.t = t;
    const range = sorted.length > 0 ? sorted[0] - t : 0;
    const cells = range > 0
      ? Math.min(maxCells, Math.max(256, cellsPerPositive * sorted.length))
      : 1;
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
function unpackStats(stats: Float64Array, relevant: number, finite: boolean): NegativeBuckets {
  const n = stats.length / 4;
  const b: NegativeBuckets = {
    count: new Float64Array(n),
    sum: new Float64Array(n),
    min: new Float64Array(n),
    max: new Float64Array(n),
    relevant,
    finite,
  };
  for (let k = 0; k < n; k++) {
    b.count[k] = stats[4 * k];
    b.sum[k] = stats[4 * k + 1];
    b.min[k] = stats[4 * k + 2];
    b.max[k] = stats[4 * k + 3];
  }
  return b;
}

/** Float32 scan: cells per positive and most cells of its grid (2 MiB of `Int32`). */
const F32_CELLS_PER_POSITIVE = 32;
const F32_MAX_CELLS = 1 << 19;

/**
 * Buckets by search: one scan over the entries; each relevant negative (`target == 0`,
 * `logit >= t`) finds its bucket (the number of positives at or above it) with a
 * {@linkcode BucketGrid} lookup, adds to the bucket's count, sum, min and max, and records
 * bucket id + 1 in `slots` (0 at every other entry). `O(M)` time for well-spread positives,
 * `O(M log P)` at worst; no sort of the negatives.
 *
 * `Float32Array` logits and targets with `Int32Array` slots take a branch-free scan (the
 * detector case; see `scanFloat32`): a finer grid, bounds in place of the members' min and
 * max, the same buckets, counts, sums and slots.
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
 * @param slots `[M]`, receives bucket id + 1 at every relevant negative and 0 at every other
 *   entry (the losses pass their gradient array and overwrite it later).
 * @returns The bucket statistics.
 */
export function bucketBySearch(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  pos: SortedPositives,
  slots: Int32Array | Float32Array | Float64Array,
): NegativeBuckets {
  const m = targets.length;
  const t = pos.threshold;
  if (
    logits instanceof Float32Array && targets instanceof Float32Array &&
    slots instanceof Int32Array
  ) {
    const grid = new BucketGrid(pos.logit, t, F32_CELLS_PER_POSITIVE, F32_MAX_CELLS);
    if (grid.scale > 0) return scanFloat32(logits, targets, grid, slots);
  }
  const grid = new BucketGrid(pos.logit, t);
  // Per-bucket [count, sum, min, max] side by side: one cache line per update.
  const stats = emptyStats(pos.logit.length);
  let relevant = 0;
  let finite = true;
  for (let i = 0; i < m; i++) {
    const s = logits[i];
    if (!(s - s === 0)) finite = false;
    if (targets[i] !== 0 || !(s >= t)) {
      slots[i] = 0;
      continue;
    }
    const k = grid.bucketOf(s);
    slots[i] = k + 1;
    addMember(stats, k, s);
    relevant++;
  }
  return unpackStats(stats, relevant, finite);
}

/**
 * The scan of {@linkcode bucketBySearch} for `Float32Array` inputs and `Int32Array` slots
 * (`grid.scale > 0`), in blocks of 2048 entries and three loops per block, written around
 * what makes the plain loop slow: which entries are relevant negatives follows no pattern (a
 * branch on it is mispredicted often), and a histogram update whose address comes late
 * stalls the next one.
 *
 * 1. Without data-dependent branches, every entry computes its clamped cell, takes the number
 *    of positives in the cells above, and writes `k + 1` or, through a mask from the target's
 *    bits (`±0`) and the cell's sign (`s < t`), 0. Entries below `t` use a sentinel cell with
 *    no positive. A relevant entry whose cell holds a positive is appended to a short list
 *    (branch-free: the list's length grows by 0 or 1). Branches are taken only for logits far
 *    outside the grid or not finite.
 * 2. The listed entries (about 2% on detector data: 32 cells per positive, at most `2^19`)
 *    get their exact bucket from {@linkcode BucketGrid.bucketOf}.
 * 3. The block's slots, read back from L1, feed the counts and sums; slot 0 takes every entry
 *    that is not a relevant negative and is dropped.
 *
 * The members' min and max are not tracked (they would need branches): the bucket's edges
 * stand in for them, which changes no prototype, since the float64 sum of a bucket's float32
 * logits is exact when they are all equal (up to `2^29` members) and its mean then needs no
 * clamp.
 */
function scanFloat32(
  logits: Float32Array,
  targets: Float32Array,
  grid: BucketGrid,
  slots: Int32Array,
): NegativeBuckets {
  const m = targets.length;
  const { t, scale, last, sorted } = grid;
  const numPos = sorted.length;
  // edge[c + 1] = atOrAbove[c] for c in [0, cells]; cell c's positives sit at
  // [edge[c + 2], edge[c + 1]); edge[0] = edge[1] makes the sentinel cell -1 empty.
  const edge = new Int32Array(last + 3);
  edge.set(grid.atOrAbove, 1);
  edge[0] = edge[1];
  const yBits = new Int32Array(targets.buffer, targets.byteOffset, m);
  const count = new Float64Array(numPos + 2);
  const sum = new Float64Array(numPos + 2);
  // Blocks of 2048 entries (a literal: module constants slow the hot loops down); a block's
  // slots and logits stay in L1 between its loops.
  const listed = new Int32Array(2048);
  let finite = true;
  for (let start = 0; start < m; start += 2048) {
    const stop = Math.min(m, start + 2048);
    let numListed = 0;
    for (let i = start; i < stop; i++) {
      const s = logits[i];
      const d = Math.floor((s - t) * scale);
      let c = d | 0;
      if (!(d > -2e9 && d < 2e9)) {
        if (!(s - s === 0)) finite = false;
        c = d > 0 ? last : -1; // NaN: below
      }
      const below = c >> 31; // -1 when s < t
      const over = (last - c) >> 31; // -1 when past the last cell
      c = ((c & ~over) | (last & over) | below) + 1; // 0 (the sentinel) when below
      const k = edge[c + 1];
      const end = edge[c];
      const y2 = yBits[i] << 1; // 0 for +0 and -0
      const skip = ((y2 | -y2) >> 31) | below;
      slots[i] = (k + 1) & ~skip;
      listed[numListed] = i;
      numListed += (((k - end) | (end - k)) >>> 31) & ~skip; // 1: the cell holds a positive
    }
    for (let r = 0; r < numListed; r++) {
      const i = listed[r];
      slots[i] = grid.bucketOf(logits[i]) + 1;
    }
    for (let i = start; i < stop; i++) {
      const slot = slots[i];
      count[slot]++;
      sum[slot] += logits[i];
    }
  }
  const b: NegativeBuckets = {
    count: count.slice(1),
    sum: sum.slice(1),
    min: new Float64Array(numPos + 1).fill(Infinity),
    max: new Float64Array(numPos + 1).fill(-Infinity),
    relevant: m - count[0],
    finite,
  };
  for (let k = 0; k <= numPos; k++) {
    if (b.count[k] === 0) continue;
    b.min[k] = k < numPos ? sorted[k] : t;
    b.max[k] = k > 0 ? sorted[k - 1] : Infinity;
  }
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
 * @param slots `[M]`, receives bucket id + 1 at every relevant negative and 0 at every other
 *   entry.
 * @returns The bucket statistics.
 */
export function bucketBySort(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  pos: SortedPositives,
  slots: Int32Array | Float32Array | Float64Array,
): NegativeBuckets {
  const m = targets.length;
  const t = pos.threshold;
  let n = pos.index.length;
  let finite = true;
  for (let i = 0; i < m; i++) {
    if (!(logits[i] - logits[i] === 0)) finite = false;
    if (targets[i] === 0 && logits[i] >= t) n++;
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
  slots.fill(0);
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
  return unpackStats(stats, n - pos.index.length, finite);
}

/**
 * Prototype (mean) of every non-empty bucket, clamped into the bucket's `[min, max]` so that
 * rounding never moves it past a member, or past a positive where the bounds are the bucket's
 * edges (docs/departures.md, Q12), listed top to bottom.
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
