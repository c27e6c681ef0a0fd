/**
 * The rank-based RoI-head loss (`RankBasedShared2FCBBoxHead`;
 * docs/departures.md, R3 and R4): every RoI {@linkcode roiTargets} gives takes
 * part (no sampling); the sigmoid logits `[K, C]` are ranked by BRS (or RS)
 * with δ 0.5, the target of a positive's own class being the IoU of its
 * detached decoded box (the class-specific one, or the class-agnostic one in
 * Cascade R-CNN) with its GT box and every other entry 0; boxes are the
 * positives' deltas decoded around their RoIs (no clipping) and learnt by a
 * GIoU against the absolute GT boxes, weighted by the detached highest class
 * probability and self-balanced against the ranking loss.
 *
 * @module
 */

import { DeltaXywhCoder } from "../boxes/coder.ts";
import { bboxOverlaps } from "../boxes/box_ops.ts";
import { rankSortWithBox, scoreWeightedMean, scoreWeights } from "../losses/baselines/balance.ts";
import { giouLoss } from "../losses/baselines/iou_loss.ts";
import { bucketedRankSort, rankSort } from "../losses/ops/mod.ts";
import { detach, noGrad } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { concat } from "../tensor/ops/concat.ts";
import { full } from "../tensor/ops/creation.ts";
import { add, mul } from "../tensor/ops/elementwise.ts";
import { indexSelect } from "../tensor/ops/index.ts";
import { sum } from "../tensor/ops/reduce.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { tensor } from "../tensor/tensor.ts";
import type { DetectorLosses } from "./detector.ts";
import type { BBoxHeadOutput } from "./heads/roi_head.ts";
import type { RoiTargets } from "./roi_targets.ts";

/** Options of {@linkcode roiLoss}. */
export interface RoiLossOptions {
  /** The ranking loss: `"brs"` (default) or `"rs"`. */
  loss?: "brs" | "rs";
  /** δ of the ranking loss; default 0.5. */
  delta?: number;
  /** Weight of the whole loss (Cascade's stage weight); default 1. */
  weight?: number;
  /**
   * The RoI head's coder; default stds `(0.1, 0.1, 0.2, 0.2)`, which the
   * rank-based configs use for Faster R-CNN and for all three Cascade stages
   * (stock Cascade R-CNN narrows them at its later stages).
   */
  coder?: DeltaXywhCoder;
}

const RANKING_OPS = { brs: bucketedRankSort, rs: rankSort } as const;
const DEFAULT_CODER = new DeltaXywhCoder();

/**
 * The rank-based RoI loss of head outputs against {@linkcode roiTargets}:
 * `weight * (L_rank + L_sort + SB * L_box)`. Class-specific or
 * class-agnostic regression follows the width of `out.reg` (`4C` or `4`).
 *
 * Without positives (no GT box in the batch) it follows the official head:
 * ranking, sorting and box losses are constants 1 (times `weight`) with zero
 * gradient (unlike the official RPN head, whose no-positive case has no box
 * term).
 *
 * @param out The head's outputs (`cls` `[K, C]`, `reg` `[K, 4C]` or `[K, 4]`).
 * @param targets {@linkcode roiTargets} of the batch (the RoIs `out` was computed on).
 * @param options Ranking loss, δ, weight and coder.
 * @returns The total and its parts `rank`, `sort` and `box`, each weighted.
 * @throws {RangeError} When the targets and outputs disagree in RoIs or regression width.
 */
export function roiLoss(
  out: BBoxHeadOutput,
  targets: RoiTargets,
  options: RoiLossOptions = {},
): DetectorLosses {
  const { loss = "brs", delta = 0.5, weight = 1, coder = DEFAULT_CODER } = options;
  const [k, numClasses] = out.cls.shape;
  const backend: Backend = out.cls.backend;
  if (targets.labels.length !== k) {
    throw new RangeError(`roiLoss: targets cover ${targets.labels.length} RoIs, outputs ${k}`);
  }
  const regWidth = out.reg.shape[1];
  if (regWidth !== 4 && regWidth !== 4 * numClasses) {
    throw new RangeError(`roiLoss: ${regWidth} deltas per RoI for ${numClasses} classes`);
  }
  const positives: number[] = [];
  targets.labels.forEach((label, i) => {
    if (label >= numClasses) {
      throw new RangeError(`roiLoss: RoI ${i} has label ${label} with ${numClasses} classes`);
    }
    if (label >= 0) positives.push(i);
  });
  const numPositives = positives.length;
  const logits = reshape(out.cls, [k * numClasses]);
  if (numPositives === 0) {
    const one = add(mul(add(sum(logits), sum(out.reg)), 0), 1);
    const rank = mul(one, weight), sort = mul(one, weight), box = mul(one, weight);
    return { total: add(add(rank, sort), box), parts: { rank, sort, box }, numPositives };
  }
  // slots[i * C + c]: 0 for a zero target, p + 1 for the p-th positive's own class.
  const slots = new Int32Array(k * numClasses);
  const regRows = new Int32Array(numPositives), roiBoxes = new Float32Array(4 * numPositives);
  const gtBoxes = new Float32Array(4 * numPositives);
  positives.forEach((i, p) => {
    const label = targets.labels[i];
    slots[i * numClasses + label] = p + 1;
    regRows[p] = regWidth === 4 ? i : i * numClasses + label;
    roiBoxes.set(targets.rois.subarray(5 * i + 1, 5 * i + 5), 4 * p);
    gtBoxes.set(targets.gtBoxes.subarray(4 * i, 4 * i + 4), 4 * p);
  });
  const flatReg = reshape(out.reg, [k * (regWidth / 4), 4]);
  const posDeltas = indexSelect(flatReg, 0, tensor(regRows, [numPositives], { backend }));
  const posBoxes = coder.decode(tensor(roiBoxes, [numPositives, 4], { backend }), posDeltas);
  const gtBox = tensor(gtBoxes, [numPositives, 4], { backend });
  const iou = noGrad(() => bboxOverlaps(detach(posBoxes), gtBox, { isAligned: true }));
  const targetVector = indexSelect(
    concat([full([1], 0, { backend }), reshape(iou, [numPositives])]),
    0,
    tensor(slots, [slots.length], { backend }),
  );
  const rs = RANKING_OPS[loss](logits, targetVector, { delta });
  const posIndex = tensor(Int32Array.from(positives), [numPositives], { backend });
  const weights = scoreWeights(indexSelect(out.cls, 0, posIndex));
  const box = scoreWeightedMean(giouLoss(posBoxes, gtBox, { reduction: "none" }), weights);
  return { ...rankSortWithBox(rs.rankingLoss, rs.sortingLoss, box, weight), numPositives };
}
