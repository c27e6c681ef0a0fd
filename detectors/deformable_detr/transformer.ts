/**
 * The parts of Deformable-DETR's transformer (Zhu et al., ICLR 2021) with
 * iterative box refinement and two-stage proposals, as Co-Deformable-DETR
 * configures it: the channel mapper from the backbone, the encoder and
 * decoder layers, the per-layer class and box heads, and the host-side
 * constants (encoder reference points, two-stage proposals, the sine
 * embedding of proposal boxes). The detector (`brs_detr.ts`) composes them.
 *
 * Shapes: `N` images, `S = Σ H_l·W_l` flattened pixels of `L` levels, `Q`
 * queries, `E` model width, `K` classes.
 *
 * @module
 */

import type { Backend } from "../../tensor/backend.ts";
import { defaultDevice } from "../../tensor/device.ts";
import { MultiheadAttention } from "../../tensor/nn/attention.ts";
import { Conv2d } from "../../tensor/nn/conv.ts";
import { constant, xavierUniform } from "../../tensor/nn/init.ts";
import { GroupNorm } from "../../tensor/nn/layers.ts";
import { Linear } from "../../tensor/nn/linear.ts";
import { Module } from "../../tensor/nn/module.ts";
import { LayerNorm } from "../../tensor/nn/transformer.ts";
import { add, clamp, div, log, relu, sub } from "../../tensor/ops/elementwise.ts";
import type { Rng } from "../../tensor/rng.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import { groupsFor } from "../norm_layer.ts";
import { DeformableAttention, type LevelLayout } from "./deformable_attention.ts";

/** Widths of the transformer. */
export interface DeformableTransformerConfig {
  /** Model width `E` (256 in the seeds). */
  embedDim: number;
  /** Attention heads (8). */
  numHeads: number;
  /** Feature levels `L` (4). */
  numLevels: number;
  /** Sampling points per head and level (4). */
  numPoints: number;
  /** Hidden width of the feed-forward blocks (2048 in Co-DETR). */
  ffnDim: number;
  /** Encoder layers (6). */
  encoderLayers: number;
  /** Decoder layers (6). */
  decoderLayers: number;
}

/**
 * `log(x / (1 - x))` with `x` clamped to `[0, 1]` and both sides to at least
 * `eps` (Deformable-DETR's `inverse_sigmoid`).
 *
 * @example
 * ```ts
 * import { inverseSigmoid } from "./transformer.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * console.log(await inverseSigmoid(tensor([0.5, 1])).data()); // ~[0, 11.51]
 * ```
 */
export function inverseSigmoid(x: Tensor, eps = 1e-5): Tensor {
  const c = clamp(x, 0, 1);
  return log(div(clamp(c, eps, 1), clamp(sub(1, c), eps, 1)));
}

/**
 * Host `inverseSigmoid` of one value.
 *
 * @example
 * ```ts
 * import { inverseSigmoidHost } from "./transformer.ts";
 * console.log(inverseSigmoidHost(0.5), inverseSigmoidHost(2) > 11); // 0 true
 * ```
 */
export function inverseSigmoidHost(x: number, eps = 1e-5): number {
  const c = Math.min(Math.max(x, 0), 1);
  return Math.log(Math.max(c, eps) / Math.max(1 - c, eps));
}

/**
 * Pixel centres of every level, normalised to `[0, 1]` (`(x + 0.5) / W`,
 * `(y + 0.5) / H`), level by level: the encoder's reference points `[S, 2]`
 * (valid ratios 1: no padding).
 *
 * @example
 * ```ts
 * import { encoderReferencePoints } from "./transformer.ts";
 * console.log(Array.from(encoderReferencePoints([[1, 2]]))); // [0.25, 0.5, 0.75, 0.5]
 * ```
 */
export function encoderReferencePoints(
  spatialShapes: readonly (readonly [number, number])[],
): Float32Array {
  const s = spatialShapes.reduce((a, [h, w]) => a + h * w, 0);
  const out = new Float32Array(s * 2);
  let k = 0;
  for (const [h, w] of spatialShapes) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++, k++) {
        out[2 * k] = (x + 0.5) / w;
        out[2 * k + 1] = (y + 0.5) / h;
      }
    }
  }
  return out;
}

/**
 * The two-stage proposals of every pixel, before the sigmoid: the pixel centre
 * with a side of `0.05 · 2^l` on level `l`, through {@linkcode inverseSigmoidHost}
 * (Deformable-DETR's `gen_encoder_output_proposals` without padding) `[S, 4]`.
 *
 * @example
 * ```ts
 * import { encoderProposals } from "./transformer.ts";
 * const p = encoderProposals([[1, 1]]);
 * console.log(Array.from(p, (v) => Math.round(v * 1e3) / 1e3)); // [0, 0, -2.944, -2.944]
 * ```
 */
export function encoderProposals(
  spatialShapes: readonly (readonly [number, number])[],
): Float32Array {
  const centres = encoderReferencePoints(spatialShapes);
  const out = new Float32Array(centres.length * 2);
  let k = 0;
  spatialShapes.forEach(([h, w], l) => {
    const side = inverseSigmoidHost(0.05 * 2 ** l);
    for (let i = 0; i < h * w; i++, k++) {
      out[4 * k] = inverseSigmoidHost(centres[2 * k]);
      out[4 * k + 1] = inverseSigmoidHost(centres[2 * k + 1]);
      out[4 * k + 2] = side;
      out[4 * k + 3] = side;
    }
  });
  return out;
}

/**
 * The sine embedding of boxes given before the sigmoid (Deformable-DETR's
 * `get_proposal_pos_embed`, temperature 10000, scale 2π): for each of the 4
 * coordinates `v = 2π sigmoid(u)`, `E / 2` features `sin(v / T^(2⌊i/2⌋/(E/2)))`
 * at even `i` and `cos` at odd `i`: `[M · 2E]` for `M` boxes `[M · 4]`.
 *
 * @example
 * ```ts
 * import { proposalPosEmbedHost } from "./transformer.ts";
 * const e = proposalPosEmbedHost(Float32Array.of(0, 0, 0, 0), 4);
 * console.log(e.length, Math.round(e[0] * 1e3) / 1e3); // 8 0 (sin(π))
 * ```
 */
export function proposalPosEmbedHost(unact: ArrayLike<number>, embedDim: number): Float32Array {
  const feats = embedDim / 2;
  const boxes = unact.length / 4;
  const out = new Float32Array(boxes * 4 * feats);
  for (let m = 0; m < boxes; m++) {
    for (let c = 0; c < 4; c++) {
      const v = 2 * Math.PI / (1 + Math.exp(-unact[4 * m + c]));
      for (let i = 0; i < feats; i++) {
        const angle = v / 10000 ** ((2 * Math.floor(i / 2)) / feats);
        out[(m * 4 + c) * feats + i] = i % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
      }
    }
  }
  return out;
}

/**
 * Deformable-DETR's input projection: a 1x1 convolution and group norm per
 * backbone level, and extra levels from a 3x3 stride-2 convolution (of the
 * last backbone output, then of the previous extra level) and group norm.
 * Convolutions Xavier-uniform with zero biases.
 *
 * @example
 * ```ts ignore
 * const mapper = new ChannelMapper([32, 64, 128], 64, 4, 32, rng, backend);
 * mapper.forward([c3, c4, c5]); // four maps of 64 channels, strides 8..64
 * ```
 */
export class ChannelMapper extends Module<Tensor[], Tensor[]> {
  readonly #layers: [Conv2d, GroupNorm][] = [];

  /** Maps `inChannels` to `outChannels` with `numOuts` levels in all. */
  constructor(
    readonly inChannels: readonly number[],
    readonly outChannels: number,
    readonly numOuts: number,
    normGroups: number,
    rng: Rng,
    backend?: Backend,
  ) {
    super();
    if (numOuts < inChannels.length) {
      throw new RangeError(
        `ChannelMapper: ${numOuts} outputs are fewer than the ${inChannels.length} inputs`,
      );
    }
    const groups = groupsFor(outChannels, normGroups);
    for (let k = 0; k < numOuts; k++) {
      const extra = k >= inChannels.length;
      const cin = extra
        ? (k === inChannels.length ? inChannels.at(-1)! : outChannels)
        : inChannels[k];
      const conv = new Conv2d(cin, outChannels, extra ? 3 : 1, {
        rng,
        backend,
        stride: extra ? 2 : 1,
        padding: extra ? 1 : 0,
      });
      xavierUniform(conv.weight, rng);
      constant(conv.bias!, 0);
      this.#layers.push([
        this.registerModule(`convs${k}`, conv),
        this.registerModule(`norms${k}`, new GroupNorm(groups, outChannels, { backend })),
      ]);
    }
  }

  /** `numOuts` maps `[N, E, H_l, W_l]` of the backbone outputs. */
  forward(features: Tensor[]): Tensor[] {
    if (features.length !== this.inChannels.length) {
      throw new TypeError(
        `ChannelMapper: expected ${this.inChannels.length} feature maps, got ${features.length}`,
      );
    }
    const outs: Tensor[] = [];
    this.#layers.forEach(([conv, norm], k) => {
      const input = k < features.length
        ? features[k]
        : k === features.length
        ? features.at(-1)!
        : outs.at(-1)!;
      outs.push(norm.forward(conv.forward(input)));
    });
    return outs;
  }
}

/**
 * Two linear layers with a ReLU between: `E -> F -> E`.
 *
 * @example
 * ```ts
 * import { FeedForward } from "./transformer.ts";
 * import { Rng } from "../../tensor/rng.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * import { cpu } from "../../tensor/device.ts";
 * const ffn = new FeedForward(4, 8, new Rng(0), cpu());
 * console.log(ffn.forward(tensor(new Float32Array(12), [1, 3, 4], { backend: cpu() })).shape); // [1, 3, 4]
 * ```
 */
export class FeedForward extends Module {
  readonly #fc1: Linear;
  readonly #fc2: Linear;

  /** Creates the block (PyTorch's default initialisation). */
  constructor(embedDim: number, hidden: number, rng: Rng, backend?: Backend) {
    super();
    this.#fc1 = this.registerModule("fc1", new Linear(embedDim, hidden, { rng, backend }));
    this.#fc2 = this.registerModule("fc2", new Linear(hidden, embedDim, { rng, backend }));
  }

  /** `fc2(relu(fc1(x)))` over the last axis. */
  forward(x: Tensor): Tensor {
    return this.#fc2.forward(relu(this.#fc1.forward(x)));
  }
}

/**
 * A box head: `layers` linear layers with ReLUs between, the last to 4 outputs.
 *
 * @example A fresh head outputs its initial bias `(0, 0, -2, -2)`
 * ```ts
 * import { BoxMlp } from "./transformer.ts";
 * import { Rng } from "../../tensor/rng.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * import { cpu } from "../../tensor/device.ts";
 * const head = new BoxMlp(4, 3, new Rng(0), cpu());
 * console.log(await head.forward(tensor([1, 2, 3, 4], [1, 4], { backend: cpu() })).data()); // [0, 0, -2, -2]
 * ```
 */
export class BoxMlp extends Module {
  readonly #layers: Linear[] = [];

  /**
   * Creates the head; its last layer starts at zero with the size outputs'
   * bias at `-2` (Deformable-DETR's box-head initialisation).
   */
  constructor(embedDim: number, layers: number, rng: Rng, backend?: Backend) {
    super();
    for (let k = 0; k < layers; k++) {
      const out = k === layers - 1 ? 4 : embedDim;
      this.#layers.push(
        this.registerModule(`layers${k}`, new Linear(embedDim, out, { rng, backend })),
      );
    }
    const last = this.#layers.at(-1)!;
    constant(last.weight, 0);
    const init = tensor(Float32Array.of(0, 0, -2, -2), [4], {
      backend: backend ?? defaultDevice(),
    });
    last.bias!.swapStorage(init);
    init.dispose();
  }

  /** Deltas `[..., 4]` of `x` `[..., E]`, before the sigmoid. */
  forward(x: Tensor): Tensor {
    return this.#layers.reduce(
      (y, layer, k) => (k < this.#layers.length - 1 ? relu(layer.forward(y)) : layer.forward(y)),
      x,
    );
  }
}

/**
 * One encoder layer: deformable self-attention and a feed-forward block, each add & norm.
 *
 * @example
 * ```ts
 * import { EncoderLayer, encoderReferencePoints } from "./transformer.ts";
 * import { levelLayout } from "./deformable_attention.ts";
 * import { Rng } from "../../tensor/rng.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * import { cpu } from "../../tensor/device.ts";
 * const backend = cpu();
 * const config = { embedDim: 8, numHeads: 2, numLevels: 1, numPoints: 2, ffnDim: 16, encoderLayers: 1, decoderLayers: 1 };
 * const layer = new EncoderLayer(config, new Rng(0), backend);
 * const src = tensor(new Float32Array(4 * 8).fill(0.5), [1, 4, 8], { backend });
 * const referencePoints = tensor(encoderReferencePoints([[2, 2]]), [1, 4, 2], { backend });
 * const out = layer.forward({ src, pos: src, referencePoints, layout: levelLayout([[2, 2]]) });
 * console.log(out.shape); // [1, 4, 8]
 * ```
 */
export class EncoderLayer extends Module<EncoderInput, Tensor> {
  readonly #attn: DeformableAttention;
  readonly #norm1: LayerNorm;
  readonly #ffn: FeedForward;
  readonly #norm2: LayerNorm;

  /** Creates the layer. */
  constructor(config: DeformableTransformerConfig, rng: Rng, backend?: Backend) {
    super();
    const { embedDim: e } = config;
    this.#attn = this.registerModule("self_attn", new DeformableAttention(config, rng, backend));
    this.#norm1 = this.registerModule("norm1", new LayerNorm(e, { backend }));
    this.#ffn = this.registerModule("ffn", new FeedForward(e, config.ffnDim, rng, backend));
    this.#norm2 = this.registerModule("norm2", new LayerNorm(e, { backend }));
  }

  /** The next `[N, S, E]` of `src`. */
  forward({ src, pos, referencePoints, layout }: EncoderInput): Tensor {
    const attended = this.#attn.forward({
      query: add(src, pos),
      referencePoints,
      input: src,
      layout,
    });
    const x = this.#norm1.forward(add(src, attended));
    return this.#norm2.forward(add(x, this.#ffn.forward(x)));
  }
}

/** What an {@linkcode EncoderLayer} reads. */
export interface EncoderInput {
  /** Flattened features `[N, S, E]`. */
  src: Tensor;
  /** Their positional (and level) embedding `[N, S, E]`. */
  pos: Tensor;
  /** Pixel centres `[N, S, 2]`. */
  referencePoints: Tensor;
  /** Levels of `S`. */
  layout: LevelLayout;
}

/** What a {@linkcode DecoderLayer} reads. */
export interface DecoderInput {
  /** Query contents `[N, Q, E]`. */
  tgt: Tensor;
  /** Query positions `[N, Q, E]`. */
  queryPos: Tensor;
  /** Reference boxes `[N, Q, 4]`, normalised `cxcywh` (no gradient). */
  referencePoints: Tensor;
  /** Encoder output `[N, S, E]`. */
  memory: Tensor;
  /** Levels of `S`. */
  layout: LevelLayout;
}

/**
 * One decoder layer: self-attention of the queries, deformable cross-attention
 * into the encoder output, a feed-forward block, each add & norm.
 *
 * @example Three queries with reference boxes reading a 2x2 map
 * ```ts
 * import { DecoderLayer } from "./transformer.ts";
 * import { levelLayout } from "./deformable_attention.ts";
 * import { Rng } from "../../tensor/rng.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * import { cpu } from "../../tensor/device.ts";
 * const backend = cpu();
 * const config = { embedDim: 8, numHeads: 2, numLevels: 1, numPoints: 2, ffnDim: 16, encoderLayers: 1, decoderLayers: 1 };
 * const layer = new DecoderLayer(config, new Rng(0), backend);
 * const tgt = tensor(new Float32Array(3 * 8).fill(0.1), [1, 3, 8], { backend });
 * const boxes = tensor(new Float32Array(3 * 4).fill(0.5), [1, 3, 4], { backend });
 * const memory = tensor(new Float32Array(4 * 8).fill(1), [1, 4, 8], { backend });
 * const out = layer.forward({ tgt, queryPos: tgt, referencePoints: boxes, memory, layout: levelLayout([[2, 2]]) });
 * console.log(out.shape); // [1, 3, 8]
 * ```
 */
export class DecoderLayer extends Module<DecoderInput, Tensor> {
  readonly #self: MultiheadAttention;
  readonly #norm2: LayerNorm;
  readonly #cross: DeformableAttention;
  readonly #norm1: LayerNorm;
  readonly #ffn: FeedForward;
  readonly #norm3: LayerNorm;

  /** Creates the layer. */
  constructor(config: DeformableTransformerConfig, rng: Rng, backend?: Backend) {
    super();
    const { embedDim: e } = config;
    this.#self = this.registerModule(
      "self_attn",
      new MultiheadAttention(e, config.numHeads, { rng, backend }),
    );
    this.#norm2 = this.registerModule("norm2", new LayerNorm(e, { backend }));
    this.#cross = this.registerModule("cross_attn", new DeformableAttention(config, rng, backend));
    this.#norm1 = this.registerModule("norm1", new LayerNorm(e, { backend }));
    this.#ffn = this.registerModule("ffn", new FeedForward(e, config.ffnDim, rng, backend));
    this.#norm3 = this.registerModule("norm3", new LayerNorm(e, { backend }));
  }

  /** The next query contents `[N, Q, E]`. */
  forward({ tgt, queryPos, referencePoints, memory, layout }: DecoderInput): Tensor {
    const q = add(tgt, queryPos);
    let x = this.#norm2.forward(add(tgt, this.#self.forward(q, q, tgt)));
    const crossed = this.#cross.forward({
      query: add(x, queryPos),
      referencePoints,
      input: memory,
      layout,
    });
    x = this.#norm1.forward(add(x, crossed));
    return this.#norm3.forward(add(x, this.#ffn.forward(x)));
  }
}
