/**
 * Test-time detections of a RoI head for one image, on the host
 * (`RankBasedShared2FCBBoxHead.get_bboxes` with mmdetection's
 * `multiclass_nms`): each RoI's deltas decoded around it and clipped to the
 * image, sigmoid scores above the threshold kept per (RoI, class), batched
 * NMS per class, then the highest `maxPerImage`.
 *
 * @module
 */

import { DeltaXywhCoder } from "../boxes/coder.ts";
import { batchedNmsKept } from "../boxes/nms.ts";

/** Options of {@linkcode roiDetections}. */
export interface RoiDetectionOptions {
  /**
   * Scores must be above this (mmdetection's `score_thr`); default 0.05 (the seeds' COCO configs
   * raise it to 0.40: docs/departures.md, R3).
   */
  scoreThreshold?: number;
  /** NMS IoU threshold per class; default 0.5. */
  iouThreshold?: number;
  /** Detections kept per image; default 100. */
  maxPerImage?: number;
  /** The head's coder; default stds `(0.1, 0.1, 0.2, 0.2)`. */
  coder?: DeltaXywhCoder;
}

/** Detections of one image, by descending score. */
export interface RoiDetections {
  /** `[D * 4]` xyxy boxes. */
  boxes: Float32Array;
  /** `[D]` scores. */
  scores: Float32Array;
  /** `[D]` class indices. */
  labels: Int32Array;
}

const DEFAULT_CODER = new DeltaXywhCoder();

/**
 * Detections of one image from its RoIs and the head's outputs.
 *
 * Candidates are taken in (RoI, class) row-major order, as
 * `multiclass_nms` flattens them, so equal scores keep that order.
 *
 * @example One RoI, two classes: only the class above the threshold is kept
 * ```ts
 * import { roiDetections } from "./roi_postprocess.ts";
 * const d = roiDetections(
 *   Float32Array.of(0, 0, 10, 10),
 *   Float32Array.of(0.9, 0.01),
 *   new Float32Array(8),
 *   [20, 20],
 * );
 * console.log(d.labels, d.boxes); // Int32Array [0] Float32Array [0, 0, 10, 10]
 * ```
 *
 * @param rois `[R * 4]` xyxy RoIs of the image (without the batch index).
 * @param scores `[R * C]` class probabilities (sigmoid of the logits).
 * @param deltas `[R * 4C]` class-specific or `[R * 4]` class-agnostic deltas.
 * @param imageShape `[height, width]` the boxes are clipped to.
 * @param options Threshold, NMS, cap and coder.
 * @throws {RangeError} When the lengths disagree.
 */
export function roiDetections(
  rois: ArrayLike<number>,
  scores: ArrayLike<number>,
  deltas: ArrayLike<number>,
  imageShape: readonly [number, number],
  options: RoiDetectionOptions = {},
): RoiDetections {
  const op = "roiDetections";
  const {
    scoreThreshold = 0.05,
    iouThreshold = 0.5,
    maxPerImage = 100,
    coder = DEFAULT_CODER,
  } = options;
  if (rois.length % 4 !== 0) {
    throw new RangeError(`${op}: ${rois.length} RoI coordinates are not a multiple of 4`);
  }
  const r = rois.length / 4;
  const empty = {
    boxes: new Float32Array(0),
    scores: new Float32Array(0),
    labels: new Int32Array(0),
  };
  if (r === 0) return empty;
  const c = scores.length / r;
  if (!Number.isInteger(c) || c < 1) {
    throw new RangeError(`${op}: ${scores.length} scores for ${r} RoIs`);
  }
  const agnostic = deltas.length === 4 * r;
  if (!agnostic && deltas.length !== 4 * r * c) {
    throw new RangeError(`${op}: ${deltas.length} deltas for ${r} RoIs and ${c} classes`);
  }
  const per = agnostic ? 1 : c;
  const anchors = new Float32Array(4 * r * per);
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < per; j++) {
      for (let k = 0; k < 4; k++) anchors[4 * (i * per + j) + k] = rois[4 * i + k];
    }
  }
  const decoded = coder.decodeHost(anchors, deltas, imageShape);
  const candBoxes: number[] = [], candScores: number[] = [], candLabels: number[] = [];
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < c; j++) {
      const s = scores[i * c + j];
      if (!(s > scoreThreshold)) continue;
      const row = agnostic ? i : i * c + j;
      for (let k = 0; k < 4; k++) candBoxes.push(decoded[4 * row + k]);
      candScores.push(s);
      candLabels.push(j);
    }
  }
  if (candScores.length === 0) return empty;
  const boxes = Float32Array.from(candBoxes), scoresF = Float32Array.from(candScores);
  const kept = batchedNmsKept(boxes, scoresF, candLabels, iouThreshold, maxPerImage);
  return { boxes: kept.boxes, scores: kept.scores, labels: kept.classes };
}
