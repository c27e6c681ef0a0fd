/**
 * The region proposal network's head (mmdetection's `RPNHead`, kept by the
 * rank-based `RankBasedRPNHead`): one 3x3 convolution with ReLU shared over
 * the pyramid levels, then two 1x1 convolutions, objectness (`A` logits per
 * location, one class, sigmoid) and box deltas (`4A`). Every weight starts
 * from `N(0, 0.01)` and every bias at 0 (`normal_init(std=0.01)`).
 *
 * @module
 */

import type { Backend } from "../../tensor/backend.ts";
import { Conv2d } from "../../tensor/nn/conv.ts";
import { Module } from "../../tensor/nn/module.ts";
import { concat } from "../../tensor/ops/concat.ts";
import { relu } from "../../tensor/ops/elementwise.ts";
import { reshape } from "../../tensor/ops/shape.ts";
import type { Rng } from "../../tensor/rng.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { flattenLevel, normalInit } from "./common.ts";

/** The shape of an RPN head. */
export interface RpnHeadConfig {
  /** Channels of the pyramid features. */
  inChannels: number;
  /** Channels of the shared 3x3 convolution (mmdetection: `feat_channels`, 256). */
  featChannels: number;
  /** Anchors per location (3: ratios 0.5 / 1 / 2). */
  anchorsPerLocation: number;
}

/** One level's raw outputs, in mmdetection's layout. */
export interface RpnLevelOutput {
  /** Objectness logits `[N, A, H, W]`. */
  cls: Tensor;
  /** Box deltas `[N, 4A, H, W]`. */
  reg: Tensor;
}

/** Head outputs with the levels concatenated, anchors in generator order. */
export interface RpnHeadOutput {
  /** Objectness logits `[N, sum_l H_l W_l A]`. */
  cls: Tensor;
  /** Box deltas `[N, sum_l H_l W_l A, 4]`. */
  reg: Tensor;
  /** Anchors of each level (`H_l W_l A`). */
  perLevel: number[];
}

/**
 * The RPN head over a feature pyramid.
 *
 * @example Three anchors per location on two levels
 * ```ts
 * import { RpnHead } from "./rpn_head.ts";
 * import { Rng } from "../../tensor/rng.ts";
 * import { zeros } from "../../tensor/ops/creation.ts";
 * const head = new RpnHead({ inChannels: 4, featChannels: 4, anchorsPerLocation: 3 }, new Rng(0));
 * const out = head.forward([zeros([1, 4, 4, 4]), zeros([1, 4, 2, 2])]);
 * console.log(out.cls.shape, out.reg.shape, out.perLevel); // [1, 60] [1, 60, 4] [48, 12]
 * ```
 */
export class RpnHead extends Module<Tensor[], RpnHeadOutput> {
  readonly #conv: Conv2d;
  readonly #cls: Conv2d;
  readonly #reg: Conv2d;

  /** Builds the head with weights from `rng`. */
  constructor(readonly config: RpnHeadConfig, rng: Rng, backend?: Backend) {
    super();
    const { inChannels, featChannels, anchorsPerLocation: a } = config;
    for (const [name, v] of Object.entries(config)) {
      if (!(Number.isInteger(v) && v > 0)) {
        throw new RangeError(`RpnHead: ${name} ${v} is not a positive integer`);
      }
    }
    this.#conv = this.registerModule(
      "rpn_conv",
      normalInit(new Conv2d(inChannels, featChannels, 3, { rng, padding: 1, backend }), rng),
    );
    this.#cls = this.registerModule(
      "rpn_cls",
      normalInit(new Conv2d(featChannels, a, 1, { rng, backend }), rng),
    );
    this.#reg = this.registerModule(
      "rpn_reg",
      normalInit(new Conv2d(featChannels, 4 * a, 1, { rng, backend }), rng),
    );
  }

  /** One level's logits `[N, A, H, W]` and deltas `[N, 4A, H, W]`. */
  forwardLevel(x: Tensor): RpnLevelOutput {
    const y = relu(this.#conv.forward(x));
    return { cls: this.#cls.forward(y), reg: this.#reg.forward(y) };
  }

  /** Logits and deltas of every level, concatenated over levels. */
  forward(features: Tensor[]): RpnHeadOutput {
    const cls: Tensor[] = [], reg: Tensor[] = [], perLevel: number[] = [];
    for (const f of features) {
      const level = this.forwardLevel(f);
      const c = flattenLevel(level.cls, 1);
      cls.push(reshape(c, c.shape.slice(0, 2)));
      reg.push(flattenLevel(level.reg, 4));
      perLevel.push(c.shape[1]);
    }
    return { cls: concat(cls, 1), reg: concat(reg, 1), perLevel };
  }
}
