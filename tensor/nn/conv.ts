/**
 * Convolution and pooling layers over `[N, C, H, W]` tensors.
 *
 * @module
 */

import { defaultDevice } from "../device.ts";
import { conv2d } from "../ops/conv.ts";
import { convTranspose2d } from "../ops/conv_transpose.ts";
import { avgPool2d, maxPool2d } from "../ops/pool.ts";
import type { Rng } from "../rng.ts";
import { empty, type Tensor } from "../tensor.ts";
import type { PlacementOptions } from "./layers.ts";
import { initWeightAndBias } from "./linear.ts";
import { Module } from "./module.ts";

/** A size given once for both spatial axes or as `[h, w]`. */
export type Pair = number | readonly [number, number];

/** Options of {@linkcode Conv2d}. */
export interface Conv2dOptions extends PlacementOptions {
  /** The generator of the initial weights (required). */
  rng: Rng;
  /** Stride; default 1. */
  stride?: Pair;
  /** Zero padding; default 0. */
  padding?: Pair;
  /** Dilation; default 1. */
  dilation?: Pair;
  /** Channel groups; default 1. */
  groups?: number;
  /** Whether to add a learnable bias (default true). */
  bias?: boolean;
}

const pair = (p: Pair): [number, number] => (typeof p === "number" ? [p, p] : [p[0], p[1]]);

/**
 * 2-D convolution over `[N, C, H, W]`; weight `[out, in / groups, kh, kw]`.
 *
 * @example
 * ```ts
 * import { Conv2d } from "./conv.ts";
 * import { Rng } from "../rng.ts";
 * const conv = new Conv2d(3, 8, 3, { rng: new Rng(0), padding: 1 });
 * console.log(conv.weight.shape); // [8, 3, 3, 3]
 * ```
 */
export class Conv2d extends Module {
  /** Weight `[out, in / groups, kh, kw]`. */
  readonly weight: Tensor;
  /** Bias `[out]`, or undefined. */
  readonly bias?: Tensor;
  /** Stride `[sh, sw]`. */
  readonly stride: [number, number];
  /** Padding `[ph, pw]`. */
  readonly padding: [number, number];
  /** Dilation `[dh, dw]`. */
  readonly dilation: [number, number];
  /** Channel groups. */
  readonly groups: number;

  /** Creates the layer. */
  constructor(inChannels: number, outChannels: number, kernelSize: Pair, options: Conv2dOptions) {
    super();
    const groups = options.groups ?? 1;
    if (
      !Number.isInteger(groups) || groups <= 0 || inChannels % groups !== 0 ||
      outChannels % groups !== 0
    ) {
      throw new RangeError(
        `Conv2d: ${groups} groups do not divide ${inChannels} input and ${outChannels} output channels`,
      );
    }
    const backend = options.backend ?? defaultDevice(), dtype = options.dtype ?? "f32";
    const [kh, kw] = pair(kernelSize);
    this.stride = pair(options.stride ?? 1);
    this.padding = pair(options.padding ?? 0);
    this.dilation = pair(options.dilation ?? 1);
    this.groups = groups;
    this.weight = this.registerParameter(
      "weight",
      empty([outChannels, inChannels / groups, kh, kw], dtype, backend),
    );
    if (options.bias ?? true) {
      this.bias = this.registerParameter("bias", empty([outChannels], dtype, backend));
    }
    initWeightAndBias(this, options.rng);
  }

  /** Convolves `x` `[N, C, H, W]`. */
  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups: this.groups,
      bias: this.bias,
    });
  }
}

/** Options of {@linkcode ConvTranspose2d}. */
export interface ConvTranspose2dOptions extends PlacementOptions {
  /** The generator of the initial weights (required). */
  rng: Rng;
  /** Stride; default 1. */
  stride?: Pair;
  /** Rows and columns cropped from both sides of the output; default 0. */
  padding?: Pair;
  /** Rows and columns added at the bottom and right; default 0 (below the stride or dilation). */
  outputPadding?: Pair;
  /** Dilation; default 1. */
  dilation?: Pair;
  /** Whether to add a learnable bias (default true). */
  bias?: boolean;
}

/**
 * Transposed 2-D convolution over `[N, Cin, H, W]` (PyTorch's
 * `ConvTranspose2d`, groups 1); weight `[in, out, kh, kw]` and bias `[out]`
 * under PyTorch's names, so mmdetection's mask-head `upsample` loads as is.
 * Initialised as PyTorch's default (Kaiming-uniform with `a = sqrt(5)` over
 * the fan `out * kh * kw` of dimension 1, bias `U(-1/sqrt(fan), 1/sqrt(fan))`);
 * mmdetection's `FCNMaskHead` re-initialises it (Kaiming-normal, fan out,
 * zero bias).
 *
 * @example Mask R-CNN's 14 x 14 to 28 x 28 upsampling
 * ```ts
 * import { ConvTranspose2d } from "./conv.ts";
 * import { Rng } from "../rng.ts";
 * import { empty } from "../tensor.ts";
 * import { cpu } from "../device.ts";
 * const backend = cpu();
 * const up = new ConvTranspose2d(8, 4, 2, { rng: new Rng(0), stride: 2, backend });
 * console.log(up.weight.shape); // [8, 4, 2, 2]
 * console.log(up.forward(empty([1, 8, 14, 14], "f32", backend)).shape); // [1, 4, 28, 28]
 * ```
 */
export class ConvTranspose2d extends Module {
  /** Weight `[in, out, kh, kw]`. */
  readonly weight: Tensor;
  /** Bias `[out]`, or undefined. */
  readonly bias?: Tensor;
  /** Stride `[sh, sw]`. */
  readonly stride: [number, number];
  /** Padding `[ph, pw]`. */
  readonly padding: [number, number];
  /** Output padding `[oh, ow]`. */
  readonly outputPadding: [number, number];
  /** Dilation `[dh, dw]`. */
  readonly dilation: [number, number];

  /** Creates the layer. */
  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: Pair,
    options: ConvTranspose2dOptions,
  ) {
    super();
    const backend = options.backend ?? defaultDevice(), dtype = options.dtype ?? "f32";
    const [kh, kw] = pair(kernelSize);
    this.stride = pair(options.stride ?? 1);
    this.padding = pair(options.padding ?? 0);
    this.outputPadding = pair(options.outputPadding ?? 0);
    this.dilation = pair(options.dilation ?? 1);
    this.weight = this.registerParameter(
      "weight",
      empty([inChannels, outChannels, kh, kw], dtype, backend),
    );
    if (options.bias ?? true) {
      this.bias = this.registerParameter("bias", empty([outChannels], dtype, backend));
    }
    initWeightAndBias(this, options.rng);
  }

  /** Applies the layer to `x` `[N, in, H, W]`, giving `[N, out, Hout, Wout]`. */
  forward(x: Tensor): Tensor {
    return convTranspose2d(x, this.weight, {
      stride: this.stride,
      padding: this.padding,
      outputPadding: this.outputPadding,
      dilation: this.dilation,
      bias: this.bias,
    });
  }
}

/** Options of {@linkcode MaxPool2d} and {@linkcode AvgPool2d}. */
export interface Pool2dLayerOptions {
  /** Step between windows; default the window size. */
  stride?: Pair;
  /** Implicit padding on both sides; default 0. */
  padding?: Pair;
}

/**
 * Max pooling over `[N, C, H, W]`.
 *
 * @example
 * ```ts
 * import { MaxPool2d } from "./conv.ts";
 * import { tensor } from "../tensor.ts";
 * const y = new MaxPool2d(2).forward(tensor([1, 2, 3, 4], [1, 1, 2, 2]));
 * console.log(await y.data()); // Float32Array [4]
 * ```
 */
export class MaxPool2d extends Module {
  /** Creates the layer with its window size, stride and padding. */
  constructor(readonly kernelSize: Pair, readonly options: Pool2dLayerOptions = {}) {
    super();
  }

  /** Pools `x`. */
  forward(x: Tensor): Tensor {
    return maxPool2d(x, { kernelSize: this.kernelSize, ...this.options });
  }
}

/**
 * Average pooling over `[N, C, H, W]`.
 *
 * @example
 * ```ts
 * import { AvgPool2d } from "./conv.ts";
 * import { tensor } from "../tensor.ts";
 * const y = new AvgPool2d(2).forward(tensor([1, 2, 3, 4], [1, 1, 2, 2]));
 * console.log(await y.data()); // Float32Array [2.5]
 * ```
 */
export class AvgPool2d extends Module {
  /** Creates the layer with its window size, stride and padding. */
  constructor(readonly kernelSize: Pair, readonly options: Pool2dLayerOptions = {}) {
    super();
  }

  /** Pools `x`. */
  forward(x: Tensor): Tensor {
    return avgPool2d(x, { kernelSize: this.kernelSize, ...this.options });
  }
}
