/**
 * BRS-DETR with ResNet-50 on COCO, with the seeds' settings (spec §10.7):
 * Co-Deformable-DETR (two-stage, box refinement, 300 queries, 6 + 6 layers of
 * width 256, 8 heads, 4 levels, 4 points, FFN 2048) with an auxiliary ATSS
 * head (1 conv, 1 anchor of octave scale 8, strides 8–128, weight 5) and an
 * auxiliary Faster R-CNN branch (RPN of 9 anchors per location, weight 1;
 * 4000 proposals; Shared2FC RoI head, weight 5), whose positives become up to
 * 300 extra queries per image each, BRS (δ 0.5) in every branch, the
 * Hungarian class cost weighted 4. AdamW lr 2e-4, weight decay
 * 1e-4, backbone and sampling offsets at 0.1x, gradient clip 0.1, batch 16,
 * 12 epochs with x0.2 at epochs 10 and 11, no warm-up. For users with a GPU
 * and COCO; the backbone starts from torchvision's ImageNet ResNet-50
 * (`data/pretrained/resnet50-0676ba61.pth`, not bundled).
 *
 * Departures from the seeds (docs/deformable_detr.md): the auxiliary RoI
 * head's loss is weighted 5 as a whole and its and the RPN's GIoU are
 * score-weighted; the RPN decodes with stds (0.1, 0.1, 0.2, 0.2);
 * fixed-size resizing (800 / 1333) instead of the multi-scale 480–800 and
 * random-crop policy; no dropout; padded pixels are not masked.
 *
 * @module
 */

import type { CoDetrModelConfig } from "../detectors/co_detr.ts";
import { RESNET50 } from "../detectors/backbones/resnet.ts";
import type { DetectorConfig } from "./types.ts";

const ITERS_PER_EPOCH = 7330; // 117,266 images / 16

/** BRS-DETR R50 12 epochs on COCO. */
export const BRS_DETR_R50_COCO: DetectorConfig<CoDetrModelConfig> = {
  name: "brs_detr_r50_coco",
  model: {
    kind: "co_detr",
    numClasses: 80,
    backbone: { ...RESNET50, pretrained: "data/pretrained/resnet50-0676ba61.pth" },
    transformer: {
      embedDim: 256,
      numHeads: 8,
      numLevels: 4,
      numPoints: 4,
      ffnDim: 2048,
      encoderLayers: 6,
      decoderLayers: 6,
    },
    normGroups: 32,
    numQueries: 300,
    loss: "brs",
    delta: 0.5,
    auxAtss: {
      anchors: {
        strides: [8, 16, 32, 64, 128],
        octaveBaseScale: 8,
        scalesPerOctave: 1,
        ratios: [1],
      },
      topk: 9,
      featChannels: 256,
      stackedConvs: 1,
      weight: 5,
    },
    auxRcnn: {
      anchors: {
        strides: [8, 16, 32, 64, 128],
        octaveBaseScale: 4,
        scalesPerOctave: 3,
        ratios: [0.5, 1, 2],
      },
      featChannels: 256,
      rpnWeight: 1,
      proposals: { nmsPre: 4000, iouThreshold: 0.7, maxPerImage: 4000 },
      roi: { roiSize: 7, samplingRatio: 0, finestScale: 56 },
      fcChannels: 1024,
      posIou: 0.5,
      roiWeight: 5,
    },
    auxQueries: { maxPerImage: 300, weight: 1 },
    test: { maxPerImage: 100 },
  },
  train: {
    optimizer: "adamw",
    batchSize: 16,
    iters: 12 * ITERS_PER_EPOCH,
    lr: 2e-4,
    momentum: 0.9,
    weightDecay: 1e-4,
    lrFactors: [{ match: "backbone.", factor: 0.1 }, { match: "sampling_offsets", factor: 0.1 }],
    warmup: { iters: 0, factor: 1 },
    milestones: [10 * ITERS_PER_EPOCH, 11 * ITERS_PER_EPOCH],
    gamma: 0.2,
    maxGradNorm: 0.1,
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

export default BRS_DETR_R50_COCO;
