/**
 * Helpers of the Rank & Sort recipe (docs/departures.md, R1, Q16, Q17):
 * score weights of the positives, the score-weighted average of their box
 * losses, and self-balance of an auxiliary loss against the ranking loss.
 * Everything stays on the device (no readbacks).
 *
 * @module
 */

import { detach, noGrad } from "../../tensor/autograd.ts";
import { add, div, map, mul, sigmoid } from "../../tensor/ops/elementwise.ts";
import { expectDtype } from "../../tensor/ops/launch.ts";
import { max, sum } from "../../tensor/ops/reduce.ts";
import { type Tensor, viewOf } from "../../tensor/tensor.ts";
import { oneHot } from "./cross_entropy.ts";

/**
 * Score weights of positive predictions, detached: `w_i = max_c
 * sigmoid(s_ic)` (the official heads, docs/departures.md, Q16), or, with
 * `labels`, the score of each positive's target class
 * `sigmoid(s_i,labels[i])`.
 *
 * @example
 * ```ts
 * import { scoreWeights } from "./balance.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * console.log(await scoreWeights(tensor([[0, 2], [-1, -3]])).data());
 * // Float32Array [0.8808..., 0.2689...]
 * ```
 *
 * @param logits Logits of the positives `[P, C]`.
 * @param labels Optional `i32` target classes `[P]`.
 * @returns Weights `[P]`, without gradient.
 */
export function scoreWeights(logits: Tensor, labels?: Tensor): Tensor {
  const op = "scoreWeights";
  expectDtype(op, logits, ["f32", "f64"]);
  if (logits.rank !== 2) {
    throw new TypeError(
      `${op}: logits must have shape [P, C] but got [${logits.shape.join(", ")}]`,
    );
  }
  return noGrad(() => {
    if (!labels) {
      if (logits.shape[1] === 0) {
        throw new TypeError(`${op}: logits [${logits.shape.join(", ")}] have no class`);
      }
      const best = max(logits, 1);
      const out = sigmoid(best);
      best.dispose();
      return out;
    }
    expectDtype(op, labels, ["i32"]);
    if (labels.rank !== 1 || labels.shape[0] !== logits.shape[0]) {
      throw new TypeError(
        `${op}: labels [${labels.shape.join(", ")}] do not match logits [${
          logits.shape.join(", ")
        }]`,
      );
    }
    const mask = oneHot(labels, logits.shape[1], logits.dtype === "f64" ? "f64" : "f32");
    const picked = map({
      label: "score_pick",
      wgsl: "b * select(exp(a) / (1.0 + exp(a)), 1.0 / (1.0 + exp(-a)), a >= 0.0)",
      cpu: (a, b) => b * (a >= 0 ? 1 / (1 + Math.exp(-a)) : Math.exp(a) / (1 + Math.exp(a))),
    }, [logits, mask]);
    mask.dispose();
    const out = sum(picked, 1);
    picked.dispose();
    return out;
  });
}

/** Options of {@linkcode scoreWeightedMean}. */
export interface ScoreWeightedMeanOptions {
  /** When `sum(weights) < eps` the sum is divided by 1 instead; default `1e-12`. */
  eps?: number;
}

/**
 * Score-weighted average of per-positive losses (docs/departures.md, R1,
 * step 4): `sum_i w_i l_i / sum_i w_i`, with `w` detached and the denominator
 * replaced by 1 when below `eps` (the official heads' fallback). The
 * gradient flows to `losses` only.
 *
 * @example
 * ```ts
 * import { scoreWeightedMean } from "./balance.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * const loss = scoreWeightedMean(tensor([1, 3]), tensor([0.75, 0.25]));
 * console.log(await loss.data()); // Float32Array [1.5]
 * ```
 *
 * @param losses Per-positive losses `[P]` (e.g. `giouLoss(..., { reduction: "none" })`).
 * @param weights Weights `[P]` (e.g. {@linkcode scoreWeights}).
 * @param options `eps`.
 * @returns A scalar.
 */
export function scoreWeightedMean(
  losses: Tensor,
  weights: Tensor,
  options: ScoreWeightedMeanOptions = {},
): Tensor {
  const op = "scoreWeightedMean";
  expectDtype(op, losses, ["f32", "f64"]);
  expectDtype(op, weights, [losses.dtype]);
  if (losses.shape.join() !== weights.shape.join() || losses.rank !== weights.rank) {
    throw new TypeError(
      `${op}: losses [${losses.shape.join(", ")}] and weights [${weights.shape.join(", ")}] differ`,
    );
  }
  const eps = options.eps ?? 1e-12;
  const w = detach(weights);
  const denominator = noGrad(() => {
    const total = sum(w);
    const guarded = map({
      label: "avg_factor_guard",
      wgsl: "select(a, 1.0, a < b)",
      cpu: (a, b) => a < b ? 1 : a,
    }, [total, eps]);
    total.dispose();
    return guarded;
  });
  const weighted = mul(losses, w);
  const total = sum(weighted);
  // `w` and `denominator` stay alive: the backward rules of mul and div read them.
  const out = div(total, denominator);
  weighted.dispose();
  total.dispose();
  return out;
}

/** Options of {@linkcode selfBalance}. */
export interface SelfBalanceOptions {
  /**
   * When `loss` is exactly 0, return it unscaled instead of `0 * (ref / 0)`
   * = NaN. The official ATSS/PAA/R-CNN heads have no such guard
   * (docs/departures.md, Q17); the DETR head does. Default `false`.
   */
  zeroGuard?: boolean;
}

/**
 * Self-balance (Rank & Sort paper; docs/departures.md, R1):
 * `loss * detach(reference / loss)`. Its value equals `reference`; its
 * gradient is `(reference / loss) * d loss`, so any configured weight of
 * `loss` cancels. `reference` is `L_rank + L_sort` (a tensor or number; never
 * differentiated).
 *
 * @example
 * ```ts
 * import { selfBalance } from "./balance.ts";
 * import { backward } from "../../tensor/autograd.ts";
 * import { mul } from "../../tensor/ops/elementwise.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * const x = tensor([2], undefined, { requiresGrad: true });
 * const box = mul(x, x); // 4
 * const balanced = selfBalance(box, 0.5);
 * console.log(await balanced.data()); // Float32Array [0.5]
 * backward(balanced);
 * console.log(await x.grad!.data()); // Float32Array [0.5] (= 0.5 / 4 * 2x)
 * ```
 *
 * @param loss A one-element loss with gradient (e.g. the score-weighted GIoU).
 * @param reference The value to match, `L_rank + L_sort`.
 * @param options `zeroGuard`.
 * @returns A one-element tensor of `loss`'s shape.
 */
export function selfBalance(
  loss: Tensor,
  reference: Tensor | number,
  options: SelfBalanceOptions = {},
): Tensor {
  const op = "selfBalance";
  expectDtype(op, loss, ["f32", "f64"]);
  if (loss.size !== 1) {
    throw new TypeError(
      `${op}: loss must have one element but has shape [${loss.shape.join(", ")}]`,
    );
  }
  if (typeof reference !== "number") {
    expectDtype(op, reference, [loss.dtype]);
    if (reference.size !== 1) {
      throw new TypeError(
        `${op}: reference must have one element but has shape [${reference.shape.join(", ")}]`,
      );
    }
  }
  const lambda = noGrad(() => {
    const l = detach(loss);
    const r = typeof reference === "number" ? reference : detach(reference);
    const expr = options.zeroGuard
      ? {
        label: "self_balance_guarded",
        wgsl: "select(b / a, 1.0, a == 0.0)",
        cpu: (a: number, b: number) => a === 0 ? 1 : b / a,
      }
      : { label: "self_balance", wgsl: "b / a", cpu: (a: number, b: number) => b / a };
    const ratio = map(expr, [l, r]);
    const out = viewOf(ratio, loss.shape);
    ratio.dispose();
    l.dispose();
    if (typeof r !== "number") r.dispose();
    return out;
  });
  // `lambda` stays alive: the backward rule of mul reads it.
  return mul(loss, lambda);
}

/** A head's Rank & Sort loss with its self-balanced box loss: the total and its three parts. */
export interface RankSortWithBox {
  /** `(L_rank + L_sort + SB · L_box) · weight`. */
  total: Tensor;
  /** Each term times `weight`; `box` is the self-balanced box loss. */
  parts: { rank: Tensor; sort: Tensor; box: Tensor };
}

/**
 * Combines a ranking op's two losses with a box loss self-balanced to their sum
 * (docs/departures.md, R1), the whole scaled by a head weight (the RPN's 0.2; 1 adds no op), as
 * the ATSS, RPN and RoI heads do.
 *
 * @example
 * ```ts
 * import { rankSortWithBox } from "./balance.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * const { total, parts } = rankSortWithBox(tensor([0.4]), tensor([0.2]), tensor([3]), 0.5);
 * console.log(await total.data(), await parts.box.data()); // Float32Array [0.6] Float32Array [0.3]
 * ```
 *
 * @param rankingLoss `L_rank`, one element.
 * @param sortingLoss `L_sort`, one element.
 * @param boxLoss The head's box loss, one element with gradient.
 * @param weight The head's weight; default 1.
 */
export function rankSortWithBox(
  rankingLoss: Tensor,
  sortingLoss: Tensor,
  boxLoss: Tensor,
  weight = 1,
): RankSortWithBox {
  const ranking = add(rankingLoss, sortingLoss);
  const box = selfBalance(boxLoss, ranking);
  const total = add(ranking, box);
  if (weight === 1) return { total, parts: { rank: rankingLoss, sort: sortingLoss, box } };
  return {
    total: mul(total, weight),
    parts: {
      rank: mul(rankingLoss, weight),
      sort: mul(sortingLoss, weight),
      box: mul(box, weight),
    },
  };
}
