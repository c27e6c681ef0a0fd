/**
 * Kernels (WGSL + CPU twin) of the ranking-loss ops. None reads back: counts that depend on the
 * data (the number of positives `P`, the number of intervals `L`, the column count of the
 * partial-sum matrix) live in a small `u32` buffer `info` and every kernel reads them there.
 *
 * `info` (u32): `[0] P`, `[1] L` (boundaries), `[2] ncol` (columns of the partial-sum matrix),
 * `[3] R` (entries per column), `[4] ok` (1 when `P` is within the supported range).
 * `fmeta` (float): `[0]` min positive logit, `[1]` max negative logit, `[2]` threshold `t`.
 *
 * Loops are bounded for llvmpipe (about 65,535 iterations per invocation): per-chunk loops walk
 * {@linkcode CHUNK} entries, grid-stride loops over positives and intervals run at most
 * `MAX_POSITIVES / GRID` rounds of a few binary searches, scans walk one chunk per lane.
 *
 * @module
 */

import type { DType } from "../../tensor/dtype.ts";
import {
  entryPoint,
  type Kernel,
  kernelCache,
  UNIFORM_WINDOW_FLOATS,
} from "../../tensor/kernel.ts";
import { smoothStep } from "../reference/common.ts";
import { countFrom, MAX_SCAN_ROWS, RampSums, rampWgsl } from "./prefix_kernels.ts";

/** Entries one invocation of the chunked passes over `M` walks. */
export const CHUNK = 4096;
/** Invocations of the grid-stride kernels over positives and intervals. */
export const GRID = 16384;
/** Largest `P` supported (the `2P + 1` intervals must fit one scan); above it the loss is NaN. */
export const MAX_POSITIVES = (MAX_SCAN_ROWS >>> 1) - 1;
/** Most columns of the partial-sum matrix (one invocation each). */
export const MAX_COLUMNS = 64;
/** Entries a column walks per dispatch of the partial-sum pass. */
export const SUB = 49152;
/** Unrolled binary-search steps: boundary lists up to `2^26 - 1` long. */
const SEARCH_STEPS = 26;
/** Workgroup size of the one-dimensional kernels. */
export const WG = 64;
/** Workgroup size of the column pass (several workgroups so that llvmpipe uses every core). */
export const COLUMN_WG = 8;
/** Entries each lane of the negative scatter writes (fewer, fuller workgroups). */
export const SCATTER_PER_LANE = 16;
/** Interval id of entries that are not relevant negatives. */
export const NONE = 0xffffffff;
/** Fixed-point scale of the interval sums. */
const FIX = 16777216;

const cached = kernelCache();

type P = Record<string, number>;

/** `H(x)` in WGSL (reads `p.delta`). */
const H_WGSL = `
fn hstep(x: f32) -> f32 {
  if (p.delta == 0.0) { return select(0.0, 1.0, x >= 0.0); }
  return clamp(x / (2.0 * p.delta) + 0.5, 0.0, 1.0);
}`;

/** WGSL: whether target `y` is a positive (reads `p.pos_eq1`). */
export function isPosWgsl(): string {
  return `select(y > 0.0, y == 1.0, p.pos_eq1 != 0u)`;
}
/** Whether target `y` is a positive (`eq1`: only targets equal to 1). */
export function isPos(y: number, eq1: number): boolean {
  return eq1 ? y === 1 : y > 0;
}

/** Per-chunk positive count, min positive logit, max negative logit. */
export function chunkStatsKernel(f: DType): Kernel {
  return cached(`stats|${f}`, () => ({
    label: "rank_ops.chunk_stats",
    inputs: { s: f, yv: f },
    outputs: { cnt: "u32", minp: f, maxn: f },
    params: { m: "u32", chunks: "u32", pos_eq1: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  if (i >= p.chunks) { return; }
  let start = i * ${CHUNK}u;
  let stop = min(p.m, start + ${CHUNK}u);
  var c = 0u;
  var mn = 3.0e38;
  var mx = -3.0e38;
  for (var k = start; k < stop; k++) {
    let y = yv[k];
    let v = s[k];
    if (${isPosWgsl()}) { c++; mn = min(mn, v); } else if (y == 0.0) { mx = max(mx, v); }
  }
  cnt[i] = c;
  minp[i] = mn;
  maxn[i] = mx;
}`,
    cpu(ins, outs, p) {
      const { m, chunks, pos_eq1: eq1 } = p as P;
      const s = ins.s, y = ins.yv;
      for (let i = 0; i < chunks; i++) {
        let c = 0, mn = 3.0e38, mx = -3.0e38;
        const stop = Math.min(m, (i + 1) * CHUNK);
        for (let k = i * CHUNK; k < stop; k++) {
          if (isPos(y[k], eq1)) {
            c++;
            if (s[k] < mn) mn = s[k];
          } else if (y[k] === 0 && s[k] > mx) mx = s[k];
        }
        outs.cnt[i] = c;
        outs.minp[i] = mn;
        outs.maxn[i] = mx;
      }
    },
  }));
}

/**
 * One invocation: totals, chunk offsets, `info` and `fmeta`; also the workgroup counts of the
 * later dispatches over the positives (`info[8..11)`) and the intervals (`info[11..14)`), so
 * that they launch no more lanes than there is work (`Launch.indirect`).
 */
export function totalsKernel(f: DType): Kernel {
  return cached(`totals|${f}`, () => ({
    label: "rank_ops.totals",
    inputs: { cnt: "u32", minp: f, maxn: f },
    outputs: { offs: "u32", info: "u32", fmeta: f },
    params: {
      chunks: "u32",
      m: "u32",
      delta: "f32",
      edges: "u32",
      cape: "u32",
      pcap: "u32",
      ne: "u32",
      grid: "u32",
    },
    workgroupSize: 1,
    code: `${entryPoint(1)}
  if (i > 0u) { return; }
  var total = 0u;
  var mn = 3.0e38;
  var mx = -3.0e38;
  for (var c = 0u; c < p.chunks; c++) {
    offs[c] = total;
    total += cnt[c];
    mn = min(mn, minp[c]);
    mx = max(mx, maxn[c]);
  }
  var l = total;
  if (p.edges != 0u && p.delta > 0.0) { l = 2u * total; }
  let ncol = clamp(p.cape / (l + 1u), 1u, ${MAX_COLUMNS}u);
  info[0] = total;
  info[1] = l;
  info[2] = ncol;
  info[3] = (p.m + ncol - 1u) / ncol;
  info[4] = select(0u, 1u, total <= min(p.pcap, ${MAX_POSITIVES}u) && (p.ne == ${NONE}u || p.ne == total));
  fmeta[0] = mn;
  fmeta[1] = mx;
  fmeta[2] = mn - p.delta;
  fmeta[3] = 0.0;
  info[8] = (min(total, p.grid) + ${WG - 1}u) / ${WG}u;
  info[11] = (min(l + 1u, p.grid) + ${WG - 1}u) / ${WG}u;
  info[9] = 1u;
  info[10] = 1u;
  info[12] = 1u;
  info[13] = 1u;
}`,
    cpu(ins, outs, p) {
      const { chunks, m, delta, edges, cape, pcap, ne, grid } = p as P;
      let total = 0, mn = 3.0e38, mx = -3.0e38;
      for (let c = 0; c < chunks; c++) {
        outs.offs[c] = total;
        total += ins.cnt[c];
        mn = Math.min(mn, ins.minp[c]);
        mx = Math.max(mx, ins.maxn[c]);
      }
      const l = edges && delta > 0 ? 2 * total : total;
      const ncol = Math.min(MAX_COLUMNS, Math.max(1, Math.floor(cape / (l + 1))));
      const info = outs.info;
      info[0] = total;
      info[1] = l;
      info[2] = ncol;
      info[3] = Math.ceil(m / ncol);
      info[4] = total <= Math.min(pcap, MAX_POSITIVES) && (ne === NONE || ne === total) ? 1 : 0;
      outs.fmeta[0] = mn;
      outs.fmeta[1] = mx;
      outs.fmeta[2] = mn - delta;
      outs.fmeta[3] = 0;
      info.set([Math.ceil(Math.min(total, grid) / WG), 1, 1], 8);
      info.set([Math.ceil(Math.min(l + 1, grid) / WG), 1, 1], 11);
    },
  }));
}

/** Writes the positives in index order at their chunk offsets (first `P` slots). */
export function compactKernel(f: DType): Kernel {
  return cached(`compact|${f}`, () => ({
    label: "rank_ops.compact",
    inputs: { s: f, yv: f, offs: "u32", info: "u32" },
    outputs: { cs: f, cy: f, ci: "u32" },
    params: { m: "u32", chunks: "u32", pos_eq1: "u32", pcap: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  if (i >= p.chunks || info[4] == 0u) { return; }
  let start = i * ${CHUNK}u;
  let stop = min(p.m, start + ${CHUNK}u);
  var o = offs[i];
  for (var k = start; k < stop; k++) {
    let y = yv[k];
    if (${isPosWgsl()}) {
      cs[o] = s[k];
      cy[o] = y;
      ci[o] = k;
      o++;
    }
  }
}`,
    cpu(ins, outs, p) {
      const { m, chunks, pos_eq1: eq1 } = p as P;
      if (ins.info[4] === 0) return;
      for (let i = 0; i < chunks; i++) {
        let o = ins.offs[i];
        const stop = Math.min(m, (i + 1) * CHUNK);
        for (let k = i * CHUNK; k < stop; k++) {
          if (isPos(ins.yv[k], eq1)) {
            outs.cs[o] = ins.s[k];
            outs.cy[o] = ins.yv[k];
            outs.ci[o] = k;
            o++;
          }
        }
      }
    },
  }));
}

/**
 * The positives in sorted order (after the merge sort of their logits, which carries each
 * one's compacted position `ko` as an exact float): logit, target, original index, position.
 */
export function sortedPositivesKernel(f: DType): Kernel {
  return cached(`sorted|${f}`, () => ({
    label: "rank_ops.sorted_positives",
    inputs: { ks: f, ko: f, cy: f, ci: "u32", info: "u32" },
    outputs: { ps: f, py: f, pi: "u32", pk: "u32" },
    params: { grid: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  if (i >= p.grid || info[4] == 0u) { return; }
  for (var r = i; r < info[0]; r += p.grid) {
    let a = u32(ko[r]);
    ps[r] = ks[r];
    py[r] = cy[a];
    pi[r] = ci[a];
    pk[r] = a;
  }
}`,
    cpu(ins, outs) {
      if (ins.info[4] === 0) return;
      for (let r = 0; r < ins.info[0]; r++) {
        const a = ins.ko[r];
        outs.ps[r] = ins.ks[r];
        outs.py[r] = ins.cy[a];
        outs.pi[r] = ins.ci[a];
        outs.pk[r] = a;
      }
    },
  }));
}

/** Row layouts of {@linkcode rowsKernel}, with their channel counts. */
export const ROWS = {
  /** `[a]`: positions, the payload of the sorts. */
  iota: { id: 0, channels: 1 },
  /** `[1, s, u, u s]`: `u` is `1 - y` (`umode` 1), `y` (2, aLRP errors) or 0. */
  positives: { id: 1, channels: 4 },
  /** `[w, w s]`: each negative's weight per unit `H`. */
  weights: { id: 2, channels: 2 },
  /** `[σ, σ s]`: each positive's share of its sorting error. */
  shares: { id: 3, channels: 2 },
  /** `[ranking value, sorting value]`. */
  totals: { id: 4, channels: 2 },
  /** AP precisions in reverse order (for a suffix maximum). */
  precisions: { id: 5, channels: 1 },
  /** aLRP: `[error, 1 / rank]`. */
  localisation: { id: 6, channels: 2 },
} as const;

/** Per positive (sorted order, `P = info[0]`): one row of the layout `ROWS[..].id`. */
export function rowsKernel(f: DType): Kernel {
  return cached(`rows|${f}`, () => ({
    label: "rank_ops.rows",
    inputs: { ps: f, yv: f, pd: f, info: "u32" },
    outputs: { x: f },
    params: { grid: "u32", shape: "u32", umode: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  let np = info[0];
  if (i >= p.grid || info[4] == 0u) { return; }
  for (var a = i; a < np; a += p.grid) {
    let s = ps[a];
    let o = a * 8u;
    switch p.shape {
      case 0u: { x[a] = f32(a); }
      case 1u: {
        var u = 0.0;
        if (p.umode == 1u) { u = 1.0 - yv[a]; } else if (p.umode == 2u) { u = yv[a]; }
        x[a * 4u] = 1.0;
        x[a * 4u + 1u] = s;
        x[a * 4u + 2u] = u;
        x[a * 4u + 3u] = u * s;
      }
      case 2u, 3u: {
        let w = pd[o + p.shape];
        x[a * 2u] = w;
        x[a * 2u + 1u] = w * s;
      }
      case 4u: {
        x[a * 2u] = pd[o];
        x[a * 2u + 1u] = pd[o + 1u];
      }
      case 5u: { x[np - 1u - a] = pd[o + 5u]; }
      default: {
        x[a * 2u] = yv[a];
        x[a * 2u + 1u] = 1.0 / pd[o + 6u];
      }
    }
  }
}`,
    cpu(ins, outs, p) {
      const { shape: layout, umode } = p as P;
      if (ins.info[4] === 0) return;
      const np = ins.info[0], x = outs.x, { ps, yv, pd } = ins;
      for (let a = 0; a < np; a++) {
        const s = ps[a], o = a * 8;
        if (layout === 0) x[a] = a;
        else if (layout === 1) {
          const u = umode === 1 ? 1 - yv[a] : umode === 2 ? yv[a] : 0;
          x.set([1, s, u, u * s], a * 4);
        } else if (layout === 2 || layout === 3) x.set([pd[o + layout], pd[o + layout] * s], a * 2);
        else if (layout === 4) x.set([pd[o], pd[o + 1]], a * 2);
        else if (layout === 5) x[np - 1 - a] = pd[o + 5];
        else x.set([yv[a], 1 / pd[o + 6]], a * 2);
      }
    },
  }));
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
    code: `${entryPoint(WG)}
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
    // #{k: ps[k] - delta > va} and #{k: ps[k] + delta >= vb}; both are prefixes.
    var lo = 0u;
    var hi = np;
    while (lo < hi) {
      let mid = (lo + hi) / 2u;
      if (ps[mid] - p.delta > va) { lo = mid + 1u; } else { hi = mid; }
    }
    let a = j + lo;
    lo = 0u;
    hi = np;
    while (lo < hi) {
      let mid = (lo + hi) / 2u;
      if (ps[mid] + p.delta >= vb) { lo = mid + 1u; } else { hi = mid; }
    }
    let b = j + lo;
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
        let lo = 0, hi = np;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (fr(ps[mid] - delta) > va) lo = mid + 1;
          else hi = mid;
        }
        const a = j + lo;
        lo = 0;
        hi = np;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (fr(ps[mid] + delta) >= vb) lo = mid + 1;
          else hi = mid;
        }
        const b = j + lo;
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
${entryPoint(WG)}
  if (i > ${GRID_CELLS}u) { return; }
  let l = select(0u, info[1], info[4] != 0u && info[0] > 0u);
  let scale = grid_scale();
  // Cells do not rise along e: count the boundaries whose cell is >= i.
  var lo = 0u;
  var hi = l;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    if (cell_of(e[mid], scale) >= i) { lo = mid + 1u; } else { hi = mid; }
  }
  grid[i] = f32(lo);
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

/** Which loss a per-positive kernel computes. */
export type LossKind = "rs" | "brs" | "ap" | "bap" | "alrp";

/**
 * Per positive (sorted order): `pd[8 i + …]` = `0` ranking value, `1` sorting error, `2`
 * weight of each negative's `H`, `3` share of the sorting error per unit `H`, `4` the
 * positive's own gradient term, `5` precision (AP), `6` rank (AP, aLRP). Every sum over
 * positives or intervals is a ramp sum over a prefix (`gp`: rows `ROWS.positives`, `gq`:
 * interval rows `[count, count · mean]`); the sorting losses read their dominance sums from
 * `dom` (round `targets`).
 */
export function positiveKernel(f: DType, kind: LossKind): Kernel {
  const bucketed = kind === "brs" || kind === "bap";
  const sorting = kind === "rs" || kind === "brs";
  return cached(`pos|${f}|${kind}`, () => ({
    label: `rank_ops.positive_${kind}`,
    inputs: {
      ps: f,
      yv: f,
      gp: f,
      imean: f,
      gq: f,
      ea: "u32",
      eb: "u32",
      dom: f,
      info: "u32",
    },
    outputs: { pd: f },
    params: { grid: "u32", delta: "f32" },
    workgroupSize: WG,
    code: `${H_WGSL}
${rampWgsl("pos", "ps", "gp", ROWS.positives.channels)}
${rampWgsl("iv", "imean", "gq", 2)}
${entryPoint(WG)}
  let np = info[0];
  if (i >= p.grid || info[4] == 0u) { return; }
  let l = info[1];
  for (var a = i; a < np; a += p.grid) {
    let si = ps[a];
    let yi = yv[a];
    let rankp = pos_up(0u, np, si, 0u);
    let cur = pos_up(0u, np, si, 2u);
    ${
      bucketed ? `let nfp = iv_up(0u, l + 1u, si, 0u);` : `let qa = ea[a] + 1u;
    let qb = eb[a] + 1u;
    var nfp = iv_sum(0u, qa, 0u);
    if (qb > qa) {
      let c = iv_sum(qa, qb, 0u);
      nfp += (iv_sum(qa, qb, 1u) - si * c) / (2.0 * p.delta) + 0.5 * c;
    }`
    }
    let o = a * 8u;
    ${
      kind === "alrp"
        ? `let loc = cur - hstep(0.0) * yi;
    let rp = rankp - hstep(0.0) + 1.0;
    let rank = rp + nfp;
    var w = 0.0;
    var g = 0.0;
    if (nfp > 1e-5) {
      let err = (loc + nfp) / rank;
      w = err / nfp;
      g = -err;
    }
    pd[o] = 1.0 - rp / rank;
    pd[o + 1u] = 0.0;
    pd[o + 2u] = w;
    pd[o + 3u] = 0.0;
    pd[o + 4u] = g;
    pd[o + 6u] = rank;`
        : kind === "ap"
        ? `let rp = rankp - hstep(0.0) + 1.0;
    let rank = rp + nfp;
    pd[o + 5u] = rp / rank;
    pd[o + 6u] = rank;`
        : `var re = 0.0;
    ${kind === "rs" ? "re = nfp / (rankp + nfp);" : "if (nfp > 0.0) { re = nfp / (rankp + nfp); }"}
    let eps = ${kind === "rs" ? "1e-10" : "0.0"};
    var w = 0.0;
    var g = 0.0;
    if (nfp > eps) { w = re / nfp; ${kind === "rs" ? "g = -re;" : ""} }
    ${kind === "rs" ? "" : "g = -re;"}
    var se = 0.0;
    var share = 0.0;
    ${
          sorting
            ? `let tden = dom[a * 3u];
    let tnum = dom[a * 3u + 1u];
    let miss = dom[a * 3u + 2u];
    se = cur / rankp - tnum / tden;
    if (miss > eps) { share = se / miss; g -= se; }`
            : ""
        }
    pd[o] = re;
    pd[o + 1u] = se;
    pd[o + 2u] = w;
    pd[o + 3u] = share;
    pd[o + 4u] = g;`
    }
  }
}`,
    cpu(ins, outs, p) {
      const { delta } = p as P;
      const info = ins.info, np = info[0], l = info[1];
      if (info[4] === 0) return;
      const { ps, yv, ea, eb, dom } = ins;
      const pos = new RampSums(ps, ins.gp, ROWS.positives.channels, delta);
      const iv = new RampSums(ins.imean, ins.gq, 2, delta);
      const pd = outs.pd;
      const h0 = smoothStep(0, delta);
      for (let a = 0; a < np; a++) {
        const si = ps[a], yi = yv[a], o = a * 8;
        const rankp = pos.up(0, np, si, 0);
        const cur = pos.up(0, np, si, 2);
        let nfp: number;
        if (bucketed) nfp = iv.up(0, l + 1, si, 0);
        else {
          const qa = ea[a] + 1, qb = eb[a] + 1;
          nfp = iv.sum(0, qa, 0);
          if (qb > qa) {
            const c = iv.sum(qa, qb, 0);
            nfp += (iv.sum(qa, qb, 1) - si * c) / (2 * delta) + 0.5 * c;
          }
        }
        if (kind === "alrp") {
          const loc = cur - h0 * yi;
          const rp = rankp - h0 + 1, rank = rp + nfp;
          let w = 0, g = 0;
          if (nfp > 1e-5) {
            const err = (loc + nfp) / rank;
            w = err / nfp;
            g = -err;
          }
          pd.set([1 - rp / rank, 0, w, 0, g], o);
          pd[o + 6] = rank;
        } else if (kind === "ap") {
          const rp = rankp - h0 + 1, rank = rp + nfp;
          pd[o + 5] = rp / rank;
          pd[o + 6] = rank;
        } else {
          const re = kind === "rs" || nfp > 0 ? nfp / (rankp + nfp) : 0;
          const eps = kind === "rs" ? 1e-10 : 0;
          let w = 0, g = kind === "rs" ? 0 : -re;
          if (nfp > eps) {
            w = re / nfp;
            if (kind === "rs") g = -re;
          }
          let se = 0, share = 0;
          if (sorting) {
            const tden = dom[a * 3], tnum = dom[a * 3 + 1], miss = dom[a * 3 + 2];
            se = cur / rankp - tnum / tden;
            if (miss > eps) {
              share = se / miss;
              g -= se;
            }
          }
          pd.set([re, se, w, share, g], o);
        }
      }
    },
  }));
}

/**
 * AP: the precision envelope. `gx` is the max-prefix of the precisions in reverse order, so the
 * best precision among the positives ranked at or below positive `a` is one lookup.
 */
export function apEnvelopeKernel(f: DType): Kernel {
  return cached(`apenv|${f}`, () => ({
    label: "rank_ops.ap_envelope",
    inputs: { gx: f, info: "u32" },
    outputs: { pd: f },
    params: { grid: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  let np = info[0];
  if (i >= p.grid || info[4] == 0u) { return; }
  for (var a = i; a < np; a += p.grid) {
    let o = a * 8u;
    let prec = pd[o + 5u];
    let below = max(0.0, gx[(np - 1u - a) * 2u]);
    let best = max(below, prec);
    var scale = 1.0 / pd[o + 6u];
    if (below > prec) { scale *= (1.0 - best) / (1.0 - prec); }
    pd[o] = 1.0 - best;
    pd[o + 1u] = 0.0;
    pd[o + 2u] = scale;
    pd[o + 3u] = 0.0;
    pd[o + 4u] = -(1.0 - best);
  }
}`,
    cpu(ins, outs) {
      if (ins.info[4] === 0) return;
      const np = ins.info[0], pd = outs.pd;
      for (let a = 0; a < np; a++) {
        const o = a * 8, prec = pd[o + 5];
        const below = Math.max(0, ins.gx[(np - 1 - a) * 2]);
        const best = Math.max(below, prec);
        let scale = 1 / pd[o + 6];
        if (below > prec) scale *= (1 - best) / (1 - prec);
        pd.set([1 - best, 0, scale, 0, -(1 - best)], o);
      }
    },
  }));
}

/**
 * Per interval `q`: the negatives' gradient is `(A_q + B_q s) / P`. Bucketed: `A_q = Σ_i
 * H(m_q - p_i) w_i`, `B_q = 0`, a ramp sum over the positives. Unbucketed: by the interval's
 * piece of `H(s - p_i)`: ones (`q <= ea_i`) add `w_i` to `A`; the ramp (`ea_i < q <= eb_i`)
 * adds `w_i (1/2 - p_i/(2δ))` to `A` and `w_i / (2δ)` to `B`; both sets of positives are
 * ranges, since `ea` and `eb` ascend. `gw`: prefix of the rows `ROWS.weights`.
 */
export function intervalWeightsKernel(f: DType, bucketed: boolean): Kernel {
  return cached(`weights|${f}|${bucketed}`, () => ({
    label: `rank_ops.interval_weights_${bucketed ? "bucketed" : "edges"}`,
    inputs: { ps: f, gw: f, imean: f, ea: "u32", eb: "u32", info: "u32" },
    outputs: { wa: f, wb: f },
    params: { grid: "u32", delta: "f32" },
    workgroupSize: WG,
    code: `${rampWgsl("pw", "ps", "gw", 2)}
fn below(e: u32, q: u32, n: u32) -> u32 {
  var lo = 0u;
  var hi = n;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    var v = ea[mid];
    if (e == 1u) { v = eb[mid]; }
    if (v < q) { lo = mid + 1u; } else { hi = mid; }
  }
  return lo;
}
${entryPoint(WG)}
  if (i >= p.grid || info[4] == 0u || info[0] == 0u) { return; }
  let np = info[0];
  let l = info[1];
  for (var q = i; q <= l; q += p.grid) {
    var a = 0.0;
    var b = 0.0;
    ${
      bucketed ? `a = pw_down(0u, np, imean[q], 0u);` : `let k1 = below(0u, q, np);
    let k2 = below(1u, q, np);
    a = pw_sum(k1, np, 0u);
    if (k1 > k2) {
      let c = pw_sum(k2, k1, 0u);
      a += 0.5 * c - pw_sum(k2, k1, 1u) / (2.0 * p.delta);
      b = c / (2.0 * p.delta);
    }`
    }
    wa[q] = a;
    wb[q] = b;
  }
}`,
    cpu(ins, outs, p) {
      const { delta } = p as P;
      const info = ins.info;
      if (info[4] === 0 || info[0] === 0) return;
      const np = info[0], l = info[1];
      const pw = new RampSums(ins.ps, ins.gw, 2, delta);
      const below = (e: ArrayLike<number>, q: number) => {
        let lo = 0, hi = np;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (e[mid] < q) lo = mid + 1;
          else hi = mid;
        }
        return lo;
      };
      for (let q = 0; q <= l; q++) {
        let a = 0, b = 0;
        if (bucketed) a = pw.down(0, np, ins.imean[q], 0);
        else {
          const k1 = below(ins.ea, q), k2 = below(ins.eb, q);
          a = pw.sum(k1, np, 0);
          if (k1 > k2) {
            const c = pw.sum(k2, k1, 0);
            a += 0.5 * c - pw.sum(k2, k1, 1) / (2 * delta);
            b = c / (2 * delta);
          }
        }
        outs.wa[q] = a;
        outs.wb[q] = b;
      }
    },
  }));
}

/** Every entry: relevant negatives `(A_q + B_q s) / P` (interval `q` from the binning pass), others 0. */
export function scatterNegativesKernel(f: DType): Kernel {
  return cached(`scatter|${f}`, () => ({
    label: "rank_ops.scatter_negatives",
    inputs: { s: f, qid: "u32", wa: f, wb: f, info: "u32" },
    outputs: { grad: f },
    params: { m: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  // Workgroup b covers entries [b WG K, (b + 1) WG K); lane l takes every WG-th of them.
  let base = (i / WG) * WG * ${SCATTER_PER_LANE}u + i % WG;
  let np = info[0];
  let ok = info[4] != 0u && np > 0u;
  for (var k = 0u; k < ${SCATTER_PER_LANE}u; k++) {
    let at = base + k * WG;
    if (at >= p.m) { break; }
    var g = 0.0;
    if (ok) {
      let q = qid[at];
      if (q != ${NONE}u) { g = (wa[q] + wb[q] * s[at]) / f32(np); }
    }
    grad[at] = g;
  }
}`,
    cpu(ins, outs, p) {
      const { m } = p as P;
      const { s, qid, wa, wb, info } = ins;
      const grad = outs.grad;
      const np = info[0], ok = info[4] !== 0 && np > 0;
      for (let i = 0; i < m; i++) {
        const q = ok ? qid[i] : NONE;
        grad[i] = q !== NONE ? (wa[q] + wb[q] * s[i]) / np : 0;
      }
    },
  }));
}

/**
 * Positives' gradients: own term plus (sorting losses) `Σ_{y_i < y_k} H(p_i - p_k) share_k`
 * (`dom`, round `shares`), divided by `P`, written at their original indices.
 */
export function positiveGradKernel(f: DType, sorting: boolean): Kernel {
  return cached(`posgrad|${f}|${sorting}`, () => ({
    label: `rank_ops.positive_grad${sorting ? "_sorting" : ""}`,
    inputs: { pi: "u32", pd: f, dom: f, info: "u32" },
    outputs: { grad: f },
    params: { grid: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  let np = info[0];
  if (i >= p.grid || info[4] == 0u) { return; }
  for (var a = i; a < np; a += p.grid) {
    grad[pi[a]] = (pd[a * 8u + 4u]${sorting ? " + dom[a]" : ""}) / f32(np);
  }
}`,
    cpu(ins, outs) {
      const { pi, pd, dom, info } = ins;
      if (info[4] === 0) return;
      const np = info[0];
      for (let a = 0; a < np; a++) outs.grad[pi[a]] = (pd[a * 8 + 4] + (sorting ? dom[a] : 0)) / np;
    },
  }));
}

/** Loss values: means of the ranking and sorting values (`gt`: prefix of `ROWS.totals`; NaN when `P` is out of range). */
export function finalizeKernel(f: DType): Kernel {
  return cached(`final|${f}`, () => ({
    label: "rank_ops.finalize",
    inputs: { gt: f, info: "u32" },
    outputs: { lr: f, ls: f },
    params: { unused: "u32" },
    workgroupSize: 1,
    code: `${entryPoint(1)}
  if (i > 0u) { return; }
  let np = info[0];
  if (info[4] == 0u) {
    // A quiet NaN built from a runtime value: a constant expression evaluating to NaN is a
    // shader-creation error in WGSL (Tint rejects it; naga lets it through).
    let nan = bitcast<f32>(0x7fc00000u | info[4]);
    lr[0] = nan;
    ls[0] = nan;
    return;
  }
  if (np == 0u) {
    lr[0] = 0.0;
    ls[0] = 0.0;
    return;
  }
  lr[0] = (gt[np * 4u] + gt[np * 4u + 1u]) / f32(np);
  ls[0] = (gt[np * 4u + 2u] + gt[np * 4u + 3u]) / f32(np);
}`,
    cpu(ins, outs) {
      const np = ins.info[0], gt = ins.gt;
      if (ins.info[4] === 0) {
        outs.lr[0] = NaN;
        outs.ls[0] = NaN;
        return;
      }
      outs.lr[0] = np === 0 ? 0 : (gt[np * 4] + gt[np * 4 + 1]) / np;
      outs.ls[0] = np === 0 ? 0 : (gt[np * 4 + 2] + gt[np * 4 + 3]) / np;
    },
  }));
}

/** aLRP: regression errors in sorted order, `pe[r] = err[pk[r]]`. */
export function gatherErrorsKernel(f: DType): Kernel {
  return cached(`gathererr|${f}`, () => ({
    label: "rank_ops.gather_errors",
    inputs: { err: f, pk: "u32", info: "u32" },
    outputs: { pe: f },
    params: { grid: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  if (i >= p.grid || info[4] == 0u) { return; }
  for (var r = i; r < info[0]; r += p.grid) { pe[r] = err[pk[r]]; }
}`,
    cpu(ins, outs) {
      if (ins.info[4] === 0) return;
      for (let r = 0; r < ins.info[0]; r++) outs.pe[r] = ins.err[ins.pk[r]];
    },
  }));
}

/**
 * aLRP localisation part: running sums of the errors in descending-logit order over the
 * detached ranks into `pd[8 r + 1]`, and the gradient of the mean with respect to each error,
 * `Σ_{r' >= r} 1 / rank(r') / P`, at its position among the positives (`rg`, `[P]`). `gl`:
 * prefix of the rows `ROWS.localisation`.
 */
export function alrpLocalisationKernel(f: DType): Kernel {
  return cached(`alrploc|${f}`, () => ({
    label: "rank_ops.alrp_localisation",
    inputs: { gl: f, pk: "u32", info: "u32" },
    outputs: { pd: f, rg: f },
    params: { grid: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  let np = info[0];
  if (i >= p.grid || info[4] == 0u) { return; }
  for (var r = i; r < np; r += p.grid) {
    let run = gl[(r + 1u) * 4u] + gl[(r + 1u) * 4u + 1u];
    pd[r * 8u + 1u] = run / pd[r * 8u + 6u];
    let tail = (gl[np * 4u + 2u] - gl[r * 4u + 2u]) + (gl[np * 4u + 3u] - gl[r * 4u + 3u]);
    rg[pk[r]] = tail / f32(np);
  }
}`,
    cpu(ins, outs) {
      if (ins.info[4] === 0) return;
      const np = ins.info[0], pd = outs.pd, gl = ins.gl;
      for (let r = 0; r < np; r++) {
        pd[r * 8 + 1] = (gl[(r + 1) * 4] + gl[(r + 1) * 4 + 1]) / pd[r * 8 + 6];
        const tail = (gl[np * 4 + 2] - gl[r * 4 + 2]) + (gl[np * 4 + 3] - gl[r * 4 + 3]);
        outs.rg[ins.pk[r]] = tail / np;
      }
    },
  }));
}
