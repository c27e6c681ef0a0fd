/**
 * The default configuration: a tiny ResNet-FPN ATSS trained with BRS on the
 * built-in synthetic `shapes` data, sized for a 2-core machine with no GPU.
 *
 * @module
 */

import { SHAPE_CLASSES } from "../data/shapes.ts";
import type { DetectorConfig } from "./types.ts";

/** Tiny ATSS with BRS on synthetic shapes. */
export const ATSS_TINY_SHAPES: DetectorConfig = {
  name: "atss_tiny_shapes",
  model: {
    numClasses: SHAPE_CLASSES.length,
    backbone: {
      block: "basic",
      layers: [1, 1, 1, 1],
      baseWidth: 16,
      stemKernel: 3,
      norm: "group",
      frozenStages: 0,
    },
    neckChannels: 32,
    head: { featChannels: 32, stackedConvs: 2, normGroups: 8, priorProbability: 0.01 },
    anchors: { strides: [8, 16, 32, 64, 128], octaveBaseScale: 4, scalesPerOctave: 3, ratios: [1] },
    topk: 9,
    loss: "brs",
    test: { nmsPre: 1000, scoreThr: 0.05, iouThreshold: 0.6, maxPerImage: 100 },
  },
  train: {
    batchSize: 8,
    iters: 1500,
    lr: 0.01,
    momentum: 0.9,
    weightDecay: 1e-4,
    warmup: { iters: 100, factor: 0.001 },
    milestones: [1100, 1400],
    gamma: 0.1,
    maxGradNorm: 10,
    shortSide: 128,
    maxSize: 128,
    flipProb: 0.5,
    checkpointEvery: 250,
    logEvery: 10,
  },
  data: { kind: "shapes", train: 2000, val: 200, size: 128, seed: 0 },
};

export default ATSS_TINY_SHAPES;
