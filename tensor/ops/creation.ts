/**
 * Tensors made on the device without an upload: `full`, `zeros`, `ones`.
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import { defaultDevice } from "../device.ts";
import { type DType, wgslType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { checkShape, sizeOf, type Tensor } from "../tensor.ts";
import { launchInto } from "./launch.ts";

const WORKGROUP = 256;
const cached = kernelCache();

function fillKernel(dtype: DType): Kernel {
  return cached(dtype, () => ({
    label: `creation.fill_${dtype}`,
    inputs: {},
    outputs: { out: dtype },
    params: { n: "u32", value: dtype === "f64" ? "f32" : wgslType(dtype) },
    workgroupSize: WORKGROUP,
    code: `${entryPoint(WORKGROUP)}
  if (i >= p.n) { return; }
  out[i] = p.value;
}`,
    cpu: (_, { out }, p) => out.fill(p.value as number),
  }));
}

/** Options of {@linkcode full}. */
export interface FullOptions {
  /** Element type; default `f32`. */
  dtype?: DType;
  /** Backend; default the default device. */
  backend?: Backend;
}

/**
 * A tensor of `shape` with every element `value`, filled on the device.
 *
 * @example
 * ```ts
 * import { full } from "./creation.ts";
 * console.log(await full([2, 2], 7).data()); // Float32Array [7, 7, 7, 7]
 * ```
 */
export function full(shape: readonly number[], value: number, options: FullOptions = {}): Tensor {
  checkShape(shape, "full");
  const dtype = options.dtype ?? "f32";
  const n = sizeOf(shape);
  return launchInto(
    fillKernel(dtype),
    [],
    shape,
    dtype,
    { n, value },
    Math.ceil(n / WORKGROUP),
    options.backend ?? defaultDevice(),
  );
}

/** A tensor of zeros (see {@linkcode full}). */
export function zeros(shape: readonly number[], options: FullOptions = {}): Tensor {
  return full(shape, 0, options);
}

/** A tensor of ones (see {@linkcode full}). */
export function ones(shape: readonly number[], options: FullOptions = {}): Tensor {
  return full(shape, 1, options);
}
