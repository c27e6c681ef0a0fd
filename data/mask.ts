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

import { cocoBoxIou } from "../boxes/coco_iou.ts";
import type {
  CocoBbox,
  CocoPolygon,
  CocoRle,
  CocoSegmentation,
  CocoUncompressedRle,
} from "./coco_types.ts";

import {
  countsFromString,
  countsToString,
  type MaskRuns,
  mergeRuns,
  polygonRuns,
  runsArea,
  runsBbox,
  runsIou,
} from "./mask_runs.ts";

export type { CocoRle, CocoUncompressedRle } from "./coco_types.ts";
export { countsFromString, countsToString } from "./mask_runs.ts";

/** Decoded run lengths, cached per RLE object so repeated IoUs decode once. */
const decodedCache = new WeakMap<CocoRle, Uint32Array>();

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

/** The decoded runs of a compressed RLE, with its size. */
function toRuns(rle: CocoRle): MaskRuns {
  return { h: rle.size[0], w: rle.size[1], counts: rleCounts(rle) };
}

function makeRle(h: number, w: number, counts: ArrayLike<number>): CocoRle {
  const rle: CocoRle = { size: [h, w], counts: countsToString(counts) };
  decodedCache.set(rle, Uint32Array.from(counts));
  return rle;
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
    return makeRle(height, width, polygonRuns(p, height, width));
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
 * Runs of any COCO segmentation, as pycocotools' `annToRLE` builds the mask:
 * polygon parts at `h`x`w`, rasterised and united; RLE at its own size. The
 * same mask as {@linkcode fromSegmentation} without building or caching a
 * compressed string (the evaluator's hot path).
 *
 * @param seg Polygon list, compressed RLE or uncompressed RLE.
 * @param h Image height (for polygons).
 * @param w Image width (for polygons).
 * @returns The mask.
 * @throws {TypeError} On a segmentation of no known form.
 */
export function segmentationRuns(seg: CocoSegmentation, h: number, w: number): MaskRuns {
  if (Array.isArray(seg)) {
    const ok = seg.length > 0 &&
      seg.every((p) =>
        Array.isArray(p) && p.length >= 4 && p.length % 2 === 0 && p.every(Number.isFinite)
      );
    if (ok && Number.isInteger(h) && Number.isInteger(w) && h >= 0 && w >= 0) {
      let counts = polygonRuns(seg[0], h, w);
      for (let i = 1; i < seg.length; i++) counts = mergeRuns(counts, polygonRuns(seg[i], h, w));
      return { h, w, counts };
    }
  } else if (
    seg !== null && typeof seg === "object" && typeof seg.counts === "string" &&
    Array.isArray(seg.size) && seg.size.length === 2 &&
    seg.size.every((v) => Number.isInteger(v) && v >= 0)
  ) {
    return { h: seg.size[0], w: seg.size[1], counts: countsFromString(seg.counts) };
  }
  // Everything else (uncompressed RLE, malformed input) takes the checked path.
  return toRuns(fromSegmentation(seg, h, w));
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
 * The mask mirrored left to right (what a horizontal flip of its image does).
 *
 * @example
 * ```ts
 * import { decode, encode, flipHorizontal } from "./mask.ts";
 * const rle = encode([1, 0, 0, 1, 1, 0], 2, 3); // rows "100" and "110"
 * console.log(Array.from(decode(flipHorizontal(rle)))); // [0, 0, 1, 0, 1, 1]
 * ```
 *
 * @param rle Compressed RLE.
 * @returns The mirrored mask, compressed.
 */
export function flipHorizontal(rle: CocoRle): CocoRle {
  const [height, width] = rle.size;
  const bits = decode(rle), out = new Uint8Array(bits.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) out[y * width + x] = bits[y * width + width - 1 - x];
  }
  return encode(out, height, width);
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
  return runsArea(rleCounts(rle));
}

/**
 * Tight `[x, y, w, h]` box of the foreground (pycocotools' `toBbox`;
 * `[0, 0, 0, 0]` for an empty mask).
 *
 * @param rle Compressed RLE.
 * @returns The box.
 */
export function toBbox(rle: CocoRle): CocoBbox {
  return runsBbox(toRuns(rle));
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
  let acc = rleCounts(rles[0]);
  for (let i = 1; i < rles.length; i++) {
    const [hi, wi] = rles[i].size;
    if (hi !== h || wi !== w) {
      throw new RangeError(`Cannot merge mask ${i} of size ${hi}x${wi} with size ${h}x${w}`);
    }
    acc = mergeRuns(acc, rleCounts(rles[i]), intersect);
  }
  return makeRle(h, w, acc);
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
  if (!dIsRle) return cocoBoxIou(dets as ArrayLike<number>[], gts as ArrayLike<number>[], isCrowd);
  const out = new Float64Array(dets.length * gts.length);
  runsIou((dets as CocoRle[]).map(toRuns), (gts as CocoRle[]).map(toRuns), isCrowd, out);
  return dets.map((_, d) => Array.from(out.subarray(d * gts.length, (d + 1) * gts.length)));
}
