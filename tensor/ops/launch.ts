/**
 * Helpers every op uses: checking inputs, allocating outputs, launching kernels.
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import type { DType } from "../dtype.ts";
import type { Kernel, ParamValues } from "../kernel.ts";
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
  const backend = backendOf(kernel.label, [...inputs, ...outputs]);
  backend.run({
    kernel,
    inputs: inputs.map((t) => ({ storage: t.storage, dtype: t.dtype, size: t.size })),
    outputs: outputs.map((t) => ({ storage: t.storage, dtype: t.dtype, size: t.size })),
    params,
    workgroups,
    indirect: indirect && { storage: indirect.args.storage, byteOffset: indirect.index * 4 },
  });
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
