/**
 * Deformable-DETR's Hungarian matcher on the host: the matching cost of every
 * query against every target (focal-style class cost, L1 on normalised
 * `[cx, cy, w, h]`, minus GIoU) and the one-to-one assignment of each image's
 * targets to its queries by {@linkcode hungarian}. The decoder's outputs are
 * read back once per step and matched here in float64.
 *
 * The recipe is Deformable-DETR's `HungarianMatcher` (`models/matcher.py`):
 * with `p = sigmoid(logit)`,
 *
 * ```text
 * cost_class = alpha (1 - p)^gamma (-log(p + 1e-8)) - (1 - alpha) p^gamma (-log(1 - p + 1e-8))
 * cost_bbox  = |cx - cx'| + |cy - cy'| + |w - w'| + |h - h'|
 * cost_giou  = -GIoU(xyxy, xyxy')
 * C          = bboxWeight cost_bbox + classWeight cost_class + giouWeight cost_giou
 * ```
 *
 * at the target's label. Weights: {@linkcode DEFORMABLE_DETR_MATCH} (class 2,
 * L1 5, GIoU 2) or {@linkcode BRS_DETR_MATCH} (class 4; spec §10.7).
 *
 * @module
 */

import { cxcywhToXyxyHost } from "../boxes/box_ops.ts";
import { NO_FLOOR, overlapHost } from "../boxes/iou.ts";
import { sigmoidHost } from "../losses/baselines/cross_entropy.ts";
import { hungarian } from "./hungarian.ts";

/** The decoder's outputs for a batch of `B` images, `Q` queries each, `K` classes. */
export interface DetrPredictions {
  /** `[B * Q * K]` raw class logits (sigmoid, not softmax), image by image, query by query. */
  logits: ArrayLike<number>;
  /** `[B * Q * 4]` predicted boxes, normalised `[cx, cy, w, h]`. */
  boxes: ArrayLike<number>;
  /** Queries per image, `Q`. */
  numQueries: number;
  /** Classes, `K`. */
  numClasses: number;
}

/** One image's ground truth. */
export interface DetrTargets {
  /** `[T]` class of each target, integers in `[0, K)`. */
  labels: ArrayLike<number>;
  /** `[T * 4]` target boxes, normalised `[cx, cy, w, h]`. */
  boxes: ArrayLike<number>;
}

/** Weights and focal parameters of the matching cost. */
export interface DetrMatchOptions {
  /** Weight of the class cost (Deformable-DETR 2, BRS-DETR 4). */
  classWeight?: number;
  /** Weight of the L1 box cost (5). */
  bboxWeight?: number;
  /** Weight of the GIoU cost (2). */
  giouWeight?: number;
  /** Focal alpha (0.25). */
  alpha?: number;
  /** Focal gamma (2). */
  gamma?: number;
}

/** Deformable-DETR's matcher: class 2, L1 5, GIoU 2, alpha 0.25, gamma 2. */
export const DEFORMABLE_DETR_MATCH: Readonly<Required<DetrMatchOptions>> = Object.freeze({
  classWeight: 2,
  bboxWeight: 5,
  giouWeight: 2,
  alpha: 0.25,
  gamma: 2,
});

/** BRS-DETR's matcher (spec §10.7): the class cost weighs 4, the rest as Deformable-DETR. */
export const BRS_DETR_MATCH: Readonly<Required<DetrMatchOptions>> = Object.freeze({
  ...DEFORMABLE_DETR_MATCH,
  classWeight: 4,
});

/**
 * What {@linkcode detrMatchCost} returns: every query of the batch against
 * every target of the batch (`T = Σ T_b` columns, images' targets in order),
 * as Deformable-DETR builds it before it cuts out each image's block.
 */
export interface DetrMatchCost {
  /** `[B]` targets per image, `T_b`. */
  sizes: Int32Array;
  /** `[B * Q * T]` focal-style class cost, row-major. */
  costClass: Float64Array;
  /** `[B * Q * T]` L1 distance of the `[cx, cy, w, h]` vectors. */
  costBbox: Float64Array;
  /** `[B * Q * T]` minus the GIoU of the `xyxy` boxes. */
  costGiou: Float64Array;
  /** `[B * Q * T]` the weighted sum `C`. */
  total: Float64Array;
}

/** One image's matching: query `queryIndex[k]` takes target `targetIndex[k]`. */
export interface DetrImageMatch {
  /** `[T_b]` matched queries, ascending. */
  queryIndex: Int32Array;
  /** `[T_b]` the target of each matched query (index within the image). */
  targetIndex: Int32Array;
  /** Sum of `C` over the pairs. */
  cost: number;
}

/**
 * The full matching cost of a batch: every query against every target.
 *
 * @example Two queries, one target
 * ```ts
 * import { detrMatchCost } from "./detr_matcher.ts";
 * import assert from "node:assert/strict";
 *
 * const pred = {
 *   logits: [2, -1, -2, 3], // [1 image * 2 queries * 2 classes]
 *   boxes: [0.5, 0.5, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1], // [1 * 2 * 4] cxcywh
 *   numQueries: 2,
 *   numClasses: 2,
 * };
 * const c = detrMatchCost(pred, [{ labels: [0], boxes: [0.5, 0.5, 0.2, 0.2] }]);
 * const round = (a: Float64Array) => Array.from(a, (v) => Math.round(v * 1e4) / 1e4);
 * assert.deepEqual(round(c.costBbox), [0, 1]); // L1 of the cxcywh vectors
 * assert.deepEqual(round(c.costGiou), [-1, 0.8347]); // -(0 - (0.3025 - 0.05) / 0.3025)
 * assert.ok(c.costClass[0] < c.costClass[1]); // logit 2 vs -2 for class 0
 * ```
 *
 * @param pred The decoder's logits and boxes.
 * @param targets `[B]` each image's labels and boxes.
 * @param options Weights; {@linkcode DEFORMABLE_DETR_MATCH} by default.
 * @returns The cost terms and their weighted sum, `[B * Q, T]` each.
 * @throws {TypeError} When an array's length does not fit `B`, `Q`, `K`, `T_b`.
 * @throws {RangeError} On a NaN logit, a non-finite box, a box of negative
 *   width or height, or a label outside `[0, K)`.
 */
export function detrMatchCost(
  pred: DetrPredictions,
  targets: readonly DetrTargets[],
  options: DetrMatchOptions = {},
): DetrMatchCost {
  const batch = prepare("detrMatchCost", pred, targets, options);
  const rows = targets.length * pred.numQueries, cols = batch.targetBoxes.length / 4;
  const out = {
    sizes: Int32Array.from(targets, (t) => t.labels.length),
    costClass: new Float64Array(rows * cols),
    costBbox: new Float64Array(rows * cols),
    costGiou: new Float64Array(rows * cols),
    total: new Float64Array(rows * cols),
  };
  fillBlock(batch, 0, rows, 0, cols, out);
  return out;
}

/**
 * Matches each image's targets one-to-one to its queries at the least total
 * cost `C` (Deformable-DETR's `HungarianMatcher.forward`). Only each image's
 * own `[Q, T_b]` block is computed. An image without targets gets empty
 * index lists.
 *
 * @example Two queries, one target: the query on the target's box wins
 * ```ts
 * import { BRS_DETR_MATCH, detrMatch } from "./detr_matcher.ts";
 * import assert from "node:assert/strict";
 *
 * const pred = {
 *   logits: Float32Array.of(-1, -1), // [1 image * 2 queries * 1 class]
 *   boxes: Float32Array.of(0.2, 0.2, 0.1, 0.1, 0.5, 0.5, 0.2, 0.2),
 *   numQueries: 2,
 *   numClasses: 1,
 * };
 * const [m] = detrMatch(pred, [{ labels: [0], boxes: [0.5, 0.5, 0.2, 0.2] }], BRS_DETR_MATCH);
 * assert.deepEqual(Array.from(m.queryIndex), [1]);
 * assert.deepEqual(Array.from(m.targetIndex), [0]);
 * ```
 *
 * @param pred The decoder's logits and boxes.
 * @param targets `[B]` each image's labels and boxes.
 * @param options Weights; {@linkcode DEFORMABLE_DETR_MATCH} by default.
 * @returns `[B]` each image's matched queries and targets.
 * @throws {RangeError} When an image has more targets than queries, and as
 *   {@linkcode detrMatchCost}.
 */
export function detrMatch(
  pred: DetrPredictions,
  targets: readonly DetrTargets[],
  options: DetrMatchOptions = {},
): DetrImageMatch[] {
  const batch = prepare("detrMatch", pred, targets, options);
  const q = pred.numQueries;
  targets.forEach((t, b) => {
    if (t.labels.length > q) {
      throw new RangeError(
        `detrMatch: image ${b} has ${t.labels.length} targets but only ${q} queries ` +
          "(each target needs a query of its own)",
      );
    }
  });
  let first = 0;
  return targets.map((t, b) => {
    const size = t.labels.length;
    const block = new Float64Array(q * size);
    fillBlock(batch, b * q, (b + 1) * q, first, first + size, { total: block });
    first += size;
    let match;
    try {
      match = hungarian(block, q, size);
    } catch (e) {
      throw new RangeError(`detrMatch: image ${b}: ${(e as Error).message}`, { cause: e });
    }
    let cost = 0;
    for (let k = 0; k < match.rows.length; k++) cost += block[match.rows[k] * size + match.cols[k]];
    return { queryIndex: match.rows, targetIndex: match.cols, cost };
  });
}

/** Checked inputs, boxes converted to `xyxy`, targets concatenated. */
interface Batch {
  pred: DetrPredictions;
  predBoxes: Float64Array;
  predXyxy: Float64Array;
  targetBoxes: Float64Array;
  targetXyxy: Float64Array;
  labels: Int32Array;
  options: Required<DetrMatchOptions>;
}

function prepare(
  op: string,
  pred: DetrPredictions,
  targets: readonly DetrTargets[],
  options: DetrMatchOptions,
): Batch {
  const { numQueries: q, numClasses: k } = pred, b = targets.length;
  for (const [name, v] of [["numQueries", q], ["numClasses", k]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new TypeError(`${op}: ${name} must be a positive integer, got ${v}`);
    }
  }
  if (pred.logits.length !== b * q * k) {
    throw new TypeError(
      `${op}: logits have ${pred.logits.length} entries, but ${b} images x ${q} queries x ${k} ` +
        `classes need ${b * q * k}`,
    );
  }
  if (pred.boxes.length !== b * q * 4) {
    throw new TypeError(
      `${op}: boxes have ${pred.boxes.length} entries, but ${b} images x ${q} queries need ${
        b * q * 4
      }`,
    );
  }
  for (let i = 0; i < pred.logits.length; i++) {
    if (Number.isNaN(pred.logits[i])) {
      const query = Math.floor(i / k);
      throw new RangeError(
        `${op}: the logit of class ${i % k} of query ${query % q} in image ${
          Math.floor(query / q)
        } is NaN`,
      );
    }
  }
  checkBoxes(op, pred.boxes, (i) => `predicted box ${i % q} of image ${Math.floor(i / q)}`);
  const total = targets.reduce((n, t) => n + t.labels.length, 0);
  const labels = new Int32Array(total), targetBoxes = new Float64Array(4 * total);
  let first = 0;
  targets.forEach((t, img) => {
    const size = t.labels.length;
    if (t.boxes.length !== 4 * size) {
      throw new TypeError(
        `${op}: image ${img} has ${size} labels but ${t.boxes.length} box coordinates`,
      );
    }
    for (let j = 0; j < size; j++) {
      const label = t.labels[j];
      if (!Number.isInteger(label) || label < 0 || label >= k) {
        throw new RangeError(
          `${op}: label ${label} of target ${j} in image ${img} is not in [0, ${k})`,
        );
      }
      labels[first + j] = label;
    }
    checkBoxes(op, t.boxes, (j) => `target box ${j} of image ${img}`);
    targetBoxes.set(Array.from(t.boxes), 4 * first);
    first += size;
  });
  return {
    pred,
    predBoxes: Float64Array.from(pred.boxes),
    predXyxy: cxcywhToXyxyHost(pred.boxes),
    targetBoxes,
    targetXyxy: cxcywhToXyxyHost(targetBoxes),
    labels,
    options: { ...DEFORMABLE_DETR_MATCH, ...options },
  };
}

/** Boxes must be finite with `w, h >= 0` (GIoU needs `x2 >= x1`, `y2 >= y1`). */
function checkBoxes(op: string, boxes: ArrayLike<number>, name: (i: number) => string): void {
  for (let i = 0; i < boxes.length / 4; i++) {
    for (let c = 0; c < 4; c++) {
      const v = boxes[4 * i + c];
      if (!Number.isFinite(v)) throw new RangeError(`${op}: ${name(i)} has coordinate ${c} = ${v}`);
      if (c >= 2 && v < 0) {
        throw new RangeError(`${op}: ${name(i)} has negative ${c === 2 ? "width" : "height"} ${v}`);
      }
    }
  }
}

/**
 * Fills rows `[r0, r1)` (batch queries) by columns `[c0, c1)` (batch targets)
 * of the cost terms, row-major over the block. The class cost of each
 * (query, class) pair is computed once, when a column first needs it.
 */
function fillBlock(
  batch: Batch,
  r0: number,
  r1: number,
  c0: number,
  c1: number,
  out: Partial<Omit<DetrMatchCost, "sizes">> & { total: Float64Array },
): void {
  const { pred, predBoxes, predXyxy, targetBoxes, targetXyxy, labels } = batch;
  const { classWeight, bboxWeight, giouWeight, alpha, gamma } = batch.options;
  const k = pred.numClasses, width = c1 - c0;
  const classCost = new Float64Array(k), stamp = new Int32Array(k).fill(-1);
  const cls = new Float64Array(width), l1 = new Float64Array(width), giou = new Float64Array(width);
  for (let r = r0; r < r1; r++) {
    for (let c = c0; c < c1; c++) {
      const label = labels[c];
      if (stamp[label] !== r) {
        stamp[label] = r;
        classCost[label] = focalClassCost(pred.logits[r * k + label], alpha, gamma);
      }
      cls[c - c0] = classCost[label];
    }
    for (let c = c0; c < c1; c++) {
      let sum = 0;
      for (let d = 0; d < 4; d++) sum += Math.abs(predBoxes[4 * r + d] - targetBoxes[4 * c + d]);
      l1[c - c0] = sum;
    }
    for (let c = c0; c < c1; c++) {
      giou[c - c0] = -overlapHost(predXyxy, r, targetXyxy, c, "giou", NO_FLOOR);
    }
    const row = (r - r0) * width;
    for (let j = 0; j < width; j++) {
      out.total[row + j] = bboxWeight * l1[j] + classWeight * cls[j] + giouWeight * giou[j];
    }
    out.costClass?.set(cls, row);
    out.costBbox?.set(l1, row);
    out.costGiou?.set(giou, row);
  }
}

/** `pos - neg` of Deformable-DETR's class cost at one logit (`+ 1e-8` inside the logs). */
function focalClassCost(logit: number, alpha: number, gamma: number): number {
  const p = sigmoidHost(logit);
  const neg = (1 - alpha) * p ** gamma * -Math.log(1 - p + 1e-8);
  const pos = alpha * (1 - p) ** gamma * -Math.log(p + 1e-8);
  return pos - neg;
}
