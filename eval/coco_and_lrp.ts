/**
 * COCO AP/AR and optimal LRP of the same detections from one preparation: the
 * IoUs are computed once, and when `tau` is the first COCO IoU threshold
 * (0.5, the default) LRP reuses COCO's matching.
 *
 * Contract: {@linkcode evaluateCocoAndLrp} returns exactly what
 * `evaluateCoco` and `evaluateLrp` return for the same arguments.
 *
 * @module
 */

import type { CocoDataset, CocoDetection } from "../data/coco_types.ts";
import { accumulateCoco, type CocoEvalResult } from "./coco_eval.ts";
import { matchAll } from "./coco_match.ts";
import { accumulateLrp, checkTau, type LrpEvalOptions, type LrpEvalResult } from "./lrp.ts";
import { COCO_IOU_THRESHOLDS } from "./params.ts";
import { prepareCocoEval } from "./prepare.ts";

/**
 * COCO AP/AR and optimal LRP from one preparation (IoUs computed once), as
 * {@linkcode evaluateCoco} and {@linkcode evaluateLrp} return them.
 *
 * @example
 * ```ts
 * import { evaluateCocoAndLrp } from "./coco_and_lrp.ts";
 * import { evaluateCoco } from "./coco_eval.ts";
 * import { evaluateLrp } from "./lrp.ts";
 * import type { CocoDataset, CocoDetection } from "../data/coco_types.ts";
 * import assert from "node:assert/strict";
 *
 * const gt: CocoDataset = {
 *   images: [{ id: 2, width: 80, height: 80, file_name: "f.jpg" }],
 *   categories: [{ id: 5, name: "c" }],
 *   annotations: [
 *     { id: 1, image_id: 2, category_id: 5, bbox: [0, 0, 40, 40], area: 1600, iscrowd: 0 },
 *     { id: 2, image_id: 2, category_id: 5, bbox: [50, 50, 20, 20], area: 400, iscrowd: 0 },
 *   ],
 * };
 * const dets: CocoDetection[] = [
 *   { image_id: 2, category_id: 5, bbox: [2, 0, 40, 40], score: 0.9 },
 *   { image_id: 2, category_id: 5, bbox: [10, 60, 20, 20], score: 0.4 },
 * ];
 * const { coco, lrp } = evaluateCocoAndLrp(gt, dets, { tau: 0.5 });
 * assert.deepEqual(coco, evaluateCoco(gt, dets));
 * assert.deepEqual(lrp, evaluateLrp(gt, dets, { tau: 0.5 }));
 * ```
 *
 * @param groundTruth A COCO dataset object.
 * @param detections A COCO results array.
 * @param options IoU type and LRP `tau`.
 * @returns Both results.
 * @throws {TypeError} On a missing or mistyped field.
 * @throws {RangeError} On a bad `tau`, or a detection for an unknown image or with a non-finite
 *   score or box.
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
