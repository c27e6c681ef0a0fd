/**
 * BRS Cascade R-CNN with ResNet-50 and FPN on COCO, with the seeds' settings
 * (docs/departures.md, R4): the RPN, pooling, schedule and data of
 * `faster_rcnn_r50_coco`, then three class-agnostic Shared2FC (1024) sigmoid
 * stages at IoU 0.5 / 0.6 / 0.7 with weights 1 / 1 / 1, all decoding with
 * stds (0.1, 0.1, 0.2, 0.2) as the seeds' config does; SGD lr 0.012, 1x;
 * test score threshold 0.40.
 *
 * @module
 */

import type { CascadeRcnnModelConfig } from "../detectors/cascade_rcnn.ts";
import FASTER_RCNN_R50_COCO from "./faster_rcnn_r50_coco.ts";
import type { DetectorConfig } from "./types.ts";

const { posIou: _, ...common } = FASTER_RCNN_R50_COCO.model;

/** BRS Cascade R-CNN R50 1x on COCO. */
export const CASCADE_RCNN_R50_COCO: DetectorConfig<CascadeRcnnModelConfig> = {
  name: "cascade_rcnn_r50_coco",
  model: {
    ...common,
    kind: "cascade_rcnn",
    stages: [{ posIou: 0.5, weight: 1 }, { posIou: 0.6, weight: 1 }, { posIou: 0.7, weight: 1 }],
  },
  train: { ...FASTER_RCNN_R50_COCO.train },
  data: { ...FASTER_RCNN_R50_COCO.data },
};

export default CASCADE_RCNN_R50_COCO;
