/**
 * Reductions over one axis, several axes or the whole tensor: sum, mean, max,
 * min, argmax, with their gradients.
 *
 * One kernel family, `reduce.*`, views its input as `[outer, r, inner]` and
 * reduces the middle axis. An invocation reduces at most {@linkcode REDUCE_CHUNK}
 * elements (llvmpipe silently stops loops past `LOOP_LIMIT`, tensor/kernel.ts), so long
 * axes take several passes over shrinking partial results. Where the backend's profile says
 * `reductions: "workgroup"` (hardware adapters), sum, mean, max and min reduce all their axes in
 * one launch instead (`reduce_tree.ts`); argmax keeps the chunked kernels.
 *
 * @module
 */

import { record } from "../autograd.ts";
import { type DType, isFloat } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { empty, sizeOf, type Tensor, viewOf } from "../tensor.ts";
import { broadcastTo, equal, mul, where } from "./elementwise.ts";
import { backendOf, launch, normalizeAxis } from "./launch.ts";
import { type ReducePlan, reducePlan, treeReduce } from "./reduce_tree.ts";
import { reshape } from "./shape.ts";

/** Elements one invocation reduces per pass. */
export const REDUCE_CHUNK = 1024;
const WORKGROUP = 64;

type ReduceOp = "sum" | "max" | "min" | "argmax";

const INIT: Record<ReduceOp, [string, number]> = {
  sum: ["T(0)", 0],
  max: ["-3.4028234663852886e38", -Infinity],
  min: ["3.4028234663852886e38", Infinity],
  argmax: ["-3.4028234663852886e38", -Infinity],
};

const cached = kernelCache();

function reduceKernel(op: ReduceOp, dtype: DType, withIndexIn: boolean): Kernel {
  const key = `${op}|${dtype}|${withIndexIn}`;
  return cached(key, () => {
    const valueType = dtype === "f64" ? "f32" : dtype;
    const inputs: Record<string, DType> = { x: dtype };
    const outputs: Record<string, DType> = { out: dtype };
    if (withIndexIn) inputs.idx_in = "i32";
    if (op === "argmax") outputs.idx = "i32";
    const init = op === "sum" || valueType === "f32"
      ? INIT[op][0]
      : (op === "min" ? "T(2147483647)" : "T(-2147483647)");
    const step = {
      sum: "acc = acc + v;",
      max: "acc = max(acc, v);",
      min: "acc = min(acc, v);",
      argmax: `if (v > acc || best < 0) { acc = v; best = ${
        withIndexIn ? "idx_in[at]" : "i32(k)"
      }; }`,
    }[op];
    const code = `alias T = ${valueType};
${entryPoint(WORKGROUP)}
  let total = p.outer * p.out_r * p.inner;
  if (i >= total) { return; }
  let n = i % p.inner;
  let c = (i / p.inner) % p.out_r;
  let o = i / (p.inner * p.out_r);
  let start = c * p.chunk;
  let stop = min(p.r, start + p.chunk);
  var acc: T = ${init};
  var best: i32 = -1;
  for (var k = start; k < stop; k++) {
    let at = (o * p.r + k) * p.inner + n;
    let v = x[at];
    ${step}
  }
  out[i] = acc;
  ${op === "argmax" ? "idx[i] = best;" : ""}
}`;
    return {
      label: `reduce.${op}`,
      inputs,
      outputs,
      params: { outer: "u32", r: "u32", inner: "u32", chunk: "u32", out_r: "u32" },
      workgroupSize: WORKGROUP,
      code,
      cpu(ins, outs, p) {
        const { outer, r, inner, chunk, out_r: outR } = p as Record<string, number>;
        const x = ins.x, idxIn = ins.idx_in, out = outs.out, idx = outs.idx;
        const isInt = valueType !== "f32";
        const initial = op === "sum" || !isInt
          ? INIT[op][1]
          : op === "min"
          ? 2147483647
          : -2147483647;
        for (let o = 0; o < outer; o++) {
          for (let c = 0; c < outR; c++) {
            for (let n = 0; n < inner; n++) {
              let acc = initial, best = -1;
              for (let k = c * chunk; k < Math.min(r, (c + 1) * chunk); k++) {
                const at = (o * r + k) * inner + n;
                const v = x[at];
                if (op === "sum") acc += v;
                else if (op === "max") acc = Math.max(acc, v);
                else if (op === "min") acc = Math.min(acc, v);
                else if (v > acc || best < 0) {
                  acc = v;
                  best = idxIn ? idxIn[at] : k;
                }
              }
              const i = (o * outR + c) * inner + n;
              out[i] = acc;
              if (idx) idx[i] = best;
            }
          }
        }
      },
    };
  });
}

/** Reduces axis `axis` of `x` (no gradient); returns values (and indices for argmax). */
function reduceAxisRaw(op: ReduceOp, x: Tensor, axis: number): [Tensor, Tensor | null] {
  const backend = backendOf(`reduce.${op}`, [x]);
  const shape = x.shape;
  const outer = sizeOf(shape.slice(0, axis));
  const inner = sizeOf(shape.slice(axis + 1));
  let r = shape[axis];
  if (r === 0) {
    if (op !== "sum") throw new RangeError(`${op}: cannot reduce an empty axis ${axis}`);
  }
  let values = x;
  let indices: Tensor | null = null;
  do {
    const outR = Math.max(1, Math.ceil(r / REDUCE_CHUNK));
    const outValues = empty([outer * outR * inner], x.dtype, backend);
    const outs = [outValues];
    let outIndices: Tensor | null = null;
    if (op === "argmax") {
      outIndices = empty([outer * outR * inner], "i32", backend);
      outs.push(outIndices);
    }
    const ins = indices ? [values, indices] : [values];
    launch(
      reduceKernel(op, x.dtype, indices !== null),
      ins,
      outs,
      { outer, r, inner, chunk: REDUCE_CHUNK, out_r: outR },
      Math.ceil((outer * outR * inner) / WORKGROUP),
    );
    if (values !== x) values.dispose();
    indices?.dispose();
    values = outValues;
    indices = outIndices;
    r = outR;
  } while (r > 1);
  const outShape = [...shape.slice(0, axis), ...shape.slice(axis + 1)];
  const shapedValues = viewOf(values, outShape);
  values.dispose();
  let shapedIndices: Tensor | null = null;
  if (indices) {
    shapedIndices = viewOf(indices, outShape);
    indices.dispose();
  }
  return [shapedValues, shapedIndices];
}

function axesOf(op: string, x: Tensor, axis: number | readonly number[] | undefined): number[] {
  if (axis === undefined) return x.shape.map((_, d) => d).reverse();
  const list = typeof axis === "number" ? [axis] : [...axis];
  const axes = list.map((a) => normalizeAxis(op, a, x.rank));
  if (new Set(axes).size !== axes.length) throw new RangeError(`${op}: repeated axis in [${list}]`);
  return axes.sort((a, b) => b - a);
}

function keptShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.map((d, k) => (axes.includes(k) ? 1 : d));
}

/**
 * Reduces `axis` of `x` by `op` (no gradient). Where the profile says `reductions: "workgroup"`,
 * every axis goes in one pass of `reduce_tree.ts` (sums times `scale`); otherwise one chunked
 * reduction per axis, and `scale` must be 1.
 */
function reduceAxes(
  op: "sum" | "max" | "min",
  x: Tensor,
  axis: number | readonly number[] | undefined,
  keepDims: boolean,
  scale = 1,
): Tensor {
  const axes = axesOf(op, x, axis);
  const shape = keepDims ? keptShape(x.shape, axes) : x.shape.filter((_, k) => !axes.includes(k));
  const plan = treePlan(x, axes);
  if (plan) {
    const emptyAxis = axes.find((a) => x.shape[a] === 0);
    if (op !== "sum" && emptyAxis !== undefined) {
      throw new RangeError(`${op}: cannot reduce an empty axis ${emptyAxis}`);
    }
    const flat = treeReduce(op, x, plan, scale);
    const result = viewOf(flat, shape);
    flat.dispose();
    return result;
  }
  let out = viewOf(x, x.shape);
  for (const a of axes) {
    const [next] = reduceAxisRaw(op, out, a);
    out.dispose();
    out = next;
  }
  const result = viewOf(out, shape);
  out.dispose();
  return result;
}

/**
 * Sum over `axis` (a number, a list, or every axis when omitted).
 *
 * @example
 * ```ts
 * import { sum } from "./reduce.ts";
 * import { tensor } from "../tensor.ts";
 * const x = tensor([[1, 2, 3], [4, 5, 6]]);
 * console.log(await sum(x, 1).data()); // Float32Array [6, 15]
 * console.log(await sum(x).data()); // Float32Array [21]
 * ```
 */
export function sum(x: Tensor, axis?: number | readonly number[], keepDims = false): Tensor {
  const out = reduceAxes("sum", x, axis, keepDims);
  const axes = axesOf("sum", x, axis);
  record("sum", [x], [out], ([g]) => {
    const kept = viewOf(g!, keptShape(x.shape, axes));
    const grad = broadcastTo(kept, x.shape);
    kept.dispose();
    return [grad];
  });
  return out;
}

/** The single-pass plan of reducing `axes` of `x`, where its backend's profile asks for one. */
function treePlan(x: Tensor, axes: readonly number[]): ReducePlan | null {
  if (x.backend.profile.reductions !== "workgroup" || axes.length === 0) return null;
  return reducePlan(x.shape, axes);
}

/** Mean over `axis` (every axis when omitted). */
export function mean(x: Tensor, axis?: number | readonly number[], keepDims = false): Tensor {
  const axes = axesOf("mean", x, axis);
  const count = axes.reduce((n, a) => n * x.shape[a], 1);
  if (isFloat(x.dtype) && treePlan(x, axes)) {
    // One launch: the sum scaled by 1 / count.
    const out = reduceAxes("sum", x, axis, keepDims, 1 / count);
    record("mean", [x], [out], ([g]) => {
      const kept = viewOf(g!, keptShape(x.shape, axes));
      const spread = broadcastTo(kept, x.shape);
      const grad = mul(spread, 1 / count);
      kept.dispose();
      spread.dispose();
      return [grad];
    });
    return out;
  }
  const total = sum(x, axis, keepDims);
  const out = mul(total, 1 / count);
  total.dispose();
  return out;
}

function extremum(
  op: "max" | "min",
  x: Tensor,
  axis?: number | readonly number[],
  keepDims = false,
) {
  const out = reduceAxes(op, x, axis, keepDims);
  const axes = axesOf(op, x, axis);
  record(op, [x], [out], ([g]) => {
    const shape = keptShape(x.shape, axes);
    const outKept = viewOf(out, shape), gKept = viewOf(g!, shape);
    const hit = equal(x, outKept);
    const grad = where(hit, gKept, 0);
    for (const t of [outKept, gKept, hit]) t.dispose();
    return [grad];
  });
  return out;
}

/** Maximum over `axis` (every axis when omitted); ties all receive the gradient. */
export function max(x: Tensor, axis?: number | readonly number[], keepDims = false): Tensor {
  return extremum("max", x, axis, keepDims);
}

/** Minimum over `axis` (every axis when omitted); ties all receive the gradient. */
export function min(x: Tensor, axis?: number | readonly number[], keepDims = false): Tensor {
  return extremum("min", x, axis, keepDims);
}

/** Index (`i32`) of the first maximum along `axis` (of the flattened tensor when omitted). */
export function argmax(x: Tensor, axis?: number, keepDims = false): Tensor {
  const source = axis === undefined ? reshape(x, [x.size]) : x;
  const a = axis === undefined ? 0 : normalizeAxis("argmax", axis, x.rank);
  const [values, indices] = reduceAxisRaw("argmax", source, a);
  values.dispose();
  if (source !== x) source.dispose();
  if (!keepDims || axis === undefined) return indices!;
  const out = viewOf(indices!, keptShape(x.shape, [a]));
  indices!.dispose();
  return out;
}

/** `g` summed over the axes along which `shape` was broadcast to `g`'s shape. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.join() === shape.join()) return viewOf(g, shape);
  const offset = g.rank - shape.length;
  const axes: number[] = [];
  for (let d = 0; d < g.rank; d++) {
    if (d < offset || (shape[d - offset] === 1 && g.shape[d] !== 1)) axes.push(d);
  }
  const reduced = axes.length > 0 ? sum(g, axes, true) : viewOf(g, g.shape);
  const out = reshape(reduced, shape);
  reduced.dispose();
  return out;
}
