/**
 * The classification losses ATSS trains with, as a typed table keyed by the
 * loss name: the ranking losses of the rank-based recipe (BRS, RS, BAP, AP;
 * docs/departures.md, R1–R2) and stock ATSS's focal loss. Each entry says
 * whether the head needs a centerness branch and computes the loss of head
 * outputs against host-built targets, on the device with no readback.
 *
 * @module
 */

import { apLoss, bucketedAp, bucketedRankSort, rankSort } from "../losses/ops/mod.ts";
import { binaryCrossEntropyWithLogits } from "../losses/baselines/cross_entropy.ts";
import { sigmoidFocalLoss } from "../losses/baselines/focal_loss.ts";
import { giouLoss } from "../losses/baselines/iou_loss.ts";
import { rankSortWithBox, scoreWeightedMean, scoreWeights } from "../losses/baselines/balance.ts";
import { bboxOverlaps } from "../boxes/box_ops.ts";
import { detach, noGrad } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { full, zeros } from "../tensor/ops/creation.ts";
import { concat } from "../tensor/ops/concat.ts";
import { add, mul } from "../tensor/ops/elementwise.ts";
import { indexSelect } from "../tensor/ops/index.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import { type AtssTargets, centernessTargets } from "./atss_targets.ts";
import type { DetectorLosses } from "./detector.ts";
import type { AtssHeadOutput } from "./heads/atss_head.ts";

/** What an ATSS loss reads: head outputs, targets and the positives gathered on the device. */
export interface AtssLossInputs {
  /** Head outputs (`cls` `[N, A, C]`, `reg` `[N, A, 4]`, `centerness` `[N, A]` when built). */
  out: AtssHeadOutput;
  /** Host-built targets of the batch. */
  targets: AtssTargets;
  /** Classification logits `[N * A, C]`. */
  flatCls: Tensor;
  /** Flat anchor index of each positive `[P]`. */
  posIndex: Tensor;
  /** Decoded boxes of the positives `[P, 4]`. */
  posBoxes: Tensor;
  /** Ground-truth boxes of the positives `[P, 4]`. */
  gtBox: Tensor;
  /** δ of a ranking loss, when the config sets one. */
  delta?: number;
  /** The backend of the tensors. */
  backend: Backend;
}

/** One loss of the table. */
export interface AtssLossEntry {
  /** Whether the head needs a centerness branch for this loss. */
  centerness: boolean;
  /** The loss of a batch. */
  compute(inputs: AtssLossInputs): DetectorLosses;
}

/**
 * The flat target vector `[rows * C]` of a ranking loss: `values[p]` at entry
 * `index[p] * C + label[p]` of each positive `p`, 0 elsewhere. Built on the
 * device by gathering from `[0, value_1, ..., value_P]` with a host-built slot
 * per entry (O(M), no scatter).
 *
 * @example
 * ```ts
 * import { rankingTargetVector } from "./atss_losses.ts";
 * import { tensor } from "../tensor/tensor.ts";
 * import { cpu } from "../tensor/device.ts";
 * const t = rankingTargetVector(tensor([0.7]), Int32Array.of(1), Int32Array.of(0), 2, 2, cpu());
 * console.log(await t.data()); // Float32Array [0, 0, 0.7, 0]
 * ```
 *
 * @param values `[P]` target of each positive (IoU, or 1).
 * @param index `[P]` row of each positive.
 * @param label `[P]` class of each positive.
 * @param rows Rows of the flattened logits.
 * @param numClasses Classes `C`.
 * @param backend Where to build it.
 */
export function rankingTargetVector(
  values: Tensor,
  index: Int32Array,
  label: Int32Array,
  rows: number,
  numClasses: number,
  backend: Backend,
): Tensor {
  const numPositives = index.length;
  const slots = new Int32Array(rows * numClasses);
  index.forEach((i, p) => (slots[i * numClasses + label[p]] = p + 1));
  return indexSelect(
    concat([zeros([1], { backend }), reshape(values, [numPositives])]),
    0,
    tensor(slots, [slots.length], { backend }),
  );
}

/** Flat targets (IoU or 1 at the positives), flat logits and the score-weighted GIoU loss. */
function rankingInputs(inputs: AtssLossInputs, values: Tensor) {
  const { out, targets, flatCls, posIndex, posBoxes, gtBox, backend } = inputs;
  const [flat, numClasses] = flatCls.shape;
  const targetVector = rankingTargetVector(
    values,
    targets.index,
    targets.label,
    flat,
    numClasses,
    backend,
  );
  const logits = reshape(out.cls, [flat * numClasses]);
  const weights = scoreWeights(indexSelect(flatCls, 0, posIndex));
  const box = scoreWeightedMean(giouLoss(posBoxes, gtBox, { reduction: "none" }), weights);
  return { targetVector, logits, box };
}

/**
 * RS or BRS (docs/departures.md, R1): IoU targets, ranking + sorting, box
 * loss self-balanced (δ 0.5 unless the config sets one). ATSS and PAA share
 * this recipe.
 *
 * @example
 * ```ts
 * import { rankSortEntry } from "./atss_losses.ts";
 * import { bucketedRankSort } from "../losses/ops/mod.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(rankSortEntry(bucketedRankSort).centerness, false);
 * ```
 *
 * @param op The ranking op: `rankSort` or `bucketedRankSort`.
 */
export function rankSortEntry(op: typeof rankSort): AtssLossEntry {
  return {
    centerness: false,
    compute(inputs) {
      const { posBoxes, gtBox } = inputs;
      const values = noGrad(() => bboxOverlaps(detach(posBoxes), gtBox, { isAligned: true }));
      const { targetVector, logits, box } = rankingInputs(inputs, values);
      const rs = op(logits, targetVector, { delta: inputs.delta ?? 0.5 });
      return {
        ...rankSortWithBox(rs.rankingLoss, rs.sortingLoss, box),
        numPositives: inputs.targets.index.length,
      };
    },
  };
}

/** The recipe constants of an AP-type entry. */
export interface ApEntryOptions {
  /** Weight of the score-weighted GIoU loss (ATSS 2, PAA 1). */
  boxWeight: number;
  /** δ when the config sets none (ATSS 1, PAA 0.5; docs/departures.md, Q20). */
  delta: number;
}

/**
 * AP or BAP: targets of 1, `L_AP + boxWeight · L_box` with the score-weighted
 * GIoU loss and fixed weights (no self-balance).
 *
 * @example The ATSS and PAA recipes
 * ```ts
 * import { apEntry } from "./atss_losses.ts";
 * import { apLoss, bucketedAp } from "../losses/ops/mod.ts";
 * import assert from "node:assert/strict";
 *
 * const atss = apEntry(bucketedAp, { boxWeight: 2, delta: 1 });
 * const paa = apEntry(apLoss, { boxWeight: 1, delta: 0.5 });
 * assert.equal(atss.centerness || paa.centerness, false);
 * ```
 *
 * @param op The ranking op: `apLoss` or `bucketedAp`.
 * @param options Box weight and default δ.
 */
export function apEntry(op: typeof apLoss, options: ApEntryOptions): AtssLossEntry {
  return {
    centerness: false,
    compute(inputs) {
      const numPositives = inputs.targets.index.length;
      const values = full([numPositives], 1, { backend: inputs.backend });
      const { targetVector, logits, box } = rankingInputs(inputs, values);
      const ap = op(logits, targetVector, { delta: inputs.delta ?? options.delta });
      const weighted = mul(box, options.boxWeight);
      return { total: add(ap.loss, weighted), parts: { ap: ap.loss, box: weighted }, numPositives };
    },
  };
}

/** Stock ATSS: sigmoid focal loss, centerness-weighted GIoU and a centerness BCE. */
const FOCAL: AtssLossEntry = {
  centerness: true,
  compute({ out, targets, flatCls, posIndex, posBoxes, gtBox, backend }) {
    const numClasses = flatCls.shape[1];
    const numPositives = targets.index.length;
    const avg = Math.max(numPositives, 1);
    // Background anchors get label `numClasses`, which the focal loss reads as "no class".
    const labels = new Int32Array(flatCls.shape[0]).fill(numClasses);
    targets.index.forEach((i, p) => (labels[i] = targets.label[p]));
    const cls = sigmoidFocalLoss(flatCls, tensor(labels, [labels.length], { backend }), {
      reduction: "mean",
      avgFactor: avg,
    });
    const ctrTarget = centernessTargets(targets);
    const ctrSum = Math.max(ctrTarget.reduce((s, v) => s + v, 0), 1e-6);
    const ctrT = tensor(ctrTarget, [numPositives], { backend });
    const box = mul(
      giouLoss(posBoxes, gtBox, { weight: ctrT, reduction: "mean", avgFactor: ctrSum }),
      2,
    );
    const ctrLogits = indexSelect(reshape(out.centerness!, [flatCls.shape[0]]), 0, posIndex);
    const centerness = binaryCrossEntropyWithLogits(ctrLogits, ctrT, {
      reduction: "mean",
      avgFactor: avg,
    });
    return {
      total: add(add(cls, box), centerness),
      parts: { cls, box, centerness },
      numPositives,
    };
  },
};

/** The classification losses ATSS can train with. */
export type AtssLoss = "brs" | "rs" | "bap" | "ap" | "focal";

/**
 * The ATSS losses by name.
 *
 * @example
 * ```ts
 * import { ATSS_LOSS_TABLE } from "./atss_losses.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(ATSS_LOSS_TABLE.focal.centerness, true);
 * assert.equal(ATSS_LOSS_TABLE.brs.centerness, false);
 * ```
 */
export const ATSS_LOSS_TABLE: Readonly<Record<AtssLoss, AtssLossEntry>> = {
  brs: rankSortEntry(bucketedRankSort),
  rs: rankSortEntry(rankSort),
  bap: apEntry(bucketedAp, { boxWeight: 2, delta: 1 }),
  ap: apEntry(apLoss, { boxWeight: 2, delta: 1 }),
  focal: FOCAL,
};

/** The classification losses by name, for command lines and configs. */
export const ATSS_LOSSES: readonly AtssLoss[] = Object.keys(ATSS_LOSS_TABLE) as AtssLoss[];

/**
 * The table entry of `name`.
 *
 * @example
 * ```ts
 * import { atssLoss } from "./atss_losses.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(atssLoss("focal").centerness, true);
 * assert.throws(() => atssLoss("hinge"), /unknown loss "hinge"/);
 * ```
 *
 * @throws {RangeError} When `name` is not an ATSS loss.
 */
export function atssLoss(name: string): AtssLossEntry {
  if (!Object.hasOwn(ATSS_LOSS_TABLE, name)) {
    throw new RangeError(`Atss: unknown loss "${name}" (expected ${ATSS_LOSSES.join(", ")})`);
  }
  return ATSS_LOSS_TABLE[name as AtssLoss];
}
