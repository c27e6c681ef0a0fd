/**
 * The rank-based RPN loss (`RankBasedRPNHead`; docs/departures.md, R1 and R3):
 * every anchor of every level takes part (max-IoU assignment, no sampling),
 * objectness is ranked by BRS (or RS) with δ 0.5 and IoU targets, boxes are
 * learnt by a score-weighted GIoU self-balanced against the ranking loss, and
 * the whole is multiplied by 0.2.
 *
 * Box frame (docs/departures.md, Q19): the official head decodes both the
 * predicted deltas and the target deltas (the anchor's GT encoded by the RPN
 * coder) with hard-coded stds `(0.1, 0.1, 0.2, 0.2)` around a unit anchor
 * centred at the origin, `[-0.5, -0.5, 0.5, 0.5]`. GIoU and the IoU targets are
 * computed on those boxes; with the RPN coder's own stds `(0.1, 0.1, 0.2, 0.2)`
 * they equal the image-space values.
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
import type { Anchors } from "./anchors.ts";
import type { DetectorLosses } from "./detector.ts";
import type { RpnHeadOutput } from "./heads/rpn_head.ts";
import { maxIouAssign, type MaxIouAssignOptions, RPN_ASSIGN } from "./max_iou_assigner.ts";

/** The unit anchor at the origin the official head decodes around (docs/departures.md, Q19). */
export const RPN_UNIT_ANCHOR: readonly [number, number, number, number] = Object.freeze(
  [-0.5, -0.5, 0.5, 0.5] as const,
);

/**
 * The official head's hard-coded decoding (docs/departures.md, Q19): stds
 * `(0.1, 0.1, 0.2, 0.2)`, means 0.
 */
export const RPN_UNIT_CODER: DeltaXywhCoder = new DeltaXywhCoder({
  means: [0, 0, 0, 0],
  stds: [0.1, 0.1, 0.2, 0.2],
});

/** The RPN's coder of targets (every non-DETR config: stds `(0.1, 0.1, 0.2, 0.2)`). */
const DEFAULT_RPN_CODER = new DeltaXywhCoder();

/** The host-built targets of a batch. */
export interface RpnTargets {
  /** Flat index (`image * A + anchor`) of each positive `[P]`. */
  index: Int32Array;
  /** Each positive's GT box in the unit-anchor frame `[P * 4]` (docs/departures.md, Q19). */
  unitBox: Float32Array;
  /**
   * `[N * A]` slot of each anchor in the target vector: 0 a negative, 1 an
   * ignored anchor, `p + 2` the `p`-th positive.
   */
  slots: Int32Array;
  /** Ignored anchors (IoU between the thresholds). */
  numIgnored: number;
}

/**
 * Boxes decoded around the unit anchor at the origin with the hard-coded
 * stds of the official head (docs/departures.md, Q19), on the host.
 *
 * @example The hand-computed case: `(1, -2, 0.5, -1)` gives centre `(0.1, -0.2)`, size `(e^0.1, e^-0.2)`
 * ```ts
 * import { decodeUnitHost } from "./rpn_loss.ts";
 * const [x1, y1, x2, y2] = decodeUnitHost(Float32Array.of(1, -2, 0.5, -1));
 * console.log(x1.toFixed(4), y1.toFixed(4), x2.toFixed(4), y2.toFixed(4)); // -0.4526 -0.6094 0.6526 0.2094
 * ```
 *
 * @param deltas `[P * 4]` offsets.
 * @returns `[P * 4]` xyxy boxes.
 */
export function decodeUnitHost(deltas: Float32Array): Float32Array {
  const anchors = new Float32Array(deltas.length);
  for (let i = 0; i < deltas.length; i += 4) anchors.set(RPN_UNIT_ANCHOR, i);
  return RPN_UNIT_CODER.decodeHost(anchors, deltas);
}

/** Options of {@linkcode rpnTargets}. */
export interface RpnTargetOptions {
  /** Thresholds; default {@linkcode RPN_ASSIGN} (0.7 / 0.3, low-quality at 0.3). */
  assign?: MaxIouAssignOptions;
  /** The RPN's coder of targets; default stds `(0.1, 0.1, 0.2, 0.2)`. */
  coder?: DeltaXywhCoder;
}

/**
 * Targets of a batch: {@linkcode maxIouAssign} on all anchors of all levels
 * of each image (no sampling); positives keep their GT box in the unit-anchor
 * frame, ignored anchors get slot 1 (target -1: left out of the ranking).
 *
 * @param anchors The anchors of the input (all levels, as `rpnAnchors` gives them).
 * @param boxes Per image `[G * 4]` xyxy GT boxes.
 * @param options Thresholds and coder.
 */
export function rpnTargets(
  anchors: Anchors,
  boxes: readonly Float32Array[],
  options: RpnTargetOptions = {},
): RpnTargets {
  const { assign = RPN_ASSIGN, coder = DEFAULT_RPN_CODER } = options;
  const numAnchors = anchors.boxes.length / 4;
  const slots = new Int32Array(boxes.length * numAnchors);
  const index: number[] = [], from: number[] = [], to: number[] = [];
  let numIgnored = 0;
  boxes.forEach((gt, image) => {
    const { gtIndex } = maxIouAssign(anchors.boxes, gt, assign);
    for (let a = 0; a < numAnchors; a++) {
      const g = gtIndex[a], flat = image * numAnchors + a;
      if (g === -1) continue;
      if (g < 0) {
        slots[flat] = 1;
        numIgnored++;
        continue;
      }
      slots[flat] = index.length + 2;
      index.push(flat);
      from.push(...anchors.boxes.subarray(4 * a, 4 * a + 4));
      to.push(gt[4 * g], gt[4 * g + 1], gt[4 * g + 2], gt[4 * g + 3]);
    }
  });
  return {
    index: Int32Array.from(index),
    unitBox: decodeUnitHost(coder.encodeHost(from, to)),
    slots,
    numIgnored,
  };
}

/** Options of {@linkcode rpnLoss}. */
export interface RpnLossOptions {
  /** The ranking loss: `"brs"` (default) or `"rs"`. */
  loss?: "brs" | "rs";
  /** δ of the ranking loss; default 0.5 (docs/departures.md, Q20). */
  delta?: number;
  /** Weight of the whole RPN loss (`head_weight`); default 0.2. */
  weight?: number;
}

const RANKING_OPS = { brs: bucketedRankSort, rs: rankSort } as const;

/**
 * The rank-based RPN loss of head outputs against host-built targets, on the
 * device with no readback: `weight * (L_rank + L_sort + SB * L_box)`, where
 * `L_box` is the GIoU of the positives' boxes decoded around the unit anchor,
 * weighted by their detached objectness probabilities, and the IoU target
 * of each positive is the IoU of its detached decoded box with its GT box.
 *
 * Without positives in the batch it follows the official head: ranking and
 * sorting losses are constants 1 (times `weight`) with zero gradient, and
 * there is no box term.
 *
 * @param out The head's outputs (`cls` `[N, A]`, `reg` `[N, A, 4]`).
 * @param targets {@linkcode rpnTargets} of the batch.
 * @param options Ranking loss, δ and weight.
 * @returns The total and its parts `rank`, `sort` and (with positives) `box`, each weighted.
 */
export function rpnLoss(
  out: RpnHeadOutput,
  targets: RpnTargets,
  options: RpnLossOptions = {},
): DetectorLosses {
  const { loss = "brs", delta = 0.5, weight = 0.2 } = options;
  const [n, numAnchors] = out.cls.shape;
  const backend: Backend = out.cls.backend;
  if (targets.slots.length !== n * numAnchors) {
    throw new RangeError(
      `rpnLoss: targets cover ${targets.slots.length} anchors, outputs ${n * numAnchors}`,
    );
  }
  const numPositives = targets.index.length;
  const logits = reshape(out.cls, [n * numAnchors]);
  if (numPositives === 0) {
    const one = add(mul(add(sum(logits), sum(out.reg)), 0), 1);
    const rank = mul(one, weight), sort = mul(one, weight);
    return { total: add(rank, sort), parts: { rank, sort }, numPositives };
  }
  const posIndex = tensor(targets.index, [numPositives], { backend });
  const flatReg = reshape(out.reg, [n * numAnchors, 4]);
  const unit = tensor(Float32Array.from(RPN_UNIT_ANCHOR), [1, 4], { backend });
  const posBoxes = RPN_UNIT_CODER.decode(unit, indexSelect(flatReg, 0, posIndex));
  const gtBox = tensor(targets.unitBox, [numPositives, 4], { backend });
  const iou = noGrad(() => bboxOverlaps(detach(posBoxes), gtBox, { isAligned: true }));
  // [0 (negative), -1 (ignored), IoU_1, ..., IoU_P] gathered by each anchor's slot.
  const targetVector = indexSelect(
    concat([full([1], 0, { backend }), full([1], -1, { backend }), reshape(iou, [numPositives])]),
    0,
    tensor(targets.slots, [targets.slots.length], { backend }),
  );
  const rs = RANKING_OPS[loss](logits, targetVector, { delta });
  const weights = scoreWeights(reshape(indexSelect(logits, 0, posIndex), [numPositives, 1]));
  const box = scoreWeightedMean(giouLoss(posBoxes, gtBox, { reduction: "none" }), weights);
  return { ...rankSortWithBox(rs.rankingLoss, rs.sortingLoss, box, weight), numPositives };
}
