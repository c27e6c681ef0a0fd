/**
 * BRS-R-CNN: Faster R-CNN with ResNet-50 and FPN on COCO, with the seeds'
 * settings (docs/departures.md, R1 and R3): a rank-based RPN on all anchors
 * (scale 8, ratios 0.5 / 1 / 2, strides 4–64, weight 0.2; 2000 anchors per
 * level before NMS 0.7 and 1000 proposals per image in training, 1000 and 1000
 * at test), a Shared2FC (1024) sigmoid RoI head with class-specific regression,
 * IoU 0.5, no sampling; 1333x800 images, batch 16, SGD lr 0.012, 1x schedule;
 * test score threshold 0.40, NMS 0.5, 100 per image. For users with a GPU and
 * COCO; the backbone starts from torchvision's ImageNet ResNet-50 (download
 * https://download.pytorch.org/models/resnet50-0676ba61.pth to
 * `data/pretrained/`, or pass `--pretrained FILE`).
 *
 * @module
 */

import { RESNET50 } from "../detectors/backbones/resnet.ts";
import type { FasterRcnnModelConfig } from "../detectors/faster_rcnn.ts";
import ATSS_R50_COCO from "./atss_r50_coco.ts";
import type { DetectorConfig } from "./types.ts";

/** BRS-R-CNN (Faster R-CNN) R50 1x on COCO. */
export const FASTER_RCNN_R50_COCO: DetectorConfig<FasterRcnnModelConfig> = {
  name: "faster_rcnn_r50_coco",
  model: {
    kind: "faster_rcnn",
    numClasses: 80,
    backbone: { ...RESNET50, pretrained: "data/pretrained/resnet50-0676ba61.pth" },
    neckChannels: 256,
    rpn: {
      featChannels: 256,
      anchors: {
        strides: [4, 8, 16, 32, 64],
        octaveBaseScale: 8,
        scalesPerOctave: 1,
        ratios: [0.5, 1, 2],
      },
      weight: 0.2,
      train: { nmsPre: 2000, maxPerImage: 1000, iouThreshold: 0.7 },
      test: { nmsPre: 1000, maxPerImage: 1000, iouThreshold: 0.7 },
    },
    roi: { roiSize: 7, fcChannels: 1024, samplingRatio: 0, finestScale: 56, poolLevels: 4 },
    posIou: 0.5,
    loss: "brs",
    test: { scoreThr: 0.4, iouThreshold: 0.5, maxPerImage: 100 },
  },
  train: { ...ATSS_R50_COCO.train, lr: 0.012 },
  data: { ...ATSS_R50_COCO.data },
};

export default FASTER_RCNN_R50_COCO;
