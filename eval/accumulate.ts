/**
 * Accumulation shared by COCO AP/AR and LVIS AP/AR: per category, area range
 * and score-ordered detection sequence, the cumulative precision and recall at
 * every IoU threshold, made non-increasing from the right and read at the 101
 * recall thresholds (pycocotools' `accumulate()`, and lvis-api's, which is the
 * same with one sequence per category).
 *
 * Contract of {@linkcode accumulateCurves}: with `M` sequences per category,
 * `precision` and `scores` are `[T][R][K][A][M]` and `recall` is `[T][K][A][M]`
 * (C order); entries stay `-1` for a category without cells or an area range
 * without non-ignored ground truth.
 *
 * @module
 */

import type { Matches } from "./coco_match.ts";
import { A_N, COCO_RECALL_THRESHOLDS, R_N, T_N } from "./params.ts";
import type { PreparedCocoEval } from "./prepare.ts";

const EPS = 2.220446049250313e-16; // numpy.spacing(1)
const RECALL_THRESHOLDS = Float64Array.from(COCO_RECALL_THRESHOLDS);

/** What {@linkcode accumulateCurves} fills. */
export interface Curves {
  /** Interpolated precision, `[T][R][K][A][M]`; `-1` where not evaluated. */
  precision: Float64Array;
  /** Score at which each precision entry is reached, same layout; `0` past the last recall. */
  scores: Float64Array;
  /** Maximum recall, `[T][K][A][M]`; `-1` where not evaluated. */
  recall: Float64Array;
}

/**
 * Cumulative recall and precision (`tp / (tp + fp + eps)`) of a score-ordered
 * sequence at every threshold, into `rc` and `pr` laid out `[T][nd]`.
 */
function runningCurves(
  state: Uint8Array,
  seq: Int32Array,
  a: number,
  npig: number,
  rc: Float64Array,
  pr: Float64Array,
  tp: Int32Array,
  fp: Int32Array,
): void {
  const nd = seq.length;
  tp.fill(0);
  fp.fill(0);
  for (let j = 0; j < nd; j++) {
    const row = (seq[j] * A_N + a) * T_N;
    for (let t = 0; t < T_N; t++) {
      const st = state[row + t];
      if (st === 1) tp[t]++;
      else if (st === 0) fp[t]++;
      rc[t * nd + j] = tp[t] / npig;
      pr[t * nd + j] = tp[t] / (fp[t] + tp[t] + EPS);
    }
  }
}

/**
 * Precision envelope (running maximum from the right) and its value at the
 * first position reaching each recall threshold (0 past the last recall),
 * written `stride` apart from `out0`, with the score there.
 */
function interpolate(
  rc: Float64Array,
  pr: Float64Array,
  off: number,
  nd: number,
  seq: Int32Array,
  detScore: Float64Array,
  out: Curves,
  out0: number,
  stride: number,
): void {
  for (let j = nd - 1; j > 0; j--) {
    if (pr[off + j] > pr[off + j - 1]) pr[off + j - 1] = pr[off + j];
  }
  let j = 0;
  for (let r = 0; r < R_N; r++) {
    while (j < nd && rc[off + j] < RECALL_THRESHOLDS[r]) j++;
    const o = out0 + r * stride;
    out.precision[o] = j < nd ? pr[off + j] : 0;
    out.scores[o] = j < nd ? detScore[seq[j]] : 0;
  }
}

/**
 * Precision, scores and recall per (threshold, category, area range,
 * sequence) from matches at the {@linkcode T_N} COCO IoU thresholds.
 *
 * @example One category, one sequence (LVIS' layout, `M = 1`)
 * ```ts
 * import { accumulateCurves } from "./accumulate.ts";
 * import { matchAll } from "./coco_match.ts";
 * import { COCO_IOU_THRESHOLDS } from "./params.ts";
 * import { categorySequence, prepareCocoEval } from "./prepare.ts";
 * import assert from "node:assert/strict";
 *
 * const p = prepareCocoEval({
 *   images: [{ id: 1, width: 40, height: 40, file_name: "a.jpg" }],
 *   categories: [{ id: 1, name: "a" }],
 *   annotations: [{ id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 5, 5], area: 25, iscrowd: 0 }],
 * }, [{ image_id: 1, category_id: 1, bbox: [0, 0, 5, 5], score: 1 }]);
 * const c = accumulateCurves(p, matchAll(p, COCO_IOU_THRESHOLDS), 1, (k) => [categorySequence(p, k)]);
 * assert.equal(c.recall[0], 1); // t = 0, k = 0, area all
 * assert.equal(c.recall[3], -1); // area large: no ground truth there
 * ```
 *
 * @param p The prepared evaluation.
 * @param mt Its matches at the COCO IoU thresholds.
 * @param M Sequences per category (COCO: 3 maxDets; LVIS: 1).
 * @param sequencesOf The `M` score-ordered sequences of category `k`.
 * @returns The filled arrays.
 */
export function accumulateCurves(
  p: PreparedCocoEval,
  mt: Matches,
  M: number,
  sequencesOf: (k: number) => Int32Array[],
): Curves {
  const K = p.categoryIds.length;
  const out: Curves = {
    precision: new Float64Array(T_N * R_N * K * A_N * M).fill(-1),
    scores: new Float64Array(T_N * R_N * K * A_N * M).fill(-1),
    recall: new Float64Array(T_N * K * A_N * M).fill(-1),
  };
  // Running recall and precision of the T thresholds, `[T][nd]`, for one (k, m, a).
  let maxNd = 0;
  for (let k = 0; k < K; k++) {
    maxNd = Math.max(maxNd, p.cellDet[p.cellStart[k + 1]] - p.cellDet[p.cellStart[k]]);
  }
  const rc = new Float64Array(T_N * maxNd), pr = new Float64Array(T_N * maxNd);
  const tp = new Int32Array(T_N), fp = new Int32Array(T_N);
  for (let k = 0; k < K; k++) {
    if (p.cellStart[k] === p.cellStart[k + 1]) continue;
    const seqs = sequencesOf(k);
    for (let m = 0; m < M; m++) {
      const seq = seqs[m];
      const nd = seq.length;
      for (let a = 0; a < A_N; a++) {
        const npig = mt.npig[k * A_N + a];
        if (npig === 0) continue;
        runningCurves(mt.state, seq, a, npig, rc, pr, tp, fp);
        for (let t = 0; t < T_N; t++) {
          const off = t * nd;
          out.recall[((t * K + k) * A_N + a) * M + m] = nd ? rc[off + nd - 1] : 0;
          interpolate(
            rc,
            pr,
            off,
            nd,
            seq,
            p.detScore,
            out,
            (t * R_N * K + k) * A_N * M + a * M + m,
            K * A_N * M,
          );
        }
      }
    }
  }
  return out;
}
