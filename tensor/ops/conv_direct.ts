/**
 * Direct ("implicit GEMM") convolution kernels for small images: no column
 * matrix, no packing, one dispatch per convolution over all images.
 *
 * - `conv.direct_fwd_<dy>x<dx>`: each invocation computes a register block of
 *   {@linkcode DirectTile.tm} output channels x {@linkcode DirectTile.tn}
 *   output pixels (flattened `oy * Wo + ox`) of one image, looping over the
 *   input channels and taps and reading input pixels and weights straight
 *   from storage. The input coordinate of output `o` and tap `k` is
 *   `(o * a + k * b + c) / d`, valid when that division is exact and lands
 *   inside the input: a forward convolution has `a = stride, b = dilation,
 *   c = -pad, d = 1`; its input gradient, a transposed convolution gathered
 *   from the output gradient, has `a = 1, b = -dilation, c = pad, d = stride`
 *   (`d` is compiled into the kernel, hence the `<dy>x<dx>` variants).
 * - `conv.direct_wgrad`: the weight gradient; each invocation owns a block of
 *   `tm` output channels x `tn` (input channel, tap) entries and loops over a
 *   range of (image, output row) pairs; the pairs are split into partial sums
 *   (summed afterwards) so that every invocation stays under llvmpipe's loop
 *   limit and enough invocations run in parallel.
 *
 * - `conv.window_<tm>x<tn>` / `conv.window_wgrad_<tm>x<tn>` (the fast path on
 *   llvmpipe, where a uniform vec4 load costs 2-3 ns against ~15 ns for a
 *   storage load): `conv.pad_pack` first writes zero-padded (for the input
 *   gradient: zero-dilated by the stride) planes in blocks of whole images or
 *   channel chunks that each fit one 64 KiB window, `conv.weight_pack` lays
 *   the weights out as `[ci][tap][Cout padded to tm]` in up to 4 windows and
 *   `conv.gy_pack` the output gradient as `[pixel][Cout]`; the kernels then
 *   read everything through uniform windows with no bounds checks (vec4 loads
 *   of 4 output channels), one dispatch per (image block, channel chunk).
 *   They return null (the caller falls back) when one padded plane, or one
 *   image's packed output gradient, exceeds a window.
 *
 * On llvmpipe these beat im2col + packed products for the small convolutions
 * of the tiny detectors (output channels of 12-128, images of 4-64 px), where
 * padding `Cout` to 64-row panels and the packing passes cost more than the
 * arithmetic (see `conv.ts`, `useDirect`).
 *
 * @module
 */

import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, UNIFORM_WINDOW_FLOATS } from "../kernel.ts";
import { empty, type Tensor } from "../tensor.ts";
import { zeros } from "./creation.ts";
import { launch } from "./launch.ts";
import { sum } from "./reduce.ts";

/** Register block of the direct kernels. */
export interface DirectTile {
  /** Output channels per invocation. */
  tm: number;
  /** Output pixels (forward) or weight entries (weight gradient) per invocation. */
  tn: number;
  /** Invocations per workgroup. */
  workgroupSize: number;
}

/** Geometry of one convolution (groups 1), as in `conv.ts`. */
export interface DirectGeometry {
  /** Images. */
  n: number;
  /** Input channels. */
  c: number;
  /** Input height. */
  h: number;
  /** Input width. */
  w: number;
  /** Output channels. */
  cout: number;
  /** Kernel height. */
  kh: number;
  /** Kernel width. */
  kw: number;
  /** Stride (y). */
  sh: number;
  /** Stride (x). */
  sw: number;
  /** Padding (y). */
  ph: number;
  /** Padding (x). */
  pw: number;
  /** Dilation (y). */
  dh: number;
  /** Dilation (x). */
  dw: number;
  /** Output height. */
  ho: number;
  /** Output width. */
  wo: number;
}

/** Most loop iterations one invocation of a direct kernel runs (llvmpipe stops near 65,535). */
export const DIRECT_LOOP_LIMIT = 16384;

const kernels = new Map<string, Kernel>();

const FWD_PARAMS = {
  total: "u32",
  pb: "u32",
  ob: "u32",
  cin: "u32",
  hin: "u32",
  win: "u32",
  cout: "u32",
  hw: "u32",
  wout: "u32",
  kh: "u32",
  kw: "u32",
  so: "u32",
  si: "u32",
  c0: "u32",
  c1: "u32",
  accumulate: "u32",
  ay: "i32",
  by: "i32",
  cy: "i32",
  ax: "i32",
  bx: "i32",
  cx: "i32",
} as const;

/** Integer parameters of one direct-kernel launch. */
type Params = Record<string, number>;

/**
 * The direct convolution kernel (see the module doc): `out[n, o, pix] (+)=
 * sum over input channels [c0, c1) and taps of x[n, ci, iy, ix] * w[o * so + ci *
 * si + ki * kw + kj]`, with `iy = (oy * ay + ki * by + cy) / dy` (exact) and
 * likewise for `ix`.
 */
export function directConvKernel(tile: DirectTile, dy: number, dx: number, dtype: DType): Kernel {
  const { tm, tn, workgroupSize: wg } = tile;
  const key = `fwd|${tm}x${tn}|${wg}|${dy}x${dx}|${dtype}`;
  let kernel = kernels.get(key);
  if (kernel) return kernel;
  const L: string[] = [entryPoint(wg)];
  L.push(`  if (i >= p.total) { return; }`);
  L.push(`  let pbk = i % p.pb;`);
  L.push(`  let rest = i / p.pb;`);
  L.push(`  let o0 = (rest % p.ob) * ${tm}u;`);
  L.push(`  let nb = rest / p.ob;`);
  L.push(`  let p0 = pbk * ${tn}u;`);
  L.push(`  let hin = i32(p.hin);`);
  L.push(`  let win = i32(p.win);`);
  for (let t = 0; t < tn; t++) {
    L.push(`  let ok${t} = p0 + ${t}u < p.hw;`);
    L.push(`  let yb${t} = i32((p0 + ${t}u) / p.wout) * p.ay + p.cy;`);
    L.push(`  let xb${t} = i32((p0 + ${t}u) % p.wout) * p.ax + p.cx;`);
  }
  for (let r = 0; r < tm; r++) L.push(`  let wr${r} = min(o0 + ${r}u, p.cout - 1u) * p.so;`);
  for (let r = 0; r < tm; r++) {
    for (let t = 0; t < tn; t++) L.push(`  var acc${r}_${t} = 0.0;`);
  }
  L.push(`  let plane = p.hin * p.win;`);
  L.push(`  for (var ci = p.c0; ci < p.c1; ci++) {`);
  L.push(`    let xo = (nb * p.cin + ci) * plane;`);
  L.push(`    let wc = ci * p.si;`);
  L.push(`    for (var ki = 0u; ki < p.kh; ki++) {`);
  L.push(`      let ky = i32(ki) * p.by;`);
  for (let t = 0; t < tn; t++) {
    L.push(`      let ny${t} = yb${t} + ky;`);
    if (dy === 1) {
      L.push(`      let vy${t} = ok${t} && ny${t} >= 0 && ny${t} < hin;`);
      L.push(`      let ry${t} = xo + u32(max(ny${t}, 0)) * p.win;`);
    } else {
      L.push(
        `      let vy${t} = ok${t} && ny${t} >= 0 && ny${t} % ${dy} == 0 && ny${t} / ${dy} < hin;`,
      );
      L.push(`      let ry${t} = xo + u32(max(ny${t}, 0) / ${dy}) * p.win;`);
    }
  }
  L.push(`      for (var kj = 0u; kj < p.kw; kj++) {`);
  L.push(`        let kx = i32(kj) * p.bx;`);
  L.push(`        let tap = wc + ki * p.kw + kj;`);
  for (let t = 0; t < tn; t++) {
    L.push(`        let nx${t} = xb${t} + kx;`);
    if (dx === 1) {
      L.push(`        let v${t} = vy${t} && nx${t} >= 0 && nx${t} < win;`);
      L.push(
        `        let x${t} = select(0.0, x[select(0u, ry${t} + u32(nx${t}), v${t})], v${t});`,
      );
    } else {
      L.push(
        `        let v${t} = vy${t} && nx${t} >= 0 && nx${t} % ${dx} == 0 && nx${t} / ${dx} < win;`,
      );
      L.push(
        `        let x${t} = select(0.0, x[select(0u, ry${t} + u32(nx${t} / ${dx}), v${t})], v${t});`,
      );
    }
  }
  for (let r = 0; r < tm; r++) L.push(`        let w${r} = w[wr${r} + tap];`);
  for (let r = 0; r < tm; r++) {
    for (let t = 0; t < tn; t++) L.push(`        acc${r}_${t} = fma(w${r}, x${t}, acc${r}_${t});`);
  }
  L.push(`      }`);
  L.push(`    }`);
  L.push(`  }`);
  L.push(`  let add = p.accumulate != 0u;`);
  for (let r = 0; r < tm; r++) {
    L.push(`  if (o0 + ${r}u < p.cout) {`);
    L.push(`    let at${r} = (nb * p.cout + o0 + ${r}u) * p.hw + p0;`);
    for (let t = 0; t < tn; t++) {
      L.push(
        `    if (ok${t}) { out[at${r} + ${t}u] = select(acc${r}_${t}, out[at${r} + ${t}u] + acc${r}_${t}, add); }`,
      );
    }
    L.push(`  }`);
  }
  L.push(`}`);
  kernel = {
    label: `conv.direct_fwd_${dy}x${dx}`,
    inputs: { x: dtype, w: dtype },
    outputs: { out: dtype },
    params: FWD_PARAMS,
    workgroupSize: wg,
    code: L.join("\n"),
    cpu: (ins, outs, p) => directConvCpu(ins.x, ins.w, outs.out, p as Params, tm, tn, dy, dx),
  };
  kernels.set(key, kernel);
  return kernel;
}

/** The CPU twin of {@linkcode directConvKernel}. */
function directConvCpu(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  out: { [i: number]: number },
  p: Params,
  tm: number,
  tn: number,
  dy: number,
  dx: number,
): void {
  const { total, pb, ob, cin, hin, win, cout, hw, wout, kh, kw, so, si, c0, c1, accumulate } = p;
  const { ay, by, cy, ax, bx, cx } = p;
  const plane = hin * win;
  for (let i = 0; i < total; i++) {
    const p0 = (i % pb) * tn, rest = Math.floor(i / pb);
    const o0 = (rest % ob) * tm, nb = Math.floor(rest / ob);
    for (let r = 0; r < tm && o0 + r < cout; r++) {
      const o = o0 + r;
      for (let t = 0; t < tn && p0 + t < hw; t++) {
        const pix = p0 + t;
        const yb = Math.floor(pix / wout) * ay + cy, xb = (pix % wout) * ax + cx;
        let acc = 0;
        for (let ci = c0; ci < c1; ci++) {
          for (let ki = 0; ki < kh; ki++) {
            const ny = yb + ki * by;
            if (ny < 0 || ny % dy !== 0 || ny / dy >= hin) continue;
            for (let kj = 0; kj < kw; kj++) {
              const nx = xb + kj * bx;
              if (nx < 0 || nx % dx !== 0 || nx / dx >= win) continue;
              acc += x[(nb * cin + ci) * plane + (ny / dy) * win + nx / dx] *
                w[o * so + ci * si + ki * kw + kj];
            }
          }
        }
        const at = (nb * cout + o) * hw + pix;
        out[at] = accumulate ? out[at] + acc : acc;
      }
    }
  }
}

const WGRAD_PARAMS = {
  total: "u32",
  eb: "u32",
  ob: "u32",
  ne: "u32",
  rows: "u32",
  rc: "u32",
  cin: "u32",
  hin: "u32",
  win: "u32",
  cout: "u32",
  hout: "u32",
  wout: "u32",
  kh: "u32",
  kw: "u32",
  sh: "u32",
  sw: "u32",
  ph: "u32",
  pw: "u32",
  dh: "u32",
  dw: "u32",
} as const;

/**
 * The weight-gradient kernel (see the module doc): partial `s` of `gw[o, e]`
 * (`e = ci * kh * kw + ki * kw + kj`) sums `gy[n, o, oy, ox] * x[n, ci, oy * sh
 * + ki * dh - ph, ox * sw + kj * dw - pw]` over the (image, output row) pairs
 * `[s * rc, (s + 1) * rc)` and writes `part[(s * cout + o) * ne + e]`.
 */
export function directWeightGradKernel(tile: DirectTile, dtype: DType): Kernel {
  const { tm, tn, workgroupSize: wg } = tile;
  const key = `wgrad|${tm}x${tn}|${wg}|${dtype}`;
  let kernel = kernels.get(key);
  if (kernel) return kernel;
  const L: string[] = [entryPoint(wg)];
  L.push(`  if (i >= p.total) { return; }`);
  L.push(`  let eb0 = (i % p.eb) * ${tn}u;`);
  L.push(`  let rest = i / p.eb;`);
  L.push(`  let o0 = (rest % p.ob) * ${tm}u;`);
  L.push(`  let s = rest / p.ob;`);
  L.push(`  let taps = p.kh * p.kw;`);
  L.push(`  let plane = p.hin * p.win;`);
  L.push(`  let hw = p.hout * p.wout;`);
  L.push(`  let hin = i32(p.hin);`);
  L.push(`  let win = i32(p.win);`);
  for (let t = 0; t < tn; t++) {
    L.push(`  let e${t} = min(eb0 + ${t}u, p.ne - 1u);`);
    L.push(`  let tp${t} = e${t} % taps;`);
    L.push(`  let ky${t} = i32((tp${t} / p.kw) * p.dh) - i32(p.ph);`);
    L.push(`  let kx${t} = i32((tp${t} % p.kw) * p.dw) - i32(p.pw);`);
    L.push(`  let ch${t} = (e${t} / taps) * plane;`);
  }
  for (let r = 0; r < tm; r++) L.push(`  let go${r} = min(o0 + ${r}u, p.cout - 1u) * hw;`);
  for (let r = 0; r < tm; r++) {
    for (let t = 0; t < tn; t++) L.push(`  var acc${r}_${t} = 0.0;`);
  }
  L.push(`  let r0 = s * p.rc;`);
  L.push(`  let r1 = min(r0 + p.rc, p.rows);`);
  L.push(`  for (var row = r0; row < r1; row++) {`);
  L.push(`    let nb = row / p.hout;`);
  L.push(`    let oy = row % p.hout;`);
  L.push(`    let xn = nb * p.cin * plane;`);
  L.push(`    let gn = nb * p.cout * hw + oy * p.wout;`);
  L.push(`    let iy = i32(oy * p.sh);`);
  for (let t = 0; t < tn; t++) {
    L.push(`    let y${t} = iy + ky${t};`);
    L.push(`    let vy${t} = y${t} >= 0 && y${t} < hin;`);
    L.push(`    let ry${t} = xn + ch${t} + u32(max(y${t}, 0)) * p.win;`);
  }
  L.push(`    var ix = 0;`);
  L.push(`    for (var ox = 0u; ox < p.wout; ox++) {`);
  for (let r = 0; r < tm; r++) L.push(`      let g${r} = gy[gn + go${r} + ox];`);
  for (let t = 0; t < tn; t++) {
    L.push(`      let xx${t} = ix + kx${t};`);
    L.push(`      let v${t} = vy${t} && xx${t} >= 0 && xx${t} < win;`);
    L.push(`      let x${t} = select(0.0, x[select(0u, ry${t} + u32(xx${t}), v${t})], v${t});`);
  }
  for (let r = 0; r < tm; r++) {
    for (let t = 0; t < tn; t++) L.push(`      acc${r}_${t} = fma(g${r}, x${t}, acc${r}_${t});`);
  }
  L.push(`      ix += i32(p.sw);`);
  L.push(`    }`);
  L.push(`  }`);
  for (let r = 0; r < tm; r++) {
    L.push(`  if (o0 + ${r}u < p.cout) {`);
    L.push(`    let at${r} = (s * p.cout + o0 + ${r}u) * p.ne + eb0;`);
    for (let t = 0; t < tn; t++) {
      L.push(`    if (eb0 + ${t}u < p.ne) { part[at${r} + ${t}u] = acc${r}_${t}; }`);
    }
    L.push(`  }`);
  }
  L.push(`}`);
  kernel = {
    label: "conv.direct_wgrad",
    inputs: { gy: dtype, x: dtype },
    outputs: { part: dtype },
    params: WGRAD_PARAMS,
    workgroupSize: wg,
    code: L.join("\n"),
    cpu: (ins, outs, p) => directWeightGradCpu(ins.gy, ins.x, outs.part, p as Params, tm, tn),
  };
  kernels.set(key, kernel);
  return kernel;
}

/** The CPU twin of {@linkcode directWeightGradKernel}. */
function directWeightGradCpu(
  gy: ArrayLike<number>,
  x: ArrayLike<number>,
  part: { [i: number]: number },
  p: Params,
  tm: number,
  tn: number,
): void {
  const { total, eb, ob, ne, rows, rc, cin, hin, win, cout, hout, wout } = p;
  const { kh, kw, sh, sw, ph, pw, dh, dw } = p;
  const taps = kh * kw, plane = hin * win, hw = hout * wout;
  for (let i = 0; i < total; i++) {
    const e0 = (i % eb) * tn, rest = Math.floor(i / eb);
    const o0 = (rest % ob) * tm, s = Math.floor(rest / ob);
    const r0 = s * rc, r1 = Math.min(r0 + rc, rows);
    for (let r = 0; r < tm && o0 + r < cout; r++) {
      const o = o0 + r;
      for (let t = 0; t < tn && e0 + t < ne; t++) {
        const e = e0 + t, ci = Math.floor(e / taps), tp = e % taps;
        const ky = Math.floor(tp / kw) * dh - ph, kx = (tp % kw) * dw - pw;
        let acc = 0;
        for (let row = r0; row < r1; row++) {
          const nb = Math.floor(row / hout), oy = row % hout;
          const y = oy * sh + ky;
          if (y < 0 || y >= hin) continue;
          const xr = (nb * cin + ci) * plane + y * win;
          const gr = (nb * cout + o) * hw + oy * wout;
          for (let ox = 0; ox < wout; ox++) {
            const xx = ox * sw + kx;
            if (xx >= 0 && xx < win) acc += gy[gr + ox] * x[xr + xx];
          }
        }
        part[(s * cout + o) * ne + e] = acc;
      }
    }
  }
}

/** Register blocks of the direct kernels on llvmpipe (8-lane SIMD) and on other adapters. */
let fwdTile: DirectTile = { tm: 8, tn: 8, workgroupSize: 8 };
let wgradTile: DirectTile = { tm: 8, tn: 8, workgroupSize: 8 };

/** Sets the register blocks of the direct kernels (benchmarks); returns the previous pair. */
export function setDirectTiles(
  fwd: DirectTile,
  wgrad: DirectTile,
): [DirectTile, DirectTile] {
  const previous: [DirectTile, DirectTile] = [fwdTile, wgradTile];
  fwdTile = fwd;
  wgradTile = wgrad;
  return previous;
}

/**
 * Launches the direct kernel: `out` `[n, cout, hout, wout]` from `x` `[n, cin,
 * hin, win]`; `coords` gives `(a, b, c, d)` per axis (see {@linkcode directConvKernel}).
 */
function runDirect(
  x: Tensor,
  w: Tensor,
  out: Tensor,
  n: number,
  cin: number,
  hin: number,
  win: number,
  cout: number,
  hout: number,
  wout: number,
  kh: number,
  kw: number,
  so: number,
  si: number,
  y: [number, number, number, number],
  xa: [number, number, number, number],
): void {
  const tile = fwdTile;
  const kernel = directConvKernel(tile, y[3], xa[3], x.dtype);
  const hw = hout * wout;
  const pb = Math.ceil(hw / tile.tn), ob = Math.ceil(cout / tile.tm);
  const total = n * pb * ob;
  // Channels per dispatch so that an invocation loops at most DIRECT_LOOP_LIMIT times.
  const per = Math.max(1, Math.floor(DIRECT_LOOP_LIMIT / (kh * (kw + 1) + 1)));
  let c0 = 0;
  do {
    const c1 = Math.min(cin, c0 + per);
    launch(kernel, [x, w], [out], {
      total,
      pb,
      ob,
      cin,
      hin,
      win,
      cout,
      hw,
      wout,
      kh,
      kw,
      so,
      si,
      c0,
      c1,
      accumulate: c0 > 0 ? 1 : 0,
      ay: y[0],
      by: y[1],
      cy: y[2],
      ax: xa[0],
      bx: xa[1],
      cx: xa[2],
    }, Math.ceil(total / tile.workgroupSize));
    c0 = c1;
  } while (c0 < cin);
}

/** Forward convolution `[n, cout, ho, wo]` of `x` with `weight` `[cout, c, kh, kw]` (groups 1). */
export function directForward(x: Tensor, weight: Tensor, g: DirectGeometry): Tensor {
  const out = empty([g.n, g.cout, g.ho, g.wo], x.dtype, x.backend);
  if (out.size === 0) return out;
  const taps = g.kh * g.kw;
  runDirect(x, weight, out, g.n, g.c, g.h, g.w, g.cout, g.ho, g.wo, g.kh, g.kw, g.c * taps, taps, [
    g.sh,
    g.dh,
    -g.ph,
    1,
  ], [g.sw, g.dw, -g.pw, 1]);
  return out;
}

/** Input gradient `[n, c, h, w]` from the output gradient `gy` (a transposed direct convolution). */
export function directGradInput(gy: Tensor, weight: Tensor, g: DirectGeometry): Tensor {
  const dx = empty([g.n, g.c, g.h, g.w], gy.dtype, gy.backend);
  if (dx.size === 0) return dx;
  const taps = g.kh * g.kw;
  runDirect(gy, weight, dx, g.n, g.cout, g.ho, g.wo, g.c, g.h, g.w, g.kh, g.kw, taps, g.c * taps, [
    1,
    -g.dh,
    g.ph,
    g.sh,
  ], [1, -g.dw, g.pw, g.sw]);
  return dx;
}

/** Invocations the weight gradient aims for (partial sums split the rows until then). */
const WGRAD_LANES = 512;

/** Weight gradient `[cout, c, kh, kw]` from the output gradient `gy` and the input `x`. */
export function directGradWeight(gy: Tensor, x: Tensor, g: DirectGeometry): Tensor {
  const tile = wgradTile;
  const taps = g.kh * g.kw, ne = g.c * taps, rows = g.n * g.ho;
  const eb = Math.ceil(ne / tile.tn), ob = Math.ceil(g.cout / tile.tm);
  const maxRows = Math.max(1, Math.floor(DIRECT_LOOP_LIMIT / (g.wo + 1)));
  // At least enough splits for the loop limit; more while invocations are few and rows long.
  let splits = Math.ceil(rows / maxRows);
  while (splits * eb * ob < WGRAD_LANES && rows / (splits * 2) >= 4) splits *= 2;
  splits = Math.max(1, Math.min(splits, rows));
  const rc = Math.max(1, Math.ceil(rows / splits));
  splits = Math.max(1, Math.ceil(rows / rc));
  const part = empty(
    splits === 1 ? [g.cout, g.c, g.kh, g.kw] : [splits, g.cout, g.c, g.kh, g.kw],
    x.dtype,
    x.backend,
  );
  if (rows === 0) {
    part.dispose();
    return zeros([g.cout, g.c, g.kh, g.kw], { dtype: x.dtype, backend: x.backend });
  }
  const total = splits * eb * ob;
  launch(directWeightGradKernel(tile, x.dtype), [gy, x], [part], {
    total,
    eb,
    ob,
    ne,
    rows,
    rc,
    cin: g.c,
    hin: g.h,
    win: g.w,
    cout: g.cout,
    hout: g.ho,
    wout: g.wo,
    kh: g.kh,
    kw: g.kw,
    sh: g.sh,
    sw: g.sw,
    ph: g.ph,
    pw: g.pw,
    dh: g.dh,
    dw: g.dw,
  }, Math.ceil(total / tile.workgroupSize));
  if (splits === 1) return part;
  const gw = sum(part, 0);
  part.dispose();
  return gw;
}

/** Weight windows one `conv.window` dispatch binds. */
const WSEGS = 4;
const WINDOW = UNIFORM_WINDOW_FLOATS;

const PAD_PARAMS = {
  total: "u32",
  c: "u32",
  hp: "u32",
  wp: "u32",
  hs: "u32",
  ws: "u32",
  qy: "u32",
  qx: "u32",
  dy: "u32",
  dx: "u32",
  ni: "u32",
  cc: "u32",
  nchunks: "u32",
  block: "u32",
} as const;

/**
 * `conv.pad_pack` (one invocation per padded row, `total` rows): copies `src` `[n, c, hs, ws]` into zero-padded (and, for a
 * transposed convolution, zero-dilated) planes `hp x wp`: element `(v, u)` of a
 * plane is `src[(v - qy) / dy, (u - qx) / dx]` where that division is exact
 * and inside, else 0. Planes are grouped in blocks of `ni` images x `cc`
 * channels, `block` floats apart (a multiple of 64, so each block starts a
 * uniform window).
 */
export function padPackKernel(): Kernel {
  const key = "pad_pack";
  let kernel = kernels.get(key);
  if (kernel) return kernel;
  kernel = {
    label: "conv.pad_pack",
    inputs: { src: "f32" },
    outputs: { dst: "f32" },
    params: PAD_PARAMS,
    workgroupSize: 64,
    code: `${entryPoint(64)}
  // One invocation per padded row (total = rows); the index arithmetic is paid once per row.
  if (i >= p.total) { return; }
  let v = i % p.hp;
  let ci = (i / p.hp) % p.c;
  let img = i / (p.hp * p.c);
  let sy = i32(v) - i32(p.qy);
  let oky = sy >= 0 && u32(sy) % p.dy == 0u && u32(sy) / p.dy < p.hs;
  let srow = ((img * p.c + ci) * p.hs + u32(max(sy, 0)) / p.dy) * p.ws;
  let blk = (img / p.ni) * p.nchunks + ci / p.cc;
  let drow = blk * p.block + ((img % p.ni) * p.cc + ci % p.cc) * p.hp * p.wp + v * p.wp;
  var sx = -i32(p.qx);
  var ph = 0u;
  var col = 0u;
  for (var u = 0u; u < p.wp; u++) {
    let ok = oky && sx >= 0 && ph == 0u && col < p.ws;
    dst[drow + u] = select(0.0, src[select(0u, srow + col, ok)], ok);
    sx += 1;
    if (sx > 0) {
      ph += 1u;
      if (ph == p.dx) { ph = 0u; col += 1u; }
    }
  }
}`,
    cpu(ins, outs, p) {
      const src = ins.src, dst = outs.dst;
      const { total, c, hp, wp, hs, ws, qy, qx, dy, dx, ni, cc, nchunks, block } = p as Params;
      for (let i = 0; i < total * wp; i++) {
        const u = i % wp, v = Math.floor(i / wp) % hp;
        const ci = Math.floor(i / (wp * hp)) % c, img = Math.floor(i / (wp * hp * c));
        const sy = v - qy, sx = u - qx;
        const ok = sy >= 0 && sx >= 0 && sy % dy === 0 && sx % dx === 0 && sy / dy < hs &&
          sx / dx < ws;
        const blk = Math.floor(img / ni) * nchunks + Math.floor(ci / cc);
        const local = ((img % ni) * cc + (ci % cc)) * hp * wp + v * wp + u;
        dst[blk * block + local] = ok ? src[((img * c + ci) * hs + sy / dy) * ws + sx / dx] : 0;
      }
    },
  };
  kernels.set(key, kernel);
  return kernel;
}

const WPACK_PARAMS = {
  total: "u32",
  taps: "u32",
  cout: "u32",
  cpad: "u32",
  so: "u32",
  si: "u32",
  flip: "u32",
  cc: "u32",
  cpw: "u32",
  spc: "u32",
} as const;

/**
 * `conv.weight_pack`: lays out weights for `conv.window`: entry `(ci, tap, o)`
 * (`o < cpad`, zero past `cout`) goes to window slot `floor(ci / cc) * spc +
 * floor((ci % cc) / cpw)`, at `(((ci % cc) % cpw) * taps + tap) * cpad + o`; it
 * reads `w[o * so + ci * si + (flip ? taps - 1 - tap : tap)]`.
 */
export function weightPackKernel(): Kernel {
  const key = "weight_pack";
  let kernel = kernels.get(key);
  if (kernel) return kernel;
  kernel = {
    label: "conv.weight_pack",
    inputs: { w: "f32" },
    outputs: { dst: "f32" },
    params: WPACK_PARAMS,
    workgroupSize: 64,
    code: `${entryPoint(64)}
  // One invocation per (ci, tap) (total of them), looping over the output channels.
  if (i >= p.total) { return; }
  let tap = i % p.taps;
  let ci = i / p.taps;
  let t = select(tap, p.taps - 1u - tap, p.flip != 0u);
  let cl = ci % p.cc;
  let slot = (ci / p.cc) * p.spc + cl / p.cpw;
  let d0 = slot * ${WINDOW}u + ((cl % p.cpw) * p.taps + tap) * p.cpad;
  let s0 = ci * p.si + t;
  for (var o = 0u; o < p.cpad; o++) {
    let ok = o < p.cout;
    dst[d0 + o] = select(0.0, w[select(0u, s0 + o * p.so, ok)], ok);
  }
}`,
    cpu(ins, outs, p) {
      const w = ins.w, dst = outs.dst;
      const { total, taps, cout, cpad, so, si, flip, cc, cpw, spc } = p as Params;
      for (let i = 0; i < total * cpad; i++) {
        const o = i % cpad, tap = Math.floor(i / cpad) % taps, ci = Math.floor(i / (cpad * taps));
        const t = flip ? taps - 1 - tap : tap;
        const cl = ci % cc, slot = Math.floor(ci / cc) * spc + Math.floor(cl / cpw);
        dst[slot * WINDOW + ((cl % cpw) * taps + tap) * cpad + o] = o < cout
          ? w[o * so + ci * si + t]
          : 0;
      }
    },
  };
  kernels.set(key, kernel);
  return kernel;
}

const WIN_PARAMS = {
  total: "u32",
  pb: "u32",
  ob: "u32",
  n0: "u32",
  cout: "u32",
  cpad: "u32",
  hw: "u32",
  wout: "u32",
  hpwp: "u32",
  wp: "u32",
  sh: "u32",
  sw: "u32",
  dh: "u32",
  dw: "u32",
  kh: "u32",
  kw: "u32",
  xdelta: "u32",
  ximg: "u32",
  cpw: "u32",
  cnt0: "u32",
  cnt1: "u32",
  cnt2: "u32",
  cnt3: "u32",
  accumulate: "u32",
} as const;

/**
 * `conv.window`: a convolution of padded planes (see {@linkcode padPackKernel})
 * read through a 64 KiB uniform window `xw`, with packed weights (see
 * {@linkcode weightPackKernel}) read through windows `w0..w3` (`cnt<s>` input
 * channels from window `s`). Each invocation computes `tm` output channels
 * (`tm` a multiple of 4, as vec4 accumulators) x `tn` output pixels of one
 * image, with no bounds checks in its inner loop.
 */
export function windowConvKernel(tile: DirectTile): Kernel {
  const { tm, tn, workgroupSize: wg } = tile;
  const key = `window|${tm}x${tn}|${wg}`;
  let kernel = kernels.get(key);
  if (kernel) return kernel;
  const q4 = tm / 4;
  const L: string[] = [entryPoint(wg)];
  L.push(`  if (i >= p.total) { return; }`);
  L.push(`  let p0 = (i % p.pb) * ${tn}u;`);
  L.push(`  let rest = i / p.pb;`);
  L.push(`  let o0 = (rest % p.ob) * ${tm}u;`);
  L.push(`  let img = rest / p.ob;`);
  L.push(`  let ib = p.xdelta + img * p.ximg;`);
  for (let t = 0; t < tn; t++) {
    L.push(`  let px${t} = min(p0 + ${t}u, p.hw - 1u);`);
    L.push(
      `  let b${t} = ib + (px${t} / p.wout) * p.sh * p.wp + (px${t} % p.wout) * p.sw;`,
    );
  }
  for (let q = 0; q < q4; q++) {
    for (let t = 0; t < tn; t++) L.push(`  var acc${q}_${t} = vec4<f32>(0.0);`);
  }
  L.push(`  let cq = p.cpad / 4u;`);
  L.push(`  let taps = p.kh * p.kw;`);
  L.push(`  let wo0 = o0 / 4u;`);
  for (let s = 0; s < WSEGS; s++) {
    L.push(`  for (var cl = 0u; cl < p.cnt${s}; cl++) {`);
    L.push(`    let xc = (${s}u * p.cpw + cl) * p.hpwp;`);
    L.push(`    let wc = cl * taps * cq + wo0;`);
    L.push(`    for (var ki = 0u; ki < p.kh; ki++) {`);
    L.push(`      let xr = xc + ki * p.dh * p.wp;`);
    L.push(`      let wr = wc + ki * p.kw * cq;`);
    L.push(`      for (var kj = 0u; kj < p.kw; kj++) {`);
    L.push(`        let e = xr + kj * p.dw;`);
    L.push(`        let wt = wr + kj * cq;`);
    for (let t = 0; t < tn; t++) {
      L.push(`        let a${t} = b${t} + e;`);
      L.push(`        let x${t} = vec4<f32>(xw[a${t} / 4u][a${t} % 4u]);`);
    }
    for (let q = 0; q < q4; q++) L.push(`        let wv${q} = w${s}[wt + ${q}u];`);
    for (let q = 0; q < q4; q++) {
      for (let t = 0; t < tn; t++) {
        L.push(`        acc${q}_${t} = fma(wv${q}, x${t}, acc${q}_${t});`);
      }
    }
    L.push(`      }`);
    L.push(`    }`);
    L.push(`  }`);
  }
  L.push(`  let add = p.accumulate != 0u;`);
  for (let q = 0; q < q4; q++) {
    for (let e = 0; e < 4; e++) {
      const r = q * 4 + e;
      L.push(`  if (o0 + ${r}u < p.cout) {`);
      L.push(`    let at${r} = ((p.n0 + img) * p.cout + o0 + ${r}u) * p.hw + p0;`);
      for (let t = 0; t < tn; t++) {
        L.push(
          `    if (p0 + ${t}u < p.hw) { out[at${r} + ${t}u] = select(acc${q}_${t}[${e}], out[at${r} + ${t}u] + acc${q}_${t}[${e}], add); }`,
        );
      }
      L.push(`  }`);
    }
  }
  L.push(`}`);
  const uniforms = ["xw"];
  for (let s = 0; s < WSEGS; s++) uniforms.push(`w${s}`);
  kernel = {
    label: `conv.window_${tm}x${tn}`,
    inputs: {},
    outputs: { out: "f32" },
    params: WIN_PARAMS,
    workgroupSize: wg,
    code: L.join("\n"),
    uniforms,
    cpu: (ins, outs, p) => windowConvCpu(ins, outs.out, p as Params, tm, tn),
  };
  kernels.set(key, kernel);
  return kernel;
}

/** The CPU twin of {@linkcode windowConvKernel}. */
function windowConvCpu(
  ins: Record<string, ArrayLike<number>>,
  out: { [i: number]: number },
  p: Params,
  tm: number,
  tn: number,
): void {
  const { total, pb, ob, n0, cout, cpad, hw, wout, hpwp, wp, sh, sw, dh, dw, kh, kw } = p;
  const { xdelta, ximg, cpw, accumulate } = p;
  const xw = ins.xw, taps = kh * kw;
  const counts = [p.cnt0, p.cnt1, p.cnt2, p.cnt3];
  for (let i = 0; i < total; i++) {
    const p0 = (i % pb) * tn, rest = Math.floor(i / pb);
    const o0 = (rest % ob) * tm, img = Math.floor(rest / ob);
    for (let r = 0; r < tm && o0 + r < cout; r++) {
      const o = o0 + r;
      for (let t = 0; t < tn && p0 + t < hw; t++) {
        const pix = p0 + t;
        const b = xdelta + img * ximg + Math.floor(pix / wout) * sh * wp + (pix % wout) * sw;
        let acc = 0;
        for (let s = 0; s < WSEGS; s++) {
          const ws = ins[`w${s}`];
          for (let cl = 0; cl < counts[s]; cl++) {
            const xc = (s * cpw + cl) * hpwp;
            for (let ki = 0; ki < kh; ki++) {
              for (let kj = 0; kj < kw; kj++) {
                acc += xw[b + xc + ki * dh * wp + kj * dw] *
                  ws[(cl * taps + ki * kw + kj) * cpad + o];
              }
            }
          }
        }
        const at = ((n0 + img) * cout + o) * hw + pix;
        out[at] = accumulate ? out[at] + acc : acc;
      }
    }
  }
}

let windowTile: DirectTile = { tm: 8, tn: 8, workgroupSize: 8 };

/** Sets the register block of `conv.window` (benchmarks); returns the previous one. */
export function setWindowTile(tile: DirectTile): DirectTile {
  const previous = windowTile;
  windowTile = tile;
  return previous;
}

/** How a source is padded for a window convolution. */
interface PadSpec {
  /** Padding before the first row / column (in padded coordinates). */
  qy: number;
  qx: number;
  /** Dilation of the source (a transposed convolution's stride). */
  dy: number;
  dx: number;
  /** Padded plane size. */
  hp: number;
  wp: number;
}

/**
 * The window convolution: `out` `[n, cout, hout, wout]` from `src` `[n, cs, hs,
 * ws]` padded by `pad`, stride `(sh, sw)`, dilation `(dh, dw)`, kernel `kh x
 * kw`, weight entry `(o, ci, tap)` at `o * so + ci * si + tap` (taps reversed
 * with `flip`). Returns null (nothing launched) when a padded plane or one
 * input channel's weights do not fit a window.
 */
function windowConv(
  src: Tensor,
  weight: Tensor,
  n: number,
  cs: number,
  hs: number,
  ws: number,
  cout: number,
  hout: number,
  wout: number,
  kh: number,
  kw: number,
  sh: number,
  sw: number,
  dh: number,
  dw: number,
  so: number,
  si: number,
  flip: boolean,
  pad: PadSpec,
): Tensor | null {
  const tile = windowTile;
  const hpwp = pad.hp * pad.wp, taps = kh * kw;
  const cpad = Math.ceil(cout / tile.tm) * tile.tm;
  const cpw = Math.floor(WINDOW / (taps * cpad));
  if (hpwp > WINDOW - 63 || cpw < 1 || src.dtype !== "f32") return null;
  let ni: number, cc: number;
  if (cs * hpwp <= WINDOW - 63 && cs <= WSEGS * cpw) {
    cc = cs;
    ni = Math.max(1, Math.min(n, Math.floor((WINDOW - 63) / (cs * hpwp))));
  } else {
    ni = 1;
    cc = Math.min(cs, Math.floor((WINDOW - 63) / hpwp), WSEGS * cpw);
  }
  // One invocation loops over cc * kh * (kw + 1) taps at most.
  if (cc * kh * (kw + 1) > DIRECT_LOOP_LIMIT) cc = Math.floor(DIRECT_LOOP_LIMIT / (kh * (kw + 1)));
  const spc = Math.ceil(cc / cpw), nchunks = Math.ceil(cs / cc), ngroups = Math.ceil(n / ni);
  const block = Math.ceil((ni * cc * hpwp) / 64) * 64;
  const backend = src.backend;
  const xp = empty([ngroups * nchunks * block + WINDOW], "f32", backend);
  const padTotal = n * cs * pad.hp;
  launch(padPackKernel(), [src], [xp], {
    total: padTotal,
    c: cs,
    hp: pad.hp,
    wp: pad.wp,
    hs,
    ws,
    qy: pad.qy,
    qx: pad.qx,
    dy: pad.dy,
    dx: pad.dx,
    ni,
    cc,
    nchunks,
    block,
  }, Math.ceil(padTotal / 64));
  const wp = empty([nchunks * spc * WINDOW], "f32", backend);
  const wTotal = cs * taps;
  launch(weightPackKernel(), [weight], [wp], {
    total: wTotal,
    taps,
    cout,
    cpad,
    so,
    si,
    flip: flip ? 1 : 0,
    cc,
    cpw,
    spc,
  }, Math.ceil(wTotal / 64));
  const out = empty([n, cout, hout, wout], "f32", backend);
  const kernel = windowConvKernel(tile);
  const hw = hout * wout;
  const pb = Math.ceil(hw / tile.tn), ob = Math.ceil(cout / tile.tm);
  const outBinding = [{ storage: out.storage, dtype: "f32" as const, size: out.size }];
  for (let gi = 0; gi < ngroups; gi++) {
    const nig = Math.min(ni, n - gi * ni);
    for (let k = 0; k < nchunks; k++) {
      const cnt = Math.min(cc, cs - k * cc);
      const counts = [0, 1, 2, 3].map((s) => Math.max(0, Math.min(cpw, cnt - s * cpw)));
      const uniformInputs = [{ storage: xp.storage, byteOffset: (gi * nchunks + k) * block * 4 }];
      for (let s = 0; s < WSEGS; s++) {
        const slot = k * spc + (s < spc ? s : 0);
        uniformInputs.push({ storage: wp.storage, byteOffset: slot * WINDOW * 4 });
      }
      const total = nig * ob * pb;
      backend.run({
        kernel,
        inputs: [],
        outputs: outBinding,
        params: {
          total,
          pb,
          ob,
          n0: gi * ni,
          cout,
          cpad,
          hw,
          wout,
          hpwp,
          wp: pad.wp,
          sh,
          sw,
          dh,
          dw,
          kh,
          kw,
          xdelta: 0,
          ximg: cc * hpwp,
          cpw,
          cnt0: counts[0],
          cnt1: counts[1],
          cnt2: counts[2],
          cnt3: counts[3],
          accumulate: k > 0 ? 1 : 0,
        },
        workgroups: Math.ceil(total / tile.workgroupSize),
        uniformInputs,
      });
    }
  }
  xp.dispose();
  wp.dispose();
  return out;
}

/** Forward convolution through `conv.window`, or null where it does not apply. */
export function windowForward(x: Tensor, weight: Tensor, g: DirectGeometry): Tensor | null {
  if (g.n === 0) return null;
  const hp = (g.ho - 1) * g.sh + (g.kh - 1) * g.dh + 1;
  const wp = (g.wo - 1) * g.sw + (g.kw - 1) * g.dw + 1;
  const taps = g.kh * g.kw;
  return windowConv(
    x,
    weight,
    g.n,
    g.c,
    g.h,
    g.w,
    g.cout,
    g.ho,
    g.wo,
    g.kh,
    g.kw,
    g.sh,
    g.sw,
    g.dh,
    g.dw,
    g.c * taps,
    taps,
    false,
    { qy: g.ph, qx: g.pw, dy: 1, dx: 1, hp, wp },
  );
}

/**
 * Input gradient through `conv.window` (the output gradient dilated by the
 * stride, padded, and convolved with the flipped, transposed weight), or null
 * where it does not apply.
 */
export function windowGradInput(gy: Tensor, weight: Tensor, g: DirectGeometry): Tensor | null {
  const qy = g.dh * (g.kh - 1) - g.ph, qx = g.dw * (g.kw - 1) - g.pw;
  if (g.n === 0 || qy < 0 || qx < 0) return null;
  const taps = g.kh * g.kw;
  return windowConv(
    gy,
    weight,
    g.n,
    g.cout,
    g.ho,
    g.wo,
    g.c,
    g.h,
    g.w,
    g.kh,
    g.kw,
    1,
    1,
    g.dh,
    g.dw,
    taps,
    g.c * taps,
    true,
    { qy, qx, dy: g.sh, dx: g.sw, hp: g.h + g.dh * (g.kh - 1), wp: g.w + g.dw * (g.kw - 1) },
  );
}

/**
 * `conv.gy_pack` (one invocation per (image, channel `o < cpad`), `total` of
 * them): lays out the output gradient `gy` `[n, cout, hw]` as `[pixel][cpad]`
 * planes, `ni` images per block of `block` floats (zero past `cout`), for
 * vec4 loads of 4 output channels through a uniform window.
 */
export function gyPackKernel(): Kernel {
  const key = "gy_pack";
  let kernel = kernels.get(key);
  if (kernel) return kernel;
  kernel = {
    label: "conv.gy_pack",
    inputs: { gy: "f32" },
    outputs: { dst: "f32" },
    params: { total: "u32", cout: "u32", cpad: "u32", hw: "u32", ni: "u32", block: "u32" },
    workgroupSize: 64,
    code: `${entryPoint(64)}
  if (i >= p.total) { return; }
  let o = i % p.cpad;
  let img = i / p.cpad;
  let ok = o < p.cout;
  let s0 = (img * p.cout + min(o, p.cout - 1u)) * p.hw;
  let d0 = (img / p.ni) * p.block + (img % p.ni) * p.hw * p.cpad + o;
  for (var q = 0u; q < p.hw; q++) {
    dst[d0 + q * p.cpad] = select(0.0, gy[s0 + q], ok);
  }
}`,
    cpu(ins, outs, p) {
      const gy = ins.gy, dst = outs.dst;
      const { total, cout, cpad, hw, ni, block } = p as Params;
      for (let i = 0; i < total; i++) {
        const o = i % cpad, img = Math.floor(i / cpad);
        const d0 = Math.floor(img / ni) * block + (img % ni) * hw * cpad + o;
        for (let q = 0; q < hw; q++) {
          dst[d0 + q * cpad] = o < cout ? gy[(img * cout + o) * hw + q] : 0;
        }
      }
    },
  };
  kernels.set(key, kernel);
  return kernel;
}

const WWGRAD_PARAMS = {
  total: "u32",
  eb: "u32",
  ob: "u32",
  nec: "u32",
  ebase: "u32",
  ne: "u32",
  cout: "u32",
  cpad: "u32",
  taps: "u32",
  kw: "u32",
  hpwp: "u32",
  wp: "u32",
  sh: "u32",
  sw: "u32",
  dh: "u32",
  dw: "u32",
  ximg: "u32",
  nig: "u32",
  ho: "u32",
  wo: "u32",
  accumulate: "u32",
} as const;

/**
 * `conv.window_wgrad`: the weight gradient from padded input planes (window
 * `xw`, see {@linkcode padPackKernel}) and the packed output gradient (window
 * `gw`, see {@linkcode gyPackKernel}) of `nig` images: each invocation owns `tm`
 * output channels x `tn` weight entries `e = ci * taps + tap` of this channel
 * chunk (entries `[ebase, ebase + nec)` of `ne`) and loops over the images'
 * output pixels; `out[o * ne + e]` is written, or added to with `accumulate`.
 */
export function windowWeightGradKernel(tile: DirectTile): Kernel {
  const { tm, tn, workgroupSize: wg } = tile;
  const key = `window_wgrad|${tm}x${tn}|${wg}`;
  let kernel = kernels.get(key);
  if (kernel) return kernel;
  const q4 = tm / 4;
  const L: string[] = [entryPoint(wg)];
  L.push(`  if (i >= p.total) { return; }`);
  L.push(`  let e0 = (i % p.eb) * ${tn}u;`);
  L.push(`  let o0 = ((i / p.eb) % p.ob) * ${tm}u;`);
  L.push(`  let cq = p.cpad / 4u;`);
  L.push(`  let wo0 = o0 / 4u;`);
  for (let t = 0; t < tn; t++) {
    L.push(`  let el${t} = min(e0 + ${t}u, p.nec - 1u);`);
    L.push(`  let tp${t} = el${t} % p.taps;`);
    L.push(
      `  let f${t} = (el${t} / p.taps) * p.hpwp + (tp${t} / p.kw) * p.dh * p.wp + (tp${t} % p.kw) * p.dw;`,
    );
  }
  for (let q = 0; q < q4; q++) {
    for (let t = 0; t < tn; t++) L.push(`  var acc${q}_${t} = vec4<f32>(0.0);`);
  }
  L.push(`  for (var img = 0u; img < p.nig; img++) {`);
  L.push(`    for (var oy = 0u; oy < p.ho; oy++) {`);
  L.push(`      let xr = img * p.ximg + oy * p.sh * p.wp;`);
  L.push(`      let gr = (img * p.ho + oy) * p.wo * cq + wo0;`);
  L.push(`      for (var ox = 0u; ox < p.wo; ox++) {`);
  L.push(`        let xb = xr + ox * p.sw;`);
  L.push(`        let gb = gr + ox * cq;`);
  for (let q = 0; q < q4; q++) L.push(`        let g${q} = gw[gb + ${q}u];`);
  for (let t = 0; t < tn; t++) {
    L.push(`        let a${t} = xb + f${t};`);
    L.push(`        let x${t} = vec4<f32>(xw[a${t} / 4u][a${t} % 4u]);`);
  }
  for (let q = 0; q < q4; q++) {
    for (let t = 0; t < tn; t++) L.push(`        acc${q}_${t} = fma(g${q}, x${t}, acc${q}_${t});`);
  }
  L.push(`      }`);
  L.push(`    }`);
  L.push(`  }`);
  L.push(`  let add = p.accumulate != 0u;`);
  for (let q = 0; q < q4; q++) {
    for (let e = 0; e < 4; e++) {
      const r = q * 4 + e;
      L.push(`  if (o0 + ${r}u < p.cout) {`);
      L.push(`    let at${r} = (o0 + ${r}u) * p.ne + p.ebase + e0;`);
      for (let t = 0; t < tn; t++) {
        L.push(
          `    if (e0 + ${t}u < p.nec) { out[at${r} + ${t}u] = select(acc${q}_${t}[${e}], out[at${r} + ${t}u] + acc${q}_${t}[${e}], add); }`,
        );
      }
      L.push(`  }`);
    }
  }
  L.push(`}`);
  kernel = {
    label: `conv.window_wgrad_${tm}x${tn}`,
    inputs: {},
    outputs: { out: "f32" },
    params: WWGRAD_PARAMS,
    workgroupSize: wg,
    code: L.join("\n"),
    uniforms: ["xw", "gw"],
    cpu: (ins, outs, p) => windowWeightGradCpu(ins.xw, ins.gw, outs.out, p as Params, tm, tn),
  };
  kernels.set(key, kernel);
  return kernel;
}

/** The CPU twin of {@linkcode windowWeightGradKernel}. */
function windowWeightGradCpu(
  xw: ArrayLike<number>,
  gw: ArrayLike<number>,
  out: { [i: number]: number },
  p: Params,
  tm: number,
  tn: number,
): void {
  const { total, eb, ob, nec, ebase, ne, cout, cpad, taps, kw, hpwp, wp, sh, sw, dh, dw } = p;
  const { ximg, nig, ho, wo, accumulate } = p;
  for (let i = 0; i < total; i++) {
    const e0 = (i % eb) * tn, o0 = (Math.floor(i / eb) % ob) * tm;
    for (let r = 0; r < tm && o0 + r < cout; r++) {
      const o = o0 + r;
      for (let t = 0; t < tn && e0 + t < nec; t++) {
        const el = e0 + t, tp = el % taps;
        const f = Math.floor(el / taps) * hpwp + Math.floor(tp / kw) * dh * wp + (tp % kw) * dw;
        let acc = 0;
        for (let img = 0; img < nig; img++) {
          for (let oy = 0; oy < ho; oy++) {
            for (let ox = 0; ox < wo; ox++) {
              acc += gw[((img * ho + oy) * wo + ox) * cpad + o] *
                xw[img * ximg + oy * sh * wp + ox * sw + f];
            }
          }
        }
        const at = o * ne + ebase + el;
        out[at] = accumulate ? out[at] + acc : acc;
      }
    }
  }
}

let windowWgradTile: DirectTile = { tm: 8, tn: 8, workgroupSize: 8 };

/** Sets the register block of `conv.window_wgrad` (benchmarks); returns the previous one. */
export function setWindowWeightGradTile(tile: DirectTile): DirectTile {
  const previous = windowWgradTile;
  windowWgradTile = tile;
  return previous;
}

/**
 * Weight gradient `[cout, c, kh, kw]` through `conv.window_wgrad`, or null
 * where the packed output gradient of one image or a padded plane does not fit a window.
 */
export function windowGradWeight(gy: Tensor, x: Tensor, g: DirectGeometry): Tensor | null {
  const tile = windowWgradTile;
  if (g.n === 0 || x.dtype !== "f32") return null;
  const hp = (g.ho - 1) * g.sh + (g.kh - 1) * g.dh + 1;
  const wp = (g.wo - 1) * g.sw + (g.kw - 1) * g.dw + 1;
  const hpwp = hp * wp, hw = g.ho * g.wo, taps = g.kh * g.kw;
  const cpad = Math.ceil(g.cout / tile.tm) * tile.tm;
  if (hw * cpad > WINDOW || hpwp > WINDOW - 63) return null;
  const fitG = Math.floor(WINDOW / (hw * cpad));
  let ni: number, cc: number;
  if (g.c * hpwp <= WINDOW - 63) {
    cc = g.c;
    ni = Math.max(1, Math.min(g.n, fitG, Math.floor((WINDOW - 63) / (g.c * hpwp))));
  } else {
    ni = 1;
    cc = Math.floor((WINDOW - 63) / hpwp);
  }
  // Loop iterations of one invocation: images x (rows x (columns + 1) + 1).
  ni = Math.max(1, Math.min(ni, Math.floor(DIRECT_LOOP_LIMIT / (g.ho * (g.wo + 1) + 1))));
  if (g.ho * (g.wo + 1) + 1 > DIRECT_LOOP_LIMIT) return null;
  const nchunks = Math.ceil(g.c / cc), ngroups = Math.ceil(g.n / ni);
  const block = Math.ceil((ni * cc * hpwp) / 64) * 64;
  const gblock = Math.ceil((ni * hw * cpad) / 64) * 64;
  const backend = x.backend;
  const xp = empty([ngroups * nchunks * block + WINDOW], "f32", backend);
  const rows = g.n * g.c * hp;
  launch(padPackKernel(), [x], [xp], {
    total: rows,
    c: g.c,
    hp,
    wp,
    hs: g.h,
    ws: g.w,
    qy: g.ph,
    qx: g.pw,
    dy: 1,
    dx: 1,
    ni,
    cc,
    nchunks,
    block,
  }, Math.ceil(rows / 64));
  const gp = empty([ngroups * gblock + WINDOW], "f32", backend);
  launch(gyPackKernel(), [gy], [gp], {
    total: g.n * cpad,
    cout: g.cout,
    cpad,
    hw,
    ni,
    block: gblock,
  }, Math.ceil((g.n * cpad) / 64));
  const ne = g.c * taps;
  const out = empty([g.cout, g.c, g.kh, g.kw], "f32", backend);
  const kernel = windowWeightGradKernel(tile);
  const ob = Math.ceil(g.cout / tile.tm);
  const outBinding = [{ storage: out.storage, dtype: "f32" as const, size: out.size }];
  for (let gi = 0; gi < ngroups; gi++) {
    const nig = Math.min(ni, g.n - gi * ni);
    for (let k = 0; k < nchunks; k++) {
      const nec = Math.min(cc, g.c - k * cc) * taps;
      const eb = Math.ceil(nec / tile.tn);
      const total = eb * ob;
      backend.run({
        kernel,
        inputs: [],
        outputs: outBinding,
        params: {
          total,
          eb,
          ob,
          nec,
          ebase: k * cc * taps,
          ne,
          cout: g.cout,
          cpad,
          taps,
          kw: g.kw,
          hpwp,
          wp,
          sh: g.sh,
          sw: g.sw,
          dh: g.dh,
          dw: g.dw,
          ximg: cc * hpwp,
          nig,
          ho: g.ho,
          wo: g.wo,
          accumulate: gi > 0 ? 1 : 0,
        },
        workgroups: Math.ceil(total / tile.workgroupSize),
        uniformInputs: [
          { storage: xp.storage, byteOffset: (gi * nchunks + k) * block * 4 },
          { storage: gp.storage, byteOffset: gi * gblock * 4 },
        ],
      });
    }
  }
  xp.dispose();
  gp.dispose();
  return out;
}
