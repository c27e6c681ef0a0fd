/**
 * Indexing: `gather`, `indexSelect` and `scatterAdd` (PyTorch semantics),
 * with gradients (`gather` and `scatterAdd` are each other's gradient;
 * `indexSelect`'s is an index-add).
 *
 * Indices are `i32` or `u32` tensors. Out-of-range indices throw a
 * `RangeError` naming the op when the index lives on the CPU backend; on the
 * GPU they are not checked (that would need a readback): `gather` and
 * `indexSelect` read 0 for them and `scatterAdd` drops them.
 *
 * WGSL has no float atomics, so `scatterAdd` is deterministic by
 * construction: each output element loops over the index entries along the
 * axis that could land on it (`index.scatter_add`, in passes of
 * {@linkcode SCATTER_CHUNK} entries for llvmpipe's loop limit) and adds the
 * matching sources in index order. Its cost is `target.size * index.shape[axis]`,
 * right for the small index axes of gradients (class axes, a few hundred
 * selected rows); large 1-D histogram-like scatters should sort by index and
 * reduce segments instead.
 *
 * @module
 */

import { record } from "../autograd.ts";
import { hostView, isHostBackend } from "../cpu_backend.ts";
import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { empty, sizeOf, type Tensor, viewOf } from "../tensor.ts";
import { pad } from "./concat.ts";
import { backendOf, expectDtype, launch, launchInto, normalizeAxis, stridesOf } from "./launch.ts";

/** Index entries one invocation of `index.scatter_add` visits per pass. */
export const SCATTER_CHUNK = 8192;
const WORKGROUP = 64;
const MAX_RANK = 8;
const INDEX_TYPES: readonly DType[] = ["i32", "u32"];

const cached = kernelCache();

function scalarType(dtype: DType): "f32" | "i32" | "u32" {
  return dtype === "f64" ? "f32" : dtype;
}

/** Throws a `RangeError` naming `op` if a CPU index has an entry outside `[0, limit)`. */
function checkRange(op: string, index: Tensor, limit: number, axis: number): void {
  if (!isHostBackend(index.backend)) return;
  const values = hostView(index);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(v >= 0 && v < limit)) {
      throw new RangeError(
        `${op}: index ${v} at position ${i} is out of range for axis ${axis} of size ${limit}`,
      );
    }
  }
}

function checkRank(op: string, t: Tensor): void {
  if (t.rank > MAX_RANK) throw new RangeError(`${op}: rank ${t.rank} exceeds ${MAX_RANK}`);
}

function gatherKernel(dtype: DType, indexType: DType): Kernel {
  const key = `gather|${dtype}|${indexType}`;
  return cached(key, () => ({
    label: "index.gather",
    inputs: { x: dtype, index: indexType },
    outputs: { out: dtype },
    params: { n: "u32", rank: "u32", axis: "u32", len: "u32", shape: "u32x8", xst: "u32x8" },
    workgroupSize: WORKGROUP,
    code: `${entryPoint(WORKGROUP)}
  if (i >= p.n) { return; }
  var rem = i;
  var at = 0u;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let extent = u32x8_at(p.shape, u32(d));
    let c = rem % extent;
    rem = rem / extent;
    if (u32(d) != p.axis) { at = at + c * u32x8_at(p.xst, u32(d)); }
  }
  let k = i32(index[i]);
  if (k < 0 || u32(k) >= p.len) { out[i] = ${scalarType(dtype)}(0); return; }
  out[i] = x[at + u32(k) * u32x8_at(p.xst, p.axis)];
}`,
    cpu(ins, outs, p) {
      const { n, rank, axis, len } = p as Record<string, number>;
      const shape = p.shape as number[], xst = p.xst as number[];
      const { x, index } = ins, out = outs.out;
      for (let i = 0; i < n; i++) {
        let rem = i, at = 0;
        for (let d = rank - 1; d >= 0; d--) {
          const c = rem % shape[d];
          rem = Math.floor(rem / shape[d]);
          if (d !== axis) at += c * xst[d];
        }
        const k = index[i];
        out[i] = k >= 0 && k < len ? x[at + k * xst[axis]] : 0;
      }
    },
  }));
}

function scatterAddKernel(dtype: DType, indexType: DType): Kernel {
  const key = `scatter_add|${dtype}|${indexType}`;
  return cached(key, () => {
    const T = scalarType(dtype);
    const add = dtype === "f32"
      ? (a: number, b: number) => Math.fround(a + b)
      : dtype === "i32"
      ? (a: number, b: number) => (a + b) | 0
      : dtype === "u32"
      ? (a: number, b: number) => (a + b) >>> 0
      : (a: number, b: number) => a + b;
    return {
      label: "index.scatter_add",
      inputs: { init: dtype, index: indexType, src: dtype },
      outputs: { out: dtype },
      params: {
        n: "u32",
        rank: "u32",
        axis: "u32",
        k0: "u32",
        k1: "u32",
        has_target: "u32",
        shape: "u32x8",
        ishape: "u32x8",
        ist: "u32x8",
        sst: "u32x8",
      },
      workgroupSize: WORKGROUP,
      code: `${entryPoint(WORKGROUP)}
  if (i >= p.n) { return; }
  var rem = i;
  var base_i = 0u;
  var base_s = 0u;
  var inside = true;
  var target_c = 0u;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let ud = u32(d);
    let extent = u32x8_at(p.shape, ud);
    let c = rem % extent;
    rem = rem / extent;
    if (ud == p.axis) { target_c = c; continue; }
    if (c >= u32x8_at(p.ishape, ud)) { inside = false; }
    base_i = base_i + c * u32x8_at(p.ist, ud);
    base_s = base_s + c * u32x8_at(p.sst, ud);
  }
  var acc = ${T}(0);
  if (p.has_target != 0u) { acc = init[i]; }
  if (inside) {
    let ist = u32x8_at(p.ist, p.axis);
    let sst = u32x8_at(p.sst, p.axis);
    for (var k = p.k0; k < p.k1; k++) {
      if (i32(index[base_i + k * ist]) == i32(target_c)) { acc = acc + src[base_s + k * sst]; }
    }
  }
  out[i] = acc;
}`,
      cpu(ins, outs, p) {
        const { n, rank, axis, k0, k1, has_target: hasTarget } = p as Record<string, number>;
        const shape = p.shape as number[], ishape = p.ishape as number[];
        const ist = p.ist as number[], sst = p.sst as number[];
        const { init, index, src } = ins, out = outs.out;
        for (let i = 0; i < n; i++) {
          let rem = i, baseI = 0, baseS = 0, inside = true, targetC = 0;
          for (let d = rank - 1; d >= 0; d--) {
            const c = rem % shape[d];
            rem = Math.floor(rem / shape[d]);
            if (d === axis) {
              targetC = c;
              continue;
            }
            if (c >= ishape[d]) inside = false;
            baseI += c * ist[d];
            baseS += c * sst[d];
          }
          let acc = hasTarget ? init[i] : 0;
          if (inside) {
            for (let k = k0; k < k1; k++) {
              if (index[baseI + k * ist[axis]] === targetC) {
                acc = add(acc, src[baseS + k * sst[axis]]);
              }
            }
          }
          out[i] = acc;
        }
      },
    };
  });
}

/**
 * The shared scatter-add: `out = target (or zeros) + sum of src` over index
 * entries `k < kLen` along `axis`; `ishape` bounds the other axes, `ist` and
 * `sst` are the index and source strides. No gradient is recorded.
 */
function scatterAddRaw(
  target: Tensor | null,
  shape: readonly number[],
  axis: number,
  index: Tensor,
  kLen: number,
  ishape: readonly number[],
  ist: readonly number[],
  src: Tensor,
  sst: readonly number[],
): Tensor {
  const backend = backendOf("scatterAdd", [index, src]);
  const n = sizeOf(shape);
  let current = target;
  const passes = Math.max(1, Math.ceil(kLen / SCATTER_CHUNK));
  for (let pass = 0; pass < passes; pass++) {
    const out = empty(shape, src.dtype, backend);
    launch(
      scatterAddKernel(src.dtype, index.dtype),
      [current ?? src, index, src],
      [out],
      {
        n,
        rank: shape.length,
        axis,
        k0: pass * SCATTER_CHUNK,
        k1: Math.min(kLen, (pass + 1) * SCATTER_CHUNK),
        has_target: current ? 1 : 0,
        shape: [...shape],
        ishape: [...ishape],
        ist: [...ist],
        sst: [...sst],
      },
      Math.ceil(n / WORKGROUP),
    );
    if (current !== target) current?.dispose();
    current = out;
  }
  return current!;
}

function gatherRaw(x: Tensor, axis: number, index: Tensor): Tensor {
  const n = index.size;
  return launchInto(
    gatherKernel(x.dtype, index.dtype),
    [x, index],
    index.shape,
    x.dtype,
    {
      n,
      rank: index.rank,
      axis,
      len: x.shape[axis],
      shape: [...index.shape],
      xst: stridesOf(x.shape),
    },
    Math.ceil(n / WORKGROUP),
  );
}

/** Gradient of `gather`: `g` (index-shaped) added into zeros of `shape` at `index`. */
function gatherBackward(g: Tensor, shape: readonly number[], axis: number, index: Tensor) {
  return scatterAddRaw(
    null,
    shape,
    axis,
    index,
    index.shape[axis],
    index.shape,
    stridesOf(index.shape),
    g,
    stridesOf(g.shape),
  );
}

function checkIndexShape(op: string, x: Tensor, axis: number, index: Tensor, other: string) {
  const fits = index.rank === x.rank &&
    index.shape.every((d, k) => k === axis || d <= x.shape[k]);
  if (!fits) {
    throw new TypeError(
      `${op}: index [${index.shape.join(", ")}] does not fit ${other} [${
        x.shape.join(", ")
      }] off axis ${axis}`,
    );
  }
}

/**
 * Picks elements along `axis` (PyTorch `gather`): `out[c] = x[c with c[axis]
 * replaced by index[c]]`. `index` has `x`'s rank and no larger dimension off
 * `axis`; the output has `index`'s shape. The gradient is a `scatterAdd`.
 *
 * @example
 * ```ts
 * import { gather } from "./index.ts";
 * import { tensor } from "../tensor.ts";
 * const x = tensor([[1, 2, 3], [4, 5, 6]]);
 * const index = tensor([[2, 0], [1, 1]], undefined, { dtype: "i32" });
 * console.log(await gather(x, 1, index).data()); // Float32Array [3, 1, 5, 5]
 * ```
 *
 * @param x The source.
 * @param axis The axis the indices address.
 * @param index `i32` or `u32` indices in `[0, x.shape[axis])`.
 */
export function gather(x: Tensor, axis: number, index: Tensor): Tensor {
  expectDtype("gather", index, INDEX_TYPES);
  backendOf("gather", [x, index]);
  checkRank("gather", x);
  const a = normalizeAxis("gather", axis, x.rank);
  checkIndexShape("gather", x, a, index, "input");
  checkRange("gather", index, x.shape[a], a);
  const out = gatherRaw(x, a, index);
  record("gather", [x], [out], ([g]) => [gatherBackward(g!, x.shape, a, index)]);
  return out;
}

function selectKernel(dtype: DType, indexType: DType): Kernel {
  const key = `select|${dtype}|${indexType}`;
  return cached(key, () => ({
    label: "index.select",
    inputs: { x: dtype, index: indexType },
    outputs: { out: dtype },
    params: { n: "u32", len: "u32", k: "u32", inner: "u32" },
    workgroupSize: WORKGROUP,
    code: `${entryPoint(WORKGROUP)}
  if (i >= p.n) { return; }
  let n = i % p.inner;
  let kk = (i / p.inner) % p.k;
  let o = i / (p.inner * p.k);
  let j = i32(index[kk]);
  if (j < 0 || u32(j) >= p.len) { out[i] = ${scalarType(dtype)}(0); return; }
  out[i] = x[(o * p.len + u32(j)) * p.inner + n];
}`,
    cpu(ins, outs, p) {
      const { n, len, k, inner } = p as Record<string, number>;
      const { x, index } = ins, out = outs.out;
      for (let i = 0; i < n; i++) {
        const kk = Math.floor(i / inner) % k;
        const o = Math.floor(i / (inner * k));
        const j = index[kk];
        out[i] = j >= 0 && j < len ? x[(o * len + j) * inner + (i % inner)] : 0;
      }
    },
  }));
}

/**
 * Selects whole slices along `axis` (PyTorch `index_select`): output slice
 * `k` is input slice `index[k]`; `index` is 1-D. The gradient adds each
 * output slice back into its source slice (repeats accumulate).
 *
 * @example
 * ```ts
 * import { indexSelect } from "./index.ts";
 * import { tensor } from "../tensor.ts";
 * const x = tensor([[1, 2], [3, 4], [5, 6]]);
 * const rows = indexSelect(x, 0, tensor([2, 0, 2], undefined, { dtype: "u32" }));
 * console.log(await rows.data()); // Float32Array [5, 6, 1, 2, 5, 6]
 * ```
 */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  expectDtype("indexSelect", index, INDEX_TYPES);
  backendOf("indexSelect", [x, index]);
  checkRank("indexSelect", x);
  if (index.rank !== 1) {
    throw new TypeError(`indexSelect: index must be 1-D but has shape [${index.shape.join(", ")}]`);
  }
  const a = normalizeAxis("indexSelect", axis, x.rank);
  checkRange("indexSelect", index, x.shape[a], a);
  const k = index.size;
  const shape = x.shape.map((d, j) => (j === a ? k : d));
  const inner = sizeOf(x.shape.slice(a + 1));
  const n = sizeOf(shape);
  const out = launchInto(
    selectKernel(x.dtype, index.dtype),
    [x, index],
    shape,
    x.dtype,
    { n, len: x.shape[a], k, inner },
    Math.ceil(n / WORKGROUP),
  );
  record("indexSelect", [x], [out], ([g]) => {
    // Index-add: the index broadcasts over every other axis (stride 0).
    const ist = x.shape.map((_, d) => (d === a ? 1 : 0));
    return [scatterAddRaw(null, x.shape, a, index, k, x.shape, ist, g!, stridesOf(shape))];
  });
  return out;
}

/**
 * Adds `src` into a copy of `target` along `axis` (PyTorch `scatter_add`):
 * `out[c with c[axis] = index[c]] += src[c]` for every coordinate `c` of
 * `index`. `index` has the rank of both, no dimension larger than `src`'s,
 * and none larger than `target`'s off `axis`. Deterministic (no atomics):
 * repeated indices are summed in index order. Gradients: `target` gets the
 * output gradient, `src` gets it gathered at `index` (0 where `src` extends
 * past `index`).
 *
 * @example
 * ```ts
 * import { scatterAdd } from "./index.ts";
 * import { tensor } from "../tensor.ts";
 * const target = tensor([0, 0, 0]);
 * const index = tensor([0, 2, 0, 2, 2], undefined, { dtype: "i32" });
 * const out = scatterAdd(target, 0, index, tensor([1, 2, 3, 4, 5]));
 * console.log(await out.data()); // Float32Array [4, 0, 11]
 * ```
 */
export function scatterAdd(target: Tensor, axis: number, index: Tensor, src: Tensor): Tensor {
  expectDtype("scatterAdd", index, INDEX_TYPES);
  backendOf("scatterAdd", [target, index, src]);
  checkRank("scatterAdd", target);
  if (src.dtype !== target.dtype) {
    throw new TypeError(`scatterAdd: element types ${target.dtype} and ${src.dtype} differ`);
  }
  const a = normalizeAxis("scatterAdd", axis, target.rank);
  checkIndexShape("scatterAdd", target, a, index, "target");
  const fitsSrc = src.rank === index.rank && index.shape.every((d, k) => d <= src.shape[k]);
  if (!fitsSrc) {
    throw new TypeError(
      `scatterAdd: index [${index.shape.join(", ")}] does not fit src [${src.shape.join(", ")}]`,
    );
  }
  checkRange("scatterAdd", index, target.shape[a], a);
  const out = scatterAddRaw(
    target,
    target.shape,
    a,
    index,
    index.shape[a],
    index.shape,
    stridesOf(index.shape),
    src,
    stridesOf(src.shape),
  );
  record("scatterAdd", [target, src], [out], ([g]) => {
    const gTarget = target.requiresGrad ? viewOf(g!, g!.shape) : null;
    let gSrc: Tensor | null = null;
    if (src.requiresGrad) {
      const picked = gatherRaw(g!, a, index);
      if (picked.shape.join() === src.shape.join()) gSrc = picked;
      else {
        gSrc = pad(picked, src.shape.map((d, k) => [0, d - index.shape[k]] as [number, number]));
        picked.dispose();
      }
    }
    return [gTarget, gSrc];
  });
  return out;
}
