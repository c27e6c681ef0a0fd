/**
 * ATSS (Zhang et al., CVPR 2020) trained with a ranking-based loss (BRS by
 * default; RS, BAP, AP) or with the stock focal loss. {@linkcode buildAtss}
 * builds the parts (ResNet backbone, FPN, ATSS head) and picks the loss from
 * the typed table of `atss_losses.ts`; {@linkcode Atss} composes them with the
 * anchors, the ATSS assigner and inference. Assignment runs on the host
 * (anchors and boxes are host data); everything that touches predictions runs
 * on the device with no readback.
 *
 * @module
 */

import type { Batch } from "../data/loader.ts";
import { noGrad } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { sigmoid } from "../tensor/ops/elementwise.ts";
import type { Tensor } from "../tensor/tensor.ts";
import {
  AnchorDetector,
  type AnchorDetectorConfig,
  type AnchorDetectorParts,
  buildAnchorParts,
} from "./anchor_detector.ts";
import { type AtssLoss, atssLoss, type AtssLossEntry } from "./atss_losses.ts";
import { assignBatch, type AtssTargets } from "./atss_targets.ts";
import type { Detector, DetectorLosses } from "./detector.ts";
import type { AtssHeadOutput } from "./heads/atss_head.ts";
import { denseDetections, type Detections, readDetections } from "./postprocess.ts";

/** Everything that defines an ATSS model. */
export interface AtssModelConfig extends AnchorDetectorConfig {
  /** Detector kind. */
  kind: "atss";
  /** ATSS candidates per level. */
  topk: number;
  /** Classification loss. */
  loss: AtssLoss;
  /** δ of the ranking loss; default 0.5 for RS/BRS, 1.0 for AP/BAP (docs/departures.md, Q20). */
  delta?: number;
  /** Inference settings. */
  test: { nmsPre: number; scoreThr: number; iouThreshold: number; maxPerImage: number };
}

/** The parts an {@linkcode Atss} is composed of. */
export interface AtssParts extends AnchorDetectorParts {
  /** Classification loss (with the box loss of its recipe). */
  loss: AtssLossEntry;
}

/**
 * Builds an ATSS model: the backbone, neck and head with weights drawn from
 * `seed` (in that order), and the configured loss from the loss table.
 *
 * @example Build the tiny model and run it
 * ```ts ignore
 * import { buildAtss } from "./atss.ts";
 * import { ATSS_TINY_SHAPES } from "../configs/atss_tiny_shapes.ts";
 * const model = buildAtss(ATSS_TINY_SHAPES.model, { seed: 0 });
 * const out = model.forward(images); // { cls: [N, A, C], reg: [N, A, 4] }
 * ```
 *
 * @throws {RangeError} When the config names an unknown loss.
 */
export function buildAtss(
  config: AtssModelConfig,
  options: { seed: number; backend?: Backend },
): Atss {
  const loss = atssLoss(config.loss);
  const { backend, ...parts } = buildAnchorParts(config, {
    ...options,
    extraBranch: loss.centerness,
  });
  return new Atss(config, { ...parts, loss }, backend);
}

/**
 * The ATSS detector, composed of its parts (see {@linkcode buildAtss}).
 *
 * @example
 * ```ts ignore
 * const model = new Atss(config, { backbone, neck, head, loss: atssLoss("brs") }, backend);
 * ```
 */
export class Atss extends AnchorDetector<AtssModelConfig> implements Detector {
  readonly #loss: AtssLossEntry;

  /** Composes the model of `parts`, whose weights live on `backend`. */
  constructor(config: AtssModelConfig, parts: AtssParts, backend: Backend) {
    super(config, parts, backend, "Atss");
    this.#loss = parts.loss;
  }

  /**
   * The training loss of a batch, following the recipe of the configured
   * loss (docs/departures.md, R1–R2). Returns device scalars; nothing is read
   * back (it is async only to share the {@linkcode Detector} interface).
   */
  // deno-lint-ignore require-await
  async loss(batch: Batch): Promise<DetectorLosses> {
    const out = this.forward(this.images(batch));
    const { host } = this.anchors(batch.height, batch.width);
    const targets = assignBatch(host, batch.boxes, batch.labels, this.config.topk);
    return this.lossFromOutputs(out, targets);
  }

  /** The loss of head outputs against host-built targets. */
  lossFromOutputs(out: AtssHeadOutput, targets: AtssTargets): DetectorLosses {
    return this.#loss.compute(this.lossInputs(out, targets, this.config.delta));
  }

  /**
   * Detections for `images` `[N, 3, H, W]`, in the coordinates of each original
   * image: `scales[i]` is `[scaleX, scaleY]` (resized / original).
   */
  async predict(images: Tensor, scales: readonly [number, number][]): Promise<Detections[]> {
    const [n, , h, w] = images.shape;
    const out = noGrad(() => this.forward(images));
    const { host, device } = this.anchors(h, w);
    const { test } = this.config;
    const perImage: Tensor[] = [];
    noGrad(() => {
      for (let i = 0; i < n; i++) {
        // Stock ATSS multiplies the class scores by the sigmoid of the centerness logit.
        const levels = this.imageLevels(out, i, { host, device }).map((
          { extraLogits, ...level },
        ) => ({ ...level, scoreFactors: extraLogits ? sigmoid(extraLogits) : undefined }));
        perImage.push(denseDetections(levels, {
          imageShape: [h, w],
          scaleFactor: [scales[i][0], scales[i][1]],
          nmsPre: test.nmsPre,
          scoreThr: test.scoreThr,
          iouThreshold: test.iouThreshold,
          maxPerImage: test.maxPerImage,
          coder: this.coder,
        }));
      }
    });
    return await readDetections(perImage);
  }
}
