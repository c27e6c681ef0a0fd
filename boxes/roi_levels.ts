/**
 * Which FPN level a RoI is pooled from: mmdetection's rule
 * (`SingleRoIExtractor.map_roi_levels`), not torchvision's `LevelMapper`. The
 * two agree in exact arithmetic but put their `1e-6` in different places, so
 * boxes just below a scale boundary can differ by one level.
 *
 * @module
 */

/**
 * mmdetection's FPN level of each `xyxy` box:
 * `floor(log2(sqrt((x2 - x1) * (y2 - y1)) / finestScale + 1e-6))`, clamped to
 * `[0, numLevels - 1]` (0 is the finest map). With `finestScale` 56, scales
 * below 112 go to level 0, `[112, 224)` to 1, `[224, 448)` to 2 and the rest
 * to 3, each boundary moved down by `1e-6 * finestScale`.
 *
 * The rule is evaluated in float64 from the coordinates as given (float32
 * values stay exact), as mmdetection does on float64 boxes; on float32 tensors
 * mmdetection can differ by one level for scales within float32 rounding of a
 * boundary. A box with a negative or NaN area (inverted, NaN coordinates) gets
 * level 0, as a zero-area box does.
 *
 * @example A 100-pixel, a 200-pixel and a 1000-pixel square
 * ```ts
 * import { mapRoiLevels } from "./roi_levels.ts";
 * const boxes = [0, 0, 100, 100, 0, 0, 200, 200, 0, 0, 1000, 1000];
 * console.log(mapRoiLevels(boxes, 4)); // Int32Array [0, 1, 3]
 * ```
 *
 * @param rois `[N * 4]` xyxy coordinates, row-major.
 * @param numLevels Number of FPN levels (mmdetection: the number of feature maps).
 * @param finestScale Scale of the finest level's boxes; default 56.
 * @returns `[N]` levels in `[0, numLevels - 1]`.
 * @throws {RangeError} When `rois.length` is not a multiple of 4, `numLevels` is not a
 * positive integer or `finestScale` is not positive.
 */
export function mapRoiLevels(
  rois: ArrayLike<number>,
  numLevels: number,
  finestScale = 56,
): Int32Array {
  const op = "mapRoiLevels";
  if (rois.length % 4 !== 0) {
    throw new RangeError(`${op}: ${rois.length} coordinates are not a multiple of 4`);
  }
  if (!Number.isInteger(numLevels) || numLevels < 1) {
    throw new RangeError(`${op}: numLevels ${numLevels} is not a positive integer`);
  }
  if (!(finestScale > 0)) {
    throw new RangeError(`${op}: finestScale ${finestScale} is not positive`);
  }
  const n = rois.length / 4, levels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const w = rois[4 * i + 2] - rois[4 * i], h = rois[4 * i + 3] - rois[4 * i + 1];
    const level = Math.floor(Math.log2(Math.sqrt(w * h) / finestScale + 1e-6));
    levels[i] = Number.isNaN(level) ? 0 : Math.min(Math.max(level, 0), numLevels - 1);
  }
  return levels;
}
