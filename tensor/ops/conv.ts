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
 * matrices would cost more than it saves.)
 *
 * Hardware adapters (the profile's `conv: "implicit"`) run all three passes as implicit GEMM
 * on the shared-memory tiles of `tiled_gemm.ts` instead (`conv_gemm.ts`): no column matrix.
 *
 * The llvmpipe variants live in `software/`, chosen by the backend's profile: all three passes
 * first try the direct uniform-window kernels of `software/conv_direct.ts` (`convDirect`; where a
 * zero-padded input plane fits a 64 KiB window), then the packed uniform-window products of
 * `software/conv_uniform.ts` (`convUniform`); the rest keeps the paths above.
 *
 * `conv_transpose.ts` builds the transposed convolution from the same three
 * passes ({@linkcode forward}, {@linkcode gradInput}, {@linkcode gradWeight}).
 *
 * @module
 */

import { needsGrad, record } from "../autograd.ts";
import { hostView, isHostBackend } from "../cpu_backend.ts";
import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { empty, type Tensor, tensor, viewOf } from "../tensor.ts";
import {
  CONV_WORKGROUP as WORKGROUP,
  type Geometry,
  GEOMETRY_PARAMS as PARAMS,
  geometryParams,
} from "./conv_geometry.ts";
import { gemmForward, gemmGradInput, gemmGradWeight } from "./conv_gemm.ts";
import { add, map } from "./elementwise.ts";
import { backendOf, launch } from "./launch.ts";
import { matmul } from "./matmul.ts";
import { sum } from "./reduce.ts";
import {
  useDirect,
  windowForward,
  windowGradInput,
  windowGradWeight,
} from "./software/conv_direct.ts";
import {
  col2imWindowed,
  packedForward,
  packedGradInput,
  packedGradWeight,
  usePacked,
} from "./software/conv_uniform.ts";

export type { Geometry } from "./conv_geometry.ts";

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

const cached = kernelCache();

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

/** Whether the passes run as implicit GEMM (`conv_gemm.ts`): the profile's `conv`, f32 only. */
function useImplicit(t: Tensor): boolean {
  return t.backend.profile.conv === "implicit" && t.dtype === "f32";
}

/**
 * The forward pass. With `keepColumns`, the im2col path also returns its column matrix (when the
 * images fit one chunk) for the weight gradient to reuse instead of building it again. A `bias`
 * is added in the same launch where the path can (implicit GEMM; `biased` says so), else left to
 * the caller.
 */
export function forward(
  x: Tensor,
  weight: Tensor,
  g: Geometry,
  keepColumns: boolean,
  bias?: Tensor,
): { out: Tensor; columns: Tensor | null; biased?: boolean } {
  if (useDirect(x, g)) {
    const out = windowForward(x, weight, g);
    if (out) return { out, columns: null };
  }
  const packed = packedForward(x, weight, g);
  if (packed) return { out: packed, columns: null };
  if (useImplicit(x)) {
    return { out: gemmForward(x, weight, g, bias), columns: null, biased: bias !== undefined };
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
  if (useImplicit(gy)) return gemmGradInput(gy, weight, g);
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
  if (g.sh === 1 && g.sw === 1 && padY >= 0 && padX >= 0 && g.n > 0) {
    const dx = packedGradInput(gy, weight, g, flipped);
    if (dx) return dx;
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
  if (useImplicit(x)) return gemmGradWeight(gy, x, g);
  const og = g.cout / g.groups, hw = g.ho * g.wo;
  const chunk = chunkSize(x, g);
  const packed = packedGradWeight(gy, x, g, chunk);
  if (packed) return packed;
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
  const forwarded = forward(x, weight, g, keepColumns, bias);
  let out = forwarded.out;
  const columns = forwarded.columns;
  if (bias && !forwarded.biased) {
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
