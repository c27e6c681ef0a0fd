/**
 * Cascade R-CNN (Cai and Vasconcelos, 2018) with the rank-based recipe of
 * docs/departures.md, R4: the Faster R-CNN RPN, then RoI stages at rising
 * IoU thresholds (0.5 / 0.6 / 0.7), each a sigmoid Shared2FC head with
 * class-agnostic regression trained on the boxes the previous stage refined,
 * stage weights 1 / 1 / 1. At test time the class logits are averaged over
 * the stages. {@linkcode buildCascadeRcnn} builds it from a config.
 *
 * @module
 */

import type { Backend } from "../tensor/backend.ts";
import { buildTwoStage, type TwoStageCommonConfig, type TwoStageDetector } from "./two_stage.ts";

/** One stage of a Cascade R-CNN. */
export interface CascadeStageConfig {
  /** IoU at which a RoI is a positive of this stage. */
  posIou: number;
  /** Weight of the stage's loss. */
  weight: number;
}

/** Everything that defines a Cascade R-CNN. */
export interface CascadeRcnnModelConfig extends TwoStageCommonConfig {
  /** Detector kind. */
  kind: "cascade_rcnn";
  /** The stages, first to last (`[{0.5, 1}, {0.6, 1}, {0.7, 1}]`). */
  stages: CascadeStageConfig[];
}

/**
 * Builds a Cascade R-CNN with weights drawn from `seed`.
 *
 * @example Three class-agnostic stages
 * ```ts
 * import { buildCascadeRcnn } from "./cascade_rcnn.ts";
 * import CASCADE_RCNN_TINY_SHAPES from "../configs/cascade_rcnn_tiny_shapes.ts";
 * import { cpu } from "../tensor/device.ts";
 * const model = buildCascadeRcnn(CASCADE_RCNN_TINY_SHAPES.model, { seed: 0, backend: cpu() });
 * console.log(model.stages.map((s) => s.posIou)); // [0.5, 0.6, 0.7]
 * ```
 *
 * @throws {RangeError} When there are no stages.
 */
export function buildCascadeRcnn(
  config: CascadeRcnnModelConfig,
  options: { seed: number; backend?: Backend },
): TwoStageDetector {
  if (!Array.isArray(config.stages) || config.stages.length === 0) {
    throw new RangeError("cascade_rcnn: stages must list at least one stage");
  }
  return buildTwoStage(
    config,
    config.stages.map((s) => ({ ...s, classAgnostic: true })),
    options,
  );
}
