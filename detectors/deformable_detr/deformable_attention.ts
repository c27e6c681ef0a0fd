/**
 * Deformable-DETR's multi-scale deformable attention layer (Zhu et al., ICLR
 * 2021, `MSDeformAttn`): each query predicts, per head, level and point, an
 * offset from its reference point and an attention weight, and reads the
 * values there with {@linkcode msDeformAttn}. Weights start as Deformable-DETR
 * draws them: sampling offsets on a ring of `numHeads` directions (point `p`
 * at distance `p + 1`), attention weights zero (uniform after the softmax),
 * value and output projections Xavier-uniform with zero biases.
 *
 * Every image of a batch is taken as unpadded (valid ratios 1): the layer has
 * no padding mask (docs/deformable_detr.md).
 *
 * @module
 */

import type { Backend } from "../../tensor/backend.ts";
import { defaultDevice } from "../../tensor/device.ts";
import { constant, xavierUniform } from "../../tensor/nn/init.ts";
import { Linear } from "../../tensor/nn/linear.ts";
import { Module } from "../../tensor/nn/module.ts";
import { slice } from "../../tensor/ops/concat.ts";
import { add, div, mul } from "../../tensor/ops/elementwise.ts";
import { msDeformAttn } from "../../tensor/ops/ms_deform_attn.ts";
import { softmax } from "../../tensor/ops/softmax.ts";
import { reshape } from "../../tensor/ops/shape.ts";
import type { Rng } from "../../tensor/rng.ts";
import { keep, type Tensor, tensor } from "../../tensor/tensor.ts";

/** The sizes of a deformable attention layer. */
export interface DeformableAttentionConfig {
  /** Model width `E`. */
  embedDim: number;
  /** Heads `M` (divides `E`). */
  numHeads: number;
  /** Feature levels `L`. */
  numLevels: number;
  /** Sampling points per head and level `P`. */
  numPoints: number;
}

/** The flattened multi-scale value map a layer reads. */
export interface LevelLayout {
  /** `[H, W]` of each level. */
  spatialShapes: readonly (readonly [number, number])[];
  /** Where each level starts in the flattened `S = Σ H·W` axis. */
  levelStartIndex: readonly number[];
}

/**
 * The level layout of `spatialShapes` (running sums of `H·W`).
 *
 * @example
 * ```ts
 * import { levelLayout } from "./deformable_attention.ts";
 * console.log(levelLayout([[4, 4], [2, 2]]).levelStartIndex); // [0, 16]
 * ```
 */
export function levelLayout(spatialShapes: readonly (readonly [number, number])[]): LevelLayout {
  const levelStartIndex: number[] = [];
  let start = 0;
  for (const [h, w] of spatialShapes) {
    levelStartIndex.push(start);
    start += h * w;
  }
  return { spatialShapes, levelStartIndex };
}

/** What {@linkcode DeformableAttention.forward} reads. */
export interface DeformableAttentionInput {
  /** Queries `[N, Lq, E]`, positional embedding already added. */
  query: Tensor;
  /**
   * `[N, Lq, 2]` normalised `(x, y)` (offsets in units of each level's pixels) or
   * `[N, Lq, 4]` normalised `(cx, cy, w, h)` (offsets as fractions of half the box over
   * `P`), the same on every level.
   */
  referencePoints: Tensor;
  /** The flattened multi-scale map `[N, S, E]`. */
  input: Tensor;
  /** Its levels. */
  layout: LevelLayout;
}

/**
 * One multi-scale deformable attention layer.
 *
 * @example Two queries reading a two-level map
 * ```ts
 * import { DeformableAttention, levelLayout } from "./deformable_attention.ts";
 * import { Rng } from "../../tensor/rng.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * import { cpu } from "../../tensor/device.ts";
 * import assert from "node:assert/strict";
 *
 * const backend = cpu();
 * const attn = new DeformableAttention(
 *   { embedDim: 8, numHeads: 2, numLevels: 2, numPoints: 2 }, new Rng(0), backend);
 * const layout = levelLayout([[2, 2], [1, 1]]);
 * const value = tensor(new Float32Array(5 * 8).fill(1), [1, 5, 8], { backend });
 * const query = tensor(new Float32Array(2 * 8), [1, 2, 8], { backend });
 * const refs = tensor([0.5, 0.5, 0.25, 0.75], [1, 2, 2], { backend });
 * const out = attn.forward({ query, referencePoints: refs, input: value, layout });
 * assert.deepEqual(out.shape, [1, 2, 8]);
 * ```
 */
export class DeformableAttention extends Module<DeformableAttentionInput, Tensor> {
  /** Offsets of every head, level and point `E -> M·L·P·2`. */
  readonly samplingOffsets: Linear;
  /** Attention weights `E -> M·L·P` (softmax over levels and points). */
  readonly attentionWeights: Linear;
  /** Value projection `E -> E`. */
  readonly valueProj: Linear;
  /** Output projection `E -> E`. */
  readonly outputProj: Linear;
  readonly #normalizers = new Map<string, Tensor>();
  readonly #backend: Backend;

  /** Creates the layer with Deformable-DETR's initial weights drawn from `rng`. */
  constructor(readonly config: DeformableAttentionConfig, rng: Rng, backend?: Backend) {
    super();
    const { embedDim: e, numHeads: m, numLevels: l, numPoints: p } = config;
    if (!Number.isInteger(e / m) || e <= 0 || m <= 0) {
      throw new RangeError(`DeformableAttention: embedDim ${e} is not divisible by numHeads ${m}`);
    }
    if (!Number.isInteger(l) || l <= 0 || !Number.isInteger(p) || p <= 0) {
      throw new RangeError(
        `DeformableAttention: numLevels ${l} and numPoints ${p} must be positive integers`,
      );
    }
    this.#backend = backend ?? defaultDevice();
    const opts = { rng, backend: this.#backend };
    this.samplingOffsets = this.registerModule(
      "sampling_offsets",
      new Linear(e, m * l * p * 2, opts),
    );
    this.attentionWeights = this.registerModule(
      "attention_weights",
      new Linear(e, m * l * p, opts),
    );
    this.valueProj = this.registerModule("value_proj", new Linear(e, e, opts));
    this.outputProj = this.registerModule("output_proj", new Linear(e, e, opts));
    constant(this.samplingOffsets.weight, 0);
    const grid = new Float32Array(m * l * p * 2);
    for (let h = 0; h < m; h++) {
      const theta = (2 * Math.PI * h) / m;
      const [cx, cy] = [Math.cos(theta), Math.sin(theta)];
      const scale = Math.max(Math.abs(cx), Math.abs(cy));
      for (let lv = 0; lv < l; lv++) {
        for (let k = 0; k < p; k++) {
          const at = ((h * l + lv) * p + k) * 2;
          grid[at] = (cx / scale) * (k + 1);
          grid[at + 1] = (cy / scale) * (k + 1);
        }
      }
    }
    const bias = tensor(grid, [grid.length], { backend: this.#backend });
    this.samplingOffsets.bias!.swapStorage(bias);
    bias.dispose();
    constant(this.attentionWeights.weight, 0);
    constant(this.attentionWeights.bias!, 0);
    xavierUniform(this.valueProj.weight, rng);
    constant(this.valueProj.bias!, 0);
    xavierUniform(this.outputProj.weight, rng);
    constant(this.outputProj.bias!, 0);
  }

  /** `[L, 1, 2]` of `(W_l, H_l)`, cached per layout. */
  #normalizer(shapes: readonly (readonly [number, number])[]): Tensor {
    const key = shapes.map(([h, w]) => `${h}x${w}`).join();
    let t = this.#normalizers.get(key);
    if (!t) {
      t = tensor(shapes.flatMap(([h, w]) => [w, h]), [shapes.length, 1, 2], {
        backend: this.#backend,
      });
      keep(t);
      this.#normalizers.set(key, t);
    }
    return t;
  }

  /** Attends from the queries to the multi-scale map: `[N, Lq, E]`. */
  forward({ query, referencePoints, input, layout }: DeformableAttentionInput): Tensor {
    const { embedDim: e, numHeads: m, numLevels: l, numPoints: p } = this.config;
    const [n, lq] = query.shape;
    const s = layout.spatialShapes.reduce((a, [h, w]) => a + h * w, 0);
    if (query.rank !== 3 || query.shape[2] !== e) {
      throw new TypeError(
        `DeformableAttention: query must be [N, Lq, ${e}], got [${query.shape.join(", ")}]`,
      );
    }
    if (input.rank !== 3 || input.shape[0] !== n || input.shape[1] !== s || input.shape[2] !== e) {
      throw new TypeError(
        `DeformableAttention: input must be [${n}, ${s}, ${e}] (S = Σ H·W of ${l} levels), got [${
          input.shape.join(", ")
        }]`,
      );
    }
    const refDim = referencePoints.shape[2];
    if (
      referencePoints.rank !== 3 || referencePoints.shape[0] !== n ||
      referencePoints.shape[1] !== lq || (refDim !== 2 && refDim !== 4)
    ) {
      throw new TypeError(
        `DeformableAttention: referencePoints must be [${n}, ${lq}, 2 or 4], got [${
          referencePoints.shape.join(", ")
        }]`,
      );
    }
    if (layout.spatialShapes.length !== l) {
      throw new TypeError(
        `DeformableAttention: built for ${l} levels, got ${layout.spatialShapes.length}`,
      );
    }
    const value = reshape(this.valueProj.forward(input), [n, s, m, e / m]);
    const offsets = reshape(this.samplingOffsets.forward(query), [n, lq, m, l, p, 2]);
    const logits = reshape(this.attentionWeights.forward(query), [n, lq, m, l * p]);
    const weights = reshape(softmax(logits, -1), [n, lq, m, l, p]);
    let locations: Tensor;
    if (refDim === 2) {
      const ref = reshape(referencePoints, [n, lq, 1, 1, 1, 2]);
      locations = add(ref, div(offsets, this.#normalizer(layout.spatialShapes)));
    } else {
      const centre = reshape(slice(referencePoints, [0, 0, 0], [n, lq, 2]), [n, lq, 1, 1, 1, 2]);
      const size = reshape(slice(referencePoints, [0, 0, 2], [n, lq, 4]), [n, lq, 1, 1, 1, 2]);
      locations = add(centre, mul(offsets, mul(size, 0.5 / p)));
    }
    const out = msDeformAttn(
      value,
      layout.spatialShapes,
      layout.levelStartIndex,
      locations,
      weights,
    );
    return this.outputProj.forward(out);
  }
}
