/**
 * BRS-Mask R-CNN with ResNet-50 and FPN on COCO, with the seeds' settings
 * (docs/departures.md, R3, Q16 and Q23): the detector part is
 * `faster_rcnn_r50_coco` (rank-based RPN and RoI head, SGD lr 0.012, 1x
 * schedule, test score threshold 0.40), plus the FCN mask head (14x14
 * RoIAlign, four 3x3 convolutions of 256, a 2x2 transposed convolution to
 * 28x28 class-specific masks) trained by a score-weighted Dice loss on at
 * most 200 positive RoIs per batch, self-balanced to the RoI head's ranking
 * loss; masks pasted at threshold 0.5.
 *
 * @module
 */

import type { MaskRcnnModelConfig } from "../detectors/mask_rcnn.ts";
import FASTER_RCNN_R50_COCO from "./faster_rcnn_r50_coco.ts";
import type { DetectorConfig } from "./types.ts";

/** BRS-Mask R-CNN R50 1x on COCO. */
export const MASK_RCNN_R50_COCO: DetectorConfig<MaskRcnnModelConfig> = {
  name: "mask_rcnn_r50_coco",
  model: {
    ...FASTER_RCNN_R50_COCO.model,
    kind: "mask_rcnn",
    mask: { roiSize: 14, convChannels: 256, numConvs: 4, maxRois: 200, threshold: 0.5 },
  },
  train: { ...FASTER_RCNN_R50_COCO.train },
  data: { ...FASTER_RCNN_R50_COCO.data },
};

export default MASK_RCNN_R50_COCO;
