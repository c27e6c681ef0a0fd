/**
 * Anchor generation for dense detectors (host side: anchors depend only on
 * the image size, so they are built once per input size and uploaded).
 *
 * The layout follows mmdetection's `AnchorGenerator`: per level, locations
 * row-major (y, then x), and at each location the anchors ratio-major,
 * scale-minor; boxes are `[x1, y1, x2, y2]` centred on `(x * stride, y * stride)`.
 *
 * @module
 */

/** How anchors are laid out on each pyramid level. */
export interface AnchorConfig {
  /** Stride of each level in pixels, e.g. `[8, 16, 32, 64, 128]`. */
  strides: readonly number[];
  /** Base anchor size as a multiple of the stride (ATSS: 8 with 1 scale; the ranking-loss ATSS: 4 with 3). */
  octaveBaseScale: number;
  /** Anchor scales per octave: scales are `octaveBaseScale * 2^(i / scalesPerOctave)`. */
  scalesPerOctave: number;
  /** Height / width ratios, e.g. `[1]`. */
  ratios: readonly number[];
}

/** The anchors of every level, concatenated, with the count per level. */
export interface Anchors {
  /** `[A, 4]` boxes `x1, y1, x2, y2`, level by level. */
  boxes: Float32Array;
  /** Anchors on each level. */
  perLevel: number[];
  /** Feature map size `[height, width]` of each level. */
  featureSizes: [number, number][];
  /** Anchors per location. */
  perLocation: number;
}

/** Feature map sizes of each level for an input of `height x width` (ceil division, as a stride-2 conv stack gives). */
export function featureSizes(
  height: number,
  width: number,
  strides: readonly number[],
): [number, number][] {
  return strides.map((s) => [Math.ceil(height / s), Math.ceil(width / s)]);
}

/**
 * The anchors of an input of `height x width`.
 *
 * @example ATSS with one scale: one 32 px square per location of P3
 * ```ts
 * import { generateAnchors } from "./anchors.ts";
 * const a = generateAnchors(16, 16, { strides: [8], octaveBaseScale: 4, scalesPerOctave: 1, ratios: [1] });
 * console.log(a.perLevel, Array.from(a.boxes.slice(0, 4))); // [4] [-16, -16, 16, 16]
 * ```
 */
export function generateAnchors(height: number, width: number, config: AnchorConfig): Anchors {
  const { strides, octaveBaseScale, scalesPerOctave, ratios } = config;
  const scales = Array.from(
    { length: scalesPerOctave },
    (_, i) => octaveBaseScale * 2 ** (i / scalesPerOctave),
  );
  const perLocation = scales.length * ratios.length;
  const sizes = featureSizes(height, width, strides);
  const perLevel = sizes.map(([h, w]) => h * w * perLocation);
  const boxes = new Float32Array(perLevel.reduce((a, b) => a + b, 0) * 4);
  let k = 0;
  strides.forEach((stride, level) => {
    const base: number[][] = [];
    for (const ratio of ratios) {
      const hRatio = Math.sqrt(ratio), wRatio = 1 / hRatio;
      for (const scale of scales) {
        const w = stride * wRatio * scale, h = stride * hRatio * scale;
        base.push([-0.5 * w, -0.5 * h, 0.5 * w, 0.5 * h]);
      }
    }
    const [fh, fw] = sizes[level];
    for (let y = 0; y < fh; y++) {
      for (let x = 0; x < fw; x++) {
        for (const b of base) {
          boxes[k++] = b[0] + x * stride;
          boxes[k++] = b[1] + y * stride;
          boxes[k++] = b[2] + x * stride;
          boxes[k++] = b[3] + y * stride;
        }
      }
    }
  });
  return { boxes, perLevel, featureSizes: sizes, perLocation };
}
