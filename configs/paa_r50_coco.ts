/**
 * BRS-PAA with ResNet-50 on COCO, with the official settings
 * (docs/departures.md, R1 and R5): the ATSS anchors (three per location),
 * max-IoU 0.1 candidates and the GMM re-assignment, 1333x800 images, batch
 * 16, SGD lr 0.008 with momentum 0.9 and weight decay 1e-4, 500 warm-up steps
 * from 0.001x, 12 epochs with x0.1 at epochs 8 and 11; test: top 1000 anchors
 * per level, score above 0.05, NMS 0.6, 100 detections, score voting. For
 * users with a GPU and COCO. The backbone starts from torchvision's ImageNet
 * ResNet-50, which is not bundled: download
 * https://download.pytorch.org/models/resnet50-0676ba61.pth to
 * `data/pretrained/` (or pass `--pretrained FILE`).
 *
 * @module
 */

import type { PaaModelConfig } from "../detectors/paa.ts";
import ATSS_R50_COCO from "./atss_r50_coco.ts";
import type { DetectorConfig } from "./types.ts";

const ATSS = ATSS_R50_COCO;

/** BRS-PAA R50 1x on COCO. */
export const PAA_R50_COCO: DetectorConfig<PaaModelConfig> = {
  name: "paa_r50_coco",
  model: {
    kind: "paa",
    numClasses: 80,
    backbone: ATSS.model.backbone,
    neckChannels: 256,
    head: ATSS.model.head,
    anchors: ATSS.model.anchors,
    topk: 9,
    loss: "brs",
    test: { nmsPre: 1000, scoreThr: 0.05, iouThreshold: 0.6, maxPerImage: 100, scoreVoting: true },
  },
  train: ATSS.train,
  data: ATSS.data,
};

export default PAA_R50_COCO;
