/**
 * Scaled dot-product attention composed from matrix products and a softmax,
 * with masks, dropout on the attention weights and gradients for the query,
 * key and value.
 *
 * Masks follow PyTorch 1.13's `nn.MultiheadAttention`, with the element type
 * standing in for `bool`: an integer mask (`i32`/`u32`) is boolean, non-zero
 * meaning "may not attend" (added as `-inf`); a float mask is added to the
 * scores as it is (it may hold `-Infinity`). Where PyTorch returns NaN for a
 * query that may attend to no key at all, these ops give that query zero
 * attention weights, hence a zero output row and zero gradients through it.
 *
 * @module
 */

import { add, broadcastShapes, cast, lessEqual, mul, notEqual, where } from "./elementwise.ts";
import { dropout } from "./dropout.ts";
import { expectDtype } from "./launch.ts";
import { matmul } from "./matmul.ts";
import { min } from "./reduce.ts";
import { softmax } from "./softmax.ts";
import type { Rng } from "../rng.ts";
import type { Tensor } from "../tensor.ts";

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/**
 * A boolean mask as an additive mask of `dtype`: `-Infinity` where `mask` is
 * non-zero (blocked), 0 elsewhere, whatever `mask`'s element type.
 *
 * @example
 * ```ts
 * import { blockedBias } from "./attention.ts";
 * import { tensor } from "../tensor.ts";
 * const bias = blockedBias(tensor([0, 1, 0], [3], { dtype: "u32" }), "f32");
 * console.log(await bias.data()); // Float32Array [0, -Infinity, 0]
 * ```
 *
 * @param mask Non-zero where attention is blocked.
 * @param dtype The float type of the scores it will be added to.
 * @returns A new tensor of `mask`'s shape.
 */
export function blockedBias(mask: Tensor, dtype: "f32" | "f64"): Tensor {
  const blocked = notEqual(mask, 0);
  const typed = blocked.dtype === dtype ? blocked : cast(blocked, dtype);
  if (typed !== blocked) blocked.dispose();
  const bias = where(typed, -Infinity, 0);
  typed.dispose();
  return bias;
}

/**
 * An attention mask as an additive mask of `dtype`: a boolean (`i32`/`u32`)
 * mask through {@linkcode blockedBias}; a float mask is returned itself (so
 * dispose the result only when it is not `mask`).
 *
 * @example
 * ```ts
 * import { additiveMask } from "./attention.ts";
 * import { tensor } from "../tensor.ts";
 * const scores = tensor([0, -Infinity, 0.5]);
 * console.log(additiveMask(scores, "f32") === scores); // true
 * ```
 *
 * @param mask Boolean (integer, non-zero = blocked) or additive float mask.
 * @param dtype The float type of the scores it will be added to.
 * @returns `mask` itself when it is a float mask, else a new tensor.
 */
export function additiveMask(mask: Tensor, dtype: "f32" | "f64"): Tensor {
  if (mask.dtype !== "f32" && mask.dtype !== "f64") return blockedBias(mask, dtype);
  if (mask.dtype !== dtype) {
    throw new TypeError(
      `Attention mask is ${mask.dtype} but the scores are ${dtype} (use the same float type)`,
    );
  }
  return mask;
}

/** Dropout of the attention weights in {@linkcode scaledDotProductAttention}. */
export interface AttentionDropout {
  /** Probability of dropping each attention weight. */
  p: number;
  /** The generator of the dropout mask. */
  rng: Rng;
}

/**
 * `softmax(q k^T / sqrt(d) + mask) v` over the last two axes, the batch axes
 * broadcasting as in `matmul` (e.g. `[N, H, L, d]` per head). Queries whose
 * every key is masked get zero weights (PyTorch gives NaN). With `dropout`,
 * the attention weights are dropped and rescaled (training only: leave it out
 * in evaluation).
 *
 * @example Two queries, three keys, the last key masked for both
 * ```ts
 * import { scaledDotProductAttention } from "./attention.ts";
 * import { tensor } from "../tensor.ts";
 * const q = tensor([[1, 0], [0, 1]]);
 * const k = tensor([[1, 0], [0, 1], [5, 5]]);
 * const v = tensor([[1, 0], [0, 1], [9, 9]]);
 * const mask = tensor([0, 0, 1], [1, 3], { dtype: "u32" });
 * const out = scaledDotProductAttention(q, k, v, mask);
 * console.log(out.shape, await out.data()); // [2, 2] ~[0.67, 0.33, 0.33, 0.67]
 * ```
 *
 * @param q Queries `[..., Lq, d]` (f32, or f64 on the CPU).
 * @param k Keys `[..., Lk, d]`.
 * @param v Values `[..., Lk, dv]`.
 * @param mask Optional mask broadcastable to `[..., Lq, Lk]`: boolean (`i32`/`u32`, non-zero =
 *   may not attend) or additive (the scores' float type, `-Infinity` blocks).
 * @param weightDropout Optional dropout of the attention weights.
 * @returns `[..., Lq, dv]`.
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask?: Tensor,
  weightDropout?: AttentionDropout,
): Tensor {
  const op = "scaledDotProductAttention";
  expectDtype(op, q, ["f32", "f64"]);
  if (q.rank < 2 || k.rank < 2 || v.rank < 2) {
    throw new TypeError(
      `${op}: query ${shapeText(q.shape)}, key ${shapeText(k.shape)} and value ${
        shapeText(v.shape)
      } need at least 2 dimensions each`,
    );
  }
  const d = q.shape[q.rank - 1], lk = k.shape[k.rank - 2];
  if (k.shape[k.rank - 1] !== d) {
    throw new TypeError(
      `${op}: query ${shapeText(q.shape)} and key ${shapeText(k.shape)} differ in the last axis`,
    );
  }
  if (v.shape[v.rank - 2] !== lk) {
    throw new TypeError(
      `${op}: key ${shapeText(k.shape)} and value ${shapeText(v.shape)} have different lengths`,
    );
  }
  const dtype = q.dtype as "f32" | "f64";
  const qs = mul(q, 1 / Math.sqrt(d));
  const scores = matmul(qs, k, { transposeB: true });
  const keep: Tensor[] = [qs];
  let weights: Tensor;
  if (mask) {
    let shape: number[] | null;
    try {
      shape = broadcastShapes(op, [mask.shape, scores.shape]);
    } catch {
      shape = null;
    }
    if (!shape || shape.join() !== scores.shape.join()) {
      throw new TypeError(
        `${op}: mask ${shapeText(mask.shape)} does not broadcast to the scores ${
          shapeText(scores.shape)
        }`,
      );
    }
    const bias = additiveMask(mask, dtype);
    const blocked = lessEqual(bias, -Infinity);
    const blockedTyped = blocked.dtype === dtype ? blocked : cast(blocked, dtype);
    // 1 for queries that may attend to no key: their scores stay unmasked (finite, so the
    // softmax and its gradient stay finite) and their weights are zeroed afterwards.
    const empty = min(blockedTyped, -1, true);
    const safeBias = where(empty, 0, bias);
    const masked = add(scores, safeBias);
    const probs = softmax(masked);
    weights = where(empty, 0, probs);
    keep.push(empty, probs);
    for (const t of new Set([blocked, blockedTyped, safeBias, masked])) t.dispose();
    if (bias !== mask) bias.dispose();
  } else {
    weights = softmax(scores);
  }
  scores.dispose();
  if (weightDropout && weightDropout.p > 0) {
    const dropped = dropout(weights, weightDropout.p, weightDropout.rng);
    keep.push(weights);
    weights = dropped;
  }
  const out = matmul(weights, v);
  keep.push(weights);
  // The backward pass reads these (products' operands, the softmax output, the mask's rows).
  if (!out.node) { for (const t of keep) t.dispose(); }
  return out;
}
