/**
 * Stage 4 with option `bucketing: "sort"`, the paper's bucketing: a stable sort of all `M`
 * entries instead of a binary search per negative.
 *
 * Inputs: `logits`, `targets` `[M]` and `fmeta` of the count stage. Output: `qid` `[M]`.
 *
 * After the stage `qid` holds, for the relevant negative at sorted position `r`, the number of
 * positives sorted at or before it (positives go first among equal logits), and `0xffffffff`
 * for every other entry: the same buckets as the search, so the same outputs bit for bit.
 *
 * The three kernels of the bucketing (WGSL + CPU twin) live here; nothing else uses them.
 *
 * @module
 */

import type { DType } from "../../../tensor/dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../../../tensor/kernel.ts";
import { gather } from "../../../tensor/ops/index.ts";
import { floatOf, launch, launchInto } from "../../../tensor/ops/launch.ts";
import { cumsum } from "../../../tensor/ops/scan.ts";
import { argsort, sort } from "../../../tensor/ops/sort.ts";
import { type Tensor, tidy } from "../../../tensor/tensor.ts";
import { isPos, isPosWgsl, NONE, WG } from "./pipeline.ts";

const cached = kernelCache();

type P = Record<string, number>;

/**
 * Sorts the entries by logit, descending, positives first among equal logits (a sort by a
 * positive flag, then a stable sort by logit), and writes each relevant negative's bucket, by
 * original index, into `qid`.
 */
export function bucketsBySort(
  logits: Tensor,
  targets: Tensor,
  fmeta: Tensor,
  posEq1: number,
  qid: Tensor,
): void {
  const f = floatOf(logits), m = logits.size;
  if (m === 0) return;
  tidy(() => {
    const groups = Math.ceil(m / 64);
    const flags = launchInto(sortFlagsKernel(f), [targets], [m], f, { m, pos_eq1: posEq1 }, groups);
    const byFlag = argsort(flags);
    const { indices: order } = sort(gather(logits, 0, byFlag), {
      descending: true,
      payload: byFlag,
    });
    const positive = launchInto(sortedPositiveFlagsKernel(f), [targets, order], [m], "u32", {
      m,
      pos_eq1: posEq1,
    }, groups);
    const pc = cumsum(positive);
    launch(sortedBucketsKernel(f), [logits, targets, order, pc, fmeta], [qid], { m }, groups);
  });
}

/** Full-sort bucketing, step 1: sort flags, `0` for positives and `1` otherwise (positives go first among equal logits). */
export function sortFlagsKernel(f: DType): Kernel {
  return cached(`sortflags|${f}`, () => ({
    label: "rank_ops.sort_flags",
    inputs: { yv: f },
    outputs: { flag: f },
    params: { m: "u32", pos_eq1: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  if (i >= p.m) { return; }
  let y = yv[i];
  flag[i] = select(1.0, 0.0, ${isPosWgsl()});
}`,
    cpu(ins, outs, p) {
      const { m, pos_eq1: eq1 } = p as P;
      for (let i = 0; i < m; i++) outs.flag[i] = isPos(ins.yv[i], eq1) ? 0 : 1;
    },
  }));
}

/** Full-sort bucketing, step 2: `1` where the entry at sorted position `r` is a positive. */
export function sortedPositiveFlagsKernel(f: DType): Kernel {
  return cached(`sortedflags|${f}`, () => ({
    label: "rank_ops.sorted_positive_flags",
    inputs: { yv: f, order: "u32" },
    outputs: { pos: "u32" },
    params: { m: "u32", pos_eq1: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  if (i >= p.m) { return; }
  let y = yv[order[i]];
  pos[i] = select(0u, 1u, ${isPosWgsl()});
}`,
    cpu(ins, outs, p) {
      const { m, pos_eq1: eq1 } = p as P;
      for (let i = 0; i < m; i++) outs.pos[i] = isPos(ins.yv[ins.order[i]], eq1) ? 1 : 0;
    },
  }));
}

/**
 * Full-sort bucketing, step 3: the relevant negative at sorted position `r` lies in bucket
 * `pc[r]`, the number of positives sorted at or before it (`qid`, by original index).
 */
export function sortedBucketsKernel(f: DType): Kernel {
  return cached(`sortedbuckets|${f}`, () => ({
    label: "rank_ops.sorted_buckets",
    inputs: { s: f, yv: f, order: "u32", pc: "u32", fmeta: f },
    outputs: { qid: "u32" },
    params: { m: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  if (i >= p.m) { return; }
  let k = order[i];
  qid[k] = select(${NONE}u, pc[i], yv[k] == 0.0 && s[k] >= fmeta[2]);
}`,
    cpu(ins, outs, p) {
      const { m } = p as P;
      const { s, yv, order, pc, fmeta } = ins;
      for (let i = 0; i < m; i++) {
        const k = order[i];
        outs.qid[k] = yv[k] === 0 && s[k] >= fmeta[2] ? pc[i] : NONE;
      }
    },
  }));
}
