/**
 * Prefix scans (`cumsum`, `exclusiveScan`) along one axis, for `f32`, `i32`
 * and `u32` tensors (and `f64` on the CPU), with gradients.
 *
 * One kernel pair, `scan.reduce` and `scan.down`, views the tensor as
 * `[outer, len, inner]` lines along the scanned axis. Each invocation handles
 * at most {@linkcode SCAN_CHUNK} consecutive elements of a line (llvmpipe stops
 * loops past `LOOP_LIMIT`, tensor/kernel.ts), so long lines are scanned in levels:
 * chunk sums, a scan of those sums (recursively), then each chunk rescanned
 * from its carry. A scan of 1e7 elements is 5 dispatches and no readback.
 *
 * `f32` sums are accumulated in `f32` in a fixed order on both backends, so
 * the CPU twin reproduces the GPU's rounding; integer sums wrap modulo 2^32.
 *
 * @module
 */

import { record } from "../autograd.ts";
import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { empty, sizeOf, type Tensor, viewOf } from "../tensor.ts";
import { backendOf, expectDtype, launch, normalizeAxis } from "./launch.ts";

/** Elements one invocation scans serially per level. */
export const SCAN_CHUNK = 1024;
const WORKGROUP = 64;

/** Options of {@linkcode cumsum}. */
export interface ScanOptions {
  /** Sum from the end of the axis towards its start (suffix sums). */
  reverse?: boolean;
  /** Leave each element out of its own sum (the first output is 0). */
  exclusive?: boolean;
}

const cached = kernelCache();

function accumulator(dtype: DType): (acc: number, v: number) => number {
  switch (dtype) {
    case "f32":
      return (acc, v) => Math.fround(acc + v);
    case "i32":
      return (acc, v) => (acc + v) | 0;
    case "u32":
      return (acc, v) => (acc + v) >>> 0;
    default:
      return (acc, v) => acc + v;
  }
}

const LINE_CODE = `
  let total = p.outer * p.chunks * p.inner;
  if (i >= total) { return; }
  let n = i % p.inner;
  let j = (i / p.inner) % p.chunks;
  let o = i / (p.inner * p.chunks);
  let start = j * p.chunk;
  let stop = min(p.len, start + p.chunk);
  let base = o * p.len * p.inner + n;`;

function reduceKernel(dtype: DType): Kernel {
  const key = `reduce|${dtype}`;
  return cached(key, () => {
    const add = accumulator(dtype);
    return {
      label: "scan.reduce",
      inputs: { x: dtype },
      outputs: { out: dtype },
      params: { outer: "u32", len: "u32", inner: "u32", chunk: "u32", chunks: "u32" },
      workgroupSize: WORKGROUP,
      code: `alias T = ${dtype === "f64" ? "f32" : dtype};
${entryPoint(WORKGROUP)}${LINE_CODE}
  var acc = T(0);
  for (var t = start; t < stop; t++) { acc = acc + x[base + t * p.inner]; }
  out[i] = acc;
}`,
      cpu(ins, outs, p) {
        const { outer, len, inner, chunk, chunks } = p as Record<string, number>;
        const x = ins.x, out = outs.out;
        for (let o = 0; o < outer; o++) {
          for (let j = 0; j < chunks; j++) {
            for (let n = 0; n < inner; n++) {
              const base = o * len * inner + n;
              let acc = 0;
              for (let t = j * chunk; t < Math.min(len, (j + 1) * chunk); t++) {
                acc = add(acc, x[base + t * inner]);
              }
              out[(o * chunks + j) * inner + n] = acc;
            }
          }
        }
      },
    };
  });
}

function downKernel(dtype: DType): Kernel {
  const key = `down|${dtype}`;
  return cached(key, () => {
    const add = accumulator(dtype);
    return {
      label: "scan.down",
      inputs: { x: dtype, carry: dtype },
      outputs: { out: dtype },
      params: {
        outer: "u32",
        len: "u32",
        inner: "u32",
        chunk: "u32",
        chunks: "u32",
        inclusive: "u32",
        reverse: "u32",
        use_carry: "u32",
      },
      workgroupSize: WORKGROUP,
      code: `alias T = ${dtype === "f64" ? "f32" : dtype};
${entryPoint(WORKGROUP)}${LINE_CODE}
  var acc = T(0);
  if (p.use_carry != 0u) { acc = carry[i]; }
  let count = stop - start;
  for (var s = 0u; s < count; s++) {
    let t = select(start + s, stop - 1u - s, p.reverse != 0u);
    let at = base + t * p.inner;
    let v = x[at];
    if (p.inclusive != 0u) {
      acc = acc + v;
      out[at] = acc;
    } else {
      out[at] = acc;
      acc = acc + v;
    }
  }
}`,
      cpu(ins, outs, p) {
        const { outer, len, inner, chunk, chunks, inclusive, reverse, use_carry: useCarry } =
          p as Record<string, number>;
        const x = ins.x, carry = ins.carry, out = outs.out;
        for (let o = 0; o < outer; o++) {
          for (let j = 0; j < chunks; j++) {
            for (let n = 0; n < inner; n++) {
              const i = (o * chunks + j) * inner + n;
              const base = o * len * inner + n;
              const start = j * chunk, stop = Math.min(len, start + chunk);
              let acc = useCarry ? carry[i] : 0;
              for (let s = 0; s < stop - start; s++) {
                const at = base + (reverse ? stop - 1 - s : start + s) * inner;
                const v = x[at];
                if (inclusive) {
                  acc = add(acc, v);
                  out[at] = acc;
                } else {
                  out[at] = acc;
                  acc = add(acc, v);
                }
              }
            }
          }
        }
      },
    };
  });
}

/**
 * Scans the lines of `x` viewed as `[outer, len, inner]` along the middle
 * axis; returns a new flat tensor of `x.size` elements. No gradient.
 */
export function scanLines(
  x: Tensor,
  outer: number,
  len: number,
  inner: number,
  inclusive: boolean,
  reverse: boolean,
): Tensor {
  const backend = backendOf("scan", [x]);
  const out = empty([outer * len * inner], x.dtype, backend);
  if (out.size === 0) return out;
  const chunks = Math.ceil(len / SCAN_CHUNK);
  const lines = { outer, len, inner, chunk: SCAN_CHUNK, chunks };
  const invocations = outer * chunks * inner;
  let carry: Tensor | null = null;
  if (chunks > 1) {
    const partials = empty([invocations], x.dtype, backend);
    launch(reduceKernel(x.dtype), [x], [partials], lines, Math.ceil(invocations / WORKGROUP));
    carry = scanLines(partials, outer, chunks, inner, false, reverse);
    partials.dispose();
  }
  launch(
    downKernel(x.dtype),
    [x, carry ?? x],
    [out],
    { ...lines, inclusive: inclusive ? 1 : 0, reverse: reverse ? 1 : 0, use_carry: carry ? 1 : 0 },
    Math.ceil(invocations / WORKGROUP),
  );
  carry?.dispose();
  return out;
}

function scanAxis(op: string, x: Tensor, axis: number, inclusive: boolean, reverse: boolean) {
  expectDtype(op, x, ["f32", "i32", "u32", "f64"]);
  const rank = Math.max(x.rank, 1);
  const a = normalizeAxis(op, axis, rank);
  const shape = x.rank === 0 ? [1] : x.shape;
  const flat = scanLines(
    x,
    sizeOf(shape.slice(0, a)),
    shape[a],
    sizeOf(shape.slice(a + 1)),
    inclusive,
    reverse,
  );
  const out = viewOf(flat, x.shape);
  flat.dispose();
  record(op, [x], [out], ([g]) => [scanAxis(op, g!, a, inclusive, !reverse)]);
  return out;
}

/**
 * Cumulative sum along `axis`: `out[k] = x[0] + ... + x[k]` (with `reverse`,
 * `x[k] + ... + x[last]`; with `exclusive`, leaving `x[k]` out). Works for
 * `f32`, `i32` and `u32` (wrapping) tensors; the gradient is the cumulative
 * sum of the output gradient in the opposite direction.
 *
 * @example
 * ```ts
 * import { cumsum } from "./scan.ts";
 * import { tensor } from "../tensor.ts";
 * const x = tensor([[1, 2, 3], [4, 5, 6]]);
 * console.log(await cumsum(x, 1).data()); // Float32Array [1, 3, 6, 4, 9, 15]
 * console.log(await cumsum(x, 0, { reverse: true }).data()); // Float32Array [5, 7, 9, 4, 5, 6]
 * ```
 *
 * @param x The tensor to scan.
 * @param axis The axis to scan along (negative counts from the end); default the last.
 * @param options `reverse` and `exclusive`.
 * @returns A tensor of `x`'s shape and element type.
 */
export function cumsum(x: Tensor, axis = -1, options: ScanOptions = {}): Tensor {
  return scanAxis("cumsum", x, axis, !options.exclusive, options.reverse ?? false);
}

/**
 * Exclusive prefix sum along `axis` (default the last): `out[k] = x[0] + ... + x[k - 1]`,
 * `out[0] = 0`. Used for offsets (radix sort, bucketed losses); sizes of 1e7
 * and more run in a handful of dispatches.
 *
 * @example Offsets of variable-sized groups
 * ```ts
 * import { exclusiveScan } from "./scan.ts";
 * import { tensor } from "../tensor.ts";
 * const counts = tensor([3, 0, 2, 5], undefined, { dtype: "u32" });
 * console.log(await exclusiveScan(counts).data()); // Uint32Array [0, 3, 3, 5]
 * ```
 *
 * @param x A `u32`, `i32` or `f32` tensor.
 * @param axis The axis to scan along; default the last.
 * @returns A tensor of `x`'s shape and element type.
 */
export function exclusiveScan(x: Tensor, axis = -1): Tensor {
  return scanAxis("exclusiveScan", x, axis, false, false);
}
