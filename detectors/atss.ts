/**
 * ATSS (Zhang et al., CVPR 2020) trained with a ranking-based loss (BRS by
 * default; RS, BAP, AP) or with the stock focal loss: backbone, FPN, head,
 * anchors, the ATSS assigner, the losses of the spec's recipe (§10.1–10.2) and
 * inference. Assignment runs on the host (anchors and boxes are host data);
 * everything that touches predictions runs on the device with no readback.
 *
 * @module
 */

import type { Batch } from "../data/loader.ts";
import { apLoss as apLossOp, bucketedAp, bucketedRankSort, rankSort } from "../losses/ops/mod.ts";
import { binaryCrossEntropyWithLogits } from "../losses/baselines/cross_entropy.ts";
import { sigmoidFocalLoss } from "../losses/baselines/focal_loss.ts";
import { giouLoss } from "../losses/baselines/iou_loss.ts";
import { scoreWeightedMean, scoreWeights, selfBalance } from "../losses/baselines/balance.ts";
import { detach, noGrad } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { defaultDevice } from "../tensor/device.ts";
import { Module } from "../tensor/nn/module.ts";
import { full, zeros } from "../tensor/ops/creation.ts";
import { concat, slice } from "../tensor/ops/concat.ts";
import { add, mul } from "../tensor/ops/elementwise.ts";
import { indexSelect } from "../tensor/ops/index.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { Rng } from "../tensor/rng.ts";
import { keep, type Tensor, tensor } from "../tensor/tensor.ts";
import { type AnchorConfig, type Anchors, generateAnchors } from "./anchors.ts";
import { atssAssign } from "./atss_assigner.ts";
import { ResNet, type ResNetConfig } from "./backbones/resnet.ts";
import { bboxOverlaps } from "../boxes/box_ops.ts";
import { DeltaXywhCoder } from "../boxes/coder.ts";
import { AtssHead, type AtssHeadConfig, type AtssHeadOutput } from "./heads/atss_head.ts";
import { Fpn } from "./necks/fpn.ts";
import { denseDetections, type Detections, readDetections } from "./postprocess.ts";

/** The classification losses ATSS can train with. */
export type AtssLoss = "brs" | "rs" | "bap" | "ap" | "focal";

/** The classification losses by name, for command lines and configs. */
export const ATSS_LOSSES: readonly AtssLoss[] = ["brs", "rs", "bap", "ap", "focal"];

/** Everything that defines an ATSS model. */
export interface AtssModelConfig {
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
  /** δ of the ranking loss; default 0.5 for RS/BRS and 1.0 for AP/BAP (spec Q20). */
  delta?: number;
  /** Inference settings. */
  test: { nmsPre: number; scoreThr: number; iouThreshold: number; maxPerImage: number };
}

/** The loss of one batch: the total to minimise and its parts (for logging). */
export interface AtssLosses {
  /** Sum of the parts, a scalar tensor. */
  total: Tensor;
  /** Named scalar parts (`rank`, `sort`, `box`, `cls`, `centerness`). */
  parts: Record<string, Tensor>;
  /** Positive anchors in the batch. */
  numPositives: number;
}

/** The targets ATSS gives one batch, built on the host. */
export interface AtssTargets {
  /** Flat index `image * A + anchor` of each positive. */
  index: Int32Array;
  /** Class of each positive. */
  label: Int32Array;
  /** Ground-truth box of each positive `[P, 4]`. */
  gtBox: Float32Array;
  /** Anchor of each positive `[P, 4]`. */
  anchor: Float32Array;
  /** Anchors per image. */
  numAnchors: number;
}

/**
 * Assigns the anchors of every image of a batch with ATSS.
 *
 * @param anchors The anchors of the (padded) batch size.
 * @param boxes Per image `[n, 4]` ground-truth boxes.
 * @param labels Per image `[n]` classes.
 * @param topk ATSS candidates per level.
 */
export function assignBatch(
  anchors: Anchors,
  boxes: readonly Float32Array[],
  labels: readonly Int32Array[],
  topk: number,
): AtssTargets {
  const numAnchors = anchors.boxes.length / 4;
  const index: number[] = [], label: number[] = [], gtBox: number[] = [], anchor: number[] = [];
  boxes.forEach((gt, image) => {
    const { gtIndex } = atssAssign(anchors.boxes, anchors.perLevel, gt, topk);
    for (let a = 0; a < numAnchors; a++) {
      const g = gtIndex[a];
      if (g < 0) continue;
      index.push(image * numAnchors + a);
      label.push(labels[image][g]);
      for (let k = 0; k < 4; k++) {
        gtBox.push(gt[4 * g + k]);
        anchor.push(anchors.boxes[4 * a + k]);
      }
    }
  });
  return {
    index: Int32Array.from(index),
    label: Int32Array.from(label),
    gtBox: Float32Array.from(gtBox),
    anchor: Float32Array.from(anchor),
    numAnchors,
  };
}

/** Centerness of each positive's anchor centre inside its box (stock ATSS's target). */
export function centernessTargets(targets: AtssTargets): Float32Array {
  const n = targets.index.length;
  const out = new Float32Array(n);
  for (let p = 0; p < n; p++) {
    const a = targets.anchor.subarray(4 * p, 4 * p + 4),
      g = targets.gtBox.subarray(4 * p, 4 * p + 4);
    const cx = (a[0] + a[2]) / 2, cy = (a[1] + a[3]) / 2;
    const l = cx - g[0], t = cy - g[1], r = g[2] - cx, b = g[3] - cy;
    out[p] = Math.sqrt(
      (Math.min(l, r) / Math.max(l, r)) * (Math.min(t, b) / Math.max(t, b)),
    );
  }
  return out;
}

/**
 * The ATSS detector.
 *
 * @example Build the tiny model and run it
 * ```ts ignore
 * import { Atss } from "./atss.ts";
 * import { ATSS_TINY_SHAPES } from "../configs/atss_tiny_shapes.ts";
 * const model = new Atss(ATSS_TINY_SHAPES.model, { seed: 0 });
 * const out = model.forward(images); // { cls: [N, A, C], reg: [N, A, 4] }
 * ```
 */
export class Atss extends Module<Tensor, AtssHeadOutput> {
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

  /** Builds the model with weights drawn from `seed`. */
  constructor(readonly config: AtssModelConfig, options: { seed: number; backend?: Backend }) {
    super();
    if (!ATSS_LOSSES.includes(config.loss)) {
      throw new RangeError(
        `Atss: unknown loss "${config.loss}" (expected ${ATSS_LOSSES.join(", ")})`,
      );
    }
    const backend = options.backend ?? defaultDevice();
    this.backend = backend;
    const rng = new Rng(options.seed);
    this.backbone = this.registerModule("backbone", new ResNet(config.backbone, rng, backend));
    const levels = config.anchors.strides.length;
    this.neck = this.registerModule(
      "neck",
      new Fpn(this.backbone.outChannels, config.neckChannels, levels, rng, backend),
    );
    this.head = this.registerModule(
      "bbox_head",
      new AtssHead(
        {
          ...config.head,
          numClasses: config.numClasses,
          inChannels: config.neckChannels,
          anchorsPerLocation: config.anchors.scalesPerOctave * config.anchors.ratios.length,
          numLevels: levels,
          centerness: config.loss === "focal",
        },
        rng,
        backend,
      ),
    );
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
    return tensor(batch.images, [batch.batchSize, 3, batch.height, batch.width], {
      backend: this.backend,
    });
  }

  /**
   * The training loss of a batch, following the spec's recipe for the
   * configured loss. Returns device scalars; nothing is read back.
   */
  loss(batch: Batch): AtssLosses {
    const out = this.forward(this.images(batch));
    const { host } = this.anchors(batch.height, batch.width);
    const targets = assignBatch(host, batch.boxes, batch.labels, this.config.topk);
    return this.lossFromOutputs(out, targets);
  }

  /** The loss of head outputs against host-built targets. */
  lossFromOutputs(out: AtssHeadOutput, targets: AtssTargets): AtssLosses {
    const backend = this.backend;
    const numClasses = this.config.numClasses;
    const [n, numAnchors] = out.cls.shape;
    const numPositives = targets.index.length;
    const flatCls = reshape(out.cls, [n * numAnchors, numClasses]);
    const flatReg = reshape(out.reg, [n * numAnchors, 4]);
    const posIndex = tensor(targets.index, [numPositives], { backend });
    const gtBox = tensor(targets.gtBox, [numPositives, 4], { backend });
    const posAnchor = tensor(targets.anchor, [numPositives, 4], { backend });
    const posBoxes = this.coder.decode(posAnchor, indexSelect(flatReg, 0, posIndex));
    const loss = this.config.loss;
    if (loss === "focal") return this.#focalLoss(out, flatCls, posIndex, posBoxes, gtBox, targets);

    // Ranking losses: one flat vector over the batch, IoU (RS) or 1 (AP) at the positives,
    // gathered from [0, value_1, ..., value_P] by a host-built slot per entry (O(M), no scatter).
    const slots = new Int32Array(n * numAnchors * numClasses);
    targets.index.forEach((i, p) => (slots[i * numClasses + targets.label[p]] = p + 1));
    const values = loss === "rs" || loss === "brs"
      ? noGrad(() => bboxOverlaps(detach(posBoxes), gtBox, { isAligned: true }))
      : full([numPositives], 1, { backend });
    const targetVector = indexSelect(
      concat([zeros([1], { backend }), reshape(values, [numPositives])]),
      0,
      tensor(slots, [slots.length], { backend }),
    );
    const logits = reshape(out.cls, [n * numAnchors * numClasses]);
    const weights = scoreWeights(indexSelect(flatCls, 0, posIndex));
    const box = scoreWeightedMean(giouLoss(posBoxes, gtBox, { reduction: "none" }), weights);
    if (loss === "rs" || loss === "brs") {
      const delta = this.config.delta ?? 0.5;
      const rs = loss === "rs"
        ? rankSort(logits, targetVector, { delta })
        : bucketedRankSort(logits, targetVector, { delta });
      const ranking = add(rs.rankingLoss, rs.sortingLoss);
      const balanced = selfBalance(box, ranking);
      return {
        total: add(ranking, balanced),
        parts: { rank: rs.rankingLoss, sort: rs.sortingLoss, box: balanced },
        numPositives,
      };
    }
    const delta = this.config.delta ?? 1;
    const ap = loss === "ap"
      ? apLossOp(logits, targetVector, { delta })
      : bucketedAp(logits, targetVector, { delta });
    const weighted = mul(box, 2);
    return { total: add(ap.loss, weighted), parts: { ap: ap.loss, box: weighted }, numPositives };
  }

  #focalLoss(
    out: AtssHeadOutput,
    flatCls: Tensor,
    posIndex: Tensor,
    posBoxes: Tensor,
    gtBox: Tensor,
    targets: AtssTargets,
  ): AtssLosses {
    const backend = this.backend;
    const numClasses = this.config.numClasses;
    const numPositives = targets.index.length;
    const avg = Math.max(numPositives, 1);
    // Background anchors get label `numClasses`, which the focal loss reads as "no class".
    const labels = new Int32Array(flatCls.shape[0]).fill(numClasses);
    targets.index.forEach((i, p) => (labels[i] = targets.label[p]));
    const cls = sigmoidFocalLoss(flatCls, tensor(labels, [labels.length], { backend }), {
      reduction: "mean",
      avgFactor: avg,
    });
    const ctrTarget = centernessTargets(targets);
    const ctrSum = Math.max(ctrTarget.reduce((s, v) => s + v, 0), 1e-6);
    const ctrT = tensor(ctrTarget, [numPositives], { backend });
    const box = mul(
      giouLoss(posBoxes, gtBox, { weight: ctrT, reduction: "mean", avgFactor: ctrSum }),
      2,
    );
    const ctrLogits = indexSelect(reshape(out.centerness!, [flatCls.shape[0]]), 0, posIndex);
    const centerness = binaryCrossEntropyWithLogits(ctrLogits, ctrT, {
      reduction: "mean",
      avgFactor: avg,
    });
    return {
      total: add(add(cls, box), centerness),
      parts: { cls, box, centerness },
      numPositives,
    };
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
