/**
 * Stage 4, bin: the boundaries between the sorted positives, every relevant negative's interval,
 * and each interval's count and mean logit — the buckets of negatives between consecutive
 * positives.
 *
 * Inputs: `logits`, `targets` `[M]` and the sorted positives' logits `ps`. Outputs: the
 * boundary list `e` `[lcap]` (the sorted positives for the bucketed losses; the knees `p ± δ`
 * for the others) with each positive's boundary range `ea`, `eb`; `qid` `[M]` (interval of each
 * relevant negative, `0xffffffff` for every other entry); `imean` `[lcap + 1]` (mean logit of
 * each interval, its lower edge when empty, so the means descend); `gq` (exclusive prefix of the
 * interval rows `[count, count · mean]`).
 *
 * After the stage no later pass visits the `M` entries except the final scatter, which reads
 * `qid`: the negatives are summarised by `L + 1` intervals. Sums are fixed point in `u32`
 * columns, so the result does not depend on the order the negatives are added in.
 *
 * @module
 */

import type { DType } from "../../../tensor/dtype.ts";
import {
  entryPoint,
  type Kernel,
  kernelCache,
  UNIFORM_WINDOW_FLOATS,
} from "../../../tensor/kernel.ts";
import { launch, launchWindowed } from "../../../tensor/ops/launch.ts";
import type { Tensor } from "../../../tensor/tensor.ts";
import { partitionPoint } from "../../reference/common.ts";
import { countFrom, partitionPointWgsl } from "../prefix_kernels.ts";
import { bucketsBySort } from "./bucket_sort.ts";
import {
  MAX_COLUMNS,
  NONE,
  overIntervals,
  overPositives,
  type Pipeline,
  scan,
  WG,
} from "./pipeline.ts";

/** Entries a column walks per dispatch of the partial-sum pass. */
export const SUB = 49152;
/** Unrolled binary-search steps: boundary lists up to `2^26 - 1` long. */
const SEARCH_STEPS = 26;
/** Workgroup size of the column pass (several workgroups so that llvmpipe uses every core). */
export const COLUMN_WG = 8;
/** Fixed-point scale of the interval sums. */
const FIX = 16777216;

const cached = kernelCache();

type P = Record<string, number>;

/** The intervals of the negatives. */
export interface Bins {
  /** Boundary range `[ea, eb)` of each sorted positive. */
  ea: Tensor;
  /** See `ea`. */
  eb: Tensor;
  /** Interval of each entry (`0xffffffff` where not a relevant negative). */
  qid: Tensor;
  /** Mean logit of each interval. */
  imean: Tensor;
  /** Exclusive prefix of the interval rows `[count, count · mean]`. */
  gq: Tensor;
}

/** Bins the relevant negatives between the boundaries of the sorted positives `ps`. */
export function binNegatives(
  ctx: Pipeline,
  logits: Tensor,
  targets: Tensor,
  ps: Tensor,
  config: { bucketed: boolean; bySort: boolean; posEq1: number; delta: number },
): Bins {
  const { f, m, pcap, lcap, cape, alloc, info, fmeta, grid } = ctx;
  const e = alloc(lcap, f), ea = alloc(pcap, "u32"), eb = alloc(pcap, "u32");
  overPositives(ctx, edgesKernel(f), [ps, info], [e, ea, eb], { grid, delta: config.delta });
  const mat = alloc(3 * cape, "u32");
  launch(zeroMatrixKernel(), [info], [mat], { total: 3 * cape }, Math.ceil(3 * cape / 256 / 64));
  const subs = Math.max(1, Math.ceil(Math.ceil(m / ctx.minColumns) / SUB));
  const columnGroups = Math.ceil(MAX_COLUMNS / COLUMN_WG);
  const qid = alloc(m, "u32");
  if (config.bySort) {
    bucketsBySort(logits, targets, fmeta, config.posEq1, qid);
    for (let sub = 0; sub < subs; sub++) {
      launch(partialsKernel(f, true, true), [logits, targets, e, info, fmeta, qid], [mat], {
        m,
        sub,
      }, columnGroups);
    }
  } else {
    // The boundary grid, read through a uniform window, narrows each search to one cell.
    const cells = alloc(GRID_CELLS + 1, "f32");
    launch(boundaryGridKernel(f), [e, info, fmeta], [cells], { unused: 0 }, (GRID_CELLS + 1) / 64);
    const kernel = partialsKernel(f, config.bucketed);
    const window = { storage: cells.storage, byteOffset: 0 };
    for (let sub = 0; sub < subs; sub++) {
      launchWindowed(kernel, [window], [logits, targets, e, info, fmeta], [mat, qid], {
        m,
        sub,
      }, columnGroups);
    }
  }
  const icnt = alloc(lcap + 1, f), imean = alloc(lcap + 1, f), xq = alloc(2 * (lcap + 1), f);
  overIntervals(ctx, reduceIntervalsKernel(f), [mat, e, info, fmeta], [icnt, imean, xq], { grid });
  const gq = scan(ctx, xq, 2, lcap + 1, 1, 1);
  return { ea, eb, qid, imean, gq };
}

/**
 * Boundary list `e` (descending) that the negatives are binned against, and for each positive
 * the indices `ea`, `eb` of its knees `p + δ` and `p - δ` in it. Bucketed losses and `δ = 0`:
 * `e` = the sorted positives. Otherwise the merge of `p + δ` and `p - δ` (`2P` entries).
 */
export function edgesKernel(f: DType): Kernel {
  return cached(`edges|${f}`, () => ({
    label: "rank_ops.edges",
    inputs: { ps: f, info: "u32" },
    outputs: { e: f, ea: "u32", eb: "u32" },
    params: { grid: "u32", delta: "f32" },
    workgroupSize: WG,
    // #{k: ps[k] - δ > va} and #{k: ps[k] + δ >= vb}; both are prefixes.
    code: `${partitionPointWgsl("lower_knees_above", "x: f32", "ps[mid] - p.delta > x")}
${partitionPointWgsl("upper_knees_at_or_above", "x: f32", "ps[mid] + p.delta >= x")}
${entryPoint(WG)}
  let np = info[0];
  if (i >= p.grid || info[4] == 0u) { return; }
  let two = info[1] != np;
  for (var j = i; j < np; j += p.grid) {
    if (!two) {
      e[j] = ps[j];
      ea[j] = j;
      eb[j] = j;
      continue;
    }
    let va = ps[j] + p.delta;
    let vb = ps[j] - p.delta;
    let a = j + lower_knees_above(0u, np, va);
    let b = j + upper_knees_at_or_above(0u, np, vb);
    e[a] = va;
    e[b] = vb;
    ea[j] = a;
    eb[j] = b;
  }
}`,
    cpu(ins, outs, p) {
      const np = ins.info[0];
      if (ins.info[4] === 0) return;
      const two = ins.info[1] !== np;
      const ps = ins.ps, e = outs.e;
      const fr = e instanceof Float32Array ? Math.fround : (x: number) => x;
      const delta = (p as P).delta;
      for (let j = 0; j < np; j++) {
        if (!two) {
          e[j] = ps[j];
          outs.ea[j] = j;
          outs.eb[j] = j;
          continue;
        }
        const va = fr(ps[j] + delta), vb = fr(ps[j] - delta);
        const a = j + partitionPoint(0, np, (k) => fr(ps[k] - delta) > va);
        const b = j + partitionPoint(0, np, (k) => fr(ps[k] + delta) >= vb);
        e[a] = va;
        e[b] = vb;
        outs.ea[j] = a;
        outs.eb[j] = b;
      }
    },
  }));
}

/** Zeroes the used part of the partial-sum matrix (`3 ncol (L + 1)` entries). */
export function zeroMatrixKernel(): Kernel {
  return cached(`zero`, () => ({
    label: "rank_ops.zero_matrix",
    inputs: { info: "u32" },
    outputs: { mat: "u32" },
    params: { total: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  let used = min(p.total, 3u * info[2] * (info[1] + 1u));
  let start = i * 256u;
  if (start >= used) { return; }
  let stop = min(used, start + 256u);
  for (var k = start; k < stop; k++) { mat[k] = 0u; }
}`,
    cpu(ins, outs, p) {
      const used = Math.min((p as P).total, 3 * ins.info[2] * (ins.info[1] + 1));
      outs.mat.fill(0, 0, used);
    },
  }));
}

/** Cells of the boundary grid: the grid's `GRID_CELLS + 1` counts fill one 64 KiB uniform window. */
export const GRID_CELLS = UNIFORM_WINDOW_FLOATS - 1;

/**
 * The cell of a value `v >= t` on the boundary grid: `floor((v - t) * scale)` capped at the last
 * cell, with `scale = GRID_CELLS / (e[0] - t)` (0 when the range is empty). The grid kernel and
 * the search evaluate this same expression, which makes the lookup exact (see
 * {@linkcode boundaryGridKernel}).
 */
const CELL_WGSL = `
fn grid_scale() -> f32 {
  let range = e[0] - fmeta[2];
  return select(0.0, ${GRID_CELLS}.0 / range, range > 0.0);
}
fn cell_of(v: f32, scale: f32) -> u32 {
  return min(u32(max(floor((v - fmeta[2]) * scale), 0.0)), ${GRID_CELLS - 1}u);
}`;

/**
 * The boundary grid: `grid[c]` = number of boundaries `e[k]` (descending, `L = info[1]`) whose
 * cell is `>= c`, for `c` in `[0, GRID_CELLS]`, as exact floats. A value `v` of cell `c` has
 * every boundary of a higher cell above it and every boundary of a lower cell below it (the
 * cell is monotone in the value, whatever the rounding), so its interval lies in
 * `[grid[c + 1], grid[c]]` and the search only compares `v` with the boundaries of its own cell.
 */
export function boundaryGridKernel(f: DType): Kernel {
  return cached(`grid|${f}`, () => ({
    label: "rank_ops.boundary_grid",
    inputs: { e: f, info: "u32", fmeta: f },
    outputs: { grid: "f32" },
    params: { unused: "u32" },
    workgroupSize: WG,
    code: `${CELL_WGSL}
${partitionPointWgsl("cells_at_or_above", "c: u32, scale: f32", "cell_of(e[mid], scale) >= c")}
${entryPoint(WG)}
  if (i > ${GRID_CELLS}u) { return; }
  let l = select(0u, info[1], info[4] != 0u && info[0] > 0u);
  // Cells do not rise along e: count the boundaries whose cell is >= i.
  grid[i] = f32(cells_at_or_above(0u, l, i, grid_scale()));
}`,
    // The twin counts by histogram: cells do not rise along e, so the number of boundaries of
    // cell >= c is a suffix sum of the per-cell counts, the binary search's answer.
    cpu(ins, outs) {
      const { e, info, fmeta } = ins, grid = outs.grid;
      const fr = f === "f32" ? Math.fround : (v: number) => v;
      const l = info[4] !== 0 && info[0] > 0 ? info[1] : 0;
      const t = fmeta[2], range = fr(e[0] - t);
      const scale = range > 0 ? fr(GRID_CELLS / range) : 0;
      const cells = new Float64Array(GRID_CELLS + 1);
      for (let k = 0; k < l; k++) {
        cells[Math.min(Math.max(Math.floor(fr(fr(e[k] - t) * scale)), 0), GRID_CELLS - 1)]++;
      }
      grid[GRID_CELLS] = cells[GRID_CELLS];
      for (let c = GRID_CELLS - 1; c >= 0; c--) grid[c] = grid[c + 1] + cells[c];
    },
  }));
}

/** Steps of {@linkcode gridSearchWgsl} below this stride run for every value; longer ones only in large cells. */
const SMALL_CELL = 16;

/**
 * Unrolled search of the interval of `s`: the number of boundaries `e[k]` (descending, `L` of
 * them) with `e[k] >= s` (`ge`) or `> s`, starting from the count above the value's grid cell
 * and stepping through the boundaries of that cell only. Unrolled because llvmpipe stops loops
 * near 65,535 iterations (the search sits in the column pass's loop); each step a branch-free
 * `select` with an in-range read, and the long steps skipped together in the usual small cell,
 * because SwiftShader (Chromium's software adapter) took minutes to compile the same steps
 * written as 26 `if` blocks.
 */
function gridSearchWgsl(ge: boolean): string {
  const lines = [
    CELL_WGSL,
    `fn interval_of(s: f32, scale: f32) -> u32 {`,
    `  let c = cell_of(s, scale);`,
    `  var lo = u32(grid[(c + 1u) / 4u][(c + 1u) % 4u]);`,
    `  let hi = u32(grid[c / 4u][c % 4u]);`,
    `  if (hi <= lo) { return lo; }`,
    `  if (hi - lo >= ${SMALL_CELL}u) {`,
  ];
  for (let b = SEARCH_STEPS - 1; b >= 0; b--) {
    if (2 ** b === SMALL_CELL / 2) lines.push(`  }`);
    const next = `lo + ${2 ** b}u`;
    lines.push(
      `  lo = select(lo, ${next}, (${next} <= hi) & (e[min(${next}, hi) - 1u] ${
        ge ? ">=" : ">"
      } s));`,
    );
  }
  lines.push(`  return lo;`, `}`);
  return lines.join("\n");
}

const FRAME_WGSL = `
fn frame_top(q: u32, l: u32) -> f32 { if (q == 0u) { return fmeta[1]; } return e[q - 1u]; }
fn frame_bot(q: u32, l: u32) -> f32 { if (q == l) { return fmeta[2]; } return e[q]; }`;

function frameTop(q: number, e: ArrayLike<number>, fmeta: ArrayLike<number>): number {
  return q === 0 ? fmeta[1] : e[q - 1];
}
function frameBot(q: number, l: number, e: ArrayLike<number>, fmeta: ArrayLike<number>): number {
  return q === l ? fmeta[2] : e[q];
}

/**
 * One column per invocation: the relevant negatives of its entry range (part `sub` of it) are
 * binned, and per interval the column accumulates the count and a 64-bit fixed-point sum of
 * `(top - s) / width` (exact integer sums: deterministic, no cancellation). The interval of an
 * entry is found by binary search (written to `qid`), or read from `qid` (`given`: the full-sort
 * bucketing, {@linkcode sortedBucketsKernel}).
 */
export function partialsKernel(f: DType, ge: boolean, given = false): Kernel {
  return cached(`partials|${f}|${ge}|${given}`, () => ({
    label: `rank_ops.interval_partials_${given ? "given" : ge ? "ge" : "gt"}`,
    inputs: { s: f, yv: f, e: f, info: "u32", fmeta: f, ...(given ? { qid: "u32" as const } : {}) },
    outputs: { mat: "u32", ...(given ? {} : { qid: "u32" as const }) },
    params: { m: "u32", sub: "u32" },
    workgroupSize: COLUMN_WG,
    uniforms: given ? [] : ["grid"],
    code: `${given ? "" : gridSearchWgsl(ge)}
${FRAME_WGSL}
${entryPoint(COLUMN_WG)}
  let ncol = info[2];
  if (i >= ncol || info[4] == 0u || info[0] == 0u) { return; }
  let l = info[1];
  let r = info[3];
  let cstart = i * r;
  let start = cstart + p.sub * ${SUB}u;
  let stop = min(min(p.m, cstart + r), start + ${SUB}u);
  let t = fmeta[2];
  ${given ? "" : "let scale = grid_scale();"}
  for (var k = start; k < stop; k++) {
    let v = s[k];
    ${
      given
        ? `let q = qid[k];
    if (q == ${NONE}u) { continue; }`
        : `if (yv[k] != 0.0 || !(v >= t)) {
      qid[k] = ${NONE}u;
      continue;
    }
    let q = interval_of(v, scale);
    qid[k] = q;`
    }
    let top = frame_top(q, l);
    let width = top - frame_bot(q, l);
    var x = 0u;
    if (width > 0.0) { x = u32(clamp(round((top - v) / width * ${FIX}.0), 0.0, ${FIX}.0)); }
    let at = (q * ncol + i) * 3u;
    mat[at] = mat[at] + 1u;
    let lo = mat[at + 1u] + x;
    mat[at + 1u] = lo;
    if (lo < x) { mat[at + 2u] = mat[at + 2u] + 1u; }
  }
}`,
    cpu(ins, outs, p) {
      const { m, sub } = p as P;
      const info = ins.info, fmeta = ins.fmeta, e = ins.e, s = ins.s, y = ins.yv;
      const mat = outs.mat, qid = given ? ins.qid : outs.qid;
      const ncol = info[2], l = info[1], r = info[3], tt = fmeta[2];
      if (info[4] === 0 || info[0] === 0) return;
      for (let c = 0; c < ncol; c++) {
        const cstart = c * r;
        const start = cstart + sub * SUB;
        const stop = Math.min(m, cstart + r, start + SUB);
        for (let k = start; k < stop; k++) {
          const v = s[k];
          if (!given) qid[k] = y[k] !== 0 || !(v >= tt) ? NONE : countFrom(e, 0, l, v, !ge);
          const q = qid[k];
          if (q === NONE) continue;
          const top = frameTop(q, e, fmeta);
          const width = top - frameBot(q, l, e, fmeta);
          let x = 0;
          if (width > 0) x = Math.min(FIX, Math.max(0, Math.round(((top - v) / width) * FIX)));
          const at = (q * ncol + c) * 3;
          mat[at]++;
          const lo = (mat[at + 1] + x) >>> 0;
          mat[at + 1] = lo;
          if (lo < x) mat[at + 2]++;
        }
      }
    },
  }));
}

/**
 * Per interval: member count and mean logit (from the column partials), and the interval rows
 * `xq = [count, count · mean]` for their prefix. An empty interval's mean is its lower edge, so
 * the means descend and can be searched.
 */
export function reduceIntervalsKernel(f: DType): Kernel {
  return cached(`reduce|${f}`, () => ({
    label: "rank_ops.reduce_intervals",
    inputs: { mat: "u32", e: f, info: "u32", fmeta: f },
    outputs: { icnt: f, imean: f, xq: f },
    params: { grid: "u32" },
    workgroupSize: WG,
    code: `${FRAME_WGSL}
${entryPoint(WG)}
  if (i >= p.grid || info[4] == 0u || info[0] == 0u) { return; }
  let l = info[1];
  let ncol = info[2];
  for (var q = i; q <= l; q += p.grid) {
    var c = 0u;
    var lo = 0u;
    var hi = 0u;
    for (var k = 0u; k < ncol; k++) {
      let at = (q * ncol + k) * 3u;
      c += mat[at];
      let x = mat[at + 1u];
      lo += x;
      if (lo < x) { hi++; }
      hi += mat[at + 2u];
    }
    let top = frame_top(q, l);
    let bot = frame_bot(q, l);
    var mean = bot;
    if (c > 0u) {
      let frac = (f32(hi) * 4294967296.0 + f32(lo)) / (f32(c) * ${FIX}.0);
      mean = clamp(top - (top - bot) * frac, bot, top);
    }
    icnt[q] = f32(c);
    imean[q] = mean;
    xq[q * 2u] = f32(c);
    xq[q * 2u + 1u] = f32(c) * mean;
  }
}`,
    cpu(ins, outs) {
      const info = ins.info, mat = ins.mat, e = ins.e, fmeta = ins.fmeta;
      if (info[4] === 0 || info[0] === 0) return;
      const l = info[1], ncol = info[2];
      for (let q = 0; q <= l; q++) {
        let c = 0, sum = 0;
        for (let k = 0; k < ncol; k++) {
          const at = (q * ncol + k) * 3;
          c += mat[at];
          sum += mat[at + 1] + mat[at + 2] * 4294967296;
        }
        const top = frameTop(q, e, fmeta), bot = frameBot(q, l, e, fmeta);
        const mean = c === 0
          ? bot
          : Math.min(top, Math.max(bot, top - (top - bot) * (sum / (c * FIX))));
        outs.icnt[q] = c;
        outs.imean[q] = mean;
        outs.xq[q * 2] = c;
        outs.xq[q * 2 + 1] = c * outs.imean[q];
      }
    },
  }));
}
