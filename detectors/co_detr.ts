/**
 * Co-Deformable-DETR (Zong et al., ICCV 2023) and BRS-DETR, its rank-based
 * version (spec §10.7): a ResNet, Deformable-DETR's channel mapper, encoder
 * and decoder with iterative box refinement, two-stage proposals, mixed query
 * selection and look-forward-twice, one-to-one Hungarian matching on every
 * decoder layer and on the encoder's proposals, and Co-DETR's collaborative
 * training with auxiliary heads on the encoder output (an ATSS head and a
 * Faster R-CNN branch, each optional) whose positives become extra decoder
 * queries. `loss: "brs"` is BRS-DETR (BRS everywhere a classification loss
 * was, box losses self-balanced to it); `"focal"` is the Co-DETR baseline
 * (focal losses in the DETR branches and the ATSS head, the stock Faster
 * R-CNN losses, `"ce"`, in its Faster R-CNN branch).
 *
 * A training step reads back the encoder's proposal scores (top-k queries on
 * the host), the decoder's outputs (Hungarian matching on the host) and, with
 * the Faster R-CNN branch, the RPN's outputs (proposals).
 *
 * @module
 */

import { DeltaXywhCoder } from "../boxes/coder.ts";
import type { Batch } from "../data/loader.ts";
import { giouLoss } from "../losses/baselines/iou_loss.ts";
import { rankSortWithBox } from "../losses/baselines/balance.ts";
import { bucketedRankSort, rankSort } from "../losses/ops/mod.ts";
import { bboxOverlaps } from "../boxes/box_ops.ts";
import { detach, noGrad } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { defaultDevice } from "../tensor/device.ts";
import { Conv2d } from "../tensor/nn/conv.ts";
import { constant, normal } from "../tensor/nn/init.ts";
import { GroupNorm } from "../tensor/nn/layers.ts";
import { Linear } from "../tensor/nn/linear.ts";
import { Module } from "../tensor/nn/module.ts";
import { LayerNorm } from "../tensor/nn/transformer.ts";
import { concat, slice } from "../tensor/ops/concat.ts";
import { add, broadcastTo, mul, sigmoid } from "../tensor/ops/elementwise.ts";
import { sinePositionEncoding } from "../tensor/ops/position_encoding.ts";
import { permute, reshape } from "../tensor/ops/shape.ts";
import { Rng } from "../tensor/rng.ts";
import { empty, keep, type Tensor, tensor, tidyAsync } from "../tensor/tensor.ts";
import { type AnchorConfig, type Anchors, generateAnchors } from "./anchors.ts";
import { anchorLossInputs } from "./anchor_detector.ts";
import { ATSS_LOSS_TABLE, rankingTargetVector } from "./atss_losses.ts";
import { assignBatch, type AtssTargets } from "./atss_targets.ts";
import { ResNet, type ResNetConfig } from "./backbones/resnet.ts";
import { batchImages, type Detector, type DetectorLosses } from "./detector.ts";
import {
  BRS_DETR_MATCH,
  DEFORMABLE_DETR_MATCH,
  detrMatch,
  type DetrTargets,
} from "./detr_matcher.ts";
import { AtssHead, type AtssHeadOutput } from "./heads/atss_head.ts";
import { groupsFor } from "./norm_layer.ts";
import type { Detections } from "./postprocess.ts";
import type { TwoStageLoss } from "./two_stage_losses.ts";
import { auxiliaryQueries } from "./deformable_detr/aux_queries.ts";
import { AuxRcnn, type CoDetrRcnnConfig } from "./deformable_detr/aux_rcnn.ts";
import { type LevelLayout, levelLayout } from "./deformable_detr/deformable_attention.ts";
import {
  DETR_LOSSES,
  type DetrLoss,
  detrSetLoss,
  matchedTargets,
} from "./deformable_detr/detr_losses.ts";
import {
  BoxMlp,
  ChannelMapper,
  DecoderLayer,
  type DeformableTransformerConfig,
  EncoderLayer,
  encoderProposals,
  encoderReferencePoints,
  inverseSigmoid,
  proposalPosEmbedHost,
} from "./deformable_detr/transformer.ts";

/** The auxiliary ATSS head of Co-DETR (`CoATSSHead`). */
export interface CoDetrAtssConfig {
  /** Anchors: one stride per transformer level plus one (a stride-2 convolution of the last). */
  anchors: AnchorConfig;
  /** ATSS candidates per level (9). */
  topk: number;
  /** Tower width. */
  featChannels: number;
  /** Convolutions per tower (1 in Co-DETR). */
  stackedConvs: number;
  /** Weight of the head's loss: 5 for the ranking losses (§10.7), 12 for the focal baseline. */
  weight: number;
}

/** Everything that defines a Co-DETR / BRS-DETR model. */
export interface CoDetrModelConfig {
  /** Detector kind. */
  kind: "co_detr";
  /** Object classes. */
  numClasses: number;
  /** Backbone (four stages; C3–C5 feed the transformer). */
  backbone: ResNetConfig;
  /** Transformer widths; `numLevels` is 3 backbone levels plus stride-2 extras. */
  transformer: DeformableTransformerConfig;
  /** Group-norm groups of the channel mapper and auxiliary head (32). */
  normGroups: number;
  /** Decoder queries per image (300 in the seeds). */
  numQueries: number;
  /** Classification loss of every branch: BRS-DETR `brs` (or `rs`), Co-DETR `focal`. */
  loss: DetrLoss;
  /** δ of the ranking loss (0.5). */
  delta?: number;
  /** The auxiliary ATSS head (none: no ATSS branch). */
  auxAtss?: CoDetrAtssConfig;
  /** The auxiliary Faster R-CNN branch (none: no such branch). */
  auxRcnn?: CoDetrRcnnConfig;
  /** Auxiliary positive queries: at most `maxPerImage` per image (300), loss weight (1). */
  auxQueries: { maxPerImage: number; weight: number };
  /** Inference: detections per image (100). */
  test: { maxPerImage: number };
}

/**
 * The loss of the auxiliary Faster R-CNN branch for each loss of the
 * detector: the ranking losses as they are, Co-DETR's focal baseline with
 * the stock Faster R-CNN losses (`two_stage_losses.ts`).
 */
export const AUX_RCNN_LOSS: { readonly [L in DetrLoss]: TwoStageLoss } = Object.freeze({
  brs: "brs",
  rs: "rs",
  focal: "ce",
});

/** An auxiliary branch's projection of its positives' box embedding to query positions and contents. */
interface AuxQueryEmbedding {
  posTrans: Linear;
  posTransNorm: LayerNorm;
}

/** What the decoder runs on: query contents, positions and reference boxes. */
interface QuerySet {
  tgt: Tensor;
  queryPos: Tensor;
  /** `[N, Q, 4]` reference boxes after the sigmoid (no gradient). */
  reference: Tensor;
}

/** Every decoder layer's outputs. */
interface DecoderOutputs {
  /** `[N, Q, K]` per layer. */
  logits: Tensor[];
  /** `[N, Q, 4]` normalised `cxcywh` per layer. */
  boxes: Tensor[];
}

/** The encoder's output and its layout. */
export interface CoDetrEncoding {
  /** `[N, S, E]`. */
  memory: Tensor;
  /** Its levels. */
  layout: LevelLayout;
}

const flattenMap = (m: Tensor): Tensor => {
  const [n, c, h, w] = m.shape;
  return reshape(permute(m, [0, 2, 3, 1]), [n, h * w, c]);
};

/**
 * Builds a Co-DETR / BRS-DETR model with weights drawn from `seed`.
 *
 * @example The tiny BRS-DETR with 10 queries, on a blank 64 px image
 * ```ts
 * import { buildCoDetr } from "./co_detr.ts";
 * import BRS_DETR_TINY_SHAPES from "../configs/brs_detr_tiny_shapes.ts";
 * import { cpu } from "../tensor/device.ts";
 * import { tensor } from "../tensor/tensor.ts";
 * import assert from "node:assert/strict";
 *
 * const backend = cpu();
 * const config = { ...BRS_DETR_TINY_SHAPES.model, numQueries: 10 };
 * const model = buildCoDetr(config, { seed: 0, backend }).eval();
 * const image = tensor(new Float32Array(3 * 64 * 64), [1, 3, 64, 64], { backend });
 * const [detections] = await model.predict(image, [[1, 1]]);
 * assert.equal(detections.scores.length, 10 * config.numClasses); // all (query, class) pairs
 * ```
 */
export function buildCoDetr(
  config: CoDetrModelConfig,
  options: { seed: number; backend?: Backend },
): CoDetr {
  return new CoDetr(config, new Rng(options.seed), options.backend ?? defaultDevice());
}

/**
 * Co-Deformable-DETR with BRS (or focal) losses; see the module doc and
 * {@linkcode buildCoDetr}.
 *
 * @example
 * ```ts
 * import { CoDetr } from "./co_detr.ts";
 * import BRS_DETR_TINY_SHAPES from "../configs/brs_detr_tiny_shapes.ts";
 * import { cpu } from "../tensor/device.ts";
 * import { Rng } from "../tensor/rng.ts";
 * import assert from "node:assert/strict";
 *
 * const model = new CoDetr(BRS_DETR_TINY_SHAPES.model, new Rng(0), cpu());
 * assert.equal(model.decoder.length, 3);
 * assert.equal(model.classHeads.length, 4); // one per decoder layer and the encoder's
 * ```
 */
export class CoDetr extends Module<Tensor, CoDetrEncoding> implements Detector {
  /** The backend the weights live on. */
  readonly backend: Backend;
  /** Backbone. */
  readonly backbone: ResNet;
  /** Channel mapper to the transformer width. */
  readonly neck: ChannelMapper;
  /** `[L, E]` level embeddings. */
  readonly levelEmbed: Tensor;
  /** Encoder layers. */
  readonly encoder: EncoderLayer[] = [];
  /** Decoder layers. */
  readonly decoder: DecoderLayer[] = [];
  /** Class heads: one per decoder layer, then the encoder's. */
  readonly classHeads: Linear[] = [];
  /** Box heads: one per decoder layer, then the encoder's. */
  readonly boxHeads: BoxMlp[] = [];
  /** Auxiliary positive queries of the last {@linkcode CoDetr.loss}, per image, by branch. */
  lastAuxQueries: { atss?: Int32Array; rcnn?: Int32Array } = {};
  readonly #encOutput: Linear;
  readonly #encOutputNorm: LayerNorm;
  readonly #posTrans: Linear;
  readonly #posTransNorm: LayerNorm;
  readonly #queryEmbed: Tensor;
  readonly #downsample?: [Conv2d, GroupNorm];
  readonly #atss?: { head: AtssHead } & AuxQueryEmbedding;
  readonly #rcnn?: { branch: AuxRcnn } & AuxQueryEmbedding;
  readonly #coder = new DeltaXywhCoder();
  readonly #constants = new Map<string, Tensor>();
  readonly #anchors = new Map<string, { host: Anchors }>();

  /** Builds the model with weights drawn from `rng` (in registration order). */
  constructor(readonly config: CoDetrModelConfig, rng: Rng, backend: Backend) {
    super();
    this.backend = backend;
    const t = config.transformer;
    const e = t.embedDim;
    if (!DETR_LOSSES.includes(config.loss)) {
      throw new RangeError(
        `CoDetr: unknown loss "${config.loss}" (expected ${DETR_LOSSES.join(", ")})`,
      );
    }
    if (config.backbone.layers.length !== 4 || t.numLevels < 3) {
      throw new RangeError(
        `CoDetr: needs a 4-stage backbone and at least 3 levels, got ${config.backbone.layers.length} stages and ${t.numLevels} levels`,
      );
    }
    if (e % 4 !== 0) throw new RangeError(`CoDetr: embedDim ${e} is not a multiple of 4`);
    this.backbone = this.registerModule("backbone", new ResNet(config.backbone, rng, backend));
    this.neck = this.registerModule(
      "neck",
      new ChannelMapper(this.backbone.outChannels, e, t.numLevels, config.normGroups, rng, backend),
    );
    this.levelEmbed = this.registerParameter(
      "level_embeds",
      normal(empty([t.numLevels, e], "f32", backend), rng),
    );
    for (let k = 0; k < t.encoderLayers; k++) {
      this.encoder.push(this.registerModule(`encoder${k}`, new EncoderLayer(t, rng, backend)));
    }
    for (let k = 0; k < t.decoderLayers; k++) {
      this.decoder.push(this.registerModule(`decoder${k}`, new DecoderLayer(t, rng, backend)));
    }
    const prior = -Math.log((1 - 0.01) / 0.01);
    for (let k = 0; k <= t.decoderLayers; k++) {
      const cls = new Linear(e, config.numClasses, { rng, backend });
      constant(cls.bias!, prior);
      this.classHeads.push(this.registerModule(`cls_branches${k}`, cls));
      this.boxHeads.push(this.registerModule(`reg_branches${k}`, new BoxMlp(e, 3, rng, backend)));
    }
    this.#encOutput = this.registerModule("enc_output", new Linear(e, e, { rng, backend }));
    this.#encOutputNorm = this.registerModule("enc_output_norm", new LayerNorm(e, { backend }));
    this.#posTrans = this.registerModule("pos_trans", new Linear(2 * e, 2 * e, { rng, backend }));
    this.#posTransNorm = this.registerModule("pos_trans_norm", new LayerNorm(2 * e, { backend }));
    this.#queryEmbed = this.registerParameter(
      "query_embedding",
      normal(empty([config.numQueries, e], "f32", backend), rng),
    );
    const aux = config.auxAtss, rcnn = config.auxRcnn;
    for (
      const [name, anchors] of [["ATSS head", aux?.anchors], [
        "Faster R-CNN branch",
        rcnn?.anchors,
      ]] as const
    ) {
      if (anchors && anchors.strides.length !== t.numLevels + 1) {
        throw new RangeError(
          `CoDetr: the auxiliary ${name} needs ${
            t.numLevels + 1
          } anchor strides (the levels plus one), got ${anchors.strides.length}`,
        );
      }
    }
    const queryEmbedding = (suffix: string) => ({
      posTrans: this.registerModule(
        `aux_pos_trans${suffix}`,
        new Linear(2 * e, 2 * e, { rng, backend }),
      ),
      posTransNorm: this.registerModule(
        `aux_pos_trans_norm${suffix}`,
        new LayerNorm(2 * e, { backend }),
      ),
    });
    if (aux || rcnn) {
      const conv = new Conv2d(e, e, 3, { rng, backend, stride: 2, padding: 1 });
      this.#downsample = [
        this.registerModule("downsample_conv", conv),
        this.registerModule(
          "downsample_norm",
          new GroupNorm(groupsFor(e, config.normGroups), e, { backend }),
        ),
      ];
    }
    if (aux) {
      const head = this.registerModule(
        "query_head_atss",
        new AtssHead(
          {
            numClasses: config.numClasses,
            inChannels: e,
            featChannels: aux.featChannels,
            stackedConvs: aux.stackedConvs,
            normGroups: config.normGroups,
            anchorsPerLocation: aux.anchors.scalesPerOctave * aux.anchors.ratios.length,
            numLevels: aux.anchors.strides.length,
            centerness: config.loss === "focal",
            priorProbability: 0.01,
          },
          rng,
          backend,
        ),
      );
      this.#atss = { head, ...queryEmbedding("") };
    }
    if (rcnn) {
      const branch = this.registerModule(
        "query_head_rcnn",
        new AuxRcnn(rcnn, e, config.numClasses, rng, backend, AUX_RCNN_LOSS[config.loss]),
      );
      this.#rcnn = { branch, ...queryEmbedding("_rcnn") };
    }
  }

  /** Uploads a loader batch's images. */
  images(batch: Batch): Tensor {
    return batchImages(batch, this.backend);
  }

  /** A kept constant tensor, built once per key. */
  #constant(key: string, make: () => Tensor): Tensor {
    let t = this.#constants.get(key);
    if (!t) {
      t = keep(noGrad(make));
      this.#constants.set(key, t);
    }
    return t;
  }

  /** The encoder's output for `images` `[N, 3, H, W]` (H and W multiples of 32). */
  forward(images: Tensor): CoDetrEncoding {
    const [n, c, h, w] = images.shape;
    if (images.rank !== 4 || c !== 3 || images.dtype !== "f32") {
      throw new TypeError(
        `CoDetr: expected f32 images [N, 3, H, W], got ${images.dtype} [${
          images.shape.join(", ")
        }]`,
      );
    }
    if (h % 32 !== 0 || w % 32 !== 0) {
      throw new TypeError(`CoDetr: image size ${h}x${w} is not a multiple of 32 (pad the batch)`);
    }
    const e = this.config.transformer.embedDim;
    const maps = this.neck.forward(this.backbone.forward(images));
    const shapes = maps.map((m) => [m.shape[2], m.shape[3]] as [number, number]);
    const layout = levelLayout(shapes);
    const key = `${n}|${shapes.join("|")}`;
    const sine = this.#constant(`pos|${key}`, () =>
      concat(
        shapes.map(([lh, lw]) =>
          flattenMap(
            sinePositionEncoding(
              tensor(new Uint32Array(n * lh * lw), [n, lh, lw], {
                backend: this.backend,
              }),
              { numFeats: e / 2, offset: -0.5 },
            ),
          )
        ),
        1,
      ));
    const levelPos = concat(
      shapes.map(([lh, lw], l) =>
        broadcastTo(reshape(slice(this.levelEmbed, [l, 0], [l + 1, e]), [1, 1, e]), [n, lh * lw, e])
      ),
      1,
    );
    const pos = add(sine, levelPos);
    const refs = this.#constant(`refs|${key}`, () => {
      const one = encoderReferencePoints(shapes);
      const all = new Float32Array(n * one.length);
      for (let i = 0; i < n; i++) all.set(one, i * one.length);
      return tensor(all, [n, one.length / 2, 2], { backend: this.backend });
    });
    let memory = concat(maps.map(flattenMap), 1);
    for (const layer of this.encoder) {
      memory = layer.forward({ src: memory, pos, referencePoints: refs, layout });
    }
    return { memory, layout };
  }

  /** The encoder's proposal logits `[N, S, K]` and boxes before the sigmoid `[N, S, 4]`. */
  #encoderOutputs({ memory, layout }: CoDetrEncoding): { logits: Tensor; unact: Tensor } {
    const d = this.config.transformer.decoderLayers;
    const out = this.#encOutputNorm.forward(this.#encOutput.forward(memory));
    const s = memory.shape[1];
    const proposals = this.#constant(
      `proposals|${layout.spatialShapes.join("|")}`,
      () => tensor(encoderProposals(layout.spatialShapes), [1, s, 4], { backend: this.backend }),
    );
    return {
      logits: this.classHeads[d].forward(out),
      unact: add(this.boxHeads[d].forward(out), proposals),
    };
  }

  /**
   * The encoder's `Q` best proposals of each image by class-0 score, read
   * back: `[N * Q * 4]` boxes before the sigmoid, with the read-back logits
   * and boxes of every position.
   */
  async #topProposals(
    enc: { logits: Tensor; unact: Tensor },
  ): Promise<{ top: Float32Array; logits: Float32Array; unact: Float32Array }> {
    const [n, s, k] = enc.logits.shape;
    const q = this.config.numQueries;
    if (s < q) {
      throw new RangeError(
        `CoDetr: ${q} queries but only ${s} encoder positions (use larger images or fewer queries)`,
      );
    }
    const [logits, unact] = await Promise.all([enc.logits.data(), enc.unact.data()]) as [
      Float32Array,
      Float32Array,
    ];
    const top = new Float32Array(n * q * 4);
    const order = Array.from({ length: s }, (_, i) => i);
    for (let b = 0; b < n; b++) {
      const score = (i: number) => logits[(b * s + i) * k];
      const chosen = order.slice().sort((i, j) => score(j) - score(i) || i - j).slice(0, q);
      chosen.forEach((i, r) =>
        top.set(unact.subarray((b * s + i) * 4, (b * s + i) * 4 + 4), (b * q + r) * 4)
      );
    }
    return { top, logits, unact };
  }

  /**
   * The decoder's queries from the top proposals: reference boxes, positions
   * from their sine embedding, contents from the learned query embedding
   * (mixed selection).
   */
  #proposalQueries(top: Float32Array, n: number): QuerySet {
    const q = this.config.numQueries, e = this.config.transformer.embedDim;
    const backend = this.backend;
    const reference = tensor(top.map((u) => 1 / (1 + Math.exp(-u))), [n, q, 4], { backend });
    const embed = tensor(proposalPosEmbedHost(top, e), [n, q, 2 * e], { backend });
    const posOut = this.#posTransNorm.forward(this.#posTrans.forward(embed));
    const queryPos = slice(posOut, [0, 0, 0], [n, q, e]);
    const tgt = broadcastTo(reshape(this.#queryEmbed, [1, q, e]), [n, q, e]);
    return { tgt, queryPos, reference };
  }

  /** Runs the decoder with box refinement and look-forward-twice. */
  #decode(queries: QuerySet, { memory, layout }: CoDetrEncoding): DecoderOutputs {
    const logits: Tensor[] = [], boxes: Tensor[] = [];
    let x = queries.tgt;
    let reference = queries.reference; // the detached input of this layer
    let previous = queries.reference; // the previous layer's refined box, with its gradient
    this.decoder.forEach((layer, l) => {
      x = layer.forward({
        tgt: x,
        queryPos: queries.queryPos,
        referencePoints: reference,
        memory,
        layout,
      });
      const delta = this.boxHeads[l].forward(x);
      const refined = sigmoid(add(delta, inverseSigmoid(reference)));
      boxes.push(l === 0 ? refined : sigmoid(add(delta, inverseSigmoid(previous))));
      logits.push(this.classHeads[l].forward(x));
      previous = refined;
      reference = detach(refined);
    });
    return { logits, boxes };
  }

  /** Each image's GT as normalised `cxcywh`; throws if an image has more objects than queries. */
  #targets(batch: Batch): DetrTargets[] {
    const { width: w, height: h } = batch;
    return batch.boxes.map((b, i) => {
      const count = batch.labels[i].length;
      if (count > this.config.numQueries) {
        throw new RangeError(
          `CoDetr: image ${i} has ${count} objects but the decoder has only ${this.config.numQueries} queries`,
        );
      }
      const boxes = new Float32Array(count * 4);
      for (let j = 0; j < count; j++) {
        const [x1, y1, x2, y2] = b.subarray(4 * j, 4 * j + 4);
        boxes.set([(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h], 4 * j);
      }
      return { labels: batch.labels[i], boxes };
    });
  }

  /** The auxiliary ATSS head, when the config has one. */
  get auxHead(): AtssHead | undefined {
    return this.#atss?.head;
  }

  /** The auxiliary head's anchors of an `height x width` input (cached); needs `auxAtss`. */
  auxAnchors(height: number, width: number): Anchors {
    if (!this.config.auxAtss) throw new TypeError("CoDetr: the config has no auxiliary head");
    const key = `${height}x${width}`;
    let entry = this.#anchors.get(key);
    if (!entry) {
      entry = { host: generateAnchors(height, width, this.config.auxAtss!.anchors) };
      this.#anchors.set(key, entry);
    }
    return entry.host;
  }

  /**
   * The auxiliary ATSS head's loss parts (times its weight) for its outputs
   * and the ATSS assignment of the batch: BRS/RS with IoU targets and the
   * GIoU averaged without score weights (Q18), self-balanced; or stock ATSS's
   * focal, GIoU and centerness losses.
   */
  auxHeadLoss(out: AtssHeadOutput, positives: AtssTargets): Record<string, Tensor> {
    const weight = this.config.auxAtss!.weight;
    const inputs = anchorLossInputs(out, positives, this.#coder, this.backend, this.config.delta);
    if (this.config.loss === "focal") {
      const { parts } = ATSS_LOSS_TABLE.focal.compute(inputs);
      return Object.fromEntries(Object.entries(parts).map(([k, t]) => [k, mul(t, weight)]));
    }
    // Rank-based Co-ATSS: IoU targets, GIoU averaged without score weights (Q18), SB.
    const { flatCls, posBoxes, gtBox } = inputs;
    const [rows, classes] = flatCls.shape;
    const values = noGrad(() => bboxOverlaps(detach(posBoxes), gtBox, { isAligned: true }));
    const target = rankingTargetVector(
      values,
      positives.index,
      positives.label,
      rows,
      classes,
      this.backend,
    );
    const op = this.config.loss === "brs" ? bucketedRankSort : rankSort;
    const rs = op(reshape(flatCls, [rows * classes]), target, { delta: this.config.delta ?? 0.5 });
    if (positives.index.length === 0) {
      // Nothing to regress: the ranking parts (0, no gradient) and no box term.
      return { rank: mul(rs.rankingLoss, weight), sort: mul(rs.sortingLoss, weight) };
    }
    const box = giouLoss(posBoxes, gtBox, { reduction: "mean" });
    return rankSortWithBox(rs.rankingLoss, rs.sortingLoss, box, weight).parts;
  }

  /** The encoder output as maps `[N, E, H_l, W_l]`, plus the stride-2 extra level (needs an auxiliary branch). */
  auxFeatures({ memory, layout }: CoDetrEncoding): Tensor[] {
    if (!this.#downsample) throw new TypeError("CoDetr: the config has no auxiliary head");
    const [n, , e] = memory.shape;
    const maps = layout.spatialShapes.map(([h, w], l) => {
      const start = layout.levelStartIndex[l];
      const level = slice(memory, [0, start, 0], [n, start + h * w, e]);
      return permute(reshape(level, [n, h, w, e]), [0, 3, 1, 2]);
    });
    const [conv, norm] = this.#downsample;
    maps.push(norm.forward(conv.forward(maps.at(-1)!)));
    return maps;
  }

  /**
   * The training loss of a batch: every decoder layer and the encoder's
   * proposals against their Hungarian matches, and with an auxiliary head its
   * own loss and that of its positives as decoder queries. Parts: `rank`,
   * `sort` (or `cls`), `l1`, `giou` summed over the decoder layers; the same
   * prefixed `enc.` (encoder proposals) and `aux_atss.`, `aux_rcnn.` (each
   * auxiliary branch's queries); the auxiliary heads' own prefixed `atss.`,
   * `rpn.`, `roi.`.
   */
  async loss(batch: Batch): Promise<DetectorLosses> {
    const { numClasses: k, numQueries: q, loss, delta } = this.config;
    const gt = this.#targets(batch);
    const images = this.images(batch);
    const n = batch.batchSize;
    const encoding = this.forward(images);
    const enc = this.#encoderOutputs(encoding);
    const proposals = await this.#topProposals(enc);
    const out = this.#decode(this.#proposalQueries(proposals.top, n), encoding);
    const host = await Promise.all(out.logits.flatMap((l, i) => [l.data(), out.boxes[i].data()]));
    const weights = loss === "focal" ? DEFORMABLE_DETR_MATCH : BRS_DETR_MATCH;
    const parts: Record<string, Tensor> = {};
    const collect = (prefix: string, p: Record<string, Tensor>) => {
      for (const [name, t] of Object.entries(p)) {
        const key = prefix + name;
        parts[key] = parts[key] ? add(parts[key], t) : t;
      }
    };
    out.logits.forEach((logits, l) => {
      const pred = { logits: host[2 * l], boxes: host[2 * l + 1], numQueries: q, numClasses: k };
      const targets = matchedTargets(detrMatch(pred, gt, weights), gt, q);
      collect("", detrSetLoss(logits, out.boxes[l], targets, { loss, delta }).parts);
    });
    // Two-stage proposals: class-agnostic (every GT of class 0), all S positions.
    const s = enc.logits.shape[1];
    const agnostic = gt.map((t) => ({ labels: new Int32Array(t.labels.length), boxes: t.boxes }));
    const encPred = {
      logits: proposals.logits,
      boxes: proposals.unact.map((u) => 1 / (1 + Math.exp(-u))),
      numQueries: s,
      numClasses: k,
    };
    const encTargets = matchedTargets(detrMatch(encPred, agnostic, weights), agnostic, s, true);
    collect("enc.", detrSetLoss(enc.logits, sigmoid(enc.unact), encTargets, { loss, delta }).parts);
    const features = this.#downsample ? this.auxFeatures(encoding) : [];
    const branches: [name: "atss" | "rcnn", AtssTargets, AuxQueryEmbedding][] = [];
    if (this.#atss) {
      const positives = assignBatch(
        this.auxAnchors(batch.height, batch.width),
        batch.boxes,
        batch.labels,
        this.config.auxAtss!.topk,
      );
      collect("atss.", this.auxHeadLoss(this.#atss.head.forward(features), positives));
      branches.push(["atss", positives, this.#atss]);
    }
    if (this.#rcnn) {
      const step = await this.#rcnn.branch.step(features, batch, { delta });
      collect("", step.parts);
      branches.push(["rcnn", step.positives, this.#rcnn]);
    }
    this.lastAuxQueries = {};
    for (const [name, positives, embedding] of branches) {
      const aux = auxiliaryQueries(
        positives,
        n,
        batch.width,
        batch.height,
        this.config.auxQueries.maxPerImage,
      );
      this.lastAuxQueries[name] = aux.perImage;
      if (aux.numQueries === 0) continue;
      const queries = this.#auxQuerySet(embedding, aux.unact, n, aux.numQueries);
      const auxOut = this.#decode(queries, encoding);
      auxOut.logits.forEach((logits, l) => {
        collect(
          `aux_${name}.`,
          detrSetLoss(logits, auxOut.boxes[l], aux.targets, {
            loss,
            delta,
            weight: this.config.auxQueries.weight,
          }).parts,
        );
      });
    }
    const total = Object.values(parts).reduce((a, b) => add(a, b));
    const numPositives = gt.reduce((sum, t) => sum + t.labels.length, 0);
    return { total, parts, numPositives };
  }

  /** Queries of the auxiliary positives: positions and contents from their anchors' embedding. */
  #auxQuerySet(aux: AuxQueryEmbedding, unact: Float32Array, n: number, m: number): QuerySet {
    const e = this.config.transformer.embedDim, backend = this.backend;
    const embed = tensor(proposalPosEmbedHost(unact, e), [n, m, 2 * e], { backend });
    const posOut = aux.posTransNorm.forward(aux.posTrans.forward(embed));
    return {
      queryPos: slice(posOut, [0, 0, 0], [n, m, e]),
      tgt: slice(posOut, [0, 0, e], [n, m, 2 * e]),
      reference: tensor(unact.map((u) => 1 / (1 + Math.exp(-u))), [n, m, 4], { backend }),
    };
  }

  /**
   * Detections for `images` `[N, 3, H, W]`: the last decoder layer's
   * `maxPerImage` best (query, class) scores, boxes in the coordinates of each
   * original image (`scales[i]` is `[scaleX, scaleY]`, resized / original).
   */
  async predict(images: Tensor, scales: readonly [number, number][]): Promise<Detections[]> {
    const [n, , h, w] = images.shape;
    if (scales.length !== n) {
      throw new TypeError(`CoDetr.predict: ${scales.length} scales for ${n} images`);
    }
    const { numClasses: k, numQueries: q } = this.config;
    const keepCount = Math.min(this.config.test.maxPerImage, q * k);
    return await tidyAsync(async () => {
      const { encoding, enc } = noGrad(() => {
        const encoding = this.forward(images);
        return { encoding, enc: this.#encoderOutputs(encoding) };
      });
      const { top } = await this.#topProposals(enc);
      const out = noGrad(() => this.#decode(this.#proposalQueries(top, n), encoding));
      const [logits, boxes] = await Promise.all([
        out.logits.at(-1)!.data(),
        out.boxes.at(-1)!.data(),
      ]);
      const order = Array.from({ length: q * k }, (_, i) => i);
      return Array.from({ length: n }, (_, b) => {
        const at = (i: number) => logits[b * q * k + i];
        const top = order.slice().sort((i, j) => at(j) - at(i) || i - j).slice(0, keepCount);
        const det = {
          boxes: new Float32Array(top.length * 4),
          scores: new Float32Array(top.length),
          labels: new Int32Array(top.length),
        };
        const [sx, sy] = scales[b];
        top.forEach((i, r) => {
          const query = Math.floor(i / k), o = (b * q + query) * 4;
          const [cx, cy, bw, bh] = [
            boxes[o] * w,
            boxes[o + 1] * h,
            boxes[o + 2] * w,
            boxes[o + 3] * h,
          ];
          det.boxes.set([
            (cx - bw / 2) / sx,
            (cy - bh / 2) / sy,
            (cx + bw / 2) / sx,
            (cy + bh / 2) / sy,
          ], 4 * r);
          det.scores[r] = 1 / (1 + Math.exp(-at(i)));
          det.labels[r] = i % k;
        });
        return det;
      });
    });
  }
}
