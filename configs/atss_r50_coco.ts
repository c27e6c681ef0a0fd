/**
 * BRS-ATSS with ResNet-50 on COCO, with the paper's settings
 * (docs/departures.md, R1 and R2): 1333x800 images, batch 16, SGD lr 0.008 with
 * momentum 0.9 and weight decay 1e-4, 500 warm-up steps from 0.001x, 12 epochs
 * with x0.1 at epochs 8 and 11. For users with a GPU and COCO. The backbone
 * starts from torchvision's ImageNet ResNet-50, which is not bundled: download
 * https://download.pytorch.org/models/resnet50-0676ba61.pth to
 * `data/pretrained/` (or pass `--pretrained FILE`).
 *
 * @module
 */

import type { AtssModelConfig } from "../detectors/atss.ts";
import type { DetectorConfig } from "./types.ts";
import { RESNET50 } from "../detectors/backbones/resnet.ts";

const ITERS_PER_EPOCH = 7330; // 117,266 images / 16

/** BRS-ATSS R50 1x on COCO. */
export const ATSS_R50_COCO: DetectorConfig<AtssModelConfig> = {
  name: "atss_r50_coco",
  model: {
    kind: "atss",
    numClasses: 80,
    backbone: { ...RESNET50, pretrained: "data/pretrained/resnet50-0676ba61.pth" },
    neckChannels: 256,
    head: { featChannels: 256, stackedConvs: 4, normGroups: 32, priorProbability: 0.01 },
    anchors: { strides: [8, 16, 32, 64, 128], octaveBaseScale: 4, scalesPerOctave: 3, ratios: [1] },
    topk: 9,
    loss: "brs",
    test: { nmsPre: 1000, scoreThr: 0.05, iouThreshold: 0.6, maxPerImage: 100 },
  },
  train: {
    batchSize: 16,
    iters: 12 * ITERS_PER_EPOCH,
    lr: 0.008,
    momentum: 0.9,
    weightDecay: 1e-4,
    warmup: { iters: 500, factor: 0.001 },
    milestones: [8 * ITERS_PER_EPOCH, 11 * ITERS_PER_EPOCH],
    gamma: 0.1,
    shortSide: 800,
    maxSize: 1333,
    flipProb: 0.5,
    checkpointEvery: 2000,
    logEvery: 50,
  },
  data: {
    kind: "coco",
    trainJson: "data/coco/annotations/instances_train2017.json",
    trainImages: "data/coco/train2017",
    valJson: "data/coco/annotations/instances_val2017.json",
    valImages: "data/coco/val2017",
  },
};

export default ATSS_R50_COCO;
