/**
 * The losses PAA trains with, as a typed table keyed by the loss name
 * (docs/departures.md, R5), and the score that drives its re-assignment.
 *
 * - `brs`, `rs`: the rank-based recipe ATSS uses too (IoU targets of the
 *   detached decoded box, δ 0.5, score-weighted GIoU, self-balance).
 * - `bap`, `ap`: binary targets with δ 0.5 (not ATSS's 1.0; Q20) and
 *   `L_AP + L_box`, as the official PAA configs weight them.
 * - `focal`: stock PAA: focal loss over every anchor, GIoU weighted by each
 *   positive's IoU (weight 1.3) and a BCE on the IoU-prediction branch
 *   (weight 0.5).
 *
 * Each entry also says how the re-assignment scores candidates (the GIoU
 * weight: 1 in the rank-based configs, 1.3 in stock PAA) and the GMM's
 * `reg_covar` (1e-5 in the rank-based head, scikit-learn's default 1e-6 in
 * stock mmdetection).
 *
 * @module
 */

import { apLoss, bucketedAp, bucketedRankSort, rankSort } from "../losses/ops/mod.ts";
import { binaryCrossEntropyWithLogits } from "../losses/baselines/cross_entropy.ts";
import { sigmoidFocalLoss } from "../losses/baselines/focal_loss.ts";
import { giouLoss } from "../losses/baselines/iou_loss.ts";
import { scoreWeightedMean } from "../losses/baselines/balance.ts";
import { bboxOverlaps } from "../boxes/box_ops.ts";
import type { DeltaXywhCoder } from "../boxes/coder.ts";
import { detach, noGrad } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { add, maximum, mul } from "../tensor/ops/elementwise.ts";
import { indexSelect } from "../tensor/ops/index.ts";
import { sum } from "../tensor/ops/reduce.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import { apEntry, type AtssLossEntry, rankSortEntry } from "./atss_losses.ts";
import type { AtssTargets } from "./atss_targets.ts";
import type { DetectorLosses } from "./detector.ts";
import type { AtssHeadOutput } from "./heads/atss_head.ts";

/** One loss of the PAA table. `centerness` here means the IoU-prediction branch. */
export interface PaaLossEntry extends AtssLossEntry {
  /** Weight of the GIoU term in the re-assignment score `focal + w · GIoU`. */
  scoreBoxWeight: number;
  /** `reg_covar` of the re-assignment's GMM. */
  regCovar: number;
  /**
   * The loss of a batch with no positive after re-assignment: what the
   * official heads return (graph-connected zeros for the ranking losses; the
   * focal loss of the all-negative anchors, zero box and IoU terms for
   * `focal`).
   */
  empty(out: AtssHeadOutput, flatCls: Tensor): DetectorLosses;
}

/** Graph-connected zeros named `names` (`box` from the regression output, the rest from the logits). */
function zeroParts(out: AtssHeadOutput, names: readonly string[]): DetectorLosses {
  const parts: Record<string, Tensor> = {};
  for (const name of names) parts[name] = mul(sum(name === "box" ? out.reg : out.cls), 0);
  const total = names.slice(1).reduce((t, n) => add(t, parts[n]), parts[names[0]]);
  return { total, parts, numPositives: 0 };
}

/** A ranking entry of the table: the shared recipe, PAA's scoring constants, zeros when empty. */
function rankingEntry(entry: AtssLossEntry, names: readonly string[]): PaaLossEntry {
  return {
    ...entry,
    scoreBoxWeight: 1,
    regCovar: 1e-5,
    empty: (out) => zeroParts(out, names),
  };
}

/** Focal loss of every anchor against the positives' classes (background: `C`). */
function focalAll(flatCls: Tensor, targets: AtssTargets | null, numImages: number): Tensor {
  const numClasses = flatCls.shape[1];
  const labels = new Int32Array(flatCls.shape[0]).fill(numClasses);
  targets?.index.forEach((i, p) => (labels[i] = targets.label[p]));
  const numPositives = targets?.index.length ?? 0;
  return sigmoidFocalLoss(flatCls, tensor(labels, [labels.length], { backend: flatCls.backend }), {
    reduction: "mean",
    avgFactor: Math.max(numPositives, numImages),
  });
}

/**
 * Stock PAA (mmdetection's `PAAHead.loss`): focal loss over every anchor
 * averaged over `max(P, images)`; GIoU times 1.3, weighted by each
 * positive's IoU (clamped at 1e-12) and divided by the sum of those weights;
 * BCE of the IoU branch against the IoU of the detached decoded box, times
 * 0.5, averaged over `P`.
 */
const PAA_FOCAL: PaaLossEntry = {
  centerness: true,
  scoreBoxWeight: 1.3,
  regCovar: 1e-6,
  compute({ out, targets, flatCls, posIndex, posBoxes, gtBox }) {
    const numPositives = targets.index.length;
    const cls = focalAll(flatCls, targets, out.cls.shape[0]);
    const iouTarget = noGrad(() => bboxOverlaps(detach(posBoxes), gtBox, { isAligned: true }));
    const iouLogits = indexSelect(reshape(out.centerness!, [flatCls.shape[0]]), 0, posIndex);
    const iou = mul(
      binaryCrossEntropyWithLogits(iouLogits, iouTarget, {
        reduction: "mean",
        avgFactor: numPositives,
      }),
      0.5,
    );
    const weights = noGrad(() => maximum(iouTarget, 1e-12));
    const giou = giouLoss(posBoxes, gtBox, { reduction: "none" });
    const box = mul(scoreWeightedMean(giou, weights, { eps: 0 }), 1.3);
    return { total: add(add(cls, box), iou), parts: { cls, box, iou }, numPositives };
  },
  empty(out, flatCls) {
    const cls = focalAll(flatCls, null, out.cls.shape[0]);
    const box = mul(sum(out.reg), 0), iou = mul(sum(out.centerness!), 0);
    return { total: add(add(cls, box), iou), parts: { cls, box, iou }, numPositives: 0 };
  },
};

/** The losses PAA can train with. */
export type PaaLoss = "brs" | "rs" | "bap" | "ap" | "focal";

/**
 * The PAA losses by name.
 *
 * @example
 * ```ts
 * import { PAA_LOSS_TABLE } from "./paa_losses.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(PAA_LOSS_TABLE.focal.centerness, true); // stock PAA's IoU branch
 * assert.equal(PAA_LOSS_TABLE.brs.centerness, false);
 * assert.equal(PAA_LOSS_TABLE.brs.scoreBoxWeight, 1);
 * assert.equal(PAA_LOSS_TABLE.focal.scoreBoxWeight, 1.3);
 * ```
 */
export const PAA_LOSS_TABLE: Readonly<Record<PaaLoss, PaaLossEntry>> = {
  brs: rankingEntry(rankSortEntry(bucketedRankSort), ["rank", "sort", "box"]),
  rs: rankingEntry(rankSortEntry(rankSort), ["rank", "sort", "box"]),
  bap: rankingEntry(apEntry(bucketedAp, { boxWeight: 1, delta: 0.5 }), ["ap", "box"]),
  ap: rankingEntry(apEntry(apLoss, { boxWeight: 1, delta: 0.5 }), ["ap", "box"]),
  focal: PAA_FOCAL,
};

/** The PAA losses by name, for command lines and configs. */
export const PAA_LOSSES: readonly PaaLoss[] = Object.keys(PAA_LOSS_TABLE) as PaaLoss[];

/**
 * The table entry of `name`.
 *
 * @example
 * ```ts
 * import { paaLoss } from "./paa_losses.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(paaLoss("bap").regCovar, 1e-5);
 * assert.throws(() => paaLoss("hinge"), /unknown loss "hinge"/);
 * ```
 *
 * @throws {RangeError} When `name` is not a PAA loss.
 */
export function paaLoss(name: string): PaaLossEntry {
  if (!Object.hasOwn(PAA_LOSS_TABLE, name)) {
    throw new RangeError(`Paa: unknown loss "${name}" (expected ${PAA_LOSSES.join(", ")})`);
  }
  return PAA_LOSS_TABLE[name as PaaLoss];
}

/**
 * PAA's re-assignment score of each candidate (mmdetection's
 * `get_pos_loss`), on the device and without recording a gradient: the focal
 * loss (γ 2, α 0.25) of its logits against its first-stage class, summed over
 * the classes, plus `boxWeight` times the GIoU loss of its decoded box
 * against its GT box.
 *
 * @example
 * ```ts ignore
 * const scores = await reassignScores(flatCls, flatReg, candidates, coder, 1).data(); // [P]
 * ```
 *
 * @param flatCls Logits `[N * A, C]`.
 * @param flatReg Box deltas `[N * A, 4]`.
 * @param candidates Flat index, class, anchor and GT box of each candidate.
 * @param coder The box coder.
 * @param boxWeight Weight of the GIoU term.
 * @returns `f32 [P]`.
 */
export function reassignScores(
  flatCls: Tensor,
  flatReg: Tensor,
  candidates: AtssTargets,
  coder: DeltaXywhCoder,
  boxWeight: number,
): Tensor {
  const backend: Backend = flatCls.backend;
  const p = candidates.index.length;
  return noGrad(() => {
    const index = tensor(candidates.index, [p], { backend });
    const labels = tensor(candidates.label, [p], { backend });
    const focal = sigmoidFocalLoss(indexSelect(flatCls, 0, index), labels, { reduction: "none" });
    const boxes = coder.decode(
      tensor(candidates.anchor, [p, 4], { backend }),
      indexSelect(flatReg, 0, index),
    );
    const giou = giouLoss(boxes, tensor(candidates.gtBox, [p, 4], { backend }), {
      reduction: "none",
    });
    return add(sum(focal, 1), mul(giou, boxWeight));
  });
}
