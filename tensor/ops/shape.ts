/**
 * Shape ops: reshape (a view), permute and transpose (copies), with gradients.
 *
 * @module
 */

import { record } from "../autograd.ts";
import { sizeOf, type Tensor, viewOf } from "../tensor.ts";
import { restride } from "./elementwise.ts";
import { normalizeAxis, stridesOf } from "./launch.ts";

/**
 * `x` with another shape of the same size, sharing its memory; one dimension may be `-1`.
 *
 * @example
 * ```ts
 * import { reshape } from "./shape.ts";
 * import { tensor } from "../tensor.ts";
 * console.log(reshape(tensor([1, 2, 3, 4, 5, 6]), [2, -1]).shape); // [2, 3]
 * ```
 */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const free = shape.filter((d) => d === -1).length;
  const known = sizeOf(shape.filter((d) => d !== -1));
  const resolved = shape.map((d) => (d === -1 ? (known === 0 ? 0 : x.size / known) : d));
  if (
    free > 1 || resolved.some((d) => !Number.isInteger(d) || d < 0) ||
    sizeOf(resolved) !== x.size
  ) {
    throw new TypeError(`reshape: cannot view [${x.shape.join(", ")}] as [${shape.join(", ")}]`);
  }
  const out = viewOf(x, resolved);
  record("reshape", [x], [out], ([g]) => [viewOf(g!, x.shape)]);
  return out;
}

/**
 * `x` with its axes reordered: output axis `k` is input axis `axes[k]`.
 *
 * @example
 * ```ts
 * import { permute } from "./shape.ts";
 * import { tensor } from "../tensor.ts";
 * const y = permute(tensor([[1, 2, 3], [4, 5, 6]]), [1, 0]);
 * console.log(y.shape, await y.data()); // [3, 2] Float32Array [1, 4, 2, 5, 3, 6]
 * ```
 */
export function permute(x: Tensor, axes: readonly number[]): Tensor {
  const order = axes.map((a) => normalizeAxis("permute", a, x.rank));
  if (order.length !== x.rank || new Set(order).size !== x.rank) {
    throw new TypeError(`permute: [${axes.join(", ")}] is not a permutation of ${x.rank} axes`);
  }
  const strides = stridesOf(x.shape);
  const out = restride("permute", x, order.map((a) => x.shape[a]), order.map((a) => strides[a]));
  const inverse = new Array<number>(order.length);
  order.forEach((a, k) => (inverse[a] = k));
  record("permute", [x], [out], ([g]) => [permute(g!, inverse)]);
  return out;
}

/** `x` with axes `a` and `b` swapped (the last two by default). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const order = x.shape.map((_, k) => k);
  const i = normalizeAxis("transpose", a, x.rank), j = normalizeAxis("transpose", b, x.rank);
  [order[i], order[j]] = [order[j], order[i]];
  return permute(x, order);
}
