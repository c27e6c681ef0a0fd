/**
 * PAA's two-stage anchor assignment on the host (docs/departures.md, R5):
 *
 * 1. {@linkcode paaCandidates}: every image's anchors assigned by
 *    `maxIouAssign` with mmdetection's PAA thresholds
 *    ({@linkcode PAA_ASSIGN}: positive and negative IoU 0.1, low-quality
 *    matches with a minimum of 0); the positives are the candidates.
 * 2. The detector scores each candidate on the device (`paa_losses.ts`,
 *    `reassignScores`) and reads the scores back once.
 * 3. {@linkcode paaReassignBatch}: `paaReassign` (the GMM of `paa_gmm.ts`)
 *    per image; the surviving candidates are the positives, every other
 *    anchor a negative.
 *
 * @module
 */

import type { Anchors } from "./anchors.ts";
import { type AtssTargets, type BatchPositives, gatherPositives } from "./atss_targets.ts";
import { maxIouAssign, type MaxIouAssignOptions } from "./max_iou_assigner.ts";
import { type GmmOptions, paaReassign, type PaaReassignResult } from "./paa_gmm.ts";

/**
 * mmdetection's PAA first stage (`MaxIoUAssigner(pos_iou_thr=0.1,
 * neg_iou_thr=0.1, min_pos_iou=0)`, whose `match_low_quality` defaults to
 * on): an anchor is a candidate of the box it overlaps most when that IoU is
 * at least 0.1, and each box also claims the anchors of its best IoU, however
 * small. Nothing is ignored.
 */
export const PAA_ASSIGN: Readonly<MaxIouAssignOptions> = Object.freeze({
  posIou: 0.1,
  negIou: 0.1,
  minPosIou: 0,
  lowQuality: true,
});

/** The first-stage positives of a batch (PAA's candidates). */
export type PaaCandidates = BatchPositives;

/**
 * PAA's first stage for every image of a batch: `maxIouAssign` with
 * {@linkcode PAA_ASSIGN}.
 *
 * @example Two anchors overlap the box by at least 0.1; the third does not
 * ```ts
 * import { paaCandidates } from "./paa_targets.ts";
 * const anchors = {
 *   boxes: Float32Array.of(0, 0, 10, 10, 5, 0, 15, 10, 40, 40, 50, 50),
 *   perLevel: [3],
 *   featureSizes: [[1, 3]] as [number, number][],
 *   perLocation: 1,
 * };
 * const c = paaCandidates(anchors, [Float32Array.of(0, 0, 10, 10)], [Int32Array.of(2)]);
 * console.log(Array.from(c.anchorIndex), Array.from(c.label)); // [0, 1] [2, 2]
 * ```
 *
 * @param anchors The anchors of the (padded) batch size.
 * @param boxes Per image `[n * 4]` ground-truth boxes.
 * @param labels Per image `[n]` classes.
 */
export function paaCandidates(
  anchors: Anchors,
  boxes: readonly Float32Array[],
  labels: readonly Int32Array[],
): PaaCandidates {
  return gatherPositives(
    anchors,
    boxes,
    labels,
    (gt) => maxIouAssign(anchors.boxes, gt, PAA_ASSIGN).gtIndex,
  );
}

/** Options of {@linkcode paaReassignBatch}. */
export interface PaaReassignBatchOptions {
  /** Candidates per GT and level that the GMM sees (9). */
  topk: number;
  /** The GMM's options (the rank-based head sets `regCovar` 1e-5, stock mmdetection 1e-6). */
  gmm?: GmmOptions;
}

/** What {@linkcode paaReassignBatch} gives a batch. */
export interface PaaReassignment {
  /** The positives after re-assignment (ascending flat index), as the losses read them. */
  targets: AtssTargets;
  /** `paaReassign`'s result for each image. */
  perImage: PaaReassignResult[];
  /** Host milliseconds spent in `paaReassign` (the GMM fits) for the batch. */
  gmmMs: number;
}

/**
 * PAA's second stage for a batch: `paaReassign` on each image's candidates
 * and their scores; the survivors keep their first-stage GT and class, every
 * other candidate becomes a negative. The scores are float32 (what the
 * device computes), so the GMM runs in scikit-learn's float32 arithmetic.
 *
 * @example One GT: the low scores form the first component; up to its best (0.31) survive
 * ```ts
 * import { paaReassignBatch } from "./paa_targets.ts";
 * const n = 6;
 * const candidates = {
 *   index: Int32Array.from({ length: n }, (_, k) => k), label: new Int32Array(n),
 *   gtBox: new Float32Array(4 * n), anchor: new Float32Array(4 * n), numAnchors: n,
 *   image: new Int32Array(n), anchorIndex: Int32Array.from({ length: n }, (_, k) => k),
 *   gtIndex: new Int32Array(n), imageStart: Int32Array.of(0, n),
 * };
 * const scores = Float32Array.of(0.3, 1.5, 0.32, 1.6, 0.31, 1.4);
 * const r = paaReassignBatch(candidates, scores, [n], { topk: 9 });
 * console.log(Array.from(r.targets.index)); // [0, 4]
 * ```
 *
 * @param candidates The batch's first-stage positives ({@linkcode paaCandidates}).
 * @param scores `[P]` each candidate's score (focal + weighted GIoU).
 * @param perLevel Anchors on each pyramid level (one image).
 * @param options `topk` and the GMM's options.
 * @throws {RangeError} When `scores` has the wrong length or a score is not finite (the head's
 *   outputs diverged), naming the image and anchor.
 */
export function paaReassignBatch(
  candidates: PaaCandidates,
  scores: Float32Array,
  perLevel: readonly number[],
  options: PaaReassignBatchOptions,
): PaaReassignment {
  const p = candidates.index.length;
  if (scores.length !== p) {
    throw new RangeError(`paaReassignBatch: ${scores.length} scores for ${p} candidates`);
  }
  for (let k = 0; k < p; k++) {
    if (!Number.isFinite(scores[k])) {
      throw new RangeError(
        `paaReassignBatch: the score of candidate ${k} (image ${candidates.image[k]}, anchor ${
          candidates.anchorIndex[k]
        }) is ${scores[k]}; the head's outputs are not finite`,
      );
    }
  }
  const images = candidates.imageStart.length - 1;
  const perImage: PaaReassignResult[] = [];
  const kept: number[] = [];
  const started = performance.now();
  for (let i = 0; i < images; i++) {
    const from = candidates.imageStart[i], to = candidates.imageStart[i + 1];
    const result = paaReassign({
      posInds: candidates.anchorIndex.subarray(from, to),
      posGtInds: candidates.gtIndex.subarray(from, to),
      posLosses: scores.slice(from, to),
      numAnchorsPerLevel: perLevel,
      topk: options.topk,
    }, options.gmm);
    perImage.push(result);
    // Candidates are in ascending anchor order within an image: map anchors back to them.
    const survivors = new Set(result.positives);
    for (let k = from; k < to; k++) if (survivors.has(candidates.anchorIndex[k])) kept.push(k);
  }
  const gmmMs = performance.now() - started;
  const gtBox = new Float32Array(4 * kept.length), anchor = new Float32Array(4 * kept.length);
  kept.forEach((k, j) => {
    gtBox.set(candidates.gtBox.subarray(4 * k, 4 * k + 4), 4 * j);
    anchor.set(candidates.anchor.subarray(4 * k, 4 * k + 4), 4 * j);
  });
  return {
    targets: {
      index: Int32Array.from(kept, (k) => candidates.index[k]),
      label: Int32Array.from(kept, (k) => candidates.label[k]),
      gtBox,
      anchor,
      numAnchors: candidates.numAnchors,
    },
    perImage,
    gmmMs,
  };
}
