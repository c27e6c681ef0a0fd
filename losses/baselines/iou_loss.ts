/**
 * IoU and GIoU losses on row-aligned `xyxy` boxes (mmdetection `IoULoss`,
 * `GIoULoss`): one fused kernel forward (`box.aligned`) plus the reduction,
 * one fused kernel backward (`box.aligned_grad`); gradients to both box
 * tensors.
 *
 * @module
 */

import { noGrad, record } from "../../tensor/autograd.ts";
import { broadcastTo, mul } from "../../tensor/ops/elementwise.ts";
import { sizeOf, type Tensor } from "../../tensor/tensor.ts";
import {
  type AlignedOptions,
  alignedOverlapGrad,
  alignedOverlapRaw,
  checkAlignedBoxes,
} from "../../boxes/box_ops.ts";
import {
  checkAvgFactor,
  checkReduction,
  checkWeight,
  elementGrad,
  type ReduceOptions,
  reduceRaw,
} from "./common.ts";

/** Options of {@linkcode iouLoss}. */
export interface IouLossOptions extends ReduceOptions {
  /** `"log"` (default): `-log(iou)`; `"linear"`: `1 - iou`. */
  mode?: "linear" | "log";
  /** IoUs are clamped from below at `eps` (and unions at `eps`); default `1e-6`. */
  eps?: number;
}

/** Options of {@linkcode giouLoss}. */
export interface GiouLossOptions extends ReduceOptions {
  /** Lower bound of union and enclosing areas; default `1e-6`. */
  eps?: number;
}

function boxLoss(
  op: string,
  pred: Tensor,
  target: Tensor,
  options: ReduceOptions,
  aligned: AlignedOptions,
): Tensor {
  const reduction = checkReduction(op, options.reduction ?? "mean");
  checkAlignedBoxes(op, pred, target);
  const rowShape = pred.shape.slice(0, -1);
  checkWeight(op, options.weight, pred, rowShape);
  checkAvgFactor(op, options, reduction);
  const rows = sizeOf(rowShape);
  const perRow = alignedOverlapRaw(pred, target, aligned);
  let weighted = perRow;
  if (options.weight) {
    weighted = noGrad(() => mul(perRow, options.weight!));
    perRow.dispose();
  }
  const out = reduceRaw(weighted, reduction, options.avgFactor);
  weighted.dispose();
  record(op, [pred, target], [out], ([g]) => {
    let gRow = elementGrad(g!, reduction, rows, options);
    if (gRow.size !== 1 && gRow.size !== rows) {
      const full = broadcastTo(gRow, rowShape);
      gRow.dispose();
      gRow = full;
    }
    const [gp, gt] = alignedOverlapGrad(gRow, pred, target, aligned);
    gRow.dispose();
    if (!pred.requiresGrad) gp.dispose();
    if (!target.requiresGrad) gt.dispose();
    return [pred.requiresGrad ? gp : null, target.requiresGrad ? gt : null];
  });
  return out;
}

/**
 * IoU loss of aligned `xyxy` boxes (mmdetection `iou_loss`): with
 * `iou = max(IoU(pred, target), eps)`, `"log"` gives `-log(iou)` and
 * `"linear"` `1 - iou`; then weighted (`weight` `[N]`) and reduced.
 *
 * @example
 * ```ts
 * import { iouLoss } from "./iou_loss.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * const pred = tensor([[0, 0, 2, 2]]), target = tensor([[1, 1, 3, 3]]);
 * console.log(await iouLoss(pred, target, { mode: "linear" }).data()); // Float32Array [0.8571...]
 * ```
 *
 * @param pred Boxes `[..., 4]`.
 * @param target Boxes of the same shape and type.
 * @param options `mode`, `eps`, weight, reduction, `avgFactor`.
 * @returns `[...]` for `"none"`, else a scalar.
 */
export function iouLoss(pred: Tensor, target: Tensor, options: IouLossOptions = {}): Tensor {
  const op = "iouLoss";
  const mode = options.mode ?? "log";
  if (mode !== "log" && mode !== "linear") throw new RangeError(`${op}: unknown mode "${mode}"`);
  const eps = options.eps ?? 1e-6;
  if (!(eps > 0)) throw new RangeError(`${op}: eps ${eps} is not positive`);
  return boxLoss(op, pred, target, options, {
    mode: "iou",
    kind: mode === "log" ? "neg_log" : "one_minus",
    eps,
    floor: eps,
  });
}

/**
 * Generalised IoU loss of aligned `xyxy` boxes (mmdetection `giou_loss`):
 * `1 - GIoU`, `GIoU = IoU - (C - U) / C` with union `U` and enclosing area
 * `C` clamped from below at `eps`; then weighted (`weight` `[N]`) and reduced.
 *
 * @example
 * ```ts
 * import { giouLoss } from "./iou_loss.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * const pred = tensor([[0, 0, 1, 1]]), target = tensor([[2, 0, 3, 1]]);
 * console.log(await giouLoss(pred, target).data()); // Float32Array [1.3333...]
 * ```
 *
 * @param pred Boxes `[..., 4]`.
 * @param target Boxes of the same shape and type.
 * @param options `eps`, weight, reduction, `avgFactor`.
 * @returns `[...]` for `"none"`, else a scalar.
 */
export function giouLoss(pred: Tensor, target: Tensor, options: GiouLossOptions = {}): Tensor {
  const op = "giouLoss";
  const eps = options.eps ?? 1e-6;
  if (!(eps > 0)) throw new RangeError(`${op}: eps ${eps} is not positive`);
  return boxLoss(op, pred, target, options, {
    mode: "giou",
    kind: "one_minus",
    eps,
    floor: -3.4e38,
  });
}
