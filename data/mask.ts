/**
 * Binary masks as COCO run-length encodings, with the same results as
 * pycocotools' `mask` API (`frPyObjects`, `encode`, `decode`, `area`,
 * `toBbox`, `merge`, `iou`). Run lengths are column-major (Fortran order) and
 * start with a run of zeros; bitmaps handed in and out of this module are
 * row-major `[height, width]` (`data[y * width + x]`), like the numpy arrays
 * pycocotools takes and returns.
 *
 * @example Polygon to RLE and back
 * ```ts
 * import * as mask from "./mask.ts";
 * import assert from "node:assert/strict";
 *
 * const [rle] = mask.fromPolygons([[1, 1, 4, 1, 4, 3, 1, 3]], 5, 6);
 * assert.equal(mask.area(rle), 6);
 * assert.deepEqual(mask.toBbox(rle), [1, 1, 3, 2]);
 * assert.equal(mask.decode(rle)[1 * 6 + 1], 1);
 * ```
 *
 * @module
 */

import type {
  CocoBbox,
  CocoPolygon,
  CocoRle,
  CocoSegmentation,
  CocoUncompressedRle,
} from "./coco_types.ts";

export type { CocoRle, CocoUncompressedRle } from "./coco_types.ts";

/** Decoded run lengths, cached per RLE object so repeated IoUs decode once. */
const decodedCache = new WeakMap<CocoRle, Uint32Array>();

/**
 * Compress column-major run lengths into COCO's string form.
 *
 * @example
 * ```ts
 * import { countsToString, countsFromString } from "./mask.ts";
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
 * @throws {SyntaxError} When the string holds a character outside COCO's alphabet or ends mid-count.
 */
export function countsFromString(s: string): Uint32Array {
  const out: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      if (p >= s.length) {
        throw new SyntaxError(`Cannot decode RLE counts: string ends inside count ${out.length}`);
      }
      const c = s.charCodeAt(p) - 48;
      if (c < 0 || c > 63) {
        throw new SyntaxError(
          `Cannot decode RLE counts: character ${JSON.stringify(s[p])} at ${p} is not valid`,
        );
      }
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && (c & 0x10)) x -= 2 ** (5 * k);
    }
    if (out.length > 2) x += out[out.length - 2];
    out.push(x);
  }
  for (let i = 0; i < out.length; i++) {
    if (!(out[i] >= 0 && out[i] <= 0xffffffff)) {
      throw new SyntaxError(`Cannot decode RLE counts: count ${i} is ${out[i]}`);
    }
  }
  return Uint32Array.from(out);
}

function checkSize(size: unknown, what: string): [number, number] {
  if (
    !Array.isArray(size) || size.length !== 2 ||
    !size.every((v) => Number.isInteger(v) && v >= 0)
  ) {
    throw new TypeError(`${what} has size ${JSON.stringify(size)}, expected [height, width]`);
  }
  return size as [number, number];
}

/** Run lengths of a compressed RLE (cached). */
export function rleCounts(rle: CocoRle): Uint32Array {
  let c = decodedCache.get(rle);
  if (!c) {
    if (typeof rle?.counts !== "string") {
      throw new TypeError(`RLE counts must be a string, got ${typeof rle?.counts}`);
    }
    checkSize(rle.size, "RLE");
    c = countsFromString(rle.counts);
    decodedCache.set(rle, c);
  }
  return c;
}

function makeRle(h: number, w: number, counts: ArrayLike<number>): CocoRle {
  const rle: CocoRle = { size: [h, w], counts: countsToString(counts) };
  decodedCache.set(rle, Uint32Array.from(counts));
  return rle;
}

/** C's `(int)(v + 0.5)`: truncation toward zero; NaN gives INT_MIN like x86. */
function cRound(v: number): number {
  const t = v + 0.5;
  if (Number.isNaN(t)) return -2147483648;
  return Math.trunc(t);
}

/** Rasterise one polygon exactly as pycocotools' `rleFrPoly` does. */
function polygonCounts(xy: ArrayLike<number>, h: number, w: number): number[] {
  const k = Math.floor(xy.length / 2);
  const scale = 5;
  const x = new Array<number>(k + 1);
  const y = new Array<number>(k + 1);
  for (let j = 0; j < k; j++) x[j] = cRound(scale * xy[2 * j]);
  for (let j = 0; j < k; j++) y[j] = cRound(scale * xy[2 * j + 1]);
  x[k] = x[0];
  y[k] = y[0];
  // Dense boundary points on the upsampled grid, one unit step along the major axis.
  const u: number[] = [];
  const v: number[] = [];
  for (let j = 0; j < k; j++) {
    let xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
    const dx = Math.abs(xe - xs), dy = Math.abs(ys - ye);
    const flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      [xs, xe] = [xe, xs];
      [ys, ye] = [ye, ys];
    }
    if (dx >= dy) {
      const s = (ye - ys) / dx;
      for (let d = 0; d <= dx; d++) {
        const t = flip ? dx - d : d;
        u.push(t + xs);
        v.push(cRound(ys + s * t));
      }
    } else {
      const s = (xe - xs) / dy;
      for (let d = 0; d <= dy; d++) {
        const t = flip ? dy - d : d;
        v.push(t + ys);
        u.push(cRound(xs + s * t));
      }
    }
  }
  // Keep the column crossings and map them back to the pixel grid.
  const idx: number[] = [];
  for (let j = 1; j < u.length; j++) {
    if (u[j] === u[j - 1]) continue;
    let xd = u[j] < u[j - 1] ? u[j] : u[j - 1];
    xd = (xd + 0.5) / scale - 0.5;
    if (Math.floor(xd) !== xd || xd < 0 || xd > w - 1) continue;
    let yd = v[j] < v[j - 1] ? v[j] : v[j - 1];
    yd = (yd + 0.5) / scale - 0.5;
    if (yd < 0) yd = 0;
    else if (yd > h) yd = h;
    yd = Math.ceil(yd);
    idx.push(xd * h + yd);
  }
  idx.push(h * w);
  idx.sort((a, b) => a - b);
  // Differences are toggling runs; a zero-length run merges its neighbours.
  let prev = 0;
  for (let j = 0; j < idx.length; j++) {
    const t = idx[j];
    idx[j] -= prev;
    prev = t;
  }
  const out: number[] = [idx[0]];
  for (let j = 1; j < idx.length;) {
    if (idx[j] > 0) out.push(idx[j++]);
    else {
      j++;
      if (j < idx.length) out[out.length - 1] += idx[j++];
    }
  }
  return out;
}

function checkDims(height: number, width: number): void {
  if (!Number.isInteger(height) || height < 0 || !Number.isInteger(width) || width < 0) {
    throw new RangeError(`Mask size ${height}x${width} must be non-negative integers`);
  }
}

/**
 * Rasterise polygons, one RLE per polygon (like `frPyObjects` on a polygon
 * list); use {@linkcode merge} or {@linkcode fromSegmentation} for their union.
 *
 * @param polygons Polygons `[x1, y1, x2, y2, ...]` in pixels.
 * @param height Image height.
 * @param width Image width.
 * @returns One compressed RLE per polygon.
 */
export function fromPolygons(
  polygons: ArrayLike<number>[],
  height: number,
  width: number,
): CocoRle[] {
  checkDims(height, width);
  return polygons.map((p, i) => {
    if (p.length < 4 || p.length % 2 !== 0) {
      throw new TypeError(`Polygon ${i} has ${p.length} coordinates, expected an even number >= 4`);
    }
    for (let j = 0; j < p.length; j++) {
      if (!Number.isFinite(p[j])) {
        throw new TypeError(`Polygon ${i} has coordinate ${j} = ${p[j]}`);
      }
    }
    return makeRle(height, width, polygonCounts(p, height, width));
  });
}

/**
 * Rasterise `[x, y, w, h]` boxes (like `frPyObjects` on a box list).
 *
 * @param boxes Boxes in pixels.
 * @param height Image height.
 * @param width Image width.
 * @returns One compressed RLE per box.
 */
export function fromBboxes(boxes: ArrayLike<number>[], height: number, width: number): CocoRle[] {
  return fromPolygons(
    boxes.map((b) => [b[0], b[1], b[0], b[1] + b[3], b[0] + b[2], b[1] + b[3], b[0] + b[2], b[1]]),
    height,
    width,
  );
}

/**
 * Compress an uncompressed RLE (the crowd-region form with numeric counts).
 *
 * @param rle `{ size: [h, w], counts: number[] }`.
 * @returns The same mask with string counts.
 * @throws {RangeError} When the counts do not add up to `h * w`.
 */
export function fromUncompressed(rle: CocoUncompressedRle): CocoRle {
  const [h, w] = checkSize(rle?.size, "Uncompressed RLE");
  if (!Array.isArray(rle.counts)) throw new TypeError("Uncompressed RLE counts must be an array");
  let total = 0;
  for (let i = 0; i < rle.counts.length; i++) {
    const c = rle.counts[i];
    if (!Number.isInteger(c) || c < 0) {
      throw new RangeError(`Uncompressed RLE count ${i} is ${c}`);
    }
    total += c;
  }
  if (total !== h * w) {
    throw new RangeError(`Uncompressed RLE counts sum to ${total}, expected ${h * w}`);
  }
  return makeRle(h, w, rle.counts);
}

/**
 * Expand an RLE into numeric counts.
 *
 * @param rle Compressed RLE.
 * @returns `{ size, counts: number[] }`.
 */
export function toUncompressed(rle: CocoRle): CocoUncompressedRle {
  return { size: [rle.size[0], rle.size[1]], counts: Array.from(rleCounts(rle)) };
}

/**
 * One RLE for any COCO segmentation (pycocotools' `annToRLE`): polygon parts
 * are rasterised and merged, uncompressed RLE is compressed, compressed RLE is
 * returned as is.
 *
 * @param segmentation The annotation's `segmentation`.
 * @param height Image height (for polygons).
 * @param width Image width (for polygons).
 * @returns A compressed RLE.
 */
export function fromSegmentation(
  segmentation: CocoSegmentation,
  height: number,
  width: number,
): CocoRle {
  if (Array.isArray(segmentation)) {
    return merge(fromPolygons(segmentation as CocoPolygon[], height, width));
  }
  if (segmentation && Array.isArray(segmentation.counts)) {
    return fromUncompressed(segmentation as CocoUncompressedRle);
  }
  if (segmentation && typeof segmentation.counts === "string") return segmentation as CocoRle;
  throw new TypeError(`Segmentation ${JSON.stringify(segmentation)} is not a polygon list or RLE`);
}

/**
 * Encode a row-major binary bitmap (any non-zero value is foreground).
 *
 * @param bitmap `height * width` values, `bitmap[y * width + x]`.
 * @param height Mask height.
 * @param width Mask width.
 * @returns The compressed RLE.
 */
export function encode(bitmap: ArrayLike<number>, height: number, width: number): CocoRle {
  checkDims(height, width);
  if (bitmap.length !== height * width) {
    throw new TypeError(`Bitmap has ${bitmap.length} values, expected ${height}x${width}`);
  }
  const counts: number[] = [];
  let cur = 0;
  let run = 0;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const b = bitmap[y * width + x] ? 1 : 0;
      if (b !== cur) {
        counts.push(run);
        run = 0;
        cur = b;
      }
      run++;
    }
  }
  counts.push(run);
  return makeRle(height, width, counts);
}

/**
 * Decode an RLE into a row-major bitmap of 0/1 bytes.
 *
 * @param rle Compressed RLE.
 * @returns `height * width` bytes, `out[y * width + x]`.
 * @throws {RangeError} When the runs do not fill the mask exactly.
 */
export function decode(rle: CocoRle): Uint8Array {
  const [h, w] = rle.size;
  const counts = rleCounts(rle);
  const out = new Uint8Array(h * w);
  let p = 0;
  let v = 0;
  for (let j = 0; j < counts.length; j++) {
    const end = p + counts[j];
    if (end > h * w) throw new RangeError(`RLE runs cover ${end} pixels, more than ${h}x${w}`);
    if (v) {
      for (let q = p; q < end; q++) {
        const x = Math.floor(q / h);
        out[(q - x * h) * w + x] = 1;
      }
    }
    p = end;
    v ^= 1;
  }
  if (p !== h * w) throw new RangeError(`RLE runs cover ${p} pixels, expected ${h}x${w}`);
  return out;
}

/**
 * Number of foreground pixels.
 *
 * @param rle Compressed RLE.
 * @returns The pixel count.
 */
export function area(rle: CocoRle): number {
  const c = rleCounts(rle);
  let a = 0;
  for (let j = 1; j < c.length; j += 2) a += c[j];
  return a;
}

/**
 * Tight `[x, y, w, h]` box of the foreground (pycocotools' `toBbox`;
 * `[0, 0, 0, 0]` for an empty mask).
 *
 * @param rle Compressed RLE.
 * @returns The box.
 */
export function toBbox(rle: CocoRle): CocoBbox {
  return countsBbox(rleCounts(rle), rle.size[0], rle.size[1]);
}

function countsBbox(c: Uint32Array, h: number, w: number): CocoBbox {
  const m = Math.floor(c.length / 2) * 2;
  if (m === 0) return [0, 0, 0, 0];
  let xs = w, ys = h, xe = 0, ye = 0, cc = 0, xp = 0;
  for (let j = 0; j < m; j++) {
    cc += c[j];
    const t = cc - (j % 2);
    const y = t % h;
    const x = (t - y) / h;
    if (j % 2 === 0) xp = x;
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

function mergeTwo(a: Uint32Array, b: Uint32Array, intersect: boolean): number[] {
  const out: number[] = [];
  let ca = a[0], cb = b[0];
  let va = 0, vb = 0, v = 0;
  let ia = 1, ib = 1, cc = 0, ct = 1;
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
  return out;
}

/**
 * Union (or intersection) of masks of the same size.
 *
 * @param rles Masks to combine; one is returned unchanged, none gives a 0x0 mask.
 * @param intersect Intersect instead of unite.
 * @returns The combined mask.
 * @throws {RangeError} When the sizes differ.
 */
export function merge(rles: CocoRle[], intersect = false): CocoRle {
  if (rles.length === 0) return makeRle(0, 0, []);
  const [h, w] = rles[0].size;
  if (rles.length === 1) return rles[0];
  let acc: ArrayLike<number> = rleCounts(rles[0]);
  for (let i = 1; i < rles.length; i++) {
    const [hi, wi] = rles[i].size;
    if (hi !== h || wi !== w) {
      throw new RangeError(`Cannot merge mask ${i} of size ${hi}x${wi} with size ${h}x${w}`);
    }
    acc = mergeTwo(Uint32Array.from(acc), rleCounts(rles[i]), intersect);
  }
  return makeRle(h, w, acc);
}

function bboxIouInto(
  dt: ArrayLike<number>[],
  gt: ArrayLike<number>[],
  crowd: ArrayLike<number | boolean>,
): number[][] {
  const out: number[][] = [];
  for (let d = 0; d < dt.length; d++) {
    const db = dt[d];
    const da = db[2] * db[3];
    const row = new Array<number>(gt.length).fill(0);
    for (let g = 0; g < gt.length; g++) {
      const gb = gt[g];
      const iw = Math.min(db[2] + db[0], gb[2] + gb[0]) - Math.max(db[0], gb[0]);
      if (iw <= 0) continue;
      const ih = Math.min(db[3] + db[1], gb[3] + gb[1]) - Math.max(db[1], gb[1]);
      if (ih <= 0) continue;
      const i = iw * ih;
      const u = crowd[g] ? da : da + gb[2] * gb[3] - i;
      row[g] = i / u;
    }
    out.push(row);
  }
  return out;
}

function isRle(x: unknown): x is CocoRle {
  return typeof x === "object" && x !== null && !Array.isArray(x) && "counts" in x;
}

/**
 * IoU between detections and ground truths, as pycocotools' `iou`: masks
 * (pixel counts) or `[x, y, w, h]` boxes (continuous coordinates). For a crowd
 * ground truth the union is the detection's own area.
 *
 * @example Boxes
 * ```ts
 * import { iou } from "./mask.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(iou([[0, 0, 2, 2]], [[1, 1, 2, 2], [1, 1, 2, 2]], [0, 1]), [[1 / 7, 1 / 4]]);
 * ```
 *
 * @param dets Detection masks or boxes (`D`).
 * @param gts Ground-truth masks or boxes (`G`), the same kind as `dets`.
 * @param isCrowd One flag per ground truth.
 * @returns `[D][G]` IoUs; `-1` for masks whose sizes differ.
 */
export function iou(
  dets: CocoRle[] | ArrayLike<number>[],
  gts: CocoRle[] | ArrayLike<number>[],
  isCrowd: ArrayLike<number | boolean>,
): number[][] {
  if (isCrowd.length !== gts.length) {
    throw new TypeError(`isCrowd has ${isCrowd.length} flags for ${gts.length} ground truths`);
  }
  if (dets.length === 0 || gts.length === 0) return dets.map(() => []);
  const dIsRle = isRle(dets[0]), gIsRle = isRle(gts[0]);
  if (dIsRle !== gIsRle) {
    throw new TypeError("Detections and ground truths must both be RLEs or boxes");
  }
  if (!dIsRle) return bboxIouInto(dets as ArrayLike<number>[], gts as ArrayLike<number>[], isCrowd);
  const dr = dets as CocoRle[], gr = gts as CocoRle[];
  const dc = dr.map(rleCounts), gc = gr.map(rleCounts);
  const db = dr.map((r, i) => countsBbox(dc[i], r.size[0], r.size[1]));
  const gb = gr.map((r, i) => countsBbox(gc[i], r.size[0], r.size[1]));
  const out = bboxIouInto(db, gb, isCrowd);
  for (let d = 0; d < dr.length; d++) {
    for (let g = 0; g < gr.length; g++) {
      if (!(out[d][g] > 0)) continue;
      if (dr[d].size[0] !== gr[g].size[0] || dr[d].size[1] !== gr[g].size[1]) {
        out[d][g] = -1;
        continue;
      }
      const a = dc[d], b = gc[g];
      let ca = a[0], cb = b[0], va = 0, vb = 0, ia = 1, ib = 1, u = 0, inter = 0, ct = 1;
      while (ct > 0) {
        const c = ca < cb ? ca : cb;
        if (va || vb) {
          u += c;
          if (va && vb) inter += c;
        }
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
      }
      if (inter === 0) u = 1;
      else if (isCrowd[g]) {
        u = 0;
        for (let j = 1; j < a.length; j += 2) u += a[j];
      }
      out[d][g] = inter / u;
    }
  }
  return out;
}
