/**
 * The small layers of a transformer: layer normalisation, the exact GELU,
 * dropout (the identity in evaluation mode) and learned embeddings, with
 * PyTorch's parameter names and initial values.
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import { gelu } from "../ops/activation.ts";
import { dropout } from "../ops/dropout.ts";
import { indexSelect } from "../ops/index.ts";
import { layerNorm } from "../ops/layer_norm.ts";
import { reshape } from "../ops/shape.ts";
import { defaultDevice } from "../device.ts";
import { empty, type Tensor } from "../tensor.ts";
import { normal } from "./init.ts";
import { filled, type PlacementOptions } from "./layers.ts";
import { Module } from "./module.ts";

/** Options of {@linkcode LayerNorm}. */
export interface LayerNormOptions extends PlacementOptions {
  /** Added to the variance; default 1e-5. */
  eps?: number;
  /** Learnable elementwise `weight` (ones) and `bias` (zeros); default true. */
  elementwiseAffine?: boolean;
}

/**
 * Layer normalisation over the last dimensions (`normalizedShape`), as
 * PyTorch's `nn.LayerNorm`: parameters `weight` (1) and `bias` (0) of shape
 * `normalizedShape`.
 *
 * @example
 * ```ts
 * import { LayerNorm } from "./transformer.ts";
 * import { tensor } from "../tensor.ts";
 * const ln = new LayerNorm(4);
 * console.log(ln.namedParameters().map(([n, t]) => `${n} [${t.shape}]`)); // ["weight [4]", "bias [4]"]
 * const y = ln.forward(tensor([1, 2, 3, 4, 2, 2, 2, 2], [2, 4]));
 * console.log(await y.data()); // ~[-1.342, -0.447, 0.447, 1.342, 0, 0, 0, 0]
 * ```
 */
export class LayerNorm extends Module {
  /** The normalised trailing dimensions. */
  readonly normalizedShape: readonly number[];
  /** Variance epsilon. */
  readonly eps: number;
  /** Scale of shape `normalizedShape`, or undefined without affine. */
  readonly weight?: Tensor;
  /** Shift of shape `normalizedShape`, or undefined without affine. */
  readonly bias?: Tensor;

  /** Creates the layer over `normalizedShape` (a number: the last dimension). */
  constructor(normalizedShape: number | readonly number[], options: LayerNormOptions = {}) {
    super();
    const shape = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
    if (shape.length === 0 || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
      throw new RangeError(`LayerNorm: invalid normalized shape [${shape.join(", ")}]`);
    }
    this.normalizedShape = Object.freeze(shape);
    this.eps = options.eps ?? 1e-5;
    if (options.elementwiseAffine ?? true) {
      this.weight = this.registerParameter("weight", filled(shape, 1, options));
      this.bias = this.registerParameter("bias", filled(shape, 0, options));
    }
  }

  /** Normalises `x` `[..., *normalizedShape]`. */
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, {
      weight: this.weight,
      bias: this.bias,
      eps: this.eps,
    });
  }
}

/**
 * The exact (erf) GELU activation, PyTorch's `nn.GELU()`.
 *
 * @example
 * ```ts
 * import { GELU } from "./transformer.ts";
 * import { tensor } from "../tensor.ts";
 * console.log(await new GELU().forward(tensor([-1, 1])).data()); // ~[-0.1587, 0.8413]
 * ```
 */
export class GELU extends Module {
  /** Applies the activation. */
  forward(x: Tensor): Tensor {
    return gelu(x);
  }
}

/**
 * Dropout: in training mode each element is zeroed with probability `p` and
 * the rest scaled by `1 / (1 - p)`, the mask drawn from the layer's own
 * generator (so a seed fixes every mask of a run); in evaluation mode
 * (`eval()`) it returns a view of its input.
 *
 * @example
 * ```ts
 * import { Dropout } from "./transformer.ts";
 * import { Rng } from "../rng.ts";
 * import { tensor } from "../tensor.ts";
 * const drop = new Dropout(0.5, { rng: new Rng(0) });
 * const x = tensor([1, 2, 3, 4]);
 * console.log(await drop.forward(x).data()); // each element 0 or twice its value
 * console.log(await drop.eval().forward(x).data()); // Float32Array [1, 2, 3, 4]
 * ```
 */
export class Dropout extends Module {
  /** Drop probability. */
  readonly p: number;
  readonly #rng: Rng;

  /** Creates the layer; `rng` draws every mask. */
  constructor(p: number, options: { rng: Rng }) {
    super();
    if (!(p >= 0 && p <= 1)) throw new RangeError(`Dropout: probability ${p} is outside [0, 1]`);
    this.p = p;
    this.#rng = options.rng;
  }

  /** Drops elements of `x` (training) or passes it through (evaluation). */
  forward(x: Tensor): Tensor {
    return this.training ? dropout(x, this.p, this.#rng) : reshape(x, x.shape);
  }
}

/** Options of {@linkcode Embedding}. */
export interface EmbeddingOptions extends PlacementOptions {
  /** The generator of the initial weights, `N(0, 1)` as in PyTorch. */
  rng: Rng;
}

/**
 * A table of `num` learned vectors of size `dim` (`weight [num, dim]`, PyTorch's
 * `nn.Embedding`), such as DETR's query embeddings; `forward` looks rows up by index.
 *
 * @example
 * ```ts
 * import { Embedding } from "./transformer.ts";
 * import { Rng } from "../rng.ts";
 * import { tensor } from "../tensor.ts";
 * const queries = new Embedding(300, 256, { rng: new Rng(0) });
 * const picked = queries.forward(tensor([[0, 5], [7, 7]], undefined, { dtype: "u32" }));
 * console.log(queries.weight.shape, picked.shape); // [300, 256] [2, 2, 256]
 * ```
 */
export class Embedding extends Module {
  /** The vectors `[num, dim]`. */
  readonly weight: Tensor;

  /** Creates the table. */
  constructor(num: number, dim: number, options: EmbeddingOptions) {
    super();
    for (const [name, v] of [["num", num], ["dim", dim]] as const) {
      if (!Number.isInteger(v) || v <= 0) {
        throw new RangeError(`Embedding: ${name} ${v} is not a positive integer`);
      }
    }
    const backend = options.backend ?? defaultDevice(), dtype = options.dtype ?? "f32";
    this.weight = this.registerParameter("weight", empty([num, dim], dtype, backend));
    normal(this.weight, options.rng);
  }

  /** Rows of `weight` for `indices` (`i32`/`u32`, any shape): `[...indices.shape, dim]`. */
  forward(indices: Tensor): Tensor {
    const flat = indices.rank === 1 ? indices : reshape(indices, [indices.size]);
    const rows = indexSelect(this.weight, 0, flat);
    // The backward pass reads the indices.
    if (flat !== indices && !rows.node) flat.dispose();
    if (indices.rank === 1) return rows;
    const out = reshape(rows, [...indices.shape, this.weight.shape[1]]);
    rows.dispose();
    return out;
  }
}
