/**
 * Two-stage detectors (Faster R-CNN, Cascade R-CNN) trained with the rank-based
 * recipe (docs/departures.md, R3 and R4; notes in docs/two_stage.md) or with
 * the stock losses it replaces, composed the way torchvision's `GeneralizedRCNN(backbone, rpn, roi_heads)` is:
 * {@linkcode TwoStageDetector} takes a ResNet, an FPN (C2–C5 in, P2–P6 out),
 * an {@linkcode RpnHead} and one or more RoI stages, each a
 * {@linkcode Shared2FcBBoxHead} with its IoU threshold, loss weight and coder.
 * `faster_rcnn.ts` and `cascade_rcnn.ts` build one from a config.
 *
 * One step of training (the losses come from `two_stage_losses.ts` by the
 * config's `loss`: the rank-based ones, or the stock `"ce"`, which draws
 * anchors and RoIs):
 * 1. features and RPN outputs;
 * 2. the RPN outputs are read back (the one readback of the step) and turned
 *    into proposals per image (`rpn.ts`, the training caps), and the RPN
 *    loss is taken (`rpn_loss.ts` on every anchor, or `rpn_baseline_loss.ts`);
 * 3. per stage: the proposals are assigned with the GT boxes added
 *    (`roi_targets.ts`; drawn with `"ce"`), pooled from P2–P5
 *    (`multiRoiAlign`), classified and regressed, and scored by the RoI loss
 *    (`roi_loss.ts`, or `roi_baseline_loss.ts`); a
 *    stage that has a successor reads its deltas back and hands on its RoIs
 *    decoded and clipped, the added GT boxes left out (mmdetection's
 *    `refine_bboxes`).
 *
 * At test time the stages run on the RPN's test proposals, each on the boxes
 * the previous one refined; the class logits are averaged over the stages
 * (mmdetection's `CascadeRoIHead.simple_test`: the raw outputs are averaged,
 * then the sigmoid, or with `"ce"` the softmax, is taken) and the last
 * stage's boxes are kept
 * (`roi_postprocess.ts`).
 *
 * @module
 */

import { DeltaXywhCoder } from "../boxes/coder.ts";
import type { Batch } from "../data/loader.ts";
import { detach, noGrad } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { defaultDevice } from "../tensor/device.ts";
import { Module } from "../tensor/nn/module.ts";
import { Rng } from "../tensor/rng.ts";
import { full } from "../tensor/ops/creation.ts";
import { add } from "../tensor/ops/elementwise.ts";
import { type Tensor, tidyAsync } from "../tensor/tensor.ts";
import { type AnchorConfig, type Anchors, generateAnchors } from "./anchors.ts";
import { ResNet, type ResNetConfig } from "./backbones/resnet.ts";
import { batchImages, type Detector, type DetectorLosses } from "./detector.ts";
import { type BBoxHeadOutput, multiRoiAlign, Shared2FcBBoxHead } from "./heads/roi_head.ts";
import { RpnHead, type RpnHeadOutput } from "./heads/rpn_head.ts";
import { Fpn } from "./necks/fpn.ts";
import { FcnMaskHead } from "./heads/mask_head.ts";
import { MaskBranch, type MaskSettings } from "./mask_branch.ts";
import type { Detections } from "./postprocess.ts";
import { roiDetections } from "./roi_postprocess.ts";
import { type RoiTargets, roiTargets } from "./roi_targets.ts";
import { batchProposals } from "./rpn.ts";
import { type TwoStageLoss, twoStageLoss, type TwoStageLossEntry } from "./two_stage_losses.ts";

export { TWO_STAGE_LOSSES, type TwoStageLoss } from "./two_stage_losses.ts";

/** How the RPN turns its outputs into proposals (one setting for training, one for test). */
export interface ProposalSettings {
  /** Highest-scoring anchors kept per level before NMS (2000 training, 1000 test). */
  nmsPre: number;
  /** Proposals kept per image after NMS (1000). */
  maxPerImage: number;
  /** NMS IoU threshold within each level (0.7). */
  iouThreshold: number;
}

/** The RPN of a two-stage model. */
export interface RpnSettings {
  /** Channels of its shared 3x3 convolution (256). */
  featChannels: number;
  /** Its anchors; the strides are the pyramid levels (P2–P6: 4–64). */
  anchors: AnchorConfig;
  /** Weight of the whole RPN loss (`head_weight`, 0.2). */
  weight: number;
  /** Proposals for training. */
  train: ProposalSettings;
  /** Proposals at test time. */
  test: ProposalSettings;
}

/** How RoIs are pooled and classified. */
export interface RoiHeadSettings {
  /** Side of the pooled features (7). */
  roiSize: number;
  /** Width of the two shared layers (1024). */
  fcChannels: number;
  /** RoIAlign samples per bin; 0 adapts to the box (mmdetection's default). */
  samplingRatio: number;
  /** Scale of the finest pooling level's RoIs (56). */
  finestScale: number;
  /** Pyramid levels RoIs are pooled from, finest first (4: P2–P5). */
  poolLevels: number;
}

/** Test-time settings of the last stage. */
export interface TwoStageTestSettings {
  /** Class scores must be above this (0.40 in the seeds' COCO configs). */
  scoreThr: number;
  /** NMS IoU threshold per class (0.5). */
  iouThreshold: number;
  /** Detections kept per image (100). */
  maxPerImage: number;
}

/** What every two-stage model config holds besides its RoI stages. */
export interface TwoStageCommonConfig {
  /** Object classes. */
  numClasses: number;
  /** Backbone (its four stages feed the FPN: C2–C5). */
  backbone: ResNetConfig;
  /** FPN output channels. */
  neckChannels: number;
  /** The region proposal network. */
  rpn: RpnSettings;
  /** The RoI heads' shared shape. */
  roi: RoiHeadSettings;
  /**
   * Loss of the RPN and every RoI stage: `"brs"` or `"rs"` (the rank-based
   * recipe) or `"ce"` (the stock Faster R-CNN's sampled cross entropy + L1;
   * `two_stage_losses.ts`).
   */
  loss: TwoStageLoss;
  /** δ of the ranking loss; default 0.5 (docs/departures.md, Q20). */
  delta?: number;
  /** Inference. */
  test: TwoStageTestSettings;
}

/** One RoI stage: its head and how it is trained. */
export interface RoiStage {
  /** The head (class-specific or class-agnostic regression). */
  head: Shared2FcBBoxHead;
  /** IoU at which a RoI is a positive of this stage (0.5 / 0.6 / 0.7). */
  posIou: number;
  /** Weight of the stage's loss (1). */
  weight: number;
  /** The stage's box coder. */
  coder: DeltaXywhCoder;
}

/** The parts a {@linkcode TwoStageDetector} is composed of. */
export interface TwoStageParts {
  /** Backbone. */
  backbone: ResNet;
  /** Neck: C2–C5 in, the RPN's levels out. */
  neck: Fpn;
  /** Region proposal head. */
  rpnHead: RpnHead;
  /** RoI stages, first to last (one for Faster R-CNN, three for Cascade R-CNN). */
  stages: RoiStage[];
  /** Mask R-CNN's mask branch, trained on the (single) stage's positives. */
  mask?: MaskBranch;
}

/** The RoI heads of the stages (and the mask head), named as mmdetection names them. */
class RoiHeads extends Module {
  constructor(heads: Shared2FcBBoxHead[], maskHead?: FcnMaskHead) {
    super();
    if (heads.length === 1) this.registerModule("bbox_head", heads[0]);
    else this.registerModule("bbox_head", new HeadList(heads));
    if (maskHead) this.registerModule("mask_head", maskHead);
  }
  forward(x: Tensor): Tensor {
    return x;
  }
}

/** Heads registered as `0`, `1`, ... (mmcv's `ModuleList`). */
class HeadList extends Module {
  constructor(heads: Shared2FcBBoxHead[]) {
    super();
    heads.forEach((h, i) => this.registerModule(String(i), h));
  }
  forward(x: Tensor): Tensor {
    return x;
  }
}

/** Per image `[R * 4]` xyxy boxes as `[K * 5]` RoIs (batch index first: mmdetection's `bbox2roi`). */
function toRois(boxes: readonly Float32Array[]): Float32Array {
  const total = boxes.reduce((n, b) => n + b.length / 4, 0);
  const rois = new Float32Array(5 * total);
  let k = 0;
  boxes.forEach((b, image) => {
    for (let i = 0; i < b.length / 4; i++, k++) {
      rois[5 * k] = image;
      rois.set(b.subarray(4 * i, 4 * i + 4), 5 * k + 1);
    }
  });
  return rois;
}

/**
 * A two-stage detector composed of its parts (see `buildFasterRcnn` and
 * `buildCascadeRcnn`). Parameter names follow mmdetection's (`backbone.*`,
 * `neck.*`, `rpn_head.*`, `roi_head.bbox_head.*` or
 * `roi_head.bbox_head.{0,1,2}.*`).
 *
 * Contract: every stage but the last regresses class-agnostically (its RoIs
 * refine into one box each); the RPN's levels are the neck's outputs, and
 * RoIs are pooled from the first `roi.poolLevels` of them.
 *
 * @example
 * ```ts ignore
 * const model = new TwoStageDetector(config, { backbone, neck, rpnHead, stages }, backend);
 * const { total, parts } = await model.loss(batch); // parts: rpn.rank, ..., s0.rank, ...
 * ```
 */
export class TwoStageDetector extends Module<Tensor, Tensor[]> implements Detector {
  /** Backbone. */
  readonly backbone: ResNet;
  /** Neck. */
  readonly neck: Fpn;
  /** Region proposal head. */
  readonly rpnHead: RpnHead;
  /** RoI stages. */
  readonly stages: readonly RoiStage[];
  /** The mask branch (Mask R-CNN), or undefined. */
  readonly mask?: MaskBranch;
  /** The backend the weights live on. */
  readonly backend: Backend;
  readonly #anchors = new Map<string, Anchors>();
  readonly #losses: TwoStageLossEntry;

  /**
   * Composes the model of `parts`, whose weights live on `backend`.
   *
   * @throws {RangeError} When the loss is unknown, there is no stage, a stage
   * before the last regresses per class, a head's classifier does not suit
   * the loss (a background logit for `"ce"` only), or a mask branch comes
   * with more than one stage or with `"ce"`.
   */
  constructor(
    readonly config: TwoStageCommonConfig & { kind: string },
    parts: TwoStageParts,
    backend: Backend,
  ) {
    super();
    this.#losses = twoStageLoss(config.loss, config.kind);
    if (parts.stages.length === 0) throw new RangeError("TwoStageDetector: no RoI stage");
    parts.stages.forEach((s, i) => {
      if (Boolean(s.head.config.background) !== this.#losses.background) {
        throw new RangeError(
          `TwoStageDetector: stage ${i}'s head ${
            s.head.config.background ? "has" : "lacks"
          } a background logit, which loss "${config.loss}" ${
            this.#losses.background ? "needs" : "does not use"
          }`,
        );
      }
    });
    parts.stages.slice(0, -1).forEach((s, i) => {
      if (!s.head.config.classAgnostic) {
        throw new RangeError(
          `TwoStageDetector: stage ${i} regresses per class, but only the last stage may`,
        );
      }
    });
    if (parts.mask && parts.stages.length !== 1) {
      throw new RangeError(
        `TwoStageDetector: a mask branch needs one RoI stage, got ${parts.stages.length}`,
      );
    }
    if (parts.mask && this.#losses.background) {
      throw new RangeError(
        `TwoStageDetector: the mask branch trains with "brs" or "rs" only (its Dice loss is self-balanced to the ranking loss), got "${config.loss}"`,
      );
    }
    this.backend = backend;
    this.mask = parts.mask;
    this.backbone = this.registerModule("backbone", parts.backbone);
    this.neck = this.registerModule("neck", parts.neck);
    this.rpnHead = this.registerModule("rpn_head", parts.rpnHead);
    this.registerModule(
      "roi_head",
      new RoiHeads(parts.stages.map((s) => s.head), parts.mask?.head),
    );
    this.stages = parts.stages;
  }

  /** The pyramid of `images` `[N, 3, H, W]` (H and W multiples of 32), finest first. */
  forward(images: Tensor): Tensor[] {
    const [, c, h, w] = images.shape;
    const name = this.config.kind;
    if (images.rank !== 4 || c !== 3 || images.dtype !== "f32") {
      throw new TypeError(
        `${name}: expected f32 images [N, 3, H, W], got ${images.dtype} [${
          images.shape.join(", ")
        }]`,
      );
    }
    if (h % 32 !== 0 || w % 32 !== 0) {
      throw new TypeError(`${name}: image size ${h}x${w} is not a multiple of 32 (pad the batch)`);
    }
    return this.neck.forward(this.backbone.forwardStages(images).slice(1));
  }

  /** The RPN anchors of an `height x width` input (cached). */
  anchors(height: number, width: number): Anchors {
    const key = `${height}x${width}`;
    let anchors = this.#anchors.get(key);
    if (!anchors) {
      anchors = generateAnchors(height, width, this.config.rpn.anchors);
      this.#anchors.set(key, anchors);
    }
    return anchors;
  }

  /** Uploads a loader batch's images. */
  images(batch: Batch): Tensor {
    return batchImages(batch, this.backend);
  }

  /** Whether training batches must carry GT masks (a mask branch is present). */
  get usesMasks(): boolean {
    return this.mask !== undefined;
  }

  /**
   * The training loss of a batch: the RPN's (parts `rpn.rank`, `rpn.sort`,
   * `rpn.box`; with `"ce"` `rpn.cls`, `rpn.box`) plus each stage's
   * (`s0.rank`, `s0.sort`, `s0.box`, ...; `s0.cls`, `s0.box`, ...) and,
   * with a mask branch, `mask` (self-balanced, part of the total) and
   * `mask.dice` (its score-weighted Dice before balancing, logged only).
   * `numPositives` counts the first stage's positive RoIs (drawn ones with
   * `"ce"`).
   *
   * @throws {TypeError} When the model has a mask branch and the batch no masks.
   */
  async loss(batch: Batch): Promise<DetectorLosses> {
    const { delta } = this.config;
    if (this.mask && !batch.masks) {
      throw new TypeError(
        `${this.config.kind}: the batch carries no GT masks (load it with withMasks: true)`,
      );
    }
    const losses = this.#losses;
    const features = this.forward(this.images(batch));
    const rpnOut = this.rpnHead.forward(features);
    const anchors = this.#checkedAnchors(batch.height, batch.width, rpnOut);
    const shapes = batch.meta.map((m) => [m.height, m.width] as [number, number]);
    let proposals = await this.#proposals(rpnOut, anchors, shapes, this.config.rpn.train);
    const rpn = losses.rpn({
      out: rpnOut,
      anchors,
      boxes: batch.boxes,
      proposals,
      delta,
      weight: this.config.rpn.weight,
    });
    const parts: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(rpn.parts)) parts[`rpn.${name}`] = t;
    let total = rpn.total;
    let numPositives = 0;
    for (const [s, stage] of this.stages.entries()) {
      const targets = losses.sample(
        roiTargets(proposals, batch.boxes, batch.labels, { posIou: stage.posIou }),
      );
      const numRois = targets.labels.length;
      let stageLoss: DetectorLosses;
      let out: BBoxHeadOutput | undefined;
      if (numRois === 0) {
        // No proposal and no GT box anywhere in the batch.
        stageLoss = losses.noRois(stage.weight, this.backend);
      } else {
        out = stage.head.forward(this.#pool(features, targets.rois));
        stageLoss = losses.roi({ out, targets, delta, weight: stage.weight, coder: stage.coder });
      }
      for (const [name, t] of Object.entries(stageLoss.parts)) parts[`s${s}.${name}`] = t;
      total = add(total, stageLoss.total);
      if (this.mask) {
        const masks = out
          ? this.mask.loss(
            (rois, size) => this.#pool(features, rois, size),
            out,
            targets,
            batch.masks!,
            batch.height,
            batch.width,
            add(stageLoss.parts.rank, stageLoss.parts.sort),
          )
          : {
            loss: full([], 0, { backend: this.backend }),
            dice: full([], 0, { backend: this.backend }),
          };
        parts.mask = masks.loss;
        parts["mask.dice"] = masks.dice;
        total = add(total, masks.loss);
      }
      if (s === 0) numPositives = stageLoss.numPositives;
      if (s + 1 < this.stages.length) {
        proposals = out ? await this.#refine(out, targets, stage, shapes) : proposals;
      }
    }
    return { total, parts, numPositives };
  }

  /**
   * Detections for `images` `[N, 3, H, W]`, in the coordinates of each original
   * image: `scales[i]` is `[scaleX, scaleY]` (resized / original). With a mask
   * branch each detection also gets a COCO RLE mask of the original image,
   * whose size is `sizes[i]` (`[height, width]`; by default the input's
   * padded size divided by the scale, rounded).
   */
  predict(
    images: Tensor,
    scales: readonly [number, number][],
    sizes?: readonly [number, number][],
  ): Promise<Detections[]> {
    return tidyAsync(async () => {
      const { rounds, logitSum, deltas, shapes, features } = await this.#testStages(images);
      const boxes = rounds[rounds.length - 1];
      const numClasses = this.config.numClasses, stagesRun = this.stages.length;
      const last = this.stages[stagesRun - 1];
      const width = last.head.config.classAgnostic ? 4 : 4 * numClasses;
      const { test } = this.config;
      const total = boxes.reduce((sum, b) => sum + b.length / 4, 0);
      let offset = 0;
      const out: Detections[] = boxes.map((rois, i) => {
        const r = rois.length / 4, logitWidth = logitSum.length / total;
        const scores = this.#losses.probabilities(
          logitSum.subarray(offset * logitWidth, (offset + r) * logitWidth),
          stagesRun,
          numClasses,
        );
        const det = roiDetections(
          rois,
          scores,
          deltas.subarray(offset * width, (offset + r) * width),
          shapes[i],
          {
            scoreThreshold: test.scoreThr,
            iouThreshold: test.iouThreshold,
            maxPerImage: test.maxPerImage,
            coder: last.coder,
          },
        );
        offset += r;
        return det;
      });
      if (this.mask) {
        const [, , h, w] = images.shape;
        const masks = await this.mask.predict(
          (rois, size) => noGrad(() => this.#pool(features, rois, size)),
          out.map((d) => d.boxes),
          out.map((d) => d.labels),
          scales,
          sizes ?? scales.map(([sx, sy]) => [Math.round(h / sy), Math.round(w / sx)]),
        );
        out.forEach((det, i) => det.masks = masks[i]);
      }
      out.forEach((det, i) => {
        const [sx, sy] = scales[i];
        for (let d = 0; d < det.scores.length; d++) {
          det.boxes[4 * d] /= sx, det.boxes[4 * d + 2] /= sx;
          det.boxes[4 * d + 1] /= sy, det.boxes[4 * d + 3] /= sy;
        }
      });
      return out;
    });
  }

  /**
   * The test-time boxes of `images` `[N, 3, H, W]` round by round, per image
   * (`[R * 4]` xyxy in the input's pixels): `[0]` the RPN's proposals, `[s]`
   * those boxes as stage `s - 1` refined them, and last the last stage's own
   * boxes when it regresses class-agnostically. A trained Cascade R-CNN
   * brings each round closer to the objects.
   *
   * @example
   * ```ts ignore
   * const [proposals, afterStage0, afterStage1, final] = await cascade.refinements(images);
   * ```
   */
  refinements(images: Tensor): Promise<Float32Array[][]> {
    return tidyAsync(async () => {
      const { rounds, deltas, shapes } = await this.#testStages(images);
      const last = this.stages[this.stages.length - 1];
      if (!last.head.config.classAgnostic) return rounds;
      return [...rounds, this.#decodePerImage(rounds[rounds.length - 1], deltas, last, shapes)];
    });
  }

  /**
   * Runs the test path: the proposals, then every stage on the previous
   * stage's refined boxes. Returns each stage's input boxes, the class logits
   * summed over the stages and the last stage's deltas.
   */
  async #testStages(images: Tensor): Promise<{
    rounds: Float32Array[][];
    logitSum: Float32Array;
    deltas: Float32Array;
    shapes: [number, number][];
    features: Tensor[];
  }> {
    const [n, , h, w] = images.shape;
    const shapes = Array.from({ length: n }, () => [h, w] as [number, number]);
    const features = noGrad(() => this.forward(images));
    const rpnOut = noGrad(() => this.rpnHead.forward(features));
    const anchors = this.#checkedAnchors(h, w, rpnOut);
    let boxes = await this.#proposals(rpnOut, anchors, shapes, this.config.rpn.test);
    const rounds = [boxes];
    let logitSum = new Float32Array(0), deltas = new Float32Array(0);
    const k = boxes.reduce((sum, b) => sum + b.length / 4, 0);
    if (k === 0) return { rounds, logitSum, deltas, shapes, features };
    for (const [s, stage] of this.stages.entries()) {
      const out = noGrad(() => stage.head.forward(this.#pool(features, toRois(boxes))));
      const [cls, reg] = await Promise.all([out.cls.data(), out.reg.data()]);
      if (s === 0) logitSum = new Float32Array(cls.length);
      for (let i = 0; i < cls.length; i++) logitSum[i] += cls[i];
      deltas = Float32Array.from(reg);
      if (s + 1 < this.stages.length) {
        boxes = this.#decodePerImage(boxes, deltas, stage, shapes);
        rounds.push(boxes);
      }
    }
    return { rounds, logitSum, deltas, shapes, features };
  }

  #checkedAnchors(height: number, width: number, out: RpnHeadOutput): Anchors {
    const anchors = this.anchors(height, width);
    if (anchors.perLevel.some((count, l) => count !== out.perLevel[l])) {
      throw new RangeError(
        `${this.config.kind}: the RPN gives [${out.perLevel.join(", ")}] anchors per level, ` +
          `the anchor layout [${
            anchors.perLevel.join(", ")
          }] (rpn.anchors.strides must match the neck's levels)`,
      );
    }
    return anchors;
  }

  #pool(features: Tensor[], rois: Float32Array, outputSize = this.config.roi.roiSize): Tensor {
    const { samplingRatio, finestScale, poolLevels } = this.config.roi;
    return multiRoiAlign(
      features.slice(0, poolLevels),
      rois,
      this.config.rpn.anchors.strides.slice(0, poolLevels),
      { outputSize, samplingRatio, finestScale, aligned: true },
    );
  }

  /** Proposals of each image from the RPN outputs (read back once). */
  async #proposals(
    out: RpnHeadOutput,
    anchors: Anchors,
    shapes: readonly [number, number][],
    settings: ProposalSettings,
  ): Promise<Float32Array[]> {
    return await batchProposals(out, anchors, shapes, {
      ...settings,
      coder: this.#losses.rpnCoder,
    });
  }

  /**
   * The next stage's proposals in training: each RoI's class-agnostic box,
   * decoded and clipped, the GT boxes `roiTargets` added left out
   * (mmdetection's `pos_is_gts`).
   */
  async #refine(
    out: BBoxHeadOutput,
    targets: RoiTargets,
    stage: RoiStage,
    shapes: readonly [number, number][],
  ): Promise<Float32Array[]> {
    const deltas = await detach(out.reg).data();
    const boxes: Float32Array[] = [];
    let start = 0;
    targets.perImage.forEach((count, i) => {
      const kept: number[] = [];
      for (let k = start; k < start + count; k++) if (!targets.fromGt[k]) kept.push(k);
      const anchors = new Float32Array(4 * kept.length), d = new Float32Array(4 * kept.length);
      kept.forEach((k, j) => {
        anchors.set(targets.rois.subarray(5 * k + 1, 5 * k + 5), 4 * j);
        d.set(deltas.subarray(4 * k, 4 * k + 4), 4 * j);
      });
      boxes.push(stage.coder.decodeHost(anchors, d, shapes[i]));
      start += count;
    });
    return boxes;
  }

  /** Test time: each image's RoIs decoded by a class-agnostic stage's deltas. */
  #decodePerImage(
    boxes: readonly Float32Array[],
    deltas: Float32Array,
    stage: RoiStage,
    shapes: readonly [number, number][],
  ): Float32Array[] {
    let offset = 0;
    return boxes.map((b, i) => {
      const out = stage.coder.decodeHost(b, deltas.subarray(offset, offset + b.length), shapes[i]);
      offset += b.length;
      return out;
    });
  }
}

/** What {@linkcode buildTwoStage} makes each RoI stage of. */
export interface RoiStageSpec {
  /** IoU at which a RoI is a positive. */
  posIou: number;
  /** Weight of the stage's loss. */
  weight: number;
  /** One box per RoI instead of one per class. */
  classAgnostic: boolean;
}

/** A Mask R-CNN mask branch: its head's shape and how it pools and samples. */
export interface MaskBranchSettings extends MaskSettings {
  /** Channels of the head's convolutions and upsampling (256). */
  convChannels: number;
  /** 3x3 convolutions before the upsampling (4). */
  numConvs: number;
}

/**
 * Builds a two-stage detector: the backbone, the FPN (C2–C5 to as many
 * levels as the RPN has strides, the top ones by max pooling), the RPN head,
 * one {@linkcode Shared2FcBBoxHead} per stage and, given `mask`, an
 * {@linkcode FcnMaskHead}, with weights drawn from `seed` in that order. Every stage decodes with stds `(0.1, 0.1, 0.2, 0.2)`,
 * as the rank-based configs do for all three Cascade stages (stock Cascade
 * R-CNN narrows them at each stage).
 *
 * @example
 * ```ts ignore
 * const model = buildTwoStage(config, [{ posIou: 0.5, weight: 1, classAgnostic: false }], { seed: 0 });
 * ```
 *
 * @throws {RangeError} When the backbone has other than 4 stages, or the RPN fewer levels than the RoI pooling.
 */
export function buildTwoStage(
  config: TwoStageCommonConfig & { kind: string },
  stages: readonly RoiStageSpec[],
  options: { seed: number; backend?: Backend },
  mask?: MaskBranchSettings,
): TwoStageDetector {
  const name = config.kind;
  if (config.backbone.layers.length !== 4) {
    throw new RangeError(
      `${name}: the backbone needs 4 stages (C2–C5), got ${config.backbone.layers.length}`,
    );
  }
  const levels = config.rpn.anchors.strides.length;
  if (config.roi.poolLevels < 1 || config.roi.poolLevels > levels) {
    throw new RangeError(
      `${name}: roi.poolLevels ${config.roi.poolLevels} is not within the RPN's ${levels} levels`,
    );
  }
  const backend = options.backend ?? defaultDevice();
  const rng = new Rng(options.seed);
  const backbone = new ResNet(config.backbone, rng, backend);
  const neck = new Fpn(
    backbone.stageChannels,
    config.neckChannels,
    levels,
    rng,
    backend,
    "maxpool",
  );
  const rpnHead = new RpnHead(
    {
      inChannels: config.neckChannels,
      featChannels: config.rpn.featChannels,
      anchorsPerLocation: config.rpn.anchors.scalesPerOctave * config.rpn.anchors.ratios.length,
    },
    rng,
    backend,
  );
  const coder = new DeltaXywhCoder();
  const built = stages.map((spec) => ({
    head: new Shared2FcBBoxHead(
      {
        inChannels: config.neckChannels,
        roiSize: config.roi.roiSize,
        fcChannels: config.roi.fcChannels,
        numClasses: config.numClasses,
        classAgnostic: spec.classAgnostic,
        background: twoStageLoss(config.loss, name).background,
      },
      rng,
      backend,
    ),
    posIou: spec.posIou,
    weight: spec.weight,
    coder,
  }));
  const maskBranch = mask && new MaskBranch(
    new FcnMaskHead(
      {
        inChannels: config.neckChannels,
        convChannels: mask.convChannels,
        numConvs: mask.numConvs,
        numClasses: config.numClasses,
      },
      rng,
      backend,
    ),
    { roiSize: mask.roiSize, maxRois: mask.maxRois, threshold: mask.threshold },
  );
  return new TwoStageDetector(
    config,
    { backbone, neck, rpnHead, stages: built, mask: maskBranch },
    backend,
  );
}
