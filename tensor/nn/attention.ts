/**
 * Multi-head attention with PyTorch's parameter layout (`nn.MultiheadAttention`,
 * batch first), so checkpoints map name for name.
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import { defaultDevice } from "../device.ts";
import { additiveMask, blockedBias, scaledDotProductAttention } from "../ops/attention.ts";
import { slice } from "../ops/concat.ts";
import { add } from "../ops/elementwise.ts";
import { linear } from "../ops/linear.ts";
import { permute, reshape } from "../ops/shape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { constant, xavierUniform } from "./init.ts";
import type { PlacementOptions } from "./layers.ts";
import { Linear } from "./linear.ts";
import { Module } from "./module.ts";

/** Options of {@linkcode MultiheadAttention}. */
export interface MultiheadAttentionOptions extends PlacementOptions {
  /** The generator of the initial weights and of the dropout masks (required). */
  rng: Rng;
  /** Dropout probability on the attention weights in training mode; default 0. */
  dropout?: number;
  /** Whether the input and output projections have biases; default true. */
  bias?: boolean;
}

/** Masks of {@linkcode MultiheadAttention.forward}. */
export interface AttentionMasks {
  /**
   * `[N, Lk]`, non-zero where the key is padding (any element type; PyTorch's
   * boolean `key_padding_mask`).
   */
  keyPaddingMask?: Tensor;
  /**
   * `[Lq, Lk]` or `[N * numHeads, Lq, Lk]`: boolean (`i32`/`u32`, non-zero = may not
   * attend) or additive (`f32`, `-Infinity` blocks), as PyTorch's `attn_mask`.
   */
  attnMask?: Tensor;
}

function shapeText(t: Tensor): string {
  return `[${t.shape.join(", ")}]`;
}

/**
 * Multi-head scaled dot-product attention over batch-first sequences:
 * queries, keys and values are projected by the three `[E, E]` blocks of
 * `in_proj_weight` (`[3E, E]`, plus `in_proj_bias` `[3E]`), split into
 * `numHeads` heads of `E / numHeads`, attended per head, concatenated and
 * projected by `out_proj`. Initialised as PyTorch does: Xavier-uniform
 * `in_proj_weight`, zero biases, `out_proj.weight` as a default `Linear`.
 *
 * A query that may attend to no key (every key masked) gets zero attention
 * weights, so its output is `out_proj.bias`; PyTorch 1.13 gives NaN there.
 *
 * @example Self-attention over two sequences of three tokens
 * ```ts
 * import { MultiheadAttention } from "./attention.ts";
 * import { randn, Rng } from "../rng.ts";
 * import { tensor } from "../tensor.ts";
 * const mha = new MultiheadAttention(8, 2, { rng: new Rng(0) });
 * console.log(mha.namedParameters().map(([n]) => n));
 * // ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
 * const x = randn([2, 3, 8], new Rng(1));
 * const padding = tensor([[0, 0, 0], [0, 0, 1]], undefined, { dtype: "u32" });
 * const y = mha.forward(x, x, x, { keyPaddingMask: padding });
 * console.log(y.shape); // [2, 3, 8]
 * ```
 */
export class MultiheadAttention extends Module<Tensor, Tensor> {
  /** Model width `E`. */
  readonly embedDim: number;
  /** Number of heads. */
  readonly numHeads: number;
  /** Width of one head, `E / numHeads`. */
  readonly headDim: number;
  /** Dropout probability of the attention weights (training only). */
  readonly dropout: number;
  /** Stacked query, key and value projections `[3E, E]`. */
  readonly inProjWeight: Tensor;
  /** Stacked projection biases `[3E]`, or undefined without bias. */
  readonly inProjBias?: Tensor;
  /** The output projection `E -> E`. */
  readonly outProj: Linear;
  readonly #rng: Rng;

  /** Creates the layer; `numHeads` must divide `embedDim`. */
  constructor(embedDim: number, numHeads: number, options: MultiheadAttentionOptions) {
    super();
    if (!Number.isInteger(embedDim) || embedDim <= 0) {
      throw new RangeError(`MultiheadAttention: embedDim ${embedDim} is not a positive integer`);
    }
    if (!Number.isInteger(numHeads) || numHeads <= 0 || embedDim % numHeads !== 0) {
      throw new RangeError(
        `MultiheadAttention: embedDim ${embedDim} is not divisible by numHeads ${numHeads}`,
      );
    }
    const p = options.dropout ?? 0;
    if (!(p >= 0 && p <= 1)) {
      throw new RangeError(`MultiheadAttention: dropout ${p} is outside [0, 1]`);
    }
    this.embedDim = embedDim;
    this.numHeads = numHeads;
    this.headDim = embedDim / numHeads;
    this.dropout = p;
    const backend = options.backend ?? defaultDevice(), dtype = options.dtype ?? "f32";
    const bias = options.bias ?? true;
    this.inProjWeight = this.registerParameter(
      "in_proj_weight",
      empty([3 * embedDim, embedDim], dtype, backend),
    );
    xavierUniform(this.inProjWeight, options.rng);
    if (bias) {
      this.inProjBias = this.registerParameter(
        "in_proj_bias",
        constant(empty([3 * embedDim], dtype, backend), 0),
      );
    }
    this.outProj = this.registerModule(
      "out_proj",
      new Linear(embedDim, embedDim, { rng: options.rng, bias, backend, dtype }),
    );
    if (this.outProj.bias) constant(this.outProj.bias, 0);
    this.#rng = options.rng.fork();
  }

  /** The `part`-th (0 query, 1 key, 2 value) projection of `x` `[N, L, E]`, split into heads. */
  #project(x: Tensor, part: number): Tensor {
    const e = this.embedDim, n = x.shape[0], len = x.shape[1];
    const w = slice(this.inProjWeight, [part * e, 0], [(part + 1) * e, e]);
    const b = this.inProjBias && slice(this.inProjBias, [part * e], [(part + 1) * e]);
    const projected = linear(x, w, b);
    const split = reshape(projected, [n, len, this.numHeads, this.headDim]);
    const heads = permute(split, [0, 2, 1, 3]);
    // The weight blocks are read by the backward pass (the input's gradient); the rest is not.
    if (!heads.node) w.dispose();
    for (const t of [b, projected, split]) t?.dispose();
    return heads;
  }

  /** The masks as one additive mask broadcastable to `[N, H, Lq, Lk]`, or undefined. */
  #mask(n: number, lq: number, lk: number, masks: AttentionMasks, dtype: "f32" | "f64") {
    const { keyPaddingMask, attnMask } = masks;
    const parts: Tensor[] = [];
    if (keyPaddingMask) {
      if (keyPaddingMask.shape.join() !== [n, lk].join()) {
        throw new TypeError(
          `MultiheadAttention: keyPaddingMask has shape ${
            shapeText(keyPaddingMask)
          } but [N, Lk] is [${n}, ${lk}]`,
        );
      }
      const bias = blockedBias(keyPaddingMask, dtype);
      parts.push(reshape(bias, [n, 1, 1, lk]));
      bias.dispose();
    }
    if (attnMask) {
      const h = this.numHeads;
      const flat = attnMask.shape.join() === [lq, lk].join();
      if (!flat && attnMask.shape.join() !== [n * h, lq, lk].join()) {
        throw new TypeError(
          `MultiheadAttention: attnMask has shape ${
            shapeText(attnMask)
          } but must be [Lq, Lk] = [${lq}, ${lk}] or [N * numHeads, Lq, Lk] = [${
            n * h
          }, ${lq}, ${lk}]`,
        );
      }
      const bias = additiveMask(attnMask, dtype);
      parts.push(reshape(bias, flat ? [1, 1, lq, lk] : [n, h, lq, lk]));
      if (bias !== attnMask) bias.dispose();
    }
    if (parts.length < 2) return parts[0];
    const sum = add(parts[0], parts[1]);
    for (const t of parts) t.dispose();
    return sum;
  }

  /**
   * Attends from `query` `[N, Lq, E]` to `key` `[N, Lk, E]` and `value`
   * `[N, Lk, E]` (self-attention when both are left out), with optional
   * masks; returns `[N, Lq, E]`. Attention weights are dropped in training
   * mode when the layer has dropout.
   */
  override forward(
    query: Tensor,
    key: Tensor = query,
    value: Tensor = key,
    masks: AttentionMasks = {},
  ): Tensor {
    const e = this.embedDim;
    const ok = (t: Tensor) => t.rank === 3 && t.shape[2] === e;
    if (!ok(query) || !ok(key) || !ok(value)) {
      throw new TypeError(
        `MultiheadAttention: query ${shapeText(query)}, key ${shapeText(key)} and value ${
          shapeText(value)
        } must be [N, L, ${e}]`,
      );
    }
    const [n, lq] = query.shape, lk = key.shape[1];
    if (key.shape[0] !== n || value.shape[0] !== n || value.shape[1] !== lk) {
      throw new TypeError(
        `MultiheadAttention: query ${shapeText(query)}, key ${shapeText(key)} and value ${
          shapeText(value)
        } disagree in N or in the key length`,
      );
    }
    const dtype = query.dtype === "f64" ? "f64" : "f32";
    const mask = this.#mask(n, lq, lk, masks, dtype);
    const q = this.#project(query, 0), k = this.#project(key, 1), v = this.#project(value, 2);
    const drop = this.training && this.dropout > 0
      ? { p: this.dropout, rng: this.#rng }
      : undefined;
    const heads = scaledDotProductAttention(q, k, v, mask, drop);
    const merged = permute(heads, [0, 2, 1, 3]);
    const tokens = reshape(merged, [n, lq, e]);
    const out = this.outProj.forward(tokens);
    // The products read q, k and v in the backward pass; the rest is scratch.
    if (!out.node) { for (const t of [q, k, v]) t.dispose(); }
    for (const t of [mask, heads, merged, tokens]) t?.dispose();
    return out;
  }
}
