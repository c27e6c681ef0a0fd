/**
 * Stage 5a, the sorting losses only (RS, BRS): sums over the positives with larger targets,
 * read level by level off a merge sort of the positives in target order.
 *
 * Inputs: the sorted positives `ps`, `py`. {@linkcode targetOrder} gives `ys` (each positive's
 * row in target order) and `lge`, `lgt` (per positive, how many have a target `>=` and `>`
 * its own); {@linkcode dominance} then sums rows `xs` of one round over those positives.
 *
 * After the stage `acc` `[pcap · outputs]` holds, per positive, the ramp sums over the
 * positives with larger targets (round `"targets"`: the sorting errors' terms; round
 * `"shares"`: the positives' gradient shares), in `O(P log² P)` with one prefix per level.
 *
 * @module
 */

import type { Tensor } from "../../../tensor/tensor.ts";
import {
  DOMINANCE_CHANNELS,
  DOMINANCE_OUTPUTS,
  dominanceKernel,
  type DominanceRound,
  gatherRowsKernel,
  targetBoundsKernel,
} from "../merge_kernels.ts";
import type { SortedPositives } from "./sort.ts";
import { mergeLevels, overPositives, type Pipeline, rows, scan } from "./pipeline.ts";

/** The positives in target order. */
export interface TargetOrder {
  /** Row of each positive in target order. */
  ys: Tensor;
  /** Positives with a target `>=` each one's. */
  lge: Tensor;
  /** Positives with a target `>` each one's. */
  lgt: Tensor;
}

/** Sorts the positives by target. */
export function targetOrder(ctx: Pipeline, { ps, py }: SortedPositives): TargetOrder {
  const { pcap, alloc, info } = ctx;
  const byTarget = mergeLevels(ctx, py, rows(ctx, "iota", ps, py, ps), 1);
  const lge = alloc(pcap, "u32"), lgt = alloc(pcap, "u32");
  overPositives(ctx, targetBoundsKernel(ctx.f), [py, byTarget.key, info], [lge, lgt]);
  return { ys: byTarget.x, lge, lgt };
}

/** Per positive, the sums of round `round` of rows `xs` over the positives with larger targets. */
export function dominance(
  ctx: Pipeline,
  { ys, lge, lgt }: TargetOrder,
  ps: Tensor,
  round: DominanceRound,
  xs: Tensor,
  delta: number,
): Tensor {
  const { f, pcap, alloc, info, grid } = ctx;
  const channels = DOMINANCE_CHANNELS[round];
  const acc = alloc(pcap * DOMINANCE_OUTPUTS[round], f);
  const k0 = alloc(pcap, f), x0 = alloc(pcap * channels, f);
  overPositives(ctx, gatherRowsKernel(f, channels), [ps, ys, xs, info], [k0, x0]);
  mergeLevels(ctx, k0, x0, channels, (level, key, x) => {
    // One prefix per level, released as soon as its queries are encoded.
    const g = scan(ctx, x, channels, pcap, 0, 0, "sum", false);
    try {
      overPositives(ctx, dominanceKernel(f, round), [key, g, ps, lge, lgt, info], [acc], {
        grid,
        level,
        first: level === 0 ? 1 : 0,
        delta,
      });
    } finally {
      g.dispose();
    }
  });
  return acc;
}
