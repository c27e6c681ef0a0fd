/**
 * The seeded random number generator every random choice goes through
 * (PCG32, O'Neill's XSH-RR permuted congruential generator), and tensor
 * helpers drawing from it. Nothing here reads a global seed: pass an
 * {@linkcode Rng} explicitly.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import { defaultDevice } from "./device.ts";
import type { DType } from "./dtype.ts";
import { castArray, checkShape, sizeOf, type Tensor, tensor } from "./tensor.ts";

const MUL_HI = 0x5851f42d;
const MUL_LO = 0x4c957f2d;

/** High 32 bits of the 64-bit product of two unsigned 32-bit integers. */
function mulHi32(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return (p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) >>> 0;
}

/**
 * A PCG32 generator: 64-bit state, a selectable stream, 32-bit outputs.
 * Streams from the same seed but different `stream` values are independent.
 *
 * @example Reproducible draws
 * ```ts
 * import { Rng } from "./rng.ts";
 * import assert from "node:assert/strict";
 * const a = new Rng(42), b = new Rng(42);
 * assert.equal(a.nextU32(), b.nextU32());
 * const u = a.uniform();
 * assert.ok(u >= 0 && u < 1);
 * ```
 */
export class Rng {
  #hi = 0;
  #lo = 0;
  #incHi = 0;
  #incLo = 1;
  #spare: number | null = null;

  /**
   * Seeds the generator as `pcg32_srandom(seed, stream)` does.
   *
   * @param seed A non-negative integer below 2^53.
   * @param stream Selects one of 2^63 independent sequences (below 2^53 here).
   */
  constructor(seed: number, stream = 54) {
    for (const [name, v] of [["seed", seed], ["stream", stream]] as const) {
      if (!Number.isSafeInteger(v) || v < 0) {
        throw new RangeError(`Rng: ${name} ${v} is not a non-negative safe integer`);
      }
    }
    // inc = (stream << 1) | 1, as a 64-bit number.
    const sLo = stream % 4294967296, sHi = Math.floor(stream / 4294967296);
    this.#incLo = ((sLo << 1) | 1) >>> 0;
    this.#incHi = ((sHi << 1) | (sLo >>> 31)) >>> 0;
    this.#step();
    const lo = (this.#lo + (seed % 4294967296)) >>> 0;
    const carry = lo < this.#lo ? 1 : 0;
    this.#hi = (this.#hi + Math.floor(seed / 4294967296) + carry) >>> 0;
    this.#lo = lo;
    this.#step();
  }

  #step(): void {
    const hi = this.#hi, lo = this.#lo;
    // state * MUL mod 2^64
    const pLo = Math.imul(lo, MUL_LO) >>> 0;
    const pHi = (mulHi32(lo, MUL_LO) + Math.imul(hi, MUL_LO) + Math.imul(lo, MUL_HI)) >>> 0;
    const nLo = (pLo + this.#incLo) >>> 0;
    const carry = nLo < pLo ? 1 : 0;
    this.#hi = (pHi + this.#incHi + carry) >>> 0;
    this.#lo = nLo;
  }

  /** The next uniformly distributed unsigned 32-bit integer. */
  nextU32(): number {
    const hi = this.#hi, lo = this.#lo;
    this.#step();
    // xorshifted = ((old >> 18) ^ old) >> 27, truncated to 32 bits; rot = old >> 59.
    const xHi = hi ^ (hi >>> 18);
    const xLo = lo ^ ((lo >>> 18) | (hi << 14));
    const xs = ((xLo >>> 27) | (xHi << 5)) >>> 0;
    const rot = hi >>> 27;
    return ((xs >>> rot) | (xs << ((32 - rot) & 31))) >>> 0;
  }

  /** A uniform float in `[lo, hi)` with 53 random bits. */
  uniform(lo = 0, hi = 1): number {
    const a = this.nextU32() >>> 5, b = this.nextU32() >>> 6;
    return lo + (hi - lo) * ((a * 67108864 + b) / 9007199254740992);
  }

  /** A uniform integer in `[0, n)`, without modulo bias. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) {
      throw new RangeError(`Rng.int: bound ${n} is not an integer in [1, 2^32]`);
    }
    if (n === 4294967296) return this.nextU32();
    const limit = 4294967296 - (4294967296 % n);
    let x = this.nextU32();
    while (x >= limit) x = this.nextU32();
    return x % n;
  }

  /** A normally distributed float (Box-Muller; the second value of a pair is cached). */
  normal(mean = 0, std = 1): number {
    if (this.#spare !== null) {
      const z = this.#spare;
      this.#spare = null;
      return mean + std * z;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }

  /** Shuffles `items` in place (Fisher-Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }

  /** A new generator seeded from this one's next outputs, on another stream. */
  fork(): Rng {
    const seed = (this.nextU32() >>> 11) * 4294967296 + this.nextU32();
    const stream = (this.nextU32() >>> 11) * 4294967296 + this.nextU32();
    return new Rng(seed, stream);
  }
}

/** Options for {@linkcode randn} and {@linkcode rand}. */
export interface RandomTensorOptions {
  /** Element type (`f32` or, on the CPU, `f64`); default `f32`. */
  dtype?: DType;
  /** Backend; default the default device. */
  backend?: Backend;
  /** Whether the tensor is a leaf that requires gradients. */
  requiresGrad?: boolean;
}

function randomTensor(
  op: string,
  shape: readonly number[],
  opts: RandomTensorOptions,
  draw: () => number,
): Tensor {
  checkShape(shape, op);
  const dtype = opts.dtype ?? "f32";
  if (dtype !== "f32" && dtype !== "f64") {
    throw new TypeError(`${op}: element type ${dtype} is not a float type`);
  }
  const values = new Float64Array(sizeOf(shape));
  for (let i = 0; i < values.length; i++) values[i] = draw();
  return tensor(castArray(values, dtype), shape, {
    backend: opts.backend ?? defaultDevice(),
    requiresGrad: opts.requiresGrad,
  });
}

/**
 * A tensor of standard normal samples (scaled by `std`, shifted by `mean`).
 *
 * @example
 * ```ts
 * import { randn, Rng } from "./rng.ts";
 * const x = randn([2, 3], new Rng(0));
 * console.log(x.shape); // [2, 3]
 * ```
 */
export function randn(
  shape: readonly number[],
  rng: Rng,
  opts: RandomTensorOptions & { mean?: number; std?: number } = {},
): Tensor {
  const mean = opts.mean ?? 0, std = opts.std ?? 1;
  return randomTensor("randn", shape, opts, () => rng.normal(mean, std));
}

/**
 * A tensor of uniform samples in `[lo, hi)` (default `[0, 1)`).
 *
 * @example
 * ```ts
 * import { rand, Rng } from "./rng.ts";
 * const x = rand([4], new Rng(0), { lo: -1, hi: 1 });
 * console.log(x.shape); // [4]
 * ```
 */
export function rand(
  shape: readonly number[],
  rng: Rng,
  opts: RandomTensorOptions & { lo?: number; hi?: number } = {},
): Tensor {
  const lo = opts.lo ?? 0, hi = opts.hi ?? 1;
  return randomTensor("rand", shape, opts, () => rng.uniform(lo, hi));
}
