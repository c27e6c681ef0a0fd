/**
 * Element types of tensors.
 *
 * `f32` is the working type on every backend; `i32` and `u32` hold indices and
 * labels. `f64` exists only on the CPU backend, for float64 gradient checks.
 *
 * @module
 */

/** The element type of a tensor. */
export type DType = "f32" | "i32" | "u32" | "f64";

/** A typed array of any element type a tensor can hold. */
export type TypedArray = Float32Array | Int32Array | Uint32Array | Float64Array;

/** The typed array that holds each element type. */
export interface TypedArrayFor {
  f32: Float32Array;
  i32: Int32Array;
  u32: Uint32Array;
  f64: Float64Array;
}

/** Bytes per element of each element type. */
export const BYTES_PER_ELEMENT: Readonly<Record<DType, number>> = {
  f32: 4,
  i32: 4,
  u32: 4,
  f64: 8,
};

/** Whether values of this type are floating point. */
export function isFloat(dtype: DType): boolean {
  return dtype === "f32" || dtype === "f64";
}

/** A view of `buffer` typed as `dtype`, `length` elements long. */
export function viewAs(
  buffer: ArrayBufferLike,
  dtype: DType,
  length: number,
  offset = 0,
): TypedArray {
  switch (dtype) {
    case "f32":
      return new Float32Array(buffer, offset, length);
    case "i32":
      return new Int32Array(buffer, offset, length);
    case "u32":
      return new Uint32Array(buffer, offset, length);
    case "f64":
      return new Float64Array(buffer, offset, length);
  }
}

/** The element type a typed array holds. */
export function dtypeOf(data: TypedArray): DType {
  if (data instanceof Float32Array) return "f32";
  if (data instanceof Int32Array) return "i32";
  if (data instanceof Uint32Array) return "u32";
  return "f64";
}

/** The WGSL scalar type of a 32-bit element type. */
export function wgslType(dtype: DType): "f32" | "i32" | "u32" {
  if (dtype === "f64") throw new TypeError(`Element type "f64" is not supported on WebGPU`);
  return dtype;
}
