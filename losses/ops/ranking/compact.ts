/**
 * Stage 2, compact: the `P` positives, copied out of the `M` entries in index order.
 *
 * Inputs: `logits`, `targets` `[M]`, the chunk offsets `offs` and `info` of the count stage.
 * Outputs: `cs`, `cy`, `ci` `[pcap]`: logit, target and original index of each positive.
 *
 * After the stage row `r < P` holds the `r`-th positive by index (positives are targets equal
 * to 1 for AP and aLRP, above 0 for the others); rows from `P` on are not read.
 *
 * @module
 */

import { launch } from "../../../tensor/ops/launch.ts";
import type { Tensor } from "../../../tensor/tensor.ts";
import { compactKernel } from "../kernels.ts";
import type { Pipeline } from "./pipeline.ts";

/** The positives, in index order. */
export interface Positives {
  /** Logits. */
  cs: Tensor;
  /** Targets. */
  cy: Tensor;
  /** Indices into the `M` entries. */
  ci: Tensor;
}

/** Copies the positives out of `logits`/`targets`. */
export function compactPositives(
  ctx: Pipeline,
  logits: Tensor,
  targets: Tensor,
  offs: Tensor,
  posEq1: number,
): Positives {
  const { f, pcap, alloc } = ctx;
  const cs = alloc(pcap, f), cy = alloc(pcap, f), ci = alloc(pcap, "u32");
  launch(compactKernel(f), [logits, targets, offs, ctx.info], [cs, cy, ci], {
    m: ctx.m,
    chunks: ctx.chunks,
    pos_eq1: posEq1,
    pcap,
  }, Math.ceil(ctx.chunks / 64));
  return { cs, cy, ci };
}
