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
import { defaultDevice } from "../tensor/device.ts";
import { Module } from "../tensor/nn/module.ts";
import { slice } from "../tensor/ops/concat.ts";
import { indexSelect } from "../tensor/ops/index.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { Rng } from "../tensor/rng.ts";
import { keep, type Tensor, tensor } from "../tensor/tensor.ts";
import { type AnchorConfig, type Anchors, generateAnchors } from "./anchors.ts";
import { type AtssLoss, atssLoss, type AtssLossEntry } from "./atss_losses.ts";
import { assignBatch, type AtssTargets } from "./atss_targets.ts";
import { ResNet, type ResNetConfig } from "./backbones/resnet.ts";
import { DeltaXywhCoder } from "../boxes/coder.ts";
import { batchImages, type Detector, type DetectorLosses } from "./detector.ts";
import { AtssHead, type AtssHeadConfig, type AtssHeadOutput } from "./heads/atss_head.ts";
import { Fpn } from "./necks/fpn.ts";
import { denseDetections, type Detections, readDetections } from "./postprocess.ts";

/** Everything that defines an ATSS model. */
export interface AtssModelConfig {
  /** Detector kind. */
  kind: "atss";
  /** Object classes. */
  numClasses: number;
  /** Backbone. */
  backbone: ResNetConfig;
  /** FPN output channels. */
  neckChannels: number;
  /** Head towers. */
  head: Pick<AtssHeadConfig, "featChannels" | "stackedConvs" | "normGroups" | "priorProbability">;
  /** Anchor layout (one stride per pyramid level). */
  anchors: AnchorConfig;
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
export interface AtssParts {
  /** Backbone. */
  backbone: ResNet;
  /** Neck. */
  neck: Fpn;
  /** Head. */
  head: AtssHead;
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
  const backend = options.backend ?? defaultDevice();
  const rng = new Rng(options.seed);
  const backbone = new ResNet(config.backbone, rng, backend);
  const levels = config.anchors.strides.length;
  const neck = new Fpn(backbone.outChannels, config.neckChannels, levels, rng, backend);
  const head = new AtssHead(
    {
      ...config.head,
      numClasses: config.numClasses,
      inChannels: config.neckChannels,
      anchorsPerLocation: config.anchors.scalesPerOctave * config.anchors.ratios.length,
      numLevels: levels,
      centerness: loss.centerness,
    },
    rng,
    backend,
  );
  return new Atss(config, { backbone, neck, head, loss }, backend);
}

/**
 * The ATSS detector, composed of its parts (see {@linkcode buildAtss}).
 *
 * @example
 * ```ts ignore
 * const model = new Atss(config, { backbone, neck, head, loss: atssLoss("brs") }, backend);
 * ```
 */
export class Atss extends Module<Tensor, AtssHeadOutput> implements Detector {
  /** Backbone. */
  readonly backbone: ResNet;
  /** Neck. */
  readonly neck: Fpn;
  /** Head. */
  readonly head: AtssHead;
  /** Box coder (means 0, stds 0.1, 0.1, 0.2, 0.2). */
  readonly coder: DeltaXywhCoder = new DeltaXywhCoder();
  /** The backend the weights live on. */
  readonly backend: Backend;
  readonly #anchors = new Map<string, { host: Anchors; device: Tensor }>();
  readonly #loss: AtssLossEntry;

  /** Composes the model of `parts`, whose weights live on `backend`. */
  constructor(readonly config: AtssModelConfig, parts: AtssParts, backend: Backend) {
    super();
    this.backend = backend;
    this.backbone = this.registerModule("backbone", parts.backbone);
    this.neck = this.registerModule("neck", parts.neck);
    this.head = this.registerModule("bbox_head", parts.head);
    this.#loss = parts.loss;
  }

  /** Head outputs for `images` `[N, 3, H, W]` (H and W multiples of 32). */
  forward(images: Tensor): AtssHeadOutput {
    const [, c, h, w] = images.shape;
    if (images.rank !== 4 || c !== 3 || images.dtype !== "f32") {
      throw new TypeError(
        `Atss: expected f32 images [N, 3, H, W], got ${images.dtype} [${images.shape.join(", ")}]`,
      );
    }
    if (h % 32 !== 0 || w % 32 !== 0) {
      throw new TypeError(`Atss: image size ${h}x${w} is not a multiple of 32 (pad the batch)`);
    }
    return this.head.forward(this.neck.forward(this.backbone.forward(images)));
  }

  /** The anchors of an `height x width` input, on the host and the device (cached). */
  anchors(height: number, width: number): { host: Anchors; device: Tensor } {
    const key = `${height}x${width}`;
    let entry = this.#anchors.get(key);
    if (!entry) {
      const host = generateAnchors(height, width, this.config.anchors);
      const device = keep(
        tensor(host.boxes, [host.boxes.length / 4, 4], { backend: this.backend }),
      );
      entry = { host, device };
      this.#anchors.set(key, entry);
    }
    return entry;
  }

  /** Uploads a loader batch's images. */
  images(batch: Batch): Tensor {
    return batchImages(batch, this.backend);
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
    const backend = this.backend;
    const [n, numAnchors] = out.cls.shape;
    const numPositives = targets.index.length;
    const flatCls = reshape(out.cls, [n * numAnchors, this.config.numClasses]);
    const flatReg = reshape(out.reg, [n * numAnchors, 4]);
    const posIndex = tensor(targets.index, [numPositives], { backend });
    const gtBox = tensor(targets.gtBox, [numPositives, 4], { backend });
    const posAnchor = tensor(targets.anchor, [numPositives, 4], { backend });
    const posBoxes = this.coder.decode(posAnchor, indexSelect(flatReg, 0, posIndex));
    return this.#loss.compute({
      out,
      targets,
      flatCls,
      posIndex,
      posBoxes,
      gtBox,
      delta: this.config.delta,
      backend,
    });
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
        let start = 0;
        const levels = host.perLevel.map((count) => {
          const end = start + count;
          const level = {
            logits: reshape(slice(out.cls, [i, start, 0], [i + 1, end, this.config.numClasses]), [
              count,
              this.config.numClasses,
            ]),
            deltas: reshape(slice(out.reg, [i, start, 0], [i + 1, end, 4]), [count, 4]),
            anchors: slice(device, [start, 0], [end, 4]),
            scoreFactors: out.centerness
              ? reshape(slice(out.centerness, [i, start], [i + 1, end]), [count])
              : undefined,
          };
          start = end;
          return level;
        });
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
