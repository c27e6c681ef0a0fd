/**
 * The fully connected layer, initialised as PyTorch does by default
 * (Kaiming-uniform weights with `a = sqrt(5)`, i.e. `U(-1/sqrt(fanIn),
 * 1/sqrt(fanIn))`, and biases in the same range) from an explicit
 * {@linkcode Rng}.
 *
 * @module
 */

import { defaultDevice } from "../device.ts";
import { linear } from "../ops/linear.ts";
import type { Rng } from "../rng.ts";
import { empty, type Tensor } from "../tensor.ts";
import { fans, kaimingUniform, uniform } from "./init.ts";
import type { PlacementOptions } from "./layers.ts";
import { Module } from "./module.ts";

/** Options of {@linkcode Linear}. */
export interface LinearOptions extends PlacementOptions {
  /** The generator of the initial weights (required: every random choice is seeded). */
  rng: Rng;
  /** Whether to add a learnable bias (default true). */
  bias?: boolean;
}

/**
 * PyTorch's default initialisation of a layer's `weight` and optional `bias`:
 * Kaiming-uniform with `a = sqrt(5)`, biases `U(-1/sqrt(fanIn), 1/sqrt(fanIn))`.
 */
export function initWeightAndBias(
  module: { weight: Tensor; bias?: Tensor },
  rng: Rng,
): void {
  kaimingUniform(module.weight, rng, { a: Math.sqrt(5) });
  if (module.bias) {
    const bound = 1 / Math.sqrt(fans(module.weight.shape)[0]);
    uniform(module.bias, rng, -bound, bound);
  }
}

/**
 * `y = x W^T + b` over the last axis: `[..., in]` to `[..., out]`; the
 * weight is `[out, in]` as in PyTorch.
 *
 * @example
 * ```ts
 * import { Linear } from "./linear.ts";
 * import { Rng } from "../rng.ts";
 * const fc = new Linear(16, 4, { rng: new Rng(0) });
 * console.log(fc.weight.shape); // [4, 16]
 * ```
 */
export class Linear extends Module {
  /** Weight `[out, in]`. */
  readonly weight: Tensor;
  /** Bias `[out]`, or undefined. */
  readonly bias?: Tensor;

  /** Creates the layer. */
  constructor(inFeatures: number, outFeatures: number, options: LinearOptions) {
    super();
    const backend = options.backend ?? defaultDevice(), dtype = options.dtype ?? "f32";
    this.weight = this.registerParameter(
      "weight",
      empty([outFeatures, inFeatures], dtype, backend),
    );
    if (options.bias ?? true) {
      this.bias = this.registerParameter("bias", empty([outFeatures], dtype, backend));
    }
    initWeightAndBias(this, options.rng);
  }

  /** Applies the layer to `x` `[..., in]` (any rank >= 1; leading axes are one batch). */
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}
