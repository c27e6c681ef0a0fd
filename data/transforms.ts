/**
 * Training transforms on one sample: resize keeping the aspect ratio
 * (bilinear), random horizontal flip, photometric jitter, normalisation to a
 * CHW float image, and padding to a multiple of a stride. Boxes and masks
 * follow the image. Random choices come from an explicit {@linkcode Rng}, so a
 * seed fixes the result.
 *
 * @example Resize and flip
 * ```ts
 * import { flipSample, resizeSample, type Sample } from "./transforms.ts";
 * import assert from "node:assert/strict";
 *
 * const s: Sample = {
 *   image: { width: 4, height: 2, channels: 3, data: new Uint8Array(24) },
 *   boxes: Float32Array.of(0, 0, 1, 2),
 *   labels: Int32Array.of(0),
 *   meta: { imageId: 1, originalWidth: 4, originalHeight: 2, scaleX: 1, scaleY: 1, flipped: false },
 * };
 * const r = flipSample(resizeSample(s, 4, 100));
 * assert.deepEqual(Array.from(r.boxes), [6, 0, 8, 4]);
 * ```
 *
 * @module
 */

import type { DecodedImage } from "./image.ts";
import type { Rng } from "../tensor/rng.ts";

/** Where a sample came from and what was done to it (to map predictions back). */
export interface SampleMeta {
  /** COCO image id. */
  imageId: number;
  /** Width of the decoded file. */
  originalWidth: number;
  /** Height of the decoded file. */
  originalHeight: number;
  /** Resized width / original width. */
  scaleX: number;
  /** Resized height / original height. */
  scaleY: number;
  /** Whether the image was flipped horizontally (after resizing). */
  flipped: boolean;
  /** File name, when known. */
  fileName?: string;
}

/** One training sample. */
export interface Sample {
  /** RGB image, 8-bit HWC. */
  image: DecodedImage;
  /** `[n, 4]` boxes `x1, y1, x2, y2` in this image's pixels. */
  boxes: Float32Array;
  /** `[n]` contiguous 0-based labels. */
  labels: Int32Array;
  /** Optional `[n, height, width]` 0/1 masks. */
  masks?: Uint8Array;
  /** Provenance. */
  meta: SampleMeta;
}

/**
 * Bilinear resize of an 8-bit HWC image (half-pixel centres, edge clamped).
 *
 * @param image Source.
 * @param width Target width.
 * @param height Target height.
 * @returns A new image.
 */
export function resizeBilinear(image: DecodedImage, width: number, height: number): DecodedImage {
  const { width: sw, height: sh, channels: ch, data } = image;
  if (width === sw && height === sh) return { ...image, data: data.slice() };
  const out = new Uint8Array(width * height * ch);
  const fx = sw / width, fy = sh / height;
  const x0s = new Int32Array(width), x1s = new Int32Array(width), wxs = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    let sx = (x + 0.5) * fx - 0.5;
    if (sx < 0) sx = 0;
    const x0 = Math.min(Math.floor(sx), sw - 1);
    x0s[x] = x0 * ch;
    x1s[x] = Math.min(x0 + 1, sw - 1) * ch;
    wxs[x] = sx - x0;
  }
  for (let y = 0; y < height; y++) {
    let sy = (y + 0.5) * fy - 0.5;
    if (sy < 0) sy = 0;
    const y0 = Math.min(Math.floor(sy), sh - 1);
    const y1 = Math.min(y0 + 1, sh - 1);
    const wy = sy - y0;
    const r0 = y0 * sw * ch, r1 = y1 * sw * ch;
    let o = y * width * ch;
    for (let x = 0; x < width; x++) {
      const wx = wxs[x], a = x0s[x], b = x1s[x];
      for (let c = 0; c < ch; c++) {
        const top = data[r0 + a + c] + (data[r0 + b + c] - data[r0 + a + c]) * wx;
        const bot = data[r1 + a + c] + (data[r1 + b + c] - data[r1 + a + c]) * wx;
        out[o++] = Math.round(top + (bot - top) * wy);
      }
    }
  }
  return { width, height, channels: ch, data: out };
}

/**
 * Nearest-neighbour resize of stacked `[n, h, w]` masks (a target pixel is on
 * when the source pixel under its centre is).
 *
 * @param masks Source masks.
 * @param n Number of masks.
 * @param sw Source width.
 * @param sh Source height.
 * @param width Target width.
 * @param height Target height.
 * @returns `[n, height, width]` masks.
 */
export function resizeMasks(
  masks: Uint8Array,
  n: number,
  sw: number,
  sh: number,
  width: number,
  height: number,
): Uint8Array {
  const out = new Uint8Array(n * width * height);
  const xs = Int32Array.from(
    { length: width },
    (_, x) => Math.min(sw - 1, Math.floor(((x + 0.5) * sw) / width)),
  );
  for (let k = 0; k < n; k++) {
    for (let y = 0; y < height; y++) {
      const sy = Math.min(sh - 1, Math.floor(((y + 0.5) * sh) / height));
      const src = k * sw * sh + sy * sw, dst = k * width * height + y * width;
      for (let x = 0; x < width; x++) out[dst + x] = masks[src + xs[x]];
    }
  }
  return out;
}

/**
 * Size after scaling so the short side is `shortSide` unless the long side
 * would pass `maxSize` (then the long side is `maxSize`).
 *
 * @param width Original width.
 * @param height Original height.
 * @param shortSide Target short side.
 * @param maxSize Limit of the long side.
 * @returns `[width, height]`, rounded, at least 1.
 */
export function resizedShape(
  width: number,
  height: number,
  shortSide: number,
  maxSize: number,
): [number, number] {
  const s = Math.min(shortSide / Math.min(width, height), maxSize / Math.max(width, height));
  return [Math.max(1, Math.round(width * s)), Math.max(1, Math.round(height * s))];
}

/**
 * Resize keeping the aspect ratio; boxes are scaled, masks resized (nearest).
 *
 * @param s Sample.
 * @param shortSide Target short side.
 * @param maxSize Limit of the long side.
 * @returns A new sample (`meta.scaleX/Y` multiplied).
 */
export function resizeSample(s: Sample, shortSide: number, maxSize: number): Sample {
  const { width: w, height: h } = s.image;
  const [nw, nh] = resizedShape(w, h, shortSide, maxSize);
  const sx = nw / w, sy = nh / h;
  const boxes = s.boxes.slice();
  for (let i = 0; i < boxes.length; i += 4) {
    boxes[i] *= sx, boxes[i + 1] *= sy, boxes[i + 2] *= sx, boxes[i + 3] *= sy;
  }
  return {
    image: resizeBilinear(s.image, nw, nh),
    boxes,
    labels: s.labels,
    masks: s.masks ? resizeMasks(s.masks, s.labels.length, w, h, nw, nh) : undefined,
    meta: { ...s.meta, scaleX: s.meta.scaleX * sx, scaleY: s.meta.scaleY * sy },
  };
}

/**
 * Mirror left-right; boxes become `[W - x2, y1, W - x1, y2]`.
 *
 * @param s Sample.
 * @returns A new sample with `meta.flipped` toggled.
 */
export function flipSample(s: Sample): Sample {
  const { width: w, height: h, channels: ch, data } = s.image;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < h; y++) {
    const r = y * w * ch;
    for (let x = 0; x < w; x++) {
      const a = r + x * ch, b = r + (w - 1 - x) * ch;
      for (let c = 0; c < ch; c++) out[b + c] = data[a + c];
    }
  }
  const boxes = s.boxes.slice();
  for (let i = 0; i < boxes.length; i += 4) {
    const x1 = boxes[i], x2 = boxes[i + 2];
    boxes[i] = w - x2;
    boxes[i + 2] = w - x1;
  }
  let masks: Uint8Array | undefined;
  if (s.masks) {
    masks = new Uint8Array(s.masks.length);
    for (let row = 0; row < s.masks.length / w; row++) {
      const r = row * w;
      for (let x = 0; x < w; x++) masks[r + w - 1 - x] = s.masks[r + x];
    }
  }
  return {
    image: { width: w, height: h, channels: ch, data: out },
    boxes,
    labels: s.labels,
    masks,
    meta: { ...s.meta, flipped: !s.meta.flipped },
  };
}

/** Strengths of {@linkcode jitterSample}: each factor is drawn from `[1 - v, 1 + v]`. */
export interface JitterOptions {
  /** Brightness range (default 0.2). */
  brightness?: number;
  /** Contrast range around the image mean (default 0.2). */
  contrast?: number;
  /** Saturation range around each pixel's gray (default 0.2). */
  saturation?: number;
}

/**
 * Photometric jitter on the RGB bytes (geometry unchanged).
 *
 * @param s Sample.
 * @param rng Source of the random factors.
 * @param options Strengths.
 * @returns A new sample.
 */
export function jitterSample(s: Sample, rng: Rng, options: JitterOptions = {}): Sample {
  const b = 1 + rng.uniform(-1, 1) * (options.brightness ?? 0.2);
  const c = 1 + rng.uniform(-1, 1) * (options.contrast ?? 0.2);
  const sat = 1 + rng.uniform(-1, 1) * (options.saturation ?? 0.2);
  const { data, channels: ch } = s.image;
  const n = data.length / ch;
  let mean = 0;
  for (let p = 0; p < n; p++) {
    mean += 0.299 * data[p * ch] + 0.587 * data[p * ch + 1] + 0.114 * data[p * ch + 2];
  }
  mean = (mean / Math.max(1, n)) * b;
  const out = new Uint8Array(data.length);
  const clamp = (x: number) => (x < 0 ? 0 : x > 255 ? 255 : Math.round(x));
  for (let p = 0; p < n; p++) {
    const o = p * ch;
    const r = data[o] * b, g = data[o + 1] * b, bl = data[o + 2] * b;
    const gray = 0.299 * r + 0.587 * g + 0.114 * bl;
    out[o] = clamp((gray + (r - gray) * sat - mean) * c + mean);
    out[o + 1] = clamp((gray + (g - gray) * sat - mean) * c + mean);
    out[o + 2] = clamp((gray + (bl - gray) * sat - mean) * c + mean);
    for (let k = 3; k < ch; k++) out[o + k] = data[o + k];
  }
  return { ...s, image: { ...s.image, data: out } };
}

/** ImageNet mean in 0..255 RGB. */
export const IMAGENET_MEAN: readonly [number, number, number] = [123.675, 116.28, 103.53];
/** ImageNet std in 0..255 RGB. */
export const IMAGENET_STD: readonly [number, number, number] = [58.395, 57.12, 57.375];

/**
 * `(x - mean) / std` per channel into a CHW float image, written at the top
 * left of a `[3, outHeight, outWidth]` destination (padding stays as it is, 0).
 *
 * @param image RGB(A) 8-bit image.
 * @param out Destination, `3 * outHeight * outWidth` floats.
 * @param outWidth Destination width (>= image width).
 * @param outHeight Destination height (>= image height).
 * @param mean Per-channel mean.
 * @param std Per-channel std.
 */
export function normalizeInto(
  image: DecodedImage,
  out: Float32Array,
  outWidth: number,
  outHeight: number,
  mean: readonly number[] = IMAGENET_MEAN,
  std: readonly number[] = IMAGENET_STD,
): void {
  const { width, height, channels: ch, data } = image;
  if (width > outWidth || height > outHeight || out.length < 3 * outWidth * outHeight) {
    throw new RangeError(`Image ${width}x${height} does not fit ${outWidth}x${outHeight}`);
  }
  const plane = outWidth * outHeight;
  for (let c = 0; c < 3; c++) {
    const m = mean[c], inv = 1 / std[c], base = c * plane;
    for (let y = 0; y < height; y++) {
      let i = (y * width) * ch + c;
      const o = base + y * outWidth;
      for (let x = 0; x < width; x++, i += ch) out[o + x] = (data[i] - m) * inv;
    }
  }
}

/**
 * Normalise into a new `[3, H, W]` float image, H and W padded up to a
 * multiple of `stride`.
 *
 * @param image RGB image.
 * @param stride Pad multiple (1 for none).
 * @param mean Per-channel mean.
 * @param std Per-channel std.
 * @returns `{ data, width, height }` of the padded CHW image.
 */
export function normalizeImage(
  image: DecodedImage,
  stride = 1,
  mean: readonly number[] = IMAGENET_MEAN,
  std: readonly number[] = IMAGENET_STD,
): { data: Float32Array; width: number; height: number } {
  const width = padTo(image.width, stride), height = padTo(image.height, stride);
  const data = new Float32Array(3 * width * height);
  normalizeInto(image, data, width, height, mean, std);
  return { data, width, height };
}

/**
 * Round up to a multiple.
 * @param v Value.
 * @param stride Multiple.
 * @returns The smallest multiple of `stride` that is >= `v`.
 */
export function padTo(v: number, stride: number): number {
  return Math.ceil(v / stride) * stride;
}

/** Options of {@linkcode applyTransforms}. */
export interface TransformOptions {
  /** Short side after resizing (default 128; skip resizing when the image already matches). */
  shortSide?: number;
  /** Long-side limit (default 1333/800 * shortSide). */
  maxSize?: number;
  /** Probability of a horizontal flip (default 0.5; 0 for evaluation). */
  flipProb?: number;
  /** Photometric jitter, or `false` (default) for none. */
  jitter?: JitterOptions | false;
}

/**
 * Resize, then randomly flip and jitter, under one generator.
 *
 * @param s Sample.
 * @param rng Generator for this sample.
 * @param options Settings.
 * @returns The transformed sample (still 8-bit HWC; normalisation happens at batching).
 */
export function applyTransforms(s: Sample, rng: Rng, options: TransformOptions = {}): Sample {
  const short = options.shortSide ?? 128;
  const max = options.maxSize ?? Math.round((short * 1333) / 800);
  let out = s;
  const [nw, nh] = resizedShape(s.image.width, s.image.height, short, max);
  if (nw !== s.image.width || nh !== s.image.height) out = resizeSample(out, short, max);
  const flip = rng.uniform() < (options.flipProb ?? 0.5);
  if (flip) out = flipSample(out);
  if (options.jitter) out = jitterSample(out, rng, options.jitter);
  return out;
}
