/**
 * A tiny ResNet-FPN Mask R-CNN trained with BRS on the built-in synthetic
 * `shapes` data, whose objects carry polygon masks: `faster_rcnn_tiny_shapes`
 * (same backbone, neck, RPN, RoI head, data and learning rate, and the same
 * departures from the seeds' recipe) plus the mask branch. The mask head
 * keeps the seeds' shape (14x14 pooling, four 3x3 convolutions, a 2x2
 * transposed convolution to 28x28 masks, at most 200 RoIs per batch) at the
 * neck's width of 32 channels instead of 256. 3,500 steps, the learning rate
 * dropping at the same fractions of the run as Faster R-CNN's; a step takes
 * 0.33–0.5 s on the native backend on 2 cores (more positive RoIs later in
 * the run), so a run takes about 30 minutes, twice the default ATSS run.
 *
 * @module
 */

import type { MaskRcnnModelConfig } from "../detectors/mask_rcnn.ts";
import FASTER_RCNN_TINY_SHAPES from "./faster_rcnn_tiny_shapes.ts";
import type { DetectorConfig } from "./types.ts";

/** Tiny Mask R-CNN with BRS on synthetic shapes. */
export const MASK_RCNN_TINY_SHAPES: DetectorConfig<MaskRcnnModelConfig> = {
  name: "mask_rcnn_tiny_shapes",
  model: {
    ...FASTER_RCNN_TINY_SHAPES.model,
    kind: "mask_rcnn",
    mask: { roiSize: 14, convChannels: 32, numConvs: 4, maxRois: 200, threshold: 0.5 },
  },
  train: { ...FASTER_RCNN_TINY_SHAPES.train, iters: 3500, milestones: [2625, 3220] },
  data: { ...FASTER_RCNN_TINY_SHAPES.data },
};

export default MASK_RCNN_TINY_SHAPES;
