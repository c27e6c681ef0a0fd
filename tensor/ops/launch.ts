/**
 * Helpers every op uses: checking inputs, allocating outputs, launching kernels.
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import type { DType } from "../dtype.ts";
import {
  type BufferBinding,
  type Kernel,
  type ParamValues,
  UNIFORM_WINDOW_ALIGNMENT,
  UNIFORM_WINDOW_FLOATS,
  type UniformWindow,
} from "../kernel.ts";
import { empty, type Tensor } from "../tensor.ts";

/** The backend all `inputs` share; throws a `TypeError` naming `op` otherwise. */
export function backendOf(op: string, inputs: readonly Tensor[]): Backend {
  const backend = inputs[0].backend;
  for (const t of inputs) {
    if (t.backend !== backend) {
      throw new TypeError(
        `${op}: inputs live on different backends (${backend.name} and ${t.backend.name})`,
      );
    }
  }
  return backend;
}

/** Throws a `TypeError` naming `op` unless `t` has one of `dtypes`. */
export function expectDtype(op: string, t: Tensor, dtypes: readonly DType[]): void {
  if (!dtypes.includes(t.dtype)) {
    throw new TypeError(
      `${op}: expected ${dtypes.join(" or ")} but got ${t.dtype} [${t.shape.join(", ")}]`,
    );
  }
}

/** The float type of a computation on `t`'s backend (`f64` only for `f64` CPU inputs). */
export function floatOf(t: Tensor): DType {
  return t.dtype === "f64" ? "f64" : "f32";
}

/**
 * Runs `kernel` reading `inputs` and writing `outputs` (already allocated). With `indirect`, the
 * WebGPU backend takes the workgroup count from `indirect.args` (`u32` x, y, z at element
 * `indirect.index`, written by an earlier kernel); `workgroups` is then an upper bound.
 */
export function launch(
  kernel: Kernel,
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  params: ParamValues,
  workgroups: number,
  indirect?: { args: Tensor; index: number },
): void {
  const backend = sharedBackend(kernel.label, inputs, outputs);
  backend.run({
    kernel,
    inputs: inputs.map(bindingOf),
    outputs: outputs.map(bindingOf),
    params,
    workgroups,
    indirect: indirect && { storage: indirect.args.storage, byteOffset: indirect.index * 4 },
  });
}

/** {@linkcode backendOf} of `inputs` and `outputs` together, without joining them (once per launch). */
function sharedBackend(
  op: string,
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
): Backend {
  const backend = (inputs[0] ?? outputs[0]).backend;
  for (const t of inputs) if (t.backend !== backend) return backendOf(op, [...inputs, ...outputs]);
  for (const t of outputs) if (t.backend !== backend) return backendOf(op, [...inputs, ...outputs]);
  return backend;
}

function bindingOf(t: Tensor): BufferBinding {
  return { storage: t.storage, dtype: t.dtype, size: t.size };
}

/**
 * Runs `kernel` as {@linkcode launch} does, with `windows` bound to its uniform-window inputs
 * (`Kernel.uniforms`, in order).
 */
export function launchWindowed(
  kernel: Kernel,
  windows: readonly UniformWindow[],
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  params: ParamValues,
  workgroups: number,
): void {
  sharedBackend(kernel.label, inputs, outputs).run({
    kernel,
    inputs: inputs.map(bindingOf),
    outputs: outputs.map(bindingOf),
    params,
    workgroups,
    uniformInputs: windows,
  });
}

/**
 * Runs `windowed`, which reads `src` through one uniform window, on the window that holds float
 * `start` of `src` (the window begins at the aligned offset at or before `start`, and
 * `params.delta` is `start`'s place in it). Where that window would pass the end of `src`, runs
 * `fallback` instead, which reads `src` from storage, with `params.delta = start`; both write
 * `out`.
 */
export function launchAtWindow(
  windowed: Kernel,
  fallback: Kernel,
  src: Tensor,
  out: Tensor,
  start: number,
  params: ParamValues,
  workgroups: number,
): void {
  const align = UNIFORM_WINDOW_ALIGNMENT / 4;
  const aligned = Math.floor(start / align) * align;
  if (aligned + UNIFORM_WINDOW_FLOATS <= src.size) {
    const window = { storage: src.storage, byteOffset: aligned * 4 };
    launchWindowed(
      windowed,
      [window],
      [],
      [out],
      { ...params, delta: start - aligned },
      workgroups,
    );
  } else {
    launch(fallback, [src], [out], { ...params, delta: start }, workgroups);
  }
}

/** Allocates one output (on the inputs' backend unless given) and runs `kernel` into it. */
export function launchInto(
  kernel: Kernel,
  inputs: readonly Tensor[],
  shape: readonly number[],
  dtype: DType,
  params: ParamValues,
  workgroups: number,
  backend: Backend = backendOf(kernel.label, inputs),
): Tensor {
  const out = empty(shape, dtype, backend);
  launch(kernel, inputs, [out], params, workgroups);
  return out;
}

/** Normalises a possibly negative axis of a rank-`rank` tensor; `RangeError` if out of range. */
export function normalizeAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= Math.max(rank, 1)) {
    throw new RangeError(`${op}: axis ${axis} is out of range for rank ${rank}`);
  }
  return a;
}

/** Row-major strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

/**
 * The passes `[from, to)` of at most `chunk` items that cover `[0, total)`, for a kernel that
 * loops over an axis in several dispatches (llvmpipe stops loops near 65,535 iterations); one
 * empty pass `[0, 0]` when `total` is 0, so that a first pass that writes its output still runs.
 *
 * @example
 * ```ts
 * import { passRanges } from "./launch.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(passRanges(5, 2), [[0, 2], [2, 4], [4, 5]]);
 * assert.deepEqual(passRanges(0, 2), [[0, 0]]);
 * ```
 */
export function passRanges(total: number, chunk: number): [number, number][] {
  const ranges: [number, number][] = [];
  for (let from = 0; from < total; from += chunk) {
    ranges.push([from, Math.min(total, from + chunk)]);
  }
  return ranges.length > 0 ? ranges : [[0, 0]];
}
