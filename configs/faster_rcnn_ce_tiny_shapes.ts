/**
 * The baseline of `faster_rcnn_tiny_shapes`: the same model, data and
 * schedule trained with the stock Faster R-CNN losses (`loss: "ce"`;
 * `detectors/two_stage_losses.ts`) instead of BRS: the RPN draws 256 anchors
 * per image (at most half positives) and scores them by sigmoid cross
 * entropy plus L1 on the positives' deltas (stds 1.0), whole weight 1 (the
 * rank-based RPN's 0.2 is its `head_weight`); the RoI head, a softmax
 * classifier over the classes and background, draws 512 RoIs per image (at
 * most a quarter positives) and scores them by cross entropy plus L1 on the
 * positives' deltas (stds 0.1, 0.1, 0.2, 0.2). Learning rate, clipping and
 * steps stay those of the BRS config, so that the two runs compare like for
 * like; the stock recipe has no gradient clipping.
 *
 * @module
 */

import type { FasterRcnnModelConfig } from "../detectors/faster_rcnn.ts";
import FASTER_RCNN_TINY_SHAPES from "./faster_rcnn_tiny_shapes.ts";
import type { DetectorConfig } from "./types.ts";

/** Tiny Faster R-CNN with the stock cross-entropy and L1 losses on synthetic shapes. */
export const FASTER_RCNN_CE_TINY_SHAPES: DetectorConfig<FasterRcnnModelConfig> = {
  ...FASTER_RCNN_TINY_SHAPES,
  name: "faster_rcnn_ce_tiny_shapes",
  model: {
    ...FASTER_RCNN_TINY_SHAPES.model,
    rpn: { ...FASTER_RCNN_TINY_SHAPES.model.rpn, weight: 1 },
    loss: "ce",
  },
};

export default FASTER_RCNN_CE_TINY_SHAPES;
