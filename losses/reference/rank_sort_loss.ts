/**
 * Reference Rank & Sort loss (Oksuz et al., ICCV 2021), O(|P| * M).
 *
 * @module
 */

import {
  emptyResult,
  type RankingLossOptions,
  type RankingLossResult,
  smoothStep,
  validateRankingInputs,
} from "./common.ts";

/**
 * Rank & Sort loss of Oksuz et al. (ICCV 2021), as the official unbucketed `RankSort`
 * computes it, in float64 on plain arrays.
 *
 * For every positive `i` (target `y_i > 0`, its IoU) with `H` the smoothed step:
 * `rank+(i) = Σ_{j∈P} H(s_j - s_i)` (self included), `NFP(i) = Σ_{n relevant} H(s_n - s_i)`,
 * ranking error `RE = NFP / (rank+ + NFP)`, sorting error
 * `SE = Σ_j H(s_j-s_i)(1-y_j)/rank+ - Σ_{y_j>=y_i} H(s_j-s_i)(1-y_j) / Σ_{y_j>=y_i} H(s_j-s_i)`.
 * Relevant negatives are those with `s >= min positive logit - δ`. Gradients are the
 * error-driven ones of the Rank & Sort paper (ranking update when `NFP > 1e-10`, sorting update
 * when the mis-sorted mass `D > 1e-10`; docs/departures.md, Q11), divided by `|P|`.
 *
 * Divergences from the official code: none for valid inputs; the third argument is really `δ`
 * (official `RankSort` takes `loss_weight` there, docs/departures.md, Q1). No positive: zero
 * losses and a zero gradient, as the official code.
 *
 * @example Vector V2 (docs/departures.md), one positive below two negatives
 * ```ts
 * import { rankSortLoss } from "./rank_sort_loss.ts";
 * import assert from "node:assert/strict";
 *
 * const r = rankSortLoss([1.8, 1.1, 1.0], [0, 0, 1]);
 * assert.ok(Math.abs(r.rankingLoss - 1.6 / 2.1) < 1e-12);
 * assert.equal(r.sortingLoss, 0);
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`: IoU in `(0, 1]` for positives, 0 negatives, `< 0` ignored.
 * @param options `delta` (default 0.5).
 * @returns Ranking and sorting losses and the gradient `[M]` (upstream gradient 1).
 */
export function rankSortLoss(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  options: RankingLossOptions = {},
): RankingLossResult {
  const delta = validateRankingInputs("rankSortLoss", logits, targets, options.delta ?? 0.5);
  const m = logits.length;
  const pos: number[] = [];
  for (let i = 0; i < m; i++) if (targets[i] > 0) pos.push(i);
  const numPos = pos.length;
  if (numPos === 0) return emptyResult(m);
  let minPos = Infinity;
  for (const i of pos) minPos = Math.min(minPos, logits[i]);
  const threshold = minPos - delta;
  const neg: number[] = [];
  for (let i = 0; i < m; i++) if (targets[i] === 0 && logits[i] >= threshold) neg.push(i);

  const grad = new Float64Array(m);
  const fp = new Float64Array(numPos);
  const fn = new Float64Array(neg.length);
  let sumRe = 0;
  let sumSe = 0;
  for (let a = 0; a < numPos; a++) {
    const i = pos[a];
    const si = logits[i];
    const yi = targets[i];
    let rankPos = 0;
    for (let b = 0; b < numPos; b++) {
      fp[b] = smoothStep(logits[pos[b]] - si, delta);
      rankPos += fp[b];
    }
    let nfp = 0;
    for (let c = 0; c < neg.length; c++) {
      fn[c] = smoothStep(logits[neg[c]] - si, delta);
      nfp += fn[c];
    }
    // Ranking: RE(i) = NFP / rank, blamed on negatives in proportion to H.
    const re = nfp / (rankPos + nfp);
    sumRe += re;
    if (nfp > 1e-10) {
      grad[i] -= re;
      for (let c = 0; c < neg.length; c++) grad[neg[c]] += (re * fn[c]) / nfp;
    }
    // Sorting: current minus target mean "badness" (1 - y) of the positives above i.
    let current = 0;
    let targetNum = 0;
    let targetDen = 0;
    let missorted = 0;
    for (let b = 0; b < numPos; b++) {
      const yj = targets[pos[b]];
      current += fp[b] * (1 - yj);
      if (yj >= yi) {
        targetNum += fp[b] * (1 - yj);
        targetDen += fp[b];
      } else {
        missorted += fp[b];
      }
    }
    const se = current / rankPos - targetNum / targetDen;
    sumSe += se;
    if (missorted > 1e-10) {
      grad[i] -= se;
      for (let b = 0; b < numPos; b++) {
        if (targets[pos[b]] < yi) grad[pos[b]] += (se * fp[b]) / missorted;
      }
    }
  }
  for (let i = 0; i < m; i++) grad[i] /= numPos;
  const rankingLoss = sumRe / numPos;
  const sortingLoss = sumSe / numPos;
  return { loss: rankingLoss + sortingLoss, rankingLoss, sortingLoss, grad };
}
