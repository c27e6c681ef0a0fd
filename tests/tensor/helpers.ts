/**
 * Shared test helpers for the engine: closeness checks, the backend pair,
 * pool poisoning (so an unwritten output element fails) and a float64
 * finite-difference gradient check on the CPU backend.
 *
 * @module
 */

import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import type { CpuStorage } from "../../tensor/cpu_backend.ts";
import { cpu, hasGpu, hasNative, native, webgpu } from "../../tensor/device.ts";
import type { TypedArray } from "../../tensor/dtype.ts";
import { mul } from "../../tensor/ops/elementwise.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { type Tensor, tensor, tidy } from "../../tensor/tensor.ts";

/**
 * Whether WebGPU tests can run here: the device is created as the tests create it
 * (`webgpu()`, with the adapter's limits). A device that fails to come up is an error, not a
 * skip; with `BRL_REQUIRE_GPU=1` (set by `.ci/run` once it has found an adapter) a missing
 * adapter is an error too.
 */
export const GPU: boolean = await hasGpu();
if (!GPU && Deno.env.get("BRL_REQUIRE_GPU") === "1") {
  await webgpu(); // rejects, naming what is missing
}

/** The WebGPU backend, for tests guarded by `{ ignore: !GPU }`. */
export async function gpuBackend(): Promise<Backend> {
  return await webgpu();
}

/** The CPU backend. */
export const CPU: Backend = cpu();

/**
 * Whether the native backend (OpenBLAS) runs here. With `BRL_REQUIRE_NATIVE=1` (set by `.ci/run`
 * once it has installed OpenBLAS) its absence is an error rather than a reason to skip.
 */
export const NATIVE: boolean = hasNative();
if (!NATIVE && Deno.env.get("BRL_REQUIRE_NATIVE") === "1") {
  native(); // throws, naming what is missing
}

/** The native backend, for tests guarded by `{ ignore: !NATIVE }`. */
export function nativeBackend(): Backend {
  return native();
}

/** Asserts `|actual - expected| <= atol + rtol * |expected|` elementwise (NaN matches NaN). */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol = 1e-5,
  rtol = 1e-5,
  what = "value",
): void {
  assert.equal(
    actual.length,
    expected.length,
    `${what}: length ${actual.length} != ${expected.length}`,
  );
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      assert.fail(`${what}[${i}]: got ${a}, expected ${e} (atol ${atol}, rtol ${rtol})`);
    }
  }
}

/** A seeded generator of uniform floats in [lo, hi) (mulberry32). */
export function randomArray(length: number, seed: number, lo = -1, hi = 1): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
  return out;
}

/**
 * Seeded random valid xyxy boxes, flat `[n, 4]`: the top-left corner in
 * `[0, span)`, width and height in `[minSide, minSide + span)`.
 */
export function randomBoxes(n: number, seed: number, span: number, minSide = 1): Float32Array {
  const r = randomArray(4 * n, seed, 0, 1);
  const out = new Float32Array(4 * n);
  for (let i = 0; i < n; i++) {
    const x = r[4 * i] * span, y = r[4 * i + 1] * span;
    out.set([x, y, x + minSide + r[4 * i + 2] * span, y + minSide + r[4 * i + 3] * span], 4 * i);
  }
  return out;
}

/** Flat `[N, 4]` box data as `N` rows of four numbers. */
export function boxRows(data: ArrayLike<number>): number[][] {
  return Array.from(
    { length: data.length / 4 },
    (_, i) => Array.from(data).slice(4 * i, 4 * i + 4),
  );
}

/**
 * Fills pooled buffers of the given element counts with NaN and returns them
 * to the pool, so the next outputs of those sizes start as NaN: a kernel that
 * leaves an element unwritten then fails its comparison.
 */
export function poisonPool(backend: Backend, sizes: readonly number[]): void {
  for (const size of sizes) {
    const t = tensor(new Float32Array(size).fill(NaN), [size], { backend });
    t.dispose();
  }
}

/** Runs `fn` on `backend` inside `tidy` and reads back every tensor it returns. */
export async function outputsOf(
  backend: Backend,
  fn: (backend: Backend) => Tensor | Tensor[],
): Promise<TypedArray[]> {
  const result = tidy(() => {
    const r = fn(backend);
    return Array.isArray(r) ? r : [r];
  });
  const data = await Promise.all(result.map((t) => t.data()));
  result.forEach((t) => t.dispose());
  return data;
}

/**
 * Runs `fn` on the CPU backend and on `target` (default WebGPU) with the same inputs and compares
 * the outputs' data.
 */
export async function compareBackends(
  fn: (backend: Backend) => Tensor | Tensor[],
  atol = 1e-4,
  rtol = 1e-4,
  target?: Backend,
): Promise<void> {
  const gpu = target ?? await webgpu();
  const expected = await outputsOf(CPU, fn);
  const actual = await outputsOf(gpu, fn);
  expected.forEach((e, k) => assertClose(actual[k], e, atol, rtol, `output ${k}`));
}

/**
 * Float64 finite-difference check of the gradients of `fn` at `inputs`
 * (CPU backend, `f64`): compares autograd's gradient of `sum(fn(x) * w)`, for
 * fixed random weights `w`, with central differences.
 */
export async function gradcheck(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: readonly { data: ArrayLike<number>; shape: readonly number[] }[],
  { eps = 1e-6, atol = 1e-6, rtol = 1e-5 } = {},
): Promise<void> {
  const make = (values: ArrayLike<number>[], grad: boolean) =>
    values.map((v, k) =>
      tensor(Float64Array.from(v), inputs[k].shape, { backend: CPU, requiresGrad: grad })
    );
  const base = inputs.map((x) => Float64Array.from(x.data));
  const probe = fn(...make(base, false));
  const weights = Float64Array.from(randomArray(probe.size, 7, 0.5, 1.5));
  probe.dispose();
  const objective = (values: Float64Array[]): number => {
    const ts = make(values, false);
    const out = fn(...ts);
    const w = tensor(weights, out.shape, { backend: CPU });
    const s = sum(mul(out, w));
    // The CPU backend's storage is a plain ArrayBuffer: read it synchronously.
    return new Float64Array((s.storage as CpuStorage).buffer)[0];
  };
  const leaves = make(base, true);
  const out = fn(...leaves);
  backward(sum(mul(out, tensor(weights, out.shape, { backend: CPU }))));
  for (let k = 0; k < inputs.length; k++) {
    const analytic = leaves[k].grad
      ? await leaves[k].grad!.data()
      : new Float64Array(base[k].length);
    const numeric = new Float64Array(base[k].length);
    for (let i = 0; i < base[k].length; i++) {
      const plus = base.map((b) => b.slice()), minus = base.map((b) => b.slice());
      plus[k][i] += eps;
      minus[k][i] -= eps;
      numeric[i] = (objective(plus) - objective(minus)) / (2 * eps);
    }
    assertClose(analytic, numeric, atol, rtol, `gradient of input ${k}`);
  }
}

/** Number of elements of a tensor of `shape`. */
export function shapeSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Row-major coordinates of flat index `i` in `shape`. */
export function coords(i: number, shape: readonly number[]): number[] {
  const c = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return c;
}

/** Row-major flat index of coordinates `c` in `shape`. */
export function offset(c: readonly number[], shape: readonly number[]): number {
  return c.reduce((at, v, d) => at * shape[d] + v, 0);
}

/** The backends a test runs on: the CPU, native where OpenBLAS loads, WebGPU where there is one. */
export async function testBackends(): Promise<Backend[]> {
  return [CPU, ...(NATIVE ? [native()] : []), ...(GPU ? [await gpuBackend()] : [])];
}

/**
 * Runs `fn` on a `[24, 35]` input forward and backward (gradient of ones on
 * its first output) and checks that no buffer is left behind.
 */
export async function assertReleases(
  backend: Backend,
  fn: (x: Tensor) => Tensor[],
): Promise<void> {
  const x = tensor(randomArray(24 * 35, 77), [24, 35], { backend, requiresGrad: true });
  const before = backend.liveBuffers();
  const outs = fn(x);
  const ones = tensor(new Float32Array(outs[0].size).fill(1), outs[0].shape, { backend });
  backward(outs[0], ones);
  await x.grad!.data();
  for (const t of [ones, ...outs, x.grad!]) t.dispose();
  x.grad = null;
  assert.equal(backend.liveBuffers(), before);
  x.dispose();
}

/** A float64 tensor on the CPU backend (for exact references and gradient checks). */
export function f64(
  data: ArrayLike<number>,
  shape: readonly number[],
  requiresGrad = false,
): Tensor {
  return tensor(Float64Array.from(data), shape, { backend: CPU, requiresGrad });
}
