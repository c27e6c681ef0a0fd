/**
 * Running a detector over a split and scoring it with COCO AP and LRP.
 *
 * @module
 */

import type { DetectionLoader } from "../data/loader.ts";
import { CocoIndex, toCocoDetections } from "../data/coco.ts";
import type { CocoDataset, CocoDetection } from "../data/coco_types.ts";
import type { Atss } from "../detectors/atss.ts";
import { evaluateCocoAndLrp } from "../eval/coco_eval.ts";
import type { CocoEvalResult, LrpEvalResult } from "../eval/coco_eval.ts";
import { tidy } from "../tensor/tensor.ts";

/** Detections of `model` on every batch of `loader` (epoch 0, no augmentation expected). */
export async function detectAll(
  model: Atss,
  loader: DetectionLoader,
  dataset: CocoDataset,
  onBatch?: (done: number) => void,
): Promise<CocoDetection[]> {
  const index = new CocoIndex(dataset);
  const detections: CocoDetection[] = [];
  model.eval();
  let done = 0;
  for await (const batch of loader.epoch(0)) {
    const images = tidy(() => model.images(batch));
    const scales = batch.meta.map((m) => [m.scaleX, m.scaleY] as [number, number]);
    const results = await model.predict(images, scales);
    images.dispose();
    results.forEach((r, i) => {
      const meta = batch.meta[i];
      // Undo a horizontal flip, if the loader applied one, in original-image pixels.
      if (meta.flipped) {
        for (let k = 0; k < r.scores.length; k++) {
          const x1 = r.boxes[4 * k], x2 = r.boxes[4 * k + 2];
          r.boxes[4 * k] = meta.originalWidth - x2;
          r.boxes[4 * k + 2] = meta.originalWidth - x1;
        }
      }
      detections.push(...toCocoDetections(index, meta.imageId, r.boxes, r.scores, r.labels));
    });
    done += batch.batchSize;
    onBatch?.(done);
  }
  model.train();
  return detections;
}

/**
 * Each class's LRP-optimal score threshold, in label order (label `k` is the
 * `k`-th category of `dataset` by ascending id): the score of the last
 * detection kept where the class's LRP (area all, 100 detections per image)
 * is lowest, so keeping the detections scoring at or above it gives the
 * class's oLRP. `null` for a class with no ground truth or no true positive,
 * where LRP names no threshold.
 *
 * @example
 * ```ts
 * import { lrpScoreThresholds } from "./evaluate_model.ts";
 * import { evaluateLrp } from "../eval/coco_eval.ts";
 * import type { CocoDataset, CocoDetection } from "../data/coco_types.ts";
 * import assert from "node:assert/strict";
 *
 * const gt: CocoDataset = {
 *   images: [{ id: 1, width: 10, height: 10, file_name: "a.png" }],
 *   categories: [{ id: 1, name: "a" }, { id: 2, name: "b" }],
 *   annotations: [{ id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 4, 4], area: 16, iscrowd: 0 }],
 * };
 * const dets: CocoDetection[] = [
 *   { image_id: 1, category_id: 1, bbox: [0, 0, 4, 4], score: 0.6 }, // the true positive
 *   { image_id: 1, category_id: 1, bbox: [5, 5, 4, 4], score: 0.3 }, // a false positive below it
 * ];
 * assert.deepEqual(lrpScoreThresholds(gt, evaluateLrp(gt, dets)), [0.6, null]);
 * ```
 *
 * @param dataset The ground truth the LRP was computed on.
 * @param lrp Its optimal LRP.
 * @returns One score or `null` per class.
 */
export function lrpScoreThresholds(dataset: CocoDataset, lrp: LrpEvalResult): (number | null)[] {
  const byId = new Map(lrp.perCategory.map((c) => [c.categoryId, c.threshold[0]]));
  return new CocoIndex(dataset).categoryIds.map((id) => {
    const t = byId.get(id);
    return t !== undefined && t >= 0 && t <= 1 ? t : null;
  });
}

/** The names of `dataset`'s categories in label order (ascending id). */
export function classNames(dataset: CocoDataset): string[] {
  const index = new CocoIndex(dataset);
  return index.categoryIds.map((id) => index.categories.get(id)!.name);
}

/** COCO AP and LRP of `detections` on `dataset`. */
export function scoreDetections(
  dataset: CocoDataset,
  detections: readonly CocoDetection[],
): { coco: CocoEvalResult; lrp: LrpEvalResult } {
  return evaluateCocoAndLrp(dataset, detections, { iouType: "bbox" });
}
