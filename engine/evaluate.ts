/**
 * Running a detector over a split and scoring it with COCO AP and LRP; each
 * class's oLRP-optimal score threshold, stored with a checkpoint.
 *
 * @module
 */

import { DetectionLoader, type LoaderSource } from "../data/loader.ts";
import { CocoIndex, toCocoDetections } from "../data/coco.ts";
import * as mask from "../data/mask.ts";
import type { CocoDataset, CocoDetection } from "../data/coco_types.ts";
import type { Detector } from "../detectors/detector.ts";
import { evaluateCocoAndLrp } from "../eval/coco_and_lrp.ts";
import { type CocoEvalResult, evaluateCoco } from "../eval/coco_eval.ts";
import type { LrpEvalResult } from "../eval/lrp.ts";
import type { TrainSettings } from "../configs/types.ts";
import { tidy } from "../tensor/tensor.ts";
import { storeScoreThresholds } from "./model_io.ts";

/** Detections of `model` on every batch of `loader` (epoch 0, no augmentation expected). */
export async function detectAll(
  model: Detector,
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
    const sizes = batch.meta.map((m) => [m.originalHeight, m.originalWidth] as [number, number]);
    const results = await model.predict(images, scales, sizes);
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
        r.masks = r.masks?.map(mask.flipHorizontal);
      }
      detections.push(
        ...toCocoDetections(index, meta.imageId, r.boxes, r.scores, r.labels, r.masks),
      );
    });
    done += batch.batchSize;
    onBatch?.(done);
  }
  model.train();
  return detections;
}

/**
 * Detections of `model` on `source` at the training resolution of
 * `settings`, unshuffled and without augmentation.
 *
 * @example
 * ```ts ignore
 * const detections = await detectSplit(model, splits.val, splits.valDataset, config.train);
 * ```
 *
 * @param model The detector.
 * @param source The images (a validation split).
 * @param dataset Their annotations (for image and category ids).
 * @param settings Batch size and resize of the run.
 * @param seed Loader seed.
 * @returns COCO detections in original-image pixels.
 */
export async function detectSplit(
  model: Detector,
  source: LoaderSource,
  dataset: CocoDataset,
  settings: TrainSettings,
  seed = 0,
): Promise<CocoDetection[]> {
  const loader = new DetectionLoader(source, {
    batchSize: settings.batchSize,
    seed,
    shuffle: false,
    transform: { shortSide: settings.shortSide, maxSize: settings.maxSize, flipProb: 0 },
  });
  try {
    return await detectAll(model, loader, dataset);
  } finally {
    loader.close();
  }
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
 * import { lrpScoreThresholds } from "./evaluate.ts";
 * import { evaluateLrp } from "../eval/lrp.ts";
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

/**
 * COCO box AP and LRP of `detections` on `dataset`, and mask AP (`segm`)
 * when the detections carry masks.
 */
export function scoreDetections(
  dataset: CocoDataset,
  detections: readonly CocoDetection[],
): { coco: CocoEvalResult; lrp: LrpEvalResult; segm?: CocoEvalResult } {
  const scores = evaluateCocoAndLrp(dataset, detections, { iouType: "bbox" });
  const withMasks = detections.length > 0 && detections.every((d) => d.segmentation);
  if (!withMasks) return scores;
  return { ...scores, segm: evaluateCoco(dataset, detections, { iouType: "segm" }) };
}

/**
 * Computes each class's oLRP-optimal score threshold and stores it, with the
 * class names, in the checkpoint at `path` (see {@linkcode storeScoreThresholds}).
 *
 * @example
 * ```ts ignore
 * const { coco, lrp } = scoreDetections(valDataset, detections);
 * await storeLrpThresholds("runs/a/model_final.safetensors", valDataset, lrp, "step 2000");
 * ```
 *
 * @param path A checkpoint of the model that made the detections.
 * @param dataset The ground truth the LRP was computed on.
 * @param lrp Its optimal LRP.
 * @param note Where the detections come from, after the tau and image count in the metadata.
 * @returns The thresholds and class names, in label order.
 */
export async function storeLrpThresholds(
  path: string,
  dataset: CocoDataset,
  lrp: LrpEvalResult,
  note: string,
): Promise<{ thresholds: (number | null)[]; names: string[] }> {
  const thresholds = lrpScoreThresholds(dataset, lrp);
  const names = classNames(dataset);
  await storeScoreThresholds(
    path,
    thresholds,
    names,
    `oLRP-optimal on the val split (tau ${lrp.tau}, ${dataset.images.length} images, ${note})`,
  );
  return { thresholds, names };
}

/**
 * Per-class score thresholds as one line of text.
 *
 * @example
 * ```ts
 * import { formatThresholds } from "./evaluate.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatThresholds(["cat", "dog"], [0.3125, null]), "cat 0.313, dog none");
 * ```
 *
 * @param names Class names in label order.
 * @param thresholds One threshold or `null` per class.
 * @returns `name threshold` pairs, comma-separated.
 */
export function formatThresholds(
  names: readonly string[],
  thresholds: readonly (number | null)[],
): string {
  return names.map((n, k) => `${n} ${thresholds[k]?.toFixed(3) ?? "none"}`).join(", ");
}
