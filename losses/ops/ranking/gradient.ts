/**
 * Stage 6, gradient and totals: the error-driven gradient, then the loss values.
 *
 * Inputs: the sorted positives, the intervals of the bin stage, the per-positive quantities
 * `pd` and, for the sorting losses, the target order. Outputs: `grad` `[M]` and the two scalar
 * losses.
 *
 * After {@linkcode scatterGradient} every entry of `grad` is written once: each relevant
 * negative gets its interval's weight (ramp sums over the positives, `O(1)` per negative),
 * every other negative 0, each positive its share (over the positives with larger targets for
 * RS and BRS). After {@linkcode lossTotals} the ranking and sorting losses are the means of the
 * per-positive errors (NaN when the pass is not ok).
 *
 * @module
 */

import { launch } from "../../../tensor/ops/launch.ts";
import type { Tensor } from "../../../tensor/tensor.ts";
import {
  finalizeKernel,
  intervalWeightsKernel,
  positiveGradKernel,
  SCATTER_PER_LANE,
  scatterNegativesKernel,
} from "../kernels.ts";
import type { Bins } from "./bin.ts";
import { dominance, type TargetOrder } from "./dominance.ts";
import { overIntervals, overPositives, type Pipeline, rows, scan } from "./pipeline.ts";
import type { SortedPositives } from "./sort.ts";

/** Writes the gradient of the loss (for an upstream gradient of 1) into `grad`. */
export function scatterGradient(
  ctx: Pipeline,
  logits: Tensor,
  { ps, py, pi }: SortedPositives,
  { ea, eb, imean, qid }: Bins,
  pd: Tensor,
  config: { bucketed: boolean; delta: number; order?: TargetOrder },
  grad: Tensor,
): void {
  const { f, m, lcap, pcap, alloc, info, grid } = ctx;
  const { delta, order } = config;
  const gw = scan(ctx, rows(ctx, "weights", ps, py, pd), 2, pcap);
  const wa = alloc(lcap + 1, f), wb = alloc(lcap + 1, f);
  overIntervals(
    ctx,
    intervalWeightsKernel(f, config.bucketed),
    [ps, gw, imean, ea, eb, info],
    [wa, wb],
    { grid, delta },
  );
  if (m > 0) {
    launch(
      scatterNegativesKernel(f),
      [logits, qid, wa, wb, info],
      [grad],
      { m },
      Math.ceil(m / (64 * SCATTER_PER_LANE)),
    );
  }
  const shares = order
    ? dominance(ctx, order, ps, "shares", rows(ctx, "shares", ps, py, pd), delta)
    : pd;
  overPositives(ctx, positiveGradKernel(f, order !== undefined), [pi, pd, shares, info], [grad]);
}

/** Writes the ranking and sorting losses. */
export function lossTotals(
  ctx: Pipeline,
  { ps, py }: SortedPositives,
  pd: Tensor,
  rankingLoss: Tensor,
  sortingLoss: Tensor,
): void {
  const gt = scan(ctx, rows(ctx, "totals", ps, py, pd), 2, ctx.pcap);
  launch(finalizeKernel(ctx.f), [gt, ctx.info], [rankingLoss, sortingLoss], { unused: 0 }, 1);
}
