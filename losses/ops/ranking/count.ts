/**
 * Stage 1, count: per-chunk positive counts and logit bounds, then their totals and offsets.
 *
 * Inputs: `logits`, `targets` `[M]`. Outputs: `offs` `[chunks]` (exclusive prefix of the
 * per-chunk positive counts), `info` (u32: `P`, the boundary count `L`, the matrix columns and
 * rows, the `ok` flag, and the dispatch sizes over positives and intervals) and `fmeta` (float:
 * min positive logit, max negative logit, relevance threshold `t = min positive - δ`).
 *
 * After the stage every later kernel sizes itself from `info` alone; when `P` exceeds the
 * capacity `info` marks the pass not ok and the losses come out NaN with a zero gradient.
 *
 * @module
 */

import { launch } from "../../../tensor/ops/launch.ts";
import type { Tensor } from "../../../tensor/tensor.ts";
import { chunkStatsKernel, totalsKernel } from "../kernels.ts";
import type { Alloc, Sizes } from "./pipeline.ts";

/** Counts the positives; `ne` is the number of aLRP errors (`0xffffffff` when none). */
export function countPositives(
  sizes: Sizes,
  alloc: Alloc,
  logits: Tensor,
  targets: Tensor,
  config: { posEq1: number; delta: number; bucketed: boolean; ne: number },
): { offs: Tensor; info: Tensor; fmeta: Tensor } {
  const { f, m, chunks } = sizes;
  const cnt = alloc(chunks, "u32"), minp = alloc(chunks, f), maxn = alloc(chunks, f);
  const offs = alloc(chunks, "u32"), info = alloc(16, "u32"), fmeta = alloc(4, f);
  launch(chunkStatsKernel(f), [logits, targets], [cnt, minp, maxn], {
    m,
    chunks,
    pos_eq1: config.posEq1,
  }, Math.ceil(chunks / 64));
  launch(totalsKernel(f), [cnt, minp, maxn], [offs, info, fmeta], {
    chunks,
    m,
    delta: config.delta,
    edges: config.bucketed ? 0 : 1,
    cape: sizes.cape,
    pcap: sizes.pcap,
    ne: config.ne,
    grid: sizes.grid,
  }, 1);
  return { offs, info, fmeta };
}
