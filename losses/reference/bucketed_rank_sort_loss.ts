/**
 * Reference bucketed Rank & Sort loss (BRS), the paper's algorithm.
 *
 * @module
 */

import {
  emptyResult,
  type RankingLossOptions,
  type RankingLossResult,
  smoothStep,
  sortAndBucket,
  validateRankingInputs,
} from "./common.ts";

/**
 * Bucketed Rank & Sort loss (Yavuz et al., ECCV 2024) as the official `BucketedRankSort`
 * computes it, in float64 on plain arrays, following the paper's algorithm: sort, bucket the
 * runs of relevant negatives between consecutive positives ({@linkcode sortAndBucket}),
 * replace each run by its mean `m_k` and size `b_k`, then for every positive `i`
 * `NFP_b(i) = Σ_k b_k H(m_k - s_i)`, `RE = NFP_b / (rank+ + NFP_b)` (`rank+` includes the
 * self term `H(0)`), the sorting error exactly as Rank & Sort. Every member of bucket `k` gets
 * `u_k / |P|` with `u_k = Σ_i H(m_k - s_i) RE(i) / NFP_b(i)`; positive `i` gets
 * `(-RE(i) - SE(i)[D(i) ≠ 0] + Σ_k H(s_i - s_k)[y_i < y_k] SE(k) / D(k)) / |P|`.
 *
 * Pairwise work is `O(|P| (|P| + B))` after an `O(M log M)` sort. At `δ = 0` and without ties
 * between a positive and a negative, it equals {@linkcode rankSortLoss} exactly (Theorem 4.1).
 *
 * Divergences from the official code (docs/departures.md, Q12): every bucket is kept (the official
 * re-check of the means against the threshold can drop a bucket through rounding and crash);
 * the mean is clamped into its run's range. No relevant negative: `rankingLoss = 0`, sorting
 * part only (as official). No positive: zeros.
 *
 * @example Vector V1 (docs/departures.md) at δ = 0: equal to Rank & Sort
 * ```ts
 * import { bucketedRankSortLoss } from "./bucketed_rank_sort_loss.ts";
 * import assert from "node:assert/strict";
 *
 * const s = [2.0, 1.2, 0.9, 0.5, 0.3, -0.1, -0.4, -1.5, 1.0, 0.1];
 * const y = [0.3, 0, 0.6, 0, 0.9, 0, 0, 0, 0, -1];
 * const r = bucketedRankSortLoss(s, y, { delta: 0 });
 * assert.ok(Math.abs(r.rankingLoss - 1 / 3) < 1e-12);
 * assert.ok(Math.abs(r.sortingLoss - 0.15) < 1e-12);
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`: IoU in `(0, 1]` for positives, 0 negatives, `< 0` ignored.
 * @param options `delta` (default 0.5).
 * @returns Ranking and sorting losses and the gradient `[M]` (upstream gradient 1).
 */
export function bucketedRankSortLoss(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  options: RankingLossOptions = {},
): RankingLossResult {
  const delta = validateRankingInputs(
    "bucketedRankSortLoss",
    logits,
    targets,
    options.delta ?? 0.5,
  );
  const m = logits.length;
  const { positives, buckets } = sortAndBucket(logits, targets, delta);
  const numPos = positives.length;
  if (numPos === 0) return emptyResult(m);
  const ps = positives.map((i) => logits[i]);
  const py = positives.map((i) => targets[i]);
  // f(j, i) = H(s_j - s_i): positive j at or above positive i.
  const f = (j: number, i: number) => smoothStep(ps[j] - ps[i], delta);

  // Ranking part over buckets (prototype m_k, size b_k).
  const re = new Float64Array(numPos);
  const nfpSafe = new Float64Array(numPos);
  const rankPos = new Float64Array(numPos);
  for (let i = 0; i < numPos; i++) {
    for (let j = 0; j < numPos; j++) rankPos[i] += f(j, i);
    let nfp = 0;
    for (const b of buckets) nfp += b.members.length * smoothStep(b.mean - ps[i], delta);
    re[i] = buckets.length === 0 ? 0 : nfp / (rankPos[i] + nfp);
    nfpSafe[i] = nfp === 0 ? 1 : nfp;
  }

  // Sorting part (positives only; never bucketed).
  const se = new Float64Array(numPos);
  const missorted = new Float64Array(numPos);
  for (let i = 0; i < numPos; i++) {
    let current = 0;
    let targetNum = 0;
    let targetDen = 0;
    for (let j = 0; j < numPos; j++) {
      const h = f(j, i);
      current += h * (1 - py[j]);
      if (py[j] >= py[i]) {
        targetNum += h * (1 - py[j]);
        targetDen += h;
      } else {
        missorted[i] += h;
      }
    }
    se[i] = current / rankPos[i] - targetNum / targetDen;
  }

  const grad = new Float64Array(m);
  for (const b of buckets) {
    let u = 0;
    for (let i = 0; i < numPos; i++) u += (smoothStep(b.mean - ps[i], delta) * re[i]) / nfpSafe[i];
    for (const n of b.members) grad[n] = u / numPos;
  }
  let sumRe = 0;
  let sumSe = 0;
  for (let i = 0; i < numPos; i++) {
    let g = -re[i] - (missorted[i] !== 0 ? se[i] : 0);
    for (let k = 0; k < numPos; k++) {
      if (py[i] < py[k] && missorted[k] !== 0) g += (f(i, k) * se[k]) / missorted[k];
    }
    grad[positives[i]] = g / numPos;
    sumRe += re[i];
    sumSe += se[i];
  }
  const rankingLoss = sumRe / numPos;
  const sortingLoss = sumSe / numPos;
  return { loss: rankingLoss + sortingLoss, rankingLoss, sortingLoss, grad };
}
