/**
 * Masks as bare run-length arrays: compressed-string coding, polygon
 * rasterisation, union/intersection, area, box and IoU, with the same results
 * as pycocotools. `data/mask.ts` builds its `CocoRle` API on these functions
 * and the evaluator calls them directly on its hot path. The rasteriser visits
 * only the boundary steps that can land on a pixel column instead of every
 * point of the 5x grid; decoding and rasterising reuse scratch buffers.
 *
 * Run lengths are column-major (Fortran order) and start with a run of zeros.
 *
 * @example Rasterise and measure a polygon
 * ```ts
 * import { polygonRuns, runsArea, runsBbox } from "./mask_runs.ts";
 * import assert from "node:assert/strict";
 *
 * const counts = polygonRuns([1, 1, 4, 1, 4, 3, 1, 3], 5, 6);
 * assert.equal(runsArea(counts), 6);
 * assert.deepEqual(runsBbox({ h: 5, w: 6, counts }), [1, 1, 3, 2]);
 * ```
 *
 * @module
 */

import { crowdIou, xywhIntersection } from "../boxes/coco_iou.ts";
import type { CocoBbox } from "./coco_types.ts";

/** A mask of `h` rows and `w` columns as run lengths. */
export interface MaskRuns {
  /** Height in pixels. */
  h: number;
  /** Width in pixels. */
  w: number;
  /** Column-major run lengths, starting with zeros. */
  counts: Uint32Array;
}

let scratch = new Uint32Array(4096);
const POW32 = Array.from({ length: 14 }, (_, k) => 32 ** k);

/**
 * Compress column-major run lengths into COCO's string form.
 *
 * @example
 * ```ts
 * import { countsFromString, countsToString } from "./mask_runs.ts";
 * import assert from "node:assert/strict";
 *
 * const s = countsToString([3, 2, 7]);
 * assert.deepEqual(Array.from(countsFromString(s)), [3, 2, 7]);
 * ```
 *
 * @param counts Run lengths, starting with a run of zeros.
 * @returns The compressed string.
 */
export function countsToString(counts: ArrayLike<number>): string {
  const chars: number[] = [];
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i];
    if (i > 2) x -= counts[i - 2];
    let more = true;
    while (more) {
      let c = x & 0x1f;
      x = Math.floor(x / 32); // arithmetic shift, safe beyond 32 bits
      more = (c & 0x10) ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      chars.push(c + 48);
    }
  }
  // Chunked to stay below the argument limit of String.fromCharCode.
  let out = "";
  for (let i = 0; i < chars.length; i += 8192) {
    out += String.fromCharCode(...chars.slice(i, i + 8192));
  }
  return out;
}

/**
 * Decompress COCO's string form into run lengths.
 *
 * @param s Compressed counts.
 * @returns The run lengths.
 * @throws {SyntaxError} On a character outside COCO's alphabet, a string that ends inside a count,
 *   or a count outside `[0, 2^32)`.
 */
export function countsFromString(s: string): Uint32Array {
  if (scratch.length < s.length) scratch = new Uint32Array(2 * s.length);
  const out = scratch; // typed-array allocation is costly in Deno: one per mask, by `slice`
  let m = 0, p = 0;
  const n = s.length;
  while (p < n) {
    let x = 0, k = 0, more = true;
    while (more) {
      if (p >= n) throw new SyntaxError(`Cannot decode RLE counts: string ends inside count ${m}`);
      const c = s.charCodeAt(p) - 48;
      if (c < 0 || c > 63) {
        throw new SyntaxError(
          `Cannot decode RLE counts: character ${JSON.stringify(s[p])} at ${p} is not valid`,
        );
      }
      x += (c & 0x1f) * (POW32[k] ?? 2 ** (5 * k));
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && (c & 0x10)) x -= POW32[k] ?? 2 ** (5 * k);
    }
    if (m > 2) x += out[m - 2];
    if (!(x >= 0 && x <= 0xffffffff)) {
      throw new SyntaxError(`Cannot decode RLE counts: count ${m} is ${x}`);
    }
    out[m++] = x;
  }
  return out.slice(0, m);
}

/** C's `(int)(v + 0.5)`: truncation toward zero; NaN gives INT_MIN like x86. */
function cRound(v: number): number {
  const t = v + 0.5;
  return t !== t ? -2147483648 : Math.trunc(t);
}

// Scratch space of the rasteriser: kept (column, row) points and column buckets.
let colBuf = new Int32Array(1024);
let rowBuf = new Int32Array(1024);
let sortBuf = new Int32Array(1024);
let bucket = new Int32Array(1024);
let nPts = 0;

function keep(col: number, row: number): void {
  if (nPts === colBuf.length) {
    const c = new Int32Array(nPts * 2), r = new Int32Array(nPts * 2);
    c.set(colBuf);
    r.set(rowBuf);
    colBuf = c;
    rowBuf = r;
  }
  colBuf[nPts] = col;
  rowBuf[nPts++] = row;
}

/** Row of a kept step from the smaller of its two upsampled y values. */
function rowOf(v: number, h: number): number {
  let yd = (v + 0.5) / 5 - 0.5;
  if (yd < 0) yd = 0;
  else if (yd > h) yd = h;
  return Math.ceil(yd);
}

/** A step between two boundary points that is not on an edge's regular grid. */
function keepStep(ua: number, va: number, ub: number, vb: number, h: number, w: number): void {
  if (ua === ub) return;
  const xd = ((ua < ub ? ua : ub) + 0.5) / 5 - 0.5;
  if (Math.floor(xd) !== xd || xd < 0 || xd > w - 1) return;
  keep(xd, rowOf(va < vb ? va : vb, h));
}

/**
 * Rasterise one polygon like pycocotools' `rleFrPoly` (pixel-exact). Instead
 * of walking every point of the 5x boundary it visits only the steps that
 * cross a pixel column's centre, which gives the same kept points.
 *
 * @param xy Polygon `[x1, y1, x2, y2, ...]` (at least 2 points).
 * @param h Image height.
 * @param w Image width.
 * @returns The run lengths.
 */
export function polygonRuns(xy: ArrayLike<number>, h: number, w: number): Uint32Array {
  const k = xy.length >> 1;
  nPts = 0;
  const xf = cRound(5 * xy[0]), yf = cRound(5 * xy[1]);
  let x0 = xf, y0 = yf, lu = 0, lv = 0;
  for (let j = 0; j < k; j++) {
    const x1 = j + 1 < k ? cRound(5 * xy[2 * j + 2]) : xf;
    const y1 = j + 1 < k ? cRound(5 * xy[2 * j + 3]) : yf;
    const dx = Math.abs(x1 - x0), dy = Math.abs(y0 - y1);
    // Points run along the major axis from the end with the smaller major coordinate, and are
    // emitted in the polygon's direction.
    const flip = (dx >= dy && x0 > x1) || (dx < dy && y0 > y1);
    const xs = flip ? x1 : x0, xe = flip ? x0 : x1, ys = flip ? y1 : y0, ye = flip ? y0 : y1;
    let fu: number, fv: number, eu: number, ev: number;
    if (dx >= dy) {
      const s = (ye - ys) / dx;
      const tf = flip ? dx : 0, te = flip ? 0 : dx;
      fu = tf + xs;
      fv = cRound(ys + s * tf);
      eu = te + xs;
      ev = cRound(ys + s * te);
      // x rises by one per step: the kept steps (t, t + 1) have x = 5c + 2, c in [0, w - 1].
      let t = (((2 - xs) % 5) + 5) % 5;
      if (t + xs < 2) t += 5 * Math.ceil((2 - xs - t) / 5);
      const tMax = Math.min(dx - 1, 5 * (w - 1) + 2 - xs);
      for (; t <= tMax; t += 5) {
        const va = cRound(ys + s * t), vb = cRound(ys + s * (t + 1));
        keep((t + xs - 2) / 5, rowOf(va < vb ? va : vb, h));
      }
    } else {
      const s = (xe - xs) / dy;
      const tf = flip ? dy : 0, te = flip ? 0 : dy;
      fu = cRound(xs + s * tf);
      fv = tf + ys;
      eu = cRound(xs + s * te);
      ev = te + ys;
      // x = cRound(xs + s t) is monotonic and moves by at most one per step: find each step
      // between 5c + 2 and 5c + 3 by a guess and a short walk.
      const u0 = cRound(xs), u1 = cRound(xs + s * dy);
      if (u0 !== u1) {
        const up = u1 > u0;
        const cMax = Math.min(w - 1, Math.floor(((up ? u1 : u0) - 3) / 5));
        for (let c = Math.max(0, Math.ceil(((up ? u0 : u1) - 2) / 5)); c <= cMax; c++) {
          const target = up ? 5 * c + 3 : 5 * c + 2;
          let t = Math.round((target - (up ? 0.5 : -0.5) - xs) / s);
          if (t < 1) t = 1;
          else if (t > dy) t = dy;
          if (up) {
            while (t > 1 && cRound(xs + s * (t - 1)) >= target) t--;
            while (t < dy && cRound(xs + s * t) < target) t++;
          } else {
            while (t > 1 && cRound(xs + s * (t - 1)) <= target) t--;
            while (t < dy && cRound(xs + s * t) > target) t++;
          }
          keep(c, rowOf(t - 1 + ys, h));
        }
      }
    }
    // The step from the previous edge's last point to this edge's first point.
    if (j > 0) keepStep(lu, lv, fu, fv, h, w);
    lu = eu;
    lv = ev;
    x0 = x1;
    y0 = y1;
  }
  return pointsToRuns(h, w);
}

/** Sort the kept points by (column, row) with a bucket pass and emit the toggling runs. */
function pointsToRuns(h: number, w: number): Uint32Array {
  const n = nPts;
  if (bucket.length < w + 2) bucket = new Int32Array(w + 2);
  if (sortBuf.length < n) sortBuf = new Int32Array(colBuf.length);
  bucket.fill(0, 0, w + 2);
  for (let i = 0; i < n; i++) bucket[colBuf[i] + 1]++;
  for (let c = 1; c <= w; c++) bucket[c] += bucket[c - 1];
  for (let i = 0; i < n; i++) sortBuf[bucket[colBuf[i]]++] = rowBuf[i];
  // Rows inside each column: insertion sort (a column holds few crossings).
  let start = 0;
  for (let c = 0; c < w; c++) {
    const end = bucket[c];
    for (let i = start + 1; i < end; i++) {
      const r = sortBuf[i];
      let j = i - 1;
      while (j >= start && sortBuf[j] > r) {
        sortBuf[j + 1] = sortBuf[j];
        j--;
      }
      sortBuf[j + 1] = r;
    }
    start = end;
  }
  // Successive differences of the sorted indices (plus h * w) are the runs; a zero-length run
  // merges its neighbours.
  if (scratch.length < n + 1) scratch = new Uint32Array(2 * (n + 1));
  const out = scratch;
  let m = 0, prev = 0, c = 0, i = 0;
  const next = (): number => {
    let v: number;
    if (i < n) {
      while (bucket[c] <= i) c++;
      v = c * h + sortBuf[i];
    } else v = h * w;
    i++;
    const d = v - prev;
    prev = v;
    return d;
  };
  out[m++] = next();
  while (i <= n) {
    const d = next();
    if (d > 0) out[m++] = d;
    else if (i <= n) out[m - 1] += next();
  }
  return out.slice(0, m);
}

/**
 * Union (or intersection) of two masks' runs of the same size.
 *
 * @param a First mask's runs.
 * @param b Second mask's runs.
 * @param intersect Intersect instead of unite.
 * @returns The combined runs.
 */
export function mergeRuns(a: Uint32Array, b: Uint32Array, intersect = false): Uint32Array {
  const out: number[] = [];
  let ca = a[0], cb = b[0], va = 0, vb = 0, v = 0, ia = 1, ib = 1, cc = 0, ct = 1;
  while (ct > 0) {
    const c = ca < cb ? ca : cb;
    cc += c;
    ct = 0;
    ca -= c;
    if (!ca && ia < a.length) {
      ca = a[ia++];
      va ^= 1;
    }
    ct += ca;
    cb -= c;
    if (!cb && ib < b.length) {
      cb = b[ib++];
      vb ^= 1;
    }
    ct += cb;
    const vp = v;
    v = intersect ? va & vb : va | vb;
    if (v !== vp || ct === 0) {
      out.push(cc);
      cc = 0;
    }
  }
  return Uint32Array.from(out);
}

/**
 * Foreground pixel count.
 *
 * @param counts Run lengths.
 * @returns The area.
 */
export function runsArea(counts: Uint32Array): number {
  let a = 0;
  for (let j = 1; j < counts.length; j += 2) a += counts[j];
  return a;
}

/**
 * Tight `[x, y, w, h]` box of the foreground, as pycocotools' `toBbox`
 * (`[0, 0, 0, 0]` when empty).
 *
 * @param m The mask.
 * @returns The box.
 */
export function runsBbox(m: MaskRuns): CocoBbox {
  const c = m.counts, h = m.h;
  const n = c.length & ~1;
  if (n === 0) return [0, 0, 0, 0];
  let xs = m.w, ys = h, xe = 0, ye = 0, cc = 0, xp = 0;
  for (let j = 0; j < n; j++) {
    cc += c[j];
    const t = cc - (j & 1);
    const y = t % h, x = (t - y) / h;
    if ((j & 1) === 0) xp = x;
    else if (xp < x) {
      ys = 0;
      ye = h - 1;
    }
    if (x < xs) xs = x;
    if (x > xe) xe = x;
    if (y < ys) ys = y;
    if (y > ye) ye = y;
  }
  return [xs, ys, xe - xs + 1, ye - ys + 1];
}

function intersection(a: Uint32Array, b: Uint32Array): number {
  let ia = 0, ib = 0, ea = a[0], eb = b[0], va = 0, vb = 0, pos = 0, inter = 0;
  const na = a.length, nb = b.length;
  while (ia < na && ib < nb) {
    const e = ea < eb ? ea : eb;
    if (va & vb) inter += e - pos;
    pos = e;
    if (ea === e) {
      if (++ia < na) ea += a[ia];
      va ^= 1;
    }
    if (eb === e) {
      if (++ib < nb) eb += b[ib];
      vb ^= 1;
    }
  }
  return inter;
}

/**
 * Mask IoU of every detection with every ground truth, as pycocotools'
 * `iou` on RLEs: intersection over union in pixels, over the detection's own
 * area for a crowd ground truth, 0 where the boxes do not overlap, and -1
 * where the sizes differ (and the boxes overlap).
 *
 * @param dets Detection masks (`D`).
 * @param gts Ground-truth masks (`G`).
 * @param crowd One flag per ground truth.
 * @param out Destination, row-major `[D][G]` from `offset`.
 * @param offset First index written.
 */
export function runsIou(
  dets: MaskRuns[],
  gts: MaskRuns[],
  crowd: ArrayLike<number | boolean>,
  out: Float64Array,
  offset = 0,
): void {
  const G = gts.length;
  const gb = gts.map(runsBbox), ga = gts.map((g) => runsArea(g.counts));
  for (let d = 0; d < dets.length; d++) {
    const dm = dets[d];
    const db = runsBbox(dm);
    const da = runsArea(dm.counts);
    for (let g = 0; g < G; g++) {
      const o = offset + d * G + g;
      out[o] = 0;
      if (xywhIntersection(db, gb[g]) <= 0) continue;
      const gm = gts[g];
      if (gm.h !== dm.h || gm.w !== dm.w) {
        out[o] = -1;
        continue;
      }
      const inter = intersection(dm.counts, gm.counts);
      if (inter > 0) out[o] = crowdIou(inter, da, ga[g], crowd[g]);
    }
  }
}
