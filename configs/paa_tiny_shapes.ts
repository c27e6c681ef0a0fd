/**
 * PAA with BRS on the built-in synthetic `shapes` data, sized like the
 * default `atss_tiny_shapes`: the same backbone, FPN and head widths, the
 * same anchors (three per location on P3–P5, 2x the stride), data, batch,
 * learning rate and clipping. Only the assignment (max IoU 0.1, then the GMM
 * re-assignment), the test pipeline (score voting) and the length differ
 * (docs/departures.md, R5). ITERS_TBD
 *
 * Test-time score threshold: 0, as in the ATSS config. A ranking loss orders
 * scores without calibrating them, so a fixed cut such as the stock 0.05
 * would drop a different share of each model's (and class's) detections.
 * Score voting reads the same threshold, as in the official head: every
 * candidate of the kept box's class votes, but its weight is its score times
 * `exp(-(1 - IoU)^2 / 0.025)`, so candidates that score low or overlap
 * little barely move the box (a candidate at IoU 0.7 weighs 3% of one at
 * IoU 1 and the same score). `deno task detect` draws above each class's
 * oLRP-optimal threshold, stored with the final checkpoint.
 *
 * @module
 */

import type { PaaModelConfig } from "../detectors/paa.ts";
import ATSS_TINY_SHAPES from "./atss_tiny_shapes.ts";
import type { DetectorConfig } from "./types.ts";

const ATSS = ATSS_TINY_SHAPES;
const ITERS = 12000;

/** Tiny PAA with BRS on synthetic shapes. */
export const PAA_TINY_SHAPES: DetectorConfig<PaaModelConfig> = {
  name: "paa_tiny_shapes",
  model: {
    kind: "paa",
    numClasses: ATSS.model.numClasses,
    backbone: ATSS.model.backbone,
    neckChannels: ATSS.model.neckChannels,
    head: ATSS.model.head,
    anchors: ATSS.model.anchors,
    topk: 9,
    loss: "brs",
    test: { nmsPre: 1000, scoreThr: 0, iouThreshold: 0.6, maxPerImage: 100, scoreVoting: true },
  },
  train: {
    ...ATSS.train,
    iters: ITERS,
    milestones: [Math.round(ITERS * 0.75), Math.round(ITERS * 0.92)],
  },
  data: ATSS.data,
};

export default PAA_TINY_SHAPES;
