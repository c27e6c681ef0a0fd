/**
 * Pasting Mask R-CNN mask probabilities into the image (mmdetection 2.25
 * `FCNMaskHead.get_seg_masks` with `_do_paste_mask`, CPU path): a
 * `size x size` probability map is resampled into its detection box by
 * bilinear grid sampling (PyTorch `grid_sample`, zero padding,
 * `align_corners=False`) over a window one pixel around the box, then
 * thresholded (`>= 0.5` gives 1).
 *
 * Every operation is rounded to float32 in PyTorch's order, so the values
 * equal its generic CPU kernel bit for bit (tests/fixtures/mask_rcnn/).
 *
 * @module
 */

import { type CocoRle, encode } from "../data/mask.ts";

const f32 = Math.fround;

/** Rows `y0 … y1 - 1` and columns `x0 … x1 - 1` of an image: `[y0, y1, x0, x1]`. */
export type PasteWindow = [y0: number, y1: number, x0: number, x1: number];

function checkImage(op: string, height: number, width: number): void {
  for (const [name, v] of [["imageHeight", height], ["imageWidth", width]] as const) {
    if (!Number.isInteger(v) || v < 0) {
      throw new RangeError(`${op}: ${name} ${v} is not a non-negative integer`);
    }
  }
}

/** The box as four float32 numbers; errors name detection `index` when given. */
function checkBox(op: string, box: ArrayLike<number>, index?: number): number[] {
  const what = index === undefined ? "box" : `box ${index}`;
  if (box.length !== 4) throw new TypeError(`${op}: ${what} has ${box.length} values, expected 4`);
  const out = [f32(box[0]), f32(box[1]), f32(box[2]), f32(box[3])];
  if (!out.every(Number.isFinite)) {
    throw new RangeError(`${op}: ${what} [${Array.from(box).join(", ")}] is not finite`);
  }
  return out;
}

/** Side `S` of a `[S, S]` map with `length` values. */
function mapSide(op: string, length: number): number {
  const side = Math.round(Math.sqrt(length));
  if (side < 1 || side * side !== length) {
    throw new TypeError(`${op}: mask map has ${length} values, not a square [S, S]`);
  }
  return side;
}

/**
 * The window mmdetection's CPU path pastes into: `floor(x0) - 1 … ceil(x1) + 1`
 * and the same in y, each bound clamped on one side only (to `0` below, to the
 * image size above). `null` where mmdetection raises (PyTorch's `arange`
 * error): when `x1 <= -2` or `x0 >= imageWidth + 2`, or the same in y. Equal
 * bounds give an empty window.
 *
 * @example
 * ```ts
 * import { pasteWindow } from "./paste_masks.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(pasteWindow([2.5, 3, 10, 8.2], 20, 9), [2, 10, 1, 9]);
 * assert.equal(pasteWindow([-9, 1, -3, 5], 20, 9), null);
 * ```
 *
 * @param box `[x0, y0, x1, y1]` in image pixels (rounded to float32).
 * @param imageHeight Image height.
 * @param imageWidth Image width.
 * @returns `[y0, y1, x0, x1]`, or `null`.
 */
export function pasteWindow(
  box: ArrayLike<number>,
  imageHeight: number,
  imageWidth: number,
): PasteWindow | null {
  const op = "pasteWindow";
  checkImage(op, imageHeight, imageWidth);
  return windowOf(checkBox(op, box), imageHeight, imageWidth);
}

function windowOf(b: readonly number[], height: number, width: number): PasteWindow | null {
  const x0 = Math.max(Math.floor(b[0]) - 1, 0), y0 = Math.max(Math.floor(b[1]) - 1, 0);
  const x1 = Math.min(Math.ceil(b[2]) + 1, width), y1 = Math.min(Math.ceil(b[3]) + 1, height);
  return x1 < x0 || y1 < y0 ? null : [y0, y1, x0, x1];
}

/** Sample positions of the window's pixel centres along one axis of the map. */
interface AxisTaps {
  /** Index of the lower tap (`floor`; NaN for a NaN coordinate). */
  low: Float64Array;
  /** Weight of the upper tap (float32). */
  upper: Float32Array;
  /** Weight of the lower tap, `1 - upper` (float32). */
  lower: Float32Array;
}

/**
 * Grid coordinate of pixels `from … to - 1` in the box `[start, end]`
 * (mmdetection's `(p + 0.5 - x0) / (x1 - x0) * 2 - 1`, ±∞ replaced by 0, NaN
 * kept), unnormalised onto a map of `side` cells (`align_corners=False`).
 */
function axisTaps(start: number, end: number, from: number, to: number, side: number): AxisTaps {
  const n = Math.max(to - from, 0);
  const taps = {
    low: new Float64Array(n),
    upper: new Float32Array(n),
    lower: new Float32Array(n),
  };
  const extent = f32(end - start), half = side / 2;
  for (let k = 0; k < n; k++) {
    let g = f32(f32(f32(f32(f32(from + k + 0.5) - start) / extent) * 2) - 1);
    if (g === Infinity || g === -Infinity) g = 0;
    const i = f32(f32(f32(g + 1) * half) - 0.5);
    const low = Math.floor(i);
    const upper = f32(i - low);
    taps.low[k] = low;
    taps.upper[k] = upper;
    taps.lower[k] = f32(1 - upper);
  }
  return taps;
}

/**
 * The pasted probabilities over `window` before thresholding: for each pixel
 * centre, the bilinear sample of the `[S, S]` map (zeros outside it) at its
 * place in the box. The window is usually {@linkcode pasteWindow}'s;
 * `[0, imageHeight, 0, imageWidth]` gives the whole-image variant (how
 * mmdetection pastes on a GPU). A zero-width box maps every column to the
 * map's centre (±∞ grid values become 0), except a column whose centre lies
 * exactly on it, which is NaN (0 / 0); the same holds for rows.
 *
 * @example A 2 x 2 map pasted into a 2 x 2 box: each pixel centre lands on a map cell
 * ```ts
 * import { pasteMaskValues } from "./paste_masks.ts";
 *
 * const values = pasteMaskValues([0, 1, 1, 1], [0, 0, 2, 2], [0, 2, 0, 2]);
 * console.log(values); // Float32Array [0, 1, 1, 1]
 * ```
 *
 * @param prob `[S, S]` probabilities (rounded to float32).
 * @param box `[x0, y0, x1, y1]` in image pixels (rounded to float32).
 * @param window `[y0, y1, x0, x1]` pixels to fill.
 * @returns `[y1 - y0, x1 - x0]` float32 values (NaN where the grid is 0 / 0).
 */
export function pasteMaskValues(
  prob: ArrayLike<number>,
  box: ArrayLike<number>,
  window: PasteWindow,
): Float32Array {
  const op = "pasteMaskValues";
  const side = mapSide(op, prob.length);
  const b = checkBox(op, box);
  const [y0, y1, x0, x1] = window;
  if (![y0, y1, x0, x1].every(Number.isInteger) || y1 < y0 || x1 < x0) {
    throw new RangeError(`${op}: window [${window.join(", ")}] is not [y0, y1, x0, x1]`);
  }
  return sampleWindow(Float32Array.from(prob), side, b, window);
}

function sampleWindow(
  map: Float32Array,
  side: number,
  box: readonly number[],
  window: PasteWindow,
): Float32Array {
  const [y0, y1, x0, x1] = window;
  const rows = y1 - y0, cols = x1 - x0;
  const xs = axisTaps(box[0], box[2], x0, x1, side);
  const ys = axisTaps(box[1], box[3], y0, y1, side);
  const tap = (y: number, x: number) =>
    y >= 0 && y < side && x >= 0 && x < side ? map[y * side + x] : 0;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const yn = ys.low[r], n = ys.upper[r], s = ys.lower[r];
    for (let c = 0; c < cols; c++) {
      const xw = xs.low[c], w = xs.upper[c], e = xs.lower[c];
      // ((v_nw nw + v_ne ne) + v_sw sw) + v_se se; a NaN weight makes NaN even on a zero tap.
      let v = f32(tap(yn, xw) * f32(s * e));
      v = f32(v + f32(tap(yn, xw + 1) * f32(s * w)));
      v = f32(v + f32(tap(yn + 1, xw) * f32(n * e)));
      v = f32(v + f32(tap(yn + 1, xw + 1) * f32(n * w)));
      out[r * cols + c] = v;
    }
  }
  return out;
}

/**
 * Writes the binary paste of one map into `out` (`[height, width]`, cleared
 * first). Inputs are checked by the caller.
 */
function pasteInto(
  out: Uint8Array,
  map: Float32Array,
  side: number,
  box: readonly number[],
  height: number,
  width: number,
  threshold: number,
): void {
  out.fill(0);
  const window = windowOf(box, height, width) ?? [0, height, 0, width];
  const values = sampleWindow(map, side, box, window);
  const [y0, y1, x0, x1] = window;
  const cols = x1 - x0;
  for (let r = 0; r < y1 - y0; r++) {
    const at = (y0 + r) * width + x0;
    for (let c = 0; c < cols; c++) out[at + c] = values[r * cols + c] >= threshold ? 1 : 0;
  }
}

function checkThreshold(op: string, threshold: number): number {
  if (typeof threshold !== "number" || Number.isNaN(threshold)) {
    throw new RangeError(`${op}: threshold ${threshold} is not a number`);
  }
  return f32(threshold);
}

/**
 * Pastes one mask probability map into its detection box and binarises it
 * (mmdetection's `get_seg_masks`, CPU path): values `>= threshold` inside
 * {@linkcode pasteWindow}'s window give 1, NaN values and every pixel outside
 * the window give 0.
 *
 * Where mmdetection's CPU path raises (a box more than one pixel outside the
 * image, so that no window can be formed), this returns the whole-image
 * variant's result instead (mmdetection's GPU path; all zeros for a box of
 * positive size).
 *
 * @example A map of ones fills its box
 * ```ts
 * import { pasteMask } from "./paste_masks.ts";
 * import assert from "node:assert/strict";
 *
 * const mask = pasteMask(new Float32Array(28 * 28).fill(1), [1, 1, 3, 2], 3, 4);
 * assert.deepEqual(Array.from(mask), [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
 * ```
 *
 * @param prob `[S, S]` probabilities after the sigmoid (28 x 28 in Mask R-CNN).
 * @param box `[x0, y0, x1, y1]` in the pixels of the image pasted into.
 * @param imageHeight Image height.
 * @param imageWidth Image width.
 * @param threshold Binarisation threshold (compared in float32); default 0.5.
 * @returns `[imageHeight, imageWidth]` of 0 and 1.
 * @throws {TypeError} When `prob` is not square or `box` has not 4 values.
 * @throws {RangeError} For a non-finite box, a bad image size or a NaN threshold.
 */
export function pasteMask(
  prob: ArrayLike<number>,
  box: ArrayLike<number>,
  imageHeight: number,
  imageWidth: number,
  threshold = 0.5,
): Uint8Array {
  const op = "pasteMask";
  const side = mapSide(op, prob.length);
  const b = checkBox(op, box);
  checkImage(op, imageHeight, imageWidth);
  const thr = checkThreshold(op, threshold);
  const out = new Uint8Array(imageHeight * imageWidth);
  pasteInto(out, Float32Array.from(prob), side, b, imageHeight, imageWidth, thr);
  return out;
}

/**
 * {@linkcode pasteMask} for every detection of an image, each encoded as a
 * COCO RLE (`data/mask.ts` `encode`) for evaluation; one image-sized buffer
 * is reused.
 *
 * @example Two detections
 * ```ts
 * import { pasteMasksToRle } from "./paste_masks.ts";
 * import * as mask from "../data/mask.ts";
 * import assert from "node:assert/strict";
 *
 * const probs = new Float32Array(2 * 28 * 28).fill(0.9);
 * const rles = pasteMasksToRle(probs, [0, 0, 4, 3, 5, 2, 9, 8], 10, 12);
 * assert.deepEqual(rles.map(mask.area), [12, 24]);
 * ```
 *
 * @param probs `[N, S, S]` probabilities.
 * @param boxes `[N, 4]` xyxy boxes in the pixels of the image pasted into.
 * @param imageHeight Image height.
 * @param imageWidth Image width.
 * @param threshold Binarisation threshold; default 0.5.
 * @returns `N` RLEs of size `[imageHeight, imageWidth]`.
 * @throws {TypeError} When `probs` does not hold `N` square maps.
 */
export function pasteMasksToRle(
  probs: ArrayLike<number>,
  boxes: ArrayLike<number>,
  imageHeight: number,
  imageWidth: number,
  threshold = 0.5,
): CocoRle[] {
  const op = "pasteMasksToRle";
  checkImage(op, imageHeight, imageWidth);
  const thr = checkThreshold(op, threshold);
  if (boxes.length % 4 !== 0) {
    throw new TypeError(`${op}: ${boxes.length} box coordinates, not a multiple of 4`);
  }
  const n = boxes.length / 4;
  if (n === 0) return [];
  if (probs.length % n !== 0) {
    throw new TypeError(`${op}: ${probs.length} probabilities for ${n} boxes`);
  }
  const cells = probs.length / n;
  const side = mapSide(op, cells);
  const maps = Float32Array.from(probs);
  const all = Array.from(boxes);
  const checked = Array.from({ length: n }, (_, i) => checkBox(op, all.slice(4 * i, 4 * i + 4), i));
  const bitmap = new Uint8Array(imageHeight * imageWidth);
  return checked.map((b, i) => {
    pasteInto(
      bitmap,
      maps.subarray(i * cells, (i + 1) * cells),
      side,
      b,
      imageHeight,
      imageWidth,
      thr,
    );
    return encode(bitmap, imageHeight, imageWidth);
  });
}
