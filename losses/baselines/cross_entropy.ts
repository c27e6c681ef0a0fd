/**
 * Cross-entropy losses: softmax cross entropy over class labels
 * (`crossEntropy`, PyTorch `F.cross_entropy` semantics) and binary cross
 * entropy on logits (`binaryCrossEntropyWithLogits`), plus the `oneHot`
 * kernel that turns `i32` labels into float targets.
 *
 * @module
 */

import type { DType } from "../../tensor/dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../../tensor/kernel.ts";
import { needsGrad, noGrad, record } from "../../tensor/autograd.ts";
import { div, map, mul } from "../../tensor/ops/elementwise.ts";
import { expectDtype, launchInto } from "../../tensor/ops/launch.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { logSoftmax } from "../../tensor/ops/softmax.ts";
import { type Tensor, viewOf } from "../../tensor/tensor.ts";
import {
  checkPointwiseInputs,
  checkReduction,
  pointwiseLoss,
  type ReduceOptions,
  type Reduction,
} from "./common.ts";

const WORKGROUP = 256;
const cached = kernelCache();

function oneHotKernel(dtype: DType): Kernel {
  return cached(dtype, () => ({
    label: "loss.one_hot",
    inputs: { labels: "i32" },
    outputs: { out: dtype },
    params: { n: "u32", c: "u32", ignore: "i32" },
    workgroupSize: WORKGROUP,
    code: `${entryPoint(WORKGROUP)}
  if (i >= p.n) { return; }
  let label = labels[i / p.c];
  out[i] = select(0.0, 1.0, label == i32(i % p.c) && label != p.ignore);
}`,
    cpu(ins, outs, p) {
      const { n, c, ignore } = p as Record<string, number>;
      const labels = ins.labels, out = outs.out;
      for (let i = 0; i < n; i++) {
        const label = labels[Math.floor(i / c)];
        out[i] = label === i % c && label !== ignore ? 1 : 0;
      }
    },
  }));
}

function checkLabels(op: string, labels: Tensor): void {
  expectDtype(op, labels, ["i32"]);
  if (labels.rank !== 1) {
    throw new TypeError(`${op}: labels must have shape [N] but got [${labels.shape.join(", ")}]`);
  }
}

/**
 * One-hot float rows from `i32` class labels: row `n` has a 1 at column
 * `labels[n]`. Labels outside `[0, numClasses)` (background, e.g. mmdet's
 * `numClasses`) and labels equal to `ignoreIndex` give rows of zeros.
 *
 * @example
 * ```ts
 * import { oneHot } from "./cross_entropy.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * const y = oneHot(tensor([2, 0, 3], undefined, { dtype: "i32" }), 3);
 * console.log(await y.data()); // Float32Array [0, 0, 1, 1, 0, 0, 0, 0, 0]
 * ```
 *
 * @param labels `i32` labels `[N]`.
 * @param numClasses Columns `C`.
 * @param dtype `f32` (default) or `f64` (CPU backend only).
 * @param ignoreIndex A label that gives a zero row even when in range; default `-1`.
 * @returns `[N, C]` of 0 and 1.
 */
export function oneHot(
  labels: Tensor,
  numClasses: number,
  dtype: "f32" | "f64" = "f32",
  ignoreIndex = -1,
): Tensor {
  checkLabels("oneHot", labels);
  if (!Number.isInteger(numClasses) || numClasses < 0) {
    throw new RangeError(`oneHot: numClasses ${numClasses} is not a non-negative integer`);
  }
  const n = labels.size * numClasses;
  return launchInto(
    oneHotKernel(dtype),
    [labels],
    [labels.size, numClasses],
    dtype,
    { n, c: Math.max(numClasses, 1), ignore: ignoreIndex | 0 },
    Math.ceil(n / WORKGROUP),
  );
}

/** Options of {@linkcode crossEntropy}. */
export interface CrossEntropyOptions {
  /** `"mean"` (default: over the non-ignored rows), `"sum"` or `"none"`. */
  reduction?: Reduction;
  /** Rows with this label get loss 0 and are not counted; default `-100`. */
  ignoreIndex?: number;
}

/**
 * Softmax cross entropy `-log softmax(logits)[n, labels[n]]` (PyTorch
 * `F.cross_entropy`). `"mean"` divides by the number of rows whose label is
 * in `[0, C)` and not `ignoreIndex` (NaN when there is none, as in PyTorch);
 * other labels (out of range included: they cannot be checked without a
 * readback) count as ignored. Gradient to `logits`.
 *
 * @example
 * ```ts
 * import { crossEntropy } from "./cross_entropy.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * const logits = tensor([[0, 0], [Math.log(3), 0]]);
 * const labels = tensor([1, 0], undefined, { dtype: "i32" });
 * console.log(await crossEntropy(logits, labels, { reduction: "none" }).data());
 * // Float32Array [0.6931..., 0.2876...]
 * ```
 *
 * @param logits Float `[N, C]`.
 * @param labels `i32` `[N]`.
 * @param options Reduction and `ignoreIndex`.
 * @returns `[N]` for `"none"`, else a scalar.
 */
export function crossEntropy(
  logits: Tensor,
  labels: Tensor,
  options: CrossEntropyOptions = {},
): Tensor {
  const op = "crossEntropy";
  const reduction = checkReduction(op, options.reduction ?? "mean");
  expectDtype(op, logits, ["f32", "f64"]);
  checkLabels(op, labels);
  if (logits.rank !== 2 || logits.shape[0] !== labels.shape[0]) {
    throw new TypeError(
      `${op}: logits [${logits.shape.join(", ")}] do not match labels [${labels.shape.join(", ")}]`,
    );
  }
  if (logits.backend !== labels.backend) {
    throw new TypeError(`${op}: inputs live on different backends`);
  }
  const c = logits.shape[1];
  const dtype = logits.dtype === "f64" ? "f64" : "f32";
  // Forward without a tape; the backward below is the fused softmax-minus-target rule.
  const [target, logp, valid, out, count] = noGrad(
    (): [Tensor, Tensor, Tensor, Tensor, Tensor | null] => {
      const target = oneHot(labels, c, dtype, options.ignoreIndex ?? -100);
      const logp = logSoftmax(logits, 1);
      const picked = map({ label: "ce_pick", wgsl: "-a * b", cpu: (a, b) => -a * b }, [
        logp,
        target,
      ]);
      const rows = sum(picked, 1);
      picked.dispose();
      const valid = sum(target, 1, true);
      if (reduction === "none") return [target, logp, valid, rows, null];
      const total = sum(rows);
      rows.dispose();
      if (reduction === "sum") return [target, logp, valid, total, null];
      const count = sum(valid);
      const mean = div(total, count);
      total.dispose();
      return [target, logp, valid, mean, count];
    },
  );
  if (!needsGrad([logits])) {
    for (const t of [target, logp, valid, count]) t?.dispose();
    return out;
  }
  record(op, [logits], [out], ([g]) => {
    let scale: Tensor;
    if (reduction === "none") scale = viewOf(g!, [g!.size, 1]);
    else if (reduction === "sum") scale = viewOf(g!, [1, 1]);
    else {
      const q = div(g!, count!);
      scale = viewOf(q, [1, 1]);
      q.dispose();
    }
    const gv = mul(scale, valid);
    scale.dispose();
    const grad = map({
      label: "ce_grad",
      wgsl: "a * (exp(b) - c)",
      cpu: (a, b, c) => a * (Math.exp(b) - c),
    }, [gv, logp, target]);
    gv.dispose();
    return [grad];
  });
  return out;
}

/** Options of {@linkcode binaryCrossEntropyWithLogits}. */
export type BceOptions = ReduceOptions;

const SIGMOID = (x: string) =>
  `select(exp(${x}) / (1.0 + exp(${x})), 1.0 / (1.0 + exp(-${x})), ${x} >= 0.0)`;

/** Sigmoid, computed without overflow. */
export function sigmoidHost(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** `log(1 + e^x) - t x`, computed stably: binary cross entropy of logit `x` and target `t`. */
export function bceHost(x: number, t: number): number {
  return Math.max(x, 0) - x * t + Math.log1p(Math.exp(-Math.abs(x)));
}

/** WGSL of {@linkcode sigmoidHost} and {@linkcode bceHost} for fused expressions. */
export const WGSL_LOGIT: {
  sigmoid: (x: string) => string;
  bce: (x: string, t: string) => string;
} = {
  sigmoid: SIGMOID,
  bce: (x, t) => `(max(${x}, 0.0) - ${x} * ${t} + log(1.0 + exp(-abs(${x}))))`,
};

/**
 * Binary cross entropy on logits, `max(x, 0) - x t + log(1 + e^-|x|)`
 * (PyTorch `F.binary_cross_entropy_with_logits`), weighted and reduced the
 * mmdetection way. One fused kernel each way; gradient to `logits` (the
 * targets and weights are constants).
 *
 * @example
 * ```ts
 * import { binaryCrossEntropyWithLogits } from "./cross_entropy.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * const loss = binaryCrossEntropyWithLogits(tensor([0, 2]), tensor([1, 0]), { reduction: "sum" });
 * console.log(await loss.data()); // Float32Array [2.8201...]  (log 2 + log(1 + e^2))
 * ```
 *
 * @param logits Float tensor.
 * @param targets Targets in `[0, 1]`, same shape and type.
 * @param options Weight, reduction, `avgFactor`.
 * @returns The loss (`logits`' shape for `"none"`, else a scalar).
 */
export function binaryCrossEntropyWithLogits(
  logits: Tensor,
  targets: Tensor,
  options: BceOptions = {},
): Tensor {
  const op = "binaryCrossEntropyWithLogits";
  const reduction = checkPointwiseInputs(op, logits, targets, ["logits", "targets"], options);
  return pointwiseLoss(
    op,
    {
      forward: {
        label: "bce_logits",
        wgsl: `c * ${WGSL_LOGIT.bce("a", "b")}`,
        cpu: (a, b, c) => c * bceHost(a, b),
      },
      backward: {
        label: "bce_logits_grad",
        wgsl: `a * (${SIGMOID("b")} - c)`,
        cpu: (a, b, c) => a * (sigmoidHost(b) - c),
      },
    },
    logits,
    targets,
    options,
    reduction,
  );
}
