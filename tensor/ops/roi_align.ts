/**
 * RoIAlign (Mask R-CNN, He et al. 2017) on NCHW feature maps, following
 * torchvision's `roi_align` sample for sample: per box, a `PH x PW` grid of
 * bins, each the mean of `gh x gw` bilinear samples (`samplingRatio`, or
 * `ceil(roi_size / output_size)` per axis when it is 0), with torchvision's
 * border rules (a sample beyond `[-1, H]` is 0 and still counts; samples in
 * `[-1, 0)` or `(H - 1, H]` take the border value) and its `aligned` half-pixel
 * offset (legacy mode stretches every box to at least 1x1 feature pixel).
 *
 * Two kernels, `roi_align.forward` (one invocation per output element) and
 * `roi_align.backward` (one invocation per input element). The backward is a
 * gather, so no float atomics are needed: input pixel `(b, c, y, x)` visits the
 * boxes of batch item `b`, and for each box only the samples that can land
 * within one pixel of it. Bilinear weights are separable (the weight of pixel
 * `(y, x)` for a sample is `wy(y) * wx(x)`, and the outside test is a test per
 * axis), so the candidate samples along y and along x are found separately: a
 * range estimated from the box geometry and widened by a margin, then each
 * candidate is weighed with the same arithmetic as the forward pass. The CPU
 * twins are a plain scatter, torchvision's formulation, which a sequential loop
 * runs without races; the WGSL gather is tested against them.
 *
 * @module
 */

import { record } from "../autograd.ts";
import { hostView, isHostBackend } from "../cpu_backend.ts";
import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { empty, type Tensor } from "../tensor.ts";
import { backendOf, launch } from "./launch.ts";

const WORKGROUP = 64;
/** Most adaptive samples per bin along one axis (a bin over 65,536 feature pixels). */
const MAX_GRID = 65536;

/** Options of {@linkcode roiAlign}. */
export interface RoiAlignOptions {
  /** Output bins per box, `[PH, PW]` or one number for both. */
  outputSize: number | readonly [number, number];
  /** Factor from box (image) coordinates to feature coordinates, e.g. `1 / 16`; default 1. */
  spatialScale?: number;
  /** Samples per bin along each axis; 0 (the default) or negative: `ceil(roi_size / output_size)` per box. */
  samplingRatio?: number;
  /** Shift the box by half a pixel so pixel `i` is centred on `i + 0.5` (default `false`, the legacy rule). */
  aligned?: boolean;
}

const PARAMS = {
  total: "u32",
  n: "u32",
  c: "u32",
  h: "u32",
  w: "u32",
  k: "u32",
  oh: "u32",
  ow: "u32",
  scale: "f32",
  ratio: "i32",
  aligned: "u32",
} as const;

type RoiParams = Record<keyof typeof PARAMS, number>;
type Values = { [i: number]: number; length: number };

/** WGSL helpers shared by both kernels: box geometry and the bilinear taps of one axis. */
const GEOMETRY_WGSL = /* wgsl */ `
struct Roi { b: i32, y0: f32, x0: f32, bh: f32, bw: f32, gh: i32, gw: i32 }
struct Tap { lo: i32, hi: i32, wlo: f32, whi: f32 }

// Samples per bin: the ratio, or the exact ceil(size / bins) (the division may be inexact).
fn grid(size: f32, bins: u32) -> i32 {
  if (p.ratio > 0) { return p.ratio; }
  let nb = f32(bins);
  var q = ceil(size / nb);
  if ((q - 1.0) * nb >= size) { q = q - 1.0; }
  if (q * nb < size) { q = q + 1.0; }
  // At most MAX_GRID samples; none for a NaN size (unchecked GPU boxes must not hang the loops).
  if (!(q >= 1.0)) { return 0; }
  return i32(min(q, ${MAX_GRID}.0));
}

fn roi_at(k: u32) -> Roi {
  let r = k * 5u;
  let off = select(0.0, 0.5, p.aligned != 0u);
  let x0 = f32(rois[r + 1u]) * p.scale - off;
  let y0 = f32(rois[r + 2u]) * p.scale - off;
  var rw = f32(rois[r + 3u]) * p.scale - off - x0;
  var rh = f32(rois[r + 4u]) * p.scale - off - y0;
  if (p.aligned == 0u) { rw = max(rw, 1.0); rh = max(rh, 1.0); }
  var b = i32(f32(rois[r]));
  if (f32(rois[r]) < 0.0 || b >= i32(p.n)) { b = -1; }
  return Roi(b, y0, x0, rh / f32(p.oh), rw / f32(p.ow), grid(rh, p.oh), grid(rw, p.ow));
}

// Sample coordinate of sample s (bin s / g, sample s % g) along one axis.
fn sample_at(start: f32, bin: f32, g: i32, s: i32) -> f32 {
  let cell = s / g;
  let sub = s - cell * g;
  return start + f32(cell) * bin + (f32(sub) + 0.5) * bin / f32(g);
}

// The two taps of a sample at v on an axis of size n; lo = -1 when the sample is outside.
fn tap(v0: f32, n: u32) -> Tap {
  if (v0 < -1.0 || v0 > f32(n)) { return Tap(-1, -1, 0.0, 0.0); }
  var v = max(v0, 0.0);
  var lo = i32(floor(v));
  var hi = lo + 1;
  if (lo >= i32(n) - 1) {
    lo = i32(n) - 1;
    hi = lo;
    v = f32(lo);
  }
  let l = v - f32(lo);
  return Tap(lo, hi, 1.0 - l, l);
}
`;

/** Exact `ceil(size / bins)` samples (at most `MAX_GRID`), or the ratio; never negative. */
function gridCpu(size: number, bins: number, ratio: number): number {
  if (ratio > 0) return ratio;
  const q = Math.ceil(size / bins);
  return q >= 1 ? Math.min(q, MAX_GRID) : 0;
}

interface RoiCpu {
  b: number;
  y0: number;
  x0: number;
  bh: number;
  bw: number;
  gh: number;
  gw: number;
}

function roiCpu(rois: Values, k: number, p: RoiParams, fr: (v: number) => number): RoiCpu {
  const r = 5 * k, off = p.aligned ? 0.5 : 0;
  const x0 = fr(fr(rois[r + 1] * p.scale) - off), y0 = fr(fr(rois[r + 2] * p.scale) - off);
  let rw = fr(fr(fr(rois[r + 3] * p.scale) - off) - x0);
  let rh = fr(fr(fr(rois[r + 4] * p.scale) - off) - y0);
  if (!p.aligned) {
    rw = Math.max(rw, 1);
    rh = Math.max(rh, 1);
  }
  const v = rois[r];
  const b = v >= 0 && Math.trunc(v) < p.n ? Math.trunc(v) : -1;
  return {
    b,
    y0,
    x0,
    bh: fr(rh / p.oh),
    bw: fr(rw / p.ow),
    gh: gridCpu(rh, p.oh, p.ratio),
    gw: gridCpu(rw, p.ow, p.ratio),
  };
}

/** `[lo, hi, wlo, whi]` of a sample at `v0` on an axis of size `n`; `lo = -1` outside. */
function tapCpu(v0: number, n: number): [number, number, number, number] {
  if (v0 < -1 || v0 > n) return [-1, -1, 0, 0];
  let v = Math.max(v0, 0);
  let lo = Math.floor(v), hi = lo + 1;
  if (lo >= n - 1) {
    lo = hi = n - 1;
    v = lo;
  }
  const l = v - lo;
  return [lo, hi, 1 - l, l];
}

/**
 * Coordinate of sample `sub` of bin `cell`, rounding each step with `fr` as torchvision's
 * float32 arithmetic does (a sample on the border `x = W` is in, one ulp beyond is out).
 */
function sampleCpu(
  start: number,
  bin: number,
  g: number,
  cell: number,
  sub: number,
  fr: (v: number) => number,
): number {
  return fr(fr(start + fr(cell * bin)) + fr(fr((sub + 0.5) * bin) / g));
}

/**
 * The bilinear taps of every sample of a box along one axis, bin by bin
 * (`bins * g` of them): low and high index (`lo = -1` for a sample outside)
 * and their weights. Computed once per box, shared by every channel.
 */
interface AxisTaps {
  lo: Int32Array;
  hi: Int32Array;
  wlo: Float64Array;
  whi: Float64Array;
}

function axisTaps(
  start: number,
  bin: number,
  g: number,
  bins: number,
  n: number,
  fr: (v: number) => number,
): AxisTaps {
  const count = bins * g;
  const t: AxisTaps = {
    lo: new Int32Array(count),
    hi: new Int32Array(count),
    wlo: new Float64Array(count),
    whi: new Float64Array(count),
  };
  for (let cell = 0, m = 0; cell < bins; cell++) {
    for (let sub = 0; sub < g; sub++, m++) {
      [t.lo[m], t.hi[m], t.wlo[m], t.whi[m]] = tapCpu(sampleCpu(start, bin, g, cell, sub, fr), n);
    }
  }
  return t;
}

/**
 * Every bin's bilinear taps of a box as (offset in a plane, weight) pairs,
 * `taps` slots per bin, four per sample inside the map (the products
 * `hy * hx`, `hy * lx`, `ly * hx`, `ly * lx`), unused slots NaN-weighted.
 * Computed once per box and shared by every channel.
 */
function binTaps(
  r: RoiCpu,
  p: RoiParams,
  fr: (v: number) => number,
): { offsets: Int32Array; weights: Float64Array; taps: number } {
  const ty = axisTaps(r.y0, r.bh, r.gh, p.oh, p.h, fr);
  const tx = axisTaps(r.x0, r.bw, r.gw, p.ow, p.w, fr);
  const taps = 4 * r.gh * r.gw;
  const offsets = new Int32Array(taps * p.oh * p.ow);
  const weights = new Float64Array(taps * p.oh * p.ow).fill(NaN);
  for (let oy = 0; oy < p.oh; oy++) {
    for (let ox = 0; ox < p.ow; ox++) {
      let t = (oy * p.ow + ox) * taps;
      for (let iy = 0, my = oy * r.gh; iy < r.gh; iy++, my++) {
        const ylo = ty.lo[my];
        if (ylo < 0) continue;
        const hy = ty.wlo[my], ly = ty.whi[my];
        const rlo = ylo * p.w, rhi = ty.hi[my] * p.w;
        for (let ix = 0, mx = ox * r.gw; ix < r.gw; ix++, mx++) {
          const xlo = tx.lo[mx];
          if (xlo < 0) continue;
          const xhi = tx.hi[mx], hx = tx.wlo[mx], lx = tx.whi[mx];
          offsets[t] = rlo + xlo, weights[t++] = hy * hx;
          offsets[t] = rlo + xhi, weights[t++] = hy * lx;
          offsets[t] = rhi + xlo, weights[t++] = ly * hx;
          offsets[t] = rhi + xhi, weights[t++] = ly * lx;
        }
      }
    }
  }
  return { offsets, weights, taps };
}

const cached = kernelCache();

/** The `roi_align.forward` kernel: `out [K, C, PH, PW]` from `x [N, C, H, W]` and `rois [K, 5]`. */
export function roiAlignForwardKernel(dtype: DType = "f32"): Kernel {
  return cached(`forward|${dtype}`, () => ({
    label: "roi_align.forward",
    inputs: { x: dtype, rois: dtype },
    outputs: { out: dtype },
    params: PARAMS,
    workgroupSize: WORKGROUP,
    code: `${GEOMETRY_WGSL}
${entryPoint(WORKGROUP)}
  if (i >= p.total) { return; }
  let ox = i % p.ow;
  let oy = (i / p.ow) % p.oh;
  let ch = (i / (p.ow * p.oh)) % p.c;
  let k = i / (p.ow * p.oh * p.c);
  let r = roi_at(k);
  if (r.b < 0) { out[i] = 0.0; return; }
  let plane = (u32(r.b) * p.c + ch) * p.h;
  var acc = 0.0;
  for (var iy = 0; iy < r.gh; iy++) {
    let ty = tap(sample_at(r.y0, r.bh, r.gh, i32(oy) * r.gh + iy), p.h);
    if (ty.lo < 0) { continue; }
    let rlo = (plane + u32(ty.lo)) * p.w;
    let rhi = (plane + u32(ty.hi)) * p.w;
    for (var ix = 0; ix < r.gw; ix++) {
      let tx = tap(sample_at(r.x0, r.bw, r.gw, i32(ox) * r.gw + ix), p.w);
      if (tx.lo < 0) { continue; }
      acc += ty.wlo * tx.wlo * f32(x[rlo + u32(tx.lo)]) + ty.wlo * tx.whi * f32(x[rlo + u32(tx.hi)])
        + ty.whi * tx.wlo * f32(x[rhi + u32(tx.lo)]) + ty.whi * tx.whi * f32(x[rhi + u32(tx.hi)]);
    }
  }
  out[i] = acc / f32(max(r.gh * r.gw, 1));
}`,
    cpu: (ins, outs, params) => {
      const p = params as RoiParams, x = ins.x, rois = ins.rois, out = outs.out;
      const fr = dtype === "f32" ? Math.fround : (v: number) => v;
      const bins = p.oh * p.ow;
      for (let k = 0; k < p.k; k++) {
        const r = roiCpu(rois, k, p, fr);
        const count = Math.max(r.gh * r.gw, 1);
        if (r.b < 0) {
          out.fill(0, k * p.c * bins, (k + 1) * p.c * bins);
          continue;
        }
        const { offsets, weights, taps } = binTaps(r, p, fr);
        for (let ch = 0; ch < p.c; ch++) {
          const plane = (r.b * p.c + ch) * p.h * p.w;
          for (let bin = 0; bin < bins; bin++) {
            let acc = 0;
            for (let q = bin * taps, end = q + taps; q < end && weights[q] === weights[q]; q += 4) {
              acc += weights[q] * x[plane + offsets[q]] +
                weights[q + 1] * x[plane + offsets[q + 1]] +
                weights[q + 2] * x[plane + offsets[q + 2]] +
                weights[q + 3] * x[plane + offsets[q + 3]];
            }
            out[(k * p.c + ch) * bins + bin] = acc / count;
          }
        }
      }
    },
  }));
}

/**
 * The `roi_align.backward` kernel: `dx [N, C, H, W]` from `g [K, C, PH, PW]` and `rois`, one
 * invocation per input element gathering over the boxes (see the module doc).
 */
export function roiAlignBackwardKernel(dtype: DType = "f32"): Kernel {
  return cached(`backward|${dtype}`, () => ({
    label: "roi_align.backward",
    inputs: { g: dtype, rois: dtype },
    outputs: { dx: dtype },
    params: PARAMS,
    workgroupSize: WORKGROUP,
    code: `${GEOMETRY_WGSL}
// Candidate samples [first, last] along one axis (bins * g samples from start, step bin / g)
// that may land within one pixel of coordinate at (axis size n), with a margin.
fn candidates(start: f32, bin: f32, g: i32, bins: u32, at: i32, n: u32) -> vec2<i32> {
  let count = i32(bins) * g;
  if (count <= 0) { return vec2<i32>(0, -1); }
  var lo = f32(at) - 1.0;
  var hi = f32(at) + 1.0;
  if (at == 0) { lo = -1.0; }
  if (at == i32(n) - 1) { hi = f32(n); }
  let step = bin / f32(g);
  let margin = 1e-3 + 1e-5 * (abs(start) + abs(bin) * f32(bins));
  if (abs(step) * f32(count) < 1e-3) { return vec2<i32>(0, count - 1); }
  let a = (lo - margin - start) / step - 0.5;
  let b = (hi + margin - start) / step - 0.5;
  let first = clamp(floor(min(a, b)) - 1.0, 0.0, f32(count));
  let last = clamp(ceil(max(a, b)) + 1.0, -1.0, f32(count - 1));
  return vec2<i32>(max(i32(first), 0), min(i32(last), count - 1));
}

// Weight of pixel at for a sample at v (both taps may be the same pixel at the border).
fn weight(t: Tap, at: i32) -> f32 {
  return select(0.0, t.wlo, t.lo == at) + select(0.0, t.whi, t.hi == at);
}

${entryPoint(WORKGROUP)}
  if (i >= p.total) { return; }
  let xx = i32(i % p.w);
  let yy = i32((i / p.w) % p.h);
  let ch = (i / (p.w * p.h)) % p.c;
  let b = i32(i / (p.w * p.h * p.c));
  var acc = 0.0;
  for (var k = 0u; k < p.k; k++) {
    let r = roi_at(k);
    if (r.b != b) { continue; }
    let ys = candidates(r.y0, r.bh, r.gh, p.oh, yy, p.h);
    if (ys.y < ys.x) { continue; }
    let xs = candidates(r.x0, r.bw, r.gw, p.ow, xx, p.w);
    if (xs.y < xs.x) { continue; }
    let scale = 1.0 / f32(max(r.gh * r.gw, 1));
    let gbase = (k * p.c + ch) * p.oh;
    for (var sy = ys.x; sy <= ys.y; sy++) {
      let ty = tap(sample_at(r.y0, r.bh, r.gh, sy), p.h);
      if (ty.lo < 0) { continue; }
      let wy = weight(ty, yy);
      if (wy == 0.0) { continue; }
      let grow = (gbase + u32(sy / r.gh)) * p.ow;
      for (var sx = xs.x; sx <= xs.y; sx++) {
        let tx = tap(sample_at(r.x0, r.bw, r.gw, sx), p.w);
        if (tx.lo < 0) { continue; }
        let wx = weight(tx, xx);
        if (wx == 0.0) { continue; }
        acc += f32(g[grow + u32(sx / r.gw)]) * wy * wx * scale;
      }
    }
  }
  dx[i] = acc;
}`,
    cpu: (ins, outs, params) => {
      const p = params as RoiParams, g = ins.g, rois = ins.rois, dx = outs.dx;
      const fr = dtype === "f32" ? Math.fround : (v: number) => v;
      for (let j = 0; j < dx.length; j++) dx[j] = 0;
      // Scatter box by box, in order: each sample's share of its bin's gradient goes to its
      // four pixels, as torchvision's backward does (the weight `hy * hx` taken first).
      for (let k = 0; k < p.k; k++) {
        const r = roiCpu(rois, k, p, fr);
        if (r.b < 0) continue;
        const count = Math.max(r.gh * r.gw, 1);
        const { offsets, weights, taps } = binTaps(r, p, fr);
        for (let ch = 0; ch < p.c; ch++) {
          const plane = (r.b * p.c + ch) * p.h * p.w;
          for (let bin = 0; bin < p.oh * p.ow; bin++) {
            const gv = g[(k * p.c + ch) * p.oh * p.ow + bin] / count;
            for (let q = bin * taps, end = q + taps; q < end && weights[q] === weights[q]; q++) {
              dx[plane + offsets[q]] += gv * weights[q];
            }
          }
        }
      }
    },
  }));
}

function outputSizeOf(op: string, size: RoiAlignOptions["outputSize"]): [number, number] {
  const v: readonly number[] = typeof size === "number" ? [size, size] : size;
  if (!Array.isArray(v) || v.length !== 2 || v.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new RangeError(
      `${op}: outputSize ${JSON.stringify(size)} must be an integer >= 1 or a pair [PH, PW]`,
    );
  }
  return [v[0], v[1]];
}

/** On host backends, checks every box's batch index and coordinates (a GPU box is not read back). */
function checkRois(op: string, rois: Tensor, n: number): void {
  if (!isHostBackend(rois.backend)) return;
  const v = hostView(rois);
  for (let k = 0; k < rois.shape[0]; k++) {
    const b = v[5 * k];
    if (!(Number.isInteger(b) && b >= 0 && b < n)) {
      throw new RangeError(
        `${op}: box ${k} has batch index ${b}, outside the ${n} batch items of the input`,
      );
    }
    for (let j = 1; j < 5; j++) {
      if (!Number.isFinite(v[5 * k + j])) {
        throw new RangeError(`${op}: box ${k} has a non-finite coordinate ${v[5 * k + j]}`);
      }
    }
  }
}

/**
 * RoIAlign, as torchvision's `roi_align`: pools each box of `rois` from its batch item of
 * the NCHW map `x` into `outputSize` bins by averaging bilinear samples. The gradient flows
 * to `x` (none to the boxes).
 *
 * On the CPU and native backends the boxes are checked (integer batch index in range,
 * finite coordinates); on WebGPU they are not read back, and a box whose batch index is out
 * of range pools zeros and passes no gradient.
 *
 * @example One box over a 4x4 map
 * ```ts
 * import { roiAlign } from "./roi_align.ts";
 * import { tensor } from "../tensor.ts";
 * import assert from "node:assert/strict";
 *
 * const x = tensor(Array.from({ length: 16 }, (_, i) => i), [1, 1, 4, 4]);
 * const rois = tensor([0, 0, 0, 4, 4], [1, 5]);
 * const y = roiAlign(x, rois, { outputSize: 2, samplingRatio: 1, aligned: true });
 * assert.deepEqual(Array.from(await y.data()), [2.5, 4.5, 10.5, 12.5]);
 * ```
 *
 * @param x Feature map `[N, C, H, W]` (`f32`, or `f64` on the CPU).
 * @param rois Boxes `[K, 5]`: batch index, then `x1, y1, x2, y2` in image coordinates.
 * @param options Output size, spatial scale, sampling ratio, alignment.
 * @returns `[K, C, PH, PW]`.
 */
export function roiAlign(x: Tensor, rois: Tensor, options: RoiAlignOptions): Tensor {
  const op = "roiAlign";
  if (x.rank !== 4) {
    throw new TypeError(`${op}: expected an input [N, C, H, W], got [${x.shape.join(", ")}]`);
  }
  if (x.dtype !== "f32" && x.dtype !== "f64") {
    throw new TypeError(`${op}: expected f32 or f64 but got ${x.dtype} [${x.shape.join(", ")}]`);
  }
  if (rois.rank !== 2 || rois.shape[1] !== 5) {
    throw new TypeError(`${op}: expected rois [K, 5], got [${rois.shape.join(", ")}]`);
  }
  if (rois.dtype !== x.dtype) {
    throw new TypeError(`${op}: rois are ${rois.dtype} but the input is ${x.dtype}`);
  }
  const [oh, ow] = outputSizeOf(op, options.outputSize);
  const scale = options.spatialScale ?? 1;
  if (!(Number.isFinite(scale) && scale > 0)) {
    throw new RangeError(`${op}: spatialScale ${scale} must be a positive finite number`);
  }
  const ratio = options.samplingRatio ?? 0;
  if (!Number.isInteger(ratio)) {
    throw new RangeError(`${op}: samplingRatio ${ratio} must be an integer`);
  }
  const backend = backendOf(op, [x, rois]);
  const [n, c, h, w] = x.shape;
  const k = rois.shape[0];
  checkRois(op, rois, n);
  const params = (total: number): RoiParams => ({
    total,
    n,
    c,
    h,
    w,
    k,
    oh,
    ow,
    scale,
    ratio: Math.max(ratio, 0),
    aligned: options.aligned ? 1 : 0,
  });
  const out = empty([k, c, oh, ow], x.dtype, backend);
  launch(roiAlignForwardKernel(x.dtype), [x, rois], [out], params(out.size), workgroups(out.size));
  record(op, [x, rois], [out], ([gy]) => {
    const dx = empty(x.shape, x.dtype, backend);
    launch(
      roiAlignBackwardKernel(x.dtype),
      [gy!, rois],
      [dx],
      params(dx.size),
      workgroups(dx.size),
    );
    return [dx, null];
  });
  return out;
}

function workgroups(total: number): number {
  return Math.max(1, Math.ceil(total / WORKGROUP));
}
