/**
 * Data movement between tensors: `concat`, `stack`, `split`, `slice` and
 * constant `pad`, with gradients.
 *
 * `slice` and `pad` are one kernel, `concat.window`: output coordinate `c`
 * reads input coordinate `c + shift` (per axis) where that lies inside the
 * input and a constant elsewhere; each op's gradient is the other (a slice's
 * gradient is the output gradient zero-padded back, a pad's is a slice).
 * `concat` copies each input with `backend.copy` when it is one contiguous
 * block of the output (leading axes of size 1, e.g. axis 0) and with one
 * `concat.place` dispatch otherwise.
 *
 * @module
 */

import { record } from "../autograd.ts";
import type { DType } from "../dtype.ts";
import { BYTES_PER_ELEMENT } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache, type ParamType } from "../kernel.ts";
import { empty, sizeOf, type Tensor } from "../tensor.ts";
import { backendOf, launch, launchInto, normalizeAxis, stridesOf } from "./launch.ts";
import { reshape } from "./shape.ts";

const WORKGROUP = 256;
const MAX_RANK = 8;

const cached = kernelCache();

function scalarType(dtype: DType): "f32" | "i32" | "u32" {
  return dtype === "f64" ? "f32" : dtype;
}

function windowKernel(dtype: DType): Kernel {
  const key = `window|${dtype}`;
  return cached(key, () => ({
    label: "concat.window",
    inputs: { x: dtype },
    outputs: { out: dtype },
    params: {
      n: "u32",
      rank: "u32",
      value: scalarType(dtype) as ParamType,
      shape: "u32x8",
      xshape: "u32x8",
      xst: "u32x8",
      shift: "u32x8",
    },
    workgroupSize: WORKGROUP,
    code: `${entryPoint(WORKGROUP)}
  if (i >= p.n) { return; }
  var rem = i;
  var at = 0u;
  var inside = true;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let extent = u32x8_at(p.shape, u32(d));
    let c = i32(rem % extent) + bitcast<i32>(u32x8_at(p.shift, u32(d)));
    rem = rem / extent;
    if (c < 0 || c >= i32(u32x8_at(p.xshape, u32(d)))) { inside = false; }
    at = at + u32(c) * u32x8_at(p.xst, u32(d));
  }
  if (inside) { out[i] = x[at]; } else { out[i] = p.value; }
}`,
    cpu(ins, outs, p) {
      const n = p.n as number, rank = p.rank as number, value = p.value as number;
      const shape = p.shape as number[], xshape = p.xshape as number[];
      const xst = p.xst as number[], shift = p.shift as number[];
      const x = ins.x, out = outs.out;
      for (let i = 0; i < n; i++) {
        let rem = i, at = 0, inside = true;
        for (let d = rank - 1; d >= 0; d--) {
          const c = (rem % shape[d]) + shift[d];
          rem = Math.floor(rem / shape[d]);
          if (c < 0 || c >= xshape[d]) inside = false;
          at += c * xst[d];
        }
        out[i] = inside ? x[at] : value;
      }
    },
  }));
}

/** `out[c] = x[c + shift]` where inside `x`, else `value`; no gradient. */
function windowRaw(
  x: Tensor,
  shape: readonly number[],
  shift: readonly number[],
  value: number,
): Tensor {
  const n = sizeOf(shape);
  return launchInto(
    windowKernel(x.dtype),
    [x],
    shape,
    x.dtype,
    {
      n,
      rank: shape.length,
      value,
      shape: [...shape],
      xshape: [...x.shape],
      xst: stridesOf(x.shape),
      shift: [...shift],
    },
    Math.ceil(n / WORKGROUP),
  );
}

/** A window op with its gradient (the opposite window with zeros). */
function window(
  op: string,
  x: Tensor,
  shape: readonly number[],
  shift: readonly number[],
  value: number,
): Tensor {
  if (x.rank > MAX_RANK) throw new RangeError(`${op}: rank ${x.rank} exceeds ${MAX_RANK}`);
  const out = windowRaw(x, shape, shift, value);
  record(op, [x], [out], ([g]) => [windowRaw(g!, x.shape, shift.map((s) => -s), 0)]);
  return out;
}

/**
 * The block `starts[d] <= i < ends[d]` of `x` along each axis `d` (a copy).
 * `starts` and `ends` may be shorter than the rank (the remaining axes are
 * taken whole); negative values count from the end of the axis. The gradient
 * is the output gradient placed back into zeros.
 *
 * @example
 * ```ts
 * import { slice } from "./concat.ts";
 * import { tensor } from "../tensor.ts";
 * const x = tensor([[1, 2, 3], [4, 5, 6]]);
 * console.log(await slice(x, [0, 1], [2, 3]).data()); // Float32Array [2, 3, 5, 6]
 * console.log(await slice(x, [1], [2]).data()); // Float32Array [4, 5, 6]
 * ```
 *
 * @param x The tensor to slice.
 * @param starts First index per axis (inclusive).
 * @param ends Last index per axis (exclusive).
 * @returns A tensor of shape `ends - starts`.
 */
export function slice(x: Tensor, starts: readonly number[], ends: readonly number[]): Tensor {
  if (starts.length !== ends.length || starts.length > x.rank) {
    throw new TypeError(
      `slice: starts [${starts.join(", ")}] and ends [${ends.join(", ")}] do not fit [${
        x.shape.join(", ")
      }]`,
    );
  }
  const shape: number[] = [], shift: number[] = [];
  x.shape.forEach((dim, d) => {
    if (d >= starts.length) {
      shape.push(dim);
      shift.push(0);
      return;
    }
    const start = starts[d] < 0 ? starts[d] + dim : starts[d];
    const end = ends[d] < 0 ? ends[d] + dim : ends[d];
    if (
      !Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > dim || start > end
    ) {
      throw new RangeError(
        `slice: range [${starts[d]}, ${ends[d]}) is out of bounds for axis ${d} of size ${dim}`,
      );
    }
    shape.push(end - start);
    shift.push(start);
  });
  return window("slice", x, shape, shift, 0);
}

/**
 * `x` padded with `value`: `pads[d] = [before, after]` elements are added on
 * each side of axis `d` (pairs in axis order, first axis first; missing
 * trailing axes are not padded; negative amounts crop). The gradient is the
 * matching slice of the output gradient.
 *
 * @example
 * ```ts
 * import { pad } from "./concat.ts";
 * import { tensor } from "../tensor.ts";
 * const y = pad(tensor([[1, 2], [3, 4]]), [[0, 1], [1, 0]], 9);
 * console.log(y.shape, await y.data()); // [3, 3] Float32Array [9, 1, 2, 9, 3, 4, 9, 9, 9]
 * ```
 *
 * @param x The tensor to pad.
 * @param pads `[before, after]` per axis.
 * @param value The fill value; default 0.
 */
export function pad(
  x: Tensor,
  pads: readonly (readonly [number, number])[],
  value = 0,
): Tensor {
  if (pads.length > x.rank) {
    throw new TypeError(`pad: ${pads.length} pad pairs for a tensor of rank ${x.rank}`);
  }
  const shape: number[] = [], shift: number[] = [];
  x.shape.forEach((dim, d) => {
    const [before, after] = pads[d] ?? [0, 0];
    const size = dim + before + after;
    if (!Number.isInteger(before) || !Number.isInteger(after) || size < 0) {
      throw new RangeError(
        `pad: [${before}, ${after}] is out of range for axis ${d} of size ${dim}`,
      );
    }
    shape.push(size);
    shift.push(-before);
  });
  return window("pad", x, shape, shift, value);
}

function placeKernel(dtype: DType): Kernel {
  const key = `place|${dtype}`;
  return cached(key, () => ({
    label: "concat.place",
    inputs: { x: dtype },
    outputs: { out: dtype },
    params: { n: "u32", len: "u32", inner: "u32", out_len: "u32", offset: "u32" },
    workgroupSize: WORKGROUP,
    code: `${entryPoint(WORKGROUP)}
  if (i >= p.n) { return; }
  let block = p.len * p.inner;
  let o = i / block;
  let r = i % block;
  out[o * p.out_len * p.inner + p.offset * p.inner + r] = x[i];
}`,
    // Writes only the block of `out` that `x` fills: the inputs of one concat cover it.
    cpu(ins, outs, p) {
      const { n, len, inner, out_len: outLen, offset } = p as Record<string, number>;
      const x = ins.x, out = outs.out;
      const block = len * inner;
      for (let i = 0; i < n; i++) {
        out[Math.floor(i / block) * outLen * inner + offset * inner + (i % block)] = x[i];
      }
    },
  }));
}

/**
 * Joins tensors along an existing axis. All inputs share the element type,
 * the backend and every other dimension. The gradient of each input is its
 * slice of the output gradient.
 *
 * @example
 * ```ts
 * import { concat } from "./concat.ts";
 * import { tensor } from "../tensor.ts";
 * const y = concat([tensor([[1, 2]]), tensor([[3, 4], [5, 6]])], 0);
 * console.log(y.shape, await y.data()); // [3, 2] Float32Array [1, 2, 3, 4, 5, 6]
 * ```
 *
 * @param tensors At least one tensor.
 * @param axis The axis to join along (negative counts from the end).
 */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new TypeError("concat: needs at least one tensor");
  const first = tensors[0];
  const backend = backendOf("concat", tensors);
  if (first.rank === 0) throw new TypeError("concat: cannot join rank-0 tensors (use stack)");
  const a = normalizeAxis("concat", axis, first.rank);
  for (const t of tensors) {
    const same = t.rank === first.rank && t.shape.every((d, k) => k === a || d === first.shape[k]);
    if (!same) {
      throw new TypeError(
        `concat: shapes ${
          tensors.map((u) => `[${u.shape.join(", ")}]`).join(", ")
        } differ off axis ${a}`,
      );
    }
    if (t.dtype !== first.dtype) {
      throw new TypeError(`concat: element types ${first.dtype} and ${t.dtype} differ`);
    }
  }
  const outLen = tensors.reduce((s, t) => s + t.shape[a], 0);
  const shape = first.shape.map((d, k) => (k === a ? outLen : d));
  const out = empty(shape, first.dtype, backend);
  const outer = sizeOf(first.shape.slice(0, a));
  const inner = sizeOf(first.shape.slice(a + 1));
  const bytes = BYTES_PER_ELEMENT[first.dtype];
  let offset = 0;
  for (const t of tensors) {
    const len = t.shape[a];
    if (t.size > 0) {
      if (outer === 1) {
        backend.copy(t.storage, 0, out.storage, offset * inner * bytes, t.size * bytes);
      } else {
        launch(
          placeKernel(t.dtype),
          [t],
          [out],
          { n: t.size, len, inner, out_len: outLen, offset },
          Math.ceil(t.size / WORKGROUP),
        );
      }
    }
    offset += len;
  }
  const starts = tensors.map((_, k) => tensors.slice(0, k).reduce((s, t) => s + t.shape[a], 0));
  record("concat", tensors, [out], ([g]) =>
    tensors.map((t, k) => {
      if (!t.requiresGrad) return null;
      const shift = shape.map((_, d) => (d === a ? starts[k] : 0));
      return windowRaw(g!, t.shape, shift, 0);
    }));
  return out;
}

/**
 * Joins equally shaped tensors along a new axis `axis`.
 *
 * @example
 * ```ts
 * import { stack } from "./concat.ts";
 * import { tensor } from "../tensor.ts";
 * const y = stack([tensor([1, 2]), tensor([3, 4])], 1);
 * console.log(y.shape, await y.data()); // [2, 2] Float32Array [1, 3, 2, 4]
 * ```
 */
export function stack(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new TypeError("stack: needs at least one tensor");
  const shape = tensors[0].shape;
  for (const t of tensors) {
    if (t.shape.join() !== shape.join()) {
      throw new TypeError(
        `stack: shapes ${tensors.map((u) => `[${u.shape.join(", ")}]`).join(", ")} differ`,
      );
    }
  }
  const a = normalizeAxis("stack", axis, shape.length + 1);
  const expanded = [...shape.slice(0, a), 1, ...shape.slice(a)];
  const views = tensors.map((t) => reshape(t, expanded));
  const out = concat(views, a);
  for (const v of views) v.dispose();
  return out;
}

/**
 * Splits `x` along `axis` into pieces of the given sizes (which must add up
 * to the axis), or into `sections` equal pieces when a number is given.
 *
 * @example
 * ```ts
 * import { split } from "./concat.ts";
 * import { tensor } from "../tensor.ts";
 * const [a, b] = split(tensor([1, 2, 3, 4, 5]), [2, 3]);
 * console.log(await a.data(), await b.data()); // Float32Array [1, 2] Float32Array [3, 4, 5]
 * ```
 */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  const a = normalizeAxis("split", axis, x.rank);
  const dim = x.shape[a];
  let list: number[];
  if (typeof sizes === "number") {
    if (!Number.isInteger(sizes) || sizes <= 0 || dim % sizes !== 0) {
      throw new RangeError(`split: ${sizes} sections do not divide axis ${a} of size ${dim}`);
    }
    list = new Array<number>(sizes).fill(dim / sizes);
  } else list = [...sizes];
  if (list.some((s) => !Number.isInteger(s) || s < 0) || list.reduce((s, v) => s + v, 0) !== dim) {
    throw new RangeError(
      `split: sizes [${list.join(", ")}] do not add up to axis ${a} of size ${dim}`,
    );
  }
  let start = 0;
  return list.map((size) => {
    const starts = x.shape.map((_, d) => (d === a ? start : 0));
    const ends = x.shape.map((d, k) => (k === a ? start + size : d));
    start += size;
    return slice(x, starts, ends);
  });
}
