/**
 * The mask head of Mask R-CNN (mmdetection's `FCNMaskHead`, kept by the
 * rank-based `RankBasedFCNMaskHead`; docs/two_stage.md): RoI features
 * `[K, C, 14, 14]` pass four 3x3 convolutions (ReLU each), a 2x2 transposed
 * convolution of stride 2 (ReLU) to 28x28, and a 1x1 convolution to one
 * mask logit map per class, `[K, classes, 28, 28]`. Only the map of a RoI's
 * class is used (class-specific masks). Initialisation as mmdetection 2.x:
 * every weight Kaiming-normal with fan-out for ReLU, every bias 0.
 *
 * @module
 */

import type { Backend } from "../../tensor/backend.ts";
import { Conv2d, ConvTranspose2d } from "../../tensor/nn/conv.ts";
import { constant, kaimingNormal } from "../../tensor/nn/init.ts";
import { Module } from "../../tensor/nn/module.ts";
import { relu } from "../../tensor/ops/elementwise.ts";
import type { Rng } from "../../tensor/rng.ts";
import type { Tensor } from "../../tensor/tensor.ts";

/** The shape of a {@linkcode FcnMaskHead}. */
export interface MaskHeadConfig {
  /** Channels of the pooled features (the FPN's 256). */
  inChannels: number;
  /** Channels of the convolutions and the upsampling (256). */
  convChannels: number;
  /** 3x3 convolutions before the upsampling (4). */
  numConvs: number;
  /** Object classes: one mask map each. */
  numClasses: number;
}

function kaimingFanOut<T extends Conv2d | ConvTranspose2d>(conv: T, rng: Rng): T {
  kaimingNormal(conv.weight, rng, { mode: "fan_out", nonlinearity: "relu" });
  constant(conv.bias!, 0);
  return conv;
}

/** A convolution registered as `conv` (mmcv's `ConvModule` without norm), ReLU after it. */
class ConvRelu extends Module {
  readonly #conv: Conv2d;
  constructor(conv: Conv2d) {
    super();
    this.#conv = this.registerModule("conv", conv);
  }
  forward(x: Tensor): Tensor {
    return relu(this.#conv.forward(x));
  }
}

/** Layers registered as `0`, `1`, ... and applied in order (mmcv's `ModuleList` of `convs`). */
class Sequence extends Module {
  readonly #layers: ConvRelu[];
  constructor(layers: ConvRelu[]) {
    super();
    this.#layers = layers.map((l, i) => this.registerModule(String(i), l));
  }
  forward(x: Tensor): Tensor {
    return this.#layers.reduce((y, layer) => layer.forward(y), x);
  }
}

/**
 * The FCN mask head. Parameters carry mmdetection's names: `convs.{i}.conv.*`,
 * `upsample.*`, `conv_logits.*`.
 *
 * @example Two RoIs of 14x14 features give 28x28 maps for each class
 * ```ts
 * import { FcnMaskHead } from "./mask_head.ts";
 * import { Rng } from "../../tensor/rng.ts";
 * import { zeros } from "../../tensor/ops/creation.ts";
 * const head = new FcnMaskHead({ inChannels: 4, convChannels: 4, numConvs: 2, numClasses: 3 }, new Rng(0));
 * console.log(head.forward(zeros([2, 4, 14, 14])).shape); // [2, 3, 28, 28]
 * ```
 */
export class FcnMaskHead extends Module {
  readonly #convs: Sequence;
  readonly #upsample: ConvTranspose2d;
  readonly #logits: Conv2d;

  /**
   * Builds the head with weights from `rng`.
   *
   * @throws {RangeError} When a size is not a positive integer (`numConvs` may be 0).
   */
  constructor(readonly config: MaskHeadConfig, rng: Rng, backend?: Backend) {
    super();
    for (const [name, v] of Object.entries(config)) {
      const least = name === "numConvs" ? 0 : 1;
      if (!(Number.isInteger(v) && v >= least)) {
        throw new RangeError(`FcnMaskHead: ${name} ${v} is not an integer >= ${least}`);
      }
    }
    const { inChannels, convChannels, numConvs, numClasses } = config;
    const convs = Array.from({ length: numConvs }, (_, i) =>
      new ConvRelu(kaimingFanOut(
        new Conv2d(i === 0 ? inChannels : convChannels, convChannels, 3, {
          rng,
          padding: 1,
          backend,
        }),
        rng,
      )));
    this.#convs = this.registerModule("convs", new Sequence(convs));
    const upIn = numConvs > 0 ? convChannels : inChannels;
    this.#upsample = this.registerModule(
      "upsample",
      kaimingFanOut(new ConvTranspose2d(upIn, convChannels, 2, { rng, stride: 2, backend }), rng),
    );
    this.#logits = this.registerModule(
      "conv_logits",
      kaimingFanOut(new Conv2d(convChannels, numClasses, 1, { rng, backend }), rng),
    );
  }

  /** Mask logits `[K, classes, 2S, 2S]` of RoI features `[K, inChannels, S, S]`. */
  forward(x: Tensor): Tensor {
    return this.#logits.forward(relu(this.#upsample.forward(this.#convs.forward(x))));
  }
}
