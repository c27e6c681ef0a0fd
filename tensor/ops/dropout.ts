/**
 * Dropout with a seeded, counter-based mask: each call draws two 32-bit keys
 * from the caller's {@linkcode Rng}, and element `i` is kept when a hash of
 * `(i, keys)` clears the drop threshold. The mask is never stored: the
 * backward pass hashes the same keys again, and WebGPU, the CPU twin and the
 * native backend (which runs the twin) draw the same mask bit for bit.
 *
 * The hash is two rounds of a 32-bit integer finaliser (xor-shift and
 * multiply, the `lowbias32` constants of Wellons' hash prospector); its top 24
 * bits, compared with `round(p * 2^24)`, decide each element.
 *
 * @module
 */

import { record } from "../autograd.ts";
import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import type { Rng } from "../rng.ts";
import type { Tensor } from "../tensor.ts";
import { expectDtype, launchInto } from "./launch.ts";
import { reshape } from "./shape.ts";

const WG = 256;
/** The drop decision compares 24 hash bits with the probability scaled by this. */
const LEVELS = 1 << 24;

const cached = kernelCache();

/** One round of the integer finaliser, as the WGSL computes it. */
function mix(h: number): number {
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h = (h ^ (h >>> 15)) >>> 0;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** Whether element `i` survives under `keys` and drop `threshold` (of 2^24). */
function dropoutKeeps(i: number, key0: number, key1: number, threshold: number): boolean {
  return mix((mix((i ^ key0) >>> 0) + key1) >>> 0) >>> 8 >= threshold;
}

function dropoutKernel(dtype: DType): Kernel {
  return cached(dtype, () => ({
    label: "dropout.apply",
    inputs: { x: dtype },
    outputs: { out: dtype },
    params: { n: "u32", key0: "u32", key1: "u32", threshold: "u32", scale: "f32" },
    workgroupSize: WG,
    code: `fn mix(v: u32) -> u32 {
  var h = v;
  h = h ^ (h >> 16u);
  h = h * 0x7feb352du;
  h = h ^ (h >> 15u);
  h = h * 0x846ca68bu;
  return h ^ (h >> 16u);
}
${entryPoint(WG)}
  if (i >= p.n) { return; }
  let h = mix(mix(i ^ p.key0) + p.key1);
  out[i] = select(0.0, x[i] * p.scale, (h >> 8u) >= p.threshold);
}`,
    cpu(ins, outs, params) {
      const { n, key0, key1, threshold, scale } = params as Record<string, number>;
      const x = ins.x, out = outs.out;
      const s = dtype === "f64" ? scale : Math.fround(scale);
      for (let i = 0; i < n; i++) out[i] = dropoutKeeps(i, key0, key1, threshold) ? x[i] * s : 0;
    },
  }));
}

/**
 * Zeroes each element of `x` with probability `p` and scales the survivors by
 * `1 / (1 - p)` (inverted dropout, as PyTorch's `F.dropout` in training). The
 * mask comes from two draws of `rng`, so the same seed gives the same mask on
 * every backend; the gradient is the upstream gradient under the same mask and
 * scale. `p = 0` returns a view of `x` (still on the tape) and draws nothing;
 * `p = 1` gives zeros. For evaluation, skip the call (the `Dropout` module
 * does so in `eval()` mode).
 *
 * @example
 * ```ts
 * import { dropout } from "./dropout.ts";
 * import { Rng } from "../rng.ts";
 * import { tensor } from "../tensor.ts";
 * const y = dropout(tensor(new Float32Array(8).fill(1)), 0.5, new Rng(0));
 * console.log(await y.data()); // each element 0 or 2
 * ```
 *
 * @param x A float tensor.
 * @param p Drop probability in `[0, 1]`.
 * @param rng The generator the mask's keys are drawn from.
 * @returns A tensor of `x`'s shape.
 */
export function dropout(x: Tensor, p: number, rng: Rng): Tensor {
  expectDtype("dropout", x, ["f32", "f64"]);
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout: probability ${p} is outside [0, 1]`);
  if (p === 0) return reshape(x, x.shape);
  const key0 = rng.nextU32(), key1 = rng.nextU32();
  const params = {
    n: x.size,
    key0,
    key1,
    threshold: Math.min(LEVELS, Math.round(p * LEVELS)),
    scale: p === 1 ? 0 : 1 / (1 - p),
  };
  const apply = (t: Tensor) =>
    launchInto(dropoutKernel(t.dtype), [t], t.shape, t.dtype, params, Math.ceil(t.size / WG));
  const out = apply(x);
  record("dropout", [x], [out], ([g]) => [apply(g!)]);
  return out;
}
