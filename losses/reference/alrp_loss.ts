/**
 * Reference aLRP loss, classification part as the official `aLRPLoss` (Oksuz et al., NeurIPS 2020).
 *
 * @module
 */

import {
  type RankingLossOptions,
  type RankingLossResult,
  smoothStep,
  validateRankingInputs,
} from "./common.ts";

/** Result of {@linkcode alrpLoss}: the classification part plus aLRP's extras. */
export interface AlrpLossResult extends RankingLossResult {
  /** `rank(i) = rank+(i) + NFP(i)` per positive, in flat-index order of the positives. */
  rank: Float64Array;
  /**
   * Official localisation part: the positives' regression errors ordered by descending logit,
   * running sums divided by `rank` in the same order, averaged. Not included in `loss`.
   */
  localisationLoss: number;
  /** Gradient of `localisationLoss` with respect to each regression error (rank held fixed). */
  regressionGrad: Float64Array;
}

/**
 * aLRP loss of Oksuz et al. (NeurIPS 2020) as the official `aLRPLoss` computes its
 * classification part, in float64 on plain arrays.
 *
 * Positives are targets equal to 1, negatives 0 with logit `>= min positive logit - δ`,
 * `< 0` ignored; `regressionErrors[k]` is the localisation error `e` of the `k`-th positive in
 * flat-index order. For positive `i`: `rank+ = 1 + Σ_{k≠i} H(s_k - s_i)`,
 * `NFP = Σ_n H(s_n - s_i)`, `rank = rank+ + NFP`, `prec = rank+ / rank`. When `NFP > 1e-5`
 * the positive gets `-(Σ_{k≠i} H(s_k - s_i) e_k + NFP) / rank` and each negative the same
 * amount times `H(s_n - s_i) / NFP`. Gradients are divided by `|P|`.
 * `loss = rankingLoss = 1 - mean prec` (the official return value); the localisation part is
 * returned separately as `localisationLoss` (the aLRP total is their sum).
 *
 * Divergences (documented): no positive returns zeros (the official code fails on an empty
 * `min`); `δ = 0` is the unit step with `H(0) = 1` (official divides by zero).
 *
 * @example One positive, one negative above it
 * ```ts
 * import { alrpLoss } from "./alrp_loss.ts";
 * import assert from "node:assert/strict";
 *
 * const r = alrpLoss([2.0, 0.5, 1.0, -1.0], [0, 0, 1, 0], [0.3]);
 * assert.ok(Math.abs(r.loss - 1.25 / 2.25) < 1e-12);
 * assert.deepEqual(Array.from(r.rank), [2.25]);
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`: 1 positive, 0 negative, `< 0` ignored.
 * @param regressionErrors One finite localisation error per positive, in flat-index order.
 * @param options `delta` (default 1).
 * @returns Classification loss, gradient `[M]`, per-positive rank and the localisation part.
 */
export function alrpLoss(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  regressionErrors: ArrayLike<number>,
  options: RankingLossOptions = {},
): AlrpLossResult {
  const delta = validateRankingInputs("alrpLoss", logits, targets, options.delta ?? 1);
  const m = logits.length;
  const pos: number[] = [];
  for (let i = 0; i < m; i++) if (targets[i] === 1) pos.push(i);
  const numPos = pos.length;
  if (regressionErrors == null || regressionErrors.length !== numPos) {
    throw new TypeError(
      `Cannot compute alrpLoss: regressionErrors has length ${regressionErrors?.length} but there are ${numPos} positives`,
    );
  }
  for (let k = 0; k < numPos; k++) {
    if (!Number.isFinite(regressionErrors[k])) {
      throw new RangeError(
        `Cannot compute alrpLoss: regression error ${k} is ${
          regressionErrors[k]
        }, expected a finite number`,
      );
    }
  }
  const grad = new Float64Array(m);
  const rank = new Float64Array(numPos);
  const regressionGrad = new Float64Array(numPos);
  if (numPos === 0) {
    return {
      loss: 0,
      rankingLoss: 0,
      sortingLoss: 0,
      grad,
      rank,
      localisationLoss: 0,
      regressionGrad,
    };
  }
  let minPos = Infinity;
  for (const i of pos) minPos = Math.min(minPos, logits[i]);
  const threshold = minPos - delta;
  const neg: number[] = [];
  for (let i = 0; i < m; i++) if (targets[i] === 0 && logits[i] >= threshold) neg.push(i);

  const fn = new Float64Array(neg.length);
  let sumPrec = 0;
  for (let a = 0; a < numPos; a++) {
    const i = pos[a];
    const si = logits[i];
    let rankPos = 1;
    let locAbove = 0;
    for (let b = 0; b < numPos; b++) {
      if (b === a) continue;
      const h = smoothStep(logits[pos[b]] - si, delta);
      rankPos += h;
      locAbove += h * regressionErrors[b];
    }
    let nfp = 0;
    for (let c = 0; c < neg.length; c++) {
      fn[c] = smoothStep(logits[neg[c]] - si, delta);
      nfp += fn[c];
    }
    rank[a] = rankPos + nfp;
    sumPrec += rankPos / rank[a];
    if (nfp > 1e-5) {
      const err = (locAbove + nfp) / rank[a];
      grad[i] -= err;
      for (let c = 0; c < neg.length; c++) grad[neg[c]] += (err * fn[c]) / nfp;
    }
  }
  for (let i = 0; i < m; i++) grad[i] /= numPos;

  // Localisation part: hard order by descending logit (ties: lower index first).
  const order = Array.from({ length: numPos }, (_, k) => k);
  order.sort((a, b) => logits[pos[b]] - logits[pos[a]] || a - b);
  let running = 0;
  let localisation = 0;
  for (const k of order) {
    running += regressionErrors[k];
    localisation += running / rank[k];
  }
  // d/de_k: every positive at or below k in the order divides e_k by its own rank.
  let tail = 0;
  for (let r = numPos - 1; r >= 0; r--) {
    tail += 1 / rank[order[r]];
    regressionGrad[order[r]] = tail / numPos;
  }
  const rankingLoss = 1 - sumPrec / numPos;
  return {
    loss: rankingLoss,
    rankingLoss,
    sortingLoss: 0,
    grad,
    rank,
    localisationLoss: localisation / numPos,
    regressionGrad,
  };
}
