/**
 * PAA's score voting (Kim & Lee, ECCV 2020; mmdetection's
 * `PAAHead.score_voting`), on the host: after NMS, each kept box is replaced
 * by the weighted mean of the candidate boxes of its class that overlap it by
 * IoU > 0.01, with weights `exp(-(1 - IoU)^2 / 0.025) * score`; its score and
 * class stay. The candidates are the boxes NMS saw (those above the score
 * threshold), the kept box among them.
 *
 * @module
 */

import { overlapHost } from "../boxes/iou.ts";
import type { Detections } from "./postprocess.ts";

/** Options of {@linkcode scoreVoting}; the defaults are mmdetection's. */
export interface ScoreVotingOptions {
  /** A candidate votes when its IoU with the kept box is greater than this; default `0.01`. */
  minIou?: number;
  /** `σ` of the weight `exp(-(1 - IoU)^2 / σ)`; default `0.025`. */
  sigma?: number;
}

/**
 * Score voting: each detection of `kept` moved to the weighted mean of the
 * `candidates` of its class that overlap it (IoU as mmdetection's
 * `bbox_overlaps`, in float32 with unions floored at `1e-6`). Scores and
 * classes are unchanged; the result is sorted by descending score (stable, so
 * NMS's order survives ties). A detection with no voter (possible only if it
 * is not among the candidates) keeps its box.
 *
 * @example Two overlapping candidates pull the kept box towards their weighted mean
 * ```ts
 * import { scoreVoting } from "./score_voting.ts";
 * const kept = {
 *   boxes: Float32Array.of(0, 0, 10, 10),
 *   scores: Float32Array.of(0.9),
 *   labels: Int32Array.of(0),
 * };
 * const candidates = {
 *   boxes: Float32Array.of(0, 0, 10, 10, 0, 0, 10, 12, 50, 50, 60, 60, 0, 0, 10, 12),
 *   scores: Float32Array.of(0.9, 0.3, 0.8, 0.7),
 *   labels: Int32Array.of(0, 0, 0, 1), // the far box and the other class do not vote
 * };
 * const voted = scoreVoting(kept, candidates);
 * // IoU 10/12: weight 0.3 * exp(-(1/6)^2 / 0.025) = 0.3 * 0.3292...; y2 = (0.9 * 10 + 0.0988 * 12) / 0.9988
 * console.log(voted.boxes); // Float32Array [0, 0, 10, 10.197...]
 * console.log(voted.scores, voted.labels); // Float32Array [0.9...] Int32Array [0]
 * ```
 *
 * @param kept Detections after NMS (boxes `[n * 4]`, scores, labels).
 * @param candidates The boxes NMS chose from (score above the threshold).
 * @param options IoU floor and `σ`.
 * @returns The voted detections, by descending score.
 * @throws {RangeError} When array lengths disagree.
 */
export function scoreVoting(
  kept: Detections,
  candidates: Detections,
  options: ScoreVotingOptions = {},
): Detections {
  const minIou = options.minIou ?? 0.01;
  const sigma = options.sigma ?? 0.025;
  for (const [name, d] of [["kept", kept], ["candidates", candidates]] as const) {
    const n = d.scores.length;
    if (d.boxes.length !== 4 * n || d.labels.length !== n) {
      throw new RangeError(
        `scoreVoting: ${name} has ${d.boxes.length} coordinates and ${d.labels.length} labels for ${n} scores`,
      );
    }
  }
  const n = kept.scores.length, m = candidates.scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) =>
    kept.scores[b] - kept.scores[a] || a - b
  );
  const boxes = new Float32Array(4 * n);
  const scores = new Float32Array(n);
  const labels = new Int32Array(n);
  const acc = new Float64Array(4);
  order.forEach((i, r) => {
    acc.fill(0);
    let total = 0;
    for (let j = 0; j < m; j++) {
      if (candidates.labels[j] !== kept.labels[i]) continue;
      const iou = overlapHost(kept.boxes, i, candidates.boxes, j, "iou", 1e-6, Math.fround);
      if (!(iou > minIou)) continue;
      const w = Math.exp(-((1 - iou) ** 2) / sigma) * candidates.scores[j];
      for (let k = 0; k < 4; k++) acc[k] += w * candidates.boxes[4 * j + k];
      total += w;
    }
    for (let k = 0; k < 4; k++) {
      boxes[4 * r + k] = total > 0 ? acc[k] / total : kept.boxes[4 * i + k];
    }
    scores[r] = kept.scores[i];
    labels[r] = kept.labels[i];
  });
  return { boxes, scores, labels };
}
