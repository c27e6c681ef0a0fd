/**
 * A tiny ResNet-FPN Faster R-CNN trained with BRS on the built-in synthetic
 * `shapes` data, sized like the default ATSS (`atss_tiny_shapes`) for a
 * 2-core machine with no GPU: the same backbone, neck width, batch,
 * schedule shape and data, and the same training time: 4,700 steps take
 * about as long on the native backend (about 0.18 s per step) as the ATSS's
 * 14,000. The learning rate is 0.02 (the ATSS's 0.08 makes the RoI head
 * diverge within 50 steps).
 *
 * Departures from the seeds' recipe (`faster_rcnn_r50_coco`), for 128 px
 * images and a short schedule:
 * - four pyramid levels P2–P5 (strides 4–32) with RPN anchors of 4x the
 *   stride (16–128 px) instead of P2–P6 with 8x (32–512 px), which would
 *   leave the small shapes without a matching anchor;
 * - 500 anchors per level before NMS (2000 in the seeds' 1333x800 images,
 *   whose P2 has 65 times as many anchors), and 128 proposals per image in
 *   training and 300 at test instead of 1000: a 128 px image holds at most 6
 *   objects, and the RoI head's cost grows with the proposals;
 * - RoIs map to pyramid levels with finest scale 28 instead of 56, halved
 *   with the anchors;
 * - shared layers of 256 instead of 1024;
 * - no score threshold at test time (0.40 in the seeds' COCO configs): a
 *   ranking loss orders scores but does not calibrate them, and
 *   `deno task detect` draws above each class's oLRP-optimal threshold.
 *
 * @module
 */

import { SHAPE_CLASSES } from "../data/shapes.ts";
import type { FasterRcnnModelConfig } from "../detectors/faster_rcnn.ts";
import ATSS_TINY_SHAPES from "./atss_tiny_shapes.ts";
import type { DetectorConfig } from "./types.ts";

/** Tiny Faster R-CNN with BRS on synthetic shapes. */
export const FASTER_RCNN_TINY_SHAPES: DetectorConfig<FasterRcnnModelConfig> = {
  name: "faster_rcnn_tiny_shapes",
  model: {
    kind: "faster_rcnn",
    numClasses: SHAPE_CLASSES.length,
    backbone: ATSS_TINY_SHAPES.model.backbone,
    neckChannels: 32,
    rpn: {
      featChannels: 32,
      anchors: {
        strides: [4, 8, 16, 32],
        octaveBaseScale: 4,
        scalesPerOctave: 1,
        ratios: [0.5, 1, 2],
      },
      weight: 0.2,
      train: { nmsPre: 500, maxPerImage: 128, iouThreshold: 0.7 },
      test: { nmsPre: 500, maxPerImage: 300, iouThreshold: 0.7 },
    },
    roi: { roiSize: 7, fcChannels: 256, samplingRatio: 0, finestScale: 28, poolLevels: 4 },
    posIou: 0.5,
    loss: "brs",
    test: { scoreThr: 0, iouThreshold: 0.5, maxPerImage: 100 },
  },
  train: {
    ...ATSS_TINY_SHAPES.train,
    iters: 4700,
    lr: 0.02,
    milestones: [3525, 4324],
    checkpointEvery: 500,
  },
  data: { ...ATSS_TINY_SHAPES.data },
};

export default FASTER_RCNN_TINY_SHAPES;
