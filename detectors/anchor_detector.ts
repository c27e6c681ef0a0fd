/**
 * What the one-stage anchor detectors (ATSS and PAA) share: their parts
 * (ResNet backbone, FPN, the ATSS head), the forward pass, the anchors of an
 * input size (cached on the host and the device), and the per-image,
 * per-level slices of the head outputs that inference reads. Each detector
 * adds its own assignment, loss and post-processing.
 *
 * @module
 */

import type { Batch } from "../data/loader.ts";
import { DeltaXywhCoder } from "../boxes/coder.ts";
import type { Backend } from "../tensor/backend.ts";
import { defaultDevice } from "../tensor/device.ts";
import { Module } from "../tensor/nn/module.ts";
import { slice } from "../tensor/ops/concat.ts";
import { indexSelect } from "../tensor/ops/index.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { Rng } from "../tensor/rng.ts";
import { keep, type Tensor, tensor } from "../tensor/tensor.ts";
import { type AnchorConfig, type Anchors, generateAnchors } from "./anchors.ts";
import type { AtssLossInputs } from "./atss_losses.ts";
import type { AtssTargets } from "./atss_targets.ts";
import { ResNet, type ResNetConfig } from "./backbones/resnet.ts";
import { batchImages } from "./detector.ts";
import { AtssHead, type AtssHeadConfig, type AtssHeadOutput } from "./heads/atss_head.ts";
import { Fpn } from "./necks/fpn.ts";
import type { DenseLevel } from "./postprocess.ts";

/** The config fields every anchor detector has. */
export interface AnchorDetectorConfig {
  /** Detector kind. */
  kind: string;
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
}

/** The network parts of an anchor detector. */
export interface AnchorDetectorParts {
  /** Backbone. */
  backbone: ResNet;
  /** Neck. */
  neck: Fpn;
  /** Head. */
  head: AtssHead;
}

/**
 * Builds the backbone, neck and head of `config` with weights drawn from
 * `seed` (in that order); `extraBranch` adds the head's 1-channel branch on
 * the regression tower (ATSS's centerness, PAA's IoU prediction).
 *
 * @example
 * ```ts ignore
 * const { backbone, neck, head, backend } = buildAnchorParts(config, { seed: 0, extraBranch: false });
 * ```
 */
export function buildAnchorParts(
  config: AnchorDetectorConfig,
  options: { seed: number; backend?: Backend; extraBranch: boolean },
): AnchorDetectorParts & { backend: Backend } {
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
      centerness: options.extraBranch,
    },
    rng,
    backend,
  );
  return { backbone, neck, head, backend };
}

/**
 * What an ATSS loss-table entry reads, from head outputs and host-built
 * targets: the logits flattened to `[N * A, C]` and the positives gathered
 * and decoded by `coder` on the device. Co-DETR's auxiliary ATSS head shares it.
 *
 * @example
 * ```ts ignore
 * const inputs = anchorLossInputs(head.forward(features), assignBatch(anchors, boxes, labels, 9), coder, backend);
 * const { total } = atssLoss("brs").compute(inputs);
 * ```
 */
export function anchorLossInputs(
  out: AtssHeadOutput,
  targets: AtssTargets,
  coder: DeltaXywhCoder,
  backend: Backend,
  delta?: number,
): AtssLossInputs {
  const [n, numAnchors, numClasses] = out.cls.shape;
  const p = targets.index.length;
  const flatCls = reshape(out.cls, [n * numAnchors, numClasses]);
  const flatReg = reshape(out.reg, [n * numAnchors, 4]);
  const posIndex = tensor(targets.index, [p], { backend });
  const gtBox = tensor(targets.gtBox, [p, 4], { backend });
  const posAnchor = tensor(targets.anchor, [p, 4], { backend });
  const posBoxes = coder.decode(posAnchor, indexSelect(flatReg, 0, posIndex));
  return { out, targets, flatCls, posIndex, posBoxes, gtBox, delta, backend };
}

/**
 * A one-stage detector on anchors, composed of its parts: the forward pass,
 * anchors and per-level slices that ATSS and PAA share.
 */
export abstract class AnchorDetector<C extends AnchorDetectorConfig>
  extends Module<Tensor, AtssHeadOutput> {
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

  /**
   * Composes the model of `parts`, whose weights live on `backend`; `label`
   * opens error messages.
   */
  constructor(
    readonly config: C,
    parts: AnchorDetectorParts,
    backend: Backend,
    protected readonly label: string,
  ) {
    super();
    this.backend = backend;
    this.backbone = this.registerModule("backbone", parts.backbone);
    this.neck = this.registerModule("neck", parts.neck);
    this.head = this.registerModule("bbox_head", parts.head);
  }

  /** Head outputs for `images` `[N, 3, H, W]` (H and W multiples of 32). */
  forward(images: Tensor): AtssHeadOutput {
    const [, c, h, w] = images.shape;
    if (images.rank !== 4 || c !== 3 || images.dtype !== "f32") {
      throw new TypeError(
        `${this.label}: expected f32 images [N, 3, H, W], got ${images.dtype} [${
          images.shape.join(", ")
        }]`,
      );
    }
    if (h % 32 !== 0 || w % 32 !== 0) {
      throw new TypeError(
        `${this.label}: image size ${h}x${w} is not a multiple of 32 (pad the batch)`,
      );
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
   * What a loss-table entry reads: the logits flattened to `[N * A, C]` and
   * the positives of `targets` gathered and decoded on the device.
   */
  protected lossInputs(out: AtssHeadOutput, targets: AtssTargets, delta?: number): AtssLossInputs {
    return anchorLossInputs(out, targets, this.coder, this.backend, delta);
  }

  /**
   * The head outputs of image `i` split by pyramid level: logits `[A_l, C]`,
   * deltas and anchors `[A_l, 4]`, and the extra branch's logits `[A_l]`
   * (before any sigmoid) when the head has one.
   */
  protected imageLevels(
    out: AtssHeadOutput,
    i: number,
    anchors: { host: Anchors; device: Tensor },
  ): (DenseLevel & { extraLogits?: Tensor })[] {
    const classes = this.config.numClasses;
    let start = 0;
    return anchors.host.perLevel.map((count) => {
      const end = start + count;
      const level = {
        logits: reshape(slice(out.cls, [i, start, 0], [i + 1, end, classes]), [count, classes]),
        deltas: reshape(slice(out.reg, [i, start, 0], [i + 1, end, 4]), [count, 4]),
        anchors: slice(anchors.device, [start, 0], [end, 4]),
        extraLogits: out.centerness
          ? reshape(slice(out.centerness, [i, start], [i + 1, end]), [count])
          : undefined,
      };
      start = end;
      return level;
    });
  }
}
