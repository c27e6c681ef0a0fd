/**
 * `gridSample`: PyTorch's `torch.nn.functional.grid_sample` for 4-D inputs in
 * bilinear mode with zero padding, with gradients for the input and the grid.
 *
 * Grid points are `(x, y)` in `[-1, 1]` (x along the width). With
 * `alignCorners: false` (the default) -1 and +1 are the outer edges of the
 * border pixels, `ix = ((x + 1) W - 1) / 2`; with `true` they are the centres
 * of the border pixels, `ix = (x + 1) / 2 (W - 1)`. The sampler and its
 * gradient conventions are those of `bilinear.ts` (one-sided slopes at integer
 * coordinates, out-of-image taps in the grid gradient).
 *
 * Three kernels, none with atomics:
 * - `grid_sample.forward`, one invocation per output element;
 * - `grid_sample.grid_grad`, one invocation per grid point, looping over the
 *   channels (in passes of {@linkcode LOOP_BUDGET} that accumulate);
 * - `grid_sample.input_grad`, one invocation per input plane `(n, c)`, which
 *   owns that plane's gradient and adds every grid point's four weighted taps
 *   into it in grid order (a scatter without races, since no other invocation
 *   writes the plane), in passes over the grid points.
 *
 * @module
 */

import { record } from "../autograd.ts";
import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache, LOOP_BUDGET } from "../kernel.ts";
import { empty, type Tensor } from "../tensor.ts";
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

/** Options of {@linkcode gridSample}, named as PyTorch's arguments. */
export interface GridSampleOptions {
  /**
   * Whether -1 and +1 are the centres (`true`) or the outer edges (`false`, default) of the
   * border pixels.
   */
  alignCorners?: boolean;
  /** Interpolation; only `"bilinear"` (the default) is supported. */
  mode?: "bilinear" | "nearest" | "bicubic";
  /** Values outside the input; only `"zeros"` (the default) is supported. */
  paddingMode?: "zeros" | "border" | "reflection";
}

const PARAMS = {
  total: "u32",
  c: "u32",
  h: "u32",
  w: "u32",
  ho: "u32",
  wo: "u32",
  align: "u32",
  lo: "u32",
  hi: "u32",
  accumulate: "u32",
} as const;

type GridParams = Record<keyof typeof PARAMS, number>;

/** WGSL: grid coordinate to pixel coordinate, and the sampler. */
const COORDS_WGSL = /* wgsl */ `${BILINEAR_WGSL}
fn unnormalize(v: f32, size: u32) -> f32 {
  if (p.align != 0u) { return (v + 1.0) / 2.0 * f32(size - 1u); }
  return ((v + 1.0) * f32(size) - 1.0) / 2.0;
}

// The taps of grid point k (of all images' points, row-major).
fn grid_taps(k: u32) -> Taps {
  let x = unnormalize(f32(grid[2u * k]), p.w);
  let y = unnormalize(f32(grid[2u * k + 1u]), p.h);
  return bilinear_taps(x, y, p.w, p.h);
}
`;

/** Grid coordinate to pixel coordinate, each step rounded by `fr` as the WGSL rounds it. */
function unnormalizeCpu(
  v: number,
  size: number,
  align: boolean,
  fr: (v: number) => number,
): number {
  return align ? fr(fr(fr(v + 1) / 2) * (size - 1)) : fr(fr(fr(fr(v + 1) * size) - 1) / 2);
}

/** Locates the taps of grid point `k` into `taps`; false when none is inside. */
function locateGridPoint(
  taps: BilinearTaps,
  grid: ArrayLike<number>,
  k: number,
  p: GridParams,
  fr: (v: number) => number,
): boolean {
  const align = p.align !== 0;
  return taps.locate(
    unnormalizeCpu(grid[2 * k], p.w, align, fr),
    unnormalizeCpu(grid[2 * k + 1], p.h, align, fr),
    p.w,
    p.h,
  );
}

function rounding(dtype: DType): (v: number) => number {
  return dtype === "f32" ? Math.fround : (v: number) => v;
}

const cached = kernelCache();

/** `grid_sample.forward`: `out [N, C, Ho, Wo]` from `x [N, C, H, W]` and `grid [N, Ho, Wo, 2]`. */
export function gridSampleForwardKernel(dtype: DType = "f32"): Kernel {
  return cached(`forward|${dtype}`, () => ({
    label: "grid_sample.forward",
    inputs: { x: dtype, grid: dtype },
    outputs: { out: dtype },
    params: PARAMS,
    workgroupSize: WORKGROUP,
    code: `${COORDS_WGSL}${bilinearFetchWgsl("x")}
${entryPoint(WORKGROUP)}
  if (i >= p.total) { return; }
  let points = p.ho * p.wo;
  let plane = i / points;
  let t = grid_taps((plane / p.c) * points + i % points);
  var acc = 0.0;
  if (t.hit) { acc = dot(bilinear_weights(t), fetch_x(plane * p.h * p.w, 1u, t)); }
  out[i] = acc;
}`,
    cpu: (ins, outs, params) => {
      const p = params as GridParams, x = ins.x, grid = ins.grid, out = outs.out;
      const fr = rounding(dtype), taps = new BilinearTaps();
      const points = p.ho * p.wo, hw = p.h * p.w, n = p.total / Math.max(p.c * points, 1);
      for (let b = 0; b < n; b++) {
        for (let k = 0; k < points; k++) {
          const inside = locateGridPoint(taps, grid, b * points + k, p, fr);
          for (let ch = 0; ch < p.c; ch++) {
            const plane = b * p.c + ch;
            if (inside) taps.read(x, plane * hw, 1);
            out[plane * points + k] = inside ? taps.sample() : 0;
          }
        }
      }
    },
  }));
}

/**
 * `grid_sample.grid_grad`: `dgrid [N, Ho, Wo, 2]` from `g [N, C, Ho, Wo]`, `x` and `grid`,
 * over channels `[lo, hi)`, added to `dgrid` when `accumulate` is set.
 */
export function gridSampleGridGradKernel(dtype: DType = "f32"): Kernel {
  return cached(`grid_grad|${dtype}`, () => ({
    label: "grid_sample.grid_grad",
    inputs: { g: dtype, x: dtype, grid: dtype },
    outputs: { dgrid: dtype },
    params: PARAMS,
    workgroupSize: WORKGROUP,
    code: `${COORDS_WGSL}${bilinearFetchWgsl("x")}
${entryPoint(WORKGROUP)}
  if (i >= p.total) { return; }
  let points = p.ho * p.wo;
  let b = i / points;
  let k = i % points;
  let t = grid_taps(i);
  var acc = vec2<f32>(0.0, 0.0);
  if (t.hit) {
    for (var ch = p.lo; ch < p.hi; ch++) {
      let plane = b * p.c + ch;
      let v = fetch_x(plane * p.h * p.w, 1u, t);
      acc += f32(g[plane * points + k]) * vec2<f32>(dot(bilinear_dx(t), v), dot(bilinear_dy(t), v));
    }
  }
  let size = vec2<f32>(f32(p.w), f32(p.h));
  acc *= select(size, size - 1.0, p.align != 0u) / 2.0;
  if (p.accumulate != 0u) { acc += vec2<f32>(f32(dgrid[2u * i]), f32(dgrid[2u * i + 1u])); }
  dgrid[2u * i] = acc.x;
  dgrid[2u * i + 1u] = acc.y;
}`,
    cpu: (ins, outs, params) => {
      const p = params as GridParams, g = ins.g, x = ins.x, grid = ins.grid, dgrid = outs.dgrid;
      const fr = rounding(dtype), taps = new BilinearTaps();
      const points = p.ho * p.wo, hw = p.h * p.w;
      const sx = (p.align ? p.w - 1 : p.w) / 2, sy = (p.align ? p.h - 1 : p.h) / 2;
      for (let i = 0; i < p.total; i++) {
        const b = Math.floor(i / points), k = i % points;
        let ax = 0, ay = 0;
        if (locateGridPoint(taps, grid, i, p, fr)) {
          for (let ch = p.lo; ch < p.hi; ch++) {
            const plane = b * p.c + ch, gv = g[plane * points + k];
            taps.read(x, plane * hw, 1);
            ax += gv * taps.slopeX();
            ay += gv * taps.slopeY();
          }
        }
        dgrid[2 * i] = (p.accumulate ? dgrid[2 * i] : 0) + ax * sx;
        dgrid[2 * i + 1] = (p.accumulate ? dgrid[2 * i + 1] : 0) + ay * sy;
      }
    },
  }));
}

/**
 * `grid_sample.input_grad`: adds into `dx [N, C, H, W]` the taps of grid points `[lo, hi)`
 * of each image weighted by `g [N, C, Ho, Wo]`; one invocation per plane (see the module doc).
 */
export function gridSampleInputGradKernel(dtype: DType = "f32"): Kernel {
  return cached(`input_grad|${dtype}`, () => ({
    label: "grid_sample.input_grad",
    inputs: { g: dtype, grid: dtype },
    outputs: { dx: dtype },
    params: PARAMS,
    workgroupSize: WORKGROUP,
    code: `${COORDS_WGSL}
${entryPoint(WORKGROUP)}
  if (i >= p.total) { return; }
  let points = p.ho * p.wo;
  let first = (i / p.c) * points;
  let base = i * p.h * p.w;
  let stride = 1u;
  for (var k = p.lo; k < p.hi; k++) {
    let t = grid_taps(first + k);
    if (!t.hit) { continue; }
    let wt = bilinear_weights(t);
    let gk = f32(g[i * points + k]);
    ${bilinearScatterWgsl("dx", "gk")}
  }
}`,
    cpu: (ins, outs, params) => {
      const p = params as GridParams, g = ins.g, grid = ins.grid, dx = outs.dx;
      const fr = rounding(dtype), taps = new BilinearTaps();
      const points = p.ho * p.wo, hw = p.h * p.w, n = p.total / Math.max(p.c, 1);
      for (let b = 0; b < n; b++) {
        for (let k = p.lo; k < p.hi; k++) {
          if (!locateGridPoint(taps, grid, b * points + k, p, fr)) continue;
          for (let ch = 0; ch < p.c; ch++) {
            const plane = b * p.c + ch;
            taps.scatter(dx, plane * hw, 1, g[plane * points + k]);
          }
        }
      }
    },
  }));
}

function shapeOf(t: Tensor): string {
  return `[${t.shape.join(", ")}]`;
}

/**
 * Samples `input` at the points of `grid` by bilinear interpolation with zero padding, as
 * PyTorch's `grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners)`.
 * Gradients flow to the input and to the grid; at an integer pixel coordinate the grid
 * gradient is the one-sided derivative over `[ix, ix + 1]`, as PyTorch's.
 *
 * On the CPU and native backends a NaN grid coordinate throws; on WebGPU it samples 0.
 * Points beyond the image (infinite ones too) sample 0 with a zero gradient.
 *
 * @example The centre of a 2x2 image, and its corners with `alignCorners`
 * ```ts
 * import { gridSample } from "./grid_sample.ts";
 * import { tensor } from "../tensor.ts";
 * import assert from "node:assert/strict";
 *
 * const image = tensor([1, 2, 3, 4], [1, 1, 2, 2]);
 * const centre = tensor([0, 0], [1, 1, 1, 2]);
 * assert.deepEqual(Array.from(await gridSample(image, centre).data()), [2.5]);
 * const corners = tensor([-1, -1, 1, 1], [1, 1, 2, 2]);
 * const y = gridSample(image, corners, { alignCorners: true });
 * assert.deepEqual(Array.from(await y.data()), [1, 4]);
 * ```
 *
 * @param input Images `[N, C, H, W]` (`f32`, or `f64` on the CPU).
 * @param grid Points `[N, Ho, Wo, 2]`, `(x, y)` in `[-1, 1]` (x along the width), same type.
 * @param options `alignCorners` (default `false`); `mode` and `paddingMode` other than
 *   `"bilinear"` and `"zeros"` throw.
 * @returns `[N, C, Ho, Wo]`.
 */
export function gridSample(input: Tensor, grid: Tensor, options: GridSampleOptions = {}): Tensor {
  const op = "gridSample";
  const mode = options.mode ?? "bilinear", paddingMode = options.paddingMode ?? "zeros";
  if (mode !== "bilinear") {
    throw new RangeError(`${op}: mode "${mode}" is unsupported (only "bilinear")`);
  }
  if (paddingMode !== "zeros") {
    throw new RangeError(`${op}: paddingMode "${paddingMode}" is unsupported (only "zeros")`);
  }
  if (input.rank !== 4) {
    throw new TypeError(`${op}: expected an input [N, C, H, W], got ${shapeOf(input)}`);
  }
  if (input.dtype !== "f32" && input.dtype !== "f64") {
    throw new TypeError(`${op}: expected f32 or f64 but got ${input.dtype} ${shapeOf(input)}`);
  }
  const [n, c, h, w] = input.shape;
  if (grid.rank !== 4 || grid.shape[0] !== n || grid.shape[3] !== 2) {
    throw new TypeError(
      `${op}: expected a grid [${n}, Ho, Wo, 2] for the input ${shapeOf(input)}, got ${
        shapeOf(grid)
      }`,
    );
  }
  if (grid.dtype !== input.dtype) {
    throw new TypeError(`${op}: the grid is ${grid.dtype} but the input is ${input.dtype}`);
  }
  const backend = backendOf(op, [input, grid]);
  checkCoordinates(op, "the grid", grid);
  const [, ho, wo] = grid.shape;
  const dtype = input.dtype;
  const params = (total: number, from = 0, to = 0, accumulate = false): GridParams => ({
    total,
    c,
    h,
    w,
    ho,
    wo,
    align: options.alignCorners ? 1 : 0,
    lo: from,
    hi: to,
    accumulate: accumulate ? 1 : 0,
  });
  const out = empty([n, c, ho, wo], dtype, backend);
  launch(gridSampleForwardKernel(dtype), [input, grid], [out], params(out.size), groups(out.size));
  record(op, [input, grid], [out], ([gy]) => {
    let dx: Tensor | null = null, dgrid: Tensor | null = null;
    if (input.requiresGrad) {
      dx = zeros(input.shape, { dtype, backend });
      for (const [from, to] of passRanges(ho * wo, LOOP_BUDGET)) {
        const kernel = gridSampleInputGradKernel(dtype);
        launch(kernel, [gy!, grid], [dx], params(n * c, from, to), groups(n * c));
      }
    }
    if (grid.requiresGrad) {
      dgrid = empty(grid.shape, dtype, backend);
      for (const [from, to] of passRanges(c, LOOP_BUDGET)) {
        const kernel = gridSampleGridGradKernel(dtype);
        const total = n * ho * wo;
        launch(
          kernel,
          [gy!, input, grid],
          [dgrid],
          params(total, from, to, from > 0),
          groups(total),
        );
      }
    }
    return [dx, dgrid];
  });
  return out;
}

function groups(total: number): number {
  return Math.max(1, Math.ceil(total / WORKGROUP));
}
