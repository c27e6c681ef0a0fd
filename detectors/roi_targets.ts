/**
 * Targets of the RoI head (mmdetection's `StandardRoIHead._bbox_forward_train`
 * with the rank-based recipe, docs/departures.md, R3): per image, the
 * proposals are assigned by {@linkcode maxIouAssign} with one threshold for
 * positives and negatives (`pos_iou_thr = neg_iou_thr = min_pos_iou = 0.5`,
 * `match_low_quality=False`, no ignored band), the ground-truth boxes are
 * added as proposals (`add_gt_as_proposals=True`: each matches itself), and
 * nothing is sampled away (`RandomSampler(num=1e10)` keeps every positive and
 * every negative). Cascade R-CNN uses the same with 0.6 and 0.7 (R4).
 *
 * @module
 */

import { ASSIGN_NEGATIVE, maxIouAssign, type MaxIouAssignOptions } from "./max_iou_assigner.ts";

/** Options of {@linkcode roiTargets}. */
export interface RoiTargetOptions {
  /** IoU at or above which a RoI is a positive, and below which it is background (0.5; Cascade 0.5 / 0.6 / 0.7). */
  posIou: number;
  /** Prepend the ground-truth boxes to the proposals (mmdetection's `add_gt_as_proposals`); default true. */
  addGtAsProposals?: boolean;
}

/** The assigner settings of mmdetection's RoI head at threshold `posIou`. */
export function roiAssignOptions(posIou: number): MaxIouAssignOptions {
  return { posIou, negIou: posIou, minPosIou: posIou, lowQuality: false };
}

/** RoIs of a batch with their targets, in mmdetection's order. */
export interface RoiTargets {
  /** `[K * 5]` RoIs: batch index, then xyxy (mmdetection's `bbox2roi`). */
  rois: Float32Array;
  /** `[K]` class of each RoI's matched box, or -1 for background. */
  labels: Int32Array;
  /** `[K * 4]` xyxy box each positive RoI matched; zeros for background. */
  gtBoxes: Float32Array;
  /** `[K]` index of the matched box within its image's boxes, or -1 for background. */
  gtIndex: Int32Array;
  /** `[K]` IoU of each RoI with its best box (1 for an added ground-truth box, 0 without boxes). */
  maxIou: Float32Array;
  /** `[K]` 1 for a ground-truth box added as a RoI (`addGtAsProposals`), 0 for a proposal. */
  fromGt: Uint8Array;
  /** RoIs of each image (images are consecutive in the outputs). */
  perImage: number[];
  /** Positives of each image. */
  positivesPerImage: number[];
}

/**
 * Assigns the proposals of every image to its ground-truth boxes.
 *
 * Per image the RoIs come as mmdetection's sampler returns them: positives
 * first, then negatives, each in the order of the candidate list (the
 * ground-truth boxes, then the proposals). A ground-truth box is always a
 * positive of its own class (mmdetection's `add_gt_`), even when it overlaps
 * another box more.
 *
 * @example One box and two proposals: the box itself and one proposal are positives
 * ```ts
 * import { roiTargets } from "./roi_targets.ts";
 * const t = roiTargets(
 *   [Float32Array.of(0, 0, 10, 9, 50, 50, 60, 60)],
 *   [Float32Array.of(0, 0, 10, 10)],
 *   [Int32Array.of(3)],
 *   { posIou: 0.5 },
 * );
 * console.log(Array.from(t.labels)); // [3, 3, -1]
 * ```
 *
 * @param proposals Per image `[P * 4]` xyxy proposals (e.g. {@linkcode Proposals.boxes}).
 * @param gtBoxes Per image `[G * 4]` xyxy ground-truth boxes.
 * @param gtLabels Per image `[G]` class indices in `[0, C)`.
 * @param options The IoU threshold and whether the boxes join the proposals.
 * @throws {RangeError} When the image counts or box and label counts disagree.
 */
export function roiTargets(
  proposals: readonly ArrayLike<number>[],
  gtBoxes: readonly ArrayLike<number>[],
  gtLabels: readonly ArrayLike<number>[],
  options: RoiTargetOptions,
): RoiTargets {
  const op = "roiTargets";
  if (proposals.length !== gtBoxes.length || gtBoxes.length !== gtLabels.length) {
    throw new RangeError(
      `${op}: ${proposals.length} proposal lists, ${gtBoxes.length} box lists and ${gtLabels.length} label lists`,
    );
  }
  const addGt = options.addGtAsProposals ?? true;
  const assign = roiAssignOptions(options.posIou);
  const rois: number[] = [], labels: number[] = [], boxes: number[] = [];
  const gtIndex: number[] = [], maxIou: number[] = [], fromGt: number[] = [];
  const perImage: number[] = [], positivesPerImage: number[] = [];
  for (let b = 0; b < proposals.length; b++) {
    const props = proposals[b], gts = gtBoxes[b], cls = gtLabels[b];
    if (gts.length % 4 !== 0 || props.length % 4 !== 0) {
      throw new RangeError(`${op}: image ${b} has box coordinates that are not a multiple of 4`);
    }
    const numGt = gts.length / 4;
    if (cls.length !== numGt) {
      throw new RangeError(`${op}: image ${b} has ${numGt} boxes but ${cls.length} labels`);
    }
    const a = maxIouAssign(props, gts, assign);
    // Candidates: the boxes themselves (matching themselves), then the proposals.
    const extra = addGt ? numGt : 0;
    const count = extra + props.length / 4;
    const candGt = new Int32Array(count), candIou = new Float32Array(count);
    for (let g = 0; g < extra; g++) [candGt[g], candIou[g]] = [g, 1];
    candGt.set(a.gtIndex, extra);
    candIou.set(a.maxIou, extra);
    const box = (i: number, k: number) => i < extra ? gts[4 * i + k] : props[4 * (i - extra) + k];
    let positives = 0;
    for (const positive of [true, false]) {
      for (let i = 0; i < count; i++) {
        const g = candGt[i];
        // An ignored RoI (only a NaN IoU, with one threshold) is neither.
        if (positive ? g < 0 : g !== ASSIGN_NEGATIVE) continue;
        rois.push(b, box(i, 0), box(i, 1), box(i, 2), box(i, 3));
        gtIndex.push(g);
        maxIou.push(candIou[i]);
        fromGt.push(i < extra ? 1 : 0);
        if (positive) {
          positives++;
          labels.push(cls[g]);
          boxes.push(gts[4 * g], gts[4 * g + 1], gts[4 * g + 2], gts[4 * g + 3]);
        } else {
          labels.push(-1);
          boxes.push(0, 0, 0, 0);
        }
      }
    }
    perImage.push(count);
    positivesPerImage.push(positives);
  }
  return {
    rois: Float32Array.from(rois),
    labels: Int32Array.from(labels),
    gtBoxes: Float32Array.from(boxes),
    gtIndex: Int32Array.from(gtIndex),
    maxIou: Float32Array.from(maxIou),
    fromGt: Uint8Array.from(fromGt),
    perImage,
    positivesPerImage,
  };
}
