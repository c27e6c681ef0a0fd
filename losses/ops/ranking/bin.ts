/**
 * Stage 4, bin: the boundaries between the sorted positives, every relevant negative's interval,
 * and each interval's count and mean logit — the buckets of negatives between consecutive
 * positives.
 *
 * Inputs: `logits`, `targets` `[M]` and the sorted positives' logits `ps`. Outputs: the
 * boundary list `e` `[lcap]` (the sorted positives for the bucketed losses; the knees `p ± δ`
 * for the others) with each positive's boundary range `ea`, `eb`; `qid` `[M]` (interval of each
 * relevant negative, `0xffffffff` for every other entry); `imean` `[lcap + 1]` (mean logit of
 * each interval, its lower edge when empty, so the means descend); `gq` (exclusive prefix of the
 * interval rows `[count, count · mean]`).
 *
 * After the stage no later pass visits the `M` entries except the final scatter, which reads
 * `qid`: the negatives are summarised by `L + 1` intervals. Sums are fixed point in `u32`
 * columns, so the result does not depend on the order the negatives are added in.
 *
 * @module
 */

import { launch } from "../../../tensor/ops/launch.ts";
import type { Tensor } from "../../../tensor/tensor.ts";
import {
  boundaryGridKernel,
  COLUMN_WG,
  edgesKernel,
  GRID_CELLS,
  MAX_COLUMNS,
  partialsKernel,
  reduceIntervalsKernel,
  SUB,
  zeroMatrixKernel,
} from "../kernels.ts";
import { bucketsBySort } from "./bucket_sort.ts";
import { overIntervals, overPositives, type Pipeline, scan } from "./pipeline.ts";

/** The intervals of the negatives. */
export interface Bins {
  /** Boundary range `[ea, eb)` of each sorted positive. */
  ea: Tensor;
  /** See `ea`. */
  eb: Tensor;
  /** Interval of each entry (`0xffffffff` where not a relevant negative). */
  qid: Tensor;
  /** Mean logit of each interval. */
  imean: Tensor;
  /** Exclusive prefix of the interval rows `[count, count · mean]`. */
  gq: Tensor;
}

/** Bins the relevant negatives between the boundaries of the sorted positives `ps`. */
export function binNegatives(
  ctx: Pipeline,
  logits: Tensor,
  targets: Tensor,
  ps: Tensor,
  config: { bucketed: boolean; bySort: boolean; posEq1: number; delta: number },
): Bins {
  const { f, m, pcap, lcap, cape, alloc, info, fmeta, grid, backend } = ctx;
  const e = alloc(lcap, f), ea = alloc(pcap, "u32"), eb = alloc(pcap, "u32");
  overPositives(ctx, edgesKernel(f), [ps, info], [e, ea, eb], { grid, delta: config.delta });
  const mat = alloc(3 * cape, "u32");
  launch(zeroMatrixKernel(), [info], [mat], { total: 3 * cape }, Math.ceil(3 * cape / 256 / 64));
  const subs = Math.max(1, Math.ceil(Math.ceil(m / ctx.minColumns) / SUB));
  const columnGroups = Math.ceil(MAX_COLUMNS / COLUMN_WG);
  const qid = alloc(m, "u32");
  if (config.bySort) {
    bucketsBySort(logits, targets, fmeta, config.posEq1, qid);
    for (let sub = 0; sub < subs; sub++) {
      launch(partialsKernel(f, true, true), [logits, targets, e, info, fmeta, qid], [mat], {
        m,
        sub,
      }, columnGroups);
    }
  } else {
    // The boundary grid, read through a uniform window, narrows each search to one cell.
    const cells = alloc(GRID_CELLS + 1, "f32");
    launch(boundaryGridKernel(f), [e, info, fmeta], [cells], { unused: 0 }, (GRID_CELLS + 1) / 64);
    const kernel = partialsKernel(f, config.bucketed);
    const bind = (t: Tensor) => ({ storage: t.storage, dtype: t.dtype, size: t.size });
    for (let sub = 0; sub < subs; sub++) {
      backend.run({
        kernel,
        inputs: [logits, targets, e, info, fmeta].map(bind),
        outputs: [mat, qid].map(bind),
        params: { m, sub },
        workgroups: columnGroups,
        uniformInputs: [{ storage: cells.storage, byteOffset: 0 }],
      });
    }
  }
  const icnt = alloc(lcap + 1, f), imean = alloc(lcap + 1, f), xq = alloc(2 * (lcap + 1), f);
  overIntervals(ctx, reduceIntervalsKernel(f), [mat, e, info, fmeta], [icnt, imean, xq], { grid });
  const gq = scan(ctx, xq, 2, lcap + 1, 1, 1);
  return { ea, eb, qid, imean, gq };
}
