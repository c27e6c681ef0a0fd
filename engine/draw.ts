/**
 * Drawing detections (used by `deno task detect`): rectangle outlines and
 * `label score` captions (a built-in 5x7 bitmap font) burnt into an RGB(A)
 * image, or an SVG that embeds the image as a PNG data URI with boxes and
 * captions on top; and a whole-factor nearest-neighbour upscale so that small
 * images become readable. Colours come from {@linkcode PALETTE} by class id.
 *
 * @module
 */

import { encodePng } from "../data/png.ts";
import { escapeXml, PALETTE } from "./svg_chart.ts";

/** An image in HWC order with 3 (RGB) or 4 (RGBA) channels of 8 bits. */
export interface RgbImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** 3 or 4. */
  channels: number;
  /** `data[(y * width + x) * channels + c]`. */
  data: Uint8Array;
}

/** One detection to draw. */
export interface DrawnBox {
  /** `[x1, y1, x2, y2]` in pixels, continuous coordinates (pixel `i` covers `[i, i + 1)`). */
  box: readonly [number, number, number, number];
  /** Class id; picks the colour. */
  classId: number;
  /** Confidence, shown in the caption to 2 significant digits. */
  score?: number;
  /** Caption; by default `classNames[classId]`, else the class id. */
  label?: string;
}

/** An RGB colour. */
export type Rgb = readonly [number, number, number];

/**
 * The colour of a class: `PALETTE[classId mod 10]` as RGB bytes.
 *
 * @example
 * ```ts
 * import { classColor } from "./draw.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(classColor(0), [0x1f, 0x77, 0xb4]);
 * assert.deepEqual(classColor(10), classColor(0));
 * ```
 *
 * @param classId Integer class id (negative ids wrap too).
 * @returns `[r, g, b]`.
 */
export function classColor(classId: number): Rgb {
  const n = PALETTE.length;
  const hex = PALETTE[((Math.trunc(classId) % n) + n) % n];
  return [
    parseInt(hex.slice(1, 3), 16),
    parseInt(hex.slice(3, 5), 16),
    parseInt(hex.slice(5, 7), 16),
  ];
}

function checkImage(image: RgbImage): void {
  const { width, height, channels, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`Image size ${width}x${height} is not positive`);
  }
  if (channels !== 3 && channels !== 4) {
    throw new TypeError(`Cannot draw on an image with ${channels} channels: expected 3 or 4`);
  }
  if (data.length !== width * height * channels) {
    throw new TypeError(
      `Image data has ${data.length} bytes, expected ${width}x${height}x${channels}`,
    );
  }
}

/**
 * Draw a rectangle outline into an image, in place. The box covers the pixel
 * columns `round(x1) .. round(x2) - 1` and rows `round(y1) .. round(y2) - 1`;
 * the outline is `thickness` pixels wide, drawn inside that area. Parts
 * outside the image are clipped (an edge outside the image is not drawn).
 * Alpha, if any, is set to 255 on drawn pixels.
 *
 * @example
 * ```ts
 * import { strokeRect } from "./draw.ts";
 * import assert from "node:assert/strict";
 *
 * const img = { width: 5, height: 5, channels: 3, data: new Uint8Array(75) };
 * strokeRect(img, [1, 1, 4, 4], [255, 0, 0], 1);
 * const red = (x: number, y: number) => img.data[(y * 5 + x) * 3] === 255;
 * assert.ok(red(1, 1) && red(3, 3) && red(2, 1));
 * assert.ok(!red(2, 2) && !red(4, 4) && !red(0, 0));
 * ```
 *
 * @param image Target, changed in place.
 * @param box `[x1, y1, x2, y2]` in pixels.
 * @param color RGB bytes.
 * @param thickness Line width in pixels (default 2).
 * @throws {TypeError} When the image is not 3 or 4 channels or its data has the wrong size.
 * @throws {RangeError} When `thickness` is not a positive integer.
 */
export function strokeRect(
  image: RgbImage,
  box: readonly [number, number, number, number],
  color: Rgb,
  thickness = 2,
): void {
  checkImage(image);
  if (!Number.isInteger(thickness) || thickness < 1) {
    throw new RangeError(`Line thickness ${thickness} is not a positive integer`);
  }
  if (!box.every(Number.isFinite)) return;
  const { width, height, channels, data } = image;
  const x0 = Math.round(Math.min(box[0], box[2])), x1 = Math.round(Math.max(box[0], box[2])) - 1;
  const y0 = Math.round(Math.min(box[1], box[3])), y1 = Math.round(Math.max(box[1], box[3])) - 1;
  if (x1 < x0 || y1 < y0) return;
  const put = (x: number, y: number) => {
    const o = (y * width + x) * channels;
    data[o] = color[0], data[o + 1] = color[1], data[o + 2] = color[2];
    if (channels === 4) data[o + 3] = 255;
  };
  const cx0 = Math.max(0, x0), cx1 = Math.min(width - 1, x1);
  const cy0 = Math.max(0, y0), cy1 = Math.min(height - 1, y1);
  for (let y = cy0; y <= cy1; y++) {
    if (y < y0 + thickness || y > y1 - thickness) {
      for (let x = cx0; x <= cx1; x++) put(x, y);
    } else {
      for (let x = cx0; x <= Math.min(cx1, x0 + thickness - 1); x++) put(x, y);
      for (let x = Math.max(cx0, x1 - thickness + 1); x <= cx1; x++) put(x, y);
    }
  }
}

/** Options of {@linkcode drawBoxes} and {@linkcode detectionsSvg}. */
export interface DrawOptions {
  /** Line width in pixels (default 2). */
  thickness?: number;
  /** Per-class colour; by default {@linkcode classColor}. */
  color?: (classId: number) => Rgb;
  /** Class names by class id, for captions. */
  classNames?: readonly string[] | Readonly<Record<number, string>>;
  /** {@linkcode drawBoxes}: also caption each box with `label score` (default false). */
  captions?: boolean;
  /** {@linkcode drawBoxes}: caption text size, a whole multiple of the 5x7 font (default 1). */
  textScale?: number;
}

/**
 * A copy of the image with each detection's outline drawn in its class
 * colour and, with `captions`, a filled tab in that colour holding
 * `label score` (score to 2 significant digits) in the 5x7 font. A tab goes
 * above its box, else inside at its top, below it or inside at its bottom,
 * at the first of these that stays in the image and clear of the tabs of
 * later boxes; it is shifted left to stay in the image. Outlines are drawn
 * first, then the captions; later boxes are drawn over earlier ones.
 *
 * @example
 * ```ts
 * import { classColor, drawBoxes } from "./draw.ts";
 * import assert from "node:assert/strict";
 *
 * const img = { width: 8, height: 6, channels: 3, data: new Uint8Array(8 * 6 * 3) };
 * const out = drawBoxes(img, [{ box: [2, 1, 7, 5], classId: 3 }], { thickness: 1 });
 * const at = (x: number, y: number) => Array.from(out.data.subarray((y * 8 + x) * 3, (y * 8 + x) * 3 + 3));
 * assert.deepEqual(at(2, 1), [...classColor(3)]);
 * assert.deepEqual(at(4, 3), [0, 0, 0]);
 * assert.equal(img.data[(1 * 8 + 2) * 3], 0); // the input is unchanged
 * ```
 *
 * @param image RGB or RGBA image.
 * @param boxes Detections.
 * @param options Thickness, colours, captions and their size.
 * @returns A new image of the same size and channels.
 * @throws {TypeError} When the image is not 3 or 4 channels or its data has the wrong size.
 * @throws {RangeError} When `textScale` is not a positive integer.
 */
export function drawBoxes(
  image: RgbImage,
  boxes: readonly DrawnBox[],
  options: DrawOptions = {},
): RgbImage {
  checkImage(image);
  const scale = options.textScale ?? 1;
  if (!Number.isInteger(scale) || scale < 1) {
    throw new RangeError(`Text scale ${scale} is not a positive integer`);
  }
  const out = { ...image, data: image.data.slice() };
  const color = options.color ?? classColor;
  for (const b of boxes) strokeRect(out, b.box, color(b.classId), options.thickness ?? 2);
  if (!options.captions) return out;
  const pad = scale, tabH = GLYPH_HEIGHT * scale + 2 * pad;
  // Place the tabs from the last box (drawn on top) back, each at the first of its candidate
  // spots that no placed tab overlaps; then draw them in list order.
  type Tab = { x: number; y: number; w: number; caption: string; c: Rgb };
  const tabs: (Tab | undefined)[] = new Array(boxes.length);
  const placed: Tab[] = [];
  const overlaps = (a: Tab, b: Tab) =>
    a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + tabH && b.y < a.y + tabH;
  for (let i = boxes.length - 1; i >= 0; i--) {
    const b = boxes[i];
    if (!b.box.every(Number.isFinite)) continue;
    const caption = captionOf(b, options.classNames);
    const w = textWidth(caption, scale) + 2 * pad;
    const x = Math.max(0, Math.min(Math.round(Math.min(b.box[0], b.box[2])), out.width - w));
    const top = Math.round(Math.min(b.box[1], b.box[3]));
    const bottom = Math.round(Math.max(b.box[1], b.box[3]));
    const fits = (y: number) => y >= 0 && y + tabH <= out.height;
    // Above the box, inside at its top, below it, inside at its bottom.
    const spots = [top - tabH, top, bottom, bottom - tabH].filter(fits);
    if (spots.length === 0) spots.push(Math.max(0, top));
    const candidates = spots.map((y) => ({ x, y, w, caption, c: color(b.classId) }));
    const tab = candidates.find((t) => !placed.some((p) => overlaps(t, p))) ?? candidates[0];
    placed.push(tab);
    tabs[i] = tab;
  }
  for (const t of tabs) {
    if (!t) continue;
    fillRect(out, [t.x, t.y, t.x + t.w, t.y + tabH], t.c);
    drawText(out, t.x + pad, t.y + pad, t.caption, textColorOn(t.c), scale);
  }
  return out;
}

/**
 * Black or white, whichever reads better on `background` (by its luma).
 *
 * @example
 * ```ts
 * import { textColorOn } from "./draw.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(textColorOn([0x1f, 0x77, 0xb4]), [255, 255, 255]);
 * assert.deepEqual(textColorOn([0xbc, 0xbd, 0x22]), [0, 0, 0]);
 * ```
 *
 * @param background RGB bytes.
 * @returns `[0, 0, 0]` or `[255, 255, 255]`.
 */
export function textColorOn(background: Rgb): Rgb {
  const luma = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2];
  return luma > 150 ? [0, 0, 0] : [255, 255, 255];
}

/**
 * Fill a rectangle in place: pixel columns `round(x1) .. round(x2) - 1` and
 * rows `round(y1) .. round(y2) - 1`, clipped to the image. Alpha, if any, is
 * set to 255 on filled pixels.
 *
 * @example
 * ```ts
 * import { fillRect } from "./draw.ts";
 * import assert from "node:assert/strict";
 *
 * const img = { width: 4, height: 3, channels: 3, data: new Uint8Array(36) };
 * fillRect(img, [1, 1, 9, 2], [7, 7, 7]); // clipped at the right edge
 * const rows = Array.from({ length: 3 }, (_, y) =>
 *   Array.from({ length: 4 }, (_, x) => (img.data[(y * 4 + x) * 3] ? "#" : ".")).join(""));
 * assert.deepEqual(rows, ["....", ".###", "...."]);
 * ```
 *
 * @param image Target, changed in place.
 * @param box `[x1, y1, x2, y2]` in pixels.
 * @param color RGB bytes.
 * @throws {TypeError} When the image is not 3 or 4 channels or its data has the wrong size.
 */
export function fillRect(
  image: RgbImage,
  box: readonly [number, number, number, number],
  color: Rgb,
): void {
  checkImage(image);
  if (!box.every(Number.isFinite)) return;
  const { width, height, channels, data } = image;
  const x0 = Math.max(0, Math.round(Math.min(box[0], box[2])));
  const x1 = Math.min(width, Math.round(Math.max(box[0], box[2])));
  const y0 = Math.max(0, Math.round(Math.min(box[1], box[3])));
  const y1 = Math.min(height, Math.round(Math.max(box[1], box[3])));
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const o = (y * width + x) * channels;
      data[o] = color[0], data[o + 1] = color[1], data[o + 2] = color[2];
      if (channels === 4) data[o + 3] = 255;
    }
  }
}

/**
 * Tints the pixels of a mask with a colour, in place: each covered pixel
 * becomes `(1 - alpha) * pixel + alpha * color`. The mask may be smaller
 * than the image by a whole factor (`image.width = factor * mask width`, as
 * after {@linkcode upscale}): image pixel `(x, y)` reads mask pixel
 * `(floor(x / factor), floor(y / factor))`.
 *
 * @example
 * ```ts
 * import { tintMask } from "./draw.ts";
 * import assert from "node:assert/strict";
 *
 * const img = { width: 4, height: 2, channels: 3, data: new Uint8Array(24) };
 * tintMask(img, Uint8Array.of(1, 0), 1, 2, [200, 100, 0], 0.5, 2);
 * assert.deepEqual(Array.from(img.data.subarray(0, 6)), [100, 50, 0, 100, 50, 0]);
 * assert.equal(img.data[6], 0); // x = 2 reads the mask's second pixel
 * ```
 *
 * @param image Target, changed in place.
 * @param mask Row-major 0/1 values, `maskHeight * maskWidth`.
 * @param maskHeight Mask rows.
 * @param maskWidth Mask columns.
 * @param color RGB bytes.
 * @param alpha Opacity of the tint in `[0, 1]`.
 * @param factor Image pixels per mask pixel along each axis (default 1).
 * @throws {TypeError} When the image is malformed or the sizes disagree.
 */
export function tintMask(
  image: RgbImage,
  mask: ArrayLike<number>,
  maskHeight: number,
  maskWidth: number,
  color: Rgb,
  alpha: number,
  factor = 1,
): void {
  checkImage(image);
  const { width, height, channels, data } = image;
  if (
    mask.length !== maskHeight * maskWidth || width !== maskWidth * factor ||
    height !== maskHeight * factor
  ) {
    throw new TypeError(
      `A ${maskHeight}x${maskWidth} mask (${mask.length} values) at factor ${factor} ` +
        `does not cover a ${height}x${width} image`,
    );
  }
  for (let y = 0; y < height; y++) {
    const row = Math.floor(y / factor) * maskWidth;
    for (let x = 0; x < width; x++) {
      if (!mask[row + Math.floor(x / factor)]) continue;
      const o = (y * width + x) * channels;
      for (let c = 0; c < 3; c++) {
        data[o + c] = Math.round((1 - alpha) * data[o + c] + alpha * color[c]);
      }
    }
  }
}

/** Width of a glyph of the built-in font, in pixels at text scale 1. */
export const GLYPH_WIDTH = 5;
/** Height of a glyph of the built-in font, in pixels at text scale 1. */
export const GLYPH_HEIGHT = 7;
/** Horizontal advance from one character to the next at text scale 1. */
const ADVANCE = GLYPH_WIDTH + 1;

/**
 * A 5x7 bitmap font for printable ASCII (`" "` to `"~"`, 95 glyphs), drawn
 * for this module: 7 characters per glyph, one per row from the top, each a
 * base-32 digit (`0-9a-v`) whose bit 4 is the leftmost column.
 */
const FONT_5X7 = "00000004444404aa00000aavavaa4fke5u4op248j3cik8lid4400000" +
  "2488842842224804lel40044v4400000c48000v00000000cc01248g0" +
  "ehjlphe4c4444eeh1248vv2421he26aiv22vgu11he68guhhev124888" +
  "ehhehheehhf12c0cc0cc00cc0c48248g84200v0v008421248eh12404" +
  "eh1dlleehhvhhhuhhuhhuehggghesihhhisvgguggvvggugggehgnhhf" +
  "hhhvhhhe44444e72222ichikokihggggggvhrllhhhhhpljhhehhhhhe" +
  "uhhugggehhhliduhhukihfgge11uv444444hhhhhhehhhhha4hhhllla" +
  "hha4ahhhha4444v1248gve88888e0g84210e22222e4ah0000000000v" +
  "842000000e1fhfggmphhu00egghe11djhhf00ehvge698s88800fhf1e" +
  "ggmphhh40c444e20622icggikokic44444e00qllhh00mphhh00ehhhe" +
  "00uhugg00djf1100mpggg00ege1u88s889600hhhjd00hhha400hhlla" +
  "00ha4ah00hhf1e00v248v244844244444448442448008l200";

/** The 7 row bitmaps of a character; characters outside printable ASCII draw as `"?"`. */
function glyphRows(ch: string): number[] {
  let code = ch.charCodeAt(0);
  if (!(code >= 32 && code <= 126)) code = 63;
  const at = (code - 32) * GLYPH_HEIGHT;
  return Array.from({ length: GLYPH_HEIGHT }, (_, r) => parseInt(FONT_5X7[at + r], 32));
}

/**
 * Width in pixels of `text` drawn by {@linkcode drawText} (one blank column
 * between characters, none after the last).
 *
 * @example
 * ```ts
 * import { textWidth } from "./draw.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(textWidth("ab"), 11);
 * assert.equal(textWidth("ab", 2), 22);
 * assert.equal(textWidth(""), 0);
 * ```
 *
 * @param text One line of text.
 * @param scale Whole multiple of the 5x7 font (default 1).
 * @returns Pixels.
 */
export function textWidth(text: string, scale = 1): number {
  return text.length === 0 ? 0 : (text.length * ADVANCE - 1) * scale;
}

/**
 * Draw one line of text in place with the built-in 5x7 font, its top-left
 * corner at `(x, y)`, each font pixel a `scale` x `scale` square; clipped to
 * the image. Only the glyphs' pixels are drawn (no background); characters
 * outside printable ASCII draw as `"?"`.
 *
 * @example
 * ```ts
 * import { drawText } from "./draw.ts";
 * import assert from "node:assert/strict";
 *
 * const img = { width: 5, height: 7, channels: 3, data: new Uint8Array(105) };
 * drawText(img, 0, 0, "T", [255, 255, 255]);
 * const rows = Array.from({ length: 7 }, (_, y) =>
 *   Array.from({ length: 5 }, (_, x) => (img.data[(y * 5 + x) * 3] ? "#" : ".")).join(""));
 * assert.deepEqual(rows, ["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."]);
 * ```
 *
 * @param image Target, changed in place.
 * @param x Left edge in pixels.
 * @param y Top edge in pixels.
 * @param text One line of text.
 * @param color RGB bytes.
 * @param scale Whole multiple of the 5x7 font (default 1).
 * @throws {TypeError} When the image is not 3 or 4 channels or its data has the wrong size.
 * @throws {RangeError} When `scale` is not a positive integer.
 */
export function drawText(
  image: RgbImage,
  x: number,
  y: number,
  text: string,
  color: Rgb,
  scale = 1,
): void {
  checkImage(image);
  if (!Number.isInteger(scale) || scale < 1) {
    throw new RangeError(`Text scale ${scale} is not a positive integer`);
  }
  x = Math.round(x), y = Math.round(y);
  for (let i = 0; i < text.length; i++) {
    const rows = glyphRows(text[i]);
    const gx = x + i * ADVANCE * scale;
    for (let r = 0; r < GLYPH_HEIGHT; r++) {
      for (let c = 0; c < GLYPH_WIDTH; c++) {
        if (!(rows[r] & (1 << (GLYPH_WIDTH - 1 - c)))) continue;
        const px = gx + c * scale, py = y + r * scale;
        fillRect(image, [px, py, px + scale, py + scale], color);
      }
    }
  }
}

/**
 * A copy of the image scaled up by a whole `factor`, nearest neighbour:
 * output pixel `(x, y)` is input pixel `(floor(x / factor), floor(y / factor))`,
 * so a box `[x1, y1, x2, y2]` on the input covers `factor` times those
 * coordinates on the output.
 *
 * @example
 * ```ts
 * import { upscale } from "./draw.ts";
 * import assert from "node:assert/strict";
 *
 * const img = { width: 2, height: 1, channels: 3, data: new Uint8Array([1, 2, 3, 4, 5, 6]) };
 * const big = upscale(img, 2);
 * assert.equal(big.width, 4);
 * assert.equal(big.height, 2);
 * assert.deepEqual([...big.data.subarray(0, 12)], [1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6]);
 * ```
 *
 * @param image RGB or RGBA image.
 * @param factor Positive integer (1 gives a copy).
 * @returns A new image `factor` times wider and higher.
 * @throws {TypeError} When the image is not 3 or 4 channels or its data has the wrong size.
 * @throws {RangeError} When `factor` is not a positive integer.
 */
export function upscale(image: RgbImage, factor: number): RgbImage {
  checkImage(image);
  if (!Number.isInteger(factor) || factor < 1) {
    throw new RangeError(`Upscale factor ${factor} is not a positive integer`);
  }
  const { width, height, channels, data } = image;
  const W = width * factor, H = height * factor;
  const out = new Uint8Array(W * H * channels);
  const row = new Uint8Array(W * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < W; x++) {
      const s = (y * width + Math.floor(x / factor)) * channels;
      row.set(data.subarray(s, s + channels), x * channels);
    }
    for (let k = 0; k < factor; k++) out.set(row, (y * factor + k) * W * channels);
  }
  return { width: W, height: H, channels, data: out };
}

/**
 * Bytes as base64 text.
 *
 * @example
 * ```ts
 * import { toBase64 } from "./draw.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(toBase64(new TextEncoder().encode("hello")), "aGVsbG8=");
 * ```
 *
 * @param bytes Data.
 * @returns Base64 (standard alphabet, padded).
 */
export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function captionOf(b: DrawnBox, names: DrawOptions["classNames"]): string {
  const name = b.label ?? (names as Record<number, string> | undefined)?.[b.classId] ??
    String(b.classId);
  return b.score === undefined ? name : `${name} ${b.score.toPrecision(2)}`;
}

const hexOf = (c: Rgb) => "#" + c.map((v) => v.toString(16).padStart(2, "0")).join("");

/**
 * An SVG of the image (embedded as a base64 PNG data URI) with each
 * detection's box outlined in its class colour and captioned
 * `label score` on a filled tab above the box (inside it when the box
 * touches the top edge).
 *
 * @example
 * ```ts
 * import { detectionsSvg } from "./draw.ts";
 * import assert from "node:assert/strict";
 *
 * const img = { width: 4, height: 4, channels: 3, data: new Uint8Array(48) };
 * const svg = await detectionsSvg(img, [{ box: [0, 0, 3, 2], classId: 1, score: 0.876 }], {
 *   classNames: ["cat", "dog"],
 * });
 * assert.ok(svg.includes('href="data:image/png;base64,'));
 * assert.ok(svg.includes(">dog 0.88</text>"));
 * ```
 *
 * @param image RGB or RGBA image.
 * @param boxes Detections.
 * @param options Thickness, colours and class names.
 * @returns SVG text.
 * @throws {TypeError} When the image is not 3 or 4 channels or its data has the wrong size.
 */
export async function detectionsSvg(
  image: RgbImage,
  boxes: readonly DrawnBox[],
  options: DrawOptions = {},
): Promise<string> {
  checkImage(image);
  const { width: W, height: H } = image;
  const png = await encodePng(image);
  const t = options.thickness ?? 2;
  const color = options.color ?? classColor;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" ` +
    `viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<image width="${W}" height="${H}" href="data:image/png;base64,${toBase64(png)}"/>`,
  ];
  for (const b of boxes) {
    if (!b.box.every(Number.isFinite)) continue;
    const [x1, y1, x2, y2] = b.box;
    const x = Math.min(x1, x2), y = Math.min(y1, y2);
    const w = Math.abs(x2 - x1), h = Math.abs(y2 - y1);
    const c = hexOf(color(b.classId));
    const caption = captionOf(b, options.classNames);
    const tw = 6.2 * caption.length + 6;
    const ty = y >= 14 ? y - 14 : y; // tab above the box, or inside at the top edge
    const r = (v: number) => String(Math.round(v * 100) / 100);
    out.push(
      `<g class="det" data-class="${b.classId}">`,
      `<rect x="${r(x + t / 2)}" y="${r(y + t / 2)}" width="${r(Math.max(0, w - t))}" ` +
        `height="${r(Math.max(0, h - t))}" fill="none" stroke="${c}" stroke-width="${t}"/>`,
      `<rect x="${r(x)}" y="${r(ty)}" width="${r(tw)}" height="14" fill="${c}"/>`,
      `<text x="${r(x + 3)}" y="${r(ty + 11)}" fill="white">${escapeXml(caption)}</text>`,
      `</g>`,
    );
  }
  out.push("</svg>", "");
  return out.join("\n");
}
