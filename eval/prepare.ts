/**
 * The index every evaluation starts from: ground truth and detections
 * validated, grouped per (category, image) cell, detections sorted (and, for
 * COCO, capped), and every IoU computed once.
 *
 * Contract of {@linkcode prepareCocoEval} (rules of pycocotools' `loadRes` and
 * `COCOeval.evaluate`):
 * - Images and categories are deduplicated by id (the last entry wins) and
 *   indexed by ascending id; ground truth outside them is skipped, detections
 *   of an undeclared category are dropped and counted.
 * - A cell exists for each (category, image) with ground truth or detections;
 *   cells are laid out by category, then ascending image; a cell holds its
 *   ground truth in annotation order and its detections by descending score
 *   (stable), at most {@linkcode MAX_DET} of them.
 * - Each cell's IoU block is `[D][G]`, computed as boxes or masks per
 *   {@linkcode IouType}, with crowd ground truth scored as pycocotools does.
 *
 * The steps are exported one by one ({@linkcode evalSets},
 * {@linkcode selectGroundTruth}, {@linkcode selectDetections},
 * {@linkcode buildCells}) so that LVIS (`lvis_prepare.ts`) runs the same ones
 * with its own filters between them and its own {@linkcode CellRules}.
 *
 * {@linkcode sequences} gives the score-ordered detections of one category
 * that accumulation walks, for each of {@linkcode COCO_MAX_DETS}.
 *
 * @module
 */

import type {
  CocoBbox,
  CocoCategory,
  CocoDataset,
  CocoDetection,
  CocoImage,
  CocoSegmentation,
} from "../data/coco_types.ts";
import { iou as boxIou, segmentationRuns } from "../data/mask.ts";
import { type MaskRuns, runsArea, runsBbox, runsIou } from "../data/mask_runs.ts";
import { COCO_MAX_DETS, type IouType, MAX_DET } from "./params.ts";
import { sortByCell, sortByScoreDesc } from "./sort.ts";

/**
 * Ground truth and detections grouped per (category, image) cell, with sorted
 * detections and IoUs, ready for matching. Built by {@linkcode prepareCocoEval}
 * (or `prepareLvisEval`); `C` below is the number of cells, `G` the number of
 * ground truths kept and `N` the number of detections kept.
 */
export interface PreparedCocoEval {
  /** IoU type. */
  readonly iouType: IouType;
  /** Image ids, ascending. */
  readonly imageIds: number[];
  /** Category ids, ascending. */
  readonly categoryIds: number[];
  /** Category names, by category index. */
  readonly categoryNames: string[];
  /** Detections dropped for an undeclared category. */
  readonly droppedDetections: number;
  /** Cells of category k: `cellStart[k]` to `cellStart[k + 1]`, images ascending. */
  readonly cellStart: Int32Array;
  /** Image index (position in `imageIds`) of each cell (`C` entries). */
  readonly cellImage: Int32Array;
  /** GT range of each cell (`C + 1` entries). */
  readonly cellGt: Int32Array;
  /** Kept-detection range of each cell (`C + 1` entries). */
  readonly cellDet: Int32Array;
  /** Offset of each cell's `[D][G]` IoU block (`C + 1` entries). */
  readonly cellIou: Int32Array;
  /**
   * 1 where a cell's unmatched detections are ignored rather than false positives (LVIS: the
   * category is in the image's `not_exhaustive_category_ids`); all 0 for COCO (`C` entries).
   */
  readonly cellUnmatchedIgnored: Uint8Array;
  /** GT `area` field, per GT in cell order (`G`). */
  readonly gtArea: Float64Array;
  /** GT crowd flag: crowd IoU, and may be matched again (`G`). */
  readonly gtCrowd: Uint8Array;
  /** GT ignored at every area range (COCO: crowd; LVIS: the `ignore` flag) (`G`). */
  readonly gtIgnore: Uint8Array;
  /** Index of each GT in the ground truth's `annotations` (`G`). */
  readonly gtInput: Int32Array;
  /** Score of each kept detection (per cell: descending, stable) (`N`). */
  readonly detScore: Float64Array;
  /** Area of each kept detection as the reference's results loader gives it (`N`). */
  readonly detArea: Float64Array;
  /** Index of each kept detection in the detections array (`N`). */
  readonly detInput: Int32Array;
  /** IoU blocks, row = detection, column = GT in annotation order. */
  readonly ious: Float64Array;
}

/**
 * A value as error messages quote it: JSON, cut to 80 characters.
 *
 * @example
 * ```ts
 * import { describe } from "./prepare.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(describe([1, 2, "x"]), '[1,2,"x"]');
 * assert.equal(describe(undefined), "undefined");
 * assert.equal(describe("a".repeat(100)).length, 80);
 * ```
 *
 * @param v Any value.
 * @returns Its JSON text (or `String(v)` where JSON has none), at most 80 characters.
 */
export function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? s.slice(0, 77) + "..." : s;
}

function checkBox(box: unknown, what: string): CocoBbox {
  if (!Array.isArray(box) || box.length !== 4 || !box.every((v) => typeof v === "number")) {
    throw new TypeError(`${what} has bbox ${describe(box)}, expected [x, y, w, h]`);
  }
  if (!box.every(Number.isFinite)) {
    throw new RangeError(`${what} has non-finite bbox ${describe(box)}`);
  }
  return box as CocoBbox;
}

function checkArray(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new TypeError(`${what} must be an array, got ${describe(v)}`);
  return v;
}

function checkId(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new TypeError(`${what} must be a number, got ${describe(v)}`);
  }
  return v;
}

/** The same error class with the offending id in front of the message. */
function withContext(e: unknown, what: string): Error {
  const err = e instanceof Error ? e : new Error(String(e));
  const Ctor = err instanceof TypeError || err instanceof RangeError || err instanceof SyntaxError
    ? err.constructor as ErrorConstructor
    : Error;
  return new Ctor(`${what}: ${err.message}`, { cause: e });
}

/**
 * The evaluated sets of a ground truth, built by {@linkcode evalSets}: images
 * and categories deduplicated by id (the last entry wins) and indexed by
 * ascending id.
 */
export interface EvalSets {
  /** The ground truth's annotations (checked to be an array). */
  annotations: CocoDataset["annotations"];
  /** Image ids, ascending: the `I` axis. */
  imageIds: number[];
  /** Image entry of each image index. */
  images: CocoImage[];
  /** Image index of each image id. */
  imgIndex: Map<number, number>;
  /** Category ids, ascending: the `K` axis. */
  categoryIds: number[];
  /** Category entry of each category index. */
  categories: CocoCategory[];
  /** Category index of each category id. */
  catIndex: Map<number, number>;
}

/**
 * Check the top-level shape of the inputs and index the image and category
 * sets (the first step of every evaluation).
 *
 * @example Ids ascending, the last entry of a repeated id wins
 * ```ts
 * import { evalSets } from "./prepare.ts";
 * import assert from "node:assert/strict";
 *
 * const s = evalSets({
 *   images: [{ id: 9, width: 4, height: 4, file_name: "x.jpg" }],
 *   categories: [{ id: 3, name: "b" }, { id: 1, name: "a" }, { id: 3, name: "c" }],
 *   annotations: [],
 * }, [], "bbox");
 * assert.deepEqual(s.categoryIds, [1, 3]);
 * assert.equal(s.categories[1].name, "c");
 * assert.equal(s.catIndex.get(3), 1);
 * ```
 *
 * @param groundTruth A COCO (or LVIS) dataset object.
 * @param detections The detections (only checked to be an array here).
 * @param iouType `"bbox"` or `"segm"`.
 * @returns The indexed sets.
 * @throws {TypeError} On an unknown IoU type, a ground truth that is not an object, or
 *   images, categories, annotations or detections that are not arrays or ids that are not numbers.
 */
export function evalSets(
  groundTruth: CocoDataset,
  detections: readonly CocoDetection[],
  iouType: IouType,
): EvalSets {
  if (iouType !== "bbox" && iouType !== "segm") {
    throw new TypeError(`Unknown iouType ${describe(iouType)}, expected "bbox" or "segm"`);
  }
  if (groundTruth === null || typeof groundTruth !== "object") {
    throw new TypeError(`Ground truth must be a dataset object, got ${describe(groundTruth)}`);
  }
  const images = checkArray(groundTruth.images, "Ground truth images") as CocoImage[];
  const cats = checkArray(groundTruth.categories, "Ground truth categories") as CocoCategory[];
  const annotations = checkArray(
    groundTruth.annotations,
    "Ground truth annotations",
  ) as CocoDataset[
    "annotations"
  ];
  checkArray(detections, "Detections");
  const imageById = new Map<number, CocoImage>();
  images.forEach((im, i) => imageById.set(checkId(im?.id, `Image ${i} id`), im));
  const imageIds = [...imageById.keys()].sort((a, b) => a - b);
  const catById = new Map<number, CocoCategory>();
  cats.forEach((c, i) => catById.set(checkId(c?.id, `Category ${i} id`), c));
  const categoryIds = [...catById.keys()].sort((a, b) => a - b);
  return {
    annotations,
    imageIds,
    images: imageIds.map((id) => imageById.get(id)!),
    imgIndex: new Map(imageIds.map((id, i) => [id, i])),
    categoryIds,
    categories: categoryIds.map((id) => catById.get(id)!),
    catIndex: new Map(categoryIds.map((id, k) => [id, k])),
  };
}

/** Entries kept for evaluation: input index, category index and image index of each. */
export interface Selection {
  /** Index in the input array. */
  list: number[];
  /** Category index (position among the ascending category ids). */
  cat: number[];
  /** Image index (position among the ascending image ids). */
  img: number[];
}

/**
 * The ground truth in the evaluated (image, category) set, each entry
 * validated for the IoU type; entries of an unknown image or category are
 * skipped.
 *
 * @example
 * ```ts
 * import { evalSets, selectGroundTruth } from "./prepare.ts";
 * import assert from "node:assert/strict";
 *
 * const s = evalSets({
 *   images: [{ id: 1, width: 9, height: 9, file_name: "a.jpg" }],
 *   categories: [{ id: 2, name: "a" }],
 *   annotations: [
 *     { id: 1, image_id: 1, category_id: 5, bbox: [0, 0, 1, 1], area: 1, iscrowd: 0 },
 *     { id: 2, image_id: 1, category_id: 2, bbox: [0, 0, 1, 1], area: 1, iscrowd: 0 },
 *   ],
 * }, [], "bbox");
 * assert.deepEqual(selectGroundTruth(s, "bbox"), { list: [1], cat: [0], img: [0] });
 * ```
 *
 * @param sets The evaluated sets.
 * @param iouType What the IoU compares: `bbox` needs boxes, `segm` segmentations.
 * @returns The kept entries.
 * @throws {TypeError} On an annotation that is not an object, or with a missing or mistyped
 *   area, box or segmentation.
 * @throws {RangeError} On a non-finite box.
 */
export function selectGroundTruth(sets: EvalSets, iouType: IouType): Selection {
  const anns = sets.annotations;
  const sel: Selection = { list: [], cat: [], img: [] };
  for (let j = 0; j < anns.length; j++) {
    const a = anns[j];
    if (a === null || typeof a !== "object") {
      throw new TypeError(`Annotation ${j} must be an object, got ${describe(a)}`);
    }
    const i = sets.imgIndex.get(a.image_id), k = sets.catIndex.get(a.category_id);
    if (i === undefined || k === undefined) continue;
    if (typeof a.area !== "number" || Number.isNaN(a.area)) {
      throw new TypeError(`Annotation ${a.id} has area ${describe(a.area)}, expected a number`);
    }
    if (iouType === "bbox") checkBox(a.bbox, `Annotation ${a.id}`);
    else if (a.segmentation === undefined || a.segmentation === null) {
      throw new TypeError(`Annotation ${a.id} has no segmentation`);
    }
    sel.list.push(j);
    sel.cat.push(k);
    sel.img.push(i);
  }
  return sel;
}

/** Kept detections with their scores, and the count of those dropped. */
export interface DetectionSelection extends Selection {
  /** Score of each kept detection. */
  score: number[];
  /** Detections dropped for an undeclared category. */
  dropped: number;
}

/**
 * Whether the detection areas are box areas: pycocotools' `loadRes` (and
 * lvis-api's `LVISResults`) pick the rule from the first detection, box
 * `w * h` when it has a box, else the mask's pixel count.
 *
 * @example
 * ```ts
 * import { boxAreas } from "./prepare.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(boxAreas([{ image_id: 1, category_id: 1, bbox: [0, 0, 2, 3], score: 1 }]), true);
 * assert.equal(boxAreas([]), false);
 * ```
 *
 * @param detections The detections.
 * @returns True when the first detection carries a box.
 */
export function boxAreas(detections: readonly CocoDetection[]): boolean {
  const first = detections[0];
  return detections.length > 0 && Array.isArray(first?.bbox) && first.bbox.length > 0;
}

/**
 * Every detection validated (`boxPath`: all must carry a box), those of a
 * declared category kept with their scores, the others counted as dropped.
 * Detections with `keep[j] === 0` are validated but not kept (LVIS: cut by
 * the per-image cap).
 *
 * @example
 * ```ts
 * import { evalSets, selectDetections } from "./prepare.ts";
 * import type { CocoDataset, CocoDetection } from "../data/coco_types.ts";
 * import assert from "node:assert/strict";
 *
 * const gt: CocoDataset = {
 *   images: [{ id: 1, width: 9, height: 9, file_name: "a.jpg" }],
 *   categories: [{ id: 2, name: "a" }],
 *   annotations: [],
 * };
 * const dets: CocoDetection[] = [
 *   { image_id: 1, category_id: 2, bbox: [0, 0, 1, 1], score: 0.5 },
 *   { image_id: 1, category_id: 7, bbox: [0, 0, 1, 1], score: 0.4 },
 * ];
 * const sel = selectDetections(evalSets(gt, dets, "bbox"), dets, true);
 * assert.deepEqual(sel, { list: [0], cat: [0], img: [0], score: [0.5], dropped: 1 });
 * ```
 *
 * @param sets The evaluated sets.
 * @param detections The detections.
 * @param boxPath Every detection needs a box (see {@linkcode boxAreas}).
 * @param keep Optional flag per detection; 0 leaves it out (validated, not counted as dropped).
 * @returns The kept detections.
 * @throws {TypeError} On a detection that is not an object, or with a mistyped score, id, box
 *   or segmentation.
 * @throws {RangeError} On a non-finite score or box, or an image that is not in the ground truth.
 */
export function selectDetections(
  sets: EvalSets,
  detections: readonly CocoDetection[],
  boxPath: boolean,
  keep?: Uint8Array,
): DetectionSelection {
  const sel: DetectionSelection = { list: [], cat: [], img: [], score: [], dropped: 0 };
  for (let j = 0; j < detections.length; j++) {
    const d = detections[j];
    if (d === null || typeof d !== "object") {
      throw new TypeError(`Detection ${j} must be an object, got ${describe(d)}`);
    }
    if (typeof d.score !== "number") {
      throw new TypeError(`Detection ${j} has score ${describe(d.score)}, expected a number`);
    }
    if (!Number.isFinite(d.score)) throw new RangeError(`Detection ${j} has score ${d.score}`);
    const i = sets.imgIndex.get(checkId(d.image_id, `Detection ${j} image_id`));
    if (i === undefined) {
      throw new RangeError(
        `Detection ${j} has image_id ${d.image_id}, which is not in the ground truth`,
      );
    }
    checkId(d.category_id, `Detection ${j} category_id`);
    if (boxPath || d.bbox !== undefined) checkBox(d.bbox, `Detection ${j}`);
    if (!boxPath && (d.segmentation === undefined || d.segmentation === null)) {
      throw new TypeError(`Detection ${j} has neither a bbox nor a segmentation`);
    }
    if (keep && !keep[j]) continue;
    const k = sets.catIndex.get(d.category_id);
    if (k === undefined) {
      sel.dropped++;
      continue;
    }
    sel.list.push(j);
    sel.cat.push(k);
    sel.img.push(i);
    sel.score.push(d.score);
  }
  return sel;
}

/**
 * The mask of detection `j`: its segmentation, or its box as a polygon (what
 * `loadRes` and `LVISResults` give a detection without one).
 *
 * @example
 * ```ts
 * import { detectionRuns } from "./prepare.ts";
 * import { runsArea } from "../data/mask_runs.ts";
 * import assert from "node:assert/strict";
 *
 * const m = detectionRuns([{ image_id: 1, category_id: 1, bbox: [1, 1, 2, 3], score: 1 }], 0, 8, 8);
 * assert.equal(runsArea(m.counts), 6);
 * ```
 *
 * @param detections The detections.
 * @param j Index of the detection.
 * @param height Height of its image.
 * @param width Width of its image.
 * @returns The mask as run lengths.
 * @throws {TypeError} On a malformed segmentation, naming the detection.
 */
export function detectionRuns(
  detections: readonly CocoDetection[],
  j: number,
  height: number,
  width: number,
): MaskRuns {
  const d = detections[j];
  let seg = d.segmentation as CocoSegmentation | undefined;
  if (seg === undefined || seg === null) {
    const [x, y, w, h] = d.bbox!;
    seg = [[x, y, x, y + h, x + w, y + h, x + w, y]];
  }
  try {
    return segmentationRuns(seg, height, width);
  } catch (e) {
    throw withContext(e, `Detection ${j}`);
  }
}

/** Each entry's cell key `k * I + i`, and the entries ordered by cell (stable). */
function byCell(sel: Selection, K: number, I: number): { key: number[]; order: Int32Array } {
  return {
    key: sel.cat.map((k, j) => k * I + sel.img[j]),
    order: sortByCell(Int32Array.from(sel.cat), Int32Array.from(sel.img), K, I),
  };
}

/** How {@linkcode buildCells} treats ground truth and long cells: COCO's or LVIS' rules. */
export interface CellRules {
  /** Detections kept per cell, the best-scored first (COCO: {@linkcode MAX_DET}; LVIS: Infinity). */
  maxDetPerCell: number;
  /**
   * COCO: `iscrowd` ground truth is an ignore region scored with crowd IoU. Without it (LVIS),
   * `iscrowd` is not read, every IoU is plain and the `ignore` flag marks ignored ground truth.
   */
  crowdRegions: boolean;
}

/** pycocotools' rules for {@linkcode buildCells}. */
export const COCO_CELL_RULES: Readonly<CellRules> = Object.freeze({
  maxDetPerCell: MAX_DET,
  crowdRegions: true,
});

/**
 * Group the selected ground truth and detections into (category, image)
 * cells, sort each cell's detections by descending score (stable), keep the
 * first `rules.maxDetPerCell`, and compute every cell's IoU block.
 *
 * @example
 * ```ts
 * import {
 *   boxAreas, buildCells, COCO_CELL_RULES, evalSets, selectDetections, selectGroundTruth,
 * } from "./prepare.ts";
 * import type { CocoDataset, CocoDetection } from "../data/coco_types.ts";
 * import assert from "node:assert/strict";
 *
 * const gt: CocoDataset = {
 *   images: [{ id: 1, width: 9, height: 9, file_name: "a.jpg" }],
 *   categories: [{ id: 2, name: "a" }],
 *   annotations: [{ id: 4, image_id: 1, category_id: 2, bbox: [0, 0, 2, 2], area: 4, iscrowd: 0 }],
 * };
 * const dets: CocoDetection[] = [{ image_id: 1, category_id: 2, bbox: [0, 0, 2, 1], score: 0.5 }];
 * const s = evalSets(gt, dets, "bbox");
 * const gtSel = selectGroundTruth(s, "bbox"), detSel = selectDetections(s, dets, true);
 * const p = buildCells(s, dets, gtSel, detSel, "bbox", boxAreas(dets), COCO_CELL_RULES);
 * assert.deepEqual([...p.ious], [0.5]);
 * assert.deepEqual([...p.cellImage], [0]);
 * ```
 *
 * @param sets The evaluated sets.
 * @param detections The detections.
 * @param gt The selected ground truth.
 * @param det The selected detections.
 * @param iouType `"bbox"` or `"segm"`.
 * @param boxPath Detection areas are box areas (see {@linkcode boxAreas}).
 * @param rules Crowd handling and the per-cell cap.
 * @returns The prepared cells (`cellUnmatchedIgnored` all 0).
 * @throws {TypeError} On a malformed segmentation, naming the annotation or detection.
 */
export function buildCells(
  sets: EvalSets,
  detections: readonly CocoDetection[],
  gt: Selection,
  det: DetectionSelection,
  iouType: IouType,
  boxPath: boolean,
  rules: CellRules,
): PreparedCocoEval {
  const anns = sets.annotations;
  const K = sets.categoryIds.length, I = sets.imageIds.length;
  // Group by cell: ground truth in annotation order, detections by descending score (stable).
  const { key: gtKey, order: gOrd } = byCell(gt, K, I);
  const { key: detKey, order: dOrd } = byCell(det, K, I);
  const scoreIn = Float64Array.from(det.score);
  for (let lo = 0; lo < dOrd.length;) {
    let hi = lo + 1;
    while (hi < dOrd.length && detKey[dOrd[hi]] === detKey[dOrd[lo]]) hi++;
    const run = dOrd.subarray(lo, hi);
    const sorted = sortByScoreDesc(run, scoreIn);
    if (sorted !== run) run.set(sorted);
    lo = hi;
  }

  // One merge of both cell-ordered lists builds each cell: its GT, its first detections with
  // their areas, and their IoU block.
  const cellStart = new Int32Array(K + 1);
  const cellImage: number[] = [], cellGt: number[] = [0], cellDet: number[] = [0];
  const cellIou: number[] = [0];
  const gtArea: number[] = [], gtCrowd: number[] = [], gtIgnore: number[] = [];
  const gtInput: number[] = [], detScore: number[] = [], detArea: number[] = [];
  const detInput: number[] = [];
  let ious = new Float64Array(1024);
  let iouLen = 0;
  let gp = 0, dp = 0, nCells = 0;
  while (gp < gOrd.length || dp < dOrd.length) {
    const gk = gp < gOrd.length ? gtKey[gOrd[gp]] : Infinity;
    const dk = dp < dOrd.length ? detKey[dOrd[dp]] : Infinity;
    const key = Math.min(gk, dk);
    const k = Math.floor(key / I), i = key - k * I;
    const img = sets.images[i];
    const gs: number[] = [];
    while (gp < gOrd.length && gtKey[gOrd[gp]] === key) gs.push(gt.list[gOrd[gp++]]);
    const ds: number[] = [];
    while (dp < dOrd.length && detKey[dOrd[dp]] === key) {
      if (ds.length < rules.maxDetPerCell) ds.push(det.list[dOrd[dp]]);
      dp++;
    }
    const crowd = gs.map((g) => rules.crowdRegions && anns[g].iscrowd ? 1 : 0);
    gs.forEach((g, q) => {
      gtArea.push(anns[g].area);
      gtCrowd.push(crowd[q]);
      gtIgnore.push(rules.crowdRegions ? crowd[q] : anns[g].ignore ? 1 : 0);
      gtInput.push(g);
    });
    // Masks are needed for segm IoUs (only against some GT) and for areas off the box path.
    const needRuns = !boxPath || (iouType === "segm" && gs.length > 0);
    const dRuns = needRuns
      ? ds.map((j) => detectionRuns(detections, j, img.height, img.width))
      : [];
    ds.forEach((j, q) => {
      const d = detections[j];
      detScore.push(d.score);
      detArea.push(boxPath ? d.bbox![2] * d.bbox![3] : runsArea(dRuns[q].counts));
      detInput.push(j);
    });
    const n = gs.length * ds.length;
    if (n > 0) {
      if (iouLen + n > ious.length) {
        const grown = new Float64Array(Math.max(2 * ious.length, iouLen + n));
        grown.set(ious.subarray(0, iouLen));
        ious = grown;
      }
      if (iouType === "bbox") {
        const db = ds.map((j, q) => detections[j].bbox ?? runsBbox(dRuns[q]));
        const rows = boxIou(db, gs.map((g) => anns[g].bbox), crowd);
        for (let d = 0; d < rows.length; d++) ious.set(rows[d], iouLen + d * gs.length);
      } else {
        const gr = gs.map((g) => {
          try {
            return segmentationRuns(anns[g].segmentation!, img.height, img.width);
          } catch (e) {
            throw withContext(e, `Annotation ${anns[g].id}`);
          }
        });
        runsIou(dRuns, gr, crowd, ious, iouLen);
      }
      iouLen += n;
    }
    cellImage.push(i);
    cellStart[k + 1] = ++nCells;
    cellGt.push(gtArea.length);
    cellDet.push(detScore.length);
    cellIou.push(iouLen);
  }
  for (let k = 1; k <= K; k++) cellStart[k] = Math.max(cellStart[k], cellStart[k - 1]);
  return {
    iouType,
    imageIds: sets.imageIds,
    categoryIds: sets.categoryIds,
    categoryNames: sets.categories.map((c) => String(c.name ?? "")),
    droppedDetections: det.dropped,
    cellStart,
    cellImage: Int32Array.from(cellImage),
    cellGt: Int32Array.from(cellGt),
    cellDet: Int32Array.from(cellDet),
    cellIou: Int32Array.from(cellIou),
    cellUnmatchedIgnored: new Uint8Array(nCells),
    gtArea: Float64Array.from(gtArea),
    gtCrowd: Uint8Array.from(gtCrowd),
    gtIgnore: Uint8Array.from(gtIgnore),
    gtInput: Int32Array.from(gtInput),
    detScore: Float64Array.from(detScore),
    detArea: Float64Array.from(detArea),
    detInput: Int32Array.from(detInput),
    ious: ious.slice(0, iouLen),
  };
}

/**
 * Validate and group the inputs, sort detections and compute all IoUs: the
 * part of the work shared by COCO AP/AR and LRP. Rules follow pycocotools'
 * `loadRes` and `COCOeval.evaluate` (see `tests/fixtures/coco_eval/README.md`).
 *
 * @example One cell, detections by score, an undeclared category dropped
 * ```ts
 * import { prepareCocoEval } from "./prepare.ts";
 * import type { CocoDataset } from "../data/coco_types.ts";
 * import assert from "node:assert/strict";
 *
 * const gt: CocoDataset = {
 *   images: [{ id: 7, width: 64, height: 64, file_name: "b.jpg" }],
 *   categories: [{ id: 3, name: "cat" }],
 *   annotations: [{ id: 1, image_id: 7, category_id: 3, bbox: [0, 0, 8, 8], area: 64, iscrowd: 0 }],
 * };
 * const p = prepareCocoEval(gt, [
 *   { image_id: 7, category_id: 3, bbox: [0, 0, 8, 4], score: 0.2 },
 *   { image_id: 7, category_id: 3, bbox: [0, 0, 8, 8], score: 0.8 },
 *   { image_id: 7, category_id: 9, bbox: [0, 0, 8, 8], score: 0.5 },
 * ]);
 * assert.deepEqual([...p.detScore], [0.8, 0.2]);
 * assert.deepEqual([...p.ious], [1, 0.5]); // one row per detection, one column per GT
 * assert.equal(p.droppedDetections, 1);
 * ```
 *
 * @param groundTruth A COCO dataset object.
 * @param detections A COCO results array (may be empty).
 * @param iouType `"bbox"` or `"segm"`.
 * @returns The prepared cells.
 * @throws {TypeError} On a missing or mistyped field (bbox, score, segmentation, area).
 * @throws {RangeError} On a detection for an image that is not in the ground truth, a non-finite
 *   score or box.
 */
export function prepareCocoEval(
  groundTruth: CocoDataset,
  detections: readonly CocoDetection[],
  iouType: IouType = "bbox",
): PreparedCocoEval {
  const sets = evalSets(groundTruth, detections, iouType);
  const gt = selectGroundTruth(sets, iouType);
  const boxPath = boxAreas(detections);
  const det = selectDetections(sets, detections, boxPath);
  return buildCells(sets, detections, gt, det, iouType, boxPath, COCO_CELL_RULES);
}

/**
 * Every kept detection of category k, concatenated in ascending image order
 * (each image's by descending score) and stably sorted by descending score:
 * the sequence lvis-api's `accumulate` walks, and pycocotools' at maxDets 100.
 *
 * @example
 * ```ts
 * import { categorySequence, prepareCocoEval } from "./prepare.ts";
 * import assert from "node:assert/strict";
 *
 * const image = (id: number) => ({ id, width: 10, height: 10, file_name: `${id}.jpg` });
 * const p = prepareCocoEval(
 *   { images: [image(1), image(2)], categories: [{ id: 1, name: "a" }], annotations: [] },
 *   [
 *     { image_id: 2, category_id: 1, bbox: [0, 0, 4, 4], score: 0.5 },
 *     { image_id: 1, category_id: 1, bbox: [0, 0, 3, 3], score: 0.5 },
 *     { image_id: 1, category_id: 1, bbox: [0, 0, 2, 2], score: 0.9 },
 *   ],
 * );
 * // Ties keep image order: image 1's 0.5 comes before image 2's.
 * assert.deepEqual([...categorySequence(p, 0)].map((d) => p.detInput[d]), [2, 1, 0]);
 * ```
 *
 * @param p The prepared evaluation.
 * @param k Category index (position in `p.categoryIds`).
 * @returns Indices into the kept detections.
 */
export function categorySequence(p: PreparedCocoEval, k: number): Int32Array {
  const d0 = p.cellDet[p.cellStart[k]], n = p.cellDet[p.cellStart[k + 1]] - d0;
  const all = new Int32Array(n);
  for (let i = 0; i < n; i++) all[i] = d0 + i;
  return sortByScoreDesc(all, p.detScore);
}

/**
 * Detections of category k, first `maxDet` of each image, concatenated in
 * ascending image order and stably sorted by descending score, for each of
 * {@linkcode COCO_MAX_DETS}. Kept detections are stored in that concatenated
 * order, so one stable sort serves all three: each is a filter on the rank in
 * the image.
 *
 * @example Two images; maxDets 1 keeps the best detection of each
 * ```ts
 * import { prepareCocoEval, sequences } from "./prepare.ts";
 * import assert from "node:assert/strict";
 *
 * const image = (id: number) => ({ id, width: 10, height: 10, file_name: `${id}.jpg` });
 * const p = prepareCocoEval(
 *   { images: [image(1), image(2)], categories: [{ id: 1, name: "a" }], annotations: [] },
 *   [
 *     { image_id: 1, category_id: 1, bbox: [0, 0, 2, 2], score: 0.9 },
 *     { image_id: 1, category_id: 1, bbox: [0, 0, 3, 3], score: 0.3 },
 *     { image_id: 2, category_id: 1, bbox: [0, 0, 4, 4], score: 0.5 },
 *   ],
 * );
 * const [top1, top10, top100] = sequences(p, 0).map((s) => [...s].map((d) => p.detScore[d]));
 * assert.deepEqual(top1, [0.9, 0.5]);
 * assert.deepEqual(top10, [0.9, 0.5, 0.3]);
 * assert.deepEqual(top100, top10);
 * ```
 *
 * @param p The prepared evaluation.
 * @param k Category index (position in `p.categoryIds`).
 * @returns Indices into the kept detections, for maxDets 1, 10 and 100.
 */
export function sequences(p: PreparedCocoEval, k: number): Int32Array[] {
  const c0 = p.cellStart[k], c1 = p.cellStart[k + 1];
  const d0 = p.cellDet[c0], n = p.cellDet[c1] - d0;
  const rank = new Int32Array(n);
  for (let c = c0; c < c1; c++) {
    for (let d = p.cellDet[c]; d < p.cellDet[c + 1]; d++) rank[d - d0] = d - p.cellDet[c];
  }
  const sorted = categorySequence(p, k);
  return COCO_MAX_DETS.map((maxDet) => {
    if (maxDet >= MAX_DET) return sorted;
    let m = 0;
    for (let i = 0; i < n; i++) if (rank[sorted[i] - d0] < maxDet) m++;
    const out = new Int32Array(m);
    m = 0;
    for (let i = 0; i < n; i++) if (rank[sorted[i] - d0] < maxDet) out[m++] = sorted[i];
    return out;
  });
}
