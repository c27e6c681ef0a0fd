/**
 * Reference bucketed AP loss (BAP), the paper's algorithm.
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
 * Bucketed AP loss (Yavuz et al., ECCV 2024) as the official `BucketedAPLoss` computes it, in
 * float64 on plain arrays: the ranking part of {@linkcode bucketedRankSortLoss} alone.
 * Positives are targets `> 0`; for each, `NFP_b(i) = Σ_k b_k H(m_k - s_i)` over the negative
 * buckets, `RE = NFP_b / (rank+ + NFP_b)` with `rank+ = Σ_{j∈P} H(s_j - s_i)` (self term
 * included, docs/departures.md, Q2). Loss `= mean RE` (non-interpolated, unlike
 * {@linkcode apLoss}, Q3); positive `i` gets `-RE(i)/|P|`, every member of bucket `k` gets
 * `Σ_i H(m_k - s_i) RE(i) / NFP_b(i) / |P|`.
 *
 * Divergences from the official code (docs/departures.md, Q6 and Q12): with no positive, or no
 * relevant negative, the result is loss 0 and a zero gradient (the official code crashes in
 * backward or forward); every bucket is kept and its mean clamped into its run's range.
 *
 * @example Vector V5 (docs/departures.md) at δ = 0
 * ```ts
 * import { bucketedApLoss } from "./bucketed_ap_loss.ts";
 * import assert from "node:assert/strict";
 *
 * const s = [2.0, 1.2, 0.9, 0.5, 0.3, -0.1, -0.4, -1.5, 1.0, 0.1];
 * const y = [1, 0, 1, 0, 1, 0, 0, 0, 0, -1];
 * assert.ok(Math.abs(bucketedApLoss(s, y, { delta: 0 }).loss - 1 / 3) < 1e-12);
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`: `> 0` positive (normally 1), 0 negative, `< 0` ignored.
 * @param options `delta` (default 1).
 * @returns `rankingLoss = loss`, `sortingLoss = 0`, and the gradient `[M]`.
 */
export function bucketedApLoss(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  options: RankingLossOptions = {},
): RankingLossResult {
  const delta = validateRankingInputs("bucketedApLoss", logits, targets, options.delta ?? 1);
  const m = logits.length;
  const { positives, buckets } = sortAndBucket(logits, targets, delta);
  const numPos = positives.length;
  if (numPos === 0 || buckets.length === 0) return emptyResult(m);
  const ps = positives.map((i) => logits[i]);

  const re = new Float64Array(numPos);
  const nfpSafe = new Float64Array(numPos);
  for (let i = 0; i < numPos; i++) {
    let rankPos = 0;
    for (let j = 0; j < numPos; j++) rankPos += smoothStep(ps[j] - ps[i], delta);
    let nfp = 0;
    for (const b of buckets) nfp += b.members.length * smoothStep(b.mean - ps[i], delta);
    re[i] = nfp / (rankPos + nfp);
    nfpSafe[i] = nfp === 0 ? 1 : nfp;
  }
  const grad = new Float64Array(m);
  for (const b of buckets) {
    let u = 0;
    for (let i = 0; i < numPos; i++) u += (smoothStep(b.mean - ps[i], delta) * re[i]) / nfpSafe[i];
    for (const n of b.members) grad[n] = u / numPos;
  }
  let sumRe = 0;
  for (let i = 0; i < numPos; i++) {
    grad[positives[i]] = -re[i] / numPos;
    sumRe += re[i];
  }
  const rankingLoss = sumRe / numPos;
  return { loss: rankingLoss, rankingLoss, sortingLoss: 0, grad };
}
