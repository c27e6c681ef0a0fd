/**
 * The affine map of a fully connected layer over the last axis, `x W^T + b`,
 * for inputs of any rank: leading axes are flattened into one batch of rows
 * (a view), so the weight gradient is one matrix product instead of a
 * broadcast batch of them.
 *
 * @module
 */

import { add } from "./elementwise.ts";
import { matmul } from "./matmul.ts";
import { reshape } from "./shape.ts";
import type { Tensor } from "../tensor.ts";

function shapeText(t: Tensor): string {
  return `[${t.shape.join(", ")}]`;
}

/**
 * `y = x W^T + b` over the last axis (PyTorch's `F.linear`): `[..., in]` to
 * `[..., out]`, with gradients for all three. A 1-D `x` is one row.
 *
 * @example A `[2, 3, 2]` batch of rows
 * ```ts
 * import { linear } from "./linear.ts";
 * import { tensor } from "../tensor.ts";
 * const x = tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [2, 3, 2]);
 * const w = tensor([[1, 0], [1, 1]]); // [out 2, in 2]
 * const y = linear(x, w, tensor([0, 100]));
 * console.log(y.shape, await y.data()); // [2, 3, 2] Float32Array [1, 103, 3, 107, ...]
 * ```
 *
 * @param x Input `[..., in]` (rank >= 1).
 * @param weight Weight `[out, in]`.
 * @param bias Optional bias `[out]`.
 * @returns `[..., out]`.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  if (weight.rank !== 2) {
    throw new TypeError(`linear: weight must be [out, in] but has shape ${shapeText(weight)}`);
  }
  const [outFeatures, inFeatures] = weight.shape;
  if (x.rank === 0 || x.shape[x.rank - 1] !== inFeatures) {
    throw new TypeError(
      `linear: input ${shapeText(x)} does not end in the weight's ${inFeatures} input features`,
    );
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== outFeatures)) {
    throw new TypeError(
      `linear: bias has shape ${shapeText(bias)} but the weight has ${outFeatures} outputs`,
    );
  }
  const rows = x.rank === 2 ? x : reshape(x, [-1, inFeatures]);
  const product = matmul(rows, weight, { transposeB: true });
  const y = bias ? add(product, bias) : product;
  const out = x.rank === 2 ? y : reshape(y, [...x.shape.slice(0, -1), outFeatures]);
  // The backward pass reads the row view (for the weight's gradient), not the other two.
  if (rows !== x && !out.node) rows.dispose();
  if (y !== product) product.dispose();
  if (out !== y) y.dispose();
  return out;
}
