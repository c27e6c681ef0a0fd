/**
 * Feature Pyramid Network (Lin et al., 2017): lateral 1x1 convolutions on
 * the backbone's outputs, a top-down path with nearest 2x upsampling, 3x3
 * output convolutions, and extra levels above the last one. The ATSS family
 * (C3–C5 in, P3–P7 out) makes them by stride-2 convolutions on the last output
 * (mmdetection's `add_extra_convs = "on_output"`); the R-CNN family (C2–C5 in,
 * P2–P6 out) by subsampling the last output with a stride-2 max pool of size
 * 1 (`add_extra_convs = False`).
 *
 * @module
 */

import type { Backend } from "../../tensor/backend.ts";
import { Conv2d } from "../../tensor/nn/conv.ts";
import { Module } from "../../tensor/nn/module.ts";
import { add } from "../../tensor/ops/elementwise.ts";
import { maxPool2d, upsampleNearest2d } from "../../tensor/ops/pool.ts";
import type { Rng } from "../../tensor/rng.ts";
import type { Tensor } from "../../tensor/tensor.ts";

/** How an {@linkcode Fpn} makes its levels above the backbone's. */
export type FpnExtraLevels = "conv" | "maxpool";

/**
 * An FPN from backbone features (e.g. `[C3, C4, C5]`) to `numOuts` levels
 * (`[P3, ...]`). Inputs must have sizes that halve exactly (pad images to a
 * multiple of 32).
 *
 * @example C2–C5 to P2–P6, the top level by max pooling
 * ```ts
 * import { Fpn } from "./fpn.ts";
 * import { Rng } from "../../tensor/rng.ts";
 * import { zeros } from "../../tensor/ops/creation.ts";
 * const fpn = new Fpn([4, 8], 6, 3, new Rng(0), undefined, "maxpool");
 * const outs = fpn.forward([zeros([1, 4, 8, 8]), zeros([1, 8, 4, 4])]);
 * console.log(outs.map((p) => p.shape)); // [[1, 6, 8, 8], [1, 6, 4, 4], [1, 6, 2, 2]]
 * ```
 */
export class Fpn extends Module<Tensor[], Tensor[]> {
  readonly #lateral: Conv2d[] = [];
  readonly #output: Conv2d[] = [];
  readonly #extra: Conv2d[] = [];

  /** Builds the neck; `inChannels` are the backbone's, all outputs have `outChannels`. */
  constructor(
    inChannels: readonly number[],
    readonly outChannels: number,
    readonly numOuts: number,
    rng: Rng,
    backend?: Backend,
    readonly extraLevels: FpnExtraLevels = "conv",
  ) {
    super();
    inChannels.forEach((c, k) => {
      this.#lateral.push(
        this.registerModule(`lateral${k}`, new Conv2d(c, outChannels, 1, { rng, backend })),
      );
      this.#output.push(
        this.registerModule(
          `fpn${k}`,
          new Conv2d(outChannels, outChannels, 3, { rng, padding: 1, backend }),
        ),
      );
    });
    for (let k = inChannels.length; k < numOuts && extraLevels === "conv"; k++) {
      this.#extra.push(
        this.registerModule(
          `extra${k}`,
          new Conv2d(outChannels, outChannels, 3, { rng, stride: 2, padding: 1, backend }),
        ),
      );
    }
  }

  /** The pyramid, finest level first (`numOuts` levels). */
  forward(features: Tensor[]): Tensor[] {
    const laterals = features.map((f, k) => this.#lateral[k].forward(f));
    for (let k = laterals.length - 1; k > 0; k--) {
      laterals[k - 1] = add(laterals[k - 1], upsampleNearest2d(laterals[k], 2));
    }
    const outs = laterals.map((l, k) => this.#output[k].forward(l));
    for (const conv of this.#extra) outs.push(conv.forward(outs[outs.length - 1]));
    while (outs.length < this.numOuts) {
      outs.push(maxPool2d(outs[outs.length - 1], { kernelSize: 1, stride: 2 }));
    }
    return outs;
  }
}
