/**
 * What every stage of the ranking pipeline shares: the sizes fixed before any kernel runs, the
 * scratch allocator, the device-side counts `info`, and the three helpers the stages use over the
 * positives — launches sized by `info`, rows of a layout, exclusive prefixes, and merge passes.
 *
 * Invariants: every buffer a stage allocates through `alloc` is released when the forward pass
 * ends; a launch over the positives (or intervals) reads its workgroup count from `info` at index 8
 * (11), so nothing is read back; `levels = ceil(log2 pcap)` merge passes sort `pcap` rows.
 *
 * @module
 */

import type { Backend } from "../../../tensor/backend.ts";
import type { DType } from "../../../tensor/dtype.ts";
import type { Kernel } from "../../../tensor/kernel.ts";
import { launch } from "../../../tensor/ops/launch.ts";
import { empty, type Tensor } from "../../../tensor/tensor.ts";
import { CHUNK, GRID, MAX_COLUMNS, ROWS, rowsKernel } from "../kernels.ts";
import { mergeLevelKernel } from "../merge_kernels.ts";
import { scanKernel, type ScanOp } from "../prefix_kernels.ts";

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
  /** Device-side counts (u32; see `kernels.ts`). */
  info: Tensor;
  /** Device-side logit bounds (float; see `kernels.ts`). */
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
