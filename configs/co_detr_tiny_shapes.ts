/**
 * The Co-DETR baseline of `brs_detr_tiny_shapes`: the same model, data and
 * schedule with Co-DETR's losses (sigmoid focal loss with Deformable-DETR's
 * weights cls 2, L1 5, GIoU 2 in the DETR branches; the stock ATSS focal +
 * GIoU + centerness losses times 12 in the auxiliary ATSS head; the stock
 * Faster R-CNN losses, `"ce"`, in the auxiliary RPN + RoI branch: sampled
 * BCE + L1 times 12 in the RPN, sampled softmax CE times 12 and GIoU on the
 * decoded boxes times 120 in the RoI head; Hungarian class cost 2).
 *
 * @module
 */

import type { CoDetrModelConfig } from "../detectors/co_detr.ts";
import BRS_DETR_TINY_SHAPES from "./brs_detr_tiny_shapes.ts";
import type { DetectorConfig } from "./types.ts";

/** Tiny Co-DETR (focal losses) on synthetic shapes. */
export const CO_DETR_TINY_SHAPES: DetectorConfig<CoDetrModelConfig> = {
  ...BRS_DETR_TINY_SHAPES,
  name: "co_detr_tiny_shapes",
  model: {
    ...BRS_DETR_TINY_SHAPES.model,
    loss: "focal",
    auxAtss: { ...BRS_DETR_TINY_SHAPES.model.auxAtss!, weight: 12 },
    auxRcnn: { ...BRS_DETR_TINY_SHAPES.model.auxRcnn!, rpnWeight: 12, roiWeight: 12 },
  },
};

export default CO_DETR_TINY_SHAPES;
