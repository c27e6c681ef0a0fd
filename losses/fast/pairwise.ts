/**
 * Step 3 of the fast bucketed losses: the sums over pairs (positive, positive) and
 * (positive, bucket) that the paper computes as `|P| x |P|` and `B x |P|` matrices.
 *
 * Two interchangeable implementations of {@linkcode PairwiseSums}:
 *
 * - {@linkcode directPairwise}: the plain double loops, `O(|P| (|P| + B))` time, no buffer.
 * - {@linkcode prefixPairwise}: `H` is a clamped ramp and every sequence here is sorted, so a
 *   sum `Σ_j w_j H(v_j - q)` splits into a block of ones, a block on the linear ramp and a block
 *   of zeros; block boundaries move monotonically with the query (two pointers) and the block
 *   sums come from prefix sums of `w` and `w v`. The sorting terms need sums restricted to
 *   positives with larger (or smaller) IoU: 2-D dominance sums, done by sweeping the positives in
 *   IoU order while a Fenwick tree over logit rank holds the ones already seen. Time
 *   `O((|P| + B) + |P| log |P|)` after sorting, memory `O(|P| + B)`.
 *
 * @module
 */

import { smoothStep } from "../reference/common.ts";
import { CompensatedPrefixSum, FenwickTree } from "./prefix_sums.ts";
import { argsortDescending } from "./radix_sort.ts";

/** Sorting-error quantities of every positive (as in `rankSortLoss`), in descending-logit order. */
export interface SortingErrors {
  /** `SE(i) = lS(i) - lS*(i)`. */
  error: Float64Array;
  /** `D(i) = Σ_{y_j < y_i} H(p_j - p_i)`: mass of lower-IoU positives at or above `i`. */
  missorted: Float64Array;
}

/** The pairwise sums the bucketed losses need. All sequences `v` are sorted descending. */
export interface PairwiseSums {
  /**
   * `out[k] = Σ_j w[j] H(v[j] - q[k])`: weighted mass of the points at or above each query.
   * `v` and `q` descending.
   */
  sumAbove(v: Float64Array, w: Float64Array, q: Float64Array, delta: number): Float64Array;
  /**
   * `out[k] = Σ_j w[j] H(q[k] - v[j])`: weighted mass of the points at or below each query.
   * `v` and `q` descending.
   */
  sumBelow(v: Float64Array, w: Float64Array, q: Float64Array, delta: number): Float64Array;
  /**
   * Sorting errors of the positives with logits `p` (descending), targets `y` and
   * `rankPos[i] = Σ_j H(p_j - p_i)`.
   */
  sortingErrors(
    p: Float64Array,
    y: Float64Array,
    rankPos: Float64Array,
    delta: number,
  ): SortingErrors;
  /**
   * `out[i] = Σ_{k: y_k > y_i} share[k] H(p_i - p_k)`: what positive `i` receives of the
   * sorting errors of higher-IoU positives it is ranked above.
   */
  sortingShare(p: Float64Array, y: Float64Array, share: Float64Array, delta: number): Float64Array;
}

/** The double loops: the paper's `F` and `G` matrices, summed without being stored. */
export const directPairwise: PairwiseSums = {
  sumAbove(v, w, q, delta) {
    const out = new Float64Array(q.length);
    for (let k = 0; k < q.length; k++) {
      let acc = 0;
      for (let j = 0; j < v.length; j++) acc += w[j] * smoothStep(v[j] - q[k], delta);
      out[k] = acc;
    }
    return out;
  },
  sumBelow(v, w, q, delta) {
    const out = new Float64Array(q.length);
    for (let k = 0; k < q.length; k++) {
      let acc = 0;
      for (let j = 0; j < v.length; j++) acc += w[j] * smoothStep(q[k] - v[j], delta);
      out[k] = acc;
    }
    return out;
  },
  sortingErrors(p, y, rankPos, delta) {
    const n = p.length;
    const error = new Float64Array(n);
    const missorted = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let current = 0;
      let targetNum = 0;
      let targetDen = 0;
      for (let j = 0; j < n; j++) {
        const h = smoothStep(p[j] - p[i], delta);
        current += h * (1 - y[j]);
        if (y[j] >= y[i]) {
          targetNum += h * (1 - y[j]);
          targetDen += h;
        } else {
          missorted[i] += h;
        }
      }
      error[i] = current / rankPos[i] - targetNum / targetDen;
    }
    return { error, missorted };
  },
  sortingShare(p, y, share, delta) {
    const n = p.length;
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let acc = 0;
      for (let k = 0; k < n; k++) if (y[i] < y[k]) acc += share[k] * smoothStep(p[i] - p[k], delta);
      out[i] = acc;
    }
    return out;
  },
};

/**
 * Block boundaries of `H(p_j - p_i)` over descending positive logits `p`, for every positive
 * `i`. With `x_j = p_j - p_i` (non-increasing in `j`): for `δ > 0`, `ones[i] = #{x_j >= δ}` and
 * `end[i] = #{x_j > -δ}`, so `H = 1` on `[0, ones)`, the linear ramp on `[ones, end)` and 0
 * after; for `δ = 0`, `ones[i] = #{x_j >= 0}` and `end[i] = #{x_j > 0}` (ties are "above").
 *
 * @param p Positive logits, descending.
 * @param delta `δ >= 0`.
 * @returns The two boundaries per positive; both non-decreasing in `i`.
 */
export function positiveWindows(
  p: Float64Array,
  delta: number,
): { ones: Int32Array; end: Int32Array } {
  const n = p.length;
  const ones = new Int32Array(n);
  const end = new Int32Array(n);
  let a = 0;
  let c = 0;
  for (let i = 0; i < n; i++) {
    if (delta > 0) {
      while (a < n && p[a] - p[i] >= delta) a++;
      while (c < n && p[c] - p[i] > -delta) c++;
    } else {
      while (a < n && p[a] - p[i] >= 0) a++;
      while (c < n && p[c] - p[i] > 0) c++;
    }
    ones[i] = a;
    end[i] = c;
  }
  return { ones, end };
}

function times(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let k = 0; k < a.length; k++) out[k] = a[k] * b[k];
  return out;
}

/** Groups of equal target, as runs of `order` (positions sorted by target, descending). */
function targetOrder(y: Float64Array): Int32Array {
  return argsortDescending(y);
}

/** Prefix sums, two pointers and Fenwick sweeps: no `|P| x B` or `|P| x |P|` work. */
export const prefixPairwise: PairwiseSums = {
  sumAbove(v, w, q, delta) {
    const n = v.length;
    const out = new Float64Array(q.length);
    const sw = new CompensatedPrefixSum(w);
    const swv = new CompensatedPrefixSum(times(w, v));
    let a = 0; // v[0..a) have H = 1
    let c = 0; // v[a..c) on the ramp, v[c..n) have H = 0
    for (let k = 0; k < q.length; k++) {
      const qk = q[k];
      if (delta === 0) {
        while (a < n && v[a] - qk >= 0) a++;
        out[k] = sw.range(0, a);
        continue;
      }
      while (a < n && v[a] - qk >= delta) a++;
      if (c < a) c = a;
      while (c < n && v[c] - qk > -delta) c++;
      const wRamp = sw.range(a, c);
      out[k] = sw.range(0, a) + (swv.range(a, c) - qk * wRamp) / (2 * delta) + 0.5 * wRamp;
    }
    return out;
  },
  sumBelow(v, w, q, delta) {
    const n = v.length;
    const out = new Float64Array(q.length);
    const sw = new CompensatedPrefixSum(w);
    const swv = new CompensatedPrefixSum(times(w, v));
    let z = 0; // v[0..z) have H = 0
    let o = 0; // v[z..o) on the ramp, v[o..n) have H = 1
    for (let k = 0; k < q.length; k++) {
      const qk = q[k];
      if (delta === 0) {
        while (o < n && qk - v[o] < 0) o++;
        out[k] = sw.range(o, n);
        continue;
      }
      while (z < n && qk - v[z] <= -delta) z++;
      if (o < z) o = z;
      while (o < n && qk - v[o] < delta) o++;
      const wRamp = sw.range(z, o);
      out[k] = sw.range(o, n) + (qk * wRamp - swv.range(z, o)) / (2 * delta) + 0.5 * wRamp;
    }
    return out;
  },
  sortingErrors(p, y, rankPos, delta) {
    const n = p.length;
    const { ones, end } = positiveWindows(p, delta);
    const bad = new Float64Array(n);
    for (let j = 0; j < n; j++) bad[j] = 1 - y[j];
    // lS numerator needs no IoU condition: a plain prefix-sum lookup.
    const current = this.sumAbove(p, bad, p, delta);
    const order = targetOrder(y);
    const top = new Float64Array(4);
    const ramp = new Float64Array(4);
    // Sweep 1, IoU descending, a group of equal IoU inserted before it is queried: sums over
    // y_j >= y_i of H(p_j - p_i) times 1 and times (1 - y_j). Channels: 1, p, 1 - y, (1 - y) p.
    const error = new Float64Array(n);
    const geTree = new FenwickTree(n, 4);
    const item = new Float64Array(4);
    for (let g = 0; g < n;) {
      let h = g;
      while (h < n && y[order[h]] === y[order[g]]) h++;
      for (let r = g; r < h; r++) {
        const j = order[r];
        item[0] = 1;
        item[1] = p[j];
        item[2] = bad[j];
        item[3] = bad[j] * p[j];
        geTree.addAll(j, item);
      }
      for (let r = g; r < h; r++) {
        const i = order[r];
        blocks(geTree, ones[i], end[i], delta, top, ramp);
        const den = rampSum(top, ramp, 0, p[i], delta);
        const num = rampSum(top, ramp, 2, p[i], delta);
        error[i] = current[i] / rankPos[i] - num / den;
      }
      g = h;
    }
    // Sweep 2, IoU ascending, a group queried before it is inserted: D(i), the sum over
    // y_j < y_i of H(p_j - p_i). Channels: 1, p.
    const missorted = new Float64Array(n);
    const ltTree = new FenwickTree(n, 2);
    for (let h = n; h > 0;) {
      let g = h;
      while (g > 0 && y[order[g - 1]] === y[order[h - 1]]) g--;
      for (let r = g; r < h; r++) {
        const i = order[r];
        blocks(ltTree, ones[i], end[i], delta, top, ramp);
        // No lower-IoU positive inside the ones or ramp block: exactly 0 (counts are integral).
        if (top[0] + (delta > 0 ? ramp[0] : 0) === 0) continue;
        missorted[i] = rampSum(top, ramp, 0, p[i], delta);
      }
      for (let r = g; r < h; r++) {
        item[0] = 1;
        item[1] = p[order[r]];
        ltTree.addAll(order[r], item);
      }
      h = g;
    }
    return { error, missorted };
  },
  sortingShare(p, y, share, delta) {
    const n = p.length;
    const { ones, end } = positiveWindows(p, delta);
    const order = targetOrder(y);
    // Sweep 3, IoU descending, a group queried before it is inserted: sums over y_k > y_i of
    // share[k] H(p_i - p_k) = 0 on [0, ones), ramp on [ones, end), 1 on [end, n).
    // Channels: share, share * p.
    const out = new Float64Array(n);
    const tree = new FenwickTree(n, 2);
    const below = new Float64Array(2);
    const ramp = new Float64Array(2);
    const item = new Float64Array(2);
    for (let g = 0; g < n;) {
      let h = g;
      while (h < n && y[order[h]] === y[order[g]]) h++;
      for (let r = g; r < h; r++) {
        const i = order[r];
        let acc = tree.rangeAll(end[i], n, below)[0];
        if (delta > 0) {
          tree.rangeAll(ones[i], end[i], ramp);
          acc += (p[i] * ramp[0] - ramp[1]) / (2 * delta) + 0.5 * ramp[0];
        }
        out[i] = acc;
      }
      for (let r = g; r < h; r++) {
        const k = order[r];
        item[0] = share[k];
        item[1] = share[k] * p[k];
        tree.addAll(k, item);
      }
      g = h;
    }
    return out;
  },
};

/** Channel sums over the ones block `[0, ones)` into `top` and the ramp block into `ramp`. */
function blocks(
  tree: FenwickTree,
  ones: number,
  end: number,
  delta: number,
  top: Float64Array,
  ramp: Float64Array,
): void {
  tree.rangeAll(0, ones, top);
  if (delta > 0) tree.rangeAll(ones, end, ramp);
}

/**
 * `Σ_j w_j H(p_j - q)` from block sums: channel `ch` holds `w`, channel `ch + 1` holds `w p`;
 * ones on the top block, the linear ramp on the ramp block (`δ > 0`).
 */
function rampSum(
  top: Float64Array,
  ramp: Float64Array,
  ch: number,
  q: number,
  delta: number,
): number {
  if (delta === 0) return top[ch];
  return top[ch] + (ramp[ch + 1] - q * ramp[ch]) / (2 * delta) + 0.5 * ramp[ch];
}
