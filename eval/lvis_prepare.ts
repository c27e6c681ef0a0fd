/**
 * LVIS' federated preparation (lvis-api's `LVISResults` and
 * `LVISEval._prepare`) on top of the COCO steps of `prepare.ts`: the same
 * validation, cells and IoUs, with LVIS' filters in between.
 *
 * Contract of {@linkcode prepareLvisEval}, in the order the rules take effect
 * (see `tests/fixtures/lvis_eval/README.md`):
 * 1. At most {@linkcode LVIS_MAX_DETS} detections per image, the best-scored
 *    (stable: ties keep input order), whatever their category.
 * 2. Ground truth and detections of an undeclared category are removed.
 * 3. Ground truth whose `area` field, and detections whose area (box `w * h`,
 *    or mask pixels when the first detection has no box), is not in `(0, ∞)`
 *    are removed.
 * 4. A detection is kept only if its category has ground truth on its image
 *    (positive) or is in the image's `neg_category_ids`.
 * 5. Cells keep every detection (no per-cell cap), IoU is never crowd IoU,
 *    `ignore: 1` ground truth is ignored, and in a cell whose category is in
 *    the image's `not_exhaustive_category_ids`, unmatched detections are
 *    ignored ({@linkcode PreparedCocoEval.cellUnmatchedIgnored}).
 *
 * @module
 */

import type { CocoDetection } from "../data/coco_types.ts";
import type { LvisDataset, LvisFrequency } from "../data/lvis_types.ts";
import { runsArea } from "../data/mask_runs.ts";
import type { IouType } from "./params.ts";
import {
  boxAreas,
  buildCells,
  type CellRules,
  describe,
  detectionRuns,
  evalSets,
  type PreparedCocoEval,
  selectDetections,
  selectGroundTruth,
  type Selection,
} from "./prepare.ts";
import { sortByScoreDesc } from "./sort.ts";

/** Detections kept per image, over all categories (lvis-api's `max_dets`). */
export const LVIS_MAX_DETS = 300;

/** The frequency groups in lvis-api's order: the index is a category's group code. */
export const LVIS_FREQUENCIES: readonly LvisFrequency[] = Object.freeze(["r", "c", "f"]);

/** What became of an input detection. */
export type LvisDetectionStatus =
  | "kept"
  | "capped"
  | "dropped_unknown_category"
  | "dropped_zero_area"
  | "dropped_not_labeled_on_image";

/** What became of each input detection: the index is the code in `detectionStatus`. */
export const LVIS_DETECTION_STATUS: readonly LvisDetectionStatus[] = Object.freeze([
  "kept",
  "capped",
  "dropped_unknown_category",
  "dropped_zero_area",
  "dropped_not_labeled_on_image",
]);

const KEPT = 0, CAPPED = 1, UNKNOWN_CATEGORY = 2, ZERO_AREA = 3, NOT_LABELED = 4;

/** lvis-api's cell rules: no per-cell cap, no crowd regions, the `ignore` flag honoured. */
export const LVIS_CELL_RULES: Readonly<CellRules> = Object.freeze({
  maxDetPerCell: Infinity,
  crowdRegions: false,
});

/** A {@linkcode PreparedCocoEval} under LVIS' rules, with what LVIS adds. */
export interface PreparedLvisEval extends PreparedCocoEval {
  /** Frequency group of each category index, as an index into {@linkcode LVIS_FREQUENCIES}. */
  readonly frequency: Uint8Array;
  /** What became of each input detection, as an index into {@linkcode LVIS_DETECTION_STATUS}. */
  readonly detectionStatus: Uint8Array;
}

/** The entries of `sel` for which `keep(j)` holds, `j` being the position in `sel`. */
function filterSelection<S extends Selection>(sel: S, keep: (j: number) => boolean): S {
  const out = { ...sel };
  const idx = sel.list.map((_, j) => j).filter(keep);
  for (const key of Object.keys(sel) as (keyof S)[]) {
    const v = sel[key];
    if (Array.isArray(v)) out[key] = idx.map((j) => v[j]) as S[keyof S];
  }
  return out;
}

/** An image's category-id list, checked. */
function idList(im: Record<string, unknown>, key: string): Set<number> {
  const v = im[key];
  if (!Array.isArray(v) || !v.every((x) => typeof x === "number")) {
    throw new TypeError(
      `Image ${im.id} has ${key} ${describe(v)}, expected an array of category ids`,
    );
  }
  return new Set(v);
}

/**
 * Flags the detections that the per-image cap keeps: per image, the
 * `maxDets` best by score (stable); every detection of an image with at most
 * `maxDets` is kept.
 *
 * @example
 * ```ts
 * import { capPerImage } from "./lvis_prepare.ts";
 * import assert from "node:assert/strict";
 *
 * const dets = [0.1, 0.9, 0.5, 0.5].map((score) => ({ image_id: 1, category_id: 1, score }));
 * assert.deepEqual([...capPerImage(dets, 2)], [0, 1, 1, 0]);
 * ```
 *
 * @param detections The detections (scores are read as numbers; validate them afterwards).
 * @param maxDets Detections kept per image.
 * @returns 1 for a kept detection, 0 for one cut, per input detection.
 */
export function capPerImage(
  detections: readonly Pick<CocoDetection, "image_id" | "score">[],
  maxDets: number,
): Uint8Array {
  const keep = new Uint8Array(detections.length).fill(1);
  const byImage = new Map<unknown, number[]>();
  detections.forEach((d, j) => {
    const list = byImage.get(d?.image_id);
    if (list) list.push(j);
    else byImage.set(d?.image_id, [j]);
  });
  const score = Float64Array.from(detections, (d) => Number(d?.score));
  for (const list of byImage.values()) {
    if (list.length <= maxDets) continue;
    const sorted = sortByScoreDesc(Int32Array.from(list), score);
    for (let r = maxDets; r < sorted.length; r++) keep[sorted[r]] = 0;
  }
  return keep;
}

/**
 * Validate the inputs and build the cells under LVIS' federated rules (see
 * the module doc).
 *
 * @example A negative category counts, an unlabeled one is dropped
 * ```ts
 * import { LVIS_DETECTION_STATUS, prepareLvisEval } from "./lvis_prepare.ts";
 * import type { LvisDataset } from "../data/lvis_types.ts";
 * import assert from "node:assert/strict";
 *
 * const cat = (id: number) => ({
 *   id, name: `c${id}`, frequency: "f" as const, image_count: 1, instance_count: 1,
 * });
 * const gt: LvisDataset = {
 *   images: [{
 *     id: 1, width: 50, height: 50, file_name: "a.jpg",
 *     neg_category_ids: [2], not_exhaustive_category_ids: [],
 *   }],
 *   categories: [cat(1), cat(2), cat(3)],
 *   annotations: [{ id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 9, 9], area: 81, iscrowd: 0 }],
 * };
 * const p = prepareLvisEval(gt, [1, 2, 3].map((c) => ({
 *   image_id: 1, category_id: c, bbox: [0, 0, 9, 9], score: 0.5,
 * })));
 * assert.deepEqual(
 *   [...p.detectionStatus].map((s) => LVIS_DETECTION_STATUS[s]),
 *   ["kept", "kept", "dropped_not_labeled_on_image"],
 * );
 * ```
 *
 * @param groundTruth An LVIS dataset object (`file_name` and `iscrowd` are not read).
 * @param detections A results array (may be empty).
 * @param iouType `"bbox"` or `"segm"`.
 * @returns The prepared cells.
 * @throws {TypeError} On a missing or mistyped field (bbox, score, segmentation, area, an
 *   image's category lists, a GT `ignore` flag).
 * @throws {RangeError} On a category whose frequency is not r, c or f, a detection for an
 *   image that is not in the ground truth, a non-finite score or box.
 */
export function prepareLvisEval(
  groundTruth: LvisDataset,
  detections: readonly CocoDetection[],
  iouType: IouType = "bbox",
): PreparedLvisEval {
  const sets = evalSets(groundTruth, detections, iouType);
  const I = sets.imageIds.length;
  const frequency = Uint8Array.from(sets.categories, (c) => {
    const f = LVIS_FREQUENCIES.indexOf(c.frequency as LvisFrequency);
    if (f < 0) {
      throw new RangeError(
        `Category ${c.id} has frequency ${describe(c.frequency)}, expected "r", "c" or "f"`,
      );
    }
    return f;
  });
  const negative = sets.images.map((im) => idList(im, "neg_category_ids"));
  const notExhaustive = sets.images.map((im) => idList(im, "not_exhaustive_category_ids"));

  // Ground truth: declared categories and areas in (0, inf); their categories are the positives.
  const anns = sets.annotations;
  let gt = selectGroundTruth(sets, iouType);
  gt = filterSelection(gt, (j) => {
    const a = anns[gt.list[j]];
    if (a.ignore !== undefined && ![0, 1, true, false].includes(a.ignore as number)) {
      throw new TypeError(`Annotation ${a.id} has ignore ${describe(a.ignore)}, expected 0 or 1`);
    }
    return a.area > 0 && a.area < Infinity;
  });
  const positive = new Set<number>(gt.cat.map((k, j) => k * I + gt.img[j]));

  // Detections: the cap first, then the category, area and federated filters.
  const status = new Uint8Array(detections.length);
  const keep = capPerImage(detections, LVIS_MAX_DETS);
  keep.forEach((v, j) => (status[j] = v ? UNKNOWN_CATEGORY : CAPPED));
  const boxPath = boxAreas(detections);
  let det = selectDetections(sets, detections, boxPath, keep);
  for (const j of det.list) status[j] = KEPT;
  det = filterSelection(det, (q) => {
    const j = det.list[q], d = detections[j];
    const area = boxPath ? d.bbox![2] * d.bbox![3] : runsArea(
      detectionRuns(detections, j, sets.images[det.img[q]].height, sets.images[det.img[q]].width)
        .counts,
    );
    if (!(area > 0 && area < Infinity)) {
      status[j] = ZERO_AREA;
      return false;
    }
    const k = det.cat[q], i = det.img[q];
    if (positive.has(k * I + i) || negative[i].has(sets.categoryIds[k])) return true;
    status[j] = NOT_LABELED;
    return false;
  });

  const p = buildCells(sets, detections, gt, det, iouType, boxPath, LVIS_CELL_RULES);
  for (let k = 0; k < sets.categoryIds.length; k++) {
    for (let c = p.cellStart[k]; c < p.cellStart[k + 1]; c++) {
      if (notExhaustive[p.cellImage[c]].has(sets.categoryIds[k])) p.cellUnmatchedIgnored[c] = 1;
    }
  }
  return { ...p, frequency, detectionStatus: status };
}
