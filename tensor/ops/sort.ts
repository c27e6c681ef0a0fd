/**
 * Sorting: a stable key-value sort of `f32` keys (`sort`, `argsort`) and
 * `topk`, along the last axis (rows sorted independently), with gradients.
 *
 * The sort is an LSD radix sort on the key bits, 8 bits per pass. Keys are
 * mapped to `u32` so that unsigned order is float order (negative floats have
 * all bits flipped, others the sign bit set; `-0` counts as `+0`; descending
 * inverts the mapped key); every NaN maps to `0xffffffff`, so NaNs come last
 * in both directions, in their original order. Rows are handled by extra
 * passes on the row number once the key passes are done (LSD sorting is
 * stable), so a `[rows, n]` sort costs `4 + ceil(log2(rows) / 8)` passes.
 *
 * Each pass is three steps, five dispatches, no readback:
 * `sort.histogram` (one invocation counts the digits of a chunk of consecutive
 * elements, sized by {@linkcode sortChunk}), an exclusive scan of the digit-major count matrix
 * (`scan.*`), and `sort.scatter`, where each invocation walks its chunk again
 * in order and writes each element to its digit's next slot (stable). The last
 * pass writes the sorted values (read from `x`, so `-0` and NaN payloads are
 * kept) and each element's position in its row. On the CPU backend the same
 * kernels' twins run: a JS radix sort, never a comparator sort.
 *
 * `f64` keys (CPU backend only) are ordered by their `f32` rounding.
 *
 * Cost on llvmpipe: every storage access costs ~10 ns per lane there whatever
 * the access pattern or vector width, and a pass moves ~5 words per element,
 * so 1M pairs take ~130 ms (4 passes, 20 dispatches) against ~70 ms for the
 * CPU twin; see `bench/sort_bench.ts`. The gradient of `values` scatters the
 * output gradient back through the saved permutation (released by `backward`).
 *
 * @module
 */

import { needsGrad, noGrad, record } from "../autograd.ts";
import type { Backend } from "../backend.ts";
import type { DType, TypedArray } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { empty, keep, sizeOf, Tensor, viewOf } from "../tensor.ts";
import { cast } from "./elementwise.ts";
import { zeros } from "./creation.ts";
import { backendOf, expectDtype, launch, normalizeAxis } from "./launch.ts";
import { scanLines } from "./scan.ts";
import { permute } from "./shape.ts";

/**
 * Elements one invocation of the histogram and scatter kernels walks per pass,
 * and their workgroup size, for a backend. On CPU-like adapters (llvmpipe) and
 * the CPU backend few long invocations win: a storage access costs ~10 ns per
 * lane there, private memory ~1 ns. Real GPUs get short chunks and wide groups.
 */
export function sortChunk(backend: Backend): { chunk: number; workgroupSize: number } {
  const cpuLike = backend.profile.software; // the host and software adapters
  return cpuLike ? { chunk: 8192, workgroupSize: 8 } : { chunk: 256, workgroupSize: 64 };
}
const BITS = 8;
const BINS = 1 << BITS;

/** Options of {@linkcode sort}. */
export interface SortOptions {
  /** Largest first (NaNs still last); default `false`. */
  descending?: boolean;
  /**
   * Values carried along with the keys (`u32` or `i32`, `x`'s shape); the
   * returned `indices` are this payload permuted. Default: each element's
   * index along the sorted axis.
   */
  payload?: Tensor;
}

/** The result of {@linkcode sort} and {@linkcode topk}. */
export interface SortResult {
  /** The sorted keys. */
  values: Tensor;
  /** Indices along the axis (`u32`), or the permuted payload. */
  indices: Tensor;
}

/** Maps f32 bits to a u32 whose unsigned order is the float order (NaN largest). */
function mappedKeyCpu(bits: number, descending: boolean): number {
  if ((bits & 0x7fffffff) >>> 0 > 0x7f800000) return 0xffffffff;
  const b = bits === 0x80000000 ? 0 : bits;
  let k = b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
  if (descending) k = ~k >>> 0;
  return k;
}

const KEY_WGSL = `
fn mapped_key(bits: u32) -> u32 {
  if ((bits & 0x7fffffffu) > 0x7f800000u) { return 0xffffffffu; }
  var b = bits;
  if (b == 0x80000000u) { b = 0u; }
  var k = select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
  if (p.desc != 0u) { k = ~k; }
  return k;
}`;

/**
 * Where a pass reads its digits: `first` maps raw f32 bits (positions are the
 * indices), `key` reads mapped keys and positions, `row` takes the digit from
 * the row number of the position (keys are no longer needed).
 */
type PassMode = "first" | "key" | "row";

const PASS_PARAMS = {
  n: "u32",
  chunk: "u32",
  chunks: "u32",
  shift: "u32",
  desc: "u32",
  row_len: "u32",
} as const;

interface PassParams {
  n: number;
  chunk: number;
  chunks: number;
  shift: number;
  desc: number;
  row_len: number;
}

/** WGSL computing `d` (and `k`, `ps` where the pass needs them) for element `t`. */
function loadWgsl(mode: PassMode, needPos: boolean): string {
  const mask = `${BINS - 1}u`;
  if (mode === "row") {
    return `let ps = src[t];
    let d = ((ps / p.row_len) >> p.shift) & ${mask};`;
  }
  const key = mode === "first" ? "mapped_key(src[t])" : "src[t]";
  const pos = !needPos ? "" : mode === "first" ? "let ps = t;" : "let ps = pos[t];";
  return `let k = ${key};
    ${pos}
    let d = (k >> p.shift) & ${mask};`;
}

const cached = kernelCache();

function histogramKernel(mode: PassMode, wg: number): Kernel {
  return cached(`histogram|${mode}|${wg}`, () => ({
    label: `sort.histogram_${mode}`,
    inputs: { src: "u32" },
    outputs: { counts: "u32" },
    params: PASS_PARAMS,
    workgroupSize: wg,
    code: `${KEY_WGSL}
${entryPoint(wg)}
  if (i >= p.chunks) { return; }
  var h: array<u32, ${BINS}>;
  let start = i * p.chunk;
  let stop = min(p.n, start + p.chunk);
  for (var t = start; t < stop; t++) {
    ${loadWgsl(mode, false)}
    h[d] = h[d] + 1u;
  }
  for (var b = 0u; b < ${BINS}u; b++) { counts[b * p.chunks + i] = h[b]; }
}`,
    cpu(ins, outs, params) {
      const p = params as unknown as PassParams;
      const src = ins.src as Uint32Array, counts = outs.counts;
      const h = new Uint32Array(BINS);
      const desc = p.desc !== 0, shift = p.shift, rowLen = p.row_len;
      for (let c = 0; c < p.chunks; c++) {
        h.fill(0);
        const stop = Math.min(p.n, (c + 1) * p.chunk);
        histogramCpu(mode, src, c * p.chunk, stop, shift, desc, rowLen, h);
        for (let b = 0; b < BINS; b++) counts[b * p.chunks + c] = h[b];
      }
    },
  }));
}

/**
 * The stable scatter of one pass. `last` writes the sorted values (read from
 * `x`) and positions in the row; otherwise mapped keys (if `writeKeys`) and
 * positions for the next pass.
 */
function scatterKernel(
  mode: PassMode,
  last: boolean,
  writeKeys: boolean,
  valueType: DType,
  wg: number,
): Kernel {
  return cached(`scatter|${mode}|${last}|${writeKeys}|${valueType}|${wg}`, () => {
    const inputs: Record<string, DType> = { src: "u32" };
    if (mode === "key") inputs.pos = "u32";
    inputs.offsets = "u32";
    if (last) inputs.x = valueType;
    const outputs: Record<string, DType> = last
      ? { values: valueType, perm: "u32" }
      : writeKeys
      ? { keys_out: "u32", pos_out: "u32" }
      : { pos_out: "u32" };
    const store = last
      ? `values[at] = x[ps];
    perm[at] = ps % p.row_len;`
      : `${writeKeys ? "keys_out[at] = k;" : ""}
    pos_out[at] = ps;`;
    return {
      label: `sort.scatter_${mode}${last ? "_last" : ""}`,
      inputs,
      outputs,
      params: PASS_PARAMS,
      workgroupSize: wg,
      code: `${KEY_WGSL}
${entryPoint(wg)}
  if (i >= p.chunks) { return; }
  var next: array<u32, ${BINS}>;
  for (var b = 0u; b < ${BINS}u; b++) { next[b] = offsets[b * p.chunks + i]; }
  let start = i * p.chunk;
  let stop = min(p.n, start + p.chunk);
  for (var t = start; t < stop; t++) {
    ${loadWgsl(mode, true)}
    let at = next[d];
    next[d] = at + 1u;
    ${store}
  }
}`,
      cpu(ins, outs, params) {
        const p = params as unknown as PassParams;
        const next = new Uint32Array(BINS);
        const src = ins.src as Uint32Array, offsets = ins.offsets as Uint32Array;
        for (let c = 0; c < p.chunks; c++) {
          for (let b = 0; b < BINS; b++) next[b] = offsets[b * p.chunks + c];
          const start = c * p.chunk, stop = Math.min(p.n, start + p.chunk);
          if (last) {
            scatterLastCpu(
              mode,
              p,
              src,
              ins.pos as Uint32Array,
              ins.x,
              next,
              start,
              stop,
              outs.values,
              outs.perm as Uint32Array,
            );
          } else if (mode === "row") {
            scatterRowCpu(p, src, next, start, stop, outs.pos_out as Uint32Array);
          } else {
            const pos = mode === "first" ? null : ins.pos as Uint32Array;
            const keysOut = writeKeys ? outs.keys_out as Uint32Array : null;
            scatterKeyCpu(p, src, pos, next, start, stop, keysOut, outs.pos_out as Uint32Array);
          }
        }
      },
    };
  });
}

// The CPU twins' inner loops, one monomorphic function per case.

function histogramCpu(
  mode: PassMode,
  src: Uint32Array,
  start: number,
  stop: number,
  shift: number,
  desc: boolean,
  rowLen: number,
  h: Uint32Array,
): void {
  if (mode === "row") {
    for (let t = start; t < stop; t++) h[((src[t] / rowLen) >>> shift) & (BINS - 1)]++;
  } else if (mode === "first") {
    for (let t = start; t < stop; t++) h[(mappedKeyCpu(src[t], desc) >>> shift) & (BINS - 1)]++;
  } else {
    for (let t = start; t < stop; t++) h[(src[t] >>> shift) & (BINS - 1)]++;
  }
}

function scatterKeyCpu(
  p: PassParams,
  src: Uint32Array,
  pos: Uint32Array | null,
  next: Uint32Array,
  start: number,
  stop: number,
  keysOut: Uint32Array | null,
  posOut: Uint32Array,
): void {
  const shift = p.shift, desc = p.desc !== 0;
  for (let t = start; t < stop; t++) {
    const k = pos ? src[t] : mappedKeyCpu(src[t], desc);
    const at = next[(k >>> shift) & (BINS - 1)]++;
    if (keysOut) keysOut[at] = k;
    posOut[at] = pos ? pos[t] : t;
  }
}

function scatterRowCpu(
  p: PassParams,
  src: Uint32Array,
  next: Uint32Array,
  start: number,
  stop: number,
  posOut: Uint32Array,
): void {
  const shift = p.shift, rowLen = p.row_len;
  for (let t = start; t < stop; t++) {
    const ps = src[t];
    posOut[next[((ps / rowLen) >>> shift) & (BINS - 1)]++] = ps;
  }
}

function scatterLastCpu(
  mode: PassMode,
  p: PassParams,
  src: Uint32Array,
  pos: Uint32Array,
  x: TypedArray,
  next: Uint32Array,
  start: number,
  stop: number,
  values: TypedArray,
  perm: Uint32Array,
): void {
  const shift = p.shift, rowLen = p.row_len;
  for (let t = start; t < stop; t++) {
    const ps = mode === "row" ? src[t] : pos[t];
    const d = mode === "row"
      ? ((ps / rowLen) >>> shift) & (BINS - 1)
      : (src[t] >>> shift) & (BINS - 1);
    const at = next[d]++;
    values[at] = x[ps];
    perm[at] = rowLen === p.n ? ps : ps % rowLen;
  }
}

function gatherRowsKernel(dtype: DType): Kernel {
  return cached(`gather_rows|${dtype}`, () => ({
    label: "sort.gather_rows",
    inputs: { src: dtype, perm: "u32" },
    outputs: { out: dtype },
    params: { total: "u32", k: "u32", n: "u32" },
    workgroupSize: 64,
    code: `${entryPoint(64)}
  if (i >= p.total) { return; }
  out[i] = src[(i / p.k) * p.n + perm[i]];
}`,
    cpu(ins, outs, p) {
      const { total, k, n } = p as Record<string, number>;
      const { src, perm } = ins, out = outs.out;
      for (let i = 0; i < total; i++) out[i] = src[Math.floor(i / k) * n + perm[i]];
    },
  }));
}

/**
 * Places `src` (`[rows, k]`) at columns `perm` (`[rows, k]` `u32`, distinct
 * within a row) of a zero `[rows, n]` tensor. No gradient is recorded.
 */
export function scatterRows(src: Tensor, perm: Tensor, n: number): Tensor {
  const rows = src.shape[0], k = src.shape[1];
  const backend = backendOf("scatterRows", [src, perm]);
  // A full permutation writes every element; otherwise zeros go first.
  const out = k < n
    ? zeros([rows, n], { dtype: src.dtype, backend })
    : empty([rows, n], src.dtype, backend);
  if (out.size === 0) return out;
  const total = rows * k;
  launch(placeKernel(src.dtype), [src, perm], [out], { total, k, n }, Math.ceil(total / 64));
  return out;
}

function placeKernel(dtype: DType): Kernel {
  return cached(`place|${dtype}`, () => ({
    label: "sort.place_rows",
    inputs: { src: dtype, perm: "u32" },
    outputs: { out: dtype },
    params: { total: "u32", k: "u32", n: "u32" },
    workgroupSize: 64,
    code: `${entryPoint(64)}
  if (i >= p.total) { return; }
  out[(i / p.k) * p.n + perm[i]] = src[i];
}`,
    cpu(ins, outs, p) {
      const { total, k, n } = p as Record<string, number>;
      const { src, perm } = ins, out = outs.out;
      for (let i = 0; i < total; i++) out[Math.floor(i / k) * n + perm[i]] = src[i];
    },
  }));
}

/** Sorts each row of `x` viewed as `[rows, n]`: sorted values and positions in the row. */
function sortRowsRaw(x: Tensor, rows: number, n: number, descending: boolean): [Tensor, Tensor] {
  const backend = backendOf("sort", [x]);
  const total = rows * n;
  const values = empty([total], x.dtype, backend);
  const perm = empty([total], "u32", backend);
  if (total === 0) return [values, perm];
  const source = x.dtype === "f64" ? cast(x, "f32") : x;
  const bits = new Tensor(source.storage, [total], "u32", backend);
  const keyPasses = 32 / BITS;
  const rowPasses = rows > 1 ? Math.ceil(Math.ceil(Math.log2(rows)) / BITS) : 0;
  const passes = keyPasses + rowPasses;
  const { chunk, workgroupSize: wg } = sortChunk(backend);
  const chunks = Math.ceil(total / chunk);
  const counts = empty([BINS * chunks], "u32", backend);
  const groups = Math.ceil(chunks / wg);
  let keys: Tensor | null = bits, pos: Tensor | null = null;
  for (let pass = 0; pass < passes; pass++) {
    const mode: PassMode = pass === 0 ? "first" : pass < keyPasses ? "key" : "row";
    const params = {
      n: total,
      chunk,
      chunks,
      shift: (pass < keyPasses ? pass : pass - keyPasses) * BITS,
      desc: descending ? 1 : 0,
      row_len: n,
    };
    const src = mode === "row" ? pos! : keys!;
    launch(histogramKernel(mode, wg), [src], [counts], params, groups);
    const offsets = scanLines(counts, 1, counts.size, 1, false, false);
    const ins = mode === "key" ? [src, pos!, offsets] : [src, offsets];
    if (pass === passes - 1) {
      launch(
        scatterKernel(mode, true, false, x.dtype, wg),
        [...ins, x],
        [values, perm],
        params,
        groups,
      );
    } else {
      const writeKeys = pass + 1 < keyPasses;
      const keysOut = writeKeys ? empty([total], "u32", backend) : null;
      const posOut = empty([total], "u32", backend);
      const outs = keysOut ? [keysOut, posOut] : [posOut];
      launch(scatterKernel(mode, false, writeKeys, "u32", wg), ins, outs, params, groups);
      if (keys !== bits) keys?.dispose();
      pos?.dispose();
      keys = keysOut;
      pos = posOut;
    }
    offsets.dispose();
  }
  if (keys !== bits) keys?.dispose();
  pos?.dispose();
  counts.dispose();
  bits.dispose();
  if (source !== x) source.dispose();
  return [values, perm];
}

/** A view of `t` with `shape`; `t` itself is released. */
function reshaped(t: Tensor, shape: readonly number[]): Tensor {
  const out = viewOf(t, shape);
  t.dispose();
  return out;
}

/** Moves `axis` last and views the result as `[rows, n]` (no gradient). */
function rowsOf(x: Tensor, axis: number): { rows2d: Tensor; moved: number[] | null } {
  const a = normalizeAxis("sort", axis, Math.max(x.rank, 1));
  if (x.rank === 0) return { rows2d: viewOf(x, [1, 1]), moved: null };
  const n = x.shape[a];
  if (a === x.rank - 1) return { rows2d: viewOf(x, [rowsCount(x.shape), n]), moved: null };
  const order = x.shape.map((_, k) => k).filter((k) => k !== a);
  order.push(a);
  const moved = noGrad(() => permute(x, order));
  const rows2d = viewOf(moved, [sizeOf(moved.shape.slice(0, -1)), n]);
  moved.dispose();
  return { rows2d, moved: order };
}

function rowsCount(shape: readonly number[]): number {
  return sizeOf(shape.slice(0, -1));
}

/**
 * Stable sort of `x` along its last axis (each row of a `[rows, n]` tensor on
 * its own). NaNs come last in both directions; equal keys keep their order.
 * The gradient of `values` flows back to `x` through the permutation.
 *
 * @example
 * ```ts
 * import { sort } from "./sort.ts";
 * import { tensor } from "../tensor.ts";
 * const { values, indices } = sort(tensor([3, NaN, 1, 2, 1]), { descending: true });
 * console.log(await values.data()); // Float32Array [3, 2, 1, 1, NaN]
 * console.log(await indices.data()); // Uint32Array [0, 3, 2, 4, 1]
 * ```
 *
 * @param x `f32` keys (`f64` on the CPU backend), sorted along the last axis.
 * @param options `descending`, and a `payload` to permute instead of indices.
 * @returns `values` (x's shape and type) and `indices` (`u32`, or the payload's type).
 */
export function sort(x: Tensor, options: SortOptions = {}): SortResult {
  expectDtype("sort", x, ["f32", "f64"]);
  const payload = options.payload;
  if (payload) {
    expectDtype("sort", payload, ["u32", "i32"]);
    if (payload.shape.join() !== x.shape.join()) {
      throw new TypeError(
        `sort: payload shape [${payload.shape.join(", ")}] differs from keys [${
          x.shape.join(", ")
        }]`,
      );
    }
    backendOf("sort", [x, payload]);
  }
  const n = x.rank === 0 ? 1 : x.shape[x.rank - 1];
  const rows = x.rank === 0 ? 1 : rowsCount(x.shape);
  const [flatValues, flatPerm] = sortRowsRaw(x, rows, n, options.descending ?? false);
  const values = viewOf(flatValues, x.shape);
  flatValues.dispose();
  let indices: Tensor;
  if (payload && x.size > 0) {
    const out = empty(x.shape, payload.dtype, x.backend);
    launch(
      gatherRowsKernel(payload.dtype),
      [payload, flatPerm],
      [out],
      { total: x.size, k: n, n },
      Math.ceil(x.size / 64),
    );
    indices = out;
  } else indices = viewOf(flatPerm, x.shape);
  const perm2d = reshaped(flatPerm, [rows, n]);
  if (needsGrad([x])) {
    // The permutation outlives enclosing `tidy` scopes; the backward releases it.
    keep(perm2d);
    record("sort", [x], [values], ([g]) => {
      const g2d = viewOf(g!, [rows, n]);
      const out = scatterRows(g2d, perm2d, n);
      g2d.dispose();
      perm2d.dispose();
      return [reshaped(out, x.shape)];
    });
  } else perm2d.dispose();
  return { values, indices };
}

/**
 * Indices (`u32`) that sort `x` stably along its last axis; see {@linkcode sort}.
 *
 * @example
 * ```ts
 * import { argsort } from "./sort.ts";
 * import { tensor } from "../tensor.ts";
 * console.log(await argsort(tensor([0.5, -1, 2])).data()); // Uint32Array [1, 0, 2]
 * ```
 */
export function argsort(x: Tensor, options: { descending?: boolean } = {}): Tensor {
  const { values, indices } = noGrad(() => sort(x, options));
  values.dispose();
  return indices;
}

/** Options of {@linkcode topk}. */
export interface TopkOptions {
  /** The axis to select along; default the last. */
  axis?: number;
  /** Largest values first (default); `false` gives the smallest, ascending. */
  largest?: boolean;
}

/**
 * The `k` largest (or smallest) elements along `axis`, sorted, with their
 * indices (`u32`); ties go to the lower index. NaNs rank below every number
 * in both directions. The gradient flows to the selected elements.
 *
 * @example
 * ```ts
 * import { topk } from "./sort.ts";
 * import { tensor } from "../tensor.ts";
 * const { values, indices } = topk(tensor([[1, 5, 3], [4, 4, 0]]), 2);
 * console.log(await values.data()); // Float32Array [5, 3, 4, 4]
 * console.log(await indices.data()); // Uint32Array [1, 2, 0, 1]
 * ```
 *
 * @param x `f32` tensor.
 * @param k How many to keep, `0 <= k <= x.shape[axis]`.
 * @param options `axis` and `largest`.
 */
export function topk(x: Tensor, k: number, options: TopkOptions = {}): SortResult {
  expectDtype("topk", x, ["f32", "f64"]);
  const rank = Math.max(x.rank, 1);
  const a = normalizeAxis("topk", options.axis ?? -1, rank);
  const shape = x.rank === 0 ? [1] : x.shape;
  const n = shape[a];
  if (!Number.isInteger(k) || k < 0 || k > n) {
    throw new RangeError(`topk: k ${k} is out of range for axis ${a} of size ${n}`);
  }
  const source = x.rank === 0 ? viewOf(x, [1]) : x;
  const { rows2d, moved } = rowsOf(source, a);
  if (source !== x) source.dispose();
  const rows = rows2d.shape[0];
  const [flatValues, flatPerm] = sortRowsRaw(rows2d, rows, n, options.largest ?? true);
  rows2d.dispose();
  const backend = x.backend;
  const topValues = empty([rows, k], x.dtype, backend);
  const topPerm = empty([rows, k], "u32", backend);
  if (rows * k > 0) {
    const params = { total: rows * k, k, n };
    const groups = Math.ceil(rows * k / 64);
    launch(takeColumnsKernel(x.dtype), [flatValues], [topValues], params, groups);
    launch(takeColumnsKernel("u32"), [flatPerm], [topPerm], params, groups);
  }
  flatValues.dispose();
  flatPerm.dispose();
  const movedShape = moved ? moved.map((d) => shape[d]) : [...shape];
  movedShape[movedShape.length - 1] = k;
  const back = moved ? moved.map((_, j) => moved.indexOf(j)) : null;
  const finish = (t: Tensor): Tensor => {
    const shaped = viewOf(t, movedShape);
    t.dispose();
    if (!back) return shaped;
    const out = noGrad(() => permute(shaped, back));
    shaped.dispose();
    return out;
  };
  const values = finish(topValues);
  const indices = finish(viewOf(topPerm, topPerm.shape));
  if (needsGrad([x])) {
    keep(topPerm);
    record("topk", [x], [values], ([g]) => {
      const g2d = reshaped(back ? permute(g!, moved!) : viewOf(g!, g!.shape), [rows, k]);
      // (reshaped releases the permuted copy; g itself belongs to the caller)
      const full = scatterRows(g2d, topPerm, n);
      g2d.dispose();
      topPerm.dispose();
      if (!back) return [reshaped(full, x.shape)];
      const fullMoved = reshaped(full, moved!.map((d) => shape[d]));
      const out = permute(fullMoved, back);
      fullMoved.dispose();
      return [reshaped(out, x.shape)];
    });
  } else topPerm.dispose();
  return { values, indices };
}

function takeColumnsKernel(dtype: DType): Kernel {
  return cached(`take|${dtype}`, () => ({
    label: "sort.take_columns",
    inputs: { src: dtype },
    outputs: { out: dtype },
    params: { total: "u32", k: "u32", n: "u32" },
    workgroupSize: 64,
    code: `${entryPoint(64)}
  if (i >= p.total) { return; }
  out[i] = src[(i / p.k) * p.n + i % p.k];
}`,
    cpu(ins, outs, p) {
      const { total, k, n } = p as Record<string, number>;
      const src = ins.src, out = outs.out;
      for (let i = 0; i < total; i++) out[i] = src[Math.floor(i / k) * n + i % k];
    },
  }));
}
