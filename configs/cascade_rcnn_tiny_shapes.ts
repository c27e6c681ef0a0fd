/**
 * A tiny Cascade R-CNN trained with BRS on the built-in synthetic `shapes`
 * data: `faster_rcnn_tiny_shapes` (same backbone, neck, RPN, pooling, data,
 * learning rate and departures from the seeds' recipe) with three
 * class-agnostic RoI stages at IoU 0.5 / 0.6 / 0.7, stage weights 1 / 1 / 1.
 * A step costs about twice a Faster R-CNN step (three RoI heads), so 2,400
 * steps take about the ATSS default's 14 minutes on the native backend.
 *
 * @module
 */

import type { CascadeRcnnModelConfig } from "../detectors/cascade_rcnn.ts";
import FASTER_RCNN_TINY_SHAPES from "./faster_rcnn_tiny_shapes.ts";
import type { DetectorConfig } from "./types.ts";

const { posIou: _, ...common } = FASTER_RCNN_TINY_SHAPES.model;

/** Tiny Cascade R-CNN with BRS on synthetic shapes. */
export const CASCADE_RCNN_TINY_SHAPES: DetectorConfig<CascadeRcnnModelConfig> = {
  name: "cascade_rcnn_tiny_shapes",
  model: {
    ...common,
    kind: "cascade_rcnn",
    stages: [{ posIou: 0.5, weight: 1 }, { posIou: 0.6, weight: 1 }, { posIou: 0.7, weight: 1 }],
  },
  train: {
    ...FASTER_RCNN_TINY_SHAPES.train,
    iters: 2400,
    milestones: [1800, 2208],
  },
  data: { ...FASTER_RCNN_TINY_SHAPES.data },
};

export default CASCADE_RCNN_TINY_SHAPES;
