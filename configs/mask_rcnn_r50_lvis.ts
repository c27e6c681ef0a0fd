/**
 * BRS-Mask R-CNN with ResNet-50 and FPN on LVIS v1 (1,203 categories), with
 * the seeds' settings (docs/departures.md, R3, Q16, Q21 and Q23): the
 * detector of `mask_rcnn_r50_coco` with repeat-factor sampling at threshold
 * 1e-3 (`data/repeat_factors.ts`), a test score threshold of 0.60 and up to
 * 300 detections per image, evaluated by `evaluateLvis` (`deno task eval`
 * recognises an LVIS ground truth). Schedule: batch 16, SGD lr 0.012, 12
 * epochs with x0.1 at epochs 8 and 11, where an epoch is counted on the
 * 100,170 training images before repetition (mmdetection counts the repeated
 * set, which is longer by the repeats).
 *
 * Departure: training uses the one scale 800 where the seeds draw the short
 * side from 640–800. LVIS names its images by `coco_url`, so the image
 * folders are COCO 2017's (`train2017/`, `val2017/` under `data/coco`).
 *
 * @module
 */

import type { MaskRcnnModelConfig } from "../detectors/mask_rcnn.ts";
import { LVIS_REPEAT_THRESHOLD } from "../data/repeat_factors.ts";
import MASK_RCNN_R50_COCO from "./mask_rcnn_r50_coco.ts";
import type { DetectorConfig } from "./types.ts";

const ITERS_PER_EPOCH = 6261; // 100,170 images / 16

/** BRS-Mask R-CNN R50 1x on LVIS v1. */
export const MASK_RCNN_R50_LVIS: DetectorConfig<MaskRcnnModelConfig> = {
  name: "mask_rcnn_r50_lvis",
  model: {
    ...MASK_RCNN_R50_COCO.model,
    numClasses: 1203,
    test: { scoreThr: 0.6, iouThreshold: 0.5, maxPerImage: 300 },
  },
  train: {
    ...MASK_RCNN_R50_COCO.train,
    iters: 12 * ITERS_PER_EPOCH,
    milestones: [8 * ITERS_PER_EPOCH, 11 * ITERS_PER_EPOCH],
  },
  data: {
    kind: "lvis",
    trainJson: "data/lvis/lvis_v1_train.json",
    trainImages: "data/coco",
    valJson: "data/lvis/lvis_v1_val.json",
    valImages: "data/coco",
    repeatThreshold: LVIS_REPEAT_THRESHOLD,
  },
};

export default MASK_RCNN_R50_LVIS;
