/**
 * The data-movement kernels on the native backend: `index.gather`, `index.select`,
 * `index.scatter_add`, `concat.window` and `concat.place`. Coordinates advance as odometers (one
 * carry per row, not a division per element) and contiguous runs are copied whole.
 *
 * `index.scatter_add` scatters instead of gathering: its twin visits every index entry for every
 * output element (`target.size * index.shape[axis]`); this visits each entry once and adds its
 * source into the output element it names. Each output element still receives its sources in
 * increasing index order, with the same rounding per addition (a store into the output's typed
 * array rounds as the twin's `fround`, `| 0` and `>>> 0` do), so the results are identical.
 * Entries outside the axis are dropped, as on the GPU.
 *
 * @module
 */

import type { TypedArray } from "../dtype.ts";
import type { CpuTwin } from "../kernel.ts";

/** Runs shorter than this are copied element by element (a `subarray` costs an allocation). */
const COPY_RUN = 64;

/** Copies `x[from, from + len)` to `out[to, to + len)`. */
function copyRun(x: TypedArray, from: number, out: TypedArray, to: number, len: number): void {
  if (len >= COPY_RUN) out.set(x.subarray(from, from + len), to);
  else for (let k = 0; k < len; k++) out[to + k] = x[from + k];
}

/**
 * Flat offsets of every coordinate of the box `extents` (row-major), one list per stride set:
 * `result[s][j] = sum_d coord_j[d] * strides[s][d]`. Built one axis at a time, each a literal loop.
 */
function boxOffsets(
  extents: readonly number[],
  strides: readonly (readonly number[])[],
): Int32Array[] {
  return strides.map((st) => {
    let list = new Int32Array(1);
    extents.forEach((e, d) => {
      const next = new Int32Array(list.length * e), s = st[d];
      for (let j = 0, k = 0; j < list.length; j++) {
        for (let c = 0, at = list[j]; c < e; c++, at += s) next[k++] = at;
      }
      list = next;
    });
    return list;
  });
}

/** Row-major strides of `shape`. */
function stridesOf(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  for (let d = shape.length - 1, s = 1; d >= 0; d--) {
    st[d] = s;
    s *= shape[d];
  }
  return st;
}

/** `index.gather`: `out[c] = x[c with c[axis] = index[c]]`, 0 for an index outside the axis. */
const gather: CpuTwin = (ins, outs, params) => {
  const { n, rank, axis, len } = params as Record<string, number>;
  const shape = (params.shape as number[]).slice(0, rank);
  const xst = (params.xst as number[]).slice(0, rank);
  const { x, index } = ins, out = outs.out;
  const inner = rank > 0 ? shape[rank - 1] : 1;
  if (n === 0 || inner === 0) return;
  const step = rank > 0 && rank - 1 !== axis ? xst[rank - 1] : 0;
  const axisStride = rank > 0 ? xst[axis] : 0;
  const [rowBase] = boxOffsets(
    shape.slice(0, -1),
    [xst.slice(0, -1).map((s, d) => (d === axis ? 0 : s))],
  );
  for (let row = 0, i = 0; row < n / inner; row++) {
    const base = rowBase[row];
    for (let j = 0; j < inner; j++, i++) {
      const k = index[i];
      out[i] = k >= 0 && k < len ? x[base + j * step + k * axisStride] : 0;
    }
  }
};

/** `index.select`: output slice `kk` of each outer block is input slice `index[kk]`. */
const select: CpuTwin = (ins, outs, params) => {
  const { n, len, k, inner } = params as Record<string, number>;
  const { x, index } = ins, out = outs.out;
  if (n === 0) return;
  const outer = n / (k * inner);
  for (let o = 0, at = 0; o < outer; o++) {
    for (let kk = 0; kk < k; kk++, at += inner) {
      const j = index[kk];
      if (j >= 0 && j < len) copyRun(x, (o * len + j) * inner, out, at, inner);
      else out.fill(0, at, at + inner);
    }
  }
};

/** `index.scatter_add`: `out = (init or 0)` plus each source added at the position its index names. */
const scatterAdd: CpuTwin = (ins, outs, params) => {
  const { n, rank, axis, k0, k1, has_target: hasTarget } = params as Record<string, number>;
  const shape = (params.shape as number[]).slice(0, rank);
  const ist = params.ist as number[], sst = params.sst as number[];
  const { init, index, src } = ins, out = outs.out;
  if (hasTarget) copyRun(init, 0, out, 0, n);
  else out.fill(0, 0, n);
  if (n === 0 || k1 <= k0) return;
  const ost = stridesOf(shape);
  const extents = shape.map((d, j) => Math.min(d, (params.ishape as number[])[j]));
  const box = (from: number, to: number) =>
    boxOffsets(extents.slice(from, to), [ist, sst, ost].map((st) => st.slice(from, to)));
  const [preI, preS, preO] = box(0, axis);
  const [postI, postS, postO] = box(axis + 1, rank);
  const len = shape[axis], istA = ist[axis], sstA = sst[axis], ostA = ost[axis];
  const post = postO.length;
  // Index-add (the index broadcast over the trailing axes, both sides contiguous there):
  // one index per slice, the slice added as a run.
  const runs = postI.every((v) => v === 0) && postO.every((v, j) => v === j) &&
    postS.every((v, j) => v === j);
  for (let q = 0; q < preO.length; q++) {
    const ob = preO[q];
    for (let k = k0; k < k1; k++) {
      const ib = preI[q] + k * istA, sb = preS[q] + k * sstA;
      if (runs) {
        const t = index[ib];
        if (!(t >= 0 && t < len)) continue;
        const o = ob + t * ostA;
        for (let j = 0; j < post; j++) out[o + j] += src[sb + j];
        continue;
      }
      for (let j = 0; j < post; j++) {
        const t = index[ib + postI[j]];
        if (t >= 0 && t < len) out[ob + t * ostA + postO[j]] += src[sb + postS[j]];
      }
    }
  }
};

/** A window's axes after merging: coordinate `c[d]` reads `x[base + sum c[d] * xst[d]]`. */
interface WindowAxes {
  shape: number[];
  /** Coordinates `lo[d] <= c[d] < hi[d]` lie inside `x`. */
  lo: number[];
  hi: number[];
  xst: number[];
  base: number;
}

/**
 * The axes of a `concat.window` launch with axes of size 1 folded into `base` and each axis that
 * the window takes whole merged into the axis before it, so that rows are as long as possible
 * (slicing `[4, 768, 4]` out of `[4, 1008, 4]` walks 4 rows of 3072); `null` where an axis of size
 * 1 lies outside `x` (the whole output is the fill value).
 */
function windowAxes(p: Record<string, number | readonly number[]>): WindowAxes | null {
  const rank = p.rank as number;
  const shape = p.shape as number[], xshape = p.xshape as number[];
  const xst = p.xst as number[], shift = p.shift as number[];
  const axes: WindowAxes = { shape: [], lo: [], hi: [], xst: [], base: 0 };
  for (let d = 0; d < rank; d++) {
    const size = shape[d], s = shift[d];
    axes.base += s * xst[d];
    if (size === 1) {
      if (s < 0 || s >= xshape[d]) return null;
      continue;
    }
    const q = axes.shape.length - 1;
    if (q >= 0 && s === 0 && size === xshape[d] && axes.xst[q] === xst[d] * size) {
      axes.shape[q] *= size;
      axes.lo[q] *= size;
      axes.hi[q] *= size;
      axes.xst[q] = xst[d];
      continue;
    }
    const lo = Math.min(size, Math.max(0, -s));
    axes.shape.push(size);
    axes.lo.push(lo);
    axes.hi.push(Math.max(lo, Math.min(size, xshape[d] - s)));
    axes.xst.push(xst[d]);
  }
  if (axes.shape.length === 0) {
    return { shape: [1], lo: [0], hi: [1], xst: [0], base: axes.base };
  }
  return axes;
}

/** `concat.window`: `out[c] = x[c + shift]` where that lies inside `x`, `value` elsewhere. */
const window: CpuTwin = (ins, outs, params) => {
  const n = params.n as number, value = params.value as number;
  const x = ins.x, out = outs.out;
  const axes = n === 0 ? null : windowAxes(params);
  if (!axes) {
    out.fill(value, 0, n);
    return;
  }
  const { shape, lo, hi, xst } = axes;
  const last = shape.length - 1, width = shape[last], step = xst[last];
  const from = lo[last], to = hi[last];
  const coord = new Array<number>(last).fill(0);
  const inside = coord.map((_, d) => lo[d] === 0 && hi[d] > 0);
  let outside = inside.filter((v) => !v).length, base = axes.base;
  for (let o = 0; o < n; o += width) {
    if (outside > 0) out.fill(value, o, o + width);
    else {
      out.fill(value, o, o + from);
      if (step === 1) copyRun(x, base + from, out, o + from, to - from);
      else for (let j = from; j < to; j++) out[o + j] = x[base + j * step];
      out.fill(value, o + to, o + width);
    }
    for (let d = last - 1; d >= 0; d--) {
      let c = coord[d] + 1;
      base += xst[d];
      if (c === shape[d]) {
        c = 0;
        base -= shape[d] * xst[d];
      }
      coord[d] = c;
      const now = c >= lo[d] && c < hi[d];
      if (now !== inside[d]) {
        outside += now ? -1 : 1;
        inside[d] = now;
      }
      if (c !== 0) break;
    }
  }
};

/** `concat.place`: `x`'s blocks written into their slot of each outer block of `out`. */
const place: CpuTwin = (ins, outs, params) => {
  const { n, len, inner, out_len: outLen, offset } = params as Record<string, number>;
  const x = ins.x, out = outs.out;
  const block = len * inner;
  if (block === 0) return;
  for (let o = 0; o < n / block; o++) {
    copyRun(x, o * block, out, (o * outLen + offset) * inner, block);
  }
};

/** Native replacements of the `index.*` and `concat.*` twins, by kernel label. */
export const INDEX_KERNELS: Readonly<Record<string, CpuTwin>> = {
  "index.gather": gather,
  "index.select": select,
  "index.scatter_add": scatterAdd,
  "concat.window": window,
  "concat.place": place,
};
