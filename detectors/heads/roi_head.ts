/**
 * The box head of the two-stage detectors (mmdetection's `Shared2FCBBoxHead`,
 * kept by the rank-based `RankBasedShared2FCBBoxHead`; docs/departures.md, R3
 * and R4) and the RoI feature extractor in front of it
 * (`SingleRoIExtractor`: each RoI pooled by {@linkcode roiAlign} from the
 * pyramid level {@linkcode mapRoiLevels} gives it).
 *
 * The head flattens the pooled features `[K, C, 7, 7]`, runs two shared fully
 * connected layers (1024, ReLU each), then a **sigmoid** classifier with `C`
 * outputs (no background logit) and a regressor with `4C` class-specific
 * deltas (`4` when class-agnostic, as in Cascade R-CNN). Initialisation as
 * mmdetection's: the shared layers Xavier-uniform with zero biases
 * (`ConvFCBBoxHead`'s `Xavier(distribution="uniform")` on `shared_fcs`), the
 * classifier `N(0, 0.01)` and the regressor `N(0, 0.001)` with zero biases
 * (`BBoxHead`'s `Normal` on `fc_cls` / `fc_reg`).
 *
 * @module
 */

import { mapRoiLevels } from "../../boxes/roi_levels.ts";
import type { Backend } from "../../tensor/backend.ts";
import { defaultDevice } from "../../tensor/device.ts";
import { constant, fans, normal, uniform } from "../../tensor/nn/init.ts";
import { Linear } from "../../tensor/nn/linear.ts";
import { Module } from "../../tensor/nn/module.ts";
import { concat } from "../../tensor/ops/concat.ts";
import { zeros } from "../../tensor/ops/creation.ts";
import { relu } from "../../tensor/ops/elementwise.ts";
import { indexSelect } from "../../tensor/ops/index.ts";
import { roiAlign } from "../../tensor/ops/roi_align.ts";
import { reshape } from "../../tensor/ops/shape.ts";
import type { Rng } from "../../tensor/rng.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";

/** The shape of a {@linkcode Shared2FcBBoxHead}. */
export interface BBoxHeadConfig {
  /** Channels of the pooled features (the FPN's 256). */
  inChannels: number;
  /** Side of the pooled features (7). */
  roiSize: number;
  /** Width of the two shared layers (1024). */
  fcChannels: number;
  /** Object classes `C` (no background class). */
  numClasses: number;
  /** One box per RoI (`4` deltas) instead of one per class (`4C`); Cascade R-CNN's stages. Default false. */
  classAgnostic?: boolean;
  /**
   * A background logit after the `C` class logits, for a softmax classifier
   * (the stock heads' `C + 1` outputs; `loss: "ce"`). Default false.
   */
  background?: boolean;
}

/** What {@linkcode Shared2FcBBoxHead.forward} gives each RoI. */
export interface BBoxHeadOutput {
  /** Classification logits `[K, C]` (sigmoid, no background logit), or `[K, C + 1]` with the background last. */
  cls: Tensor;
  /** Box deltas `[K, 4C]` (class `c` at `4c .. 4c + 3`), or `[K, 4]` when class-agnostic. */
  reg: Tensor;
}

/** Options of {@linkcode multiRoiAlign}. */
export interface MultiRoiAlignOptions {
  /** Output side (mmdetection: 7). */
  outputSize?: number;
  /** Samples per bin; 0 (default): adaptive, as mmdetection's `sampling_ratio=0`. */
  samplingRatio?: number;
  /** Half-pixel alignment; default true (mmcv's `RoIAlign` default). */
  aligned?: boolean;
  /** Scale of the finest level's RoIs (mmdetection's `finest_scale`, 56). */
  finestScale?: number;
}

/**
 * Pools every RoI from its pyramid level (mmdetection's `SingleRoIExtractor`):
 * the level is {@linkcode mapRoiLevels} of the box (finest scale 56, clamped to
 * the given levels), the spatial scale `1 / stride` of that level; the
 * features come back in RoI order.
 *
 * @example Two RoIs on two levels
 * ```ts
 * import { multiRoiAlign } from "./roi_head.ts";
 * import { zeros } from "../../tensor/ops/creation.ts";
 * const feats = [zeros([1, 3, 64, 64]), zeros([1, 3, 32, 32])];
 * const out = multiRoiAlign(feats, Float32Array.of(0, 0, 0, 50, 50, 0, 0, 0, 200, 200), [4, 8]);
 * console.log(out.shape); // [2, 3, 7, 7]
 * ```
 *
 * @param features Pyramid maps `[N, C, H_l, W_l]`, finest first.
 * @param rois `[K * 5]` RoIs: batch index, then xyxy in image coordinates (as {@linkcode RoiTargets.rois}).
 * @param strides Stride of each level (`[4, 8, 16, 32]`).
 * @param options Output size, sampling ratio, alignment, finest scale.
 * @returns `[K, C, S, S]` pooled features.
 * @throws {RangeError} When the levels and strides disagree or `rois` is not a multiple of 5.
 */
export function multiRoiAlign(
  features: readonly Tensor[],
  rois: ArrayLike<number>,
  strides: readonly number[],
  options: MultiRoiAlignOptions = {},
): Tensor {
  const op = "multiRoiAlign";
  if (features.length === 0 || features.length !== strides.length) {
    throw new RangeError(`${op}: ${features.length} feature maps but ${strides.length} strides`);
  }
  if (rois.length % 5 !== 0) {
    throw new RangeError(`${op}: ${rois.length} RoI values are not a multiple of 5`);
  }
  const size = options.outputSize ?? 7;
  const first = features[0], channels = first.shape[1], backend = first.backend;
  const k = rois.length / 5;
  if (k === 0) return zeros([0, channels, size, size], { dtype: first.dtype, backend });
  const boxes = new Float64Array(4 * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < 4; j++) boxes[4 * i + j] = rois[5 * i + 1 + j];
  const levels = mapRoiLevels(boxes, features.length, options.finestScale ?? 56);
  const pooled: Tensor[] = [], order: number[] = [];
  for (let l = 0; l < features.length; l++) {
    const members: number[] = [];
    for (let i = 0; i < k; i++) if (levels[i] === l) members.push(i);
    if (members.length === 0) continue;
    const values = new Float32Array(5 * members.length);
    members.forEach((i, m) => {
      for (let j = 0; j < 5; j++) values[5 * m + j] = rois[5 * i + j];
    });
    const levelRois = tensor(values, [members.length, 5], { dtype: first.dtype, backend });
    pooled.push(roiAlign(features[l], levelRois, {
      outputSize: size,
      spatialScale: 1 / strides[l],
      samplingRatio: options.samplingRatio ?? 0,
      aligned: options.aligned ?? true,
    }));
    order.push(...members);
  }
  const stacked = pooled.length === 1 ? pooled[0] : concat(pooled, 0);
  // stacked row r holds RoI order[r]; RoI i is row inverse[i].
  const inverse = new Uint32Array(k);
  order.forEach((i, r) => inverse[i] = r);
  if (inverse.every((r, i) => r === i)) return stacked;
  return indexSelect(stacked, 0, tensor(inverse, [k], { dtype: "u32", backend }));
}

function xavierUniform(fc: Linear, rng: Rng): Linear {
  const [fanIn, fanOut] = fans(fc.weight.shape);
  const bound = Math.sqrt(6 / (fanIn + fanOut));
  uniform(fc.weight, rng, -bound, bound);
  constant(fc.bias!, 0);
  return fc;
}

function normalInit(fc: Linear, rng: Rng, std: number): Linear {
  normal(fc.weight, rng, 0, std);
  constant(fc.bias!, 0);
  return fc;
}

/** The two shared layers of {@linkcode Shared2FcBBoxHead} (mmdetection's `shared_fcs`). */
class SharedFcs extends Module {
  readonly layers: Linear[];
  constructor(layers: Linear[]) {
    super();
    this.layers = layers;
    layers.forEach((fc, i) => this.registerModule(String(i), fc));
  }
  forward(x: Tensor): Tensor {
    let y = x;
    for (const fc of this.layers) y = relu(fc.forward(y));
    return y;
  }
}

/**
 * mmdetection's `Shared2FCBBoxHead` with a sigmoid classifier (or, with
 * `background`, the stock softmax one of `C + 1` outputs); parameter
 * names follow mmdetection's (`shared_fcs.0`, `shared_fcs.1`, `fc_cls`,
 * `fc_reg`).
 *
 * @example Three RoIs, two classes
 * ```ts
 * import { Shared2FcBBoxHead } from "./roi_head.ts";
 * import { Rng } from "../../tensor/rng.ts";
 * import { zeros } from "../../tensor/ops/creation.ts";
 * const head = new Shared2FcBBoxHead({ inChannels: 4, roiSize: 7, fcChannels: 16, numClasses: 2 }, new Rng(0));
 * const out = head.forward(zeros([3, 4, 7, 7]));
 * console.log(out.cls.shape, out.reg.shape); // [3, 2] [3, 8]
 * ```
 */
export class Shared2FcBBoxHead extends Module<Tensor, BBoxHeadOutput> {
  readonly #shared: SharedFcs;
  readonly #cls: Linear;
  readonly #reg: Linear;

  /** Builds the head with weights from `rng`. */
  constructor(readonly config: BBoxHeadConfig, rng: Rng, backend?: Backend) {
    super();
    const { inChannels, roiSize, fcChannels, numClasses } = config;
    for (const [name, v] of Object.entries({ inChannels, roiSize, fcChannels, numClasses })) {
      if (!(Number.isInteger(v) && v > 0)) {
        throw new RangeError(`Shared2FcBBoxHead: ${name} ${v} is not a positive integer`);
      }
    }
    const device = backend ?? defaultDevice();
    const linear = (i: number, o: number) => new Linear(i, o, { rng, backend: device });
    this.#shared = this.registerModule(
      "shared_fcs",
      new SharedFcs([
        xavierUniform(linear(inChannels * roiSize * roiSize, fcChannels), rng),
        xavierUniform(linear(fcChannels, fcChannels), rng),
      ]),
    );
    this.#cls = this.registerModule(
      "fc_cls",
      normalInit(linear(fcChannels, numClasses + (config.background ? 1 : 0)), rng, 0.01),
    );
    const regOut = config.classAgnostic ? 4 : 4 * numClasses;
    this.#reg = this.registerModule("fc_reg", normalInit(linear(fcChannels, regOut), rng, 0.001));
  }

  /** Logits and deltas of the pooled features `[K, C_in, S, S]`. */
  forward(x: Tensor): BBoxHeadOutput {
    const { inChannels, roiSize } = this.config;
    const want = [inChannels, roiSize, roiSize];
    if (x.rank !== 4 || x.shape.slice(1).some((d, i) => d !== want[i])) {
      throw new TypeError(
        `Shared2FcBBoxHead: expected features [K, ${want.join(", ")}], got [${x.shape.join(", ")}]`,
      );
    }
    const y = this.#shared.forward(reshape(x, [x.shape[0], inChannels * roiSize * roiSize]));
    return { cls: this.#cls.forward(y), reg: this.#reg.forward(y) };
  }
}
