/**
 * What every stage of the ranking pipeline shares: the sizes fixed before any kernel runs, the
 * scratch allocator, the device-side counts `info`, and the three helpers the stages use over the
 * positives — launches sized by `info`, rows of a layout, exclusive prefixes, and merge passes.
 * Each stage's own kernels (WGSL + CPU twin) live in the stage's file.
 *
 * No kernel reads back: counts that depend on the data (the number of positives `P`, the number
 * of intervals `L`, the column count of the partial-sum matrix) live in a small `u32` buffer
 * `info` and every kernel reads them there. `info`: `[0] P`, `[1] L` (boundaries), `[2] ncol`
 * (columns of the partial-sum matrix), `[3] R` (entries per column), `[4] ok` (1 when `P` is
 * within the supported range), `[8..11)` and `[11..14)` the workgroup counts of the launches over
 * the positives and the intervals. `fmeta` (float): `[0]` min positive logit, `[1]` max negative
 * logit, `[2]` threshold `t`.
 *
 * Loops are bounded for llvmpipe (`LOOP_LIMIT` iterations per invocation): per-chunk loops walk
 * {@linkcode CHUNK} entries, grid-stride loops over positives and intervals run at most
 * `MAX_POSITIVES / GRID` rounds of a few binary searches, scans walk one chunk per lane.
 *
 * Merge passes: level `ℓ` of an array of `P` rows is sorted by key, descending, within every
 * aligned block of `2^ℓ` rows; one pass makes level `ℓ + 1`. Every row finds its place by a
 * binary search in its sibling block (`O(P log P)` per pass, all rows in parallel), and ties keep
 * the left block first, so the sort is stable. Rows carry `C` float channels along with the key
 * (sorts carry their original position as an exact float: `P < 2^24`).
 *
 * Invariants: every buffer a stage allocates through `alloc` is released when the forward pass
 * ends; a launch over the positives (or intervals) reads its workgroup count from `info` at index 8
 * (11), so nothing is read back; `levels = ceil(log2 pcap)` merge passes sort `pcap` rows.
 *
 * @module
 */

import type { Backend } from "../../../tensor/backend.ts";
import type { DType } from "../../../tensor/dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../../../tensor/kernel.ts";
import { launch } from "../../../tensor/ops/launch.ts";
import { empty, type Tensor } from "../../../tensor/tensor.ts";
import { partitionPoint } from "../../reference/common.ts";
import { MAX_SCAN_ROWS, partitionPointWgsl, scanKernel, type ScanOp } from "../prefix_kernels.ts";

/** Entries one invocation of the chunked passes over `M` walks. */
export const CHUNK = 4096;
/** Invocations of the grid-stride kernels over positives and intervals. */
export const GRID = 16384;
/** Largest `P` supported (the `2P + 1` intervals must fit one scan); above it the loss is NaN. */
export const MAX_POSITIVES = (MAX_SCAN_ROWS >>> 1) - 1;
/** Most columns of the partial-sum matrix (one invocation each). */
export const MAX_COLUMNS = 64;
/** Workgroup size of the one-dimensional kernels. */
export const WG = 64;
/** Interval id of entries that are not relevant negatives. */
export const NONE = 0xffffffff;

const cached = kernelCache();

type P = Record<string, number>;

/** Which loss a per-positive kernel computes. */
export type LossKind = "rs" | "brs" | "ap" | "bap" | "alrp";

/** WGSL: whether target `y` is a positive (reads `p.pos_eq1`). */
export function isPosWgsl(): string {
  return `select(y > 0.0, y == 1.0, p.pos_eq1 != 0u)`;
}
/** Whether target `y` is a positive (`eq1`: only targets equal to 1). */
export function isPos(y: number, eq1: number): boolean {
  return eq1 ? y === 1 : y > 0;
}

/** Most entries of the partial-sum matrix (3 `u32` each: 128 MiB, WebGPU's least binding size). */
const MAX_MATRIX = Math.floor(2 ** 27 / 12) - MAX_COLUMNS;

/** Allocates a scratch buffer of at least one element, released when the pass ends. */
export type Alloc = (n: number, dtype: DType) => Tensor;

/** Sizes of one forward pass, fixed before any kernel runs. */
export interface Sizes {
  /** Float type of the pass. */
  f: DType;
  /** Backend of the tensors. */
  backend: Backend;
  /** Entries `M`. */
  m: number;
  /** Positive capacity. */
  pcap: number;
  /** Chunks of {@linkcode CHUNK} entries (at least 1). */
  chunks: number;
  /** Boundary capacity: `pcap` (bucketed losses, `δ = 0`) or `2 pcap` (the knees `p ± δ`). */
  lcap: number;
  /** Capacity of the partial-sum matrix, in entries. */
  cape: number;
  /** Fewest columns of the partial-sum matrix. */
  minColumns: number;
  /** Invocations of the grid-stride kernels. */
  grid: number;
  /** Workgroups of the grid-stride kernels. */
  gridGroups: number;
  /** Merge passes that sort `pcap` rows. */
  levels: number;
}

/** The sizes of a pass over `m` entries with at most `pcap` positives. */
export function pipelineSizes(
  f: DType,
  backend: Backend,
  m: number,
  pcap: number,
  boundariesPerPositive: 1 | 2,
): Sizes {
  const chunks = Math.max(1, Math.ceil(m / CHUNK));
  const lcap = boundariesPerPositive * pcap;
  // Partial-sum matrix: up to 64 columns, never more than O(M) entries, and within the
  // binding size every adapter allows (3 u32 per entry, 128 MiB); `L + 1 <= MAX_MATRIX`.
  const cape = Math.min(MAX_COLUMNS * (lcap + 1), lcap + 1 + 2 * m, MAX_MATRIX) + MAX_COLUMNS;
  const minColumns = Math.min(MAX_COLUMNS, Math.max(1, Math.floor(cape / (lcap + 1))));
  const grid = Math.max(1, Math.min(GRID, pcap + 1));
  let levels = 0;
  while (2 ** levels < pcap) levels++;
  return {
    f,
    backend,
    m,
    pcap,
    chunks,
    lcap,
    cape,
    minColumns,
    grid,
    gridGroups: Math.ceil(grid / 64),
    levels,
  };
}

/** A pass after the count: its sizes, allocator, and the device-side counts. */
export interface Pipeline extends Sizes {
  /** Scratch allocator. */
  alloc: Alloc;
  /** Device-side counts (u32; layout in the module doc). */
  info: Tensor;
  /** Device-side logit bounds (float; layout in the module doc). */
  fmeta: Tensor;
}

/** Launches `kernel` over the positives (workgroup count from `info` at index 8). */
export function overPositives(
  ctx: Pipeline,
  kernel: Kernel,
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  params: Record<string, number> = { grid: ctx.grid },
): void {
  launch(kernel, inputs, outputs, params, ctx.gridGroups, { args: ctx.info, index: 8 });
}

/** Launches `kernel` over the intervals (workgroup count from `info` at index 11). */
export function overIntervals(
  ctx: Pipeline,
  kernel: Kernel,
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  params: Record<string, number>,
): void {
  launch(kernel, inputs, outputs, params, ctx.gridGroups, { args: ctx.info, index: 11 });
}

/** The rows of `layout` (see `ROWS`), one per sorted positive. */
export function rows(
  ctx: Pipeline,
  layout: keyof typeof ROWS,
  ps: Tensor,
  yv: Tensor,
  pd: Tensor,
  umode = 0,
): Tensor {
  const x = ctx.alloc(ctx.pcap * ROWS[layout].channels, ctx.f);
  overPositives(ctx, rowsKernel(ctx.f), [ps, yv, pd, ctx.info], [x], {
    grid: ctx.grid,
    shape: ROWS[layout].id,
    umode,
  });
  return x;
}

/**
 * Exclusive prefix of `n` rows (`n = info[slot] + add`, capacity `cap`). With `keep` false the
 * result is the caller's to release.
 */
export function scan(
  ctx: Pipeline,
  x: Tensor,
  channels: number,
  cap: number,
  slot = 0,
  add = 0,
  op: ScanOp = "sum",
  keep = true,
): Tensor {
  const g = keep
    ? ctx.alloc((cap + 1) * channels * 2, ctx.f)
    : empty([(cap + 1) * channels * 2], ctx.f, ctx.backend);
  launch(scanKernel(ctx.f, channels, op), [x, ctx.info], [g], { slot, add }, 1);
  return g;
}

/**
 * Merge passes over the positives (descending key, index on ties); `after(level, keys, rows)`
 * sees each level, the input first and the sorted rows last.
 */
export function mergeLevels(
  ctx: Pipeline,
  key: Tensor,
  x: Tensor,
  channels: number,
  after?: (level: number, key: Tensor, x: Tensor) => void,
): { key: Tensor; x: Tensor } {
  const spare: [Tensor, Tensor][] = [];
  for (let level = 0;; level++) {
    after?.(level, key, x);
    if (level === ctx.levels) return { key, x };
    // Two buffers per pass alternate (the input level is the caller's).
    if (level < 2) spare.push([ctx.alloc(ctx.pcap, ctx.f), ctx.alloc(ctx.pcap * channels, ctx.f)]);
    const [kb, xb] = spare[level % 2];
    overPositives(ctx, mergeLevelKernel(ctx.f, channels), [key, x, ctx.info], [kb, xb], {
      grid: ctx.grid,
      w: 2 ** level,
    });
    key = kb;
    x = xb;
  }
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

/** Where row `j` of level `w` goes in level `2w` (JS twin of the WGSL search). */
function mergedPosition(key: ArrayLike<number>, j: number, w: number, n: number): number {
  const pair = j - (j % (2 * w));
  const left = j - pair < w;
  const lo = left ? Math.min(pair + w, n) : pair;
  const hi = left ? Math.min(pair + 2 * w, n) : pair + w;
  const k = key[j];
  const before = partitionPoint(lo, hi, (b) => left ? key[b] > k : key[b] >= k) - lo;
  return left ? j + before : j - w + before;
}

/** One merge pass: level with blocks of `w` rows → blocks of `2w` (keys `ka` → `kb`, rows along). */
export function mergeLevelKernel(f: DType, channels: number): Kernel {
  const C = channels;
  return cached(`merge|${f}|${C}`, () => ({
    label: `rank_ops.merge_level${C}`,
    inputs: { ka: f, xa: f, info: "u32" },
    outputs: { kb: f, xb: f },
    params: { grid: "u32", w: "u32" },
    workgroupSize: WG,
    code: `${
      partitionPointWgsl(
        "sibling_rank",
        "key: f32, left: bool",
        "select(ka[mid] >= key, ka[mid] > key, left)",
      )
    }
${entryPoint(WG)}
  let n = info[0];
  if (i >= p.grid || info[4] == 0u) { return; }
  let w = p.w;
  for (var j = i; j < n; j += p.grid) {
    let pair = j - j % (2u * w);
    let left = j - pair < w;
    let key = ka[j];
    var lo = pair;
    var hi = pair + w;
    if (left) {
      lo = min(pair + w, n);
      hi = min(pair + 2u * w, n);
    }
    let before = sibling_rank(lo, hi, key, left) - lo;
    var at = j - w + before;
    if (left) { at = j + before; }
    kb[at] = key;
    for (var c = 0u; c < ${C}u; c++) { xb[at * ${C}u + c] = xa[j * ${C}u + c]; }
  }
}`,
    cpu(ins, outs, p) {
      const { w } = p as P;
      if (ins.info[4] === 0) return;
      const n = ins.info[0], ka = ins.ka, xa = ins.xa, kb = outs.kb, xb = outs.xb;
      for (let j = 0; j < n; j++) {
        const at = mergedPosition(ka, j, w, n);
        kb[at] = ka[j];
        for (let c = 0; c < C; c++) xb[at * C + c] = xa[j * C + c];
      }
    },
  }));
}
