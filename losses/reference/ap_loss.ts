/**
 * Reference AP loss, the official interpolated form (docs/departures.md, Q3), O(|P| * M).
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
 * AP loss (Chen et al., CVPR 2019) as the official `APLoss` computes it: `1 - AP` with
 * **interpolated** precision, in float64 on plain arrays.
 *
 * Positives are targets exactly equal to 1 (official rule, docs/departures.md, Q8: targets in
 * `(0, 1)` are treated as ignored), negatives are targets equal to 0 with logit
 * `>= min positive logit - δ`. Positives are visited from the lowest logit up; for each,
 * `rank+ = 1 + Σ_{j∈P, j≠i} H(s_j - s_i)`, `NFP = Σ_n H(s_n - s_i)`,
 * `prec = rank+ / (rank+ + NFP)`, and the running maximum `maxPrec` of the precisions seen so
 * far is the interpolated precision. The positive gets `-(1 - maxPrec)`; each negative gets
 * `H/rank`, scaled by `(1 - maxPrec) / (1 - prec)` when the precision was interpolated. All
 * gradients are divided by `|P|`; the loss is `1 - mean interpolated precision`.
 *
 * Divergence from the official code (docs/departures.md, Q4): at `δ = 0` the official code divides
 * by zero and returns NaN gradients at exact ties; here `δ = 0` is the unit step with `H(0) = 1`,
 * as in the other losses. No positive: loss 0 and a zero gradient (as official).
 *
 * @example Vector V5 (docs/departures.md) at δ = 1
 * ```ts
 * import { apLoss } from "./ap_loss.ts";
 * import assert from "node:assert/strict";
 *
 * const s = [2.0, 1.2, 0.9, 0.5, 0.3, -0.1, -0.4, -1.5, 1.0, 0.1];
 * const y = [1, 0, 1, 0, 1, 0, 0, 0, 0, -1];
 * assert.ok(Math.abs(apLoss(s, y).loss - 0.33358) < 1e-5);
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`: 1 positive, 0 negative, `< 0` ignored.
 * @param options `delta` (default 1).
 * @returns `rankingLoss = loss = 1 - AP`, `sortingLoss = 0`, and the gradient `[M]`.
 */
export function apLoss(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  options: RankingLossOptions = {},
): RankingLossResult {
  const delta = validateRankingInputs("apLoss", logits, targets, options.delta ?? 1);
  const m = logits.length;
  const pos: number[] = [];
  for (let i = 0; i < m; i++) if (targets[i] === 1) pos.push(i);
  const numPos = pos.length;
  if (numPos === 0) return emptyResult(m);
  // Lowest logit first; ties by index (tied positives have equal precision anyway).
  pos.sort((a, b) => logits[a] - logits[b] || a - b);
  const threshold = logits[pos[0]] - delta;
  const neg: number[] = [];
  for (let i = 0; i < m; i++) if (targets[i] === 0 && logits[i] >= threshold) neg.push(i);

  const grad = new Float64Array(m);
  const fn = new Float64Array(neg.length);
  let maxPrec = 0;
  let sumPrec = 0;
  for (const i of pos) {
    const si = logits[i];
    let rankPos = 1;
    for (const j of pos) if (j !== i) rankPos += smoothStep(logits[j] - si, delta);
    let nfp = 0;
    for (let c = 0; c < neg.length; c++) {
      fn[c] = smoothStep(logits[neg[c]] - si, delta);
      nfp += fn[c];
    }
    const rank = rankPos + nfp;
    const prec = rankPos / rank;
    let scale = 1 / rank;
    if (maxPrec <= prec) maxPrec = prec;
    else scale *= (1 - maxPrec) / (1 - prec);
    for (let c = 0; c < neg.length; c++) grad[neg[c]] += fn[c] * scale;
    grad[i] -= 1 - maxPrec;
    sumPrec += maxPrec;
  }
  for (let i = 0; i < m; i++) grad[i] /= numPos;
  const rankingLoss = 1 - sumPrec / numPos;
  return { loss: rankingLoss, rankingLoss, sortingLoss: 0, grad };
}
