/**
 * The GEMM-shaped kernels on the native backend: `matmul.tile*` as one `cblas_sgemm` per batch
 * matrix, and the column transforms around it (`conv.im2col`, `conv.col2im`) as tight loops over
 * rows. Each has the contract of the CPU twin it replaces (same inputs, params and outputs);
 * `f64` launches keep the twin, since OpenBLAS is called in single precision.
 *
 * @module
 */

import type { TypedArray } from "../dtype.ts";
import type { CpuTwin } from "../kernel.ts";
import type { Sgemm } from "./openblas.ts";

const MAX_BATCH_RANK = 8;

/** How BLAS reads one operand with element `(r, c)` at `r * rowStride + c * colStride`. */
interface BlasOperand {
  trans: boolean;
  ld: number;
}

/** The BLAS layout of a `rows x cols` operand, or `null` where neither stride is 1. */
function blasOperand(
  rows: number,
  cols: number,
  rowStride: number,
  colStride: number,
): BlasOperand | null {
  if (colStride === 1 && (rows === 1 || rowStride >= cols)) {
    return { trans: false, ld: rows === 1 ? Math.max(cols, 1) : rowStride };
  }
  if (rowStride === 1 && (cols === 1 || colStride >= rows)) {
    return { trans: true, ld: cols === 1 ? Math.max(rows, 1) : colStride };
  }
  return null;
}

/**
 * `matmul.tile*` through `cblas_sgemm`: for each batch matrix,
 * `c = (accumulate ? c : 0) + a[:, k0:k0+kc] b[k0:k0+kc, :]`.
 */
export function sgemmMatmul(sgemm: Sgemm, twin: CpuTwin): CpuTwin {
  return (inputs, outputs, params) => {
    const a = inputs.a, b = inputs.b, c = outputs.c;
    if (!(a instanceof Float32Array && b instanceof Float32Array && c instanceof Float32Array)) {
      return twin(inputs, outputs, params);
    }
    const m = params.m as number, n = params.n as number;
    const k0 = params.k0 as number, kc = params.kc as number;
    const accumulate = (params.accumulate as number) !== 0;
    const sam = params.sam as number, sak = params.sak as number;
    const sbk = params.sbk as number, sbn = params.sbn as number;
    const A = blasOperand(m, kc, sam, sak), B = blasOperand(kc, n, sbk, sbn);
    if (!A || !B) return twin(inputs, outputs, params);
    const nbatch = params.nbatch as number;
    const bshape = params.bshape as readonly number[];
    const ast = params.ast as readonly number[], bst = params.bst as readonly number[];
    for (let bt = 0; bt < nbatch; bt++) {
      let rem = bt, aoff = k0 * sak, boff = k0 * sbk;
      for (let d = MAX_BATCH_RANK - 1; d >= 0; d--) {
        const size = bshape[d] ?? 1;
        const cd = rem % size;
        rem = (rem - cd) / size;
        aoff += cd * (ast[d] ?? 0);
        boff += cd * (bst[d] ?? 0);
      }
      const cview = c.subarray(bt * m * n, (bt + 1) * m * n);
      if (kc === 0) {
        if (!accumulate) cview.fill(0);
        continue;
      }
      sgemm(
        A.trans,
        B.trans,
        m,
        n,
        kc,
        1,
        a.subarray(aoff),
        A.ld,
        b.subarray(boff),
        B.ld,
        accumulate ? 1 : 0,
        cview,
        n,
      );
    }
  };
}

type Geometry = Record<
  | "total"
  | "b0"
  | "c"
  | "h"
  | "w"
  | "kh"
  | "kw"
  | "sh"
  | "sw"
  | "ph"
  | "pw"
  | "dh"
  | "dw"
  | "ho"
  | "wo",
  number
>;

/** The output columns `[lo, hi)` whose input column `ox * sw + offset` lies in `[0, w)`. */
function insideRange(offset: number, sw: number, w: number, wo: number): [number, number] {
  const lo = Math.min(wo, offset >= 0 ? 0 : Math.ceil(-offset / sw));
  const hi = Math.max(lo, Math.min(wo, Math.floor((w - 1 - offset) / sw) + 1));
  return [lo, hi];
}

/**
 * One tap of a stride-1 convolution whose output rows are as wide as the input's: the tap's
 * `ho x w` block of columns is the plane shifted by `yoff` rows and `xoff` columns, so it is one
 * contiguous copy, after which the rows outside the plane and the columns outside `[lo, hi)` (which
 * the copy filled from neighbouring rows) are zeroed.
 */
function shiftedPlane(
  x: TypedArray,
  col: TypedArray,
  plane: number,
  out: number,
  h: number,
  w: number,
  ho: number,
  yoff: number,
  xoff: number,
  lo: number,
  hi: number,
): void {
  const oy0 = Math.min(ho, Math.max(0, -yoff)), oy1 = Math.max(oy0, Math.min(ho, h - yoff));
  zero(col, out, out + oy0 * w);
  zero(col, out + oy1 * w, out + ho * w);
  if (oy1 === oy0) return;
  // Destination [d0, d1) reads x from s0 = d0 + shift, clipped to the plane.
  const shift = plane + yoff * w + xoff - out;
  const d0 = Math.max(out + oy0 * w, plane - shift),
    d1 = Math.min(out + oy1 * w, plane + h * w - shift);
  if (d1 - d0 >= 32) col.set(x.subarray(d0 + shift, d1 + shift), d0);
  else for (let i = d0; i < d1; i++) col[i] = x[i + shift];
  for (let oy = oy0; oy < oy1; oy++) {
    const row = out + oy * w;
    for (let i = row; i < row + lo; i++) col[i] = 0;
    for (let i = row + hi; i < row + w; i++) col[i] = 0;
  }
}

/** Zeroes `[from, to)` of `a`: a loop for short runs, where `fill`'s call costs more. */
function zero(a: TypedArray, from: number, to: number): void {
  if (to - from >= 64) a.fill(0, from, to);
  else for (let i = from; i < to; i++) a[i] = 0;
}

/**
 * `conv.im2col`. A stride-1 tap of a convolution whose output rows are at least 32 wide and as wide
 * as the input's is one shifted copy of the plane ({@linkcode shiftedPlane}); otherwise each
 * plane is first copied into a zero-padded scratch plane covering every tap's reach, so that each
 * output row of each tap is a bounds-free strided read of it.
 */
export const im2colRows: CpuTwin = (inputs, outputs, params) => {
  const x = inputs.x, col = outputs.col;
  const { total, b0, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo } = params as Geometry;
  const hw = ho * wo, rows = c * kh * kw;
  const images = total / (hw * rows);
  const shifted = sh === 1 && sw === 1 && wo === w && w >= 8;
  // The padded plane spans input rows [-ph, hp - ph) and columns [-pw, wp - pw).
  const hp = (ho - 1) * sh + (kh - 1) * dh + 1, wp = (wo - 1) * sw + (kw - 1) * dw + 1;
  const padded = shifted
    ? null
    : x instanceof Float64Array
    ? new Float64Array(hp * wp)
    : new Float32Array(hp * wp);
  let out = 0;
  for (let b = 0; b < images; b++) {
    for (let ci = 0; ci < c; ci++) {
      const plane = ((b0 + b) * c + ci) * h * w;
      if (padded) {
        fillPadded(x, plane, h, w, padded, hp, wp, ph, pw);
        for (let ki = 0; ki < kh; ki++) {
          for (let kj = 0; kj < kw; kj++) {
            for (let oy = 0; oy < ho; oy++, out += wo) {
              const src = (oy * sh + ki * dh) * wp + kj * dw;
              if (sw === 1) { for (let ox = 0; ox < wo; ox++) col[out + ox] = padded[src + ox]; }
              else for (let ox = 0; ox < wo; ox++) col[out + ox] = padded[src + ox * sw];
            }
          }
        }
        continue;
      }
      for (let ki = 0; ki < kh; ki++) {
        for (let kj = 0; kj < kw; kj++) {
          const xoff = kj * dw - pw;
          const [lo, hi] = insideRange(xoff, 1, w, wo);
          shiftedPlane(x, col, plane, out, h, w, ho, ki * dh - ph, xoff, lo, hi);
          out += ho * wo;
        }
      }
    }
  }
};

/**
 * Copies plane `x[plane .. plane + h w)` into `padded` (`hp x wp`), shifted by `(ph, pw)`, with
 * zeros wherever the plane does not reach.
 */
function fillPadded(
  x: TypedArray,
  plane: number,
  h: number,
  w: number,
  padded: TypedArray,
  hp: number,
  wp: number,
  ph: number,
  pw: number,
): void {
  const x0 = Math.max(0, pw), x1 = Math.min(wp, w + pw);
  for (let py = 0; py < hp; py++) {
    const y = py - ph, row = py * wp;
    if (y < 0 || y >= h || x0 >= x1) {
      for (let px = 0; px < wp; px++) padded[row + px] = 0;
      continue;
    }
    for (let px = 0; px < x0; px++) padded[row + px] = 0;
    const src = plane + y * w - pw;
    for (let px = x0; px < x1; px++) padded[row + px] = x[src + px];
    for (let px = x1; px < wp; px++) padded[row + px] = 0;
  }
}

/** `conv.col2im` as the scatter of {@linkcode im2colRows}: each column run is added back. */
export const col2imRows: CpuTwin = (inputs, outputs, params) => {
  const col = inputs.col, dx = outputs.dx;
  const { total, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo } = params as Geometry;
  dx.fill(0, 0, total);
  const images = total / (c * h * w);
  let at = 0;
  for (let b = 0; b < images; b++) {
    for (let ci = 0; ci < c; ci++) {
      const plane = (b * c + ci) * h * w;
      for (let ki = 0; ki < kh; ki++) {
        for (let kj = 0; kj < kw; kj++) {
          const xoff = kj * dw - pw;
          const [lo, hi] = insideRange(xoff, sw, w, wo);
          for (let oy = 0; oy < ho; oy++, at += wo) {
            const y = oy * sh + ki * dh - ph;
            if (y < 0 || y >= h) continue;
            const dst = plane + y * w + xoff;
            if (sw === 1) { for (let ox = lo; ox < hi; ox++) dx[dst + ox] += col[at + ox]; }
            else for (let ox = lo; ox < hi; ox++) dx[dst + ox * sw] += col[at + ox];
          }
        }
      }
    }
  }
};
