/**
 * The set losses of the DETR branches of Co-Deformable-DETR (spec §10.7):
 * each decoder layer's (and the two-stage encoder's) logits and boxes against
 * the targets of its queries, given by a one-to-one Hungarian matching or by
 * an auxiliary head's assignment.
 *
 * - `brs` / `rs` (BRS-DETR): the ranking loss (δ 0.5) on the flattened logits
 *   with the IoU of each positive's detached predicted box as its target
 *   (docs/departures.md, Q24), weighted 2; L1 on normalised `cxcywh` (summed
 *   over the 4 coordinates) and GIoU, each summed over the positives, divided
 *   by their number and self-balanced to `2 (L_rank + L_sort)`, skipped where
 *   exactly 0 (Q17); no score weighting (Q18).
 * - `focal` (Co-DETR): sigmoid focal loss (α 0.25, γ 2) × 2, L1 × 5, GIoU × 2,
 *   each divided by the number of positives (at least 1).
 *
 * @module
 */

import { bboxOverlaps, cxcywhToXyxy } from "../../boxes/box_ops.ts";
import { selfBalance } from "../../losses/baselines/balance.ts";
import { sigmoidFocalLoss } from "../../losses/baselines/focal_loss.ts";
import { giouLoss } from "../../losses/baselines/iou_loss.ts";
import { l1Loss } from "../../losses/baselines/regression.ts";
import { bucketedRankSort, rankSort } from "../../losses/ops/mod.ts";
import { detach, noGrad } from "../../tensor/autograd.ts";
import { zeros } from "../../tensor/ops/creation.ts";
import { add, mul } from "../../tensor/ops/elementwise.ts";
import { indexSelect } from "../../tensor/ops/index.ts";
import { reshape } from "../../tensor/ops/shape.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import { rankingTargetVector } from "../atss_losses.ts";
import type { DetrImageMatch, DetrTargets } from "../detr_matcher.ts";

/** The classification losses of the DETR branches. */
export type DetrLoss = "brs" | "rs" | "focal";

/** The losses by name, for configs and command lines. */
export const DETR_LOSSES: readonly DetrLoss[] = ["brs", "rs", "focal"];

/** The positive queries of a batch and their targets. */
export interface DetrSetTargets {
  /** `[P]` flat query index `image * Q + query`, ascending. */
  index: Int32Array;
  /** `[P]` class of each positive. */
  label: Int32Array;
  /** `[P * 4]` its box, normalised `cxcywh`. */
  box: Float32Array;
}

/**
 * The targets of a Hungarian matching: query `queryIndex[k]` of image `b`
 * takes target `targetIndex[k]` of `targets[b]`; `classAgnostic` sets every
 * label to 0 (the two-stage encoder's proposals).
 *
 * @example
 * ```ts
 * import { matchedTargets } from "./detr_losses.ts";
 * const m = [{ queryIndex: Int32Array.of(1), targetIndex: Int32Array.of(0), cost: 0 }];
 * const t = matchedTargets(m, [{ labels: [2], boxes: [0.5, 0.5, 0.1, 0.1] }], 3);
 * console.log(Array.from(t.index), Array.from(t.label)); // [1] [2]
 * ```
 */
export function matchedTargets(
  matches: readonly DetrImageMatch[],
  targets: readonly DetrTargets[],
  numQueries: number,
  classAgnostic = false,
): DetrSetTargets {
  const total = matches.reduce((s, m) => s + m.queryIndex.length, 0);
  const index = new Int32Array(total), label = new Int32Array(total);
  const box = new Float32Array(total * 4);
  let p = 0;
  matches.forEach((m, b) => {
    m.queryIndex.forEach((q, k) => {
      const t = m.targetIndex[k];
      index[p] = b * numQueries + q;
      label[p] = classAgnostic ? 0 : targets[b].labels[t];
      for (let c = 0; c < 4; c++) box[4 * p + c] = targets[b].boxes[4 * t + c];
      p++;
    });
  });
  return { index, label, box };
}

/** The loss of one set of predictions: the total and its named parts. */
export interface DetrSetLoss {
  /** Sum of the parts. */
  total: Tensor;
  /** `rank`, `sort`, `l1`, `giou` (ranking losses) or `cls`, `l1`, `giou` (focal). */
  parts: Record<string, Tensor>;
}

/**
 * The loss of one decoder layer's (or the encoder's) predictions.
 *
 * @example One image, two queries, one positive
 * ```ts
 * import { detrSetLoss } from "./detr_losses.ts";
 * import { tensor } from "../../tensor/tensor.ts";
 * import { cpu } from "../../tensor/device.ts";
 * import assert from "node:assert/strict";
 *
 * const backend = cpu();
 * const logits = tensor([1, -1], [1, 2, 1], { backend });
 * const boxes = tensor([0.5, 0.5, 0.2, 0.2, 0.3, 0.3, 0.1, 0.1], [1, 2, 4], { backend });
 * const targets = { index: Int32Array.of(0), label: Int32Array.of(0), box: Float32Array.of(0.5, 0.5, 0.2, 0.2) };
 * const { parts } = detrSetLoss(logits, boxes, targets, { loss: "brs" });
 * // The positive outranks the negative: no ranking error, and the box is exact (SB skipped).
 * assert.equal((await parts.rank.data())[0], 0);
 * assert.equal((await parts.giou.data())[0], 0);
 * ```
 *
 * @param logits `[N, Q, K]` class logits.
 * @param boxes `[N, Q, 4]` predicted boxes, normalised `cxcywh` (after the sigmoid).
 * @param targets The positives.
 * @param options The loss, δ of a ranking loss (0.5) and a weight on the whole (1).
 */
export function detrSetLoss(
  logits: Tensor,
  boxes: Tensor,
  targets: DetrSetTargets,
  options: { loss: DetrLoss; delta?: number; weight?: number },
): DetrSetLoss {
  const [n, q, k] = logits.shape;
  if (logits.rank !== 3 || boxes.shape.join() !== [n, q, 4].join()) {
    throw new TypeError(
      `detrSetLoss: logits [${logits.shape.join(", ")}] and boxes [${
        boxes.shape.join(", ")
      }] must be [N, Q, K] and [N, Q, 4]`,
    );
  }
  const backend = logits.backend;
  const p = targets.index.length;
  const flatBoxes = reshape(boxes, [n * q, 4]);
  const posIndex = tensor(targets.index, [p], { backend });
  const posBoxes = p > 0 ? indexSelect(flatBoxes, 0, posIndex) : undefined;
  const gtBoxes = tensor(targets.box, [p, 4], { backend });
  const avgFactor = Math.max(p, 1);
  const boxLosses = () => {
    if (!posBoxes) return { l1: zeros([], { backend }), giou: zeros([], { backend }) };
    const l1 = l1Loss(posBoxes, gtBoxes, { reduction: "mean", avgFactor });
    const giou = giouLoss(cxcywhToXyxy(posBoxes), cxcywhToXyxy(gtBoxes), {
      reduction: "mean",
      avgFactor,
    });
    return { l1, giou };
  };
  const weight = options.weight ?? 1;
  const scale = (parts: Record<string, Tensor>): DetrSetLoss => {
    const scaled = weight === 1
      ? parts
      : Object.fromEntries(Object.entries(parts).map(([key, t]) => [key, mul(t, weight)]));
    const total = Object.values(scaled).reduce((a, b) => add(a, b));
    return { total, parts: scaled };
  };
  if (options.loss === "focal") {
    const labels = new Int32Array(n * q).fill(k);
    targets.index.forEach((i, j) => (labels[i] = targets.label[j]));
    const cls = sigmoidFocalLoss(
      reshape(logits, [n * q, k]),
      tensor(labels, [labels.length], { backend }),
      { reduction: "mean", avgFactor },
    );
    const { l1, giou } = boxLosses();
    return scale({ cls: mul(cls, 2), l1: mul(l1, 5), giou: mul(giou, 2) });
  }
  const op = options.loss === "brs" ? bucketedRankSort : rankSort;
  const values = posBoxes
    ? noGrad(() =>
      bboxOverlaps(cxcywhToXyxy(detach(posBoxes)), cxcywhToXyxy(gtBoxes), { isAligned: true })
    )
    : zeros([0], { backend });
  const targetVector = rankingTargetVector(values, targets.index, targets.label, n * q, k, backend);
  const rs = op(reshape(logits, [n * q * k]), targetVector, { delta: options.delta ?? 0.5 });
  const rank = mul(rs.rankingLoss, 2), sort = mul(rs.sortingLoss, 2);
  const reference = add(rank, sort);
  const { l1, giou } = boxLosses();
  return scale({
    rank,
    sort,
    l1: selfBalance(l1, reference, { zeroGuard: true }),
    giou: selfBalance(giou, reference, { zeroGuard: true }),
  });
}
