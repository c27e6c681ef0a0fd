/**
 * Layers without matrix products: normalisation, activation, flattening and
 * the sequential container.
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import { defaultDevice } from "../device.ts";
import type { DType } from "../dtype.ts";
import { relu } from "../ops/elementwise.ts";
import { batchNorm, groupNorm, type ReluOption } from "../ops/norm.ts";
import { reshape } from "../ops/shape.ts";
import { empty, type Tensor } from "../tensor.ts";
import { constant } from "./init.ts";
import { Module } from "./module.ts";

/** Where a layer's tensors live. */
export interface PlacementOptions {
  /** Backend of the parameters; default the default device. */
  backend?: Backend;
  /** Element type of the parameters (`f32`, or `f64` on the CPU); default `f32`. */
  dtype?: DType;
}

/** A new tensor filled with `value`. */
export function filled(
  shape: readonly number[],
  value: number,
  { backend, dtype }: PlacementOptions,
): Tensor {
  return constant(empty(shape, dtype ?? "f32", backend ?? defaultDevice()), value);
}

/** Options of {@linkcode GroupNorm}. */
export interface GroupNormOptions extends PlacementOptions {
  /** Added to the variance; default 1e-5. */
  eps?: number;
  /** Learnable per-channel scale and shift (default true). */
  affine?: boolean;
}

/**
 * Group normalisation over `[N, C, ...]` inputs; weight 1 and bias 0 initially.
 *
 * @example
 * ```ts
 * import { GroupNorm } from "./layers.ts";
 * const gn = new GroupNorm(2, 8);
 * console.log(gn.namedParameters().map(([n]) => n)); // ["weight", "bias"]
 * ```
 */
export class GroupNorm extends Module {
  /** Number of groups. */
  readonly numGroups: number;
  /** Number of channels. */
  readonly numChannels: number;
  /** Variance epsilon. */
  readonly eps: number;
  /** Scale `[C]`, or undefined without affine. */
  readonly weight?: Tensor;
  /** Shift `[C]`, or undefined without affine. */
  readonly bias?: Tensor;

  /** Creates the layer; `numGroups` must divide `numChannels`. */
  constructor(numGroups: number, numChannels: number, options: GroupNormOptions = {}) {
    super();
    if (!Number.isInteger(numGroups) || numGroups <= 0 || numChannels % numGroups !== 0) {
      throw new RangeError(`GroupNorm: ${numGroups} groups do not divide ${numChannels} channels`);
    }
    this.numGroups = numGroups;
    this.numChannels = numChannels;
    this.eps = options.eps ?? 1e-5;
    if (options.affine ?? true) {
      this.weight = this.registerParameter("weight", filled([numChannels], 1, options));
      this.bias = this.registerParameter("bias", filled([numChannels], 0, options));
    }
  }

  /** Normalises `x` `[N, C, ...]`; with `relu`, a ReLU follows (fused where the adapter allows). */
  forward(x: Tensor, options: ReluOption = {}): Tensor {
    return groupNorm(x, this.numGroups, this.weight, this.bias, this.eps, options);
  }
}

/** Options of {@linkcode BatchNorm2d}. */
export interface BatchNormOptions extends PlacementOptions {
  /** Added to the variance; default 1e-5. */
  eps?: number;
  /** Running-average weight of each batch; default 0.1. */
  momentum?: number;
  /** Learnable per-channel scale and shift (default true). */
  affine?: boolean;
  /**
   * Frozen: always uses the running statistics, and weight and bias are
   * buffers (no gradient), as in detection backbones. Default false.
   */
  frozen?: boolean;
}

/**
 * Batch normalisation over `[N, C, H, W]` inputs, with running statistics
 * (`running_mean` 0, `running_var` 1 initially) updated in place on the
 * device in training mode.
 *
 * @example
 * ```ts
 * import { BatchNorm2d } from "./layers.ts";
 * const bn = new BatchNorm2d(4, { frozen: true });
 * console.log(bn.parameters().length, bn.namedBuffers().length); // 0 4
 * ```
 */
export class BatchNorm2d extends Module {
  /** Number of channels. */
  readonly numFeatures: number;
  /** Variance epsilon. */
  readonly eps: number;
  /** Running-average momentum. */
  readonly momentum: number;
  /** Whether the layer is frozen. */
  readonly frozen: boolean;
  /** Scale `[C]` (a buffer when frozen), or undefined without affine. */
  readonly weight?: Tensor;
  /** Shift `[C]` (a buffer when frozen), or undefined without affine. */
  readonly bias?: Tensor;
  /** Running mean `[C]`. */
  readonly runningMean: Tensor;
  /** Running (unbiased) variance `[C]`. */
  readonly runningVar: Tensor;

  /** Creates the layer. */
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super();
    this.numFeatures = numFeatures;
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum ?? 0.1;
    this.frozen = options.frozen ?? false;
    if (options.affine ?? true) {
      const register = (name: string, t: Tensor) =>
        this.frozen ? this.registerBuffer(name, t) : this.registerParameter(name, t);
      this.weight = register("weight", filled([numFeatures], 1, options));
      this.bias = register("bias", filled([numFeatures], 0, options));
    }
    this.runningMean = this.registerBuffer("running_mean", filled([numFeatures], 0, options));
    this.runningVar = this.registerBuffer("running_var", filled([numFeatures], 1, options));
  }

  /**
   * Normalises `x` `[N, C, ...]`: batch statistics when training (and not frozen); with `relu`, a
   * ReLU follows.
   */
  forward(x: Tensor, options: ReluOption = {}): Tensor {
    const out = batchNorm(x, this.runningMean, this.runningVar, this.weight, this.bias, {
      training: this.training && !this.frozen,
      momentum: this.momentum,
      eps: this.eps,
    });
    return options.relu ? relu(out) : out;
  }
}

/**
 * `max(x, 0)`.
 *
 * @example
 * ```ts
 * import { ReLU } from "./layers.ts";
 * import { tensor } from "../tensor.ts";
 * console.log(await new ReLU().forward(tensor([-1, 2])).data()); // [0, 2]
 * ```
 */
export class ReLU extends Module {
  /** Applies the activation. */
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}

/**
 * Flattens dimensions `startDim..` into one (a view): `[N, C, H, W]` to `[N, C*H*W]`.
 *
 * @example
 * ```ts
 * import { Flatten } from "./layers.ts";
 * import { tensor } from "../tensor.ts";
 * console.log(new Flatten().forward(tensor(new Float32Array(24), [2, 3, 2, 2])).shape); // [2, 12]
 * ```
 */
export class Flatten extends Module {
  /** First dimension flattened. */
  readonly startDim: number;

  /** Creates the layer. */
  constructor(startDim = 1) {
    super();
    this.startDim = startDim;
  }

  /** Flattens `x`. */
  forward(x: Tensor): Tensor {
    return reshape(x, [...x.shape.slice(0, this.startDim), -1]);
  }
}

/**
 * Applies modules in order; children are named `"0"`, `"1"`, ...
 *
 * @example
 * ```ts
 * import { ReLU, Sequential } from "./layers.ts";
 * import { tensor } from "../tensor.ts";
 * const net = new Sequential(new ReLU(), new ReLU());
 * console.log(await net.forward(tensor([-1, 2])).data()); // [0, 2]
 * ```
 */
export class Sequential extends Module {
  /** The modules, in order. */
  readonly layers: readonly Module[];

  /** Creates the container. */
  constructor(...layers: Module[]) {
    super();
    this.layers = layers;
    layers.forEach((m, k) => this.registerModule(String(k), m));
  }

  /**
   * Runs `x` through every layer. Intermediate results stay alive (the tape
   * may need them): run training steps inside `tidy`.
   */
  forward(x: Tensor): Tensor {
    let out = x;
    for (const layer of this.layers) out = layer.forward(out);
    return out;
  }
}
