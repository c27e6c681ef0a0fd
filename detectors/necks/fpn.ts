/**
 * Feature Pyramid Network (Lin et al., 2017) as the ATSS family uses it:
 * lateral 1x1 convolutions on C3–C5, a top-down path with nearest 2x
 * upsampling, 3x3 output convolutions, and extra levels P6, P7 made by stride-2
 * convolutions on the P5 output (`add_extra_convs = "on_output"`).
 *
 * @module
 */

import type { Backend } from "../../tensor/backend.ts";
import { Conv2d } from "../../tensor/nn/conv.ts";
import { Module } from "../../tensor/nn/module.ts";
import { add } from "../../tensor/ops/elementwise.ts";
import { upsampleNearest2d } from "../../tensor/ops/pool.ts";
import type { Rng } from "../../tensor/rng.ts";
import type { Tensor } from "../../tensor/tensor.ts";

/**
 * An FPN from backbone features `[C3, C4, C5]` to `numOuts` levels `[P3, ...]`.
 * Inputs must have sizes that halve exactly (pad images to a multiple of 32).
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
    for (let k = inChannels.length; k < numOuts; k++) {
      this.#extra.push(
        this.registerModule(
          `extra${k}`,
          new Conv2d(outChannels, outChannels, 3, { rng, stride: 2, padding: 1, backend }),
        ),
      );
    }
  }

  /** The pyramid `[P3, ..., P(3 + numOuts - 1)]`. */
  forward(features: Tensor[]): Tensor[] {
    const laterals = features.map((f, k) => this.#lateral[k].forward(f));
    for (let k = laterals.length - 1; k > 0; k--) {
      laterals[k - 1] = add(laterals[k - 1], upsampleNearest2d(laterals[k], 2));
    }
    const outs = laterals.map((l, k) => this.#output[k].forward(l));
    for (const conv of this.#extra) outs.push(conv.forward(outs[outs.length - 1]));
    return outs;
  }
}
