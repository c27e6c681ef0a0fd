/**
 * The ranking losses as autograd ops on tensors (GPU, native or CPU backend): Rank & Sort,
 * bucketed Rank & Sort, AP (official interpolated form) and bucketed AP. Each computes its loss
 * values and error-driven gradient in one forward pass of kernels with no readback; `backward`
 * scales the stored gradient by the upstream gradient of the ranking output. On the native
 * backend the bucketed losses run the fast array functions of `losses/fast` on the tensors'
 * memory instead of the kernels (same outputs; see `native_losses.ts`).
 *
 * @module
 */

import type { Tensor } from "../../tensor/tensor.ts";
import { alrpOp, rankingOp, type RankingOpOptions } from "./core.ts";

/** Outputs of the Rank & Sort family. */
export interface RankSortOutputs {
  /** Mean ranking error over the positives, `[]`. Its upstream gradient scales the gradient. */
  rankingLoss: Tensor;
  /**
   * Mean sorting error over the positives, `[]`; its upstream gradient is ignored
   * (docs/departures.md, Q10).
   */
  sortingLoss: Tensor;
}

/** Output of the AP family. */
export interface ApOutputs {
  /** `1 - AP`, `[]`. */
  loss: Tensor;
}

/**
 * Rank & Sort loss (official unbucketed `RankSort`) as an autograd op. Inputs are 1-D `f32`
 * tensors of equal length `M` (detectors flatten `[numPred, C]`): targets `> 0` are positives
 * with their IoU, 0 negatives, `< 0` ignored. Cost `O(M log P + P log² P)`: negatives are binned
 * between the knees `p ± δ` of the positives, so no `P x M` work.
 *
 * The gradient stored in the forward pass is that of `rankingLoss + sortingLoss`; backward scales
 * it by the upstream gradient of `rankingLoss` only (official behaviour; docs/departures.md, Q10),
 * so train on `rankingLoss + sortingLoss` with equal weights. No positive: both losses 0 and a zero
 * gradient.
 *
 * @example Vector V2 (docs/departures.md) on the CPU backend
 * ```ts
 * import { rankSort } from "./ranking_ops.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * import { backward } from "../../tensor/autograd.ts";
 *
 * const logits = tensor([1.8, 1.1, 1.0], undefined, { requiresGrad: true });
 * const { rankingLoss } = rankSort(logits, tensor([0, 0, 1]));
 * console.log((await rankingLoss.data())[0]); // ≈ 0.761905
 * backward(rankingLoss);
 * console.log(await logits.grad!.data()); // ≈ [0.476190, 0.285714, -0.761905]
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`.
 * @param options `delta` (default 0.5), `maxPositives`.
 * @returns Scalar `rankingLoss` and `sortingLoss`.
 */
export function rankSort(
  logits: Tensor,
  targets: Tensor,
  options: RankingOpOptions = {},
): RankSortOutputs {
  const [rankingLoss, sortingLoss] = rankingOp("rs", options)(logits, targets);
  return { rankingLoss, sortingLoss };
}

/**
 * Bucketed Rank & Sort loss (official `BucketedRankSort`) as an autograd op, at its real
 * complexity: the `P` positives are sorted, each relevant negative finds its bucket (number of
 * positives scoring at or above it) by binary search, buckets keep a count and an exact
 * fixed-point sum, prototypes are their means; the sums over positives and buckets are prefix
 * lookups and merge-sort levels. Time `O(M log P + P log² P)`, memory `O(M + P)`. Same outputs
 * and backward rule as {@linkcode rankSort}.
 *
 * @example Vector V1 (docs/departures.md) at δ = 0.5
 * ```ts
 * import { bucketedRankSort } from "./ranking_ops.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 *
 * const s = tensor([2.0, 1.2, 0.9, 0.5, 0.3, -0.1, -0.4, -1.5, 1.0, 0.1]);
 * const y = tensor([0.3, 0, 0.6, 0, 0.9, 0, 0, 0, 0, -1]);
 * const { rankingLoss, sortingLoss } = bucketedRankSort(s, y);
 * console.log((await rankingLoss.data())[0], (await sortingLoss.data())[0]); // ≈ 0.342767 0.186667
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`: IoU `(0, 1]` positives, 0 negatives, `< 0` ignored.
 * @param options `delta` (default 0.5), `maxPositives`.
 * @returns Scalar `rankingLoss` and `sortingLoss`.
 */
export function bucketedRankSort(
  logits: Tensor,
  targets: Tensor,
  options: RankingOpOptions = {},
): RankSortOutputs {
  const [rankingLoss, sortingLoss] = rankingOp("brs", options)(logits, targets);
  return { rankingLoss, sortingLoss };
}

/**
 * AP loss (official interpolated `APLoss`) as an autograd op: positives are targets equal to 1,
 * negatives 0, anything else ignored. `δ = 0` is the unit step with `H(0) = 1` (the official
 * code gives NaN at ties there). Cost `O(M log P + P log² P)`.
 *
 * @example Vector V5 (docs/departures.md) at δ = 1
 * ```ts
 * import { apLoss } from "./ranking_ops.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 *
 * const s = tensor([2.0, 1.2, 0.9, 0.5, 0.3, -0.1, -0.4, -1.5, 1.0, 0.1]);
 * const y = tensor([1, 0, 1, 0, 1, 0, 0, 0, 0, -1]);
 * console.log((await apLoss(s, y).loss.data())[0]); // ≈ 0.333580
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`.
 * @param options `delta` (default 1), `maxPositives`.
 * @returns Scalar `loss`; backward scales the stored gradient by its upstream gradient.
 */
export function apLoss(logits: Tensor, targets: Tensor, options: RankingOpOptions = {}): ApOutputs {
  const [loss, unused] = rankingOp("ap", options)(logits, targets);
  unused.dispose();
  return { loss };
}

/**
 * Bucketed AP loss (official `BucketedAPLoss`, non-interpolated, positives `target > 0`) as an
 * autograd op, bucketed as {@linkcode bucketedRankSort}. No positive or no relevant negative:
 * loss 0 and a zero gradient (the official code crashes there).
 *
 * @example Vector V5 (docs/departures.md) at δ = 1
 * ```ts
 * import { bucketedAp } from "./ranking_ops.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 *
 * const s = tensor([2.0, 1.2, 0.9, 0.5, 0.3, -0.1, -0.4, -1.5, 1.0, 0.1]);
 * const y = tensor([1, 0, 1, 0, 1, 0, 0, 0, 0, -1]);
 * console.log((await bucketedAp(s, y).loss.data())[0]); // ≈ 0.396272
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`.
 * @param options `delta` (default 1), `maxPositives`.
 * @returns Scalar `loss`.
 */
export function bucketedAp(
  logits: Tensor,
  targets: Tensor,
  options: RankingOpOptions = {},
): ApOutputs {
  const [loss, unused] = rankingOp("bap", options)(logits, targets);
  unused.dispose();
  return { loss };
}

/** Outputs of {@linkcode alrp}. */
export interface AlrpOutputs {
  /** Classification part `1 - mean precision`, `[]`; its upstream scales the stored gradient. */
  classificationLoss: Tensor;
  /** Localisation part, `[]`: differentiable with respect to the regression errors. */
  localisationLoss: Tensor;
}

/**
 * aLRP loss (official `aLRPLoss` classification part plus the heads' localisation part) as an
 * autograd op. Positives are targets equal to 1, negatives 0; `regressionErrors` holds one
 * localisation error per positive in flat-index order (length `P`; when it does not match the
 * data's `P` the losses are NaN). `classificationLoss` carries the error-driven gradient to the
 * logits; `localisationLoss` (running sums of the errors in descending-logit order over the
 * detached ranks, averaged) back-propagates to `regressionErrors`. Their sum is the aLRP loss;
 * the official heads reweight the localisation part (self-balance), which is left to the caller.
 *
 * @example One positive, one negative above it
 * ```ts
 * import { alrp } from "./ranking_ops.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 *
 * const out = alrp(tensor([2.0, 0.5, 1.0, -1.0]), tensor([0, 0, 1, 0]), tensor([0.3]));
 * console.log((await out.classificationLoss.data())[0]); // ≈ 0.555556
 * ```
 *
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`: 1 positive, 0 negative, anything else ignored.
 * @param regressionErrors Localisation errors `[P]`, positives in flat-index order.
 * @param options `delta` (default 1), `maxPositives`.
 * @returns Scalar `classificationLoss` and `localisationLoss`.
 */
export function alrp(
  logits: Tensor,
  targets: Tensor,
  regressionErrors: Tensor,
  options: RankingOpOptions = {},
): AlrpOutputs {
  const [classificationLoss, localisationLoss] = alrpOp(options)(logits, targets, regressionErrors);
  return { classificationLoss, localisationLoss };
}
