/**
 * Stage 5, per-positive errors: each positive's ranking error (and sorting error, for RS and
 * BRS) from prefix sums over the positives and the intervals, each sum a ramp sum (two binary
 * searches and a prefix lookup); then AP's precision envelope or aLRP's localisation loss.
 *
 * Inputs: the sorted positives and the intervals of the bin stage. Output: `pd` `[8 · pcap]`,
 * the per-positive quantities the gradient and the totals read; for aLRP also `errorGrad`, the
 * localisation loss's gradient w.r.t. the errors, by positive in index order.
 *
 * After the stage every error is known: what is left is to spread each positive's error over
 * the negatives above it (the error-driven gradient) and to add the errors up.
 *
 * @module
 */

import type { Tensor } from "../../../tensor/tensor.ts";
import {
  alrpLocalisationKernel,
  apEnvelopeKernel,
  type LossKind,
  positiveKernel,
  ROWS,
} from "../kernels.ts";
import type { Bins } from "./bin.ts";
import { dominance, type TargetOrder, targetOrder } from "./dominance.ts";
import { overPositives, type Pipeline, rows, scan } from "./pipeline.ts";
import type { SortedPositives } from "./sort.ts";

/** Computes the per-positive errors; returns them with the target order of the sorting losses. */
export function positiveErrors(
  ctx: Pipeline,
  kind: LossKind,
  sorted: SortedPositives,
  { ea, eb, imean, gq }: Bins,
  delta: number,
  errorGrad?: Tensor,
): { pd: Tensor; order?: TargetOrder } {
  const { f, pcap, info, grid } = ctx;
  const { ps, py, pv, pk } = sorted;
  const sorting = kind === "rs" || kind === "brs";
  const xp = rows(ctx, "positives", ps, pv, ps, sorting ? 1 : errorGrad ? 2 : 0);
  const gp = scan(ctx, xp, ROWS.positives.channels, pcap);
  // Sorting losses: sums over the positives with larger targets, level by level.
  const order = sorting ? targetOrder(ctx, sorted) : undefined;
  const dom = order ? dominance(ctx, order, ps, "targets", xp, delta) : ps;
  const pd = ctx.alloc(8 * pcap, f);
  overPositives(ctx, positiveKernel(f, kind), [ps, pv, gp, imean, gq, ea, eb, dom, info], [pd], {
    grid,
    delta,
  });
  if (kind === "ap") {
    const gx = scan(ctx, rows(ctx, "precisions", ps, py, pd), 1, pcap, 0, 0, "max");
    overPositives(ctx, apEnvelopeKernel(f), [gx, info], [pd]);
  }
  if (errorGrad) {
    const gl = scan(ctx, rows(ctx, "localisation", ps, pv, pd), 2, pcap);
    overPositives(ctx, alrpLocalisationKernel(f), [gl, pk, info], [pd, errorGrad]);
  }
  return { pd, order };
}
