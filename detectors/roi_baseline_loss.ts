/**
 * The stock RoI-head loss (mmdetection's `Shared2FCBBoxHead` with
 * `CrossEntropyLoss(use_sigmoid=False)`; the baseline of the rank-based RoI
 * loss, `loss: "ce"`): each image's assigned RoIs ({@linkcode roiTargets},
 * the GT boxes added) are thinned to 512 with at most a quarter positives
 * ({@linkcode sampleRoiTargets}), the head's `C + 1` logits (background
 * last) are scored by softmax cross entropy averaged over the drawn RoIs,
 * and the positives' boxes by L1 on the deltas against the GT boxes encoded
 * from their RoIs (the stock Faster R-CNN), or by GIoU on the decoded boxes
 * (Co-DETR's `reg_decoded_bbox`), summed over the positives and divided by
 * the number of drawn RoIs as mmdetection's `avg_factor=bbox_targets.size(0)`.
 *
 * @module
 */

import { DeltaXywhCoder } from "../boxes/coder.ts";
import { crossEntropy } from "../losses/baselines/cross_entropy.ts";
import { giouLoss } from "../losses/baselines/iou_loss.ts";
import { l1Loss } from "../losses/baselines/regression.ts";
import type { Backend } from "../tensor/backend.ts";
import { add, mul } from "../tensor/ops/elementwise.ts";
import { indexSelect } from "../tensor/ops/index.ts";
import { sum } from "../tensor/ops/reduce.ts";
import { reshape } from "../tensor/ops/shape.ts";
import type { Rng } from "../tensor/rng.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import type { DetectorLosses } from "./detector.ts";
import type { BBoxHeadOutput } from "./heads/roi_head.ts";
import {
  checkSamplerSettings,
  ROI_SAMPLER,
  sampleCandidates,
  type SamplerSettings,
} from "./random_sampler.ts";
import type { RoiTargets } from "./roi_targets.ts";

/**
 * The RoIs of `targets` that a stock RoI head trains on: per image at most
 * `floor(num * posFraction)` positives and then negatives up to `num`
 * ({@linkcode sampleCandidates}), in their order (positives first).
 *
 * @example 3 positives and 10 negatives in one image, 8 drawn with a quarter positives
 * ```ts
 * import { roiTargets } from "./roi_targets.ts";
 * import { sampleRoiTargets } from "./roi_baseline_loss.ts";
 * import { Rng } from "../tensor/rng.ts";
 * const far = Array.from({ length: 10 }, (_, i) => [100 + 10 * i, 0, 105 + 10 * i, 5]).flat();
 * const all = roiTargets(
 *   [Float32Array.of(0, 0, 10, 9, 0, 0, 9, 10, ...far)],
 *   [Float32Array.of(0, 0, 10, 10)],
 *   [Int32Array.of(2)],
 *   { posIou: 0.5 },
 * );
 * const t = sampleRoiTargets(all, new Rng(0), { num: 8, posFraction: 0.25 });
 * console.log(t.positivesPerImage, t.perImage); // [2] [8]
 * ```
 *
 * @param targets All assigned RoIs of the batch.
 * @param rng The generator of the draws (images in order).
 * @param sampler The sampler; default {@linkcode ROI_SAMPLER}.
 * @returns The drawn RoIs, with every field of `targets` restricted to them.
 */
export function sampleRoiTargets(
  targets: RoiTargets,
  rng: Rng,
  sampler: SamplerSettings = ROI_SAMPLER,
): RoiTargets {
  checkSamplerSettings("sampleRoiTargets", sampler);
  const kept: number[] = [], perImage: number[] = [], positivesPerImage: number[] = [];
  let start = 0;
  for (const count of targets.perImage) {
    const pos: number[] = [], neg: number[] = [];
    for (let k = start; k < start + count; k++) (targets.labels[k] >= 0 ? pos : neg).push(k);
    const drawn = sampleCandidates(pos, neg, sampler, rng);
    kept.push(...drawn.positives, ...drawn.negatives);
    perImage.push(drawn.positives.length + drawn.negatives.length);
    positivesPerImage.push(drawn.positives.length);
    start += count;
  }
  const rows = <T extends Float32Array | Int32Array | Uint8Array>(a: T, width: number): T => {
    const out = new (a.constructor as new (n: number) => T)(kept.length * width);
    kept.forEach((k, i) => out.set(a.subarray(width * k, width * (k + 1)), width * i));
    return out;
  };
  return {
    rois: rows(targets.rois, 5),
    labels: rows(targets.labels, 1),
    gtBoxes: rows(targets.gtBoxes, 4),
    gtIndex: rows(targets.gtIndex, 1),
    maxIou: rows(targets.maxIou, 1),
    fromGt: rows(targets.fromGt, 1),
    perImage,
    positivesPerImage,
  };
}

/** The box term of {@linkcode roiBaselineLoss}. */
export type RoiBaselineBox = "l1" | "giou";

/** Options of {@linkcode roiBaselineLoss}. */
export interface RoiBaselineLossOptions {
  /** Weight of both terms (a Cascade stage's weight; Co-DETR 12); default 1. */
  weight?: number;
  /** Extra factor of the box term (Co-DETR's GIoU: 10); default 1. */
  boxWeight?: number;
  /** `"l1"` on deltas (default, the stock Faster R-CNN) or `"giou"` on decoded boxes (Co-DETR). */
  box?: RoiBaselineBox;
  /** The head's coder; default stds `(0.1, 0.1, 0.2, 0.2)`. */
  coder?: DeltaXywhCoder;
}

const DEFAULT_CODER = new DeltaXywhCoder();

/**
 * The stock RoI loss of head outputs against (drawn) {@linkcode RoiTargets}:
 * part `cls`, `weight * sum CE / K` over the `K` RoIs with background label
 * `C`; part `box`, `weight * boxWeight * sum / K` of the positives' L1 over
 * their four deltas or their GIoU loss (0 with a zero gradient without
 * positives). Class-specific or class-agnostic regression follows the width
 * of `out.reg` (`4C` or `4`).
 *
 * @param out The head's outputs (`cls` `[K, C + 1]`, `reg` `[K, 4C]` or `[K, 4]`).
 * @param targets The RoIs `out` was computed on.
 * @param options Weights, box term and coder.
 * @returns The total and its parts `cls` and `box`.
 * @throws {RangeError} When the targets and outputs disagree in RoIs, classes or regression width.
 */
export function roiBaselineLoss(
  out: BBoxHeadOutput,
  targets: RoiTargets,
  options: RoiBaselineLossOptions = {},
): DetectorLosses {
  const { weight = 1, boxWeight = 1, box = "l1", coder = DEFAULT_CODER } = options;
  const op = "roiBaselineLoss";
  if (box !== "l1" && box !== "giou") {
    throw new RangeError(`${op}: unknown box loss "${box}" (expected l1, giou)`);
  }
  const [k, width] = out.cls.shape;
  const numClasses = width - 1;
  const backend: Backend = out.cls.backend;
  if (targets.labels.length !== k) {
    throw new RangeError(`${op}: targets cover ${targets.labels.length} RoIs, outputs ${k}`);
  }
  const regWidth = out.reg.shape[1];
  if (numClasses < 1 || (regWidth !== 4 && regWidth !== 4 * numClasses)) {
    throw new RangeError(
      `${op}: ${width} logits (classes and background) and ${regWidth} deltas per RoI`,
    );
  }
  const labels = new Int32Array(k), positives: number[] = [];
  targets.labels.forEach((label, i) => {
    if (label >= numClasses) {
      throw new RangeError(`${op}: RoI ${i} has label ${label} with ${numClasses} classes`);
    }
    labels[i] = label >= 0 ? label : numClasses;
    if (label >= 0) positives.push(i);
  });
  const ce = crossEntropy(out.cls, tensor(labels, [k], { backend }), { reduction: "sum" });
  const cls = mul(ce, weight / k);
  const p = positives.length;
  let boxTerm: Tensor;
  if (p === 0) {
    boxTerm = mul(sum(out.reg), 0);
  } else {
    const regRows = new Int32Array(p), roiBoxes = new Float32Array(4 * p);
    const gtBoxes = new Float32Array(4 * p);
    positives.forEach((i, j) => {
      regRows[j] = regWidth === 4 ? i : i * numClasses + targets.labels[i];
      roiBoxes.set(targets.rois.subarray(5 * i + 1, 5 * i + 5), 4 * j);
      gtBoxes.set(targets.gtBoxes.subarray(4 * i, 4 * i + 4), 4 * j);
    });
    const posDeltas = indexSelect(
      reshape(out.reg, [k * (regWidth / 4), 4]),
      0,
      tensor(regRows, [p], { backend }),
    );
    const reduce = { reduction: "mean", avgFactor: k } as const;
    const raw = box === "l1"
      ? l1Loss(posDeltas, tensor(coder.encodeHost(roiBoxes, gtBoxes), [p, 4], { backend }), reduce)
      : giouLoss(
        coder.decode(tensor(roiBoxes, [p, 4], { backend }), posDeltas),
        tensor(gtBoxes, [p, 4], { backend }),
        reduce,
      );
    boxTerm = mul(raw, weight * boxWeight);
  }
  return { total: add(cls, boxTerm), parts: { cls, box: boxTerm }, numPositives: p };
}
