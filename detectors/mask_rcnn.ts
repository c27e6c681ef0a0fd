/**
 * Mask R-CNN (He et al., 2017) with the rank-based recipe (RS-/BRS-Mask
 * R-CNN; docs/departures.md, R3, Q16 and Q23): the Faster R-CNN of
 * `faster_rcnn.ts` plus an FCN mask head on the RoI stage's positives, whose
 * Dice loss is weighted by the RoIs' scores and self-balanced to the stage's
 * ranking loss (`mask_branch.ts`). {@linkcode buildMaskRcnn} builds it from
 * a config.
 *
 * @module
 */

import type { Backend } from "../tensor/backend.ts";
import {
  buildTwoStage,
  type MaskBranchSettings,
  type TwoStageCommonConfig,
  type TwoStageDetector,
} from "./two_stage.ts";

/** Everything that defines a Mask R-CNN. */
export interface MaskRcnnModelConfig extends TwoStageCommonConfig {
  /** Detector kind. */
  kind: "mask_rcnn";
  /** IoU at which a RoI is a positive (0.5). */
  posIou: number;
  /** The mask branch (seeds: 14x14 pooling, 4 convs of 256, 200 RoIs, threshold 0.5). */
  mask: MaskBranchSettings;
}

/**
 * Builds a Mask R-CNN with weights drawn from `seed`.
 *
 * @example Build the tiny model; its mask head carries mmdetection's names
 * ```ts
 * import { buildMaskRcnn } from "./mask_rcnn.ts";
 * import MASK_RCNN_TINY_SHAPES from "../configs/mask_rcnn_tiny_shapes.ts";
 * import { cpu } from "../tensor/device.ts";
 * const model = buildMaskRcnn(MASK_RCNN_TINY_SHAPES.model, { seed: 0, backend: cpu() });
 * const names = model.namedParameters().map(([n]) => n);
 * console.log(names.includes("roi_head.mask_head.upsample.weight")); // true
 * console.log(model.usesMasks); // true
 * ```
 */
export function buildMaskRcnn(
  config: MaskRcnnModelConfig,
  options: { seed: number; backend?: Backend },
): TwoStageDetector {
  return buildTwoStage(
    config,
    [{ posIou: config.posIou, weight: 1, classAgnostic: false }],
    options,
    config.mask,
  );
}
