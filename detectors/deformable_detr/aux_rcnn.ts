/**
 * Co-DETR's auxiliary Faster R-CNN branch on the encoder's multi-scale output
 * (spec §10.7), with the heads and losses of the two-stage detectors
 * (`two_stage_losses.ts`).
 *
 * With a ranking loss (BRS-DETR): an RPN (max IoU 0.7 / 0.3 on every anchor,
 * BRS or RS with IoU targets, GIoU in the unit-anchor frame, self-balanced,
 * times its weight), proposals (read back), and a sigmoid Shared2FC RoI head
 * (max IoU 0.5, GT boxes added, no sampling, BRS or RS, class-specific GIoU,
 * self-balanced, times its weight). The RPN's and RoI head's GIoU are
 * score-weighted as in the two-stage detectors (the BRS-DETR config
 * averages them unweighted, Q18), and the RPN decodes with stds
 * (0.1, 0.1, 0.2, 0.2) (the BRS-DETR config: 1.0, Q19).
 *
 * With `"ce"` (the Co-DETR baseline): Co-DETR's stock `RPNHead` (256 anchors
 * drawn per image, half positives at most, sigmoid BCE + L1 on deltas with
 * stds 1.0, both times `rpnWeight`) and `CoStandardRoIHead` (512 RoIs drawn
 * per image, a quarter positives at most, softmax CE over the classes and
 * background times `roiWeight`, GIoU on the decoded boxes, `reg_decoded_bbox`,
 * times {@linkcode CO_DETR_ROI_GIOU_WEIGHT} · `roiWeight`).
 *
 * Either way the positive RoIs (drawn ones with `"ce"`) become auxiliary
 * decoder queries.
 *
 * @module
 */

import { DeltaXywhCoder } from "../../boxes/coder.ts";
import type { Batch } from "../../data/loader.ts";
import type { Backend } from "../../tensor/backend.ts";
import { Module } from "../../tensor/nn/module.ts";
import type { Rng } from "../../tensor/rng.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { type AnchorConfig, type Anchors, generateAnchors } from "../anchors.ts";
import type { AtssTargets } from "../atss_targets.ts";
import { multiRoiAlign, Shared2FcBBoxHead } from "../heads/roi_head.ts";
import { RpnHead } from "../heads/rpn_head.ts";
import { roiTargets } from "../roi_targets.ts";
import { batchProposals } from "../rpn.ts";
import { type TwoStageLoss, twoStageLoss } from "../two_stage_losses.ts";

/**
 * The RoI head's GIoU weight relative to its classification loss with
 * `"ce"`: Co-DETR's `GIoULoss(loss_weight=10.0 * num_dec_layer * lambda_2)`
 * beside `CrossEntropyLoss(loss_weight=1.0 * num_dec_layer * lambda_2)`.
 */
export const CO_DETR_ROI_GIOU_WEIGHT = 10;

/** The auxiliary Faster R-CNN branch of Co-DETR. */
export interface CoDetrRcnnConfig {
  /** RPN anchors: one stride per auxiliary level (strides 8–128, scale 4 x 3 octaves x 3 ratios). */
  anchors: AnchorConfig;
  /** Width of the RPN's shared convolution. */
  featChannels: number;
  /** Weight of the RPN loss (ranking: 0.2 · 5 = 1; Co-DETR's `"ce"`: 12 on both terms). */
  rpnWeight: number;
  /** Proposals in training: per-level cap before NMS, NMS IoU, per-image cap after. */
  proposals: { nmsPre: number; iouThreshold: number; maxPerImage: number };
  /** RoI pooling: side, samples per bin (0 adaptive), finest scale of the level mapping. */
  roi: { roiSize: number; samplingRatio: number; finestScale: number };
  /** Width of the two shared layers of the RoI head (1024). */
  fcChannels: number;
  /** IoU of a positive RoI (0.5). */
  posIou: number;
  /** Weight of the RoI loss (ranking: 5; Co-DETR's `"ce"`: 12, its GIoU 10 times that). */
  roiWeight: number;
}

/** What one training step of the branch gives. */
export interface AuxRcnnStep {
  /** Loss parts, prefixed `rpn.` and `roi.`. */
  parts: Record<string, Tensor>;
  /**
   * The positive RoIs as positives of a pseudo assignment: `index = image *
   * numAnchors + j`, `anchor` the RoI box, `gtBox` and `label` its target.
   */
  positives: AtssTargets;
}

/**
 * The RPN and RoI head of Co-DETR's auxiliary Faster R-CNN branch.
 *
 * @example Nine anchors per location on five levels of a 64 px input
 * ```ts
 * import { AuxRcnn } from "./aux_rcnn.ts";
 * import { Rng } from "../../tensor/rng.ts";
 * import { cpu } from "../../tensor/device.ts";
 * const branch = new AuxRcnn({
 *   anchors: { strides: [8, 16, 32, 64, 128], octaveBaseScale: 4, scalesPerOctave: 3, ratios: [0.5, 1, 2] },
 *   featChannels: 8, rpnWeight: 1, proposals: { nmsPre: 100, iouThreshold: 0.7, maxPerImage: 50 },
 *   roi: { roiSize: 7, samplingRatio: 0, finestScale: 56 }, fcChannels: 16, posIou: 0.5, roiWeight: 5,
 * }, 8, 3, new Rng(0), cpu());
 * console.log(branch.anchors(64, 64).perLevel); // [576, 144, 36, 9, 9]
 * ```
 */
export class AuxRcnn extends Module<Tensor[], never> {
  /** The RPN head. */
  readonly rpnHead: RpnHead;
  /** The RoI head. */
  readonly roiHead: Shared2FcBBoxHead;
  readonly #anchors = new Map<string, Anchors>();

  /**
   * Builds both heads with weights from `rng`; with `loss` `"ce"` the RoI
   * head has a background logit.
   */
  constructor(
    readonly config: CoDetrRcnnConfig,
    inChannels: number,
    numClasses: number,
    rng: Rng,
    backend?: Backend,
    readonly loss: TwoStageLoss = "brs",
  ) {
    super();
    const { anchors } = config;
    this.rpnHead = this.registerModule(
      "rpn_head",
      new RpnHead(
        {
          inChannels,
          featChannels: config.featChannels,
          anchorsPerLocation: anchors.scalesPerOctave * anchors.ratios.length,
        },
        rng,
        backend,
      ),
    );
    this.roiHead = this.registerModule(
      "roi_head",
      new Shared2FcBBoxHead(
        {
          inChannels,
          roiSize: config.roi.roiSize,
          fcChannels: config.fcChannels,
          numClasses,
          background: twoStageLoss(loss, "AuxRcnn").background,
        },
        rng,
        backend,
      ),
    );
  }

  /** Not used: the branch runs through {@linkcode AuxRcnn.step}. */
  forward(): never {
    throw new TypeError("AuxRcnn: call step(features, batch, options)");
  }

  /** The RPN's anchors of an input size (cached). */
  anchors(height: number, width: number): Anchors {
    const key = `${height}x${width}`;
    let a = this.#anchors.get(key);
    if (!a) {
      a = generateAnchors(height, width, this.config.anchors);
      this.#anchors.set(key, a);
    }
    return a;
  }

  /**
   * The branch's losses on `features` (one map per anchor stride) for a
   * batch with the loss it was built for, and its positive RoIs. Reads the
   * RPN outputs back once.
   */
  async step(
    features: Tensor[],
    batch: Batch,
    options: { delta?: number } = {},
  ): Promise<AuxRcnnStep> {
    const { config } = this;
    if (features.length !== config.anchors.strides.length) {
      throw new TypeError(
        `AuxRcnn: ${features.length} feature maps for ${config.anchors.strides.length} anchor strides`,
      );
    }
    const losses = twoStageLoss(this.loss, "AuxRcnn");
    const { delta } = options;
    const anchors = this.anchors(batch.height, batch.width);
    const out = this.rpnHead.forward(features);
    const proposals = await batchProposals(
      out,
      anchors,
      batch.boxes.map(() => [batch.height, batch.width] as const),
      { ...config.proposals, coder: losses.rpnCoder },
    );
    const rpn = losses.rpn({
      out,
      anchors,
      boxes: batch.boxes,
      proposals,
      delta,
      weight: config.rpnWeight,
    });
    const targets = losses.sample(
      roiTargets(proposals, batch.boxes, batch.labels, { posIou: config.posIou }),
    );
    const parts: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(rpn.parts)) parts[`rpn.${name}`] = t;
    const k = targets.labels.length;
    if (k > 0) {
      const pooled = multiRoiAlign(features, targets.rois, config.anchors.strides, {
        ...config.roi,
        aligned: true,
      });
      const roi = losses.roi({
        out: this.roiHead.forward(pooled),
        targets,
        delta,
        weight: config.roiWeight,
        coder: ROI_CODER,
        box: { kind: "giou", weight: CO_DETR_ROI_GIOU_WEIGHT },
      });
      for (const [name, t] of Object.entries(roi.parts)) parts[`roi.${name}`] = t;
    }
    return { parts, positives: roiPositives(targets.rois, targets.labels, targets.gtBoxes) };
  }
}

const ROI_CODER = new DeltaXywhCoder();

/**
 * The positive RoIs of a batch (label >= 0) as a pseudo assignment: RoI `j`
 * of image `b` has index `b * M + j` with `M` the most RoIs of an image.
 *
 * @example
 * ```ts
 * import { roiPositives } from "./aux_rcnn.ts";
 * const rois = Float32Array.of(0, 0, 0, 8, 8, 0, 1, 1, 4, 4, 1, 2, 2, 6, 6);
 * const p = roiPositives(rois, Int32Array.of(3, -1, 1), Float32Array.of(0, 0, 8, 8, 0, 0, 0, 0, 2, 2, 5, 5));
 * console.log(Array.from(p.index), Array.from(p.label), p.numAnchors); // [0, 2] [3, 1] 2
 * ```
 *
 * @param rois `[K * 5]` batch index and xyxy of each RoI (images consecutive).
 * @param labels `[K]` class of each RoI, -1 for background.
 * @param gtBoxes `[K * 4]` the box each positive matched.
 */
export function roiPositives(
  rois: Float32Array,
  labels: Int32Array,
  gtBoxes: Float32Array,
): AtssTargets {
  const k = labels.length;
  const counts = new Map<number, number>();
  const within = new Int32Array(k);
  for (let r = 0; r < k; r++) {
    const image = rois[5 * r];
    within[r] = counts.get(image) ?? 0;
    counts.set(image, within[r] + 1);
  }
  const m = Math.max(1, ...counts.values());
  const kept = Array.from({ length: k }, (_, r) => r).filter((r) => labels[r] >= 0);
  return {
    index: Int32Array.from(kept, (r) => rois[5 * r] * m + within[r]),
    label: Int32Array.from(kept, (r) => labels[r]),
    gtBox: Float32Array.from(kept.flatMap((r) => Array.from(gtBoxes.subarray(4 * r, 4 * r + 4)))),
    anchor: Float32Array.from(kept.flatMap((r) => Array.from(rois.subarray(5 * r + 1, 5 * r + 5)))),
    numAnchors: m,
  };
}
