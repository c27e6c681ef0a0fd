/**
 * pycocotools' default evaluation parameters (`COCOeval.Params` for `bbox`
 * and `segm`), shared by COCO AP/AR and optimal LRP: the IoU type, the IoU and
 * recall thresholds, the area ranges and the detections kept per image.
 *
 * Contract: the arrays are frozen and bit-identical to pycocotools' values
 * (`np.linspace` included); the axis sizes `T_N`, `R_N`, `A_N`, `M_N` are
 * their lengths and `MAX_DET` is the largest `maxDets`, the cap on detections
 * per (image, category).
 *
 * @module
 */

/** Which region the IoU compares: boxes or masks. */
export type IouType = "bbox" | "segm";

function linspace(start: number, stop: number, num: number): number[] {
  // numpy.linspace: i * step + start, with the last value set to `stop`.
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

/**
 * The 10 IoU thresholds, bit-identical to pycocotools' `np.linspace(.5, .95, 10)`
 * (the 9th is 0.8999999999999999).
 */
export const COCO_IOU_THRESHOLDS: readonly number[] = Object.freeze(linspace(0.5, 0.95, 10));

/**
 * The 101 recall thresholds `i * 0.01` (and exactly 1 at the end), bit-identical
 * to `np.linspace(0, 1, 101)`.
 */
export const COCO_RECALL_THRESHOLDS: readonly number[] = Object.freeze(linspace(0, 1, 101));

/** Area ranges `[lo, hi]` (both ends inclusive) for all, small, medium and large objects. */
export const COCO_AREA_RANGES: readonly (readonly [number, number])[] = Object.freeze(
  [
    [0, 1e10],
    [0, 32 ** 2],
    [32 ** 2, 96 ** 2],
    [96 ** 2, 1e10],
  ] as const,
);

/** Labels of {@linkcode COCO_AREA_RANGES}, the `A` axis. */
export const COCO_AREA_LABELS: readonly string[] = Object.freeze([
  "all",
  "small",
  "medium",
  "large",
]);

/** Detections kept per image and category, the `M` axis. */
export const COCO_MAX_DETS: readonly number[] = Object.freeze([1, 10, 100]);

/** Number of IoU thresholds (the `T` axis of COCO's arrays). */
export const T_N = 10;
/** Number of recall thresholds (the `R` axis). */
export const R_N = 101;
/** Number of area ranges (the `A` axis). */
export const A_N = 4;
/** Number of `maxDets` settings (the `M` axis). */
export const M_N = 3;
/** Detections kept per (image, category): the largest of {@linkcode COCO_MAX_DETS}. */
export const MAX_DET = 100;
