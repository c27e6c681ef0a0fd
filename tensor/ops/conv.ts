/**
 * 2-D convolution (NCHW) with stride, padding, dilation, groups and bias, and
 * its gradient.
 *
 * The forward pass is im2col + {@linkcode matmul}: `conv.im2col` lays out
 * each image's receptive fields as a `[C * kh * kw, Ho * Wo]` matrix and the
 * weight `[Cout, C / groups * kh * kw]` multiplies it group by group (a batched
 * product with the weight broadcast over images). The backward pass uses the
 * two transposed products: grad weight = grad out x colsᵀ (summed over images)
 * and grad cols = weightᵀ x grad out, folded back into the input by
 * `conv.col2im` (a gather: each input element sums the columns that read it,
 * so no atomics). Images are processed in chunks so that the column matrix
 * stays under the profile's `convColLimit` elements.
 *
 * (These products use matmul's storage-buffer kernels: packing the large column
 * matrices would cost more than it saves.) On llvmpipe (f32, groups 1; the
 * profile's `convUniform`) the products
 * run through the packed uniform-window kernels of `matmul.ts` instead:
 * `conv.im2col_packed` reads each image through 64 KiB uniform windows (as
 * many channels as fit) and writes the receptive fields straight into packed
 * panels; the forward pass multiplies them by the packed weight; the input
 * gradient of a stride-1 convolution is the forward convolution of the output
 * gradient with the flipped, transposed weight; the weight gradient is one
 * product of the output gradient `[Cout, images x pixels]` with the transposed
 * packed columns.
 *
 * On llvmpipe (f32, groups 1; the profile's `convDirect`) all three
 * passes first try the direct uniform-window kernels of `conv_direct.ts`,
 * which apply when a zero-padded input plane (and, for the weight gradient,
 * one image's output gradient x Cout) fits a 64 KiB window: every layer of
 * the tiny detectors except the 128 px stem (the input gradient only for
 * stride 1). The rest keeps the paths above.
 *
 * `conv_transpose.ts` builds the transposed convolution from the same three
 * passes ({@linkcode forward}, {@linkcode gradInput}, {@linkcode gradWeight}).
 *
 * @module
 */

import { needsGrad, record } from "../autograd.ts";
import { hostView, isHostBackend } from "../cpu_backend.ts";
import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache, UNIFORM_WINDOW_SPAN } from "../kernel.ts";
import { empty, type Tensor, tensor, viewOf } from "../tensor.ts";
import { add, map } from "./elementwise.ts";
import { backendOf, launch, launchAtWindow } from "./launch.ts";
import {
  matmul,
  MATMUL_PANEL,
  packedMatmulInto,
  packedShape,
  packMatmulOperand,
} from "./matmul.ts";
import { sum } from "./reduce.ts";
import {
  type DirectGeometry,
  windowForward,
  windowGradInput,
  windowGradWeight,
} from "./conv_direct.ts";

const WORKGROUP = 64;

/** Options of {@linkcode conv2d}; numbers apply to both axes, pairs are `[y, x]`. */
export interface Conv2dOptions {
  /** Step between output positions; default 1. */
  stride?: number | readonly [number, number];
  /** Zero padding added on both sides; default 0. */
  padding?: number | readonly [number, number];
  /** Spacing between kernel taps; default 1. */
  dilation?: number | readonly [number, number];
  /** Channel groups: input and output channels split into this many independent convolutions; default 1. */
  groups?: number;
  /** Optional `[Cout]` bias added to every output position. */
  bias?: Tensor;
}

/**
 * The geometry of one convolution: `n` images of `c` x `h` x `w` convolved
 * with `cout` filters of `kh` x `kw` (stride `sh`, `sw`; padding `ph`, `pw`;
 * dilation `dh`, `dw`) into `ho` x `wo` outputs, in `groups` channel groups.
 */
export interface Geometry extends DirectGeometry {
  /** Channel groups. */
  groups: number;
}

const PARAMS = {
  total: "u32",
  b0: "u32",
  c: "u32",
  h: "u32",
  w: "u32",
  kh: "u32",
  kw: "u32",
  sh: "u32",
  sw: "u32",
  ph: "u32",
  pw: "u32",
  dh: "u32",
  dw: "u32",
  ho: "u32",
  wo: "u32",
} as const;

const cached = kernelCache();

function geometryParams(g: Geometry, total: number, b0: number): Record<string, number> {
  return {
    total,
    b0,
    c: g.c,
    h: g.h,
    w: g.w,
    kh: g.kh,
    kw: g.kw,
    sh: g.sh,
    sw: g.sw,
    ph: g.ph,
    pw: g.pw,
    dh: g.dh,
    dw: g.dw,
    ho: g.ho,
    wo: g.wo,
  };
}

/**
 * `conv.im2col`: `col[b, (ci * kh + ki) * kw + kj, oy * wo + ox] =
 * x[b0 + b, ci, oy * sh - ph + ki * dh, ox * sw - pw + kj * dw]` (0 outside).
 */
export function im2colKernel(dtype: DType = "f32"): Kernel {
  const key = `im2col|${dtype}`;
  return cached(key, () => ({
    label: "conv.im2col",
    inputs: { x: dtype },
    outputs: { col: dtype },
    params: PARAMS,
    workgroupSize: WORKGROUP,
    code: `${entryPoint(WORKGROUP)}
  // One invocation per output row: the index arithmetic is paid once per row.
  let rows = p.total / p.wo;
  if (i >= rows) { return; }
  let oy = i % p.ho;
  let row = (i / p.ho) % (p.c * p.kh * p.kw);
  let b = i / (p.ho * p.c * p.kh * p.kw) + p.b0;
  let kj = row % p.kw;
  let ki = (row / p.kw) % p.kh;
  let ci = row / (p.kw * p.kh);
  let y = i32(oy * p.sh + ki * p.dh) - i32(p.ph);
  let yin = y >= 0 && y < i32(p.h);
  let base = ((b * p.c + ci) * p.h + u32(max(y, 0))) * p.w;
  let last = arrayLength(&x) - 1u;
  let out0 = i * p.wo;
  var xx = i32(kj * p.dw) - i32(p.pw);
  for (var ox = 0u; ox < p.wo; ox++) {
    let inside = yin && xx >= 0 && xx < i32(p.w);
    col[out0 + ox] = select(0.0, x[min(base + u32(max(xx, 0)), last)], inside);
    xx += i32(p.sw);
  }
}`,
    cpu(ins, outs, p) {
      const x = ins.x, col = outs.col;
      const { total, b0, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo } = p as Record<
        string,
        number
      >;
      const hw = ho * wo, rows = c * kh * kw;
      for (let i = 0; i < total; i++) {
        const pix = i % hw;
        const row = Math.floor(i / hw) % rows;
        const b = Math.floor(i / (hw * rows)) + b0;
        const kj = row % kw, ki = Math.floor(row / kw) % kh, ci = Math.floor(row / (kw * kh));
        const y = Math.floor(pix / wo) * sh + ki * dh - ph;
        const xx = (pix % wo) * sw + kj * dw - pw;
        col[i] = y >= 0 && y < h && xx >= 0 && xx < w ? x[((b * c + ci) * h + y) * w + xx] : 0;
      }
    },
  }));
}

/**
 * `conv.col2im`: the adjoint of {@linkcode im2colKernel} for one chunk of
 * images: `dx[b, ci, y, x]` sums every column entry that read it.
 */
export function col2imKernel(dtype: DType = "f32"): Kernel {
  const key = `col2im|${dtype}`;
  return cached(key, () => ({
    label: "conv.col2im",
    inputs: { col: dtype },
    outputs: { dx: dtype },
    params: PARAMS,
    workgroupSize: WORKGROUP,
    code: `${entryPoint(WORKGROUP)}
  if (i >= p.total) { return; }
  let xx = i32(i % p.w) + i32(p.pw);
  let yy = i32((i / p.w) % p.h) + i32(p.ph);
  let ci = (i / (p.w * p.h)) % p.c;
  let b = i / (p.w * p.h * p.c);
  let hw = p.ho * p.wo;
  var acc = 0.0;
  for (var ki = 0u; ki < p.kh; ki++) {
    let ty = yy - i32(ki * p.dh);
    let oy = ty / i32(p.sh);
    let oky = ty >= 0 && oy * i32(p.sh) == ty && oy < i32(p.ho);
    for (var kj = 0u; kj < p.kw; kj++) {
      let tx = xx - i32(kj * p.dw);
      let ox = tx / i32(p.sw);
      if (oky && tx >= 0 && ox * i32(p.sw) == tx && ox < i32(p.wo)) {
        let row = (ci * p.kh + ki) * p.kw + kj;
        acc = acc + col[(b * p.c * p.kh * p.kw + row) * hw + u32(oy) * p.wo + u32(ox)];
      }
    }
  }
  dx[i] = acc;
}`,
    cpu(ins, outs, p) {
      const col = ins.col, dx = outs.dx;
      const { total, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo } = p as Record<
        string,
        number
      >;
      const hw = ho * wo;
      for (let i = 0; i < total; i++) {
        const xx = (i % w) + pw, yy = (Math.floor(i / w) % h) + ph;
        const ci = Math.floor(i / (w * h)) % c, b = Math.floor(i / (w * h * c));
        let acc = 0;
        for (let ki = 0; ki < kh; ki++) {
          const ty = yy - ki * dh;
          if (ty < 0 || ty % sh !== 0 || ty / sh >= ho) continue;
          const oy = ty / sh;
          for (let kj = 0; kj < kw; kj++) {
            const tx = xx - kj * dw;
            if (tx < 0 || tx % sw !== 0 || tx / sw >= wo) continue;
            const row = (ci * kh + ki) * kw + kj;
            acc += col[(b * c * kh * kw + row) * hw + oy * wo + tx / sw];
          }
        }
        dx[i] = acc;
      }
    },
  }));
}

const PACKED_PARAMS = {
  rows: "u32",
  b: "u32",
  c0: "u32",
  delta: "u32",
  kp: "u32",
  transposed: "u32",
  kofs: "u32",
  h: "u32",
  w: "u32",
  kh: "u32",
  kw: "u32",
  sh: "u32",
  sw: "u32",
  ph: "u32",
  pw: "u32",
  dh: "u32",
  dw: "u32",
  ho: "u32",
  wo: "u32",
} as const;

/**
 * `conv.im2col_packed` (`window`: x read through a 64 KiB uniform window `xw`
 * starting `delta` floats before channel `c0` of image `b`; otherwise from
 * storage at `delta`): writes the receptive fields of channels `[c0, c0 + rows
 * / (kh * kw * ho))` straight into the packed panel layout of the matmul
 * uniform path: `dst[(g * kp + q) * PANEL + j]` with `q = (ci * kh + ki) * kw +
 * kj` and pixel `g * PANEL + j` (forward), or with `q = kofs + pixel` and column
 * `g * PANEL + j = (ci * kh + ki) * kw + kj` (`transposed`, for the weight gradient).
 */
export function im2colPackedKernel(window: boolean): Kernel {
  const key = `im2col_packed|${window}`;
  return cached(key, (): Kernel => {
    const read = window ? "xw[e / 4u][e % 4u]" : "x[e]";
    return {
      label: `conv.im2col_packed_${window ? "window" : "storage"}`,
      inputs: window ? {} : { x: "f32" },
      outputs: { dst: "f32" },
      params: PACKED_PARAMS,
      workgroupSize: WORKGROUP,
      uniforms: window ? ["xw"] : [],
      code: `${entryPoint(WORKGROUP)}
  if (i >= p.rows) { return; }
  let oy = i % p.ho;
  let ql = i / p.ho;
  let taps = p.kh * p.kw;
  let cl = ql / taps;
  let t = ql % taps;
  let ki = t / p.kw;
  let kj = t % p.kw;
  let q = p.c0 * taps + ql;
  let y = i32(oy * p.sh + ki * p.dh) - i32(p.ph);
  let yin = y >= 0 && y < i32(p.h);
  let rowbase = p.delta + (cl * p.h + u32(max(y, 0))) * p.w;
  var xx = i32(kj * p.dw) - i32(p.pw);
  for (var ox = 0u; ox < p.wo; ox++) {
    let inside = yin && xx >= 0 && xx < i32(p.w);
    let e = select(0u, rowbase + u32(max(xx, 0)), inside);
    let v = select(0.0, ${read}, inside);
    let pix = oy * p.wo + ox;
    var at: u32;
    if (p.transposed != 0u) {
      at = ((q / ${MATMUL_PANEL}u) * p.kp + p.kofs + pix) * ${MATMUL_PANEL}u + q % ${MATMUL_PANEL}u;
    } else {
      at = ((pix / ${MATMUL_PANEL}u) * p.kp + q) * ${MATMUL_PANEL}u + pix % ${MATMUL_PANEL}u;
    }
    dst[at] = v;
    xx += i32(p.sw);
  }
}`,
      cpu(ins, outs, p) {
        const x = window ? ins.xw : ins.x, dst = outs.dst;
        const {
          rows,
          c0,
          delta,
          kp,
          transposed,
          kofs,
          h,
          w,
          kh,
          kw,
          sh,
          sw,
          ph,
          pw,
          dh,
          dw,
          ho,
          wo,
        } = p as Record<string, number>;
        const P = MATMUL_PANEL, taps = kh * kw;
        for (let i = 0; i < rows; i++) {
          const oy = i % ho, ql = Math.floor(i / ho);
          const cl = Math.floor(ql / taps), t = ql % taps;
          const ki = Math.floor(t / kw), kj = t % kw, q = c0 * taps + ql;
          const y = oy * sh + ki * dh - ph;
          for (let ox = 0; ox < wo; ox++) {
            const xx = ox * sw + kj * dw - pw;
            const v = y >= 0 && y < h && xx >= 0 && xx < w ? x[delta + (cl * h + y) * w + xx] : 0;
            const pix = oy * wo + ox;
            const at = transposed
              ? (Math.floor(q / P) * kp + kofs + pix) * P + (q % P)
              : (Math.floor(pix / P) * kp + q) * P + (pix % P);
            dst[at] = v;
          }
        }
      },
    };
  });
}

/**
 * `conv.col2im_window` (`window`: the columns read through a 64 KiB uniform
 * window `cw`; otherwise from storage `col`): the adjoint of im2col for
 * channels `[c0, c0 + total / (h * w))` of image `b`, whose column rows start
 * `delta` floats into the window (or the storage).
 */
export function col2imWindowKernel(window: boolean): Kernel {
  const key = `col2im_window|${window}`;
  return cached(key, (): Kernel => {
    const read = window ? "cw[e / 4u][e % 4u]" : "col[e]";
    return {
      label: `conv.col2im_${window ? "window" : "storage"}`,
      inputs: window ? {} : { col: "f32" },
      outputs: { dx: "f32" },
      params: { ...PARAMS, c0: "u32", delta: "u32" },
      workgroupSize: WORKGROUP,
      uniforms: window ? ["cw"] : [],
      code: `${entryPoint(WORKGROUP)}
  if (i >= p.total) { return; }
  let plane = p.h * p.w;
  let xx = i32(i % p.w) + i32(p.pw);
  let yy = i32((i / p.w) % p.h) + i32(p.ph);
  let cl = i / plane;
  let hw = p.ho * p.wo;
  var acc = 0.0;
  for (var ki = 0u; ki < p.kh; ki++) {
    let ty = yy - i32(ki * p.dh);
    let oy = ty / i32(p.sh);
    let oky = ty >= 0 && oy * i32(p.sh) == ty && oy < i32(p.ho);
    for (var kj = 0u; kj < p.kw; kj++) {
      let tx = xx - i32(kj * p.dw);
      let ox = tx / i32(p.sw);
      if (oky && tx >= 0 && ox * i32(p.sw) == tx && ox < i32(p.wo)) {
        let e = p.delta + ((cl * p.kh + ki) * p.kw + kj) * hw + u32(oy) * p.wo + u32(ox);
        acc = acc + ${read};
      }
    }
  }
  dx[(p.b0 * p.c + p.c0 + cl) * plane + i % plane] = acc;
}`,
      cpu(ins, outs, p) {
        const col = window ? ins.cw : ins.col, dx = outs.dx;
        const { total, b0, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, c0, delta } =
          p as Record<
            string,
            number
          >;
        const hw = ho * wo, plane = h * w;
        for (let i = 0; i < total; i++) {
          const xx = (i % w) + pw, yy = (Math.floor(i / w) % h) + ph, cl = Math.floor(i / plane);
          let acc = 0;
          for (let ki = 0; ki < kh; ki++) {
            const ty = yy - ki * dh;
            if (ty < 0 || ty % sh !== 0 || ty / sh >= ho) continue;
            for (let kj = 0; kj < kw; kj++) {
              const tx = xx - kj * dw;
              if (tx < 0 || tx % sw !== 0 || tx / sw >= wo) continue;
              acc += col[delta + ((cl * kh + ki) * kw + kj) * hw + (ty / sh) * wo + tx / sw];
            }
          }
          dx[(b0 * c + c0 + cl) * plane + (i % plane)] = acc;
        }
      },
    };
  });
}

/**
 * Folds `dcol` (`[nb, C * kh * kw, Ho * Wo]`) into `dx` (`[nb, C, H, W]`) reading
 * the columns through uniform windows; false (nothing launched) when the
 * columns of one channel do not fit a window.
 */
function col2imWindowed(dcol: Tensor, dx: Tensor, g: Geometry, nb: number): boolean {
  const taps = g.kh * g.kw, hwo = g.ho * g.wo, rowsPer = taps * hwo;
  const per = Math.floor(UNIFORM_WINDOW_SPAN / rowsPer);
  if (per < 1 || dcol.dtype !== "f32") return false;
  for (let b = 0; b < nb; b++) {
    for (let c0 = 0; c0 < g.c; c0 += per) {
      const cw = Math.min(per, g.c - c0);
      const start = (b * g.c + c0) * rowsPer;
      const total = cw * g.h * g.w;
      const params = { ...geometryParams(g, total, b), c0 };
      const [windowed, storage] = [col2imWindowKernel(true), col2imWindowKernel(false)];
      launchAtWindow(windowed, storage, dcol, dx, start, params, Math.ceil(total / WORKGROUP));
    }
  }
  return true;
}

/** Whether `conv2d` takes the direct kernels for geometry `g` (groups 1 only). */
function useDirect(x: Tensor, g: Geometry): boolean {
  const mode = x.backend.profile.convDirect;
  if (mode === "off" || g.groups !== 1) return false;
  return mode === "on" || x.dtype === "f32";
}

/** Whether `conv2d` takes the packed uniform-window path for geometry `g`. */
function usePacked(x: Tensor, g: Geometry): boolean {
  const mode = x.backend.profile.convUniform;
  if (mode === "off" || x.dtype !== "f32" || g.groups !== 1) return false;
  if (mode === "on") return true;
  const k = g.c * g.kh * g.kw;
  return g.cout >= 16 && k >= 16 && g.cout * g.ho * g.wo * k >= 1 << 18;
}

/**
 * Writes images `[b0, b0 + nb)` of `x` into `dst` in the packed layout (see
 * {@linkcode im2colPackedKernel}); `kp` is the packed inner length of `dst`.
 */
function im2colPacked(
  x: Tensor,
  g: Geometry,
  b0: number,
  nb: number,
  dst: Tensor,
  kp: number,
  transposed: boolean,
): void {
  const hw = g.h * g.w, taps = g.kh * g.kw;
  const perWindow = Math.floor(UNIFORM_WINDOW_SPAN / hw);
  const common = {
    kp,
    transposed: transposed ? 1 : 0,
    h: g.h,
    w: g.w,
    kh: g.kh,
    kw: g.kw,
    sh: g.sh,
    sw: g.sw,
    ph: g.ph,
    pw: g.pw,
    dh: g.dh,
    dw: g.dw,
    ho: g.ho,
    wo: g.wo,
  };
  for (let b = b0; b < b0 + nb; b++) {
    const kofs = (b - b0) * g.ho * g.wo;
    const step = Math.max(perWindow, 1);
    for (let c0 = 0; c0 < g.c; c0 += step) {
      const cw = perWindow > 0 ? Math.min(perWindow, g.c - c0) : g.c;
      const base = (b * g.c + c0) * hw;
      const rows = cw * taps * g.ho;
      const params = { ...common, rows, b, c0, kofs };
      const groups = Math.ceil(rows / WORKGROUP);
      if (perWindow > 0) {
        launchAtWindow(
          im2colPackedKernel(true),
          im2colPackedKernel(false),
          x,
          dst,
          base,
          params,
          groups,
        );
      } else {
        launch(im2colPackedKernel(false), [x], [dst], { ...params, delta: base }, groups);
      }
      if (perWindow === 0) break;
    }
  }
}

/** Forward pass through packed products; `pa` is the packed `[Cout, C * kh * kw]` weight. */
function forwardPacked(x: Tensor, pa: Tensor, g: Geometry): Tensor {
  const k = g.c * g.kh * g.kw, hw = g.ho * g.wo;
  const out = empty([g.n, g.cout, g.ho, g.wo], "f32", x.backend);
  const { kp, size } = packedShape(hw, k);
  for (let b = 0; b < g.n; b++) {
    const pb = empty([size], "f32", x.backend);
    im2colPacked(x, g, b, 1, pb, kp, false);
    packedMatmulInto(pa, pb, out, g.cout, hw, k, b * g.cout * hw);
    pb.dispose();
  }
  return out;
}

/**
 * A stride, padding or dilation option as `[y, x]` integers `>= min`
 * (`fallback` when undefined); a `RangeError` naming `op` and `name` otherwise.
 */
export function pair(
  op: string,
  name: string,
  value: number | readonly [number, number] | undefined,
  fallback: number,
  min: number,
): [number, number] {
  const v: readonly number[] = value === undefined
    ? [fallback, fallback]
    : typeof value === "number"
    ? [value, value]
    : value;
  if (v.length !== 2 || v.some((d) => !Number.isInteger(d) || d < min)) {
    const shown = typeof value === "number" ? String(value) : `[${[...v].join(", ")}]`;
    throw new RangeError(`${op}: ${name} ${shown} must be integers >= ${min}`);
  }
  return [v[0], v[1]];
}

function geometryOf(op: string, x: Tensor, weight: Tensor, options: Conv2dOptions): Geometry {
  if (x.rank !== 4 || weight.rank !== 4) {
    throw new TypeError(
      `${op}: expected input [N, C, H, W] and weight [Cout, C / groups, kh, kw], got [${
        x.shape.join(", ")
      }] and [${weight.shape.join(", ")}]`,
    );
  }
  if (x.dtype !== weight.dtype || (x.dtype !== "f32" && x.dtype !== "f64")) {
    throw new TypeError(
      `${op}: expected f32 input and weight, got ${x.dtype} [${
        x.shape.join(", ")
      }] and ${weight.dtype} [${weight.shape.join(", ")}]`,
    );
  }
  const groups = options.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1) {
    throw new RangeError(`${op}: groups ${groups} must be a positive integer`);
  }
  const [n, c, h, w] = x.shape;
  const [cout, cg, kh, kw] = weight.shape;
  if (c % groups !== 0 || cout % groups !== 0 || cg * groups !== c) {
    throw new TypeError(
      `${op}: input [${x.shape.join(", ")}] and weight [${
        weight.shape.join(", ")
      }] do not match with ${groups} group(s)`,
    );
  }
  const [sh, sw] = pair(op, "stride", options.stride, 1, 1);
  const [ph, pw] = pair(op, "padding", options.padding, 0, 0);
  const [dh, dw] = pair(op, "dilation", options.dilation, 1, 1);
  const ho = Math.floor((h + 2 * ph - dh * (kh - 1) - 1) / sh) + 1;
  const wo = Math.floor((w + 2 * pw - dw * (kw - 1) - 1) / sw) + 1;
  if (ho < 1 || wo < 1) {
    throw new TypeError(
      `${op}: kernel [${kh}, ${kw}] (dilation ${dh}, ${dw}) does not fit input [${
        x.shape.join(", ")
      }] with padding ${ph}, ${pw}`,
    );
  }
  if (options.bias) {
    const b = options.bias;
    if (b.rank !== 1 || b.shape[0] !== cout || b.dtype !== x.dtype) {
      throw new TypeError(
        `${op}: bias ${b.dtype} [${b.shape.join(", ")}] does not match ${cout} output channels`,
      );
    }
  }
  return { n, c, h, w, cout, groups, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo };
}

/** Images per chunk so that one column matrix stays under the limit. */
function chunkSize(x: Tensor, g: Geometry): number {
  const perImage = g.c * g.kh * g.kw * g.ho * g.wo;
  const limit = x.backend.profile.convColLimit;
  return Math.max(1, Math.min(g.n, Math.floor(limit / Math.max(perImage, 1))));
}

/** Whether the columns are the input itself: a 1x1 convolution with stride 1 and no padding. */
function isPointwise(g: Geometry): boolean {
  return g.kh === 1 && g.kw === 1 && g.sh === 1 && g.sw === 1 && g.ph === 0 && g.pw === 0;
}

function im2col(x: Tensor, g: Geometry, b0: number, nb: number): Tensor {
  const rows = g.c * g.kh * g.kw, hw = g.ho * g.wo;
  if (isPointwise(g)) return sliceImages(x, b0, nb, [nb, g.groups, rows / g.groups, hw]);
  const col = empty([nb, g.groups, rows / g.groups, hw], x.dtype, x.backend);
  const total = col.size;
  launch(
    im2colKernel(x.dtype),
    [x],
    [col],
    geometryParams(g, total, b0),
    Math.ceil(total / g.wo / WORKGROUP),
  );
  return col;
}

/** Images `[b0, b0 + nb)` of `t` as a new tensor (a view when that is all of `t`). */
function sliceImages(t: Tensor, b0: number, nb: number, shape: readonly number[]): Tensor {
  if (b0 === 0 && nb === t.shape[0]) return viewOf(t, shape);
  const per = t.size / t.shape[0];
  const out = empty(shape, t.dtype, t.backend);
  const bytes = t.dtype === "f64" ? 8 : 4;
  t.backend.copy(t.storage, b0 * per * bytes, out.storage, 0, nb * per * bytes);
  return out;
}

/** Copies `part` into images `[b0, ...)` of `whole`. */
function placeImages(whole: Tensor, part: Tensor, b0: number): void {
  const per = whole.size / whole.shape[0];
  const bytes = whole.dtype === "f64" ? 8 : 4;
  whole.backend.copy(part.storage, 0, whole.storage, b0 * per * bytes, part.size * bytes);
}

/**
 * The forward pass. With `keepColumns`, the im2col path also returns its column matrix (when the
 * images fit one chunk) for the weight gradient to reuse instead of building it again.
 */
export function forward(
  x: Tensor,
  weight: Tensor,
  g: Geometry,
  keepColumns: boolean,
): { out: Tensor; columns: Tensor | null } {
  if (useDirect(x, g)) {
    const out = windowForward(x, weight, g);
    if (out) return { out, columns: null };
  }
  if (usePacked(x, g) && g.n > 0) {
    const k = g.c * g.kh * g.kw;
    const pa = packMatmulOperand(weight, g.cout, k, k, 1, 0);
    const out = forwardPacked(x, pa, g);
    pa.dispose();
    return { out, columns: null };
  }
  const cg = g.c / g.groups, og = g.cout / g.groups;
  const w3 = viewOf(weight, [1, g.groups, og, cg * g.kh * g.kw]);
  const chunk = chunkSize(x, g);
  let out: Tensor | null = null;
  let columns: Tensor | null = null;
  for (let b0 = 0; b0 < g.n; b0 += chunk) {
    const nb = Math.min(chunk, g.n - b0);
    const col = im2col(x, g, b0, nb);
    const part = matmul(w3, col, { uniformPath: false });
    if (keepColumns && nb === g.n) columns = col;
    else col.dispose();
    if (nb === g.n) {
      out = viewOf(part, [g.n, g.cout, g.ho, g.wo]);
    } else {
      out ??= empty([g.n, g.cout, g.ho, g.wo], x.dtype, x.backend);
      placeImages(out, part, b0);
    }
    part.dispose();
  }
  w3.dispose();
  return { out: out ?? empty([g.n, g.cout, g.ho, g.wo], x.dtype, x.backend), columns };
}

/**
 * The weight of the convolution that computes a stride-1 input gradient, on a host backend:
 * `[C, Cout, kh, kw]` with `out[ci, co, a, b] = weight[co, ci, kh - 1 - a, kw - 1 - b]`.
 */
function flippedWeight(weight: Tensor, g: Geometry): Tensor {
  const w = hostView(weight);
  const out = weight.dtype === "f64" ? new Float64Array(w.length) : new Float32Array(w.length);
  const taps = g.kh * g.kw;
  for (let co = 0; co < g.cout; co++) {
    for (let ci = 0; ci < g.c; ci++) {
      const src = (co * g.c + ci) * taps, dst = (ci * g.cout + co) * taps;
      for (let t = 0; t < taps; t++) out[dst + t] = w[src + taps - 1 - t];
    }
  }
  return tensor(out, [g.c, g.cout, g.kh, g.kw], { backend: weight.backend });
}

/** The input gradient `[N, C, H, W]` of output gradient `gy` `[N, Cout, Ho, Wo]`. */
export function gradInput(gy: Tensor, weight: Tensor, g: Geometry): Tensor {
  // Strided, the direct kernels convolve gy dilated by the stride: most taps read zeros (7x slower
  // than the paths below for Mask R-CNN's 256-channel 2 x 2 stride-2 upsampling on llvmpipe).
  if (useDirect(gy, g) && (gy.backend.profile.convDirect === "on" || (g.sh === 1 && g.sw === 1))) {
    const dx = windowGradInput(gy, weight, g);
    if (dx) return dx;
  }
  const padY = g.dh * (g.kh - 1) - g.ph, padX = g.dw * (g.kw - 1) - g.pw;
  const flipped: Geometry = {
    ...g,
    c: g.cout,
    h: g.ho,
    w: g.wo,
    cout: g.c,
    sh: 1,
    sw: 1,
    ph: padY,
    pw: padX,
    ho: g.h,
    wo: g.w,
  };
  if (
    g.sh === 1 && g.sw === 1 && padY >= 0 && padX >= 0 && g.n > 0 && usePacked(gy, flipped)
  ) {
    // Stride 1: the input gradient is the convolution of gy with the flipped,
    // transposed weight: A'(ci, (co, t)) = weight[co, ci, taps - 1 - t].
    const taps = g.kh * g.kw;
    const pa = packMatmulOperand(weight, g.c, g.cout * taps, taps, -1, taps - 1, taps, g.c * taps);
    const dx = forwardPacked(gy, pa, flipped);
    pa.dispose();
    return dx;
  }
  if (
    g.sh === 1 && g.sw === 1 && g.groups === 1 && padY >= 0 && padX >= 0 && g.n > 0 &&
    !isPointwise(g) && isHostBackend(gy.backend)
  ) {
    // On the host, im2col of gy copies whole planes while col2im adds element by element, and
    // the product's inner axis is Cout x taps instead of Cout: convolve with the flipped weight.
    const wflip = flippedWeight(weight, g);
    const dx = forward(gy, wflip, flipped, false).out;
    wflip.dispose();
    return dx;
  }
  const cg = g.c / g.groups, og = g.cout / g.groups, hw = g.ho * g.wo;
  const w3 = viewOf(weight, [1, g.groups, og, cg * g.kh * g.kw]);
  const dx = empty([g.n, g.c, g.h, g.w], gy.dtype, gy.backend);
  const chunk = chunkSize(gy, g);
  for (let b0 = 0; b0 < g.n; b0 += chunk) {
    const nb = Math.min(chunk, g.n - b0);
    const gyPart = sliceImages(gy, b0, nb, [nb, g.groups, og, hw]);
    // Strided convolutions on the packed path still gain from packed products here.
    const uniformPath = usePacked(gy, g) ? undefined : false;
    const dcol = matmul(w3, gyPart, { transposeA: true, uniformPath });
    gyPart.dispose();
    const total = nb * g.c * g.h * g.w;
    if (isPointwise(g)) {
      placeImages(dx, dcol, b0); // the columns are the input's layout
    } else if (uniformPath === undefined && nb === g.n && col2imWindowed(dcol, dx, g, nb)) {
      // Folded through uniform windows.
    } else if (nb === g.n) {
      launch(
        col2imKernel(gy.dtype),
        [dcol],
        [dx],
        geometryParams(g, total, 0),
        Math.ceil(total / WORKGROUP),
      );
    } else {
      const part = empty([nb, g.c, g.h, g.w], gy.dtype, gy.backend);
      launch(
        col2imKernel(gy.dtype),
        [dcol],
        [part],
        geometryParams(g, total, 0),
        Math.ceil(total / WORKGROUP),
      );
      placeImages(dx, part, b0);
      part.dispose();
    }
    dcol.dispose();
  }
  w3.dispose();
  return dx;
}

/** The weight gradient; `columns` are the forward pass's (all images), or `null` to rebuild them. */
export function gradWeight(gy: Tensor, x: Tensor, g: Geometry, columns: Tensor | null): Tensor {
  if (useDirect(x, g)) {
    const gw = windowGradWeight(gy, x, g);
    if (gw) return gw;
  }
  const og = g.cout / g.groups, hw = g.ho * g.wo;
  const chunk = chunkSize(x, g);
  if (usePacked(x, g) && g.n > 0) {
    // grad weight [Cout, C * kh * kw] = gy [Cout, (image, pixel)] x cols [(image, pixel), C * kh * kw].
    const k = g.c * g.kh * g.kw;
    const gw = empty([g.cout, g.c, g.kh, g.kw], "f32", x.backend);
    for (let b0 = 0; b0 < g.n; b0 += chunk) {
      const nb = Math.min(chunk, g.n - b0);
      const pa = packMatmulOperand(gy, g.cout, nb * hw, hw, 1, b0 * g.cout * hw, hw, g.cout * hw);
      const { kp, size } = packedShape(k, nb * hw);
      const pb = empty([size], "f32", x.backend);
      im2colPacked(x, g, b0, nb, pb, kp, true);
      packedMatmulInto(pa, pb, gw, g.cout, k, nb * hw, 0, b0 > 0);
      pa.dispose();
      pb.dispose();
    }
    return gw;
  }
  let total: Tensor | null = null;
  for (let b0 = 0; b0 < g.n; b0 += chunk) {
    const nb = Math.min(chunk, g.n - b0);
    const col = columns && !columns.disposed && nb === g.n ? columns : im2col(x, g, b0, nb);
    const gyPart = sliceImages(gy, b0, nb, [nb, g.groups, og, hw]);
    const perImage = matmul(gyPart, col, { transposeB: true, uniformPath: false });
    col.dispose();
    gyPart.dispose();
    const partial = sum(perImage, 0);
    perImage.dispose();
    if (total) {
      const next = add(total, partial);
      total.dispose();
      partial.dispose();
      total = next;
    } else total = partial;
  }
  const out = viewOf(total!, [g.cout, g.c / g.groups, g.kh, g.kw]);
  total!.dispose();
  return out;
}

/**
 * 2-D convolution of NCHW `x` with `weight` `[Cout, C / groups, kh, kw]`
 * (cross-correlation, as in PyTorch), with optional stride, zero padding,
 * dilation, groups and bias. Output `[N, Cout, Ho, Wo]` with
 * `Ho = floor((H + 2 * pad - dilation * (kh - 1) - 1) / stride) + 1`.
 *
 * @example A 3 x 3 box filter
 * ```ts
 * import { conv2d } from "./conv.ts";
 * import { tensor } from "../tensor.ts";
 * const x = tensor(new Float32Array(16).fill(1), [1, 1, 4, 4]);
 * const w = tensor(new Float32Array(9).fill(1), [1, 1, 3, 3]);
 * const y = conv2d(x, w, { padding: 1 });
 * console.log(y.shape); // [1, 1, 4, 4]
 * console.log((await y.data())[0]); // 4 (a corner sees 2 x 2 ones)
 * ```
 *
 * @param x Input `[N, C, H, W]`.
 * @param weight Filters `[Cout, C / groups, kh, kw]`.
 * @param options Stride, padding, dilation, groups, bias.
 * @returns `[N, Cout, Ho, Wo]`.
 */
export function conv2d(x: Tensor, weight: Tensor, options: Conv2dOptions = {}): Tensor {
  const op = "conv2d";
  const bias = options.bias;
  backendOf(op, bias ? [x, weight, bias] : [x, weight]);
  const g = geometryOf(op, x, weight, options);
  // Host memory is plentiful and im2col is a large share of a CPU step: keep the columns there.
  const keepColumns = isHostBackend(x.backend) && needsGrad([weight]);
  const forwarded = forward(x, weight, g, keepColumns);
  let out = forwarded.out;
  const columns = forwarded.columns;
  if (bias) {
    const b4 = viewOf(bias, [1, g.cout, 1, 1]);
    const biased = map({ label: "conv2d_bias", wgsl: "a + b", cpu: (a, b) => a + b }, [out, b4]);
    b4.dispose();
    out.dispose();
    out = biased;
  }
  const inputs = bias ? [x, weight, bias] : [x, weight];
  record(op, inputs, [out], ([gy]) => {
    const grads: (Tensor | null)[] = [
      x.requiresGrad ? gradInput(gy!, weight, g) : null,
      weight.requiresGrad ? gradWeight(gy!, x, g, columns) : null,
    ];
    if (bias) grads.push(bias.requiresGrad ? sum(gy!, [0, 2, 3]) : null);
    return grads;
  });
  return out;
}
