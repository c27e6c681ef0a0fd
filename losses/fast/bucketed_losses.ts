/**
 * Fast CPU bucketed ranking losses (BRS and BAP) on plain arrays, at the real complexity
 * `O(M log P + P log P)` (`O(M + P log P)` when the positives are spread out): the algorithm the
 * GPU version follows. Typed arrays (`Float32Array`, `Float64Array`) are read in place.
 *
 * @module
 */

import {
  type RankingLossOptions,
  type RankingLossResult,
  validateRankingInputs,
} from "../reference/common.ts";
import {
  bucketBySearch,
  bucketBySort,
  bucketPrototypes,
  type NegativeBuckets,
  type SortedPositives,
  sortPositives,
} from "./bucketing.ts";
import { directPairwise, type PairwiseSums, prefixPairwise } from "./pairwise.ts";

/** Options of the fast bucketed losses. */
export interface FastBucketedOptions extends RankingLossOptions {
  /**
   * How negatives find their bucket: `"search"` (default, a grid lookup over the sorted
   * positives, `O(1)` per negative, `O(log P)` at worst) or `"sort"` (the paper's full sort of
   * all relevant entries, here a radix argsort). Both give bit-identical results.
   */
  bucketing?: "search" | "sort";
  /**
   * How the pairwise sums are formed: `"prefix"` (default, prefix sums and Fenwick sweeps,
   * `O(P log P + B)`) or `"direct"` (double loops, `O(P (P + B))`). They agree to rounding.
   */
  pairwise?: "prefix" | "direct";
  /**
   * Most positives accepted (default: no limit). With more, the losses are `NaN` and the
   * gradient 0, as the ranking ops do past their capacity.
   */
  maxPositives?: number;
}

/** The loss values of one call of a `*Into` loss; the gradient went to the caller's array. */
export interface FastLossValues {
  /** `rankingLoss + sortingLoss`. */
  loss: number;
  /** Mean ranking error over the positives (BAP: the loss). */
  rankingLoss: number;
  /** Mean sorting error over the positives; 0 for BAP. */
  sortingLoss: number;
}

interface Prepared {
  pos: SortedPositives;
  buckets: NegativeBuckets;
  proto: { id: Int32Array; size: Float64Array; mean: Float64Array };
  pair: PairwiseSums;
  delta: number;
  /**
   * `[M]`; its first `4 M` bytes hold, as `Int32`, bucket id + 1 at every relevant negative and
   * 0 elsewhere, which {@linkcode scatterNegatives} turns into the gradient.
   */
  grad: Float32Array | Float64Array;
}

/** Why {@linkcode prepare} found nothing to rank. */
type Unranked = "no positive" | "nothing to rank" | "too many positives";

function isFloatArray(x: unknown): x is Float32Array | Float64Array {
  return x instanceof Float32Array || x instanceof Float64Array;
}

const NO_ENTRIES = new Float64Array(0);

/**
 * Validation, step 1 (sort positives) and step 2 (bucket negatives, prototypes), writing the
 * bucket slots into `grad`. Typed-array entries are checked during the scans (the full
 * validation runs only to report a bad entry); other array-likes are validated up front.
 */
function prepare(
  name: string,
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  grad: Float32Array | Float64Array,
  options: FastBucketedOptions,
  defaultDelta: number,
): Prepared | Unranked {
  const requested = options.delta ?? defaultDelta;
  const typed = isFloatArray(logits) && isFloatArray(targets) &&
    logits.length === targets.length;
  const delta = typed
    ? validateRankingInputs(name, NO_ENTRIES, NO_ENTRIES, requested)
    : validateRankingInputs(name, logits, targets, requested);
  const { bucketing = "search", pairwise = "prefix", maxPositives = Infinity } = options;
  if (!(grad instanceof Float32Array || grad instanceof Float64Array)) {
    throw new TypeError(
      `Cannot compute ${name}: the gradient must be a Float32Array or Float64Array`,
    );
  }
  if (grad.length !== logits.length) {
    throw new TypeError(
      `Cannot compute ${name}: the gradient has length ${grad.length} but the logits ${logits.length}`,
    );
  }
  if (bucketing !== "search" && bucketing !== "sort") {
    throw new RangeError(`Cannot compute ${name}: unknown bucketing "${bucketing}"`);
  }
  if (pairwise !== "prefix" && pairwise !== "direct") {
    throw new RangeError(`Cannot compute ${name}: unknown pairwise "${pairwise}"`);
  }
  if (!(maxPositives >= 0) || (maxPositives !== Infinity && !Number.isInteger(maxPositives))) {
    throw new RangeError(
      `Cannot compute ${name}: maxPositives ${maxPositives} must be an integer >= 0`,
    );
  }
  // Step 1: the P positives, sorted by descending logit; threshold t = min positive - δ. The
  // other logits of typed arrays are checked by the bucketing scan, which reads them anyway.
  const pos = sortPositives(logits, targets, delta, { checkLogits: !typed });
  const numPos = pos.index.length;
  if (!pos.valid) validateRankingInputs(name, logits, targets, delta); // throws
  if (numPos === 0 || numPos > maxPositives) {
    if (typed) validateRankingInputs(name, logits, targets, delta); // the unchecked logits
    return numPos === 0 ? "no positive" : "too many positives";
  }
  // Step 2: each relevant negative joins bucket k = #positives at or above it; counts, sums.
  // The bucket slots go, as Int32, into the first 4 M bytes of the gradient's memory.
  const slots = new Int32Array(grad.buffer, grad.byteOffset, grad.length);
  const buckets = bucketing === "search"
    ? bucketBySearch(logits, targets, pos, slots)
    : bucketBySort(logits, targets, pos, slots);
  if (!buckets.finite) validateRankingInputs(name, logits, targets, delta); // throws
  const proto = bucketPrototypes(buckets);
  const pair = pairwise === "prefix" ? prefixPairwise : directPairwise;
  return { pos, buckets, proto, pair, delta, grad };
}

/** Fills `grad` for inputs with nothing to rank; returns the loss values. */
function unranked(why: Unranked, grad: Float32Array | Float64Array): FastLossValues {
  grad.fill(0);
  const v = why === "too many positives" ? NaN : 0;
  return { loss: v, rankingLoss: v, sortingLoss: v };
}

/**
 * Step 3 (ranking part): `RE(i) = NFP_b(i) / (rank+(i) + NFP_b(i))` per positive and the
 * per-member gradient `u` of every bucket id, both before division by `|P|`.
 */
function rankingPart(
  { pos, buckets, proto, pair, delta }: Prepared,
): { re: Float64Array; rankPos: Float64Array; uById: Float64Array } {
  const p = pos.logit;
  const numPos = p.length;
  // rank+(i) = Σ_j H(p_j - p_i), self term included.
  const rankPos = pair.sumAbove(p, new Float64Array(numPos).fill(1), p, delta);
  // NFP_b(i) = Σ_k b_k H(m_k - p_i).
  const nfp = pair.sumAbove(proto.mean, proto.size, p, delta);
  const re = new Float64Array(numPos);
  const weight = new Float64Array(numPos); // RE(i) / NFP_b(i), 0 when NFP_b(i) = 0
  for (let i = 0; i < numPos; i++) {
    if (nfp[i] === 0) continue;
    re[i] = nfp[i] / (rankPos[i] + nfp[i]);
    weight[i] = re[i] / nfp[i];
  }
  // u_k = Σ_i H(m_k - p_i) RE(i) / NFP_b(i): each member's share of its bucket's blame.
  const u = pair.sumBelow(p, weight, proto.mean, delta);
  const uById = new Float64Array(buckets.count.length);
  for (let q = 0; q < proto.id.length; q++) uById[proto.id[q]] = u[q];
  return { re, rankPos, uById };
}

/**
 * Step 4, negatives: turns the `Int32` bucket id + 1 that step 2 left in `grad`'s memory into
 * the bucket's `u / |P|` (slot 0, everything else, becomes 0), in one branch-free pass.
 */
function scatterNegatives(
  grad: Float32Array | Float64Array,
  uById: Float64Array,
  numPos: number,
): void {
  const bySlot = new Float64Array(uById.length + 1);
  for (let k = 0; k < uById.length; k++) bySlot[k + 1] = uById[k] / numPos;
  const slots = new Int32Array(grad.buffer, grad.byteOffset, grad.length);
  if (grad instanceof Float32Array) scatterFloat32(slots, grad, bySlot);
  else scatterFloat64(slots, grad, bySlot);
}

/** Same memory: entry `i` is read as a slot and written as a gradient. */
function scatterFloat32(slots: Int32Array, grad: Float32Array, bySlot: Float64Array): void {
  for (let i = 0; i < grad.length; i++) grad[i] = bySlot[slots[i]];
}

/**
 * The slots fill the first half of the gradient's bytes: writing `grad[i]` covers slots `2i`
 * and `2i + 1`, so the loop runs backwards, where those are already read.
 */
function scatterFloat64(slots: Int32Array, grad: Float64Array, bySlot: Float64Array): void {
  for (let i = grad.length - 1; i >= 0; i--) grad[i] = bySlot[slots[i]];
}

/**
 * Bucketed Rank & Sort loss, fast CPU form: the same function as the reference
 * `bucketedRankSortLoss` (official `BucketedRankSort`) in `O(M log P + P log P)` time and
 * `O(M + P)` memory, for inputs up to `1e7` entries (e.g. `Float32Array`).
 *
 * Steps, three passes over the `M` entries in all: (1) one scan of the targets collects the
 * positives (and checks typed-array targets), which are then sorted by descending logit, ties
 * by index; (2) one scan over the entries (which checks typed-array logits): each relevant
 * negative (target 0, logit `>= min positive - δ`) finds its bucket, the number of positives
 * scoring at or above it (positives first on ties), with an exact `O(1)` grid lookup, adds to
 * that bucket's count and sum, and leaves bucket id + 1, as an `Int32`, in the gradient array's
 * memory (float32 inputs take a branch-free form of this scan, see `bucketBySearch`);
 * prototypes are the means; (3) per positive `rank+`,
 * `NFP_b` and the current sorting error by prefix-sum lookups, the IoU-restricted sorting sums by
 * Fenwick sweeps, per bucket the gradient `u_k` by a prefix-sum lookup over the positives;
 * (4) one pass turns each bucket id into `u_k / |P|`, then the positives get
 * `(-RE - SE[D ≠ 0] + Σ_{y_k > y_i} H(p_i - p_k) SE(k)/D(k)) / |P|`. No `[M]` buffer besides
 * the gradient itself.
 *
 * Degenerate inputs as the reference: no positive gives zeros; no relevant negative gives
 * `rankingLoss = 0` and the sorting part only.
 *
 * @example Matches the reference
 * ```ts
 * import { fastBucketedRankSortLoss } from "./bucketed_losses.ts";
 * import assert from "node:assert/strict";
 *
 * const s = new Float32Array([2.0, 1.2, 0.9, 0.5, 0.3, -0.1, -0.4, -1.5, 1.0, 0.1]);
 * const y = [0.3, 0, 0.6, 0, 0.9, 0, 0, 0, 0, -1];
 * const r = fastBucketedRankSortLoss(s, y, { delta: 0 });
 * assert.ok(Math.abs(r.rankingLoss - 1 / 3) < 1e-9);
 * assert.ok(Math.abs(r.sortingLoss - 0.15) < 1e-7);
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`: IoU in `(0, 1]` for positives, 0 negatives, `< 0` ignored.
 * @param options `delta` (default 0.5), `bucketing`, `pairwise`.
 * @returns Ranking and sorting losses and the gradient `[M]` (upstream gradient 1).
 */
export function fastBucketedRankSortLoss(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  options: FastBucketedOptions = {},
): RankingLossResult {
  const grad = new Float64Array(lengthOf(logits));
  return { ...fastBucketedRankSortLossInto(logits, targets, grad, options), grad };
}

/**
 * {@linkcode fastBucketedRankSortLoss} writing the gradient into the caller's array, which
 * need not be zeroed (every entry is written) and must not share memory with the inputs:
 * repeated calls reuse one buffer (no allocation, no page faults), and a `Float32Array` halves
 * the traffic of the passes over it (the per-positive and per-bucket sums stay float64; each
 * gradient entry is rounded once, at the end). The ranking ops use it on the native backend,
 * with the output tensor's memory.
 *
 * @example Into a reused float32 buffer
 * ```ts
 * import { fastBucketedRankSortLossInto } from "./bucketed_losses.ts";
 * import assert from "node:assert/strict";
 *
 * const s = new Float32Array([1.8, 1.1, 1.0]);
 * const grad = new Float32Array(3).fill(NaN);
 * const r = fastBucketedRankSortLossInto(s, new Float32Array([0, 0, 1]), grad);
 * assert.ok(Math.abs(r.rankingLoss - 0.791667) < 1e-6);
 * assert.ok(Math.abs(grad[2] + 0.791667) < 1e-6);
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`: IoU in `(0, 1]` for positives, 0 negatives, `< 0` ignored.
 * @param grad Receives the gradient `[M]` (upstream gradient 1).
 * @param options `delta` (default 0.5), `bucketing`, `pairwise`, `maxPositives`.
 * @returns The ranking and sorting losses.
 */
export function fastBucketedRankSortLossInto(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  grad: Float32Array | Float64Array,
  options: FastBucketedOptions = {},
): FastLossValues {
  const prep = prepare("fastBucketedRankSortLoss", logits, targets, grad, options, 0.5);
  if (typeof prep === "string") return unranked(prep, grad);
  const { pos, pair, delta } = prep;
  const numPos = pos.logit.length;
  const { re, rankPos, uById } = rankingPart(prep);

  // Sorting part: positives only.
  const { error: se, missorted } = pair.sortingErrors(pos.logit, pos.target, rankPos, delta);
  const share = new Float64Array(numPos);
  for (let k = 0; k < numPos; k++) if (missorted[k] !== 0) share[k] = se[k] / missorted[k];
  const received = pair.sortingShare(pos.logit, pos.target, share, delta);

  scatterNegatives(grad, uById, numPos);
  let sumRe = 0;
  let sumSe = 0;
  for (let i = 0; i < numPos; i++) {
    const g = -re[i] - (missorted[i] !== 0 ? se[i] : 0) + received[i];
    grad[pos.index[i]] = g / numPos;
    sumRe += re[i];
    sumSe += se[i];
  }
  const rankingLoss = sumRe / numPos;
  const sortingLoss = sumSe / numPos;
  return { loss: rankingLoss + sortingLoss, rankingLoss, sortingLoss };
}

/** The length of an array-like input, or 0 where it has none (validation reports it). */
function lengthOf(x: ArrayLike<number>): number {
  const m = x?.length;
  return Number.isSafeInteger(m) && m > 0 ? m : 0;
}

/**
 * Bucketed AP loss, fast CPU form: the same function as the reference `bucketedApLoss`
 * (official `BucketedAPLoss`, non-interpolated, positives `target > 0`) in
 * `O(M log P + P log P)` time; steps 1–4 of {@linkcode fastBucketedRankSortLoss} without the
 * sorting part. No positive or no relevant negative: loss 0 and a zero gradient (documented
 * divergence; the official code crashes there).
 *
 * @example Vector V5 (docs/departures.md) at δ = 1
 * ```ts
 * import { fastBucketedApLoss } from "./bucketed_losses.ts";
 * import assert from "node:assert/strict";
 *
 * const s = [2.0, 1.2, 0.9, 0.5, 0.3, -0.1, -0.4, -1.5, 1.0, 0.1];
 * const y = [1, 0, 1, 0, 1, 0, 0, 0, 0, -1];
 * assert.ok(Math.abs(fastBucketedApLoss(s, y).loss - 0.396272) < 1e-6);
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`: `> 0` positive, 0 negative, `< 0` ignored.
 * @param options `delta` (default 1), `bucketing`, `pairwise`.
 * @returns `rankingLoss = loss`, `sortingLoss = 0`, and the gradient `[M]`.
 */
export function fastBucketedApLoss(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  options: FastBucketedOptions = {},
): RankingLossResult {
  const grad = new Float64Array(lengthOf(logits));
  return { ...fastBucketedApLossInto(logits, targets, grad, options), grad };
}

/**
 * {@linkcode fastBucketedApLoss} writing the gradient into the caller's array (every entry is
 * written; no memory shared with the inputs), as {@linkcode fastBucketedRankSortLossInto}.
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`: `> 0` positive, 0 negative, `< 0` ignored.
 * @param grad Receives the gradient `[M]` (upstream gradient 1).
 * @param options `delta` (default 1), `bucketing`, `pairwise`, `maxPositives`.
 * @returns `rankingLoss = loss`, `sortingLoss = 0`.
 */
export function fastBucketedApLossInto(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  grad: Float32Array | Float64Array,
  options: FastBucketedOptions = {},
): FastLossValues {
  const prep = prepare("fastBucketedApLoss", logits, targets, grad, options, 1);
  if (typeof prep === "string") return unranked(prep, grad);
  if (prep.buckets.relevant === 0) return unranked("nothing to rank", grad);
  const { pos } = prep;
  const numPos = pos.logit.length;
  const { re, uById } = rankingPart(prep);
  scatterNegatives(grad, uById, numPos);
  let sumRe = 0;
  for (let i = 0; i < numPos; i++) {
    grad[pos.index[i]] = -re[i] / numPos;
    sumRe += re[i];
  }
  const rankingLoss = sumRe / numPos;
  return { loss: rankingLoss, rankingLoss, sortingLoss: 0 };
}
