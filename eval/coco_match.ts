/**
 * Per-image matching of detections to ground truth, the body of pycocotools'
 * `COCOeval.evaluateImg` (and of lvis-api's `LVISEval.evaluate_img`), run over
 * every cell of a {@linkcode PreparedCocoEval}.
 *
 * Contract of {@linkcode matchAll}: for each cell, area range and IoU
 * threshold, detections (by descending score) greedily take the unmatched
 * ground truth of highest IoU at or above the threshold, non-ignored ground
 * truth first; crowd ground truth can be taken again. Each detection ends up a
 * true positive, a false positive or ignored, as {@linkcode Matches} records.
 * The two evaluations differ only in data the preparation sets: which ground
 * truth is ignored (`gtIgnore`: COCO crowd, LVIS `ignore`) or a crowd region
 * (`gtCrowd`, COCO only), and in which cells an unmatched detection is
 * ignored rather than a false positive (`cellUnmatchedIgnored`, LVIS'
 * not-exhaustive categories).
 *
 * @module
 */

import { A_N, COCO_AREA_RANGES } from "./params.ts";
import type { PreparedCocoEval } from "./prepare.ts";

/** Per (area range, threshold) matching of every kept detection. */
export interface Matches {
  /** Thresholds matched, the `t` axis. */
  nT: number;
  /**
   * Outcome per detection, area range and threshold, index `(d * A + a) * nT + t`:
   * 0 = false positive, 1 = true positive, 2 = ignored (matched to an ignored GT, or unmatched
   * and outside the area range or in a cell of `cellUnmatchedIgnored`).
   */
  state: Uint8Array;
  /** IoU with the matched GT at the first threshold (0 when unmatched), index `d * A + a`. */
  iou: Float64Array;
  /** Non-ignored GT count per (category, area range): `k * A + a`. */
  npig: Int32Array;
  /**
   * With `withGt`: the GT each detection took, as an index into the prepared GT arrays
   * (`-1` when unmatched), index `(d * A + a) * nT + t`.
   */
  gt?: Int32Array;
}

/** Options of {@linkcode matchAll}. */
export interface MatchOptions {
  /** Also record which GT each detection took ({@linkcode Matches.gt}). */
  withGt?: boolean;
}

/** Scratch space of {@linkcode matchCell}, sized for the largest cell. */
interface MatchScratch {
  /** GT indices in matching order (non-ignored first). */
  order: Int32Array;
  /** Ignore flag per position of `order`. */
  gIg: Uint8Array;
  /** Crowd flag per position of `order`. */
  gCrowd: Uint8Array;
  /** `taken[j] === stamp` when GT `order[j]` is matched at the current threshold. */
  taken: Int32Array;
  /** Changes per (cell, area range, threshold), so `taken` never needs clearing. */
  stamp: number;
}

/**
 * Greedy matching of one cell at one area range, for every threshold (the
 * body of pycocotools' `evaluateImg`). Returns the number of non-ignored GT.
 */
function matchCell(
  p: PreparedCocoEval,
  c: number,
  a: number,
  thresholds: readonly number[],
  mt: Matches,
  s: MatchScratch,
): number {
  const g0 = p.cellGt[c], G = p.cellGt[c + 1] - g0;
  const d0 = p.cellDet[c], D = p.cellDet[c + 1] - d0;
  const iou0 = p.cellIou[c], nT = thresholds.length;
  const lo = COCO_AREA_RANGES[a][0], hi = COCO_AREA_RANGES[a][1];
  const unmatchedIgnored = p.cellUnmatchedIgnored[c] === 1;
  const { order, gIg, gCrowd, taken } = s;
  // Stable order: non-ignored GT first, then ignored, each in annotation order.
  let n = 0, npig = 0;
  for (let pass = 0; pass < 2; pass++) {
    for (let g = 0; g < G; g++) {
      const ar = p.gtArea[g0 + g];
      const ig = p.gtIgnore[g0 + g] || ar < lo || ar > hi ? 1 : 0;
      if (ig !== pass) continue;
      order[n] = g;
      gIg[n] = ig;
      gCrowd[n] = p.gtCrowd[g0 + g];
      n++;
    }
    if (pass === 0) npig = n;
  }
  for (let t = 0; t < nT; t++) {
    const stamp = ++s.stamp;
    for (let d = 0; d < D; d++) {
      let best = Math.min(thresholds[t], 1 - 1e-10);
      let m = -1;
      const row = iou0 + d * G;
      for (let j = 0; j < G; j++) {
        if (taken[j] === stamp && !gCrowd[j]) continue;
        if (m > -1 && gIg[m] === 0 && gIg[j] === 1) break;
        const v = p.ious[row + order[j]];
        if (v < best) continue;
        best = v;
        m = j;
      }
      const o = ((d0 + d) * A_N + a) * nT + t;
      if (m === -1) {
        const ar = p.detArea[d0 + d];
        mt.state[o] = unmatchedIgnored || ar < lo || ar > hi ? 2 : 0;
      } else {
        taken[m] = stamp;
        mt.state[o] = gIg[m] ? 2 : 1;
        if (t === 0) mt.iou[(d0 + d) * A_N + a] = best;
        if (mt.gt) mt.gt[o] = g0 + order[m];
      }
    }
  }
  return npig;
}

/**
 * Match every cell at every area range of {@linkcode COCO_AREA_RANGES} and
 * every IoU threshold given.
 *
 * @example The better box takes the GT; the other one is a false positive
 * ```ts
 * import { matchAll } from "./coco_match.ts";
 * import { A_N } from "./params.ts";
 * import { prepareCocoEval } from "./prepare.ts";
 * import assert from "node:assert/strict";
 *
 * const p = prepareCocoEval({
 *   images: [{ id: 1, width: 50, height: 50, file_name: "c.jpg" }],
 *   categories: [{ id: 2, name: "dog" }],
 *   annotations: [{ id: 5, image_id: 1, category_id: 2, bbox: [4, 4, 8, 8], area: 64, iscrowd: 0 }],
 * }, [
 *   { image_id: 1, category_id: 2, bbox: [4, 4, 8, 6], score: 0.4 }, // IoU 0.75
 *   { image_id: 1, category_id: 2, bbox: [4, 4, 8, 8], score: 0.6 }, // IoU 1, first by score
 * ]);
 * const mt = matchAll(p, [0.5, 0.95]);
 * const all = 0; // area range "all"
 * const outcome = (d: number, t: number) => mt.state[(d * A_N + all) * mt.nT + t];
 * assert.deepEqual([outcome(0, 0), outcome(1, 0)], [1, 0]);
 * assert.equal(mt.iou[0 * A_N + all], 1);
 * assert.deepEqual([...mt.npig], [1, 1, 0, 0]); // the 8×8 GT counts for "all" and "small"
 * ```
 *
 * @param p The prepared evaluation.
 * @param thresholds IoU thresholds, the `t` axis of the result.
 * @param options `withGt` also records the GT each detection took.
 * @returns Outcome per detection, area range and threshold, and GT counts.
 */
export function matchAll(
  p: PreparedCocoEval,
  thresholds: readonly number[],
  options: MatchOptions = {},
): Matches {
  const N = p.detScore.length, nT = thresholds.length, K = p.categoryIds.length;
  const mt: Matches = {
    nT,
    state: new Uint8Array(N * A_N * nT),
    iou: new Float64Array(A_N * N),
    npig: new Int32Array(K * A_N),
  };
  if (options.withGt) mt.gt = new Int32Array(N * A_N * nT).fill(-1);
  let maxG = 0;
  for (let c = 0; c + 1 < p.cellGt.length; c++) {
    maxG = Math.max(maxG, p.cellGt[c + 1] - p.cellGt[c]);
  }
  const s: MatchScratch = {
    order: new Int32Array(maxG),
    gIg: new Uint8Array(maxG),
    gCrowd: new Uint8Array(maxG),
    taken: new Int32Array(maxG),
    stamp: 0,
  };
  for (let k = 0; k < K; k++) {
    for (let c = p.cellStart[k]; c < p.cellStart[k + 1]; c++) {
      for (let a = 0; a < A_N; a++) mt.npig[k * A_N + a] += matchCell(p, c, a, thresholds, mt, s);
    }
  }
  return mt;
}
