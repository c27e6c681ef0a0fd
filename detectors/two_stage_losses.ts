/**
 * The losses the two-stage detectors (and Co-DETR's auxiliary Faster R-CNN
 * branch) train with, as a typed table keyed by the config's `loss`: the
 * rank-based recipe with BRS or RS (every anchor and RoI, sigmoid logits,
 * GIoU self-balanced; `rpn_loss.ts`, `roi_loss.ts`) and `"ce"`, the stock
 * Faster R-CNN's losses (sampled anchors and RoIs, sigmoid BCE + L1 in the
 * RPN, softmax CE over the classes and background + L1 or GIoU in the RoI
 * head; `rpn_baseline_loss.ts`, `roi_baseline_loss.ts`). Each entry says how
 * the RoI head classifies, which coder the RPN regresses with, and computes
 * the RPN's and a RoI stage's loss.
 *
 * @module
 */

import { DeltaXywhCoder } from "../boxes/coder.ts";
import type { Backend } from "../tensor/backend.ts";
import { full } from "../tensor/ops/creation.ts";
import { add } from "../tensor/ops/elementwise.ts";
import type { Anchors } from "./anchors.ts";
import type { DetectorLosses } from "./detector.ts";
import type { BBoxHeadOutput } from "./heads/roi_head.ts";
import type { RpnHeadOutput } from "./heads/rpn_head.ts";
import { samplerRng } from "./random_sampler.ts";
import { type RoiBaselineBox, roiBaselineLoss, sampleRoiTargets } from "./roi_baseline_loss.ts";
import { roiLoss } from "./roi_loss.ts";
import type { RoiTargets } from "./roi_targets.ts";
import { rpnBaselineLoss, rpnSampledTargets, STOCK_RPN_CODER } from "./rpn_baseline_loss.ts";
import { rpnLoss, rpnTargets } from "./rpn_loss.ts";

/** The ranking losses of the two-stage recipe: BRS (bucketed) and RS. */
export type TwoStageRankingLoss = "brs" | "rs";

/** The losses of the two-stage detectors: the ranking ones and the stock `"ce"`. */
export type TwoStageLoss = TwoStageRankingLoss | "ce";

/** What the RPN loss of one batch reads. */
export interface RpnLossInputs {
  /** The head's outputs. */
  out: RpnHeadOutput;
  /** The anchors of the batch's input size. */
  anchors: Anchors;
  /** Per image `[G * 4]` xyxy GT boxes. */
  boxes: readonly Float32Array[];
  /** Per image the read-back proposals (they seed the stock sampler's draw). */
  proposals: readonly Float32Array[];
  /** δ of a ranking loss. */
  delta?: number;
  /** Weight of the RPN loss. */
  weight: number;
}

/** What the loss of one RoI stage reads. */
export interface RoiLossInputs {
  /** The head's outputs on `targets.rois`. */
  out: BBoxHeadOutput;
  /** The stage's RoIs and targets (drawn by {@linkcode TwoStageLossEntry.sample}). */
  targets: RoiTargets;
  /** δ of a ranking loss. */
  delta?: number;
  /** Weight of the stage's loss. */
  weight: number;
  /** The stage's coder. */
  coder: DeltaXywhCoder;
  /** The stock loss's box term and its extra factor (default L1, 1). */
  box?: { kind: RoiBaselineBox; weight: number };
}

/** One loss of the table. */
export interface TwoStageLossEntry {
  /** Whether the RoI heads have a background logit (softmax over `C + 1`) instead of `C` sigmoids. */
  background: boolean;
  /** The RPN's coder: its regression targets and its proposals. */
  rpnCoder: DeltaXywhCoder;
  /** The RPN loss of a batch (parts `rank`, `sort`, `box`, or `cls`, `box`). */
  rpn(inputs: RpnLossInputs): DetectorLosses;
  /** The RoIs a stage trains on of all those assigned: all of them, or a seeded draw. */
  sample(targets: RoiTargets): RoiTargets;
  /** The loss of one stage (parts as the RPN's). */
  roi(inputs: RoiLossInputs): DetectorLosses;
  /** The loss of a stage that has no RoI at all (no proposal and no GT box in the batch). */
  noRois(weight: number, backend: Backend): DetectorLosses;
  /**
   * Class probabilities `[R * C]` of the RoIs' logits summed over `stages`
   * stages (`[R * C]` or, with `background`, `[R * (C + 1)]`), from their
   * mean: mmdetection averages the raw outputs of its cascade heads, then
   * applies the head's activation.
   */
  probabilities(logitSum: Float32Array, stages: number, numClasses: number): Float32Array;
}

const RANK_RPN_CODER = new DeltaXywhCoder();

function rankingEntry(loss: TwoStageRankingLoss): TwoStageLossEntry {
  return {
    background: false,
    rpnCoder: RANK_RPN_CODER,
    rpn: ({ out, anchors, boxes, delta, weight }) =>
      rpnLoss(out, rpnTargets(anchors, boxes), { loss, delta, weight }),
    sample: (targets) => targets,
    roi: ({ out, targets, delta, weight, coder }) =>
      roiLoss(out, targets, { loss, delta, weight, coder }),
    noRois(weight, backend) {
      // The official head's constants without positives.
      const one = full([], weight, { backend });
      return {
        total: add(add(one, one), one),
        parts: { rank: one, sort: one, box: one },
        numPositives: 0,
      };
    },
    probabilities: (logitSum, stages) => logitSum.map((v) => 1 / (1 + Math.exp(-v / stages))),
  };
}

/**
 * Softmax probabilities of `[R, C + 1]` logits (summed over `stages`
 * stages: their mean is taken) without the background column, as `[R * C]`.
 *
 * @example
 * ```ts
 * import { softmaxWithoutBackground } from "./two_stage_losses.ts";
 * console.log(softmaxWithoutBackground(Float32Array.of(0, 0, Math.log(4)), 2, 2)); // Float32Array [0.25, 0.25]
 * ```
 *
 * @param logitSum `[R * (C + 1)]` logits, background last, summed over the stages.
 * @param stages How many stages were summed.
 * @param numClasses Classes `C`.
 */
export function softmaxWithoutBackground(
  logitSum: Float32Array,
  stages: number,
  numClasses: number,
): Float32Array {
  const w = numClasses + 1, rows = logitSum.length / w;
  const out = new Float32Array(rows * numClasses);
  for (let r = 0; r < rows; r++) {
    const row = Array.from(logitSum.subarray(r * w, (r + 1) * w), (v) => v / stages);
    const top = Math.max(...row);
    let total = 0;
    for (const v of row) total += Math.exp(v - top);
    for (let c = 0; c < numClasses; c++) out[r * numClasses + c] = Math.exp(row[c] - top) / total;
  }
  return out;
}

const CE_ENTRY: TwoStageLossEntry = {
  background: true,
  rpnCoder: STOCK_RPN_CODER,
  rpn: ({ out, anchors, boxes, proposals, weight }) =>
    rpnBaselineLoss(out, rpnSampledTargets(anchors, boxes, samplerRng(...proposals)), { weight }),
  sample: (targets) => sampleRoiTargets(targets, samplerRng(targets.rois)),
  roi: ({ out, targets, weight, coder, box }) =>
    roiBaselineLoss(out, targets, {
      weight,
      coder,
      box: box?.kind ?? "l1",
      boxWeight: box?.weight ?? 1,
    }),
  noRois(_weight, backend) {
    const zero = full([], 0, { backend });
    return { total: zero, parts: { cls: zero, box: zero }, numPositives: 0 };
  },
  probabilities: softmaxWithoutBackground,
};

/** The losses of the two-stage detectors, keyed by the config's `loss`. */
export const TWO_STAGE_LOSS_TABLE: { readonly [L in TwoStageLoss]: TwoStageLossEntry } = {
  brs: rankingEntry("brs"),
  rs: rankingEntry("rs"),
  ce: CE_ENTRY,
};

/** The two-stage losses, for command lines and messages. */
export const TWO_STAGE_LOSSES: readonly TwoStageLoss[] = Object.freeze(["brs", "rs", "ce"]);

/** The ranking two-stage losses (Mask R-CNN's self-balanced mask loss needs one). */
export const TWO_STAGE_RANKING_LOSSES: readonly TwoStageRankingLoss[] = Object.freeze([
  "brs",
  "rs",
]);

/**
 * The table's entry of `loss`.
 *
 * @example
 * ```ts
 * import { twoStageLoss } from "./two_stage_losses.ts";
 * console.log(twoStageLoss("ce", "faster_rcnn").background); // true
 * ```
 *
 * @param loss The config's `loss`.
 * @param owner Who asks (for the message).
 * @throws {RangeError} When `loss` is not in the table.
 */
export function twoStageLoss(loss: string, owner: string): TwoStageLossEntry {
  if (!Object.hasOwn(TWO_STAGE_LOSS_TABLE, loss)) {
    throw new RangeError(
      `${owner}: unknown loss "${loss}" (expected ${TWO_STAGE_LOSSES.join(", ")})`,
    );
  }
  return TWO_STAGE_LOSS_TABLE[loss as TwoStageLoss];
}
