/**
 * The default configuration: a tiny ResNet-FPN ATSS trained with BRS on the
 * built-in synthetic `shapes` data, sized for a 2-core machine with no GPU:
 * 14,000 steps fit in about 13 minutes on the native backend (about 55 ms per
 * step; 0.5 s on llvmpipe, where `--iters 1300` fits the same budget). The
 * model is data-limited at this length: 10,000 generated train images give
 * 5 AP more than 2,000 after 6,000 steps.
 *
 * Departures from the paper's recipe, for 128 px images and a short schedule:
 * three pyramid levels (P3–P5) with anchors of 2x the stride (16–101 px);
 * batch 4 with lr 0.08 (steps at 75% and 92% of the schedule); and no score
 * threshold at test time — a ranking loss orders scores but does not calibrate
 * them (`deno task detect` draws above each class's oLRP-optimal threshold,
 * stored with the final checkpoint).
 *
 * @module
 */

import { SHAPE_CLASSES } from "../data/shapes.ts";
import type { AtssModelConfig } from "../detectors/atss.ts";
import type { DetectorConfig } from "./types.ts";

/** Tiny ATSS with BRS on synthetic shapes. */
export const ATSS_TINY_SHAPES: DetectorConfig<AtssModelConfig> = {
  name: "atss_tiny_shapes",
  model: {
    kind: "atss",
    numClasses: SHAPE_CLASSES.length,
    backbone: {
      block: "basic",
      layers: [1, 1, 1, 1],
      baseWidth: 16,
      stemKernel: 3,
      norm: "group",
      normGroups: 8,
      frozenStages: 0,
    },
    neckChannels: 32,
    head: { featChannels: 32, stackedConvs: 2, normGroups: 8, priorProbability: 0.01 },
    anchors: { strides: [8, 16, 32], octaveBaseScale: 2, scalesPerOctave: 3, ratios: [1] },
    topk: 9,
    loss: "brs",
    test: { nmsPre: 1000, scoreThr: 0, iouThreshold: 0.6, maxPerImage: 100 },
  },
  train: {
    batchSize: 4,
    iters: 14000,
    lr: 0.08,
    momentum: 0.9,
    weightDecay: 1e-4,
    warmup: { iters: 100, factor: 0.001 },
    milestones: [10500, 12880],
    gamma: 0.1,
    maxGradNorm: 10,
    shortSide: 128,
    maxSize: 128,
    flipProb: 0.5,
    checkpointEvery: 1000,
    logEvery: 10,
  },
  data: { kind: "shapes", train: 10000, val: 200, size: 128, seed: 0 },
};

export default ATSS_TINY_SHAPES;
