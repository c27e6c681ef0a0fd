/**
 * Shared machinery of the baseline losses: option checks, mmdetection-style
 * weighting and reduction (`weight`, `reduction`, `avgFactor`), and
 * {@linkcode pointwiseLoss}, which runs an elementwise loss as one fused
 * `map` kernel forward and one backward.
 *
 * @module
 */

import { noGrad, record } from "../../tensor/autograd.ts";
import { div, map, type MapExpr, mul } from "../../tensor/ops/elementwise.ts";
import { expectDtype } from "../../tensor/ops/launch.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { type Tensor, viewOf } from "../../tensor/tensor.ts";

/** How elementwise losses are combined: kept, summed, or averaged. */
export type Reduction = "none" | "sum" | "mean";

/** Weighting and reduction options shared by the baseline losses. */
export interface ReduceOptions {
  /** Elementwise weights, broadcast to the loss's shape (a constant: no gradient). */
  weight?: Tensor;
  /** `"mean"` (default), `"sum"` or `"none"`. */
  reduction?: Reduction;
  /**
   * With `"mean"`: divide the sum by this instead of the element count (a
   * number, or a one-element tensor such as a positive count kept on the GPU).
   */
  avgFactor?: number | Tensor;
}

/** Checks `reduction`; `RangeError` naming `op` if unknown. */
export function checkReduction(op: string, reduction: string): Reduction {
  if (reduction !== "none" && reduction !== "sum" && reduction !== "mean") {
    throw new RangeError(`${op}: unknown reduction "${reduction}"`);
  }
  return reduction;
}

/** A WGSL float literal for `value` (parenthesised; finite values only). */
export function wgslFloat(op: string, name: string, value: number): string {
  if (!Number.isFinite(value)) throw new RangeError(`${op}: ${name} ${value} is not finite`);
  const text = String(value);
  return `(${/[.eE]/.test(text) ? text : `${text}.0`})`;
}

/** Checks that `a` and `b` are float tensors of one shape, type and backend. */
export function checkPair(op: string, a: Tensor, b: Tensor, names: [string, string]): void {
  expectDtype(op, a, ["f32", "f64"]);
  expectDtype(op, b, ["f32", "f64"]);
  if (a.shape.join() !== b.shape.join() || a.rank !== b.rank) {
    throw new TypeError(
      `${op}: ${names[0]} [${a.shape.join(", ")}] and ${names[1]} [${
        b.shape.join(", ")
      }] differ in shape`,
    );
  }
  if (a.dtype !== b.dtype) {
    throw new TypeError(`${op}: element types ${a.dtype} and ${b.dtype} differ`);
  }
  if (a.backend !== b.backend) {
    throw new TypeError(`${op}: inputs live on different backends`);
  }
}

/** Checks `weight` against the loss shape `shape` (broadcastable, same element type). */
export function checkWeight(
  op: string,
  weight: Tensor | undefined,
  like: Tensor,
  shape: readonly number[],
): void {
  if (!weight) return;
  if (weight.dtype !== like.dtype) {
    throw new TypeError(`${op}: weight has element type ${weight.dtype}, expected ${like.dtype}`);
  }
  const offset = shape.length - weight.rank;
  const fits = offset >= 0 && weight.shape.every((d, k) => d === 1 || d === shape[offset + k]);
  if (!fits) {
    throw new TypeError(
      `${op}: weight [${weight.shape.join(", ")}] does not broadcast to [${shape.join(", ")}]`,
    );
  }
  if (weight.backend !== like.backend) {
    throw new TypeError(`${op}: weight lives on another backend`);
  }
}

/**
 * The checks of an elementwise loss of two same-shape float inputs: the
 * reduction, the pair (named `names` in errors), the weight and `avgFactor`.
 *
 * @example
 * ```ts
 * import { checkPointwiseInputs } from "./common.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * const x = tensor([1, 2]);
 * console.log(checkPointwiseInputs("myLoss", x, x, ["pred", "target"], {})); // "mean"
 * ```
 *
 * @returns The reduction, `"mean"` by default.
 */
export function checkPointwiseInputs(
  op: string,
  a: Tensor,
  b: Tensor,
  names: [string, string],
  options: ReduceOptions,
): Reduction {
  const reduction = checkReduction(op, options.reduction ?? "mean");
  checkPair(op, a, b, names);
  checkWeight(op, options.weight, a, a.shape);
  checkAvgFactor(op, options, reduction);
  return reduction;
}

/** Checks `avgFactor` against `reduction`. */
export function checkAvgFactor(op: string, options: ReduceOptions, reduction: Reduction): void {
  const f = options.avgFactor;
  if (f === undefined) return;
  if (reduction !== "mean") throw new TypeError(`${op}: avgFactor needs reduction "mean"`);
  if (typeof f !== "number" && f.size !== 1) {
    throw new TypeError(
      `${op}: avgFactor must have one element but has shape [${f.shape.join(", ")}]`,
    );
  }
}

/**
 * Reduces an elementwise loss `raw` (already weighted) without recording:
 * itself, its sum, or its sum over `avgFactor` (or the element count).
 */
export function reduceRaw(raw: Tensor, reduction: Reduction, avgFactor?: number | Tensor): Tensor {
  return noGrad(() => {
    if (reduction === "none") return viewOf(raw, raw.shape);
    const total = sum(raw);
    if (reduction === "sum") return total;
    const out = typeof avgFactor === "object"
      ? div(total, avgFactor)
      : mul(total, 1 / (avgFactor ?? raw.size));
    total.dispose();
    return out;
  });
}

/**
 * The gradient of the reduced loss with respect to each (unweighted)
 * elementwise loss, from the output gradient `g`: `g` itself (`"none"`) or
 * a one-element tensor (scaled for `"mean"`), times `weight` when given. The
 * result broadcasts to the loss's shape. Runs inside backward rules.
 */
export function elementGrad(
  g: Tensor,
  reduction: Reduction,
  count: number,
  options: ReduceOptions,
): Tensor {
  let scaled = g;
  if (reduction === "mean") {
    const f = options.avgFactor;
    scaled = typeof f === "object" ? div(g, f) : mul(g, 1 / (f ?? count));
  }
  if (!options.weight) return scaled === g ? viewOf(g, g.shape) : scaled;
  const out = mul(scaled, options.weight);
  if (scaled !== g) scaled.dispose();
  return out;
}

/** Expressions of a fused elementwise loss. */
export interface PointwiseExprs {
  /** Loss from `a` = input, `b` = target, times `c` = weight (or 1). */
  forward: MapExpr;
  /** Gradient wrt the input from `a` = upstream gradient times weight, `b` = input, `c` = target. */
  backward: MapExpr;
  /** Gradient wrt the target from the input gradient, when the loss gives one. */
  targetGrad?: (gradInput: Tensor) => Tensor;
}

/**
 * An elementwise loss `loss(x, t)` with weighting and reduction: one fused
 * kernel forward (`weight` folded in) plus the reduction, and one fused
 * kernel backward (plus a scalar scale for `"mean"` and a multiply by
 * `weight`). `x`, `t` and `options` must be validated by the caller.
 */
export function pointwiseLoss(
  op: string,
  exprs: PointwiseExprs,
  x: Tensor,
  t: Tensor,
  options: ReduceOptions,
  reduction: Reduction,
): Tensor {
  const raw = map(exprs.forward, [x, t, options.weight ?? 1], x.shape);
  const out = reduceRaw(raw, reduction, options.avgFactor);
  raw.dispose();
  const inputs = exprs.targetGrad ? [x, t] : [x];
  record(op, inputs, [out], ([g]) => {
    const gw = elementGrad(g!, reduction, x.size, options);
    const gx = map(exprs.backward, [gw, x, t], x.shape);
    gw.dispose();
    if (!exprs.targetGrad) return [gx];
    const gt = t.requiresGrad ? exprs.targetGrad(gx) : null;
    if (!x.requiresGrad) {
      gx.dispose();
      return [null, gt];
    }
    return [gx, gt];
  });
  return out;
}
