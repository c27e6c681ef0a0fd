/**
 * Dice loss of the rank-based Mask R-CNN mask head (the official
 * `RankBasedFCNMaskHead`, method spec §10.6): per RoI, `1 - 2 Σ p t / (Σ p² + Σ t² + 1e-5)`
 * with `p = sigmoid(logits)`. Composed of differentiable tensor ops, so it
 * runs, with gradients, on every backend.
 *
 * @module
 */

import { add, div, mul, sigmoid, sub } from "../../tensor/ops/elementwise.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { checkPair } from "./common.ts";

/** The constant added to the Dice denominator (the official mask head's `eps`). */
export const DICE_EPS = 1e-5;

/**
 * Dice loss per row of mask logits against targets (the official
 * `RankBasedFCNMaskHead`): `1 - 2 Σ p t / (Σ p² + Σ t² + 1e-5)` over each
 * row, `p = sigmoid(logits)`. Gradients flow to `logits` (and to `targets`
 * when they require one). Reduce it with `scoreWeightedMean` for the mask
 * head's score-weighted average. A NaN in a row gives a NaN loss for that
 * row (nothing is read back to check).
 *
 * @example
 * ```ts
 * import { diceLoss } from "./dice_loss.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * const logits = tensor([[20, -20, 0], [-20, -20, -20]]);
 * const targets = tensor([[1, 0, 1], [0, 0, 0]]);
 * console.log(await diceLoss(logits, targets).data());
 * // Float32Array [0.0769..., 1]  (1 - 2 * 1.5 / (1.25 + 2 + 1e-5); no overlap: 1)
 * ```
 *
 * @param logits Mask logits `[K, S]` (e.g. `S = 28 * 28`, the GT class's channel).
 * @param targets Targets `[K, S]` in `[0, 1]` (e.g. `maskTargets`), same type.
 * @returns Losses `[K]`.
 * @throws {TypeError} When the inputs are not float `[K, S]` tensors of one shape, type and backend.
 */
export function diceLoss(logits: Tensor, targets: Tensor): Tensor {
  const op = "diceLoss";
  checkPair(op, logits, targets, ["logits", "targets"]);
  if (logits.rank !== 2) {
    throw new TypeError(
      `${op}: logits must have shape [K, S] but got [${logits.shape.join(", ")}]`,
    );
  }
  // `p`, `denominator` and `ratio` stay alive: the backward rules of sigmoid, mul and div read them.
  const p = sigmoid(logits);
  const pt = mul(p, targets);
  const overlap = sum(pt, 1);
  pt.dispose();
  const pp = mul(p, p), tt = mul(targets, targets);
  const squares = add(pp, tt);
  pp.dispose();
  tt.dispose();
  const squareSum = sum(squares, 1);
  squares.dispose();
  const denominator = add(squareSum, DICE_EPS);
  squareSum.dispose();
  const twice = mul(overlap, 2);
  overlap.dispose();
  const ratio = div(twice, denominator);
  twice.dispose();
  return sub(1, ratio);
}
