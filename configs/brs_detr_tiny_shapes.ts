/**
 * A tiny BRS-DETR on the built-in synthetic `shapes` data, sized for a 2-core
 * machine with no GPU (native backend): the tiny ATSS's backbone, a
 * transformer of width 64 (4 heads, 4 levels, 2 points, FFN 128) with 2
 * encoder and 3 decoder layers, 50 queries, and the auxiliary ATSS head on
 * strides 8–128 with anchors of 4x the stride (the seeds' 8x would leave the
 * small shapes without a matching anchor), the auxiliary Faster R-CNN branch
 * sized as `faster_rcnn_tiny_shapes` (one anchor size per level, 4x the
 * stride, three ratios, where the seeds have three sizes; 500 anchors per
 * level before NMS and 128 proposals per image; shared layers of 256; finest
 * scale 28), up to 50 auxiliary queries per image. The optimiser and the
 * loss recipe are the seeds' (AdamW 2e-4, backbone and sampling offsets at
 * 0.1x, clip 0.1; BRS δ 0.5 everywhere; RPN weight 0.2 · 5, RoI weight 5);
 * the schedule is shortened to 1200 steps, with the seeds' x0.2 steps at
 * 10/12 and 11/12 of it: about 20–30 minutes on the 2-core machine (the
 * Faster R-CNN branch makes a step about 1.8x as long as the ATSS branch
 * alone). `co_detr_tiny_shapes` is the same with the Co-DETR losses.
 *
 * @module
 */

import { SHAPE_CLASSES } from "../data/shapes.ts";
import type { CoDetrModelConfig } from "../detectors/co_detr.ts";
import ATSS_TINY_SHAPES from "./atss_tiny_shapes.ts";
import type { DetectorConfig } from "./types.ts";

const ITERS = 1200;

/** Tiny BRS-DETR on synthetic shapes. */
export const BRS_DETR_TINY_SHAPES: DetectorConfig<CoDetrModelConfig> = {
  name: "brs_detr_tiny_shapes",
  model: {
    kind: "co_detr",
    numClasses: SHAPE_CLASSES.length,
    backbone: ATSS_TINY_SHAPES.model.backbone,
    transformer: {
      embedDim: 64,
      numHeads: 4,
      numLevels: 4,
      numPoints: 2,
      ffnDim: 128,
      encoderLayers: 2,
      decoderLayers: 3,
    },
    normGroups: 8,
    numQueries: 50,
    loss: "brs",
    delta: 0.5,
    auxAtss: {
      anchors: {
        strides: [8, 16, 32, 64, 128],
        octaveBaseScale: 4,
        scalesPerOctave: 1,
        ratios: [1],
      },
      topk: 9,
      featChannels: 64,
      stackedConvs: 1,
      weight: 5,
    },
    auxRcnn: {
      anchors: {
        strides: [8, 16, 32, 64, 128],
        octaveBaseScale: 4,
        scalesPerOctave: 1,
        ratios: [0.5, 1, 2],
      },
      featChannels: 64,
      rpnWeight: 1,
      proposals: { nmsPre: 500, iouThreshold: 0.7, maxPerImage: 128 },
      roi: { roiSize: 7, samplingRatio: 0, finestScale: 28 },
      fcChannels: 256,
      posIou: 0.5,
      roiWeight: 5,
    },
    auxQueries: { maxPerImage: 50, weight: 1 },
    test: { maxPerImage: 100 },
  },
  train: {
    ...ATSS_TINY_SHAPES.train,
    optimizer: "adamw",
    iters: ITERS,
    lr: 2e-4,
    weightDecay: 1e-4,
    lrFactors: [{ match: "backbone.", factor: 0.1 }, { match: "sampling_offsets", factor: 0.1 }],
    warmup: { iters: 0, factor: 1 },
    milestones: [Math.round(ITERS * 10 / 12), Math.round(ITERS * 11 / 12)],
    gamma: 0.2,
    maxGradNorm: 0.1,
    checkpointEvery: 200,
  },
  data: { ...ATSS_TINY_SHAPES.data },
};

export default BRS_DETR_TINY_SHAPES;
