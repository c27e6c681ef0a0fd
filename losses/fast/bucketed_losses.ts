/**
 * Fast CPU bucketed ranking losses (BRS and BAP) on plain arrays, at the real complexity
 * `O(M log P + P log P)` (`O(M + P log P)` when the positives are spread out): the algorithm the
 * GPU version follows. Typed arrays (`Float32Array`, `Float64Array`) are read in place.
 *
 * @module
 */

import {
  emptyResult,
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
}

interface Prepared {
  pos: SortedPositives;
  buckets: NegativeBuckets;
  proto: { id: Int32Array; size: Float64Array; mean: Float64Array };
  pair: PairwiseSums;
  delta: number;
  /** `[M]`, bucket id + 1 at every relevant negative, else 0; becomes the gradient. */
  grad: Float64Array;
}

function isFloatArray(x: unknown): x is Float32Array | Float64Array {
  return x instanceof Float32Array || x instanceof Float64Array;
}

const NO_ENTRIES = new Float64Array(0);

/**
 * Validation, step 1 (sort positives) and step 2 (bucket negatives, prototypes). Typed-array
 * entries are checked during the positives scan (the full validation runs only to report a bad
 * entry); other array-likes are validated up front.
 */
function prepare(
  name: string,
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  options: FastBucketedOptions,
  defaultDelta: number,
): Prepared | null {
  const requested = options.delta ?? defaultDelta;
  const typed = isFloatArray(logits) && isFloatArray(targets) &&
    logits.length === targets.length;
  const delta = typed
    ? validateRankingInputs(name, NO_ENTRIES, NO_ENTRIES, requested)
    : validateRankingInputs(name, logits, targets, requested);
  const { bucketing = "search", pairwise = "prefix" } = options;
  // Step 1: the P positives, sorted by descending logit; threshold t = min positive - δ.
  const pos = sortPositives(logits, targets, delta);
  if (!pos.valid) validateRankingInputs(name, logits, targets, delta); // throws
  if (bucketing !== "search" && bucketing !== "sort") {
    throw new RangeError(`Cannot compute ${name}: unknown bucketing "${bucketing}"`);
  }
  if (pairwise !== "prefix" && pairwise !== "direct") {
    throw new RangeError(`Cannot compute ${name}: unknown pairwise "${pairwise}"`);
  }
  if (pos.index.length === 0) return null;
  // Step 2: each relevant negative joins bucket k = #positives at or above it; counts, sums.
  const grad = new Float64Array(logits.length);
  const buckets = bucketing === "search"
    ? bucketBySearch(logits, targets, pos, grad)
    : bucketBySort(logits, targets, pos, grad);
  const proto = bucketPrototypes(buckets);
  const pair = pairwise === "prefix" ? prefixPairwise : directPairwise;
  return { pos, buckets, proto, pair, delta, grad };
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
 * Step 4, negatives: turns the bucket id + 1 that step 2 left in `grad` into the bucket's
 * `u / |P|` (slot 0, everything else, stays 0), in one branch-free pass.
 */
function scatterNegatives(grad: Float64Array, uById: Float64Array, numPos: number): void {
  const bySlot = new Float64Array(uById.length + 1);
  for (let k = 0; k < uById.length; k++) bySlot[k + 1] = uById[k] / numPos;
  const m = grad.length;
  for (let i = 0; i < m; i++) grad[i] = bySlot[grad[i]];
}

/**
 * Bucketed Rank & Sort loss, fast CPU form: the same function as the reference
 * `bucketedRankSortLoss` (official `BucketedRankSort`) in `O(M log P + P log P)` time and
 * `O(M + P)` memory, for inputs up to `1e7` entries (e.g. `Float32Array`).
 *
 * Steps, three passes over the `M` entries in all: (1) one scan collects the positives (and
 * checks typed-array entries), which are then sorted by descending logit, ties by index;
 * (2) one scan over the entries: each relevant negative (target 0, logit `>= min positive - δ`)
 * finds its bucket, the number of positives scoring at or above it (positives first on ties),
 * with an exact `O(1)` grid lookup, adds to that bucket's count, sum, min and max, and leaves
 * bucket id + 1 in the gradient array; prototypes are the means; (3) per positive `rank+`,
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
  const m = logits?.length;
  const prep = prepare("fastBucketedRankSortLoss", logits, targets, options, 0.5);
  if (prep === null) return emptyResult(m);
  const { pos, pair, delta, grad } = prep;
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
  return { loss: rankingLoss + sortingLoss, rankingLoss, sortingLoss, grad };
}

/**
 * Bucketed AP loss, fast CPU form: the same function as the reference `bucketedApLoss`
 * (official `BucketedAPLoss`, non-interpolated, positives `target > 0`) in
 * `O(M log P + P log P)` time; steps 1–4 of {@linkcode fastBucketedRankSortLoss} without the
 * sorting part. No positive or no relevant negative: loss 0 and a zero gradient (documented
 * divergence; the official code crashes there).
 *
 * @example Spec V5 at δ = 1
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
  const m = logits?.length;
  const prep = prepare("fastBucketedApLoss", logits, targets, options, 1);
  if (prep === null || prep.buckets.relevant === 0) return emptyResult(m);
  const { pos, grad } = prep;
  const numPos = pos.logit.length;
  const { re, uById } = rankingPart(prep);
  scatterNegatives(grad, uById, numPos);
  let sumRe = 0;
  for (let i = 0; i < numPos; i++) {
    grad[pos.index[i]] = -re[i] / numPos;
    sumRe += re[i];
  }
  const rankingLoss = sumRe / numPos;
  return { loss: rankingLoss, rankingLoss, sortingLoss: 0, grad };
}
