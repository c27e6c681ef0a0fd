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
 * @module
 */

import { gather } from "../../../tensor/ops/index.ts";
import { floatOf, launch, launchInto } from "../../../tensor/ops/launch.ts";
import { cumsum } from "../../../tensor/ops/scan.ts";
import { argsort, sort } from "../../../tensor/ops/sort.ts";
import { type Tensor, tidy } from "../../../tensor/tensor.ts";
import { sortedBucketsKernel, sortedPositiveFlagsKernel, sortFlagsKernel } from "../kernels.ts";

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
