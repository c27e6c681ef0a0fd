/**
 * Building any detector from its model config: `config.kind` picks the
 * builder from a typed registry, so the training loop, evaluation, the
 * command lines and the benches never name a detector kind.
 *
 * @module
 */

import type { Backend } from "../tensor/backend.ts";
import { type AtssModelConfig, buildAtss } from "./atss.ts";
import { ATSS_LOSSES } from "./atss_losses.ts";
import { buildCascadeRcnn, type CascadeRcnnModelConfig } from "./cascade_rcnn.ts";
import { buildCoDetr, type CoDetrModelConfig } from "./co_detr.ts";
import { DETR_LOSSES } from "./deformable_detr/detr_losses.ts";
import type { Detector } from "./detector.ts";
import { buildFasterRcnn, type FasterRcnnModelConfig } from "./faster_rcnn.ts";
import { buildMaskRcnn, type MaskRcnnModelConfig } from "./mask_rcnn.ts";
import { buildPaa, type PaaModelConfig } from "./paa.ts";
import { PAA_LOSSES } from "./paa_losses.ts";
import { TWO_STAGE_LOSSES, TWO_STAGE_RANKING_LOSSES } from "./two_stage_losses.ts";

/** The model config of any detector, tagged by its `kind`. */
export type DetectorModelConfig =
  | AtssModelConfig
  | PaaModelConfig
  | FasterRcnnModelConfig
  | CascadeRcnnModelConfig
  | MaskRcnnModelConfig
  | CoDetrModelConfig;

/** The detector kinds there are. */
export type DetectorKind = DetectorModelConfig["kind"];

/** How a detector's weights are drawn and where they live. */
export interface BuildOptions {
  /** Seed of the initial weights. */
  seed: number;
  /** Backend (default: the default device). */
  backend?: Backend;
}

/** The builder of each detector kind, taking that kind's config. */
export type DetectorBuilders = {
  readonly [K in DetectorKind]: (
    config: Extract<DetectorModelConfig, { kind: K }>,
    options: BuildOptions,
  ) => Detector;
};

/** The registry of detector builders, keyed by kind. */
export const DETECTOR_BUILDERS: DetectorBuilders = {
  atss: buildAtss,
  paa: buildPaa,
  faster_rcnn: buildFasterRcnn,
  cascade_rcnn: buildCascadeRcnn,
  mask_rcnn: buildMaskRcnn,
  co_detr: buildCoDetr,
};

/** The losses each detector kind trains with (its config's `loss`). */
export const DETECTOR_LOSSES: { readonly [K in DetectorKind]: readonly string[] } = {
  atss: ATSS_LOSSES,
  paa: PAA_LOSSES,
  faster_rcnn: TWO_STAGE_LOSSES,
  cascade_rcnn: TWO_STAGE_LOSSES,
  mask_rcnn: TWO_STAGE_RANKING_LOSSES,
  co_detr: DETR_LOSSES,
};

/** The detector kinds, for messages and command lines. */
export const DETECTOR_KINDS: readonly DetectorKind[] = Object.keys(
  DETECTOR_BUILDERS,
) as DetectorKind[];

/**
 * Builds the detector `config` describes, with weights drawn from `seed`.
 *
 * @example
 * ```ts
 * import { buildDetector } from "./build.ts";
 * import ATSS_TINY_SHAPES from "../configs/atss_tiny_shapes.ts";
 * import { cpu } from "../tensor/device.ts";
 * import assert from "node:assert/strict";
 *
 * const model = buildDetector(ATSS_TINY_SHAPES.model, { seed: 0, backend: cpu() });
 * assert.equal(model.config.kind, "atss");
 * assert.throws(
 *   () => buildDetector({ ...ATSS_TINY_SHAPES.model, kind: "yolo" as "atss" }, { seed: 0 }),
 *   /unknown detector kind "yolo" \(known: atss, paa, faster_rcnn, cascade_rcnn, mask_rcnn, co_detr\)/,
 * );
 * ```
 *
 * @throws {TypeError} When `config.kind` is missing or names no known detector.
 */
export function buildDetector(config: DetectorModelConfig, options: BuildOptions): Detector {
  const kind: unknown = config.kind;
  if (typeof kind !== "string" || !Object.hasOwn(DETECTOR_BUILDERS, kind)) {
    const what = kind === undefined
      ? "no detector kind (model.kind)"
      : `unknown detector kind "${kind}"`;
    throw new TypeError(`buildDetector: ${what} (known: ${DETECTOR_KINDS.join(", ")})`);
  }
  // The registry's key and the config's tag agree, so the config is that builder's.
  const build = DETECTOR_BUILDERS[kind as DetectorKind] as (
    config: DetectorModelConfig,
    options: BuildOptions,
  ) => Detector;
  return build(config, options);
}
