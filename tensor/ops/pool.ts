/**
 * Pooling and upsampling on NCHW tensors: max pooling, average pooling
 * (padding counted in the divisor, as PyTorch does by default) and
 * nearest-neighbour upsampling by an integer factor, with their gradients.
 *
 * One kernel family, `pool.*`, one invocation per output element. The
 * backward kernels gather (each input element sums the outputs whose window
 * holds it), so no atomics are needed.
 *
 * @module
 */

import { needsGrad, record } from "../autograd.ts";
import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { empty, type Tensor } from "../tensor.ts";
import { backendOf, launch } from "./launch.ts";

const WORKGROUP = 64;

/** Options of {@linkcode maxPool2d} and {@linkcode avgPool2d}; pairs are `[y, x]`. */
export interface Pool2dOptions {
  /** Window size. */
  kernelSize: number | readonly [number, number];
  /** Step between windows; default `kernelSize`. */
  stride?: number | readonly [number, number];
  /** Implicit padding on both sides (at most half the window); default 0. */
  padding?: number | readonly [number, number];
}

interface PoolGeometry {
  n: number;
  c: number;
  h: number;
  w: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  ho: number;
  wo: number;
}

/** A variant of the `pool.*` kernel family. */
export type PoolMode = "max" | "avg" | "max_grad" | "avg_grad" | "up" | "up_grad";

const PARAMS = {
  total: "u32",
  h: "u32",
  w: "u32",
  kh: "u32",
  kw: "u32",
  sh: "u32",
  sw: "u32",
  ph: "u32",
  pw: "u32",
  ho: "u32",
  wo: "u32",
} as const;

const cached = kernelCache();

type Arrays = Record<string, { [i: number]: number; length: number }>;

/** Output rows (or columns) whose window covers input coordinate `y`: `[lo, hi]`. */
function coverWgsl(axis: "y" | "x"): string {
  const [k, s, pad, n] = axis === "y" ? ["kh", "sh", "ph", "ho"] : ["kw", "sw", "pw", "wo"];
  return `  let t${axis} = i32(${axis}) + i32(p.${pad});
  let ${axis}lo = max(0, (t${axis} - i32(p.${k}) + i32(p.${s})) / i32(p.${s}));
  let ${axis}hi = min(i32(p.${n}) - 1, t${axis} / i32(p.${s}));`;
}

function cover(c: number, k: number, s: number, pad: number, n: number): [number, number] {
  const t = c + pad;
  return [Math.max(0, Math.floor((t - k + s) / s)), Math.min(n - 1, Math.floor(t / s))];
}

/** The `pool.<mode>` kernel. */
export function poolKernel(mode: PoolMode, dtype: DType = "f32"): Kernel {
  const key = `${mode}|${dtype}`;
  return cached(key, () => {
    let inputs: Record<string, DType>, outputs: Record<string, DType>, body: string;
    let cpu: (ins: Arrays, outs: Arrays, p: Record<string, number>) => void;
    const outCoords = `  let ox = i % p.wo;
  let oy = (i / p.wo) % p.ho;
  let plane = i / (p.wo * p.ho);
  let y0 = i32(oy * p.sh) - i32(p.ph);
  let x0 = i32(ox * p.sw) - i32(p.pw);`;
    const inCoords = `  let x = i % p.w;
  let y = (i / p.w) % p.h;
  let plane = i / (p.w * p.h);`;
    switch (mode) {
      case "max":
        inputs = { x: dtype };
        outputs = { out: dtype, idx: "i32" };
        body = `${outCoords}
  var best = -3.4028234663852886e38;
  var at = -1;
  for (var ki = 0u; ki < p.kh; ki++) {
    let y = y0 + i32(ki);
    for (var kj = 0u; kj < p.kw; kj++) {
      let xx = x0 + i32(kj);
      if (y >= 0 && y < i32(p.h) && xx >= 0 && xx < i32(p.w)) {
        let v = x[(plane * p.h + u32(y)) * p.w + u32(xx)];
        if (v > best || at < 0) { best = v; at = y * i32(p.w) + xx; }
      }
    }
  }
  out[i] = best;
  idx[i] = at;`;
        cpu = (ins, outs, p) => {
          const x = ins.x, out = outs.out, idx = outs.idx;
          for (let i = 0; i < p.total; i++) {
            const ox = i % p.wo,
              oy = Math.floor(i / p.wo) % p.ho,
              plane = Math.floor(i / (p.wo * p.ho));
            let best = -Infinity, at = -1;
            for (let ki = 0; ki < p.kh; ki++) {
              const y = oy * p.sh - p.ph + ki;
              for (let kj = 0; kj < p.kw; kj++) {
                const xx = ox * p.sw - p.pw + kj;
                if (y < 0 || y >= p.h || xx < 0 || xx >= p.w) continue;
                const v = x[(plane * p.h + y) * p.w + xx];
                if (v > best || at < 0) {
                  best = v;
                  at = y * p.w + xx;
                }
              }
            }
            out[i] = best;
            idx[i] = at;
          }
        };
        break;
      case "avg":
        inputs = { x: dtype };
        outputs = { out: dtype };
        body = `${outCoords}
  var acc = 0.0;
  for (var ki = 0u; ki < p.kh; ki++) {
    let y = y0 + i32(ki);
    for (var kj = 0u; kj < p.kw; kj++) {
      let xx = x0 + i32(kj);
      if (y >= 0 && y < i32(p.h) && xx >= 0 && xx < i32(p.w)) {
        acc = acc + x[(plane * p.h + u32(y)) * p.w + u32(xx)];
      }
    }
  }
  out[i] = acc / f32(p.kh * p.kw);`;
        cpu = (ins, outs, p) => {
          const x = ins.x, out = outs.out;
          for (let i = 0; i < p.total; i++) {
            const ox = i % p.wo,
              oy = Math.floor(i / p.wo) % p.ho,
              plane = Math.floor(i / (p.wo * p.ho));
            let acc = 0;
            for (let ki = 0; ki < p.kh; ki++) {
              const y = oy * p.sh - p.ph + ki;
              for (let kj = 0; kj < p.kw; kj++) {
                const xx = ox * p.sw - p.pw + kj;
                if (y >= 0 && y < p.h && xx >= 0 && xx < p.w) {
                  acc += x[(plane * p.h + y) * p.w + xx];
                }
              }
            }
            out[i] = acc / (p.kh * p.kw);
          }
        };
        break;
      case "max_grad":
      case "avg_grad": {
        const isMax = mode === "max_grad";
        inputs = isMax ? { g: dtype, idx: "i32" } : { g: dtype };
        outputs = { dx: dtype };
        body = `${inCoords}
${coverWgsl("y")}
${coverWgsl("x")}
  let me = i32(y * p.w + x);
  var acc = 0.0;
  for (var oy = ylo; oy <= yhi; oy++) {
    for (var ox = xlo; ox <= xhi; ox++) {
      let o = (plane * p.ho + u32(oy)) * p.wo + u32(ox);
      ${isMax ? "if (idx[o] == me) { acc = acc + g[o]; }" : "acc = acc + g[o];"}
    }
  }
  dx[i] = ${isMax ? "acc" : "acc / f32(p.kh * p.kw)"};`;
        cpu = (ins, outs, p) => {
          const g = ins.g, idx = ins.idx, dx = outs.dx;
          for (let i = 0; i < p.total; i++) {
            const x = i % p.w, y = Math.floor(i / p.w) % p.h, plane = Math.floor(i / (p.w * p.h));
            const [ylo, yhi] = cover(y, p.kh, p.sh, p.ph, p.ho);
            const [xlo, xhi] = cover(x, p.kw, p.sw, p.pw, p.wo);
            const me = y * p.w + x;
            let acc = 0;
            for (let oy = ylo; oy <= yhi; oy++) {
              for (let ox = xlo; ox <= xhi; ox++) {
                const o = (plane * p.ho + oy) * p.wo + ox;
                if (!isMax || idx[o] === me) acc += g[o];
              }
            }
            dx[i] = isMax ? acc : acc / (p.kh * p.kw);
          }
        };
        break;
      }
      case "up":
        inputs = { x: dtype };
        outputs = { out: dtype };
        body = `  let ox = i % p.wo;
  let oy = (i / p.wo) % p.ho;
  let plane = i / (p.wo * p.ho);
  out[i] = x[(plane * p.h + oy / p.sh) * p.w + ox / p.sw];`;
        cpu = (ins, outs, p) => {
          const x = ins.x, out = outs.out;
          for (let i = 0; i < p.total; i++) {
            const ox = i % p.wo,
              oy = Math.floor(i / p.wo) % p.ho,
              plane = Math.floor(i / (p.wo * p.ho));
            out[i] = x[(plane * p.h + Math.floor(oy / p.sh)) * p.w + Math.floor(ox / p.sw)];
          }
        };
        break;
      case "up_grad":
        inputs = { g: dtype };
        outputs = { dx: dtype };
        body = `${inCoords}
  var acc = 0.0;
  for (var dy = 0u; dy < p.sh; dy++) {
    for (var dx0 = 0u; dx0 < p.sw; dx0++) {
      acc = acc + g[(plane * p.ho + y * p.sh + dy) * p.wo + x * p.sw + dx0];
    }
  }
  dx[i] = acc;`;
        cpu = (ins, outs, p) => {
          const g = ins.g, dx = outs.dx;
          for (let i = 0; i < p.total; i++) {
            const x = i % p.w, y = Math.floor(i / p.w) % p.h, plane = Math.floor(i / (p.w * p.h));
            let acc = 0;
            for (let dy = 0; dy < p.sh; dy++) {
              for (let d = 0; d < p.sw; d++) {
                acc += g[(plane * p.ho + y * p.sh + dy) * p.wo + x * p.sw + d];
              }
            }
            dx[i] = acc;
          }
        };
        break;
    }
    return {
      label: `pool.${mode}`,
      inputs,
      outputs,
      params: PARAMS,
      workgroupSize: WORKGROUP,
      code: `${entryPoint(WORKGROUP)}
  if (i >= p.total) { return; }
${body}
}`,
      cpu: (ins, outs, p) => cpu(ins, outs, p as Record<string, number>),
    };
  });
}

function pairOf(
  op: string,
  name: string,
  value: number | readonly [number, number],
  min: number,
): [number, number] {
  const v: readonly number[] = typeof value === "number" ? [value, value] : value;
  if (v.length !== 2 || v.some((d) => !Number.isInteger(d) || d < min)) {
    throw new RangeError(`${op}: ${name} ${JSON.stringify(value)} must be integers >= ${min}`);
  }
  return [v[0], v[1]];
}

function checkInput(op: string, x: Tensor): void {
  if (x.rank !== 4) {
    throw new TypeError(`${op}: expected an input [N, C, H, W], got [${x.shape.join(", ")}]`);
  }
  if (x.dtype !== "f32" && x.dtype !== "f64") {
    throw new TypeError(`${op}: expected f32 but got ${x.dtype} [${x.shape.join(", ")}]`);
  }
}

function poolGeometry(op: string, x: Tensor, options: Pool2dOptions): PoolGeometry {
  checkInput(op, x);
  const [kh, kw] = pairOf(op, "kernelSize", options.kernelSize, 1);
  const [sh, sw] = pairOf(op, "stride", options.stride ?? options.kernelSize, 1);
  const [ph, pw] = pairOf(op, "padding", options.padding ?? 0, 0);
  if (2 * ph > kh || 2 * pw > kw) {
    throw new RangeError(`${op}: padding [${ph}, ${pw}] exceeds half the window [${kh}, ${kw}]`);
  }
  const [n, c, h, w] = x.shape;
  const ho = Math.floor((h + 2 * ph - kh) / sh) + 1;
  const wo = Math.floor((w + 2 * pw - kw) / sw) + 1;
  if (ho < 1 || wo < 1) {
    throw new TypeError(
      `${op}: window [${kh}, ${kw}] does not fit input [${
        x.shape.join(", ")
      }] with padding [${ph}, ${pw}]`,
    );
  }
  return { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
}

function paramsOf(g: PoolGeometry, total: number): Record<string, number> {
  return {
    total,
    h: g.h,
    w: g.w,
    kh: g.kh,
    kw: g.kw,
    sh: g.sh,
    sw: g.sw,
    ph: g.ph,
    pw: g.pw,
    ho: g.ho,
    wo: g.wo,
  };
}

function run(
  mode: PoolMode,
  inputs: Tensor[],
  outputs: Tensor[],
  g: PoolGeometry,
  total: number,
): void {
  launch(
    poolKernel(mode, inputs[0].dtype),
    inputs,
    outputs,
    paramsOf(g, total),
    Math.ceil(total / WORKGROUP),
  );
}

/**
 * Max pooling over `kernelSize` windows of NCHW `x` (padding never wins). The
 * gradient goes to the first maximum of each window.
 *
 * @example
 * ```ts
 * import { maxPool2d } from "./pool.ts";
 * import { tensor } from "../tensor.ts";
 * const x = tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], [1, 1, 4, 4]);
 * console.log(await maxPool2d(x, { kernelSize: 2 }).data()); // Float32Array [6, 8, 14, 16]
 * ```
 *
 * @param x Input `[N, C, H, W]`.
 * @param options Window, stride (default the window), padding.
 * @returns `[N, C, Ho, Wo]`, `Ho = floor((H + 2 * pad - k) / stride) + 1`.
 */
export function maxPool2d(x: Tensor, options: Pool2dOptions): Tensor {
  const op = "maxPool2d";
  const g = poolGeometry(op, x, options);
  const backend = backendOf(op, [x]);
  const shape = [g.n, g.c, g.ho, g.wo];
  const out = empty(shape, x.dtype, backend);
  const idx = empty(shape, "i32", backend);
  run("max", [x], [out, idx], g, out.size);
  if (!needsGrad([x])) {
    idx.dispose();
    return out;
  }
  record(op, [x], [out], ([gy]) => {
    const dx = empty(x.shape, x.dtype, backend);
    run("max_grad", [gy!, idx], [dx], g, dx.size);
    idx.dispose();
    return [dx];
  });
  return out;
}

/**
 * Average pooling over `kernelSize` windows of NCHW `x`; zero padding counts
 * in the divisor (`kh * kw`), like PyTorch's default `count_include_pad`.
 *
 * @example
 * ```ts
 * import { avgPool2d } from "./pool.ts";
 * import { tensor } from "../tensor.ts";
 * const x = tensor([1, 2, 3, 4], [1, 1, 2, 2]);
 * console.log(await avgPool2d(x, { kernelSize: 2 }).data()); // Float32Array [2.5]
 * ```
 *
 * @param x Input `[N, C, H, W]`.
 * @param options Window, stride (default the window), padding.
 * @returns `[N, C, Ho, Wo]`.
 */
export function avgPool2d(x: Tensor, options: Pool2dOptions): Tensor {
  const op = "avgPool2d";
  const g = poolGeometry(op, x, options);
  const backend = backendOf(op, [x]);
  const out = empty([g.n, g.c, g.ho, g.wo], x.dtype, backend);
  run("avg", [x], [out], g, out.size);
  record(op, [x], [out], ([gy]) => {
    const dx = empty(x.shape, x.dtype, backend);
    run("avg_grad", [gy!], [dx], g, dx.size);
    return [dx];
  });
  return out;
}

/**
 * Nearest-neighbour upsampling of NCHW `x` by an integer `scale` (a number or
 * `[y, x]`): each element becomes a `scale x scale` block, as FPN's top-down
 * path uses. The gradient sums each block.
 *
 * @example
 * ```ts
 * import { upsampleNearest2d } from "./pool.ts";
 * import { tensor } from "../tensor.ts";
 * const y = upsampleNearest2d(tensor([1, 2], [1, 1, 1, 2]), 2);
 * console.log(y.shape, await y.data()); // [1, 1, 2, 4] Float32Array [1, 1, 2, 2, 1, 1, 2, 2]
 * ```
 *
 * @param x Input `[N, C, H, W]`.
 * @param scale Integer factor (or `[y, x]` factors), at least 1.
 * @returns `[N, C, H * scale, W * scale]`.
 */
export function upsampleNearest2d(x: Tensor, scale: number | readonly [number, number]): Tensor {
  const op = "upsampleNearest2d";
  checkInput(op, x);
  const [sh, sw] = pairOf(op, "scale", scale, 1);
  const backend = backendOf(op, [x]);
  const [n, c, h, w] = x.shape;
  const g: PoolGeometry = {
    n,
    c,
    h,
    w,
    kh: 1,
    kw: 1,
    sh,
    sw,
    ph: 0,
    pw: 0,
    ho: h * sh,
    wo: w * sw,
  };
  const out = empty([n, c, g.ho, g.wo], x.dtype, backend);
  run("up", [x], [out], g, out.size);
  record(op, [x], [out], ([gy]) => {
    const dx = empty(x.shape, x.dtype, backend);
    run("up_grad", [gy!], [dx], g, dx.size);
    return [dx];
  });
  return out;
}
