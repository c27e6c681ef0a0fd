/**
 * Elementwise regression losses: L1 and smooth L1 (Huber with threshold
 * `beta`, PyTorch / mmdetection semantics), one fused kernel each way.
 *
 * @module
 */

import type { Tensor } from "../../tensor/tensor.ts";
import { neg } from "../../tensor/ops/elementwise.ts";
import { checkPointwiseInputs, pointwiseLoss, type ReduceOptions, wgslFloat } from "./common.ts";

/** Options of {@linkcode l1Loss}. */
export type L1LossOptions = ReduceOptions;

/** Options of {@linkcode smoothL1Loss}. */
export interface SmoothL1LossOptions extends ReduceOptions {
  /** Where the quadratic part ends; `>= 0`, default `1` (`0` is plain L1). */
  beta?: number;
}

/**
 * `|pred - target|`, weighted and reduced. Gradients to both inputs.
 *
 * @example
 * ```ts
 * import { l1Loss } from "./regression.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * console.log(await l1Loss(tensor([1, 2, 3]), tensor([1, 0, 4])).data()); // Float32Array [1]
 * ```
 *
 * @param pred Float tensor.
 * @param target Same shape and type.
 * @param options Weight, reduction, `avgFactor`.
 * @returns `pred`'s shape for `"none"`, else a scalar.
 */
export function l1Loss(pred: Tensor, target: Tensor, options: L1LossOptions = {}): Tensor {
  const op = "l1Loss";
  const reduction = checkPointwiseInputs(op, pred, target, ["pred", "target"], options);
  return pointwiseLoss(
    op,
    {
      forward: { label: "l1", wgsl: "c * abs(a - b)", cpu: (a, b, c) => c * Math.abs(a - b) },
      backward: {
        label: "l1_grad",
        wgsl: "a * sign(b - c)",
        cpu: (a, b, c) => a * Math.sign(b - c),
      },
      targetGrad: (gx) => neg(gx),
    },
    pred,
    target,
    options,
    reduction,
  );
}

/**
 * Smooth L1: `0.5 d^2 / beta` where `d = |pred - target| < beta`, else
 * `d - 0.5 beta`; weighted and reduced. Gradients to both inputs.
 *
 * @example
 * ```ts
 * import { smoothL1Loss } from "./regression.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * const loss = smoothL1Loss(tensor([0.5, 3]), tensor([0, 0]), { beta: 1, reduction: "none" });
 * console.log(await loss.data()); // Float32Array [0.125, 2.5]
 * ```
 *
 * @param pred Float tensor.
 * @param target Same shape and type.
 * @param options `beta`, weight, reduction, `avgFactor`.
 * @returns `pred`'s shape for `"none"`, else a scalar.
 */
export function smoothL1Loss(
  pred: Tensor,
  target: Tensor,
  options: SmoothL1LossOptions = {},
): Tensor {
  const op = "smoothL1Loss";
  const beta = options.beta ?? 1;
  if (!(beta >= 0)) throw new RangeError(`${op}: beta ${beta} is negative`);
  const reduction = checkPointwiseInputs(op, pred, target, ["pred", "target"], options);
  const b = wgslFloat(op, "beta", beta);
  return pointwiseLoss(
    op,
    {
      forward: {
        label: "smooth_l1",
        wgsl:
          `c * select(abs(a - b) - 0.5 * ${b}, 0.5 * (a - b) * (a - b) / ${b}, abs(a - b) < ${b})`,
        cpu: (x, t, w) => {
          const d = Math.abs(x - t);
          return w * (d < beta ? 0.5 * d * d / beta : d - 0.5 * beta);
        },
      },
      backward: {
        label: "smooth_l1_grad",
        wgsl: `a * select(sign(b - c), (b - c) / ${b}, abs(b - c) < ${b})`,
        cpu: (g, x, t) => g * (Math.abs(x - t) < beta ? (x - t) / beta : Math.sign(x - t)),
      },
      targetGrad: (gx) => neg(gx),
    },
    pred,
    target,
    options,
    reduction,
  );
}
