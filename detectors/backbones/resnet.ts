/**
 * The ResNet backbone family (He et al., 2016), from a tiny model for the
 * CPU-only machines up to ResNet-50's shape, returning the outputs of stages
 * 2–4 (strides 8, 16, 32) for an FPN.
 *
 * @module
 */

import type { Backend } from "../../tensor/backend.ts";
import { Conv2d, MaxPool2d } from "../../tensor/nn/conv.ts";
import { kaimingNormal } from "../../tensor/nn/init.ts";
import { type AnyModule, Module } from "../../tensor/nn/module.ts";
import { add, relu } from "../../tensor/ops/elementwise.ts";
import type { Rng } from "../../tensor/rng.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { type NormKind, type NormLayer, normLayer } from "../norm_layer.ts";

/** The shape of a ResNet. */
export interface ResNetConfig {
  /** `basic` (ResNet-18/34) or `bottleneck` (ResNet-50/101) blocks. */
  block: "basic" | "bottleneck";
  /**
   * Blocks in each stage, e.g. `[3, 4, 6, 3]` for ResNet-50. Fewer than 4
   * entries build only the first stages (torchvision models cut after
   * `layer2`, say); {@linkcode ResNet.forward} then returns the outputs of the
   * stages after the first that exist.
   */
  layers: readonly number[];
  /** Width of the stem and the first stage (64 in ResNet-50); each stage doubles it. */
  baseWidth: number;
  /**
   * torchvision's `width_per_group`: a bottleneck's inner width is
   * `planes * widthPerGroup / 64` (default 64, the stock ResNets; 128 for
   * Wide ResNet-50-2). Basic blocks ignore it, as torchvision requires 64.
   */
  widthPerGroup?: number;
  /** Stem convolution size: 7 (ImageNet models) or 3 (small inputs). */
  stemKernel: 7 | 3;
  /** Normalisation layers. */
  norm: NormKind;
  /** Groups of group normalisation (default 32). */
  normGroups?: number;
  /** Stages whose parameters are frozen: 0 none, 1 the stem, 2 the stem and stage 1, ... */
  frozenStages: number;
  /**
   * A torchvision (`.pth`) or timm (`.safetensors`) ResNet file whose weights
   * the trainer loads after building the model and before the first step
   * (`deno task train --pretrained FILE` overrides it).
   */
  pretrained?: string;
}

/** ResNet-50 as in torchvision (frozen BN and stem + stage 1, as the detectors train it). */
export const RESNET50: ResNetConfig = {
  block: "bottleneck",
  layers: [3, 4, 6, 3],
  baseWidth: 64,
  stemKernel: 7,
  norm: "frozen_batch",
  frozenStages: 2,
};

interface Parts {
  rng: Rng;
  backend?: Backend;
  norm: NormKind;
  groups: number;
}

function conv(cin: number, cout: number, k: number, stride: number, parts: Parts): Conv2d {
  const layer = new Conv2d(cin, cout, k, {
    rng: parts.rng,
    stride,
    padding: (k - 1) >> 1,
    bias: false,
    backend: parts.backend,
  });
  kaimingNormal(layer.weight, parts.rng, { mode: "fan_out", nonlinearity: "relu" });
  return layer;
}

/** One residual block, basic or bottleneck. */
class ResidualBlock extends Module {
  readonly #path: [Conv2d, NormLayer][] = [];
  readonly #shortcut: [Conv2d, NormLayer] | null = null;

  constructor(
    kind: "basic" | "bottleneck",
    cin: number,
    planes: number,
    stride: number,
    parts: Parts,
    widthPerGroup = 64,
  ) {
    super();
    const cout = kind === "basic" ? planes : planes * 4;
    const width = kind === "basic" ? planes : Math.floor(planes * widthPerGroup / 64);
    const specs: [number, number, number, number][] = kind === "basic"
      ? [[cin, width, 3, stride], [width, width, 3, 1]]
      : [[cin, width, 1, 1], [width, width, 3, stride], [width, cout, 1, 1]];
    specs.forEach(([i, o, k, s], n) => {
      const c = this.registerModule(`conv${n + 1}`, conv(i, o, k, s, parts));
      const b = this.registerModule(
        `bn${n + 1}`,
        normLayer(parts.norm, o, parts.groups, parts.backend),
      );
      this.#path.push([c, b]);
    });
    if (stride !== 1 || cin !== cout) {
      this.#shortcut = [
        this.registerModule("downsample_conv", conv(cin, cout, 1, stride, parts)),
        this.registerModule(
          "downsample_bn",
          normLayer(parts.norm, cout, parts.groups, parts.backend),
        ),
      ];
    }
  }

  forward(x: Tensor): Tensor {
    let y = x;
    this.#path.forEach(([c, b], n) => {
      y = b.forward(c.forward(y), { relu: n < this.#path.length - 1 });
    });
    const identity = this.#shortcut ? this.#shortcut[1].forward(this.#shortcut[0].forward(x)) : x;
    return relu(add(y, identity));
  }
}

/** A sequence of residual blocks. */
class Stage extends Module {
  readonly blocks: ResidualBlock[] = [];
  constructor(config: ResNetConfig, index: number, cin: number, parts: Parts) {
    super();
    const width = config.baseWidth * 2 ** index;
    let channels = cin;
    for (let b = 0; b < config.layers[index]; b++) {
      const block = new ResidualBlock(
        config.block,
        channels,
        width,
        b === 0 && index > 0 ? 2 : 1,
        parts,
        config.widthPerGroup,
      );
      this.blocks.push(this.registerModule(`${b}`, block));
      channels = config.block === "basic" ? width : width * 4;
    }
  }
  forward(x: Tensor): Tensor {
    return this.blocks.reduce((y, block) => block.forward(y), x);
  }
}

/**
 * A ResNet returning the outputs of its stages after the first, `[C3, C4, C5]`
 * for 4 stages.
 *
 * @example A tiny ResNet
 * ```ts ignore
 * import { ResNet } from "./resnet.ts";
 * import { Rng } from "../../tensor/rng.ts";
 * const net = new ResNet({ ...RESNET50, block: "basic", layers: [1, 1, 1, 1], baseWidth: 8 }, new Rng(0));
 * console.log(net.outChannels); // [16, 32, 64]
 * ```
 */
export class ResNet extends Module<Tensor, Tensor[]> {
  /** Channels of `[C3, C4, C5]` (of the outputs of stages 2.. that exist). */
  readonly outChannels: number[];
  /** Channels of every stage's output, `[C2, C3, C4, C5]` for 4 stages. */
  readonly stageChannels: number[];
  readonly #stem: [Conv2d, NormLayer];
  readonly #pool = new MaxPool2d(3, { stride: 2, padding: 1 });
  readonly #stages: Stage[] = [];

  /** Builds the network with weights from `rng`. */
  constructor(readonly config: ResNetConfig, rng: Rng, backend?: Backend) {
    super();
    const stages = config.layers.length;
    if (stages < 1 || stages > 4 || !config.layers.every((n) => Number.isInteger(n) && n >= 1)) {
      throw new RangeError(
        `ResNet: layers must hold 1 to 4 positive block counts, got [${config.layers.join(", ")}]`,
      );
    }
    const parts = { rng, backend, norm: config.norm, groups: config.normGroups ?? 32 };
    this.#stem = [
      this.registerModule("conv1", conv(3, config.baseWidth, config.stemKernel, 2, parts)),
      this.registerModule("bn1", normLayer(config.norm, config.baseWidth, parts.groups, backend)),
    ];
    let channels = config.baseWidth;
    const expansion = config.block === "basic" ? 1 : 4;
    for (let s = 0; s < stages; s++) {
      this.#stages.push(
        this.registerModule(`layer${s + 1}`, new Stage(config, s, channels, parts)),
      );
      channels = config.baseWidth * 2 ** s * expansion;
    }
    this.stageChannels = config.layers.map((_, s) => config.baseWidth * 2 ** s * expansion);
    this.outChannels = this.stageChannels.slice(1);
    const frozen: AnyModule[] = [];
    if (config.frozenStages >= 1) frozen.push(this.#stem[0], this.#stem[1]);
    for (let s = 0; s < Math.min(config.frozenStages - 1, stages); s++) {
      frozen.push(this.#stages[s]);
    }
    for (const m of frozen) for (const p of m.parameters()) p.requiresGrad = false;
  }

  /** `[C3, C4, C5]` of `images` `[N, 3, H, W]` (the outputs of stages 2.. that exist). */
  forward(images: Tensor): Tensor[] {
    return this.forwardStages(images).slice(2);
  }

  /**
   * Every stage's output, as torchvision names them: `[stem, layer1, layer2,
   * ...]`, where `stem` is `maxpool(relu(bn1(conv1(images))))` (stride 4) and
   * `layerK` has stride `2 ** (K + 1)`.
   */
  forwardStages(images: Tensor): Tensor[] {
    let x = this.#stem[1].forward(this.#stem[0].forward(images), { relu: true });
    x = this.#pool.forward(x);
    const outs: Tensor[] = [x];
    for (const stage of this.#stages) {
      x = stage.forward(x);
      outs.push(x);
    }
    return outs;
  }
}
