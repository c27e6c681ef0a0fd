/**
 * Bilinear sampling with zero padding, as PyTorch's `grid_sample` does it
 * (`mode="bilinear"`, `padding_mode="zeros"`), shared by `gridSample`
 * and `msDeformAttn`: the four taps of a sample at pixel coordinates
 * `(ix, iy)` (pixel `(i, j)` centred on `(i, j)`), their weights, and the
 * slopes of the sample along x and y.
 *
 * The taps are `x0 = floor(ix)`, `x0 + 1` (and likewise in y); a tap outside
 * the plane reads 0. So where `ix` is an integer the slope is the one-sided
 * derivative over `[ix, ix + 1]`, and out-of-plane taps still enter the slopes
 * (as `0 - v`): at `ix = -1` exactly the sample is 0 but its x-slope is not.
 * A sample with no tap inside (`ix < -1`, `ix >= W`, the same in y, or NaN)
 * is 0 with zero slopes; such samples are skipped before any integer
 * conversion, so far-away or infinite coordinates are safe.
 *
 * Each op computes its pixel coordinates in `f32` (the CPU twins round every
 * step with `Math.fround`), so its twin floors to the same taps as its WGSL.
 *
 * @module
 */

import { hostView, isHostBackend } from "../cpu_backend.ts";
import type { TypedArray } from "../dtype.ts";
import type { Tensor } from "../tensor.ts";

/**
 * WGSL: `Taps` and `bilinear_taps(ix, iy, w, h)` (the taps of a sample on a `h x w` plane,
 * offsets `y * w + x` in the order north-west, north-east, south-west, south-east, clamped
 * into the plane where outside), `bilinear_weights` (the taps' weights in the sample), and
 * `bilinear_dx` and `bilinear_dy` (their coefficients in the sample's slopes along x and y).
 */
export const BILINEAR_WGSL = /* wgsl */ `
struct Taps {
  at: vec4<u32>,
  inside: vec4<bool>,
  fx: f32,
  fy: f32,
  hit: bool,
}

fn bilinear_taps(ix: f32, iy: f32, w: u32, h: u32) -> Taps {
  var t: Taps;
  t.hit = ix >= -1.0 && ix < f32(w) && iy >= -1.0 && iy < f32(h);
  if (!t.hit) { return t; }
  let x0f = floor(ix);
  let y0f = floor(iy);
  t.fx = ix - x0f;
  t.fy = iy - y0f;
  let x0 = i32(x0f);
  let y0 = i32(y0f);
  let in_x = vec2<bool>(x0 >= 0, x0 + 1 < i32(w));
  let in_y = vec2<bool>(y0 >= 0, y0 + 1 < i32(h));
  t.inside = vec4<bool>(in_y.x && in_x.x, in_y.x && in_x.y, in_y.y && in_x.x, in_y.y && in_x.y);
  let cx0 = u32(max(x0, 0));
  let cx1 = u32(min(x0 + 1, i32(w) - 1));
  let r0 = u32(max(y0, 0)) * w;
  let r1 = u32(min(y0 + 1, i32(h) - 1)) * w;
  t.at = vec4<u32>(r0 + cx0, r0 + cx1, r1 + cx0, r1 + cx1);
  return t;
}

fn bilinear_weights(t: Taps) -> vec4<f32> {
  let gx = 1.0 - t.fx;
  let gy = 1.0 - t.fy;
  return vec4<f32>(gx * gy, t.fx * gy, gx * t.fy, t.fx * t.fy);
}

// Coefficients of the four tap values in the slope of the sample along x, and along y.
fn bilinear_dx(t: Taps) -> vec4<f32> {
  return vec4<f32>(t.fy - 1.0, 1.0 - t.fy, -t.fy, t.fy);
}

fn bilinear_dy(t: Taps) -> vec4<f32> {
  return vec4<f32>(t.fx - 1.0, -t.fx, 1.0 - t.fx, t.fx);
}
`;

/**
 * WGSL: `fn fetch_<array>(base: u32, stride: u32, t: Taps)`, the four tap values of a sample
 * read from `array` at `base + offset * stride` (0 for a tap outside): a `vec4<f32>` for
 * `width` 1; for `width` 4, the taps of 4 consecutive channels (`base` to `base + 3`) as the
 * columns of a `mat4x4<f32>`, so that `fetch(...) * bilinear_weights(t)` samples 4 channels.
 */
export function bilinearFetchWgsl(array: string, width: 1 | 4 = 1): string {
  const read = (k: string, c: number) => `f32(${array}[base + t.at.${k} * stride + ${c}u])`;
  const taps = ["x", "y", "z", "w"].map((k) =>
    width === 1
      ? `select(0.0, ${read(k, 0)}, t.inside.${k})`
      : `select(vec4<f32>(0.0), vec4<f32>(${
        [0, 1, 2, 3].map((c) => read(k, c)).join(", ")
      }), t.inside.${k})`
  );
  const type = width === 1 ? "vec4<f32>" : "mat4x4<f32>";
  return /* wgsl */ `
fn fetch_${array}(base: u32, stride: u32, t: Taps) -> ${type} {
  return ${type}(${taps.join(",\n    ")});
}
`;
}

/**
 * WGSL statements adding `weights * g` into the taps inside the plane of `array`, at
 * `base + offset * stride` (for a `Taps` value named `t` and a `vec4<f32>` named `wt`); for
 * `width` 4, `g` is a `vec4<f32>` over 4 consecutive channels from `base`.
 */
export function bilinearScatterWgsl(array: string, g: string, width: 1 | 4 = 1): string {
  return ["x", "y", "z", "w"].map((k) => {
    const adds = width === 1
      ? [`${array}[at] += wt.${k} * ${g};`]
      : ["x", "y", "z", "w"].map((c, j) => `${array}[at + ${j}u] += wt.${k} * ${g}.${c};`);
    return `if (t.inside.${k}) {
      let at = base + t.at.${k} * stride;
      ${adds.join("\n      ")}
    }`;
  }).join("\n    ");
}

/**
 * The CPU twin's taps of one sample, reused from sample to sample: `at` holds the plane
 * offsets (north-west, north-east, south-west, south-east; -1 outside), `weights` their
 * bilinear weights, `fx`/`fy` the position in the cell.
 */
export class BilinearTaps {
  /** Plane offsets `y * w + x` of the four taps, -1 for a tap outside the plane. */
  readonly at: Int32Array = new Int32Array(4);
  /** Bilinear weights of the four taps. */
  readonly weights: Float64Array = new Float64Array(4);
  /** Position in the cell along x (the east taps' share). */
  fx = 0;
  /** Position in the cell along y (the south taps' share). */
  fy = 0;

  /**
   * Finds the taps of a sample at `(ix, iy)` on an `h x w` plane; false when none lies
   * inside (the sample and its slopes are then 0).
   */
  locate(ix: number, iy: number, w: number, h: number): boolean {
    if (!(ix >= -1 && ix < w && iy >= -1 && iy < h)) return false;
    const x0 = Math.floor(ix), y0 = Math.floor(iy);
    const fx = ix - x0, fy = iy - y0;
    this.fx = fx;
    this.fy = fy;
    const inX0 = x0 >= 0, inX1 = x0 + 1 < w, inY0 = y0 >= 0, inY1 = y0 + 1 < h;
    const at = this.at, wt = this.weights;
    at[0] = inY0 && inX0 ? y0 * w + x0 : -1;
    at[1] = inY0 && inX1 ? y0 * w + x0 + 1 : -1;
    at[2] = inY1 && inX0 ? (y0 + 1) * w + x0 : -1;
    at[3] = inY1 && inX1 ? (y0 + 1) * w + x0 + 1 : -1;
    wt[0] = (1 - fx) * (1 - fy);
    wt[1] = fx * (1 - fy);
    wt[2] = (1 - fx) * fy;
    wt[3] = fx * fy;
    return true;
  }

  /** Tap values of the last {@linkcode read} (0 for a tap outside). */
  readonly values: Float64Array = new Float64Array(4);

  /** Reads the four tap values from `x` at `base + offset * stride` into `values`. */
  read(x: TypedArray, base: number, stride: number): void {
    const at = this.at, v = this.values;
    for (let k = 0; k < 4; k++) v[k] = at[k] < 0 ? 0 : x[base + at[k] * stride];
  }

  /** The sample from the values read. */
  sample(): number {
    const w = this.weights, v = this.values;
    return w[0] * v[0] + w[1] * v[1] + w[2] * v[2] + w[3] * v[3];
  }

  /** The derivative of the sample along x (per pixel) from the values read. */
  slopeX(): number {
    const v = this.values;
    return (1 - this.fy) * (v[1] - v[0]) + this.fy * (v[3] - v[2]);
  }

  /** The derivative of the sample along y (per pixel) from the values read. */
  slopeY(): number {
    const v = this.values;
    return (1 - this.fx) * (v[2] - v[0]) + this.fx * (v[3] - v[1]);
  }

  /** Adds `g` times each tap's weight into `x` at `base + offset * stride` (taps inside only). */
  scatter(x: TypedArray, base: number, stride: number, g: number): void {
    const at = this.at, wt = this.weights;
    for (let k = 0; k < 4; k++) if (at[k] >= 0) x[base + at[k] * stride] += g * wt[k];
  }
}

/**
 * On host backends, throws a `RangeError` naming `op`, `name` and the index of the first NaN
 * coordinate of `t` (a GPU tensor is not read back; there a NaN coordinate samples 0).
 */
export function checkCoordinates(op: string, name: string, t: Tensor): void {
  if (!isHostBackend(t.backend)) return;
  const v = hostView(t);
  for (let i = 0; i < v.length; i++) {
    if (v[i] !== v[i]) {
      const at: number[] = [];
      for (let d = t.rank - 1, r = i; d >= 0; d--) {
        at.unshift(r % t.shape[d]);
        r = Math.floor(r / t.shape[d]);
      }
      throw new RangeError(`${op}: ${name} has a NaN coordinate at [${at.join(", ")}]`);
    }
  }
}
