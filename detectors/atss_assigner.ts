/**
 * The ATSS assigner (Zhang et al., CVPR 2020), on the host: anchors and
 * ground-truth boxes are both known on the CPU before a step, so assignment
 * costs no readback and its result is uploaded with the batch.
 *
 * For each ground truth: take the `topk` anchors closest (centre distance) on
 * every level; their IoUs' mean + standard deviation is the threshold; the
 * candidates at or above it whose centre lies inside the box are positives. An
 * anchor that is positive for several boxes goes to the one it overlaps most.
 *
 * @module
 */

import { boxIouHost } from "../boxes/iou.ts";

/** What the assigner gives each anchor. */
export interface Assignment {
  /** Index of the assigned ground-truth box, or -1 for a negative. */
  gtIndex: Int32Array;
  /** IoU of each anchor with its assigned box (0 for negatives). */
  iou: Float32Array;
  /** Number of positives. */
  numPositives: number;
}

/**
 * Assigns anchors to ground-truth boxes with ATSS.
 *
 * @example One box, one level: the anchor on its centre wins
 * ```ts
 * import { atssAssign } from "./atss_assigner.ts";
 * const anchors = new Float32Array([0, 0, 10, 10, 10, 0, 20, 10, 20, 0, 30, 10]);
 * const result = atssAssign(anchors, [3], new Float32Array([11, 1, 19, 9]), 2);
 * console.log(Array.from(result.gtIndex)); // [-1, 0, -1]
 * ```
 *
 * @param anchors `[A, 4]` anchors, level by level.
 * @param perLevel Anchors on each level (sums to `A`).
 * @param gtBoxes `[G, 4]` ground-truth boxes.
 * @param topk Candidates per level and box (ATSS: 9).
 */
export function atssAssign(
  anchors: Float32Array,
  perLevel: readonly number[],
  gtBoxes: Float32Array,
  topk = 9,
): Assignment {
  const numAnchors = anchors.length / 4, numGt = gtBoxes.length / 4;
  if (perLevel.reduce((a, b) => a + b, 0) !== numAnchors) {
    throw new RangeError(
      `atssAssign: per-level counts sum to ${
        perLevel.reduce((a, b) => a + b, 0)
      }, not ${numAnchors}`,
    );
  }
  const gtIndex = new Int32Array(numAnchors).fill(-1);
  const iou = new Float32Array(numAnchors);
  if (numGt === 0 || numAnchors === 0) return { gtIndex, iou, numPositives: 0 };
  const cx = new Float64Array(numAnchors), cy = new Float64Array(numAnchors);
  for (let a = 0; a < numAnchors; a++) {
    cx[a] = (anchors[4 * a] + anchors[4 * a + 2]) / 2;
    cy[a] = (anchors[4 * a + 1] + anchors[4 * a + 3]) / 2;
  }
  // best[a]: the highest IoU among boxes for which anchor a is a positive.
  const best = new Float64Array(numAnchors).fill(-Infinity);
  for (let g = 0; g < numGt; g++) {
    const x1 = gtBoxes[4 * g],
      y1 = gtBoxes[4 * g + 1],
      x2 = gtBoxes[4 * g + 2],
      y2 = gtBoxes[4 * g + 3];
    const gx = (x1 + x2) / 2, gy = (y1 + y2) / 2;
    const candidates: number[] = [];
    let start = 0;
    for (const count of perLevel) {
      nearestAnchors(cx, cy, gx, gy, start, count, Math.min(topk, count), candidates);
      start += count;
    }
    const overlaps = candidates.map((a) => boxIouHost(anchors, a, gtBoxes, g));
    const mean = overlaps.reduce((s, v) => s + v, 0) / overlaps.length;
    const variance = overlaps.length > 1
      ? overlaps.reduce((s, v) => s + (v - mean) ** 2, 0) / (overlaps.length - 1)
      : 0;
    const threshold = mean + Math.sqrt(variance);
    candidates.forEach((a, c) => {
      const inside = Math.min(cx[a] - x1, cy[a] - y1, x2 - cx[a], y2 - cy[a]) > 0.01;
      if (overlaps[c] >= threshold && inside && overlaps[c] > best[a]) {
        best[a] = overlaps[c];
        gtIndex[a] = g;
        iou[a] = overlaps[c];
      }
    });
  }
  let numPositives = 0;
  for (let a = 0; a < numAnchors; a++) if (gtIndex[a] >= 0) numPositives++;
  return { gtIndex, iou, numPositives };
}

/**
 * Appends to `into` the `k` anchors of `[start, start + count)` whose centres (`cx`, `cy`) lie
 * nearest to `(gx, gy)`, nearest first, ties to the lower index: the order a stable sort by
 * distance gives, kept in a bounded insertion list at `O(count k)`.
 *
 * @example Two of four centres on a line, the tie at distance 1 going to the lower index
 * ```ts
 * import { nearestAnchors } from "./atss_assigner.ts";
 * const cx = new Float64Array([0, 1, 2, 3]), cy = new Float64Array(4);
 * const into: number[] = [];
 * nearestAnchors(cx, cy, 2, 0, 0, 4, 2, into);
 * console.log(into); // [2, 1]
 * ```
 */
export function nearestAnchors(
  cx: Float64Array,
  cy: Float64Array,
  gx: number,
  gy: number,
  start: number,
  count: number,
  k: number,
  into: number[],
): void {
  const dist = new Float64Array(k), index = new Int32Array(k);
  let filled = 0;
  // Squared distances skip the slow Math.hypot for anchors clearly farther than the k-th so far;
  // the margin dwarfs hypot's rounding, so the same anchors come out in the same order.
  let skipAbove = Infinity;
  for (let a = start; a < start + count; a++) {
    const dx = cx[a] - gx, dy = cy[a] - gy;
    if (dx * dx + dy * dy > skipAbove) continue;
    const d = Math.hypot(dx, dy);
    if (filled === k && !(d < dist[k - 1])) continue;
    let at = filled === k ? k - 1 : filled++;
    while (at > 0 && dist[at - 1] > d) {
      dist[at] = dist[at - 1];
      index[at] = index[at - 1];
      at--;
    }
    dist[at] = d;
    index[at] = a;
    if (filled === k) skipAbove = dist[k - 1] * dist[k - 1] * (1 + 1e-9);
  }
  for (let j = 0; j < filled; j++) into.push(index[j]);
}
