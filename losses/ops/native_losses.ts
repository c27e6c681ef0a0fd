/**
 * The bucketed ranking losses (BRS, BAP) on the native backend: the forward pass runs the fast
 * array functions of `losses/fast` on the tensors' memory, in place of the kernel pipeline of
 * `core.ts` (about 150 launches of CPU twins), and the gradient is written straight into the
 * output tensor, a pooled buffer, so repeated calls neither allocate nor page-fault.
 *
 * The CPU backend keeps the kernel pipeline: its twins are the reference the WebGPU kernels
 * are tested against. Rank & Sort, AP and aLRP have no fast array form (their float64
 * references cost `O(P M)`), so on the native backend they run the pipeline's twins too.
 *
 * Differences from the pipeline, all within the op tests' tolerances: sums are float64 (the
 * pipeline adds bucket logits in fixed point and the rest in float32), and a logit or target
 * that is not finite, or a target above 1, throws a `RangeError` naming the entry (the
 * pipeline cannot check without a readback and returns unspecified values).
 *
 * @module
 */

import type { Backend } from "../../tensor/backend.ts";
import { hostView } from "../../tensor/cpu_backend.ts";
import { empty, type Tensor, tensor } from "../../tensor/tensor.ts";
import {
  fastBucketedApLossInto,
  fastBucketedRankSortLossInto,
  type FastLossValues,
} from "../fast/bucketed_losses.ts";
import type { RankingForward } from "./core.ts";
import type { LossKind } from "./ranking/pipeline.ts";

/**
 * Whether loss `kind` on `backend` runs the fast array functions (bucketed losses on the
 * native backend) rather than the kernel pipeline.
 */
export function runsNative(kind: LossKind, backend: Backend): boolean {
  return backend.name === "native" && (kind === "brs" || kind === "bap");
}

/** The tensor's memory as a typed array of its own length (`f32` or `f64`, checked before). */
function hostArray(t: Tensor): Float32Array | Float64Array {
  return hostView(t) as Float32Array | Float64Array;
}

/**
 * BRS or BAP forward on the native backend: loss values and the gradient for an upstream
 * gradient of 1, computed in place on the tensors' memory. Inputs are checked by the caller
 * (`checkInputs` in `core.ts`): 1-D, same length, dtype and backend, `f32` or `f64`.
 *
 * @param kind `"brs"` or `"bap"`.
 * @param logits Logits `[M]`.
 * @param targets Targets `[M]`.
 * @param options Resolved `delta`; `bucketing`; `capacity`, the most positives (more give NaN
 *   losses and a zero gradient, as the pipeline).
 * @param name The op's name for error messages.
 * @returns Fresh tensors: `rankingLoss`, `sortingLoss` (`[]`) and `grad` (`[M]`).
 */
export function nativeRankingForward(
  kind: "brs" | "bap",
  logits: Tensor,
  targets: Tensor,
  options: { delta: number; bucketing?: "search" | "sort"; capacity: number },
  name: string,
): RankingForward {
  const backend = logits.backend;
  const f = logits.dtype;
  const grad = empty([logits.size], f, backend);
  let values: FastLossValues;
  try {
    const loss = kind === "brs" ? fastBucketedRankSortLossInto : fastBucketedApLossInto;
    values = loss(hostArray(logits), hostArray(targets), hostArray(grad), {
      delta: options.delta,
      bucketing: options.bucketing,
      maxPositives: options.capacity,
    });
  } catch (error) {
    grad.dispose();
    if (error instanceof RangeError || error instanceof TypeError) {
      // In the op's words: "bucketedRankSort: logit 7 is NaN, expected a finite number".
      const Kind = error instanceof RangeError ? RangeError : TypeError;
      const message = error.message.replace(/^Cannot compute \w+: /, "");
      throw new Kind(`${name}: ${message}`, { cause: error });
    }
    throw error;
  }
  const scalar = (v: number) =>
    tensor(f === "f64" ? new Float64Array([v]) : new Float32Array([v]), [], { backend });
  return { rankingLoss: scalar(values.rankingLoss), sortingLoss: scalar(values.sortingLoss), grad };
}

/**
 * Backward of the native ops: scales the stored gradient in place by the upstream scalar
 * `upstream` (nothing to do for 1, the usual case) and hands it on, so no `[M]` buffer is
 * allocated. Returns `null` where the in-place form does not apply (another dtype or backend).
 *
 * @param grad The stored gradient `[M]`, owned by the caller (released with the result).
 * @param upstream The upstream gradient of the ranking output, one element.
 * @returns `grad`, scaled, or `null`.
 */
export function scaleInPlace(grad: Tensor, upstream: Tensor): Tensor | null {
  if (upstream.backend !== grad.backend || upstream.dtype !== grad.dtype || upstream.size !== 1) {
    return null;
  }
  const v = hostArray(upstream)[0];
  if (v !== 1) {
    const g = hostArray(grad);
    for (let i = 0; i < g.length; i++) g[i] *= v;
  }
  return grad;
}
