/**
 * mmdetection's `MaxIoUAssigner` on the host (the RPN's and the RoI heads'
 * assigner): each anchor takes the ground-truth box it overlaps most; at or
 * above `posIou` it is a positive for that box, below `negIou` a negative,
 * in between ignored. With low-quality matches on, every box whose best IoU
 * reaches `minPosIou` also claims each anchor that overlaps it by exactly that
 * best IoU (`gt_max_assign_all=True`), so that small boxes get an anchor.
 *
 * IoUs are mmdetection's `bbox_overlaps` (union floored at `1e-6`) through the
 * shared {@linkcode overlapHost} formula, computed in float32 as mmdetection
 * does on float32 tensors, so that ties fall where they fall there.
 *
 * @module
 */

import { overlapHost } from "../boxes/iou.ts";

/** {@linkcode MaxIouAssignment.gtIndex} of a negative anchor. */
export const ASSIGN_NEGATIVE: number = -1;
/** {@linkcode MaxIouAssignment.gtIndex} of an ignored anchor (IoU in `[negIou, posIou)`). */
export const ASSIGN_IGNORED: number = -2;

/** Thresholds of {@linkcode maxIouAssign}. */
export interface MaxIouAssignOptions {
  /** An anchor whose best IoU is at least this is a positive (RPN: 0.7). */
  posIou: number;
  /** An anchor whose best IoU is below this is a negative (RPN: 0.3). */
  negIou: number;
  /** Low-quality matches need a box's best IoU to reach this (RPN: 0.3). */
  minPosIou: number;
  /** Give each box the anchors of its best IoU (mmdetection's `match_low_quality`). */
  lowQuality: boolean;
}

/** The RPN's thresholds (Faster R-CNN, docs/departures.md, R3). */
export const RPN_ASSIGN: Readonly<MaxIouAssignOptions> = Object.freeze({
  posIou: 0.7,
  negIou: 0.3,
  minPosIou: 0.3,
  lowQuality: true,
});

/** What {@linkcode maxIouAssign} gives each anchor. */
export interface MaxIouAssignment {
  /**
   * `[A]` index of the assigned ground-truth box for a positive,
   * {@linkcode ASSIGN_NEGATIVE} (-1) for a negative, {@linkcode ASSIGN_IGNORED} (-2) for an
   * ignored anchor (mmdetection's `gt_inds` minus 1, with -2 for its -1).
   */
  gtIndex: Int32Array;
  /** `[A]` each anchor's highest IoU over all boxes (mmdetection's `max_overlaps`; 0 without boxes). */
  maxIou: Float32Array;
  /** Number of positives. */
  numPositives: number;
}

/**
 * Assigns anchors to ground-truth boxes by maximum IoU.
 *
 * Ties: an anchor equally close to two boxes takes the first (lower index),
 * as `torch.max`; low-quality matches are applied box by box in index order,
 * so a later box overrides an earlier one on an anchor both claim, and a
 * low-quality match overrides a regular positive of another box. Without
 * boxes every anchor is a negative.
 *
 * @example One box, three anchors: one positive, one ignored, one negative
 * ```ts
 * import { maxIouAssign, RPN_ASSIGN } from "./max_iou_assigner.ts";
 * const anchors = Float32Array.of(0, 0, 10, 10, 0, 0, 10, 20, 50, 50, 60, 60);
 * const r = maxIouAssign(anchors, Float32Array.of(0, 0, 10, 10), { ...RPN_ASSIGN, lowQuality: false });
 * console.log(Array.from(r.gtIndex)); // [0, -2, -1]
 * ```
 *
 * @param anchors `[A * 4]` xyxy anchors.
 * @param gtBoxes `[G * 4]` xyxy ground-truth boxes.
 * @param options Thresholds; {@linkcode RPN_ASSIGN} for the RPN.
 * @throws {RangeError} When a box array's length is not a multiple of 4 or `negIou > posIou`.
 */
export function maxIouAssign(
  anchors: ArrayLike<number>,
  gtBoxes: ArrayLike<number>,
  options: MaxIouAssignOptions,
): MaxIouAssignment {
  const { posIou, negIou, minPosIou, lowQuality } = options;
  if (anchors.length % 4 !== 0) {
    throw new RangeError(
      `maxIouAssign: ${anchors.length} anchor coordinates are not a multiple of 4`,
    );
  }
  if (gtBoxes.length % 4 !== 0) {
    throw new RangeError(`maxIouAssign: ${gtBoxes.length} box coordinates are not a multiple of 4`);
  }
  if (!(negIou <= posIou)) {
    throw new RangeError(`maxIouAssign: negIou ${negIou} is above posIou ${posIou}`);
  }
  const numAnchors = anchors.length / 4, numGt = gtBoxes.length / 4;
  const gtIndex = new Int32Array(numAnchors).fill(ASSIGN_NEGATIVE);
  const maxIou = new Float32Array(numAnchors);
  if (numGt === 0 || numAnchors === 0) return { gtIndex, maxIou, numPositives: 0 };

  // overlaps[g * A + a], float32 as mmdetection's bbox_overlaps.
  const overlaps = new Float32Array(numGt * numAnchors);
  const gtMax = new Float32Array(numGt).fill(-Infinity);
  const argmax = new Int32Array(numAnchors);
  for (let a = 0; a < numAnchors; a++) {
    let best = -Infinity, bestG = 0;
    for (let g = 0; g < numGt; g++) {
      const v = overlapHost(gtBoxes, g, anchors, a, "iou", 1e-6, Math.fround);
      overlaps[g * numAnchors + a] = v;
      if (v > best) [best, bestG] = [v, g];
      if (v > gtMax[g]) gtMax[g] = v;
    }
    maxIou[a] = best;
    argmax[a] = bestG;
  }
  for (let a = 0; a < numAnchors; a++) {
    const v = maxIou[a];
    if (v >= posIou) gtIndex[a] = argmax[a];
    else if (!(v < negIou)) gtIndex[a] = ASSIGN_IGNORED;
  }
  if (lowQuality) {
    for (let g = 0; g < numGt; g++) {
      if (!(gtMax[g] >= minPosIou)) continue;
      for (let a = 0; a < numAnchors; a++) {
        if (overlaps[g * numAnchors + a] === gtMax[g]) gtIndex[a] = g;
      }
    }
  }
  let numPositives = 0;
  for (let a = 0; a < numAnchors; a++) if (gtIndex[a] >= 0) numPositives++;
  return { gtIndex, maxIou, numPositives };
}
