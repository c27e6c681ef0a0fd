/**
 * Convolution as implicit GEMM on the shared-memory tiles of `tiled_gemm.ts` (hardware adapters,
 * the profile's `conv: "implicit"`): no column matrix is built; the tile loaders compute each
 * receptive-field element from the input as they stage it. All three passes, per channel group
 * (`og = Cout / groups`, `cg = C / groups`, `taps = kh * kw`):
 *
 * - forward `conv.gemm_forward`: `y[b, co, pix] = sum_(ci, t) w[co, ci, t] * x[b, ci, pix @ t]`,
 *   an `og x (Ho * Wo) x (cg * taps)` product per image and group;
 * - input gradient `conv.gemm_grad_input`:
 *   `dx[b, ci, (iy, ix)] = sum_(co, t) w[co, ci, t] * gy[b, co, (oy, ox)]` over the output
 *   positions that read `(iy, ix)` through tap `t` (`oy = (iy + ph - ky * dh) / sh` where exact),
 *   a `cg x (H * W) x (og * taps)` product per image and group, for any stride;
 * - weight gradient `conv.gemm_grad_weight`:
 *   `dw[co, (ci, t)] = sum_(b, pix) gy[b, co, pix] * x[b, ci, pix @ t]`, an
 *   `og x (cg * taps) x (N * Ho * Wo)` product per group (images summed in the inner axis, split
 *   over workgroups into partial sums, see `splitKGemm`).
 *
 * @module
 */

import type { TypedArray } from "../dtype.ts";
import type { Kernel } from "../kernel.ts";
import type { GemmTiles } from "../device_profile.ts";
import { empty, sizeOf, type Tensor } from "../tensor.ts";
import { type Geometry, SPATIAL_PARAMS, spatialParams } from "./conv_geometry.ts";
import {
  type GemmCpuLoaders,
  type GemmSpec,
  runTiledGemm,
  splitKGemm,
  tiledGemmKernel,
} from "./tiled_gemm.ts";

const CONV_PARAMS = { c: "u32", cout: "u32", groups: "u32", ...SPATIAL_PARAMS } as const;

type P = Record<string, number>;
type Inputs = Record<string, TypedArray>;

/** WGSL: the input element that tap `t` of output pixel `pix` reads in image `b`, channel `ch`. */
const READ_X = `fn read_x(b: u32, ch: u32, t: u32, pix: u32) -> f32 {
  let oy = pix / p.wo;
  let ox = pix % p.wo;
  let iy = i32(oy * p.sh + (t / p.kw) * p.dh) - i32(p.ph);
  let ix = i32(ox * p.sw + (t % p.kw) * p.dw) - i32(p.pw);
  if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) { return 0.0; }
  return x[((b * p.c + ch) * p.h + u32(iy)) * p.w + u32(ix)];
}`;

/** The CPU side of `read_x`. */
function readX(x: TypedArray, p: P, b: number, ch: number, t: number, pix: number): number {
  const oy = Math.floor(pix / p.wo), ox = pix % p.wo;
  const iy = oy * p.sh + Math.floor(t / p.kw) * p.dh - p.ph;
  const ix = ox * p.sw + (t % p.kw) * p.dw - p.pw;
  if (iy < 0 || ix < 0 || iy >= p.h || ix >= p.w) return 0;
  return x[((b * p.c + ch) * p.h + iy) * p.w + ix];
}

/** Per-group sizes, in WGSL (`og`, `cg`, `taps`). */
const SIZES = `fn og() -> u32 { return p.cout / p.groups; }
fn cg() -> u32 { return p.c / p.groups; }
fn taps() -> u32 { return p.kh * p.kw; }`;

function sizes(p: P): { og: number; cg: number; taps: number } {
  return { og: p.cout / p.groups, cg: p.c / p.groups, taps: p.kh * p.kw };
}

/** Forward: batch entry `bt = image * groups + group`; A the weight, B the receptive fields. */
const FORWARD: GemmSpec = {
  label: "conv.gemm_forward",
  inputs: ["x", "wt"],
  output: "y",
  params: CONV_PARAMS,
  wgsl: `${SIZES}
${READ_X}
fn load_a(bt: u32, r: u32, q: u32) -> f32 {
  return wt[((bt % p.groups) * og() + r) * cg() * taps() + q];
}
fn load_b(bt: u32, q: u32, col: u32) -> f32 {
  return read_x(bt / p.groups, (bt % p.groups) * cg() + q / taps(), q % taps(), col);
}
fn out_at(bt: u32, r: u32, col: u32) -> u32 {
  return ((bt / p.groups) * p.cout + (bt % p.groups) * og() + r) * p.ho * p.wo + col;
}`,
  cpu: {
    loadA(ins: Inputs, p: P, bt: number, r: number, q: number): number {
      const { og, cg, taps } = sizes(p);
      return ins.wt[((bt % p.groups) * og + r) * cg * taps + q];
    },
    loadB(ins: Inputs, p: P, bt: number, q: number, col: number): number {
      const { cg, taps } = sizes(p);
      const b = Math.floor(bt / p.groups), ch = (bt % p.groups) * cg + Math.floor(q / taps);
      return readX(ins.x, p, b, ch, q % taps, col);
    },
    outAt(p: P, bt: number, r: number, col: number): number {
      const { og } = sizes(p);
      const b = Math.floor(bt / p.groups);
      return (b * p.cout + (bt % p.groups) * og + r) * p.ho * p.wo + col;
    },
  },
};

/** Input gradient: batch entry `bt = image * groups + group`; rows input channels, columns pixels. */
const GRAD_INPUT: GemmSpec = {
  label: "conv.gemm_grad_input",
  inputs: ["gy", "wt"],
  output: "dx",
  params: CONV_PARAMS,
  wgsl: `${SIZES}
fn load_a(bt: u32, r: u32, q: u32) -> f32 {
  let co = (bt % p.groups) * og() + q / taps();
  return wt[(co * cg() + r) * taps() + q % taps()];
}
fn load_b(bt: u32, q: u32, col: u32) -> f32 {
  let t = q % taps();
  let ty = i32(col / p.w + p.ph) - i32((t / p.kw) * p.dh);
  let tx = i32(col % p.w + p.pw) - i32((t % p.kw) * p.dw);
  if (ty < 0 || tx < 0) { return 0.0; }
  let oy = u32(ty) / p.sh;
  let ox = u32(tx) / p.sw;
  if (oy * p.sh != u32(ty) || ox * p.sw != u32(tx) || oy >= p.ho || ox >= p.wo) { return 0.0; }
  let co = (bt % p.groups) * og() + q / taps();
  return gy[(((bt / p.groups) * p.cout + co) * p.ho + oy) * p.wo + ox];
}
fn out_at(bt: u32, r: u32, col: u32) -> u32 {
  return ((bt / p.groups) * p.c + (bt % p.groups) * cg() + r) * p.h * p.w + col;
}`,
  cpu: {
    loadA(ins: Inputs, p: P, bt: number, r: number, q: number): number {
      const { og, cg, taps } = sizes(p);
      const co = (bt % p.groups) * og + Math.floor(q / taps);
      return ins.wt[(co * cg + r) * taps + (q % taps)];
    },
    loadB(ins: Inputs, p: P, bt: number, q: number, col: number): number {
      const { og, taps } = sizes(p);
      const t = q % taps;
      const ty = Math.floor(col / p.w) + p.ph - Math.floor(t / p.kw) * p.dh;
      const tx = (col % p.w) + p.pw - (t % p.kw) * p.dw;
      if (ty < 0 || tx < 0 || ty % p.sh !== 0 || tx % p.sw !== 0) return 0;
      const oy = ty / p.sh, ox = tx / p.sw;
      if (oy >= p.ho || ox >= p.wo) return 0;
      const co = (bt % p.groups) * og + Math.floor(q / taps);
      return ins.gy[((Math.floor(bt / p.groups) * p.cout + co) * p.ho + oy) * p.wo + ox];
    },
    outAt(p: P, bt: number, r: number, col: number): number {
      const { cg } = sizes(p);
      return (Math.floor(bt / p.groups) * p.c + (bt % p.groups) * cg + r) * p.h * p.w + col;
    },
  },
};

/** Weight gradient: batch entry `bt` = group; the inner axis runs over images x output pixels. */
const GRAD_WEIGHT: GemmSpec = {
  label: "conv.gemm_grad_weight",
  inputs: ["gy", "x"],
  output: "dw",
  params: CONV_PARAMS,
  wgsl: `${SIZES}
${READ_X}
fn load_a(bt: u32, r: u32, q: u32) -> f32 {
  let hw = p.ho * p.wo;
  return gy[((q / hw) * p.cout + bt * og() + r) * hw + q % hw];
}
fn load_b(bt: u32, q: u32, col: u32) -> f32 {
  let hw = p.ho * p.wo;
  return read_x(q / hw, bt * cg() + col / taps(), col % taps(), q % hw);
}
fn out_at(bt: u32, r: u32, col: u32) -> u32 {
  return (bt * og() + r) * cg() * taps() + col;
}`,
  cpu: {
    loadA(ins: Inputs, p: P, bt: number, r: number, q: number): number {
      const { og } = sizes(p);
      const hw = p.ho * p.wo;
      return ins.gy[(Math.floor(q / hw) * p.cout + bt * og + r) * hw + (q % hw)];
    },
    loadB(ins: Inputs, p: P, bt: number, q: number, col: number): number {
      const { cg, taps } = sizes(p);
      const hw = p.ho * p.wo;
      const ch = bt * cg + Math.floor(col / taps);
      return readX(ins.x, p, Math.floor(q / hw), ch, col % taps, q % hw);
    },
    outAt(p: P, bt: number, r: number, col: number): number {
      const { og, cg, taps } = sizes(p);
      return (bt * og + r) * cg * taps + col;
    },
  },
};

/** Forward with the bias added where the output is first written: `y = conv(x, wt) + bias[co]`. */
const FORWARD_BIAS: GemmSpec = {
  ...FORWARD,
  label: "conv.gemm_forward_bias",
  inputs: ["x", "wt", "bias"],
  wgsl: `${FORWARD.wgsl}
fn initial(bt: u32, r: u32, col: u32) -> f32 {
  return bias[(bt % p.groups) * og() + r];
}`,
  initial: true,
  cpu: {
    ...(FORWARD.cpu as GemmCpuLoaders),
    initial(ins: Inputs, p: P, bt: number, r: number): number {
      return ins.bias[(bt % p.groups) * sizes(p).og + r];
    },
  },
};

/** The implicit-GEMM forward kernel with `tiles`. */
export function convGemmForwardKernel(tiles: GemmTiles): Kernel {
  return tiledGemmKernel(FORWARD, tiles);
}

/** The implicit-GEMM forward kernel with `tiles` that also adds a per-output-channel bias. */
export function convGemmForwardBiasKernel(tiles: GemmTiles): Kernel {
  return tiledGemmKernel(FORWARD_BIAS, tiles);
}

/** The implicit-GEMM input-gradient kernel with `tiles`. */
export function convGemmGradInputKernel(tiles: GemmTiles): Kernel {
  return tiledGemmKernel(GRAD_INPUT, tiles);
}

/** The implicit-GEMM weight-gradient kernel with `tiles`. */
export function convGemmGradWeightKernel(tiles: GemmTiles): Kernel {
  return tiledGemmKernel(GRAD_WEIGHT, tiles);
}

function convParams(g: Geometry): P {
  return { c: g.c, cout: g.cout, groups: g.groups, ...spatialParams(g) };
}

/**
 * The forward pass `[N, Cout, Ho, Wo]` of f32 `x` `[N, C, H, W]` and `weight`
 * `[Cout, C / groups, kh, kw]` as implicit GEMM (`g` from `conv.ts`; `conv2d` calls it where the
 * profile's `conv` is `"implicit"`), plus `bias` `[Cout]` in the same launch where given.
 *
 * @example Through conv2d, forced on the CPU backend (the kernels' twins run)
 * ```ts
 * import { cpu } from "../device.ts";
 * import { withProfile } from "../device_profile.ts";
 * import { tensor } from "../tensor.ts";
 * import { conv2d } from "./conv.ts";
 * const backend = cpu();
 * const y = withProfile(backend, { conv: "implicit" }, () => {
 *   const x = tensor(new Float32Array(16).fill(1), [1, 1, 4, 4], { backend });
 *   const w = tensor(new Float32Array(9).fill(1), [1, 1, 3, 3], { backend });
 *   return conv2d(x, w, { padding: 1 });
 * });
 * console.log((await y.data())[0]); // 4
 * ```
 */
export function gemmForward(x: Tensor, weight: Tensor, g: Geometry, bias?: Tensor): Tensor {
  const out = empty([g.n, g.cout, g.ho, g.wo], "f32", x.backend);
  if (out.size === 0) return out;
  const size = {
    m: g.cout / g.groups,
    n: g.ho * g.wo,
    k: (g.c / g.groups) * g.kh * g.kw,
    nbatch: g.n * g.groups,
  };
  if (bias) {
    runTiledGemm(convGemmForwardBiasKernel, [x, weight, bias], out, size, convParams(g));
  } else runTiledGemm(convGemmForwardKernel, [x, weight], out, size, convParams(g));
  return out;
}

/** The input gradient `[N, C, H, W]` of f32 output gradient `gy` as implicit GEMM (any stride). */
export function gemmGradInput(gy: Tensor, weight: Tensor, g: Geometry): Tensor {
  const dx = empty([g.n, g.c, g.h, g.w], "f32", gy.backend);
  if (dx.size === 0) return dx;
  const size = {
    m: g.c / g.groups,
    n: g.h * g.w,
    k: (g.cout / g.groups) * g.kh * g.kw,
    nbatch: g.n * g.groups,
  };
  runTiledGemm(convGemmGradInputKernel, [gy, weight], dx, size, convParams(g));
  return dx;
}

/** The weight gradient `[Cout, C / groups, kh, kw]` of f32 `gy` and `x` as implicit GEMM. */
export function gemmGradWeight(gy: Tensor, x: Tensor, g: Geometry): Tensor {
  const shape = [g.cout, g.c / g.groups, g.kh, g.kw];
  if (sizeOf(shape) === 0) return empty(shape, "f32", x.backend);
  const size = {
    m: g.cout / g.groups,
    n: (g.c / g.groups) * g.kh * g.kw,
    k: g.n * g.ho * g.wo,
    nbatch: g.groups,
  };
  // Few outputs over images x pixels: split the inner axis over more workgroups.
  return splitKGemm(convGemmGradWeightKernel, [gy, x], shape, size, convParams(g));
}
