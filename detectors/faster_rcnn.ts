/**
 * Faster R-CNN (Ren et al., 2015) with the rank-based recipe (RS-/BRS-R-CNN;
 * docs/departures.md, R3): a rank-based RPN on every anchor with weight 0.2,
 * and one sigmoid Shared2FC RoI head with class-specific regression, positives
 * at IoU 0.5, the GT boxes added as proposals and nothing sampled away.
 * {@linkcode buildFasterRcnn} builds it from a config.
 *
 * @module
 */

import type { Backend } from "../tensor/backend.ts";
import { buildTwoStage, type TwoStageCommonConfig, type TwoStageDetector } from "./two_stage.ts";

/** Everything that defines a Faster R-CNN. */
export interface FasterRcnnModelConfig extends TwoStageCommonConfig {
  /** Detector kind. */
  kind: "faster_rcnn";
  /** IoU at which a RoI is a positive (0.5). */
  posIou: number;
}

/**
 * Builds a Faster R-CNN with weights drawn from `seed`.
 *
 * @example Build the tiny model; its parameters carry mmdetection's names
 * ```ts
 * import { buildFasterRcnn } from "./faster_rcnn.ts";
 * import FASTER_RCNN_TINY_SHAPES from "../configs/faster_rcnn_tiny_shapes.ts";
 * import { cpu } from "../tensor/device.ts";
 * const model = buildFasterRcnn(FASTER_RCNN_TINY_SHAPES.model, { seed: 0, backend: cpu() });
 * const names = model.namedParameters().map(([n]) => n);
 * console.log(names.includes("roi_head.bbox_head.fc_cls.weight")); // true
 * ```
 */
export function buildFasterRcnn(
  config: FasterRcnnModelConfig,
  options: { seed: number; backend?: Backend },
): TwoStageDetector {
  return buildTwoStage(
    config,
    [{ posIou: config.posIou, weight: 1, classAgnostic: false }],
    options,
  );
}
