/**
 * COCO detection evaluation: AP/AR for `bbox` and `segm` IoU, as pycocotools'
 * `COCOeval` computes them (`evaluate()`, `accumulate()`, `summarize()`) with
 * its default parameters (`params.ts`).
 *
 * The work is split the same way as in the reference: `prepare.ts` groups
 * ground truth and detections per (category, image), sorts detections by
 * score and computes the IoUs once; `coco_match.ts` matches them per area
 * range and IoU threshold into flat typed arrays; this module accumulates,
 * walking one stable, score-ordered sequence per (category, maxDets), and
 * summarizes.
 *
 * Contract: {@linkcode evaluateCoco} equals pycocotools to 1e-6 (usually bit
 * for bit), with the array layouts below.
 *
 * Array layouts (C order, like pycocotools' `eval` dictionary):
 * - `precision[T][R][K][A][M]`, `scores[T][R][K][A][M]`: index
 *   `(((t * R + r) * K + k) * A + a) * M + m`.
 * - `recall[T][K][A][M]`: index `((t * K + k) * A + a) * M + m`.
 *
 * with `T` = {@linkcode COCO_IOU_THRESHOLDS}, `R` = {@linkcode COCO_RECALL_THRESHOLDS},
 * `K` = the ground truth's categories by ascending id, `A` = {@linkcode COCO_AREA_LABELS},
 * `M` = {@linkcode COCO_MAX_DETS}. `-1` marks entries that were not evaluated.
 *
 * @module
 */

import type { CocoDataset, CocoDetection } from "../data/coco_types.ts";
import { accumulateCurves } from "./accumulate.ts";
import { matchAll, type Matches } from "./coco_match.ts";
import {
  A_N,
  COCO_AREA_LABELS,
  COCO_IOU_THRESHOLDS,
  COCO_MAX_DETS,
  type IouType,
  M_N,
  R_N,
  T_N,
} from "./params.ts";
import { prepareCocoEval, type PreparedCocoEval, sequences } from "./prepare.ts";
import { statLine, summaryValue } from "./summary.ts";

/** Names of the 12 summary numbers, in pycocotools' `stats` order. */
export const COCO_STAT_NAMES: readonly string[] = Object.freeze([
  "AP",
  "AP50",
  "AP75",
  "APs",
  "APm",
  "APl",
  "AR1",
  "AR10",
  "AR100",
  "ARs",
  "ARm",
  "ARl",
]);

/** Options of {@linkcode evaluateCoco}. */
export interface CocoEvalOptions {
  /** Compare boxes (`"bbox"`, the default) or masks (`"segm"`). */
  iouType?: IouType;
}

/** AP/AR of one category: the 12 summary numbers restricted to it. */
export interface CocoCategoryResult {
  /** Category id. */
  categoryId: number;
  /** Category name from the ground truth. */
  name: string;
  /** The 12 numbers in {@linkcode COCO_STAT_NAMES} order (`-1` where not evaluated). */
  stats: number[];
}

/** Everything {@linkcode evaluateCoco} computes. See the module doc for array layouts. */
export interface CocoEvalResult {
  /** IoU type evaluated. */
  iouType: IouType;
  /** The 12 summary numbers, in pycocotools' order ({@linkcode COCO_STAT_NAMES}); `-1` = no data. */
  stats: number[];
  /** Per category (ascending id, the `K` axis). */
  perCategory: CocoCategoryResult[];
  /** Evaluated image ids, ascending. */
  imageIds: number[];
  /** Category ids, ascending (the `K` axis). */
  categoryIds: number[];
  /** Shape `[T, R, K, A, M]` of `precision` and `scores`. */
  precisionShape: [number, number, number, number, number];
  /** Interpolated precision, flat `[T][R][K][A][M]`; `-1` where not evaluated. */
  precision: Float64Array;
  /** Score at which each precision entry is reached, same layout; `0` past the last recall. */
  scores: Float64Array;
  /** Shape `[T, K, A, M]` of `recall`. */
  recallShape: [number, number, number, number];
  /** Maximum recall, flat `[T][K][A][M]`; `-1` where not evaluated. */
  recall: Float64Array;
  /** Detections dropped because their category is not declared in the ground truth. */
  droppedDetections: number;
  /** Twelve lines laid out like pycocotools' `summarize()` printout. */
  summary: string;
}

/**
 * pycocotools' `accumulate()` and `summarize()`: precision, recall and scores
 * per (threshold, category, area range, maxDets), then the 12 stats.
 *
 * @example
 * ```ts
 * import { accumulateCoco } from "./coco_eval.ts";
 * import { matchAll } from "./coco_match.ts";
 * import { COCO_IOU_THRESHOLDS } from "./params.ts";
 * import { prepareCocoEval } from "./prepare.ts";
 * import assert from "node:assert/strict";
 *
 * const p = prepareCocoEval({
 *   images: [{ id: 3, width: 40, height: 40, file_name: "d.jpg" }],
 *   categories: [{ id: 1, name: "a" }, { id: 2, name: "b" }],
 *   annotations: [{ id: 1, image_id: 3, category_id: 2, bbox: [0, 0, 5, 5], area: 25, iscrowd: 0 }],
 * }, [{ image_id: 3, category_id: 2, bbox: [0, 0, 5, 5], score: 1 }]);
 * const r = accumulateCoco(p, matchAll(p, COCO_IOU_THRESHOLDS));
 * assert.deepEqual(r.precisionShape, [10, 101, 2, 4, 3]);
 * assert.equal(r.stats[8], 1); // AR100
 * assert.equal(r.perCategory[0].stats[0], -1); // category 1 has no ground truth
 * ```
 *
 * @param p The prepared evaluation.
 * @param mt Its matches at {@linkcode COCO_IOU_THRESHOLDS}.
 * @returns Everything {@linkcode evaluateCoco} returns.
 */
export function accumulateCoco(p: PreparedCocoEval, mt: Matches): CocoEvalResult {
  const K = p.categoryIds.length;
  const { precision, scores, recall } = accumulateCurves(p, mt, M_N, (k) => sequences(p, k));
  const all = Array.from({ length: K }, (_, k) => k);
  const stats = summaryStats(precision, recall, K, all);
  const perCategory = p.categoryIds.map((id, k) => ({
    categoryId: id,
    name: p.categoryNames[k],
    stats: summaryStats(precision, recall, K, [k]),
  }));
  return {
    iouType: p.iouType,
    stats,
    perCategory,
    imageIds: p.imageIds,
    categoryIds: p.categoryIds,
    precisionShape: [T_N, R_N, K, A_N, M_N],
    precision,
    scores,
    recallShape: [T_N, K, A_N, M_N],
    recall,
    droppedDetections: p.droppedDetections,
    summary: formatSummary(stats),
  };
}

// (ap, iou index or -1 for all, area index, maxDets index) of the 12 stats.
const STAT_SPECS: readonly (readonly [boolean, number, number, number])[] = [
  [true, -1, 0, 2],
  [true, 0, 0, 2],
  [true, 5, 0, 2],
  [true, -1, 1, 2],
  [true, -1, 2, 2],
  [true, -1, 3, 2],
  [false, -1, 0, 0],
  [false, -1, 0, 1],
  [false, -1, 0, 2],
  [false, -1, 1, 2],
  [false, -1, 2, 2],
  [false, -1, 3, 2],
];

function summaryStats(
  precision: Float64Array,
  recall: Float64Array,
  K: number,
  ks: number[],
): number[] {
  return STAT_SPECS.map(([ap, ti, a, m]) =>
    summaryValue(ap ? precision : recall, ap, { K, M: M_N }, ks, ti, a, m)
  );
}

/**
 * Lay out the 12 stats like pycocotools' `summarize()` printout.
 *
 * @example
 * ```ts
 * import { formatSummary } from "./coco_eval.ts";
 * import assert from "node:assert/strict";
 *
 * const lines = formatSummary([0.5, 0.7, 0.6, -1, 0.4, 0.55, 0.3, 0.5, 0.6, -1, 0.5, 0.65])
 *   .split("\n");
 * assert.equal(lines.length, 12);
 * assert.equal(
 *   lines[1],
 *   " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.700",
 * );
 * assert.equal(lines[9].slice(-6), "-1.000");
 * ```
 *
 * @param stats The 12 numbers in {@linkcode COCO_STAT_NAMES} order.
 * @returns Twelve lines joined by `\n`.
 * @throws {TypeError} When there are not 12 of them.
 */
export function formatSummary(stats: readonly number[]): string {
  if (stats.length !== 12) throw new TypeError(`Expected 12 stats, got ${stats.length}`);
  return STAT_SPECS.map(([ap, ti, a, m], i) =>
    statLine(
      ap ? "Average Precision" : "Average Recall",
      ap ? "(AP)" : "(AR)",
      ti < 0 ? "0.50:0.95" : COCO_IOU_THRESHOLDS[ti].toFixed(2),
      COCO_AREA_LABELS[a],
      COCO_MAX_DETS[m],
      stats[i],
    )
  ).join("\n");
}

/**
 * COCO AP/AR of detections against ground truth, identical (to 1e-6, usually
 * bit for bit) to pycocotools' `COCOeval` `evaluate()`, `accumulate()` and
 * `summarize()` with default parameters.
 *
 * Unlike pycocotools, an empty detection list is evaluated (AP/AR 0 where
 * ground truth exists), a detection on an image that is not in the ground
 * truth is a `RangeError` (pycocotools fails an assertion), and detections
 * without a box may carry polygons or uncompressed RLE too. Detections whose
 * category is not declared are dropped and counted in `droppedDetections`, as
 * pycocotools drops them silently. The detection area used for the area
 * ranges follows `loadRes`: box `w * h` when the first detection has a box,
 * else the mask's pixel count; ground truth always uses its `area` field.
 *
 * @example Two boxes, one found
 * ```ts
 * import { evaluateCoco } from "./coco_eval.ts";
 * import type { CocoDataset } from "../data/coco_types.ts";
 * import assert from "node:assert/strict";
 *
 * const gt: CocoDataset = {
 *   images: [{ id: 1, width: 100, height: 100, file_name: "a.jpg" }],
 *   categories: [{ id: 1, name: "box" }],
 *   annotations: [
 *     { id: 1, image_id: 1, category_id: 1, bbox: [10, 10, 20, 20], area: 400, iscrowd: 0 },
 *     { id: 2, image_id: 1, category_id: 1, bbox: [50, 50, 20, 20], area: 400, iscrowd: 0 },
 *   ],
 * };
 * const r = evaluateCoco(gt, [{ image_id: 1, category_id: 1, bbox: [10, 10, 20, 20], score: 0.9 }]);
 * // AP50: precision 1 at the 51 recall thresholds 0, 0.01, ..., 0.5, then 0.
 * assert.ok(Math.abs(r.stats[1] - 51 / 101) < 1e-12);
 * assert.equal(r.stats[8], 0.5); // AR100
 * ```
 *
 * @param groundTruth A COCO dataset object.
 * @param detections A COCO results array.
 * @param options IoU type.
 * @returns Stats, per-category numbers, precision/recall arrays and the printout.
 * @throws {TypeError} On a missing or mistyped field.
 * @throws {RangeError} On a detection for an unknown image or with a non-finite score or box.
 */
export function evaluateCoco(
  groundTruth: CocoDataset,
  detections: readonly CocoDetection[],
  options: CocoEvalOptions = {},
): CocoEvalResult {
  const p = prepareCocoEval(groundTruth, detections, options.iouType ?? "bbox");
  return accumulateCoco(p, matchAll(p, COCO_IOU_THRESHOLDS));
}
