/**
 * Sigmoid focal loss (Lin et al., RetinaNet), with mmdetection /
 * torchvision semantics, as one fused kernel forward and one backward.
 *
 * @module
 */

import { needsGrad } from "../../tensor/autograd.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { expectDtype } from "../../tensor/ops/launch.ts";
import {
  checkAvgFactor,
  checkPair,
  checkReduction,
  checkWeight,
  pointwiseLoss,
  type ReduceOptions,
  wgslFloat,
} from "./common.ts";
import { bceHost, oneHot, sigmoidHost, WGSL_LOGIT } from "./cross_entropy.ts";

/** Options of {@linkcode sigmoidFocalLoss}. */
export interface FocalLossOptions extends ReduceOptions {
  /** Weight of positives, `1 - alpha` for negatives; `null` or negative: no alpha weighting. Default `0.25`. */
  alpha?: number | null;
  /** Focusing exponent `gamma >= 0`; default `2`. */
  gamma?: number;
}

/** `q^e` in WGSL, with `0^e = 0` for `e > 0`; small integer powers are multiplied out. */
function powWgsl(q: string, e: number, op: string): string {
  if (e === 0) return "1.0";
  if (e === 1) return q;
  if (e === 2) return `(${q} * ${q})`;
  if (e === 3) return `(${q} * ${q} * ${q})`;
  return `select(pow(${q}, ${wgslFloat(op, "gamma", e)}), 0.0, ${q} <= 0.0)`;
}

function powHost(q: number, e: number): number {
  if (e === 0) return 1;
  return q <= 0 ? 0 : q ** e;
}

/**
 * Focal loss on logits (mmdetection `sigmoid_focal_loss`, torchvision
 * `sigmoid_focal_loss`):
 *
 * ```
 * p = sigmoid(x), q = p (1 - t) + (1 - p) t           (= 1 - p_t)
 * loss = [alpha t + (1 - alpha)(1 - t)] * q^gamma * BCE(x, t)
 * ```
 *
 * then multiplied by `weight` and reduced (`"mean"` over all elements, or
 * the sum over `avgFactor`, e.g. the number of positives). `targets` are
 * either floats of `logits`' shape (one-hot or soft targets in `[0, 1]`) or
 * `i32` labels `[N]` for logits `[N, C]`, where a label outside `[0, C)` (e.g.
 * `C`, mmdetection's background) is a row of negatives. The gradient flows to
 * `logits` only.
 *
 * @example One positive and one negative logit
 * ```ts
 * import { sigmoidFocalLoss } from "./focal_loss.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * const loss = sigmoidFocalLoss(tensor([[0, 0]]), tensor([[1, 0]]), { reduction: "none" });
 * console.log(await loss.data()); // Float32Array [0.25 * 0.25 * ln 2, 0.75 * 0.25 * ln 2]
 * ```
 *
 * @param logits Float `[..., C]`.
 * @param targets Float targets of the same shape, or `i32` labels `[N]` for `[N, C]` logits.
 * @param options `alpha`, `gamma`, `weight`, `reduction`, `avgFactor`.
 * @returns `logits`' shape for `"none"`, else a scalar.
 */
export function sigmoidFocalLoss(
  logits: Tensor,
  targets: Tensor,
  options: FocalLossOptions = {},
): Tensor {
  const op = "sigmoidFocalLoss";
  const reduction = checkReduction(op, options.reduction ?? "mean");
  const gamma = options.gamma ?? 2;
  if (!(gamma >= 0) || !Number.isFinite(gamma)) {
    throw new RangeError(`${op}: gamma ${gamma} must be >= 0`);
  }
  const alpha = options.alpha === undefined ? 0.25 : options.alpha;
  const useAlpha = alpha !== null && alpha >= 0;
  if (useAlpha && !(alpha <= 1)) throw new RangeError(`${op}: alpha ${alpha} exceeds 1`);
  expectDtype(op, logits, ["f32", "f64"]);
  let t = targets;
  if (targets.dtype === "i32") {
    if (logits.rank !== 2 || targets.rank !== 1 || targets.shape[0] !== logits.shape[0]) {
      throw new TypeError(
        `${op}: labels [${targets.shape.join(", ")}] do not match logits [${
          logits.shape.join(", ")
        }]`,
      );
    }
    if (targets.backend !== logits.backend) {
      throw new TypeError(`${op}: inputs live on different backends`);
    }
    t = oneHot(targets, logits.shape[1], logits.dtype === "f64" ? "f64" : "f32");
  } else checkPair(op, logits, targets, ["logits", "targets"]);
  checkWeight(op, options.weight, logits, logits.shape);
  checkAvgFactor(op, options, reduction);

  const a = useAlpha ? alpha : 0;
  const alphaW = (v: string) =>
    useAlpha
      ? `(${wgslFloat(op, "alpha", a)} * ${v} + (1.0 - ${
        wgslFloat(op, "alpha", a)
      }) * (1.0 - ${v}))`
      : "1.0";
  const alphaH = (v: number) => useAlpha ? a * v + (1 - a) * (1 - v) : 1;
  const p = (x: string) => `(${WGSL_LOGIT.sigmoid(x)})`;
  const q = (x: string, v: string) => `(${p(x)} + ${v} - 2.0 * ${p(x)} * ${v})`;
  const g = wgslFloat(op, "gamma", gamma);
  const focusTerm = gamma === 0
    ? "0.0"
    : `${g} * ${powWgsl(q("b", "c"), gamma - 1, op)} * (1.0 - 2.0 * c) * ${p("b")} * (1.0 - ${
      p("b")
    }) * ${WGSL_LOGIT.bce("b", "c")}`;
  const out = pointwiseLoss(
    op,
    {
      forward: {
        label: "sigmoid_focal",
        wgsl: `c * ${alphaW("b")} * ${powWgsl(q("a", "b"), gamma, op)} * ${
          WGSL_LOGIT.bce("a", "b")
        }`,
        cpu: (x, v, w) => {
          const pr = sigmoidHost(x);
          const qq = pr + v - 2 * pr * v;
          return w * alphaH(v) * powHost(qq, gamma) * bceHost(x, v);
        },
      },
      backward: {
        label: "sigmoid_focal_grad",
        wgsl: `a * ${alphaW("c")} * (${focusTerm} + ${powWgsl(q("b", "c"), gamma, op)} * (${
          p("b")
        } - c))`,
        cpu: (gw, x, v) => {
          const pr = sigmoidHost(x);
          const qq = pr + v - 2 * pr * v;
          const focus = gamma === 0
            ? 0
            : gamma * powHost(qq, gamma - 1) * (1 - 2 * v) * pr * (1 - pr) * bceHost(x, v);
          return gw * alphaH(v) * (focus + powHost(qq, gamma) * (pr - v));
        },
      },
    },
    logits,
    t,
    options,
    reduction,
  );
  // The backward reads the one-hot targets; free them now only when none is recorded.
  if (t !== targets && !needsGrad([logits])) t.dispose();
  return out;
}
