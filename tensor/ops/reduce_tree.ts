/**
 * Sum, max and min over any set of axes in one launch, for adapters whose profile says
 * `reductions: "workgroup"` (hardware GPUs): the `reduce.tree_*` and `reduce.rows_*` kernels.
 *
 * A reduction is planned as rows ({@linkcode reducePlan}): neighbouring axes that are both kept
 * or both reduced merge, so that each output element is one row of `n` elements, addressed by at
 * most 8 kept and 8 reduced dimensions with their strides (uniform `u32x8` parameters). Long rows
 * go to `reduce.tree_*`, one workgroup per row walking it with a strided loop and combining
 * through a tree in workgroup memory (`workgroup_tree.ts`); short rows, and rows of reductions with
 * many outputs, go to `reduce.rows_*`, one invocation per row. A row longer than one workgroup's
 * loop budget (`256 * loopBudget` elements) is cut into that many chunks, one workgroup each, and
 * the chunks' results reduced by a second pass: the fewest passes. Results equal the chunked
 * kernels' of `reduce.ts` up to rounding (the CPU twins add in order, in float64).
 *
 * @module
 */

import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { empty, sizeOf, type Tensor } from "../tensor.ts";
import { backendOf, launch, stridesOf } from "./launch.ts";
import { REDUCE_WORKGROUP, treeReduceWgsl } from "./workgroup_tree.ts";

/** The reductions of this module. */
export type TreeReduceOp = "sum" | "max" | "min";

/** Most merged kept (or reduced) dimensions a plan may have: one `u32x8` parameter each. */
const MAX_DIMS = 8;
/** From this many outputs on, short rows are reduced one invocation per output row. */
const MANY_OUTPUTS = 16384;
/** Invocations per workgroup of `reduce.rows_*`. */
const ROWS_WORKGROUP = 64;

/** A reduction as rows: kept dimensions address the rows, reduced ones the elements of a row. */
export interface ReducePlan {
  /** Sizes of the merged kept dimensions, outermost first (empty for a full reduction). */
  readonly keptShape: readonly number[];
  /** Their strides in the input, in elements. */
  readonly keptStrides: readonly number[];
  /** Sizes of the merged reduced dimensions, outermost first. */
  readonly rowShape: readonly number[];
  /** Their strides in the input, in elements. */
  readonly rowStrides: readonly number[];
  /** Rows, i.e. output elements. */
  readonly outputs: number;
  /** Elements per row. */
  readonly n: number;
}

/**
 * Plans the reduction of the axes `axes` of a contiguous tensor of `shape` as rows (axes of size 1
 * dropped, neighbours of the same kind merged), or null where the merged dimensions exceed 8 of
 * a kind.
 *
 * @example Reduce the batch and the pixels of `[N, C, H, W]` (a bias gradient)
 * ```ts
 * import { reducePlan } from "./reduce_tree.ts";
 * const plan = reducePlan([4, 8, 5, 6], [0, 2, 3])!;
 * console.log(plan.keptShape, plan.keptStrides); // [8] [30]
 * console.log(plan.rowShape, plan.rowStrides); // [4, 30] [240, 1]
 * ```
 */
export function reducePlan(shape: readonly number[], axes: readonly number[]): ReducePlan | null {
  const strides = stridesOf(shape);
  const kept: [number, number][] = [], row: [number, number][] = [];
  let last: "kept" | "row" | null = null;
  shape.forEach((size, d) => {
    if (size === 1) return;
    const kind = axes.includes(d) ? "row" : "kept";
    const dims = kind === "row" ? row : kept;
    if (kind === last) dims[dims.length - 1] = [dims[dims.length - 1][0] * size, strides[d]];
    else dims.push([size, strides[d]]);
    last = kind;
  });
  if (kept.length > MAX_DIMS || row.length > MAX_DIMS) return null;
  return {
    keptShape: kept.map(([s]) => s),
    keptStrides: kept.map(([, s]) => s),
    rowShape: row.map(([s]) => s),
    rowStrides: row.map(([, s]) => s),
    outputs: sizeOf(kept.map(([s]) => s)),
    n: sizeOf(row.map(([s]) => s)),
  };
}

const PARAMS = {
  outputs: "u32",
  n: "u32",
  chunk: "u32",
  chunks: "u32",
  kdims: "u32",
  rdims: "u32",
  scale: "f32",
  kshape: "u32x8",
  kstride: "u32x8",
  rshape: "u32x8",
  rstride: "u32x8",
} as const;

/** WGSL turning a row index and an element index into input offsets through the plan's strides. */
const OFFSETS_WGSL = `fn strided_at(index: u32, dims: u32, shape: array<vec4<u32>, 2>,
                  stride: array<vec4<u32>, 2>) -> u32 {
  var rest = index;
  var at = 0u;
  for (var d = dims; d > 0u; d--) {
    let size = u32x8_at(shape, d - 1u);
    at += (rest % size) * u32x8_at(stride, d - 1u);
    rest = rest / size;
  }
  return at;
}
fn row_base(o: u32) -> u32 { return strided_at(o, p.kdims, p.kshape, p.kstride); }
fn row_at(k: u32) -> u32 { return strided_at(k, p.rdims, p.rshape, p.rstride); }`;

function stridedAt(index: number, shape: readonly number[], stride: readonly number[]): number {
  let at = 0;
  for (let d = shape.length - 1; d >= 0; d--) {
    at += (index % shape[d]) * stride[d];
    index = Math.floor(index / shape[d]);
  }
  return at;
}

interface OpForms {
  /** WGSL combining `a` and `b`. */
  wgsl(a: string, b: string): string;
  /** Its CPU counterpart. */
  cpu(a: number, b: number): number;
}

const OPS: Record<TreeReduceOp, OpForms> = {
  sum: { wgsl: (a, b) => `${a} + ${b}`, cpu: (a, b) => a + b },
  max: { wgsl: (a, b) => `max(${a}, ${b})`, cpu: Math.max },
  min: { wgsl: (a, b) => `min(${a}, ${b})`, cpu: Math.min },
};

/** The identity of `op` over `valueType` (WGSL literal, CPU value), as `reduce.ts` starts it. */
function identity(op: TreeReduceOp, valueType: string): [string, number] {
  if (op === "sum") return ["T(0)", 0];
  if (valueType === "f32") {
    return op === "max"
      ? ["-3.4028234663852886e38", -Infinity]
      : ["3.4028234663852886e38", Infinity];
  }
  return op === "max" ? ["T(-2147483647)", -2147483647] : ["T(2147483647)", 2147483647];
}

/** The result line: sums scaled by `p.scale` (float types only). */
function finish(op: TreeReduceOp, valueType: string, acc: string): string {
  return op === "sum" && valueType === "f32" ? `${acc} * p.scale` : acc;
}

/**
 * The twin of both kernels: element `o * chunks + c` of `out` combines, in order, elements
 * `[c * chunk, min(n, (c + 1) * chunk))` of row `o`, times `scale` for float sums.
 */
function twin(op: TreeReduceOp, valueType: string): Kernel["cpu"] {
  const [, init] = identity(op, valueType);
  const combine = OPS[op].cpu;
  const scaled = op === "sum" && valueType === "f32";
  return (ins, outs, params) => {
    const p = params as Record<string, number | readonly number[]>;
    const [kshape, kstride, rshape, rstride] = (["kshape", "kstride", "rshape", "rstride"] as const)
      .map((name, k) =>
        (p[name] as readonly number[]).slice(0, (k < 2 ? p.kdims : p.rdims) as number)
      );
    const { outputs, n, chunk, chunks, scale } = p as Record<string, number>;
    const x = ins.x, out = outs.out;
    for (let o = 0; o < outputs; o++) {
      const base = stridedAt(o, kshape, kstride);
      for (let c = 0; c < chunks; c++) {
        let acc = init;
        for (let k = c * chunk; k < Math.min(n, (c + 1) * chunk); k++) {
          acc = combine(acc, x[base + stridedAt(k, rshape, rstride)]);
        }
        out[o * chunks + c] = scaled ? acc * scale : acc;
      }
    }
  };
}

const cached = kernelCache();

function valueTypeOf(dtype: DType): string {
  return dtype === "f64" ? "f32" : dtype;
}

/** One workgroup per (row, chunk): a strided loop over the chunk, then a tree. */
function treeKernel(op: TreeReduceOp, dtype: DType): Kernel {
  return cached(`tree|${op}|${dtype}`, () => {
    const valueType = valueTypeOf(dtype);
    const [init] = identity(op, valueType);
    return {
      label: `reduce.tree_${op}`,
      inputs: { x: dtype },
      outputs: { out: dtype },
      params: PARAMS,
      workgroupSize: REDUCE_WORKGROUP,
      code: `alias T = ${valueType};
${OFFSETS_WGSL}
${treeReduceWgsl("tree", "T", OPS[op].wgsl)}
${entryPoint(REDUCE_WORKGROUP)}
  // The workgroup's index from uniform builtins only: the tree's barriers need uniform control.
  let w = wid.y * nwg.x + wid.x;
  if (w >= p.outputs * p.chunks) { return; }
  let base = row_base(w / p.chunks);
  let start = (w % p.chunks) * p.chunk;
  let stop = min(p.n, start + p.chunk);
  var acc: T = ${init};
  // A loop of uniform bounds, so that the tree below stays in uniform control flow.
  for (var k0 = start; k0 < stop; k0 += WG) {
    let k = k0 + lid;
    if (k < stop) { acc = ${OPS[op].wgsl("acc", "x[base + row_at(k)]")}; }
  }
  let total = tree(lid, acc);
  if (lid == 0u) { out[w] = ${finish(op, valueType, "total")}; }
}`,
      cpu: twin(op, valueType),
    };
  });
}

/** One invocation per (row, chunk): a plain loop. */
function rowsKernel(op: TreeReduceOp, dtype: DType): Kernel {
  return cached(`rows|${op}|${dtype}`, () => {
    const valueType = valueTypeOf(dtype);
    const [init] = identity(op, valueType);
    return {
      label: `reduce.rows_${op}`,
      inputs: { x: dtype },
      outputs: { out: dtype },
      params: PARAMS,
      workgroupSize: ROWS_WORKGROUP,
      code: `alias T = ${valueType};
${OFFSETS_WGSL}
${entryPoint(ROWS_WORKGROUP)}
  if (i >= p.outputs * p.chunks) { return; }
  let base = row_base(i / p.chunks);
  let start = (i % p.chunks) * p.chunk;
  let stop = min(p.n, start + p.chunk);
  var acc: T = ${init};
  for (var k = start; k < stop; k++) { acc = ${OPS[op].wgsl("acc", "x[base + row_at(k)]")}; }
  out[i] = ${finish(op, valueType, "acc")};
}`,
      cpu: twin(op, valueType),
    };
  });
}

/**
 * Whether rows of `n` elements are reduced one invocation each: short rows, or many rows (enough
 * invocations to fill the device) that one invocation's `loopBudget` covers.
 */
function perInvocation(plan: ReducePlan, loopBudget: number): boolean {
  return plan.n <= REDUCE_WORKGROUP || (plan.outputs >= MANY_OUTPUTS && plan.n <= loopBudget);
}

function planParams(plan: ReducePlan, chunk: number, chunks: number, scale: number) {
  return {
    outputs: plan.outputs,
    n: plan.n,
    chunk,
    chunks,
    kdims: plan.keptShape.length,
    rdims: plan.rowShape.length,
    scale,
    kshape: plan.keptShape,
    kstride: plan.keptStrides,
    rshape: plan.rowShape,
    rstride: plan.rowStrides,
  };
}

/**
 * Reduces `x` (contiguous) by `op` as `plan` says, multiplying sums by `scale` (float types): one
 * launch where a row fits one workgroup's loop budget (`x.backend.profile.loopBudget` iterations
 * of 256 invocations), else one more pass per factor of that. Returns the `[plan.outputs]`
 * results, in the order of the kept axes.
 *
 * @example A bias gradient: sum `[2, 3, 4]` over axes 0 and 2
 * ```ts
 * import { reducePlan, treeReduce } from "./reduce_tree.ts";
 * import { tensor } from "../tensor.ts";
 * const x = tensor(Float32Array.from({ length: 24 }, (_, i) => i), [2, 3, 4]);
 * const out = treeReduce("sum", x, reducePlan(x.shape, [0, 2])!);
 * console.log(await out.data()); // Float32Array [60, 92, 124]
 * ```
 *
 * @param op `sum`, `max` or `min`.
 * @param x The input (any shape, contiguous).
 * @param plan From {@linkcode reducePlan} over `x`'s shape.
 * @param scale Factor of the final sums (`1 / n` for a mean).
 * @returns A `[plan.outputs]` tensor of `x`'s dtype.
 */
export function treeReduce(op: TreeReduceOp, x: Tensor, plan: ReducePlan, scale = 1): Tensor {
  const backend = backendOf(`reduce.tree_${op}`, [x]);
  const budget = backend.profile.loopBudget;
  let input = x, current = plan;
  for (;;) {
    const rows = perInvocation(current, budget);
    // Elements one workgroup (or invocation) reduces: all of a row where the loop budget allows.
    const reach = rows ? Math.max(current.n, 1) : REDUCE_WORKGROUP * budget;
    const chunks = Math.max(1, Math.ceil(current.n / reach));
    const chunk = chunks === 1 ? Math.max(current.n, 1) : reach;
    const out = empty([current.outputs * chunks], x.dtype, backend);
    const params = planParams(current, chunk, chunks, chunks === 1 ? scale : 1);
    if (out.size > 0) {
      if (rows) {
        launch(
          rowsKernel(op, x.dtype),
          [input],
          [out],
          params,
          Math.ceil(out.size / ROWS_WORKGROUP),
        );
      } else launch(treeKernel(op, x.dtype), [input], [out], params, out.size);
    }
    if (input !== x) input.dispose();
    if (chunks === 1) return out;
    input = out;
    current = {
      keptShape: [current.outputs],
      keptStrides: [chunks],
      rowShape: [chunks],
      rowStrides: [1],
      outputs: current.outputs,
      n: chunks,
    };
  }
}
