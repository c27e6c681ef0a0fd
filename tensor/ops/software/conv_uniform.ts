/**
 * The packed uniform-window convolution (llvmpipe): the products of `conv.ts` run through the
 * packed uniform-window kernels of `matmul_uniform.ts`. `conv.im2col_packed` reads each image
 * through 64 KiB uniform windows (as many channels as fit) and writes the receptive fields
 * straight into packed panels; the forward pass multiplies them by the packed weight; the input
 * gradient of a stride-1 convolution is the forward convolution of the output gradient with the
 * flipped, transposed weight; the weight gradient is one product of the output gradient
 * `[Cout, images x pixels]` with the transposed packed columns. The profile's `convUniform`
 * chooses it (`"auto"`: f32, groups 1, large enough products).
 *
 * @module
 */

import { entryPoint, type Kernel, kernelCache, UNIFORM_WINDOW_SPAN } from "../../kernel.ts";
import { empty, type Tensor } from "../../tensor.ts";
import {
  CONV_WORKGROUP as WORKGROUP,
  type Geometry,
  GEOMETRY_PARAMS as PARAMS,
  geometryParams,
  SPATIAL_PARAMS,
  spatialParams,
} from "../conv_geometry.ts";
import { launch, launchAtWindow } from "../launch.ts";
import {
  MATMUL_PANEL,
  packedMatmulInto,
  packedShape,
  packMatmulOperand,
} from "./matmul_uniform.ts";

const cached = kernelCache();

const PACKED_PARAMS = {
  rows: "u32",
  b: "u32",
  c0: "u32",
  delta: "u32",
  kp: "u32",
  transposed: "u32",
  kofs: "u32",
  ...SPATIAL_PARAMS,
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
export function col2imWindowed(dcol: Tensor, dx: Tensor, g: Geometry, nb: number): boolean {
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

/**
 * Whether `conv2d` takes the packed uniform-window path for geometry `g`: the profile's
 * `convUniform`, `"auto"` meaning large enough products where uniform windows pay.
 */
export function usePacked(x: Tensor, g: Geometry): boolean {
  const { convUniform: mode, uniformWindows } = x.backend.profile;
  if (mode === "off" || x.dtype !== "f32" || g.groups !== 1) return false;
  if (mode === "on") return true;
  const k = g.c * g.kh * g.kw;
  return uniformWindows && g.cout >= 16 && k >= 16 && g.cout * g.ho * g.wo * k >= 1 << 18;
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
    ...spatialParams(g),
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

/** The forward pass through packed products, or null where the profile does not choose them. */
export function packedForward(x: Tensor, weight: Tensor, g: Geometry): Tensor | null {
  if (!usePacked(x, g) || g.n === 0) return null;
  const k = g.c * g.kh * g.kw;
  const pa = packMatmulOperand(weight, g.cout, k, k, 1, 0);
  const out = forwardPacked(x, pa, g);
  pa.dispose();
  return out;
}

/**
 * The input gradient of a stride-1 convolution through packed products: the convolution of
 * `gy` with the flipped, transposed weight (`flipped`, its geometry); null where not chosen.
 */
export function packedGradInput(
  gy: Tensor,
  weight: Tensor,
  g: Geometry,
  flipped: Geometry,
): Tensor | null {
  if (!usePacked(gy, flipped)) return null;
  // A'(ci, (co, t)) = weight[co, ci, taps - 1 - t].
  const taps = g.kh * g.kw;
  const pa = packMatmulOperand(weight, g.c, g.cout * taps, taps, -1, taps - 1, taps, g.c * taps);
  const dx = forwardPacked(gy, pa, flipped);
  pa.dispose();
  return dx;
}

/** The weight gradient through packed products, `chunk` images at a time; null where not chosen. */
export function packedGradWeight(gy: Tensor, x: Tensor, g: Geometry, chunk: number): Tensor | null {
  if (!usePacked(x, g) || g.n === 0) return null;
  const hw = g.ho * g.wo;
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
