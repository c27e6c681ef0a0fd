/**
 * The ATSS head: classification and regression towers of 3x3 convolutions
 * with group norm shared over the pyramid levels, a learnable scale per level
 * on the regression output, and an optional centerness branch (stock ATSS
 * trained with focal loss; the ranking-loss heads drop it).
 *
 * @module
 */

import type { Backend } from "../../tensor/backend.ts";
import { Conv2d } from "../../tensor/nn/conv.ts";
import { normal } from "../../tensor/nn/init.ts";
import { GroupNorm } from "../../tensor/nn/layers.ts";
import { Module } from "../../tensor/nn/module.ts";
import { concat } from "../../tensor/ops/concat.ts";
import { mul } from "../../tensor/ops/elementwise.ts";
import { reshape } from "../../tensor/ops/shape.ts";
import type { Rng } from "../../tensor/rng.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import { groupsFor } from "../norm_layer.ts";
import { flattenLevel, normalInit } from "./common.ts";

/** The shape of an ATSS head. */
export interface AtssHeadConfig {
  /** Object classes (no background class: sigmoid scores). */
  numClasses: number;
  /** Channels of the pyramid features. */
  inChannels: number;
  /** Channels inside the towers. */
  featChannels: number;
  /** Convolutions in each tower (4 in the paper). */
  stackedConvs: number;
  /** Group-norm groups (32 in the paper; fewer for narrow towers). */
  normGroups: number;
  /** Anchors per location. */
  anchorsPerLocation: number;
  /** Pyramid levels (one learnable regression scale each). */
  numLevels: number;
  /** Whether to predict centerness (stock ATSS with focal loss). */
  centerness: boolean;
  /** Prior probability the classification bias starts at (0.01). */
  priorProbability: number;
}

/** Head outputs with the levels concatenated, anchors in generator order. */
export interface AtssHeadOutput {
  /** Logits `[N, A, C]`. */
  cls: Tensor;
  /** Box deltas `[N, A, 4]`. */
  reg: Tensor;
  /** Centerness logits `[N, A]`, when the head has the branch. */
  centerness?: Tensor;
}

class Tower extends Module {
  readonly #layers: [Conv2d, GroupNorm][] = [];
  constructor(config: AtssHeadConfig, rng: Rng, backend?: Backend) {
    super();
    for (let k = 0; k < config.stackedConvs; k++) {
      const cin = k === 0 ? config.inChannels : config.featChannels;
      const conv = new Conv2d(cin, config.featChannels, 3, {
        rng,
        padding: 1,
        bias: false,
        backend,
      });
      normal(conv.weight, rng, 0, 0.01);
      const gn = new GroupNorm(
        groupsFor(config.featChannels, config.normGroups),
        config.featChannels,
        {
          backend,
        },
      );
      this.#layers.push([this.registerModule(`conv${k}`, conv), this.registerModule(`gn${k}`, gn)]);
    }
  }
  forward(x: Tensor): Tensor {
    return this.#layers.reduce((y, [conv, gn]) => gn.forward(conv.forward(y), { relu: true }), x);
  }
}

function outputConv(cin: number, cout: number, bias: number, rng: Rng, backend?: Backend): Conv2d {
  return normalInit(new Conv2d(cin, cout, 3, { rng, padding: 1, backend }), rng, bias);
}

/** The ATSS head over a feature pyramid. */
export class AtssHead extends Module<Tensor[], AtssHeadOutput> {
  readonly #clsTower: Tower;
  readonly #regTower: Tower;
  readonly #cls: Conv2d;
  readonly #reg: Conv2d;
  readonly #centerness: Conv2d | null;
  readonly #scales: Tensor[] = [];

  /** Builds the head with weights from `rng`. */
  constructor(readonly config: AtssHeadConfig, rng: Rng, backend?: Backend) {
    super();
    const a = config.anchorsPerLocation;
    this.#clsTower = this.registerModule("cls_convs", new Tower(config, rng, backend));
    this.#regTower = this.registerModule("reg_convs", new Tower(config, rng, backend));
    const prior = -Math.log((1 - config.priorProbability) / config.priorProbability);
    this.#cls = this.registerModule(
      "atss_cls",
      outputConv(config.featChannels, a * config.numClasses, prior, rng, backend),
    );
    this.#reg = this.registerModule(
      "atss_reg",
      outputConv(config.featChannels, a * 4, 0, rng, backend),
    );
    this.#centerness = config.centerness
      ? this.registerModule("atss_centerness", outputConv(config.featChannels, a, 0, rng, backend))
      : null;
    for (let l = 0; l < config.numLevels; l++) {
      this.#scales.push(this.registerParameter(`scale${l}`, tensor([1], [1], { backend })));
    }
  }

  /** Classification and box outputs of every level, concatenated over levels. */
  forward(features: Tensor[]): AtssHeadOutput {
    const { numClasses } = this.config;
    const cls: Tensor[] = [], reg: Tensor[] = [], ctr: Tensor[] = [];
    features.forEach((f, l) => {
      const c = this.#clsTower.forward(f);
      const r = this.#regTower.forward(f);
      cls.push(flattenLevel(this.#cls.forward(c), numClasses));
      reg.push(flattenLevel(mul(this.#reg.forward(r), this.#scales[l]), 4));
      if (this.#centerness) ctr.push(flattenLevel(this.#centerness.forward(r), 1));
    });
    const out: AtssHeadOutput = { cls: concat(cls, 1), reg: concat(reg, 1) };
    if (this.#centerness) {
      const joined = concat(ctr, 1);
      out.centerness = reshape(joined, joined.shape.slice(0, 2));
    }
    return out;
  }
}
