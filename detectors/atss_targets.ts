/**
 * The targets ATSS trains on, built on the host: each image's anchors
 * assigned by the ATSS assigner, and stock ATSS's centerness targets.
 *
 * @module
 */

import type { Anchors } from "./anchors.ts";
import { atssAssign } from "./atss_assigner.ts";

/** The targets ATSS gives one batch, built on the host. */
export interface AtssTargets {
  /** Flat index `image * A + anchor` of each positive. */
  index: Int32Array;
  /** Class of each positive. */
  label: Int32Array;
  /** Ground-truth box of each positive `[P, 4]`. */
  gtBox: Float32Array;
  /** Anchor of each positive `[P, 4]`. */
  anchor: Float32Array;
  /** Anchors per image. */
  numAnchors: number;
}

/**
 * The positives of a batch, in image order and, within an image, in
 * ascending anchor order, with where each came from. Its {@linkcode AtssTargets}
 * fields are what the losses read.
 */
export interface BatchPositives extends AtssTargets {
  /** Image of each positive. */
  image: Int32Array;
  /** Anchor index of each positive within its image. */
  anchorIndex: Int32Array;
  /** Ground-truth index of each positive within its image. */
  gtIndex: Int32Array;
  /** Where each image's positives start (length images + 1). */
  imageStart: Int32Array;
}

/**
 * Gathers the positives of a batch from a per-image assignment: `assign`
 * gives each anchor of an image its GT index (negative: not a positive).
 *
 * @example One image, the second anchor assigned to GT 0
 * ```ts
 * import { gatherPositives } from "./atss_targets.ts";
 * const anchors = {
 *   boxes: Float32Array.of(0, 0, 4, 4, 0, 0, 8, 8), perLevel: [2],
 *   featureSizes: [[1, 2]] as [number, number][], perLocation: 1,
 * };
 * const p = gatherPositives(anchors, [Float32Array.of(0, 0, 8, 8)], [Int32Array.of(3)], () => [-1, 0]);
 * console.log(Array.from(p.index), Array.from(p.label), Array.from(p.anchor)); // [1] [3] [0, 0, 8, 8]
 * ```
 *
 * @param anchors The anchors of the (padded) batch size.
 * @param boxes Per image `[n * 4]` ground-truth boxes.
 * @param labels Per image `[n]` classes.
 * @param assign The GT index of each anchor of an image, given its boxes.
 */
export function gatherPositives(
  anchors: Anchors,
  boxes: readonly Float32Array[],
  labels: readonly Int32Array[],
  assign: (gt: Float32Array) => ArrayLike<number>,
): BatchPositives {
  const numAnchors = anchors.boxes.length / 4;
  const index: number[] = [], label: number[] = [], gtBox: number[] = [], anchor: number[] = [];
  const image: number[] = [], anchorIndex: number[] = [], gtIndex: number[] = [];
  const imageStart = [0];
  boxes.forEach((gt, i) => {
    const assigned = assign(gt);
    for (let a = 0; a < numAnchors; a++) {
      const g = assigned[a];
      if (g < 0) continue;
      index.push(i * numAnchors + a);
      label.push(labels[i][g]);
      image.push(i);
      anchorIndex.push(a);
      gtIndex.push(g);
      for (let k = 0; k < 4; k++) {
        gtBox.push(gt[4 * g + k]);
        anchor.push(anchors.boxes[4 * a + k]);
      }
    }
    imageStart.push(index.length);
  });
  return {
    index: Int32Array.from(index),
    label: Int32Array.from(label),
    gtBox: Float32Array.from(gtBox),
    anchor: Float32Array.from(anchor),
    numAnchors,
    image: Int32Array.from(image),
    anchorIndex: Int32Array.from(anchorIndex),
    gtIndex: Int32Array.from(gtIndex),
    imageStart: Int32Array.from(imageStart),
  };
}

/**
 * Assigns the anchors of every image of a batch with ATSS.
 *
 * @param anchors The anchors of the (padded) batch size.
 * @param boxes Per image `[n, 4]` ground-truth boxes.
 * @param labels Per image `[n]` classes.
 * @param topk ATSS candidates per level.
 */
export function assignBatch(
  anchors: Anchors,
  boxes: readonly Float32Array[],
  labels: readonly Int32Array[],
  topk: number,
): AtssTargets {
  return gatherPositives(
    anchors,
    boxes,
    labels,
    (gt) => atssAssign(anchors.boxes, anchors.perLevel, gt, topk).gtIndex,
  );
}

/** Centerness of each positive's anchor centre inside its box (stock ATSS's target). */
export function centernessTargets(targets: AtssTargets): Float32Array {
  const n = targets.index.length;
  const out = new Float32Array(n);
  for (let p = 0; p < n; p++) {
    const a = targets.anchor.subarray(4 * p, 4 * p + 4),
      g = targets.gtBox.subarray(4 * p, 4 * p + 4);
    const cx = (a[0] + a[2]) / 2, cy = (a[1] + a[3]) / 2;
    const l = cx - g[0], t = cy - g[1], r = g[2] - cx, b = g[3] - cy;
    out[p] = Math.sqrt(
      (Math.min(l, r) / Math.max(l, r)) * (Math.min(t, b) / Math.max(t, b)),
    );
  }
  return out;
}
