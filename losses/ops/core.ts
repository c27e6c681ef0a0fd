/**
 * The shared pipeline of the ranking-loss ops: one forward pass of kernels that computes the
 * loss values and the error-driven gradient on the tensors' backend, with no readback, wrapped
 * in a `customOp` whose backward scales the stored gradient by the upstream gradient of the
 * ranking output.
 *
 * The stages, one module each under `ranking/` with its own kernels (each states its inputs,
 * outputs and what holds after it): `count` (per-chunk positive counts → totals, offsets and the
 * device-side counts `info`) → `compact` (the `P` positives) → `sort` (their merge sort: descending
 * logit, index on ties, `log2 P` passes) → `bin` (the boundary list — the sorted positives for the
 * bucketed losses, the knees `p ± δ` for the others — every relevant negative's interval by binary
 * search or, with `bucketing: "sort"`, `bucket_sort`; interval counts and means) → `errors`
 * (per-positive errors from prefix sums over positives and intervals, each a ramp sum; the sorting
 * losses' sums over positives with larger targets from `dominance`) → `gradient` (per-interval
 * negative weights, scatter to the negatives, `O(1)` each, and the positives; the loss totals).
 * `ranking/pipeline.ts` holds what they share.
 *
 * Cost: `O(M log P)` for the negatives and `O(P log² P)` for the positives; no buffer is larger
 * than `O(M + P)`. Every data-dependent count stays on the device.
 *
 * On the native backend the bucketed losses skip the pipeline: `native_losses.ts` runs the fast
 * array functions of `losses/fast` on the tensors' memory, with the same outputs and backward.
 *
 * @module
 */

import { customOp, needsGrad } from "../../tensor/autograd.ts";
import type { DType } from "../../tensor/dtype.ts";
import { mul } from "../../tensor/ops/elementwise.ts";
import { expectDtype, floatOf } from "../../tensor/ops/launch.ts";
import { empty, type Tensor, tensor } from "../../tensor/tensor.ts";
import { nativeRankingForward, runsNative, scaleInPlace } from "./native_losses.ts";
import { binNegatives } from "./ranking/bin.ts";
import { compactPositives } from "./ranking/compact.ts";
import { countPositives } from "./ranking/count.ts";
import { positiveErrors } from "./ranking/errors.ts";
import { lossTotals, scatterGradient } from "./ranking/gradient.ts";
import { type LossKind, MAX_POSITIVES, type Pipeline, pipelineSizes } from "./ranking/pipeline.ts";
import { sortPositives } from "./ranking/sort.ts";

/** Options of the ranking-loss ops. */
export interface RankingOpOptions {
  /** Half-width `δ >= 0` of the ramp of `H`; `0` is the unit step with `H(0) = 1`. */
  delta?: number;
  /**
   * Upper bound on the number of positives (default `M`); sizes the positive buffers and sets
   * the number of merge passes (`log2`). When the data has more (or more than
   * `MAX_POSITIVES` = 2,097,151), the loss values are NaN and the gradient is 0.
   */
  maxPositives?: number;
  /**
   * Bucketed losses: how each negative finds its bucket. `"search"` (default): binary search
   * among the sorted positives, `O(M log P)`. `"sort"`: the paper's way, a stable sort of all
   * `M` entries (positives first among equal logits), then a running count of positives,
   * `O(M log M)`. Both give the same buckets, hence the same outputs bit for bit (on the
   * native backend too, whose fast array functions have the same two ways).
   */
  bucketing?: "search" | "sort";
}

/** Loss values and gradient of one forward pass (no autograd). */
export interface RankingForward {
  /** Ranking loss `[]` (AP family: the loss). */
  rankingLoss: Tensor;
  /** Sorting loss `[]` (0 for the AP family). */
  sortingLoss: Tensor;
  /** Gradient `[M]` of the loss for an upstream gradient of 1. */
  grad: Tensor;
  /** aLRP only: gradient `[P]` of the localisation loss (`sortingLoss`) w.r.t. the errors. */
  errorGrad?: Tensor;
}

const DEFAULT_DELTA: Record<LossKind, number> = { rs: 0.5, brs: 0.5, ap: 1, bap: 1, alrp: 1 };
const NAMES: Record<LossKind, string> = {
  rs: "rankSort",
  brs: "bucketedRankSort",
  ap: "apLoss",
  bap: "bucketedAp",
  alrp: "alrp",
};

/** Checks inputs where they enter; returns the resolved `δ` and positive capacity. */
export function checkInputs(
  kind: LossKind,
  logits: Tensor,
  targets: Tensor,
  options: RankingOpOptions,
): { delta: number; pcap: number } {
  const op = NAMES[kind];
  expectDtype(op, logits, ["f32", "f64"]);
  expectDtype(op, targets, ["f32", "f64"]);
  if (logits.rank !== 1 || targets.rank !== 1 || logits.size !== targets.size) {
    throw new TypeError(
      `${op}: logits [${logits.shape.join(", ")}] and targets [${
        targets.shape.join(", ")
      }] must be 1-D of equal length`,
    );
  }
  if (logits.dtype !== targets.dtype) {
    throw new TypeError(`${op}: logits are ${logits.dtype} but targets are ${targets.dtype}`);
  }
  if (logits.backend !== targets.backend) {
    throw new TypeError(`${op}: logits and targets live on different backends`);
  }
  const delta = options.delta ?? DEFAULT_DELTA[kind];
  if (typeof delta !== "number" || !Number.isFinite(delta) || delta < 0) {
    throw new RangeError(`${op}: delta ${delta} must be a finite number >= 0`);
  }
  const m = logits.size;
  const pcap = options.maxPositives ?? m;
  if (!Number.isInteger(pcap) || pcap < 0) {
    throw new RangeError(`${op}: maxPositives ${pcap} must be an integer >= 0`);
  }
  if (m >= 2 ** 28) throw new RangeError(`${op}: ${m} entries exceed the limit of 2^28`);
  // More positives than the kernels handle make the loss NaN anyway: no larger buffers.
  return { delta, pcap: Math.min(pcap, m, MAX_POSITIVES + 1) };
}

/**
 * Runs the forward kernels of loss `kind` on `logits`/`targets` (1-D, same length, f32 on
 * either backend or f64 on the CPU). Returns fresh tensors; nothing is read back. On the native
 * backend BRS and BAP run the fast array functions instead (`native_losses.ts`).
 */
export function rankingForward(
  kind: LossKind,
  logits: Tensor,
  targets: Tensor,
  options: RankingOpOptions = {},
  errors?: Tensor,
): RankingForward {
  const { delta, pcap } = checkInputs(kind, logits, targets, options);
  const { bucketing } = options;
  if (bucketing !== undefined && bucketing !== "search" && bucketing !== "sort") {
    throw new RangeError(`${NAMES[kind]}: unknown bucketing "${bucketing}"`);
  }
  const bySort = bucketing === "sort";
  if (bySort && kind !== "brs" && kind !== "bap") {
    throw new TypeError(`${NAMES[kind]}: bucketing "sort" applies to the bucketed losses only`);
  }
  if ((kind === "alrp") !== (errors !== undefined)) {
    throw new TypeError(`${NAMES[kind]}: regression errors go with aLRP only`);
  }
  if (errors) {
    expectDtype("alrp", errors, [logits.dtype]);
    if (errors.rank !== 1 || errors.backend !== logits.backend) {
      throw new TypeError(
        `alrp: regression errors [${errors.shape.join(", ")}] must be 1-D on the logits' backend`,
      );
    }
  }
  const backend = logits.backend;
  if (runsNative(kind, backend)) {
    // The fast array functions on the tensors' memory; `P` above the pipeline's capacity
    // gives NaN there too.
    const capacity = Math.min(options.maxPositives ?? logits.size, MAX_POSITIVES);
    return nativeRankingForward(kind as "brs" | "bap", logits, targets, {
      delta,
      bucketing,
      capacity,
    }, NAMES[kind]);
  }
  const f: DType = floatOf(logits);
  const m = logits.size;
  const bucketed = kind === "brs" || kind === "bap";
  const posEq1 = kind === "ap" || kind === "alrp" ? 1 : 0;
  const errorGrad = errors
    ? tensor(f === "f64" ? new Float64Array(errors.size) : new Float32Array(errors.size), [
      errors.size,
    ], { backend })
    : undefined;
  const rankingLoss = empty([], f, backend);
  const sortingLoss = empty([], f, backend);
  const grad = empty([m], f, backend);
  const scratch: Tensor[] = [];
  const alloc = (n: number, dtype: DType): Tensor => {
    const t = empty([Math.max(1, n)], dtype, backend);
    scratch.push(t);
    return t;
  };
  try {
    // One boundary per positive for the bucketed losses (and at δ = 0), else the knees p ± δ.
    const sizes = pipelineSizes(f, backend, m, pcap, bucketed || delta === 0 ? 1 : 2);
    const ne = errors ? errors.size : 0xffffffff;
    const { offs, info, fmeta } = countPositives(sizes, alloc, logits, targets, {
      posEq1,
      delta,
      bucketed,
      ne,
    });
    const ctx: Pipeline = { ...sizes, alloc, info, fmeta };
    const sorted = sortPositives(ctx, compactPositives(ctx, logits, targets, offs, posEq1), errors);
    // The buckets: negatives between consecutive positives (or between the knees p ± δ).
    const bins = binNegatives(ctx, logits, targets, sorted.ps, {
      bucketed,
      bySort,
      posEq1,
      delta,
    });
    const { pd, order } = positiveErrors(ctx, kind, sorted, bins, delta, errorGrad);
    scatterGradient(ctx, logits, sorted, bins, pd, { bucketed, delta, order }, grad);
    lossTotals(ctx, sorted, pd, rankingLoss, sortingLoss);
  } catch (error) {
    rankingLoss.dispose();
    sortingLoss.dispose();
    grad.dispose();
    errorGrad?.dispose();
    throw error;
  } finally {
    for (const t of scratch) t.dispose();
  }
  return { rankingLoss, sortingLoss, grad, errorGrad };
}

/**
 * The autograd op of loss `kind`: outputs `[rankingLoss, sortingLoss]`; backward gives
 * `logits` the stored gradient times the upstream gradient of `rankingLoss`
 * (docs/departures.md, Q10: the sorting output's upstream gradient is not used), `targets` none.
 */
export function rankingOp(
  kind: LossKind,
  options: RankingOpOptions,
): (logits: Tensor, targets: Tensor) => Tensor[] {
  return (logits: Tensor, targets: Tensor) => {
    const wanted = needsGrad([logits]);
    return customOp({
      label: `ranking_ops.${kind}`,
      forward: ([s, y]) => {
        const r = rankingForward(kind, s, y, options);
        const outputs = [r.rankingLoss, r.sortingLoss];
        if (!wanted) {
          r.grad.dispose();
          return { outputs };
        }
        return { outputs, saved: [r.grad] };
      },
      // The tape runs each backward once: the stored gradient is released here, or, on the
      // native backend, scaled in place and handed on (no [M] buffer allocated).
      backward: ([gRank], [grad]) => {
        const scaled = gRank && runsNative(kind, grad.backend) ? scaleInPlace(grad, gRank) : null;
        if (scaled) return [scaled, null];
        const out = gRank ? mul(grad, gRank) : null;
        grad.dispose();
        return [out, null];
      },
    })(logits, targets);
  };
}

/**
 * The aLRP autograd op: outputs `[classificationLoss, localisationLoss]`; backward gives
 * `logits` the stored error-driven gradient times the upstream gradient of the classification
 * loss and `errors` the gradient of the localisation loss (ranks detached) times its upstream.
 */
export function alrpOp(
  options: RankingOpOptions,
): (logits: Tensor, targets: Tensor, errors: Tensor) => Tensor[] {
  return (logits: Tensor, targets: Tensor, errors: Tensor) => {
    const wanted = needsGrad([logits, errors]);
    return customOp({
      label: "ranking_ops.alrp",
      forward: ([s, y, e]) => {
        const r = rankingForward("alrp", s, y, options, e);
        const outputs = [r.rankingLoss, r.sortingLoss];
        if (!wanted) {
          r.grad.dispose();
          r.errorGrad!.dispose();
          return { outputs };
        }
        return { outputs, saved: [r.grad, r.errorGrad!] };
      },
      backward: ([gCls, gLoc], [grad, errorGrad]) => {
        const out = [gCls ? mul(grad, gCls) : null, null, gLoc ? mul(errorGrad, gLoc) : null];
        grad.dispose();
        errorGrad.dispose();
        return out;
      },
    })(logits, targets, errors);
  };
}
