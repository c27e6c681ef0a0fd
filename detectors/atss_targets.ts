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
  const numAnchors = anchors.boxes.length / 4;
  const index: number[] = [], label: number[] = [], gtBox: number[] = [], anchor: number[] = [];
  boxes.forEach((gt, image) => {
    const { gtIndex } = atssAssign(anchors.boxes, anchors.perLevel, gt, topk);
    for (let a = 0; a < numAnchors; a++) {
      const g = gtIndex[a];
      if (g < 0) continue;
      index.push(image * numAnchors + a);
      label.push(labels[image][g]);
      for (let k = 0; k < 4; k++) {
        gtBox.push(gt[4 * g + k]);
        anchor.push(anchors.boxes[4 * a + k]);
      }
    }
  });
  return {
    index: Int32Array.from(index),
    label: Int32Array.from(label),
    gtBox: Float32Array.from(gtBox),
    anchor: Float32Array.from(anchor),
    numAnchors,
  };
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
