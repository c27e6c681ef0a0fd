/**
 * What the dense heads (ATSS, RPN) share: mmdetection's `normal_init` of an output convolution
 * and the flattening of one pyramid level's outputs into the anchor generator's order.
 *
 * @module
 */

import type { Conv2d } from "../../tensor/nn/conv.ts";
import { constant, normal } from "../../tensor/nn/init.ts";
import { permute, reshape } from "../../tensor/ops/shape.ts";
import type { Rng } from "../../tensor/rng.ts";
import type { Tensor } from "../../tensor/tensor.ts";

/**
 * mmdetection's `normal_init(conv, std=0.01, bias)`: weights from `N(0, 0.01)` drawn from
 * `rng`, the bias set to `bias`.
 *
 * @example
 * ```ts
 * import { normalInit } from "./common.ts";
 * import { Conv2d } from "../../tensor/nn/conv.ts";
 * import { Rng } from "../../tensor/rng.ts";
 * import assert from "node:assert/strict";
 *
 * const rng = new Rng(0);
 * const conv = normalInit(new Conv2d(4, 2, 3, { rng, padding: 1 }), rng, -4.6);
 * assert.deepEqual([...await conv.bias!.data()], [-4.599999904632568, -4.599999904632568]);
 * ```
 *
 * @param conv A convolution with a bias.
 * @param rng Where the weights are drawn from.
 * @param bias The bias value (default 0).
 * @returns `conv`.
 */
export function normalInit(conv: Conv2d, rng: Rng, bias = 0): Conv2d {
  normal(conv.weight, rng, 0, 0.01);
  constant(conv.bias!, bias);
  return conv;
}

/**
 * One level's outputs `[N, A*K, H, W]` as `[N, H*W*A, K]`, matching the anchor generator's order
 * (location-major, then anchor).
 *
 * @example
 * ```ts
 * import { flattenLevel } from "./common.ts";
 * import { zeros } from "../../tensor/ops/creation.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(flattenLevel(zeros([2, 3 * 4, 5, 6]), 4).shape, [2, 5 * 6 * 3, 4]);
 * ```
 *
 * @param x Outputs `[N, A*K, H, W]`.
 * @param k Values per anchor `K`.
 * @returns `[N, H*W*A, K]`.
 */
export function flattenLevel(x: Tensor, k: number): Tensor {
  const [n, ak, h, w] = x.shape;
  const a = ak / k;
  return reshape(permute(reshape(x, [n, a, k, h, w]), [0, 3, 4, 1, 2]), [n, h * w * a, k]);
}
