/**
 * COCO detection evaluation (AP/AR, as pycocotools' `COCOeval` computes them)
 * and optimal LRP (as the LRP-Error evaluator computes it), for `bbox` and
 * `segm` IoU, with pycocotools' default parameters.
 *
 * The work is split the same way as in the reference: `prepareCocoEval`
 * groups ground truth and detections per (image, category), sorts detections by
 * score and computes the IoUs once; matching runs per area range and IoU
 * threshold into flat typed arrays; accumulation walks one stable,
 * score-ordered sequence per (category, maxDets).
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

import type { CocoBbox, CocoDataset, CocoDetection, CocoSegmentation } from "../data/coco_types.ts";
import { iou as boxIou, segmentationRuns } from "../data/mask.ts";
import { type MaskRuns, runsArea, runsBbox, runsIou } from "../data/mask_runs.ts";

/** Which region the IoU compares: boxes or masks. */
export type IouType = "bbox" | "segm";

function linspace(start: number, stop: number, num: number): number[] {
  // numpy.linspace: i * step + start, with the last value set to `stop`.
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

/**
 * The 10 IoU thresholds, bit-identical to pycocotools' `np.linspace(.5, .95, 10)`
 * (the 9th is 0.8999999999999999).
 */
export const COCO_IOU_THRESHOLDS: readonly number[] = Object.freeze(linspace(0.5, 0.95, 10));

/**
 * The 101 recall thresholds `i * 0.01` (and exactly 1 at the end), bit-identical
 * to `np.linspace(0, 1, 101)`.
 */
export const COCO_RECALL_THRESHOLDS: readonly number[] = Object.freeze(linspace(0, 1, 101));

/** Area ranges `[lo, hi]` (both ends inclusive) for all, small, medium and large objects. */
export const COCO_AREA_RANGES: readonly (readonly [number, number])[] = Object.freeze(
  [
    [0, 1e10],
    [0, 32 ** 2],
    [32 ** 2, 96 ** 2],
    [96 ** 2, 1e10],
  ] as const,
);

/** Labels of {@linkcode COCO_AREA_RANGES}, the `A` axis. */
export const COCO_AREA_LABELS: readonly string[] = Object.freeze([
  "all",
  "small",
  "medium",
  "large",
]);

/** Detections kept per image and category, the `M` axis. */
export const COCO_MAX_DETS: readonly number[] = Object.freeze([1, 10, 100]);

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

const EPS = 2.220446049250313e-16; // numpy.spacing(1)
const RECALL_THRESHOLDS = Float64Array.from(COCO_RECALL_THRESHOLDS);
const T_N = 10;
const R_N = 101;
const A_N = 4;
const M_N = 3;
const MAX_DET = 100;

/** Options of {@linkcode evaluateCoco}. */
export interface CocoEvalOptions {
  /** Compare boxes (`"bbox"`, the default) or masks (`"segm"`). */
  iouType?: IouType;
}

/** Options of {@linkcode evaluateLrp}. */
export interface LrpEvalOptions {
  /** Compare boxes (`"bbox"`, the default) or masks (`"segm"`). */
  iouType?: IouType;
  /** IoU that validates a true positive; the LRP-Error default is 0.5. */
  tau?: number;
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

/** Optimal LRP of one category; each array holds area all, small, medium, large (maxDets 100). */
export interface LrpCategoryResult {
  /** Category id. */
  categoryId: number;
  /** Category name from the ground truth. */
  name: string;
  /** oLRP (`1` without any true positive, `-1` without ground truth). */
  oLRP: number[];
  /** Mean `1 - IoU` of the true positives at the optimum (NaN without true positives). */
  oLRPLoc: number[];
  /** False-positive rate at the optimum (NaN without true positives). */
  oLRPFP: number[];
  /** False-negative rate at the optimum. */
  oLRPFN: number[];
  /** LRP-optimal score threshold (NaN without true positives). */
  threshold: number[];
}

/** Everything {@linkcode evaluateLrp} computes. Means skip NaN and `-1`; `-1` when nothing is left. */
export interface LrpEvalResult {
  /** IoU type evaluated. */
  iouType: IouType;
  /** TP validation threshold. */
  tau: number;
  /** Mean oLRP over categories (area all, maxDets 100). */
  oLRP: number;
  /** Mean localisation component over categories with a true positive. */
  oLRPLoc: number;
  /** Mean false-positive component over categories with a true positive. */
  oLRPFP: number;
  /** Mean false-negative component. */
  oLRPFN: number;
  /** Mean oLRP for small objects. */
  oLRPSmall: number;
  /** Mean oLRP for medium objects. */
  oLRPMedium: number;
  /** Mean oLRP for large objects. */
  oLRPLarge: number;
  /** Per category (ascending id). */
  perCategory: LrpCategoryResult[];
  /** Detections dropped because their category is not declared in the ground truth. */
  droppedDetections: number;
  /** Lines laid out like the LRP-Error printout. */
  summary: string;
}

/**
 * Ground truth and detections grouped per (category, image) cell, with sorted
 * detections and IoUs, ready for matching. Built by `prepareCocoEval`.
 */
interface PreparedCocoEval {
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
  /** GT range of each cell (`C + 1` entries). */
  readonly cellGt: Int32Array;
  /** Kept-detection range of each cell (`C + 1` entries). */
  readonly cellDet: Int32Array;
  /** Offset of each cell's `[D][G]` IoU block (`C + 1` entries). */
  readonly cellIou: Int32Array;
  /** GT `area` field, per GT in cell order. */
  readonly gtArea: Float64Array;
  /** GT crowd flag. */
  readonly gtCrowd: Uint8Array;
  /** Score of each kept detection (per cell: descending, stable). */
  readonly detScore: Float64Array;
  /** Area of each kept detection as pycocotools' `loadRes` gives it. */
  readonly detArea: Float64Array;
  /** IoU blocks, row = detection, column = GT in annotation order. */
  readonly ious: Float64Array;
}

function describe(v: unknown): string {
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

/** Indices `0..n-1` stably sorted by (category, image): two counting-sort passes. */
function sortByCell(cat: Int32Array, img: Int32Array, K: number, I: number): Int32Array {
  const n = cat.length;
  const pass = (src: Int32Array, key: Int32Array, buckets: number): Int32Array => {
    const start = new Int32Array(buckets + 1);
    for (let j = 0; j < n; j++) start[key[src[j]] + 1]++;
    for (let b = 0; b < buckets; b++) start[b + 1] += start[b];
    const out = new Int32Array(n);
    for (let j = 0; j < n; j++) out[start[key[src[j]]]++] = src[j];
    return out;
  };
  const ident = new Int32Array(n);
  for (let j = 0; j < n; j++) ident[j] = j;
  return pass(pass(ident, img, I), cat, K);
}

/**
 * Stable sort of `idx` by descending `score[idx[i]]` (ties keep their order):
 * insertion sort of short runs, then bottom-up merges.
 */
function sortByScoreDesc(idx: Int32Array, score: Float64Array): Int32Array {
  const n = idx.length, RUN = 16;
  for (let lo = 0; lo < n; lo += RUN) {
    const hi = Math.min(lo + RUN, n);
    for (let i = lo + 1; i < hi; i++) {
      const v = idx[i], sv = score[v];
      let j = i - 1;
      while (j >= lo && score[idx[j]] < sv) {
        idx[j + 1] = idx[j];
        j--;
      }
      idx[j + 1] = v;
    }
  }
  if (n <= RUN) return idx;
  let src: Int32Array = idx, dst: Int32Array = new Int32Array(n);
  for (let width = RUN; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(lo + width, n), hi = Math.min(lo + 2 * width, n);
      let i = lo, j = mid, o = lo;
      while (i < mid && j < hi) dst[o++] = score[src[j]] > score[src[i]] ? src[j++] : src[i++];
      while (i < mid) dst[o++] = src[i++];
      while (j < hi) dst[o++] = src[j++];
    }
    const t = src;
    src = dst;
    dst = t;
  }
  return src;
}

/**
 * Validate and group the inputs, sort detections and compute all IoUs: the
 * part of the work shared by {@linkcode evaluateCoco} and {@linkcode evaluateLrp}.
 * Rules follow pycocotools' `loadRes` and `COCOeval.evaluate` (see
 * `tests/fixtures/coco_eval/README.md`).
 *
 * @param groundTruth A COCO dataset object.
 * @param detections A COCO results array (may be empty).
 * @param iouType `"bbox"` or `"segm"`.
 * @returns The prepared cells.
 * @throws {TypeError} On a missing or mistyped field (bbox, score, segmentation, area).
 * @throws {RangeError} On a detection for an image that is not in the ground truth, a non-finite
 *   score or box.
 */
function prepareCocoEval(
  groundTruth: CocoDataset,
  detections: readonly CocoDetection[],
  iouType: IouType = "bbox",
): PreparedCocoEval {
  if (iouType !== "bbox" && iouType !== "segm") {
    throw new TypeError(`Unknown iouType ${describe(iouType)}, expected "bbox" or "segm"`);
  }
  if (groundTruth === null || typeof groundTruth !== "object") {
    throw new TypeError(`Ground truth must be a COCO dataset object, got ${describe(groundTruth)}`);
  }
  const images = checkArray(groundTruth.images, "Ground truth images") as CocoDataset["images"];
  const cats = checkArray(groundTruth.categories, "Ground truth categories") as CocoDataset[
    "categories"
  ];
  const anns = checkArray(groundTruth.annotations, "Ground truth annotations") as CocoDataset[
    "annotations"
  ];
  checkArray(detections, "Detections");

  // Image and category sets: deduplicated, ascending ids (the last entry of an id wins).
  const imageById = new Map<number, { width: number; height: number }>();
  images.forEach((im, i) => imageById.set(checkId(im?.id, `Image ${i} id`), im));
  const imageIds = [...imageById.keys()].sort((a, b) => a - b);
  const imgIndex = new Map<number, number>(imageIds.map((id, i) => [id, i]));
  const catById = new Map<number, string>();
  cats.forEach((c, i) => catById.set(checkId(c?.id, `Category ${i} id`), String(c.name ?? "")));
  const categoryIds = [...catById.keys()].sort((a, b) => a - b);
  const catIndex = new Map<number, number>(categoryIds.map((id, k) => [id, k]));
  const categoryNames = categoryIds.map((id) => catById.get(id)!);
  const I = imageIds.length;

  // Ground truth in the evaluated (image, category) set, keyed k * I + i.
  const gtList: number[] = [], gtCat: number[] = [], gtImg: number[] = [];
  for (let j = 0; j < anns.length; j++) {
    const a = anns[j];
    if (a === null || typeof a !== "object") {
      throw new TypeError(`Annotation ${j} must be an object, got ${describe(a)}`);
    }
    const i = imgIndex.get(a.image_id), k = catIndex.get(a.category_id);
    if (i === undefined || k === undefined) continue;
    if (typeof a.area !== "number" || Number.isNaN(a.area)) {
      throw new TypeError(`Annotation ${a.id} has area ${describe(a.area)}, expected a number`);
    }
    if (iouType === "bbox") checkBox(a.bbox, `Annotation ${a.id}`);
    else if (a.segmentation === undefined || a.segmentation === null) {
      throw new TypeError(`Annotation ${a.id} has no segmentation`);
    }
    gtList.push(j);
    gtCat.push(k);
    gtImg.push(i);
  }

  // Detections: pycocotools' loadRes picks the area rule from the first detection.
  let dropped = 0;
  const first = detections[0];
  const boxPath = detections.length > 0 && Array.isArray(first?.bbox) && first.bbox.length > 0;
  const detList: number[] = [], detCat: number[] = [], detImg: number[] = [];
  const detScoreIn: number[] = [];
  for (let j = 0; j < detections.length; j++) {
    const d = detections[j];
    if (d === null || typeof d !== "object") {
      throw new TypeError(`Detection ${j} must be an object, got ${describe(d)}`);
    }
    if (typeof d.score !== "number") {
      throw new TypeError(`Detection ${j} has score ${describe(d.score)}, expected a number`);
    }
    if (!Number.isFinite(d.score)) throw new RangeError(`Detection ${j} has score ${d.score}`);
    const i = imgIndex.get(checkId(d.image_id, `Detection ${j} image_id`));
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
    const k = catIndex.get(d.category_id);
    if (k === undefined) {
      dropped++;
      continue;
    }
    detList.push(j);
    detCat.push(k);
    detImg.push(i);
    detScoreIn.push(d.score);
  }

  // Group by cell: ground truth in annotation order, detections by descending score (stable).
  const K = categoryIds.length;
  const gtKey = gtCat.map((k, j) => k * I + gtImg[j]);
  const detKey = detCat.map((k, j) => k * I + detImg[j]);
  const gOrd = sortByCell(Int32Array.from(gtCat), Int32Array.from(gtImg), K, I);
  const dOrd = sortByCell(Int32Array.from(detCat), Int32Array.from(detImg), K, I);
  const scoreIn = Float64Array.from(detScoreIn);
  for (let lo = 0; lo < dOrd.length;) {
    let hi = lo + 1;
    while (hi < dOrd.length && detKey[dOrd[hi]] === detKey[dOrd[lo]]) hi++;
    const run = dOrd.subarray(lo, hi);
    const sorted = sortByScoreDesc(run, scoreIn);
    if (sorted !== run) run.set(sorted);
    lo = hi;
  }
  const cellStart = new Int32Array(K + 1);
  const cellGt: number[] = [0], cellDet: number[] = [0], cellIou: number[] = [0];
  const gtArea: number[] = [], gtCrowd: number[] = [];
  const detScore: number[] = [], detArea: number[] = [];
  let ious = new Float64Array(1024);
  let iouLen = 0;
  const detRuns = (j: number, img: { height: number; width: number }): MaskRuns => {
    const d = detections[j];
    let seg = d.segmentation as CocoSegmentation | undefined;
    if (seg === undefined || seg === null) {
      const [x, y, w, h] = d.bbox!; // loadRes turns a box into a polygon mask
      seg = [[x, y, x, y + h, x + w, y + h, x + w, y]];
    }
    try {
      return segmentationRuns(seg, img.height, img.width);
    } catch (e) {
      throw withContext(e, `Detection ${j}`);
    }
  };
  let gp = 0, dp = 0, nCells = 0;
  while (gp < gOrd.length || dp < dOrd.length) {
    const gk = gp < gOrd.length ? gtKey[gOrd[gp]] : Infinity;
    const dk = dp < dOrd.length ? detKey[dOrd[dp]] : Infinity;
    const key = Math.min(gk, dk);
    const k = Math.floor(key / I), i = key - k * I;
    const img = imageById.get(imageIds[i])!;
    const gs: number[] = [];
    while (gp < gOrd.length && gtKey[gOrd[gp]] === key) gs.push(gtList[gOrd[gp++]]);
    const ds: number[] = [];
    while (dp < dOrd.length && detKey[dOrd[dp]] === key) {
      if (ds.length < MAX_DET) ds.push(detList[dOrd[dp]]);
      dp++;
    }
    for (const g of gs) {
      gtArea.push(anns[g].area);
      gtCrowd.push(anns[g].iscrowd ? 1 : 0);
    }
    // Masks are needed for segm IoUs (only against some GT) and for areas off the box path.
    const needRuns = !boxPath || (iouType === "segm" && gs.length > 0);
    const dRuns = needRuns ? ds.map((j) => detRuns(j, img)) : [];
    ds.forEach((j, q) => {
      const d = detections[j];
      detScore.push(d.score);
      detArea.push(boxPath ? d.bbox![2] * d.bbox![3] : runsArea(dRuns[q].counts));
    });
    const n = gs.length * ds.length;
    if (n > 0) {
      if (iouLen + n > ious.length) {
        const grown = new Float64Array(Math.max(2 * ious.length, iouLen + n));
        grown.set(ious.subarray(0, iouLen));
        ious = grown;
      }
      const crowd = gs.map((g) => anns[g].iscrowd ? 1 : 0);
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
    cellStart[k + 1] = ++nCells;
    cellGt.push(gtArea.length);
    cellDet.push(detScore.length);
    cellIou.push(iouLen);
  }
  for (let k = 1; k <= K; k++) cellStart[k] = Math.max(cellStart[k], cellStart[k - 1]);
  return {
    iouType,
    imageIds,
    categoryIds,
    categoryNames,
    droppedDetections: dropped,
    cellStart,
    cellGt: Int32Array.from(cellGt),
    cellDet: Int32Array.from(cellDet),
    cellIou: Int32Array.from(cellIou),
    gtArea: Float64Array.from(gtArea),
    gtCrowd: Uint8Array.from(gtCrowd),
    detScore: Float64Array.from(detScore),
    detArea: Float64Array.from(detArea),
    ious: ious.slice(0, iouLen),
  };
}

/** Per (area range, threshold) matching of every kept detection. */
interface Matches {
  /** Thresholds matched, the `t` axis. */
  nT: number;
  /**
   * Outcome per detection, area range and threshold, index `(d * A + a) * nT + t`:
   * 0 = false positive, 1 = true positive, 2 = ignored (matched to an ignored GT, or unmatched
   * and outside the area range).
   */
  state: Uint8Array;
  /** IoU with the matched GT at the first threshold (0 when unmatched), index `d * A + a`. */
  iou: Float64Array;
  /** Non-ignored GT count per (category, area range): `k * A + a`. */
  npig: Int32Array;
}

/** Scratch space of {@linkcode matchCell}, sized for the largest cell. */
interface MatchScratch {
  /** GT indices in matching order (non-ignored first). */
  order: Int32Array;
  /** Ignore flag per position of `order`. */
  gIg: Uint8Array;
  /** Crowd flag per position of `order`. */
  gCrowd: Uint8Array;
  /** `taken[j] === stamp` when GT `order[j]` is matched at the current threshold. */
  taken: Int32Array;
  /** Changes per (cell, area range, threshold), so `taken` never needs clearing. */
  stamp: number;
}

/**
 * Greedy matching of one cell at one area range, for every threshold (the
 * body of pycocotools' `evaluateImg`). Returns the number of non-ignored GT.
 */
function matchCell(
  p: PreparedCocoEval,
  c: number,
  a: number,
  thresholds: readonly number[],
  mt: Matches,
  s: MatchScratch,
): number {
  const g0 = p.cellGt[c], G = p.cellGt[c + 1] - g0;
  const d0 = p.cellDet[c], D = p.cellDet[c + 1] - d0;
  const iou0 = p.cellIou[c], nT = thresholds.length;
  const lo = COCO_AREA_RANGES[a][0], hi = COCO_AREA_RANGES[a][1];
  const { order, gIg, gCrowd, taken } = s;
  // Stable order: non-ignored GT first, then ignored, each in annotation order.
  let n = 0, npig = 0;
  for (let pass = 0; pass < 2; pass++) {
    for (let g = 0; g < G; g++) {
      const ar = p.gtArea[g0 + g];
      const ig = p.gtCrowd[g0 + g] || ar < lo || ar > hi ? 1 : 0;
      if (ig !== pass) continue;
      order[n] = g;
      gIg[n] = ig;
      gCrowd[n] = p.gtCrowd[g0 + g];
      n++;
    }
    if (pass === 0) npig = n;
  }
  for (let t = 0; t < nT; t++) {
    const stamp = ++s.stamp;
    for (let d = 0; d < D; d++) {
      let best = Math.min(thresholds[t], 1 - 1e-10);
      let m = -1;
      const row = iou0 + d * G;
      for (let j = 0; j < G; j++) {
        if (taken[j] === stamp && !gCrowd[j]) continue;
        if (m > -1 && gIg[m] === 0 && gIg[j] === 1) break;
        const v = p.ious[row + order[j]];
        if (v < best) continue;
        best = v;
        m = j;
      }
      const o = ((d0 + d) * A_N + a) * nT + t;
      if (m === -1) {
        const ar = p.detArea[d0 + d];
        mt.state[o] = ar < lo || ar > hi ? 2 : 0;
      } else {
        taken[m] = stamp;
        mt.state[o] = gIg[m] ? 2 : 1;
        if (t === 0) mt.iou[(d0 + d) * A_N + a] = best;
      }
    }
  }
  return npig;
}

function matchAll(p: PreparedCocoEval, thresholds: readonly number[]): Matches {
  const N = p.detScore.length, nT = thresholds.length, K = p.categoryIds.length;
  const mt: Matches = {
    nT,
    state: new Uint8Array(N * A_N * nT),
    iou: new Float64Array(A_N * N),
    npig: new Int32Array(K * A_N),
  };
  let maxG = 0;
  for (let c = 0; c + 1 < p.cellGt.length; c++) {
    maxG = Math.max(maxG, p.cellGt[c + 1] - p.cellGt[c]);
  }
  const s: MatchScratch = {
    order: new Int32Array(maxG),
    gIg: new Uint8Array(maxG),
    gCrowd: new Uint8Array(maxG),
    taken: new Int32Array(maxG),
    stamp: 0,
  };
  for (let k = 0; k < K; k++) {
    for (let c = p.cellStart[k]; c < p.cellStart[k + 1]; c++) {
      for (let a = 0; a < A_N; a++) mt.npig[k * A_N + a] += matchCell(p, c, a, thresholds, mt, s);
    }
  }
  return mt;
}

/**
 * Detections of category k, first `maxDet` of each image, concatenated in
 * ascending image order and stably sorted by descending score, for each of
 * {@linkcode COCO_MAX_DETS}. Kept detections are stored in that concatenated
 * order, so one stable sort serves all three: each is a filter on the rank in
 * the image.
 */
function sequences(p: PreparedCocoEval, k: number): Int32Array[] {
  const c0 = p.cellStart[k], c1 = p.cellStart[k + 1];
  const d0 = p.cellDet[c0], n = p.cellDet[c1] - d0;
  const rank = new Int32Array(n);
  for (let c = c0; c < c1; c++) {
    for (let d = p.cellDet[c]; d < p.cellDet[c + 1]; d++) rank[d - d0] = d - p.cellDet[c];
  }
  const all = new Int32Array(n);
  for (let i = 0; i < n; i++) all[i] = d0 + i;
  const sorted = sortByScoreDesc(all, p.detScore);
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

/** numpy's pairwise summation (`np.add.reduce` on a contiguous float64 array). */
function pairwiseSum(a: ArrayLike<number>, lo: number, n: number): number {
  if (n < 8) {
    let s = 0;
    for (let i = 0; i < n; i++) s += a[lo + i];
    return s;
  }
  if (n <= 128) {
    const r = [0, 0, 0, 0, 0, 0, 0, 0];
    for (let j = 0; j < 8; j++) r[j] = a[lo + j];
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += a[lo + i + j];
    let s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) s += a[lo + i];
    return s;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, lo, n2) + pairwiseSum(a, lo + n2, n - n2);
}

/** Mean of the entries > -1 (NaN skipped), `-1` when there are none, like pycocotools' summarize. */
function meanValid(values: number[]): number {
  const v = values.filter((x) => x > -1);
  return v.length === 0 ? -1 : pairwiseSum(v, 0, v.length) / v.length;
}

/**
 * Cumulative recall and precision (`tp / (tp + fp + eps)`) of a score-ordered
 * sequence at every threshold, into `rc` and `pr` laid out `[T][nd]`.
 */
function runningCurves(
  state: Uint8Array,
  seq: Int32Array,
  a: number,
  npig: number,
  rc: Float64Array,
  pr: Float64Array,
  tp: Int32Array,
  fp: Int32Array,
): void {
  const nd = seq.length;
  tp.fill(0);
  fp.fill(0);
  for (let j = 0; j < nd; j++) {
    const row = (seq[j] * A_N + a) * T_N;
    for (let t = 0; t < T_N; t++) {
      const st = state[row + t];
      if (st === 1) tp[t]++;
      else if (st === 0) fp[t]++;
      rc[t * nd + j] = tp[t] / npig;
      pr[t * nd + j] = tp[t] / (fp[t] + tp[t] + EPS);
    }
  }
}

/**
 * Precision envelope (running maximum from the right) and its value at the
 * first position reaching each recall threshold (0 past the last recall),
 * written `stride` apart from `out0`, with the score there.
 */
function interpolate(
  rc: Float64Array,
  pr: Float64Array,
  off: number,
  nd: number,
  seq: Int32Array,
  detScore: Float64Array,
  precision: Float64Array,
  scores: Float64Array,
  out0: number,
  stride: number,
): void {
  for (let j = nd - 1; j > 0; j--) {
    if (pr[off + j] > pr[off + j - 1]) pr[off + j - 1] = pr[off + j];
  }
  let j = 0;
  for (let r = 0; r < R_N; r++) {
    while (j < nd && rc[off + j] < RECALL_THRESHOLDS[r]) j++;
    const o = out0 + r * stride;
    precision[o] = j < nd ? pr[off + j] : 0;
    scores[o] = j < nd ? detScore[seq[j]] : 0;
  }
}

function accumulateCoco(p: PreparedCocoEval, mt: Matches): CocoEvalResult {
  const K = p.categoryIds.length;
  const precision = new Float64Array(T_N * R_N * K * A_N * M_N).fill(-1);
  const scores = new Float64Array(T_N * R_N * K * A_N * M_N).fill(-1);
  const recall = new Float64Array(T_N * K * A_N * M_N).fill(-1);
  // Running recall and precision of the T thresholds, `[T][nd]`, for one (k, m, a).
  let maxNd = 0;
  for (let k = 0; k < K; k++) {
    maxNd = Math.max(maxNd, p.cellDet[p.cellStart[k + 1]] - p.cellDet[p.cellStart[k]]);
  }
  const rc = new Float64Array(T_N * maxNd), pr = new Float64Array(T_N * maxNd);
  const tp = new Int32Array(T_N), fp = new Int32Array(T_N);
  for (let k = 0; k < K; k++) {
    if (p.cellStart[k] === p.cellStart[k + 1]) continue;
    const seqs = sequences(p, k);
    for (let m = 0; m < M_N; m++) {
      const seq = seqs[m];
      const nd = seq.length;
      for (let a = 0; a < A_N; a++) {
        const npig = mt.npig[k * A_N + a];
        if (npig === 0) continue;
        runningCurves(mt.state, seq, a, npig, rc, pr, tp, fp);
        for (let t = 0; t < T_N; t++) {
          const off = t * nd;
          recall[((t * K + k) * A_N + a) * M_N + m] = nd ? rc[off + nd - 1] : 0;
          interpolate(
            rc,
            pr,
            off,
            nd,
            seq,
            p.detScore,
            precision,
            scores,
            (t * R_N * K + k) * A_N * M_N + a * M_N + m,
            K * A_N * M_N,
          );
        }
      }
    }
  }
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
  return STAT_SPECS.map(([ap, ti, a, m]) => {
    const ts = ti < 0 ? Array.from({ length: T_N }, (_, t) => t) : [ti];
    const vals: number[] = [];
    for (const t of ts) {
      if (ap) {
        for (let r = 0; r < R_N; r++) {
          for (const k of ks) vals.push(precision[(((t * R_N + r) * K + k) * A_N + a) * M_N + m]);
        }
      } else {
        for (const k of ks) vals.push(recall[((t * K + k) * A_N + a) * M_N + m]);
      }
    }
    return meanValid(vals);
  });
}

/** Python's `'{:0.3f}'.format(x)`: exact value, ties to even. */
function fixed3(x: number): string {
  if (Number.isInteger(x * 16) && !Number.isInteger(x * 1000)) {
    const n = x * 1000; // exact for multiples of 1/16
    if (n - Math.floor(n) === 0.5) {
      const f = Math.floor(n);
      const even = f % 2 === 0 ? f : f + 1;
      return (even / 1000).toFixed(3);
    }
  }
  return x.toFixed(3);
}

function statLine(
  title: string,
  type: string,
  iou: string,
  area: string,
  maxDets: number,
  v: number,
) {
  return ` ${title.padEnd(18)} ${type} @[ IoU=${iou.padEnd(9)} | area=${area.padStart(6)} | ` +
    `maxDets=${String(maxDets).padStart(3)} ] = ${fixed3(v)}`;
}

/**
 * Lay out the 12 stats like pycocotools' `summarize()` printout.
 *
 * @param stats The 12 numbers in {@linkcode COCO_STAT_NAMES} order.
 * @returns Twelve lines joined by `\n`.
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

function accumulateLrp(p: PreparedCocoEval, mt: Matches, tau: number): LrpEvalResult {
  const K = p.categoryIds.length;
  const perCategory: LrpCategoryResult[] = p.categoryIds.map((id, k) => ({
    categoryId: id,
    name: p.categoryNames[k],
    oLRP: [-1, -1, -1, -1],
    oLRPLoc: [-1, -1, -1, -1],
    oLRPFP: [-1, -1, -1, -1],
    oLRPFN: [-1, -1, -1, -1],
    threshold: [-1, -1, -1, -1],
  }));
  for (let k = 0; k < K; k++) {
    if (p.cellStart[k] === p.cellStart[k + 1]) continue;
    const seq = sequences(p, k)[M_N - 1];
    const r = perCategory[k];
    for (let a = 0; a < A_N; a++) {
      const npig = mt.npig[k * A_N + a];
      if (npig === 0) continue;
      let tp = 0, fp = 0, iouSum = 0, best = Infinity, at = -1;
      let bTp = 0, bFp = 0, bLoc = 0;
      for (let j = 0; j < seq.length; j++) {
        const st = mt.state[(seq[j] * A_N + a) * mt.nT]; // threshold index 0: tau
        if (st === 1) {
          tp++;
          iouSum += mt.iou[seq[j] * A_N + a];
        } else if (st === 0) fp++;
        const loc = tp - iouSum, fn = npig - tp;
        const lrp = (loc / (1 - tau) + fp + fn) / (tp + fp + fn);
        if (lrp < best) {
          best = lrp;
          at = j;
          bTp = tp;
          bFp = fp;
          bLoc = loc;
        }
      }
      if (tp === 0) {
        r.oLRP[a] = 1;
        r.oLRPFN[a] = 1;
        r.oLRPLoc[a] = r.oLRPFP[a] = r.threshold[a] = NaN;
      } else {
        r.oLRP[a] = best;
        r.oLRPLoc[a] = bLoc / bTp;
        r.oLRPFP[a] = bFp / (bTp + bFp);
        r.oLRPFN[a] = (npig - bTp) / npig;
        r.threshold[a] = p.detScore[seq[at]];
      }
    }
  }
  const mean = (f: (c: LrpCategoryResult) => number) =>
    meanValid(perCategory.map(f).filter((v) => !Number.isNaN(v)));
  const res = {
    iouType: p.iouType,
    tau,
    oLRP: mean((c) => c.oLRP[0]),
    oLRPLoc: mean((c) => c.oLRPLoc[0]),
    oLRPFP: mean((c) => c.oLRPFP[0]),
    oLRPFN: mean((c) => c.oLRPFN[0]),
    oLRPSmall: mean((c) => c.oLRP[1]),
    oLRPMedium: mean((c) => c.oLRP[2]),
    oLRPLarge: mean((c) => c.oLRP[3]),
    perCategory,
    droppedDetections: p.droppedDetections,
    summary: "",
  };
  const iou = tau.toFixed(2);
  res.summary = [
    statLine("Optimal LRP", "    ", iou, "all", 100, res.oLRP),
    statLine("Optimal LRP Loc", "    ", iou, "all", 100, res.oLRPLoc),
    statLine("Optimal LRP FP", "    ", iou, "all", 100, res.oLRPFP),
    statLine("Optimal LRP FN", "    ", iou, "all", 100, res.oLRPFN),
    statLine("Optimal LRP", "    ", iou, "small", 100, res.oLRPSmall),
    statLine("Optimal LRP", "    ", iou, "medium", 100, res.oLRPMedium),
    statLine("Optimal LRP", "    ", iou, "large", 100, res.oLRPLarge),
  ].join("\n");
  return res;
}

function checkTau(tau: number): number {
  if (typeof tau !== "number" || !(tau > 0 && tau < 1)) {
    throw new RangeError(`LRP tau must be in (0, 1), got ${describe(tau)}`);
  }
  return tau;
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

/**
 * Optimal LRP (oLRP) and its components, identical to the LRP-Error
 * evaluator's `COCOeval` (kemaloksuz/LRP-Error) with default parameters: the
 * same matching as COCO AP at IoU `tau`, minimised over every prefix of the
 * score-ordered detections of each category (maxDets 100).
 *
 * @example
 * ```ts
 * import { evaluateLrp } from "./coco_eval.ts";
 * import type { CocoDataset } from "../data/coco_types.ts";
 * import assert from "node:assert/strict";
 *
 * const gt: CocoDataset = {
 *   images: [{ id: 1, width: 100, height: 100, file_name: "a.jpg" }],
 *   categories: [{ id: 1, name: "box" }],
 *   annotations: [
 *     { id: 1, image_id: 1, category_id: 1, bbox: [10, 10, 20, 20], area: 400, iscrowd: 0 },
 *   ],
 * };
 * const r = evaluateLrp(gt, [{ image_id: 1, category_id: 1, bbox: [10, 10, 20, 20], score: 0.9 }]);
 * assert.equal(r.oLRP, 0);
 * assert.equal(r.perCategory[0].threshold[0], 0.9);
 * ```
 *
 * @param groundTruth A COCO dataset object.
 * @param detections A COCO results array.
 * @param options IoU type and `tau` (default 0.5).
 * @returns Summary means and per-category values (NaN where the reference gives NaN).
 * @throws {TypeError} On a missing or mistyped field.
 * @throws {RangeError} On a bad `tau`, or a detection for an unknown image or with a non-finite
 *   score or box.
 */
export function evaluateLrp(
  groundTruth: CocoDataset,
  detections: readonly CocoDetection[],
  options: LrpEvalOptions = {},
): LrpEvalResult {
  const tau = checkTau(options.tau ?? 0.5);
  const p = prepareCocoEval(groundTruth, detections, options.iouType ?? "bbox");
  return accumulateLrp(p, matchAll(p, [tau]), tau);
}

/**
 * COCO AP/AR and optimal LRP from one preparation (IoUs computed once), as
 * {@linkcode evaluateCoco} and {@linkcode evaluateLrp} return them.
 *
 * @param groundTruth A COCO dataset object.
 * @param detections A COCO results array.
 * @param options IoU type and LRP `tau`.
 * @returns Both results.
 */
export function evaluateCocoAndLrp(
  groundTruth: CocoDataset,
  detections: readonly CocoDetection[],
  options: LrpEvalOptions = {},
): { coco: CocoEvalResult; lrp: LrpEvalResult } {
  const tau = checkTau(options.tau ?? 0.5);
  const p = prepareCocoEval(groundTruth, detections, options.iouType ?? "bbox");
  const thresholds = [...COCO_IOU_THRESHOLDS];
  const ti = thresholds.indexOf(tau);
  const coco = matchAll(p, thresholds);
  return {
    coco: accumulateCoco(p, coco),
    lrp: accumulateLrp(p, ti === 0 ? coco : matchAll(p, [tau]), tau),
  };
}
