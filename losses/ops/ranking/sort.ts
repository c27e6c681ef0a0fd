/**
 * Stage 3, sort: the positives in ranking order, by a merge sort on the device (`log2 P`
 * passes; descending logit, lower index first on ties).
 *
 * Inputs: the compacted positives `cs`, `cy`, `ci`; for aLRP the regression errors `[P]` by
 * positive rank in index order. Outputs `[pcap]`: `ps` (logits, descending), `py` (targets),
 * `pv` (what the loss weighs each positive by: the aLRP errors, else `py`), `pi` (index into
 * the `M` entries) and `pk` (rank in index order).
 *
 * After the stage every later pass over the positives reads them in this order.
 *
 * @module
 */

import type { Tensor } from "../../../tensor/tensor.ts";
import { gatherErrorsKernel, sortedPositivesKernel } from "../kernels.ts";
import type { Positives } from "./compact.ts";
import { mergeLevels, overPositives, type Pipeline, rows } from "./pipeline.ts";

/** The positives in ranking order. */
export interface SortedPositives {
  /** Logits, descending. */
  ps: Tensor;
  /** Targets. */
  py: Tensor;
  /** The aLRP errors, or the targets. */
  pv: Tensor;
  /** Indices into the `M` entries. */
  pi: Tensor;
  /** Ranks in index order. */
  pk: Tensor;
}

/** Sorts the positives by logit; aLRP reads its `errors` where the others read the targets. */
export function sortPositives(
  ctx: Pipeline,
  { cs, cy, ci }: Positives,
  errors?: Tensor,
): SortedPositives {
  const { f, pcap, alloc, info } = ctx;
  const byLogit = mergeLevels(ctx, cs, rows(ctx, "iota", cs, cy, cs), 1);
  const ps = alloc(pcap, f), py = alloc(pcap, f), pi = alloc(pcap, "u32");
  const pk = alloc(pcap, "u32");
  overPositives(ctx, sortedPositivesKernel(f), [byLogit.key, byLogit.x, cy, ci, info], [
    ps,
    py,
    pi,
    pk,
  ]);
  let pv = py;
  if (errors) {
    pv = alloc(pcap, f);
    overPositives(ctx, gatherErrorsKernel(f), [errors, pk, info], [pv]);
  }
  return { ps, py, pv, pi, pk };
}
