/**
 * LVIS detection evaluation: AP/AR for `bbox` and `segm` IoU as lvis-api's
 * `LVISEval` computes them (`evaluate()`, `accumulate()`, `summarize()`),
 * with its federated rules, the 300-detections-per-image cap and the AP of
 * the rare, common and frequent category groups.
 *
 * The pieces are COCO's: `lvis_prepare.ts` runs the steps of `prepare.ts`
 * with LVIS' filters between them, `coco_match.ts` matches (the differences
 * are data of the prepared cells), `accumulate.ts` accumulates with one
 * sequence per category, and this module summarizes.
 *
 * Contract: {@linkcode evaluateLvis} equals lvis-api to 1e-6, with
 * `precision[T][R][K][A]` (index `((t * R + r) * K + k) * A + a`) and
 * `recall[T][K][A]` (index `(t * K + k) * A + a`), `T` =
 * {@linkcode COCO_IOU_THRESHOLDS}, `R` = the 101 recall thresholds of `params.ts`,
 * `K` = the ground truth's categories by ascending id, `A` =
 * {@linkcode COCO_AREA_LABELS}. `-1` marks entries that were not evaluated.
 *
 * @module
 */

import type { CocoDetection } from "../data/coco_types.ts";
import type { LvisDataset, LvisFrequency } from "../data/lvis_types.ts";
import { accumulateCurves } from "./accumulate.ts";
import { matchAll, type Matches } from "./coco_match.ts";
import {
  LVIS_DETECTION_STATUS,
  LVIS_FREQUENCIES,
  LVIS_MAX_DETS,
  type LvisDetectionStatus,
  type PreparedLvisEval,
  prepareLvisEval,
} from "./lvis_prepare.ts";
import { A_N, COCO_AREA_LABELS, COCO_IOU_THRESHOLDS, type IouType, R_N, T_N } from "./params.ts";
import { categorySequence } from "./prepare.ts";
import { statLine, summaryValue } from "./summary.ts";

/** One of lvis-api's 13 summary numbers. */
export type LvisStatName =
  | "AP"
  | "AP50"
  | "AP75"
  | "APs"
  | "APm"
  | "APl"
  | "APr"
  | "APc"
  | "APf"
  | "AR@300"
  | "ARs@300"
  | "ARm@300"
  | "ARl@300";

/** Names of the 13 summary numbers, in lvis-api's `results` order. */
export const LVIS_STAT_NAMES: readonly LvisStatName[] = Object.freeze([
  "AP",
  "AP50",
  "AP75",
  "APs",
  "APm",
  "APl",
  "APr",
  "APc",
  "APf",
  "AR@300",
  "ARs@300",
  "ARm@300",
  "ARl@300",
]);

/** The 13 summary numbers by name; `-1` where lvis-api gives -1 (nothing evaluated). */
export type LvisStats = Record<LvisStatName, number>;

/** The summary numbers that make sense for one category (no frequency groups). */
export type LvisCategoryStatName = Exclude<LvisStatName, "APr" | "APc" | "APf">;

/** Options of {@linkcode evaluateLvis}. */
export interface LvisEvalOptions {
  /** Compare boxes (`"bbox"`, the default) or masks (`"segm"`). */
  iouType?: IouType;
}

/** AP/AR of one category: the summary recipes restricted to it. */
export interface LvisCategoryResult {
  /** Category id. */
  categoryId: number;
  /** Category name from the ground truth. */
  name: string;
  /** Frequency group. */
  frequency: LvisFrequency;
  /** The summary numbers of this category alone (`-1` where not evaluated). */
  stats: Record<LvisCategoryStatName, number>;
}

/** Everything {@linkcode evaluateLvis} computes. See the module doc for array layouts. */
export interface LvisEvalResult {
  /** IoU type evaluated. */
  iouType: IouType;
  /** The 13 summary numbers. */
  stats: LvisStats;
  /** Per category (ascending id, the `K` axis). */
  perCategory: LvisCategoryResult[];
  /** Evaluated image ids, ascending. */
  imageIds: number[];
  /** Category ids, ascending (the `K` axis). */
  categoryIds: number[];
  /** Category ids of each frequency group, ascending. */
  frequencyGroups: Record<LvisFrequency, number[]>;
  /** Shape `[T, R, K, A]` of `precision`. */
  precisionShape: [number, number, number, number];
  /** Interpolated precision, flat `[T][R][K][A]`; `-1` where not evaluated. */
  precision: Float64Array;
  /** Shape `[T, K, A]` of `recall`. */
  recallShape: [number, number, number];
  /** Maximum recall, flat `[T][K][A]`; `-1` where not evaluated. */
  recall: Float64Array;
  /** What became of each input detection, as an index into {@linkcode LVIS_DETECTION_STATUS}. */
  detectionStatus: Uint8Array;
  /** How many input detections ended in each status. */
  detectionCounts: Record<LvisDetectionStatus, number>;
  /** Thirteen lines laid out like lvis-api's `print_results()`. */
  summary: string;
}

// name, AP (else AR), IoU index (-1: all), area index, frequency group (-1: all categories)
const STAT_SPECS: readonly (readonly [LvisStatName, boolean, number, number, number])[] = [
  ["AP", true, -1, 0, -1],
  ["AP50", true, 0, 0, -1],
  ["AP75", true, 5, 0, -1],
  ["APs", true, -1, 1, -1],
  ["APm", true, -1, 2, -1],
  ["APl", true, -1, 3, -1],
  ["APr", true, -1, 0, 0],
  ["APc", true, -1, 0, 1],
  ["APf", true, -1, 0, 2],
  ["AR@300", false, -1, 0, -1],
  ["ARs@300", false, -1, 1, -1],
  ["ARm@300", false, -1, 2, -1],
  ["ARl@300", false, -1, 3, -1],
];

/**
 * lvis-api's `accumulate()` and `summarize()`: precision and recall per
 * (threshold, category, area range) over every kept detection, then the 13
 * stats, the frequency groups' included.
 *
 * @example
 * ```ts
 * import { accumulateLvis } from "./lvis_eval.ts";
 * import { matchAll } from "./coco_match.ts";
 * import { prepareLvisEval } from "./lvis_prepare.ts";
 * import { COCO_IOU_THRESHOLDS } from "./params.ts";
 * import assert from "node:assert/strict";
 *
 * const p = prepareLvisEval({
 *   images: [{
 *     id: 3, width: 40, height: 40, file_name: "d.jpg",
 *     neg_category_ids: [], not_exhaustive_category_ids: [],
 *   }],
 *   categories: [
 *     { id: 1, name: "a", frequency: "r", image_count: 1, instance_count: 1 },
 *     { id: 2, name: "b", frequency: "f", image_count: 200, instance_count: 900 },
 *   ],
 *   annotations: [{ id: 1, image_id: 3, category_id: 2, bbox: [0, 0, 5, 5], area: 25, iscrowd: 0 }],
 * }, [{ image_id: 3, category_id: 2, bbox: [0, 0, 5, 5], score: 1 }]);
 * const r = accumulateLvis(p, matchAll(p, COCO_IOU_THRESHOLDS));
 * assert.deepEqual(r.precisionShape, [10, 101, 2, 4]);
 * assert.ok(Math.abs(r.stats.APf - 1) < 1e-12); // precision is tp / (tp + fp + eps)
 * assert.equal(r.stats.APr, -1); // the rare category has no ground truth
 * ```
 *
 * @param p The prepared evaluation.
 * @param mt Its matches at {@linkcode COCO_IOU_THRESHOLDS}.
 * @returns Everything {@linkcode evaluateLvis} returns.
 */
export function accumulateLvis(p: PreparedLvisEval, mt: Matches): LvisEvalResult {
  const K = p.categoryIds.length;
  const { precision, recall } = accumulateCurves(p, mt, 1, (k) => [categorySequence(p, k)]);
  const all = Array.from({ length: K }, (_, k) => k);
  const groups = LVIS_FREQUENCIES.map((_, f) => all.filter((k) => p.frequency[k] === f));
  const value = (ap: boolean, ti: number, a: number, ks: number[]) =>
    summaryValue(ap ? precision : recall, ap, { K, M: 1 }, ks, ti, a, 0);
  const stats = Object.fromEntries(
    STAT_SPECS.map(([name, ap, ti, a, g]) => [name, value(ap, ti, a, g < 0 ? all : groups[g])]),
  ) as LvisStats;
  const perCategory = p.categoryIds.map((id, k): LvisCategoryResult => ({
    categoryId: id,
    name: p.categoryNames[k],
    frequency: LVIS_FREQUENCIES[p.frequency[k]],
    stats: Object.fromEntries(
      STAT_SPECS.filter(([, , , , g]) => g < 0).map(([name, ap, ti, a]) => [
        name,
        value(ap, ti, a, [k]),
      ]),
    ) as Record<LvisCategoryStatName, number>,
  }));
  const detectionCounts = Object.fromEntries(
    LVIS_DETECTION_STATUS.map((s) => [s, 0]),
  ) as Record<LvisDetectionStatus, number>;
  for (const s of p.detectionStatus) detectionCounts[LVIS_DETECTION_STATUS[s]]++;
  return {
    iouType: p.iouType,
    stats,
    perCategory,
    imageIds: p.imageIds,
    categoryIds: p.categoryIds,
    frequencyGroups: Object.fromEntries(
      LVIS_FREQUENCIES.map((f, g) => [f, groups[g].map((k) => p.categoryIds[k])]),
    ) as Record<LvisFrequency, number[]>,
    precisionShape: [T_N, R_N, K, A_N],
    precision,
    recallShape: [T_N, K, A_N],
    recall,
    detectionStatus: p.detectionStatus,
    detectionCounts,
    summary: formatLvisSummary(stats),
  };
}

/**
 * Lay out the 13 stats like lvis-api's `print_results()`.
 *
 * @example
 * ```ts
 * import { formatLvisSummary, LVIS_STAT_NAMES, type LvisStats } from "./lvis_eval.ts";
 * import assert from "node:assert/strict";
 *
 * const stats = Object.fromEntries(LVIS_STAT_NAMES.map((n) => [n, 0.25])) as LvisStats;
 * const lines = formatLvisSummary({ ...stats, APr: -1 }).split("\n");
 * assert.equal(lines.length, 13);
 * assert.equal(
 *   lines[6],
 *   " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=300 catIds=  r] = -1.000",
 * );
 * assert.equal(
 *   lines[10],
 *   " Average Recall     (AR) @[ IoU=0.50:0.95 | area=     s | maxDets=300 catIds=all] = 0.250",
 * );
 * ```
 *
 * @param stats The 13 numbers.
 * @returns Thirteen lines joined by `\n`.
 * @throws {TypeError} When a stat is missing.
 */
export function formatLvisSummary(stats: LvisStats): string {
  return STAT_SPECS.map(([name, ap, ti, a, g]) => {
    if (typeof stats[name] !== "number") throw new TypeError(`Missing LVIS stat "${name}"`);
    return statLine(
      ap ? "Average Precision" : "Average Recall",
      ap ? "(AP)" : "(AR)",
      ti < 0 ? "0.50:0.95" : COCO_IOU_THRESHOLDS[ti].toFixed(2),
      a === 0 ? "all" : COCO_AREA_LABELS[a][0],
      LVIS_MAX_DETS,
      stats[name],
      g < 0 ? "all" : LVIS_FREQUENCIES[g],
    );
  }).join("\n");
}

/**
 * LVIS AP/AR of detections against an LVIS ground truth, identical (to 1e-6)
 * to lvis-api's `LVISEval` `run()` with default parameters: federated
 * filtering, at most 300 detections per image, unmatched detections on
 * not-exhaustive categories ignored, and AP per frequency group.
 *
 * Unlike lvis-api, an empty detection list is evaluated (AP/AR 0 where ground
 * truth exists), a detection on an image that is not in the ground truth is a
 * `RangeError` (lvis-api fails an assertion), and a ground truth annotation
 * with id 0 is matched like any other (lvis-api, like pycocotools, cannot
 * tell a match with GT id 0 from no match). The detection area used for the
 * filters and area ranges is the box `w * h` when the first detection has a
 * box, else the mask's pixel count; ground truth uses its `area` field.
 *
 * @example A negative category's detection is a false positive
 * ```ts
 * import { evaluateLvis } from "./lvis_eval.ts";
 * import type { LvisDataset } from "../data/lvis_types.ts";
 * import assert from "node:assert/strict";
 *
 * const gt: LvisDataset = {
 *   images: [{
 *     id: 1, width: 100, height: 100, file_name: "a.jpg",
 *     neg_category_ids: [2], not_exhaustive_category_ids: [],
 *   }],
 *   categories: [
 *     { id: 1, name: "box", frequency: "f", image_count: 400, instance_count: 900 },
 *     { id: 2, name: "ball", frequency: "c", image_count: 40, instance_count: 50 },
 *   ],
 *   annotations: [
 *     { id: 1, image_id: 1, category_id: 1, bbox: [10, 10, 20, 20], area: 400, iscrowd: 0 },
 *   ],
 * };
 * const r = evaluateLvis(gt, [
 *   { image_id: 1, category_id: 2, bbox: [10, 10, 20, 20], score: 0.95 },
 *   { image_id: 1, category_id: 1, bbox: [10, 10, 20, 20], score: 0.9 },
 * ]);
 * // Category 2 has no ground truth: it is not in the mean (precision is tp / (tp + fp + eps)).
 * assert.ok(Math.abs(r.stats.AP - 1) < 1e-12);
 * assert.equal(r.stats.APc, -1);
 * assert.equal(r.detectionCounts.kept, 2);
 * ```
 *
 * @param groundTruth An LVIS dataset object (`neg_category_ids`, `not_exhaustive_category_ids`
 *   and `frequency` are read; `file_name` and `iscrowd` are not).
 * @param detections A results array.
 * @param options IoU type.
 * @returns Stats, per-category numbers, precision/recall arrays and the printout.
 * @throws {TypeError} On a missing or mistyped field.
 * @throws {RangeError} On a bad frequency, a detection for an unknown image or with a
 *   non-finite score or box.
 */
export function evaluateLvis(
  groundTruth: LvisDataset,
  detections: readonly CocoDetection[],
  options: LvisEvalOptions = {},
): LvisEvalResult {
  const p = prepareLvisEval(groundTruth, detections, options.iouType ?? "bbox");
  return accumulateLvis(p, matchAll(p, COCO_IOU_THRESHOLDS));
}
