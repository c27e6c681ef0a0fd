/**
 * Multi-scale deformable attention (Deformable DETR, Zhu et al. 2021), as the
 * pure-PyTorch reference `ms_deform_attn_core_pytorch` of Deformable-DETR
 * defines it, with gradients for the values, the sampling locations and the
 * attention weights:
 *
 * ```
 * out[n, q, m*D + d] = Σ_l Σ_p A[n, q, m, l, p] ·
 *                      bilinear(V_l[n, :, :, m, d], x·W_l − 0.5, y·H_l − 0.5)
 * ```
 *
 * where `(x, y) = loc[n, q, m, l, p]` are normalised (`(0, 0)` the top-left
 * corner of the map, `(1, 1)` the bottom-right), `V_l` is level `l` of the
 * values (positions `start_l + y·W_l + x`), and the sampler is
 * `grid_sample`'s (zero padding, `align_corners=False`; see `bilinear.ts`: at
 * an integer pixel coordinate the location gradient is one-sided, and at
 * `x·W_l − 0.5 = −1` exactly the output is 0 but the gradient is not, where
 * Deformable-DETR's CUDA kernel would give 0).
 *
 * Three kernels, none with atomics, each looping in passes of at most
 * {@linkcode LOOP_BUDGET} iterations that accumulate:
 * - `msda.forward_c<B>`, one invocation per `B` channels of an output row (`B`
 *   is 4 where `D` is a multiple of 4, else 1: a sample's taps and weights are
 *   found once for 4 channels), over the `L·P` samples of its query and head;
 * - `msda.sample_grad`, one invocation per sample, over the `D` channels of its
 *   head: the gradients of its location and attention weight (the sample and
 *   its slopes are linear in the tap values, so each tap's values are first
 *   summed against the output gradient over the channels);
 * - `msda.value_grad_c<B>`, one invocation per `B` value columns `(n, m, d)`,
 *   which owns those columns' gradient (every level, every position) and adds
 *   into it the four weighted taps of every sample of its image and head,
 *   query by query: a scatter without races or atomics, in a fixed order.
 *   Its cost is `N·M·D/B` invocations of `Lq·L·P` steps, fine for decoder
 *   queries; an encoder with `Lq = S` would want a sort of the taps by
 *   position and a gather instead.
 *
 * The CPU twins (also the native backend's implementation) loop sample by
 * sample with each tap's channels innermost.
 *
 * @module
 */

import { record } from "../autograd.ts";
import type { Backend } from "../backend.ts";
import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache, LOOP_BUDGET } from "../kernel.ts";
import { empty, type Tensor, tensor } from "../tensor.ts";
import {
  BILINEAR_WGSL,
  bilinearFetchWgsl,
  bilinearScatterWgsl,
  BilinearTaps,
  checkCoordinates,
} from "./bilinear.ts";
import { zeros } from "./creation.ts";
import { backendOf, launch, passRanges } from "./launch.ts";

const WORKGROUP = 64;

const PARAMS = {
  total: "u32",
  s: "u32",
  heads: "u32",
  dim: "u32",
  lq: "u32",
  nl: "u32",
  np: "u32",
  lo: "u32",
  hi: "u32",
  accumulate: "u32",
} as const;

type MsdaParams = Record<keyof typeof PARAMS, number>;

/**
 * WGSL: a level's `h, w, start` (from `levels`), the taps of sample `e` on a level, and the
 * offset of a level's first position in the value tensor for image `b`, head `mm`.
 */
const SAMPLE_WGSL = /* wgsl */ `${BILINEAR_WGSL}
struct Level { h: u32, w: u32, start: u32 }

fn level_at(lvl: u32) -> Level {
  return Level(u32(levels[3u * lvl]), u32(levels[3u * lvl + 1u]), u32(levels[3u * lvl + 2u]));
}

fn sample_taps(e: u32, lv: Level) -> Taps {
  let ix = f32(loc[2u * e]) * f32(lv.w) - 0.5;
  let iy = f32(loc[2u * e + 1u]) * f32(lv.h) - 0.5;
  return bilinear_taps(ix, iy, lv.w, lv.h);
}

fn level_base(b: u32, lv: Level, mm: u32) -> u32 {
  return (b * p.s + lv.start) * p.heads * p.dim + mm * p.dim;
}
`;

/**
 * Channels one invocation of `msda.forward` and `msda.value_grad` handles: 4 (a `vec4`, the
 * sample's taps and weights computed once for 4 channels) where `D` is a multiple of 4.
 */
function channelBlock(dim: number): 1 | 4 {
  return dim % 4 === 0 ? 4 : 1;
}

/** The CPU twins' view of the samples: taps of sample `e` and level bases, rounded as the WGSL. */
class Sampler {
  readonly taps: BilinearTaps = new BilinearTaps();
  readonly fr: (v: number) => number;

  constructor(
    readonly loc: ArrayLike<number>,
    readonly levels: ArrayLike<number>,
    readonly p: MsdaParams,
    dtype: DType,
  ) {
    this.fr = dtype === "f32" ? Math.fround : (v: number) => v;
  }

  /** Locates sample `e` on level `lvl`; false when no tap is inside. */
  locate(e: number, lvl: number): boolean {
    const h = this.levels[3 * lvl], w = this.levels[3 * lvl + 1], fr = this.fr;
    const ix = fr(fr(this.loc[2 * e] * w) - 0.5), iy = fr(fr(this.loc[2 * e + 1] * h) - 0.5);
    return this.taps.locate(ix, iy, w, h);
  }

  /** Offset of level `lvl`'s first position of image `b`, head `mm`, in the values. */
  base(b: number, lvl: number, mm: number): number {
    const p = this.p;
    return (b * p.s + this.levels[3 * lvl + 2]) * p.heads * p.dim + mm * p.dim;
  }
}

const cached = kernelCache();

/**
 * `msda.forward_c<block>`: `out [N, Lq, M*D]` from `value [N, S, M, D]`,
 * `loc [N, Lq, M, L, P, 2]`, `aw [N, Lq, M, L, P]` and `levels [L, 3]`, over the samples
 * `[lo, hi)` of `L·P`, added to `out` when `accumulate` is set; `block` channels (1, or 4 where
 * `D` is a multiple of 4) per invocation.
 */
export function msdaForwardKernel(dtype: DType = "f32", block: 1 | 4 = 1): Kernel {
  return cached(`forward|${dtype}|${block}`, () => ({
    label: `msda.forward_c${block}`,
    inputs: { value: dtype, loc: dtype, aw: dtype, levels: "i32" },
    outputs: { out: dtype },
    params: PARAMS,
    workgroupSize: WORKGROUP,
    code: `${SAMPLE_WGSL}${bilinearFetchWgsl("value", block)}
${entryPoint(WORKGROUP)}
  let first = i * ${block}u;
  if (first >= p.total) { return; }
  let dd = first % p.dim;
  let row = first / p.dim;
  let mm = row % p.heads;
  let b = row / (p.heads * p.lq);
  let e0 = row * p.nl * p.np;
  let stride = p.heads * p.dim;
  var acc = vec4<f32>(0.0);
  var lvl = 0xffffffffu;
  var lv: Level;
  var base = 0u;
  for (var j = p.lo; j < p.hi; j++) {
    if (j / p.np != lvl) {
      lvl = j / p.np;
      lv = level_at(lvl);
      base = level_base(b, lv, mm) + dd;
    }
    let t = sample_taps(e0 + j, lv);
    if (!t.hit) { continue; }
    let v = fetch_value(base, stride, t);
    acc += f32(aw[e0 + j]) * ${
      block === 4 ? "(v * bilinear_weights(t))" : "vec4<f32>(dot(v, bilinear_weights(t)))"
    };
  }
  for (var c = 0u; c < ${block}u; c++) {
    var sum = acc[c];
    if (p.accumulate != 0u) { sum += f32(out[first + c]); }
    out[first + c] = sum;
  }
}`,
    cpu: (ins, outs, params) => {
      const p = params as MsdaParams, value = ins.value, aw = ins.aw, out = outs.out;
      const sampler = new Sampler(ins.loc, ins.levels, p, dtype), taps = sampler.taps;
      const stride = p.heads * p.dim, acc = new Float64Array(p.dim);
      for (let row = 0; row < p.total / p.dim; row++) {
        const mm = row % p.heads, b = Math.floor(row / (p.heads * p.lq)), e0 = row * p.nl * p.np;
        acc.fill(0);
        for (let j = p.lo; j < p.hi; j++) {
          const lvl = Math.floor(j / p.np);
          if (!sampler.locate(e0 + j, lvl)) continue;
          const base = sampler.base(b, lvl, mm), a = aw[e0 + j];
          for (let k = 0; k < 4; k++) {
            if (taps.at[k] < 0) continue;
            const wk = a * taps.weights[k], at = base + taps.at[k] * stride;
            for (let dd = 0; dd < p.dim; dd++) acc[dd] += wk * value[at + dd];
          }
        }
        for (let dd = 0; dd < p.dim; dd++) {
          const o = row * p.dim + dd;
          out[o] = (p.accumulate ? out[o] : 0) + acc[dd];
        }
      }
    },
  }));
}

/**
 * `msda.sample_grad`: `dloc [N, Lq, M, L, P, 2]` and `daw [N, Lq, M, L, P]` from the output
 * gradient `g [N, Lq, M*D]`, the values and the samples, over the channels `[lo, hi)`, added to
 * the outputs when `accumulate` is set.
 */
export function msdaSampleGradKernel(dtype: DType = "f32"): Kernel {
  return cached(`sample_grad|${dtype}`, () => ({
    label: "msda.sample_grad",
    inputs: { g: dtype, value: dtype, loc: dtype, aw: dtype, levels: "i32" },
    outputs: { dloc: dtype, daw: dtype },
    params: PARAMS,
    workgroupSize: WORKGROUP,
    code: `${SAMPLE_WGSL}${bilinearFetchWgsl("value")}
${entryPoint(WORKGROUP)}
  if (i >= p.total) { return; }
  let row = i / (p.nl * p.np);
  let lv = level_at((i % (p.nl * p.np)) / p.np);
  let mm = row % p.heads;
  let b = row / (p.heads * p.lq);
  let t = sample_taps(i, lv);
  // The sample and its slopes are linear in the tap values: sum each tap's values times the
  // output gradient over the channels, then combine once.
  var taps = vec4<f32>(0.0);
  if (t.hit) {
    let base = level_base(b, lv, mm);
    let stride = p.heads * p.dim;
    for (var dd = p.lo; dd < p.hi; dd++) {
      taps += f32(g[row * p.dim + dd]) * fetch_value(base + dd, stride, t);
    }
  }
  let slopes = vec2<f32>(dot(bilinear_dx(t), taps), dot(bilinear_dy(t), taps));
  var dl = f32(aw[i]) * slopes * vec2<f32>(f32(lv.w), f32(lv.h));
  var da = dot(bilinear_weights(t), taps);
  if (p.accumulate != 0u) {
    dl += vec2<f32>(f32(dloc[2u * i]), f32(dloc[2u * i + 1u]));
    da += f32(daw[i]);
  }
  dloc[2u * i] = dl.x;
  dloc[2u * i + 1u] = dl.y;
  daw[i] = da;
}`,
    cpu: (ins, outs, params) => {
      const p = params as MsdaParams, g = ins.g, value = ins.value, aw = ins.aw;
      const dloc = outs.dloc, daw = outs.daw, levels = ins.levels;
      const sampler = new Sampler(ins.loc, levels, p, dtype), taps = sampler.taps;
      const stride = p.heads * p.dim, perQuery = p.nl * p.np;
      for (let i = 0; i < p.total; i++) {
        const row = Math.floor(i / perQuery), lvl = Math.floor((i % perQuery) / p.np);
        const mm = row % p.heads, b = Math.floor(row / (p.heads * p.lq));
        let sum = 0, sx = 0, sy = 0;
        if (sampler.locate(i, lvl)) {
          // The sample and its slopes are linear in the tap values: take each tap's values
          // dotted with the output gradient over the channels, then combine once.
          const base = sampler.base(b, lvl, mm), grow = row * p.dim;
          for (let k = 0; k < 4; k++) {
            let u = 0;
            if (taps.at[k] >= 0) {
              const at = base + taps.at[k] * stride;
              for (let dd = p.lo; dd < p.hi; dd++) u += g[grow + dd] * value[at + dd];
            }
            taps.values[k] = u;
          }
          sum = taps.sample();
          sx = taps.slopeX();
          sy = taps.slopeY();
        }
        const a = aw[i];
        const acc = p.accumulate !== 0;
        dloc[2 * i] = (acc ? dloc[2 * i] : 0) + a * sx * levels[3 * lvl + 1];
        dloc[2 * i + 1] = (acc ? dloc[2 * i + 1] : 0) + a * sy * levels[3 * lvl];
        daw[i] = (acc ? daw[i] : 0) + sum;
      }
    },
  }));
}

/**
 * `msda.value_grad_c<block>`: adds into `dvalue [N, S, M, D]` the taps of the samples
 * `[lo, hi)` of `Lq·L·P` (query-major) of each image and head, weighted by the attention weight
 * and the output gradient `g [N, Lq, M*D]`; one invocation per `block` value columns (see the
 * module doc).
 */
export function msdaValueGradKernel(dtype: DType = "f32", block: 1 | 4 = 1): Kernel {
  return cached(`value_grad|${dtype}|${block}`, () => ({
    label: `msda.value_grad_c${block}`,
    inputs: { g: dtype, loc: dtype, aw: dtype, levels: "i32" },
    outputs: { dvalue: dtype },
    params: PARAMS,
    workgroupSize: WORKGROUP,
    code: `${SAMPLE_WGSL}
${entryPoint(WORKGROUP)}
  let first = i * ${block}u;
  if (first >= p.total) { return; }
  let dd = first % p.dim;
  let mm = (first / p.dim) % p.heads;
  let b = first / (p.dim * p.heads);
  let per_query = p.nl * p.np;
  let stride = p.heads * p.dim;
  var lvl = 0xffffffffu;
  var lv: Level;
  var base = 0u;
  for (var j = p.lo; j < p.hi; j++) {
    let k = j % per_query;
    if (k / p.np != lvl) {
      lvl = k / p.np;
      lv = level_at(lvl);
      base = level_base(b, lv, mm) + dd;
    }
    let row = (b * p.lq + j / per_query) * p.heads + mm;
    let t = sample_taps(row * per_query + k, lv);
    if (!t.hit) { continue; }
    let wt = bilinear_weights(t);
    let gr = row * p.dim + dd;
    let gj = f32(aw[row * per_query + k]) * ${
      block === 4
        ? "vec4<f32>(f32(g[gr]), f32(g[gr + 1u]), f32(g[gr + 2u]), f32(g[gr + 3u]))"
        : "f32(g[gr])"
    };
    ${bilinearScatterWgsl("dvalue", "gj", block)}
  }
}`,
    cpu: (ins, outs, params) => {
      const p = params as MsdaParams, g = ins.g, aw = ins.aw, dvalue = outs.dvalue;
      const sampler = new Sampler(ins.loc, ins.levels, p, dtype), taps = sampler.taps;
      const stride = p.heads * p.dim, perQuery = p.nl * p.np;
      const n = p.total / Math.max(p.heads * p.dim, 1);
      for (let b = 0; b < n; b++) {
        for (let j = p.lo; j < p.hi; j++) {
          const q = Math.floor(j / perQuery), k = j % perQuery, lvl = Math.floor(k / p.np);
          for (let mm = 0; mm < p.heads; mm++) {
            const row = (b * p.lq + q) * p.heads + mm, e = row * perQuery + k;
            if (!sampler.locate(e, lvl)) continue;
            const base = sampler.base(b, lvl, mm), a = aw[e], grow = row * p.dim;
            for (let k = 0; k < 4; k++) {
              if (taps.at[k] < 0) continue;
              const wk = a * taps.weights[k], at = base + taps.at[k] * stride;
              for (let dd = 0; dd < p.dim; dd++) dvalue[at + dd] += wk * g[grow + dd];
            }
          }
        }
      }
    },
  }));
}

function shapeOf(shape: readonly (number | string)[]): string {
  return `[${shape.join(", ")}]`;
}

/** Checks the levels against `value [N, S, M, D]`; returns `h, w, start` per level. */
function levelTable(
  op: string,
  value: Tensor,
  spatialShapes: readonly (readonly [number, number])[],
  levelStartIndex: readonly number[],
): Int32Array {
  if (!Array.isArray(spatialShapes) || spatialShapes.length === 0) {
    throw new TypeError(`${op}: spatialShapes must be a non-empty list of [H, W] pairs`);
  }
  const table = new Int32Array(3 * spatialShapes.length);
  let start = 0;
  spatialShapes.forEach((hw, l) => {
    const ok = Array.isArray(hw) && hw.length === 2 &&
      hw.every((v) => Number.isInteger(v) && v >= 1 && v < 2 ** 31);
    if (!ok) {
      throw new RangeError(
        `${op}: spatialShapes[${l}] is ${JSON.stringify(hw)}; expected [H, W], positive integers`,
      );
    }
    table.set([hw[0], hw[1], start], 3 * l);
    start += hw[0] * hw[1];
  });
  const s = value.shape[1];
  if (start !== s) {
    throw new TypeError(
      `${op}: value ${shapeOf(value.shape)} has S = ${s} positions but spatialShapes ${
        JSON.stringify(spatialShapes)
      } hold ${start}`,
    );
  }
  const nl = spatialShapes.length;
  if (!Array.isArray(levelStartIndex) || levelStartIndex.length !== nl) {
    throw new TypeError(
      `${op}: levelStartIndex has ${levelStartIndex?.length} entries for ${nl} levels`,
    );
  }
  levelStartIndex.forEach((v, l) => {
    if (v !== table[3 * l + 2]) {
      throw new RangeError(
        `${op}: levelStartIndex[${l}] is ${v} but level ${l} starts at ${
          table[3 * l + 2]
        } (the sum of H*W over the levels before it)`,
      );
    }
  });
  return table;
}

/**
 * Multi-scale deformable attention: for each query and head, the sum over levels and points
 * of the attention weight times the head's values sampled bilinearly at the sampling location,
 * as Deformable-DETR's `ms_deform_attn_core_pytorch` (see the module doc for the formula and
 * the conventions at pixel centres and borders). Gradients flow to `value`,
 * `samplingLocations` and `attentionWeights`.
 *
 * On the CPU and native backends a NaN sampling location throws; on WebGPU it samples 0.
 *
 * @example One query sampling the centre of a single 2x2 level (one head, one channel)
 * ```ts
 * import { msDeformAttn } from "./ms_deform_attn.ts";
 * import { tensor } from "../tensor.ts";
 * import assert from "node:assert/strict";
 *
 * const value = tensor([1, 2, 3, 4], [1, 4, 1, 1]); // [N, S, M, D], S = 2 * 2
 * const locations = tensor([0.5, 0.5, 0.25, 0.25], [1, 1, 1, 1, 2, 2]); // 2 points
 * const weights = tensor([0.5, 0.5], [1, 1, 1, 1, 2]);
 * const out = msDeformAttn(value, [[2, 2]], [0], locations, weights);
 * assert.deepEqual(out.shape, [1, 1, 1]);
 * assert.deepEqual(Array.from(await out.data()), [0.5 * 2.5 + 0.5 * 1]);
 * ```
 *
 * @param value Values `[N, S, M, D]`, level by level, each level row-major (`f32`, or `f64` on
 *   the CPU).
 * @param spatialShapes `[H, W]` of each of the `L` levels; `S = Σ H·W`.
 * @param levelStartIndex Offset of each level in `S` (the running sum of `H·W`).
 * @param samplingLocations `[N, Lq, M, L, P, 2]`, normalised `(x, y)`, `(0, 0)` the top-left
 *   corner of each level.
 * @param attentionWeights `[N, Lq, M, L, P]`, used as given.
 * @returns `[N, Lq, M*D]` (column `m*D + d` is head `m`, channel `d`).
 */
export function msDeformAttn(
  value: Tensor,
  spatialShapes: readonly (readonly [number, number])[],
  levelStartIndex: readonly number[],
  samplingLocations: Tensor,
  attentionWeights: Tensor,
): Tensor {
  const op = "msDeformAttn";
  if (value.rank !== 4) {
    throw new TypeError(`${op}: expected value [N, S, M, D], got ${shapeOf(value.shape)}`);
  }
  if (value.dtype !== "f32" && value.dtype !== "f64") {
    throw new TypeError(`${op}: expected f32 or f64 but got ${value.dtype} value`);
  }
  const table = levelTable(op, value, spatialShapes, levelStartIndex);
  const [n, s, heads, dim] = value.shape;
  const nl = spatialShapes.length;
  const loc = samplingLocations, aw = attentionWeights;
  if (
    loc.rank !== 6 || loc.shape[0] !== n || loc.shape[2] !== heads || loc.shape[3] !== nl ||
    loc.shape[5] !== 2
  ) {
    throw new TypeError(
      `${op}: samplingLocations must be [N, Lq, M, L, P, 2] = ${
        shapeOf([n, "Lq", heads, nl, "P", 2])
      }, got ${shapeOf(loc.shape)}`,
    );
  }
  const [, lq, , , np] = loc.shape;
  if (aw.shape.join() !== [n, lq, heads, nl, np].join()) {
    throw new TypeError(
      `${op}: attentionWeights must be [N, Lq, M, L, P] = ${
        shapeOf([n, lq, heads, nl, np])
      } (as samplingLocations), got ${shapeOf(aw.shape)}`,
    );
  }
  for (const [name, t] of [["samplingLocations", loc], ["attentionWeights", aw]] as const) {
    if (t.dtype !== value.dtype) {
      throw new TypeError(`${op}: ${name} are ${t.dtype} but the values are ${value.dtype}`);
    }
  }
  const backend = backendOf(op, [value, loc, aw]);
  checkCoordinates(op, "samplingLocations", loc);
  const dtype = value.dtype;
  const params = (total: number, lo = 0, hi = 0, accumulate = false): MsdaParams => ({
    total,
    s,
    heads,
    dim,
    lq,
    nl,
    np,
    lo,
    hi,
    accumulate: accumulate ? 1 : 0,
  });
  const levels = (b: Backend) => tensor(table, [nl, 3], { backend: b });

  const out = empty([n, lq, heads * dim], dtype, backend);
  const lv = levels(backend);
  const block = channelBlock(dim);
  for (const [lo, hi] of passRanges(nl * np, LOOP_BUDGET)) {
    launch(
      msdaForwardKernel(dtype, block),
      [value, loc, aw, lv],
      [out],
      params(out.size, lo, hi, lo > 0),
      groups(out.size / block),
    );
  }
  lv.dispose();
  record(op, [value, loc, aw], [out], ([gy]) => {
    const lv = levels(backend);
    let dvalue: Tensor | null = null, dloc: Tensor | null = null, daw: Tensor | null = null;
    if (value.requiresGrad) {
      dvalue = zeros(value.shape, { dtype, backend });
      const columns = n * heads * dim;
      for (const [lo, hi] of passRanges(lq * nl * np, LOOP_BUDGET)) {
        launch(
          msdaValueGradKernel(dtype, block),
          [gy!, loc, aw, lv],
          [dvalue],
          params(columns, lo, hi),
          groups(columns / block),
        );
      }
    }
    if (loc.requiresGrad || aw.requiresGrad) {
      dloc = empty(loc.shape, dtype, backend);
      daw = empty(aw.shape, dtype, backend);
      for (const [lo, hi] of passRanges(dim, LOOP_BUDGET)) {
        launch(
          msdaSampleGradKernel(dtype),
          [gy!, value, loc, aw, lv],
          [dloc, daw],
          params(aw.size, lo, hi, lo > 0),
          groups(aw.size),
        );
      }
      if (!loc.requiresGrad) {
        dloc.dispose();
        dloc = null;
      }
      if (!aw.requiresGrad) {
        daw.dispose();
        daw = null;
      }
    }
    lv.dispose();
    return [dvalue, dloc, daw];
  });
  return out;
}

function groups(total: number): number {
  return Math.max(1, Math.ceil(total / WORKGROUP));
}
