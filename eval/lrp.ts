/**
 * Optimal LRP (oLRP), as the LRP-Error evaluator (kemaloksuz/LRP-Error)
 * computes it with default parameters.
 *
 * Contract: detections are matched exactly as for COCO AP (see
 * `coco_match.ts`) at the single IoU threshold `tau`; for each category and
 * area range, LRP is evaluated at every prefix of the score-ordered detections
 * (maxDets 100) and the minimum is oLRP, with its components and the score
 * threshold where it is reached. Summary means skip NaN and `-1`.
 *
 * @module
 */

import type { CocoDataset, CocoDetection } from "../data/coco_types.ts";
import { matchAll, type Matches } from "./coco_match.ts";
import { A_N, type IouType, M_N } from "./params.ts";
import { describe, prepareCocoEval, type PreparedCocoEval, sequences } from "./prepare.ts";
import { meanValid, statLine } from "./summary.ts";

/** Options of {@linkcode evaluateLrp}. */
export interface LrpEvalOptions {
  /** Compare boxes (`"bbox"`, the default) or masks (`"segm"`). */
  iouType?: IouType;
  /** IoU that validates a true positive; the LRP-Error default is 0.5. */
  tau?: number;
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
 * oLRP per category and area range from matches whose first threshold is
 * `tau`: LRP at every prefix of the score-ordered detections (maxDets 100),
 * its minimum and components there, then the means and the printout.
 *
 * @example
 * ```ts
 * import { accumulateLrp } from "./lrp.ts";
 * import { matchAll } from "./coco_match.ts";
 * import { prepareCocoEval } from "./prepare.ts";
 * import assert from "node:assert/strict";
 *
 * const p = prepareCocoEval({
 *   images: [{ id: 4, width: 30, height: 30, file_name: "e.jpg" }],
 *   categories: [{ id: 1, name: "a" }],
 *   annotations: [{ id: 9, image_id: 4, category_id: 1, bbox: [0, 0, 10, 10], area: 100, iscrowd: 0 }],
 * }, [{ image_id: 4, category_id: 1, bbox: [0, 0, 10, 8], score: 0.7 }]);
 * const r = accumulateLrp(p, matchAll(p, [0.5]), 0.5);
 * // One true positive at IoU 0.8: only its localisation error counts, scaled by 1 / (1 - tau).
 * assert.ok(Math.abs(r.oLRP - 0.2 / 0.5) < 1e-12);
 * assert.equal(r.oLRPFN, 0);
 * assert.equal(r.perCategory[0].threshold[0], 0.7);
 * ```
 *
 * @param p The prepared evaluation.
 * @param mt Its matches; threshold index 0 must be `tau`.
 * @param tau The IoU that validates a true positive.
 * @returns Everything {@linkcode evaluateLrp} returns.
 */
export function accumulateLrp(p: PreparedCocoEval, mt: Matches, tau: number): LrpEvalResult {
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

/**
 * Validate LRP's `tau`.
 *
 * @example
 * ```ts
 * import { checkTau } from "./lrp.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(checkTau(0.5), 0.5);
 * assert.throws(() => checkTau(1), RangeError);
 * ```
 *
 * @param tau The value given.
 * @returns `tau`, when it is a number in (0, 1).
 * @throws {RangeError} Otherwise.
 */
export function checkTau(tau: number): number {
  if (typeof tau !== "number" || !(tau > 0 && tau < 1)) {
    throw new RangeError(`LRP tau must be in (0, 1), got ${describe(tau)}`);
  }
  return tau;
}

/**
 * Optimal LRP (oLRP) and its components, identical to the LRP-Error
 * evaluator's `COCOeval` (kemaloksuz/LRP-Error) with default parameters: the
 * same matching as COCO AP at IoU `tau`, minimised over every prefix of the
 * score-ordered detections of each category (maxDets 100).
 *
 * @example
 * ```ts
 * import { evaluateLrp } from "./lrp.ts";
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
