/**
 * Weight initialisers. Each fills an existing tensor in place (on its
 * backend) from an explicit {@linkcode Rng} and returns it.
 *
 * @example
 * ```ts
 * import { kaimingNormal } from "./init.ts";
 * import { Rng } from "../rng.ts";
 * import { empty } from "../tensor.ts";
 * import { cpu } from "../device.ts";
 * const w = kaimingNormal(empty([16, 3, 3, 3], "f32", cpu()), new Rng(0));
 * console.log(w.shape); // [16, 3, 3, 3], std ~ sqrt(2 / 27)
 * ```
 *
 * @module
 */

import type { Rng } from "../rng.ts";
import { castArray, type Tensor, tensor } from "../tensor.ts";

/** Which fan a Kaiming initialiser scales by. */
export type FanMode = "fan_in" | "fan_out";

/** Options of the Kaiming initialisers. */
export interface KaimingOptions {
  /** Negative slope of the leaky ReLU that follows (0: ReLU). */
  a?: number;
  /** Scale by the fan in (default, preserves forward variance) or fan out. */
  mode?: FanMode;
  /** `"relu"`/`"leaky_relu"` (gain `sqrt(2 / (1 + a^2))`, default) or `"linear"` (gain 1). */
  nonlinearity?: "relu" | "leaky_relu" | "linear";
}

/** Fan in and fan out of a weight `[out, in, ...kernel]` (or `[out, in]`). */
export function fans(shape: readonly number[]): [number, number] {
  if (shape.length < 2) {
    throw new TypeError(`fans: a weight needs at least 2 dimensions, got [${shape.join(", ")}]`);
  }
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return [shape[1] * receptive, shape[0] * receptive];
}

function assign(t: Tensor, draw: () => number): Tensor {
  if (t.dtype !== "f32" && t.dtype !== "f64") {
    throw new TypeError(`init: cannot fill a ${t.dtype} tensor [${t.shape.join(", ")}]`);
  }
  const values = new Float64Array(t.size);
  for (let i = 0; i < values.length; i++) values[i] = draw();
  const fresh = tensor(castArray(values, t.dtype), t.shape, { backend: t.backend });
  t.swapStorage(fresh);
  fresh.dispose();
  return t;
}

function gainOf(opts: KaimingOptions): number {
  const a = opts.a ?? 0;
  return opts.nonlinearity === "linear" ? 1 : Math.sqrt(2 / (1 + a * a));
}

function fanOf(t: Tensor, mode: FanMode = "fan_in"): number {
  const [fanIn, fanOut] = fans(t.shape);
  const fan = mode === "fan_in" ? fanIn : fanOut;
  if (fan === 0) throw new RangeError(`init: tensor [${t.shape.join(", ")}] has a zero ${mode}`);
  return fan;
}

/** Fills `t` with `N(0, gain^2 / fan)` (He et al.). */
export function kaimingNormal(t: Tensor, rng: Rng, opts: KaimingOptions = {}): Tensor {
  const std = gainOf(opts) / Math.sqrt(fanOf(t, opts.mode));
  return assign(t, () => rng.normal(0, std));
}

/** Fills `t` with `U(-b, b)`, `b = gain * sqrt(3 / fan)` (He et al.). */
export function kaimingUniform(t: Tensor, rng: Rng, opts: KaimingOptions = {}): Tensor {
  const bound = gainOf(opts) * Math.sqrt(3 / fanOf(t, opts.mode));
  return assign(t, () => rng.uniform(-bound, bound));
}

/** Fills `t` with `N(mean, std^2)`. */
export function normal(t: Tensor, rng: Rng, mean = 0, std = 1): Tensor {
  return assign(t, () => rng.normal(mean, std));
}

/** Fills `t` with `U(lo, hi)`. */
export function uniform(t: Tensor, rng: Rng, lo = 0, hi = 1): Tensor {
  return assign(t, () => rng.uniform(lo, hi));
}

/** Fills `t` with `value`. */
export function constant(t: Tensor, value: number): Tensor {
  return assign(t, () => value);
}

/** Fills `t` with zeros. */
export function zeros(t: Tensor): Tensor {
  return constant(t, 0);
}

/**
 * Fills `t` with `U(-b, b)`, `b = gain * sqrt(6 / (fanIn + fanOut))` (Glorot & Bengio;
 * PyTorch's `xavier_uniform_`).
 */
export function xavierUniform(t: Tensor, rng: Rng, gain = 1): Tensor {
  const [fanIn, fanOut] = fans(t.shape);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return assign(t, () => rng.uniform(-bound, bound));
}
