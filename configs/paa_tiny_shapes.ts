/**
 * PAA with BRS on the built-in synthetic `shapes` data, sized like the
 * default `atss_tiny_shapes`: the same backbone, FPN and head widths, the
 * same anchors (three per location on P3–P5, 2x the stride), data, batch,
 * learning rate and clipping. Only the assignment (max IoU 0.1, then the GMM
 * re-assignment), the test pipeline (score voting) and the length differ
 * (docs/departures.md, R5).
 *
 * Length: 12,000 steps (milestones at 75% and 92%, as ATSS's) fit the ATSS
 * default's wall time, about 14 minutes on the native backend. A PAA step
 * costs about 10 ms more than an ATSS step: the max-IoU candidates on the
 * host (~6 ms: a third of the anchors are candidates at IoU 0.1), their
 * scores on the device (~4 ms) and the GMM fits (~2 ms) against ATSS's
 * ~2 ms assignment. In alternating 300-step runs on 2 shared cores PAA took
 * 67–91 ms per step where ATSS took 57–104 ms; from the fastest of each
 * (67 and 57 ms), 14,000 x 57 / 67 ≈ 12,000 steps.
 *
 * Test-time score threshold: 0, as in the ATSS config. A ranking loss orders
 * scores without calibrating them, so a fixed cut such as the stock 0.05
 * would drop a different share of each model's (and class's) detections.
 * Score voting reads the same threshold, as in the official head: every
 * candidate of the kept box's class votes, but its weight is its score times
 * `exp(-(1 - IoU)^2 / 0.025)`, so candidates that score low or overlap
 * little barely move the box (a candidate at IoU 0.7 weighs 3% of one at
 * IoU 1 and the same score). After 300 steps of BRS no score reached the
 * stock 0.05 at all (val AP 4.2 at threshold 0, none at 0.05), and voting at
 * threshold 0 gave AP 4.24 against 4.19 without it. `deno task detect` draws
 * above each class's oLRP-optimal threshold, stored with the final
 * checkpoint.
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
