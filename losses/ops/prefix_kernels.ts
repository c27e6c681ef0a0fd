/**
 * Prefix sums and ramp sums for the ranking-loss ops: the pieces that replace the pairwise
 * `P x P` and `P x L` loops by lookups.
 *
 * A *row buffer* `x` holds `n` rows of `C` channels (`x[j C + c]`); its *prefix* `g` holds
 * `n + 1` rows of `C` double-single pairs, `g[(j C + c) 2 + {0, 1}]` = high and low part of
 * `Σ_{b < j} x[b C + c]` (exact to about 2^-48 relative, so that a range sum `g[v] - g[u]`
 * keeps its precision when `u` and `v` are far from the start). The length `n` lives on the
 * device (`info[slot] + add`), so nothing is read back.
 *
 * A *ramp sum* is `Σ_{b ∈ [u, v)} val_b H(key_b - x)` (up) or `Σ val_b H(x - key_b)` (down)
 * over a range whose keys descend; channels `c` and `c + 1` of its prefix hold `val` and
 * `val · key`. `H` is a clamped ramp of half-width `δ`, so the range splits by two binary
 * searches into a part where `H = 1`, a ramp part (linear in `key`), and a part where `H = 0`.
 *
 * @module
 */

import type { DType } from "../../tensor/dtype.ts";
import { entryPoint, type Kernel, kernelCache, LOOP_BUDGET } from "../../tensor/kernel.ts";
import { partitionPoint } from "../reference/common.ts";

/** Lanes of the one-workgroup scan. */
const SCAN_WG = 256;
/** Longest row buffer the scan handles (each lane walks at most `LOOP_BUDGET` rows, twice). */
export const MAX_SCAN_ROWS: number = SCAN_WG * LOOP_BUDGET;

const cached = kernelCache();

type Params = Record<string, number>;

/** Associative operator of a scan: `sum` (double-single) or `max` (low parts 0). */
export type ScanOp = "sum" | "max";

const DS_WGSL = `
fn two_sum(a: f32, b: f32) -> vec2<f32> {
  let s = a + b;
  let bb = s - a;
  return vec2<f32>(s, (a - (s - bb)) + (b - bb));
}
fn ds_add(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let t = two_sum(a.x, b.x);
  let e = t.y + a.y + b.y;
  let hi = t.x + e;
  return vec2<f32>(hi, e - (hi - t.x));
}`;

/**
 * Exclusive scan of a row buffer by one workgroup: each lane folds a contiguous chunk, lane 0
 * scans the lane totals, each lane writes its chunk's prefixes. Row count `n = info[slot] +
 * add` (at most {@linkcode MAX_SCAN_ROWS}); nothing is written when `info[4] == 0`.
 */
export function scanKernel(f: DType, channels: number, op: ScanOp): Kernel {
  const C = channels;
  const sum = op === "sum";
  return cached(`scan|${f}|${C}|${op}`, () => ({
    label: `rank_ops.scan_${op}${C}`,
    inputs: { x: f, info: "u32" },
    outputs: { g: f },
    params: { slot: "u32", add: "u32" },
    workgroupSize: SCAN_WG,
    code: `${DS_WGSL}
var<workgroup> lanes: array<vec2<f32>, ${(SCAN_WG + 1) * C}>;
fn fold(a: vec2<f32>, b: f32) -> vec2<f32> {
  ${sum ? "return ds_add(a, vec2<f32>(b, 0.0));" : "return vec2<f32>(max(a.x, b), 0.0);"}
}
fn join(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  ${sum ? "return ds_add(a, b);" : "return vec2<f32>(max(a.x, b.x), 0.0);"}
}
${entryPoint(SCAN_WG)}
  let n = info[p.slot] + p.add;
  let ok = info[4] != 0u;
  let chunk = (n + ${SCAN_WG - 1}u) / ${SCAN_WG}u;
  let start = min(n, i * chunk);
  let stop = min(n, start + chunk);
  let zero = vec2<f32>(${sum ? "0.0" : "-3.4e38"}, 0.0);
  var acc: array<vec2<f32>, ${C}>;
  for (var c = 0u; c < ${C}u; c++) { acc[c] = zero; }
  if (ok) {
    for (var j = start; j < stop; j++) {
      ${
      Array.from({ length: C }, (_, c) => `acc[${c}u] = fold(acc[${c}u], x[j * ${C}u + ${c}u]);`)
        .join("\n      ")
    }
    }
  }
  for (var c = 0u; c < ${C}u; c++) { lanes[i * ${C}u + c] = acc[c]; }
  workgroupBarrier();
  if (i == 0u) {
    var run: array<vec2<f32>, ${C}>;
    for (var c = 0u; c < ${C}u; c++) { run[c] = zero; }
    for (var l = 0u; l < ${SCAN_WG}u; l++) {
      for (var c = 0u; c < ${C}u; c++) {
        let v = lanes[l * ${C}u + c];
        lanes[l * ${C}u + c] = run[c];
        run[c] = join(run[c], v);
      }
    }
    for (var c = 0u; c < ${C}u; c++) { lanes[${SCAN_WG}u * ${C}u + c] = run[c]; }
  }
  workgroupBarrier();
  if (!ok) { return; }
  for (var c = 0u; c < ${C}u; c++) { acc[c] = lanes[i * ${C}u + c]; }
  for (var j = start; j < stop; j++) {
    ${
      Array.from({ length: C }, (_, c) =>
        `g[(j * ${C}u + ${c}u) * 2u] = acc[${c}u].x;
    g[(j * ${C}u + ${c}u) * 2u + 1u] = acc[${c}u].y;
    acc[${c}u] = fold(acc[${c}u], x[j * ${C}u + ${c}u]);`).join("\n    ")
    }
  }
  if (i == 0u) {
    for (var c = 0u; c < ${C}u; c++) {
      let total = lanes[${SCAN_WG}u * ${C}u + c];
      g[(n * ${C}u + c) * 2u] = total.x;
      g[(n * ${C}u + c) * 2u + 1u] = total.y;
    }
  }
}`,
    cpu(ins, outs, p) {
      const { slot, add } = p as Params;
      const info = ins.info;
      if (info[4] === 0) return;
      const n = info[slot] + add;
      const x = ins.x, g = outs.g;
      const single = g instanceof Float32Array;
      for (let c = 0; c < C; c++) {
        let run = sum ? 0 : -3.4e38;
        for (let j = 0; j <= n; j++) {
          const at = (j * C + c) * 2;
          g[at] = run;
          g[at + 1] = sum && single ? run - Math.fround(run) : 0;
          if (j < n) run = sum ? run + x[j * C + c] : Math.max(run, x[j * C + c]);
        }
      }
    },
  }));
}

/**
 * WGSL `fn NAME(u: u32, v: u32, ARGS) -> u32`, the binary search of `partitionPoint`
 * (`losses/reference/common.ts`, its JS twin): the first index in `[u, v)` where `holds` (a WGSL
 * condition over `mid` and the arguments `args`, true on a prefix of the range) is false.
 */
export function partitionPointWgsl(name: string, args: string, holds: string): string {
  return `
fn ${name}(u: u32, v: u32${args ? `, ${args}` : ""}) -> u32 {
  var lo = u;
  var hi = v;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    if (${holds}) { lo = mid + 1u; } else { hi = mid; }
  }
  return lo;
}`;
}

/**
 * WGSL searches over the keys `key`, descending within `[u, v)`: `<name>_ge(u, v, x)` = `u` +
 * the number of keys `>= x` there, `<name>_gt` the same for `> x`.
 */
export function searchWgsl(name: string, key: string): string {
  return partitionPointWgsl(`${name}_ge`, "x: f32", `${key}[mid] >= x`) +
    partitionPointWgsl(`${name}_gt`, "x: f32", `${key}[mid] > x`);
}

/**
 * JS twin of the searches of {@linkcode searchWgsl}: `u` + the keys in `[u, v)` `>= x` (`> x`
 * when `strict`).
 *
 * @example
 * ```ts
 * import { countFrom } from "./prefix_kernels.ts";
 * import assert from "node:assert/strict";
 *
 * const keys = [5, 3, 3, 1];
 * assert.equal(countFrom(keys, 0, 4, 3, false), 3);
 * assert.equal(countFrom(keys, 0, 4, 3, true), 1);
 * ```
 */
export function countFrom(
  key: ArrayLike<number>,
  u: number,
  v: number,
  x: number,
  strict: boolean,
): number {
  return strict
    ? partitionPoint(u, v, (k) => key[k] > x)
    : partitionPoint(u, v, (k) => key[k] >= x);
}

/**
 * WGSL ramp-sum helpers over the descending keys `key` and the prefix `g` (`C` channels),
 * named `<name>_up`, `<name>_down`, `<name>_sum` (plus the searches). Reads `p.delta`.
 */
export function rampWgsl(name: string, key: string, g: string, C: number): string {
  return `${searchWgsl(name, key)}
fn ${name}_sum(u: u32, v: u32, c: u32) -> f32 {
  let a = (v * ${C}u + c) * 2u;
  let b = (u * ${C}u + c) * 2u;
  return (${g}[a] - ${g}[b]) + (${g}[a + 1u] - ${g}[b + 1u]);
}
fn ${name}_up(u: u32, v: u32, x: f32, c: u32) -> f32 {
  if (p.delta == 0.0) { return ${name}_sum(u, ${name}_ge(u, v, x), c); }
  let j1 = ${name}_ge(u, v, x + p.delta);
  let j2 = ${name}_gt(j1, v, x - p.delta);
  let sv = ${name}_sum(j1, j2, c);
  return ${name}_sum(u, j1, c) + (${name}_sum(j1, j2, c + 1u) - x * sv) / (2.0 * p.delta) + 0.5 * sv;
}
fn ${name}_down(u: u32, v: u32, x: f32, c: u32) -> f32 {
  if (p.delta == 0.0) { return ${name}_sum(${name}_gt(u, v, x), v, c); }
  let j1 = ${name}_ge(u, v, x + p.delta);
  let j2 = ${name}_gt(j1, v, x - p.delta);
  let sv = ${name}_sum(j1, j2, c);
  return ${name}_sum(j2, v, c) + (x * sv - ${name}_sum(j1, j2, c + 1u)) / (2.0 * p.delta) + 0.5 * sv;
}`;
}

/**
 * JS twin of {@linkcode rampWgsl}: the same sums over typed arrays.
 *
 * @example Σ H(key - 1) over keys [3, 1.2, 0.9, -2] with δ = 0.5 (values 1)
 * ```ts
 * import { RampSums } from "./prefix_kernels.ts";
 * import assert from "node:assert/strict";
 *
 * const keys = [3, 1.2, 0.9, -2];
 * // Prefix of the rows [1, key] as double-single pairs (low parts 0 in float64).
 * const g: number[] = [];
 * let count = 0, sum = 0;
 * for (let j = 0; j <= keys.length; j++) {
 *   g.push(count, 0, sum, 0);
 *   if (j < keys.length) (count += 1, sum += keys[j]);
 * }
 * const ramp = new RampSums(keys, g, 2, 0.5);
 * // H(2) = 1, H(0.2) = 0.7, H(-0.1) = 0.4, H(-3) = 0.
 * assert.ok(Math.abs(ramp.up(0, 4, 1, 0) - 2.1) < 1e-12);
 * ```
 */
export class RampSums {
  readonly #key: ArrayLike<number>;
  readonly #g: ArrayLike<number>;
  readonly #channels: number;
  readonly #delta: number;
  readonly #round: (x: number) => number;

  /**
   * @param key Keys, descending within every queried range.
   * @param g Double-single prefix of the rows (`C` channels).
   * @param channels `C`.
   * @param delta `δ >= 0`.
   */
  constructor(key: ArrayLike<number>, g: ArrayLike<number>, channels: number, delta: number) {
    this.#key = key;
    this.#g = g;
    this.#channels = channels;
    this.#delta = delta;
    this.#round = key instanceof Float32Array ? Math.fround : (x: number) => x;
  }

  /** `u` + the number of keys in `[u, v)` that are `>= x`. */
  ge(u: number, v: number, x: number): number {
    return countFrom(this.#key, u, v, x, false);
  }

  /** `u` + the number of keys in `[u, v)` that are `> x`. */
  gt(u: number, v: number, x: number): number {
    return countFrom(this.#key, u, v, x, true);
  }

  /** `Σ_{b ∈ [u, v)} x[b C + c]`. */
  sum(u: number, v: number, c: number): number {
    const g = this.#g, a = (v * this.#channels + c) * 2, b = (u * this.#channels + c) * 2;
    return (g[a] - g[b]) + (g[a + 1] - g[b + 1]);
  }

  /** `Σ_{b ∈ [u, v)} val_b H(key_b - x)` with `val` in channel `c`, `val · key` in `c + 1`. */
  up(u: number, v: number, x: number, c: number): number {
    const d = this.#delta;
    if (d === 0) return this.sum(u, this.ge(u, v, x), c);
    const j1 = this.ge(u, v, this.#round(x + d));
    const j2 = this.gt(j1, v, this.#round(x - d));
    const sv = this.sum(j1, j2, c);
    return this.sum(u, j1, c) + (this.sum(j1, j2, c + 1) - x * sv) / (2 * d) + 0.5 * sv;
  }

  /** `Σ_{b ∈ [u, v)} val_b H(x - key_b)` with `val` in channel `c`, `val · key` in `c + 1`. */
  down(u: number, v: number, x: number, c: number): number {
    const d = this.#delta;
    if (d === 0) return this.sum(this.gt(u, v, x), v, c);
    const j1 = this.ge(u, v, this.#round(x + d));
    const j2 = this.gt(j1, v, this.#round(x - d));
    const sv = this.sum(j1, j2, c);
    return this.sum(j2, v, c) + (x * sv - this.sum(j1, j2, c + 1)) / (2 * d) + 0.5 * sv;
  }
}
