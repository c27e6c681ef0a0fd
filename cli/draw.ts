/**
 * Drawing detections for the `detect` task: rectangle outlines burnt into an
 * RGB(A) image, or an SVG that embeds the image as a PNG data URI with boxes
 * and `label score` captions on top. Colours come from
 * {@linkcode PALETTE} by class id.
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
  /** Confidence, shown with the label in SVG. */
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
}

/**
 * A copy of the image with each detection's outline drawn in its class
 * colour (no text). Later boxes are drawn over earlier ones.
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
 * @param options Thickness and colours.
 * @returns A new image of the same size and channels.
 * @throws {TypeError} When the image is not 3 or 4 channels or its data has the wrong size.
 */
export function drawBoxes(
  image: RgbImage,
  boxes: readonly DrawnBox[],
  options: DrawOptions = {},
): RgbImage {
  checkImage(image);
  const out = { ...image, data: image.data.slice() };
  const color = options.color ?? classColor;
  for (const b of boxes) strokeRect(out, b.box, color(b.classId), options.thickness ?? 2);
  return out;
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
  return b.score === undefined ? name : `${name} ${b.score.toFixed(2)}`;
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
