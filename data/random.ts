/**
 * A small seeded generator (mulberry32) for data generation and augmentation,
 * independent of the engine's generator.
 *
 * @example
 * ```ts
 * import { Rng } from "./random.ts";
 * import assert from "node:assert/strict";
 *
 * const a = new Rng(42), b = new Rng(42);
 * assert.equal(a.next(), b.next());
 * assert.ok(a.int(10) < 10);
 * ```
 *
 * @module
 */

/** Seeded pseudo-random numbers (mulberry32, 32-bit state). */
export class Rng {
  #s: number;

  /**
   * Start a generator.
   *
   * @param seed Any integer; equal seeds give equal sequences.
   */
  constructor(seed: number) {
    this.#s = (Math.trunc(seed) ^ 0x9e3779b9) >>> 0;
  }

  /** Next 32-bit unsigned integer. */
  nextUint32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in `[0, 1)`. */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /**
   * Uniform in `[lo, hi)`.
   * @param lo Lower bound.
   * @param hi Upper bound.
   */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /**
   * Uniform integer in `[0, n)`.
   * @param n Exclusive upper bound.
   */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /**
   * A new generator derived from this one's state and `stream` (for
   * independent per-sample streams).
   * @param stream Stream index.
   */
  fork(stream: number): Rng {
    return new Rng((this.nextUint32() ^ Math.imul(stream + 1, 0x85ebca6b)) >>> 0);
  }

  /**
   * Shuffle in place (Fisher-Yates).
   * @param a Array to shuffle.
   * @returns The same array.
   */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }
}
