/**
 * Direct ("implicit GEMM") convolution kernels for small images: no column
 * matrix and no products of padded panels.
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

import {
  entryPoint,
  type Kernel,
  kernelCache,
  UNIFORM_WINDOW_FLOATS,
  UNIFORM_WINDOW_SPAN,
} from "../../kernel.ts";
import { empty, type Tensor } from "../../tensor.ts";
import type { Geometry } from "../conv_geometry.ts";
import { launch, launchWindowed } from "../launch.ts";

/** Register block of the window kernels. */
export interface DirectTile {
  /** Output channels per invocation. */
  tm: number;
  /** Output pixels (forward) or weight entries (weight gradient) per invocation. */
  tn: number;
  /** Invocations per workgroup. */
  workgroupSize: number;
}

const cached = kernelCache();

/**
 * Whether `conv2d` takes the direct kernels for geometry `g` (groups 1 only): the profile's
 * `convDirect`, `"auto"` meaning f32 where uniform windows pay.
 */
export function useDirect(x: Tensor, g: Geometry): boolean {
  const { convDirect: mode, uniformWindows } = x.backend.profile;
  if (mode === "off" || g.groups !== 1) return false;
  return mode === "on" || (uniformWindows && x.dtype === "f32");
}

/** Integer parameters of one direct-kernel launch. */
type Params = Record<string, number>;

/** Weight windows one `conv.window` dispatch binds. */
const WSEGS = 4;

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
  return cached("pad_pack", () => {
    return {
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
  });
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
  return cached("weight_pack", () => {
    return {
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
  let d0 = slot * ${UNIFORM_WINDOW_FLOATS}u + ((cl % p.cpw) * p.taps + tap) * p.cpad;
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
          dst[slot * UNIFORM_WINDOW_FLOATS + ((cl % cpw) * taps + tap) * cpad + o] = o < cout
            ? w[o * so + ci * si + t]
            : 0;
        }
      },
    };
  });
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
  return cached(`window|${tm}x${tn}|${wg}`, () => {
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
    return {
      label: `conv.window_${tm}x${tn}`,
      inputs: {},
      outputs: { out: "f32" },
      params: WIN_PARAMS,
      workgroupSize: wg,
      code: L.join("\n"),
      uniforms,
      cpu: (ins, outs, p) => windowConvCpu(ins, outs.out, p as Params, tm, tn),
    };
  });
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

const windowTile: DirectTile = { tm: 8, tn: 8, workgroupSize: 8 };

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
  const cpw = Math.floor(UNIFORM_WINDOW_FLOATS / (taps * cpad));
  if (hpwp > UNIFORM_WINDOW_SPAN || cpw < 1 || src.dtype !== "f32") return null;
  let ni: number, cc: number;
  if (cs * hpwp <= UNIFORM_WINDOW_SPAN && cs <= WSEGS * cpw) {
    cc = cs;
    ni = Math.max(1, Math.min(n, Math.floor(UNIFORM_WINDOW_SPAN / (cs * hpwp))));
  } else {
    ni = 1;
    cc = Math.min(cs, Math.floor(UNIFORM_WINDOW_SPAN / hpwp), WSEGS * cpw);
  }
  // One invocation loops over cc * kh * (kw + 1) taps at most.
  const budget = src.backend.profile.loopBudget;
  if (cc * kh * (kw + 1) > budget) cc = Math.floor(budget / (kh * (kw + 1)));
  const spc = Math.ceil(cc / cpw), nchunks = Math.ceil(cs / cc), ngroups = Math.ceil(n / ni);
  const block = Math.ceil((ni * cc * hpwp) / 64) * 64;
  const backend = src.backend;
  const xp = empty([ngroups * nchunks * block + UNIFORM_WINDOW_FLOATS], "f32", backend);
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
  const wp = empty([nchunks * spc * UNIFORM_WINDOW_FLOATS], "f32", backend);
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
  for (let gi = 0; gi < ngroups; gi++) {
    const nig = Math.min(ni, n - gi * ni);
    for (let k = 0; k < nchunks; k++) {
      const cnt = Math.min(cc, cs - k * cc);
      const counts = [0, 1, 2, 3].map((s) => Math.max(0, Math.min(cpw, cnt - s * cpw)));
      const uniformInputs = [{ storage: xp.storage, byteOffset: (gi * nchunks + k) * block * 4 }];
      for (let s = 0; s < WSEGS; s++) {
        const slot = k * spc + (s < spc ? s : 0);
        uniformInputs.push({ storage: wp.storage, byteOffset: slot * UNIFORM_WINDOW_FLOATS * 4 });
      }
      const total = nig * ob * pb;
      launchWindowed(kernel, uniformInputs, [], [out], {
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
      }, Math.ceil(total / tile.workgroupSize));
    }
  }
  xp.dispose();
  wp.dispose();
  return out;
}

/** Forward convolution through `conv.window`, or null where it does not apply. */
export function windowForward(x: Tensor, weight: Tensor, g: Geometry): Tensor | null {
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
export function windowGradInput(gy: Tensor, weight: Tensor, g: Geometry): Tensor | null {
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
  return cached("gy_pack", () => {
    return {
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
  });
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
  return cached(`window_wgrad|${tm}x${tn}|${wg}`, () => {
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
      for (let t = 0; t < tn; t++) {
        L.push(`        acc${q}_${t} = fma(g${q}, x${t}, acc${q}_${t});`);
      }
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
    return {
      label: `conv.window_wgrad_${tm}x${tn}`,
      inputs: {},
      outputs: { out: "f32" },
      params: WWGRAD_PARAMS,
      workgroupSize: wg,
      code: L.join("\n"),
      uniforms: ["xw", "gw"],
      cpu: (ins, outs, p) => windowWeightGradCpu(ins.xw, ins.gw, outs.out, p as Params, tm, tn),
    };
  });
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

const windowWgradTile: DirectTile = { tm: 8, tn: 8, workgroupSize: 8 };

/**
 * Weight gradient `[cout, c, kh, kw]` through `conv.window_wgrad`, or null
 * where the packed output gradient of one image or a padded plane does not fit a window.
 */
export function windowGradWeight(gy: Tensor, x: Tensor, g: Geometry): Tensor | null {
  const tile = windowWgradTile;
  if (g.n === 0 || x.dtype !== "f32") return null;
  const hp = (g.ho - 1) * g.sh + (g.kh - 1) * g.dh + 1;
  const wp = (g.wo - 1) * g.sw + (g.kw - 1) * g.dw + 1;
  const hpwp = hp * wp, hw = g.ho * g.wo, taps = g.kh * g.kw;
  const cpad = Math.ceil(g.cout / tile.tm) * tile.tm;
  if (hw * cpad > UNIFORM_WINDOW_FLOATS || hpwp > UNIFORM_WINDOW_SPAN) return null;
  const fitG = Math.floor(UNIFORM_WINDOW_FLOATS / (hw * cpad));
  let ni: number, cc: number;
  if (g.c * hpwp <= UNIFORM_WINDOW_SPAN) {
    cc = g.c;
    ni = Math.max(1, Math.min(g.n, fitG, Math.floor(UNIFORM_WINDOW_SPAN / (g.c * hpwp))));
  } else {
    ni = 1;
    cc = Math.floor(UNIFORM_WINDOW_SPAN / hpwp);
  }
  // Loop iterations of one invocation: images x (rows x (columns + 1) + 1).
  const budget = x.backend.profile.loopBudget;
  ni = Math.max(1, Math.min(ni, Math.floor(budget / (g.ho * (g.wo + 1) + 1))));
  if (g.ho * (g.wo + 1) + 1 > budget) return null;
  const nchunks = Math.ceil(g.c / cc), ngroups = Math.ceil(g.n / ni);
  const block = Math.ceil((ni * cc * hpwp) / 64) * 64;
  const gblock = Math.ceil((ni * hw * cpad) / 64) * 64;
  const backend = x.backend;
  const xp = empty([ngroups * nchunks * block + UNIFORM_WINDOW_FLOATS], "f32", backend);
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
  const gp = empty([ngroups * gblock + UNIFORM_WINDOW_FLOATS], "f32", backend);
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
  for (let gi = 0; gi < ngroups; gi++) {
    const nig = Math.min(ni, g.n - gi * ni);
    for (let k = 0; k < nchunks; k++) {
      const nec = Math.min(cc, g.c - k * cc) * taps;
      const eb = Math.ceil(nec / tile.tn);
      const total = eb * ob;
      const windows = [
        { storage: xp.storage, byteOffset: (gi * nchunks + k) * block * 4 },
        { storage: gp.storage, byteOffset: gi * gblock * 4 },
      ];
      launchWindowed(kernel, windows, [], [out], {
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
      }, Math.ceil(total / tile.workgroupSize));
    }
  }
  xp.dispose();
  gp.dispose();
  return out;
}
