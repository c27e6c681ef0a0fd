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

/** COCO AP and LRP of `detections` on `dataset`. */
export function scoreDetections(
  dataset: CocoDataset,
  detections: readonly CocoDetection[],
): { coco: CocoEvalResult; lrp: LrpEvalResult } {
  return evaluateCocoAndLrp(dataset, detections, { iouType: "bbox" });
}
