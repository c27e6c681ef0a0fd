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

import type { DType } from "../../../tensor/dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../../../tensor/kernel.ts";
import type { Tensor } from "../../../tensor/tensor.ts";
import type { Positives } from "./compact.ts";
import { mergeLevels, overPositives, type Pipeline, rows, WG } from "./pipeline.ts";

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

const cached = kernelCache();

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
