/**
 * pycocotools' IoU conventions (`maskApi.c`), for boxes `[x, y, w, h]` and
 * for the masks of `data/`: intersections from `x + w` corners, areas from
 * `w * h` (or pixel counts), no `eps`, and for a crowd ground truth the union
 * is the detection's own area. Kept apart from `overlapHost` (`iou.ts`) because
 * its arithmetic (and so its last bits) differs from the `xyxy` formula.
 *
 * @module
 */

/**
 * Intersection area of two `[x, y, w, h]` boxes as pycocotools computes it,
 * or 0 when they do not overlap.
 *
 * @example
 * ```ts
 * import { xywhIntersection } from "./coco_iou.ts";
 * console.log(xywhIntersection([0, 0, 2, 2], [1, 1, 2, 2])); // 1
 * console.log(xywhIntersection([0, 0, 1, 1], [1, 0, 1, 1])); // 0
 * ```
 *
 * @param a Box `[x, y, w, h]`.
 * @param b Box `[x, y, w, h]`.
 */
export function xywhIntersection(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const iw = Math.min(a[2] + a[0], b[2] + b[0]) - Math.max(a[0], b[0]);
  if (iw <= 0) return 0;
  const ih = Math.min(a[3] + a[1], b[3] + b[1]) - Math.max(a[1], b[1]);
  if (ih <= 0) return 0;
  return iw * ih;
}

/**
 * pycocotools' IoU from an intersection and two areas: over the union, or
 * over the detection's area for a crowd ground truth.
 *
 * @example
 * ```ts
 * import { crowdIou } from "./coco_iou.ts";
 * console.log(crowdIou(1, 4, 4, false)); // 1/7
 * console.log(crowdIou(1, 4, 4, true)); // 1/4
 * ```
 *
 * @param inter Intersection area (positive).
 * @param detArea The detection's area.
 * @param gtArea The ground truth's area.
 * @param crowd Whether the ground truth is a crowd region.
 */
export function crowdIou(
  inter: number,
  detArea: number,
  gtArea: number,
  crowd: number | boolean,
): number {
  return inter / (crowd ? detArea : detArea + gtArea - inter);
}

/**
 * pycocotools' `bbIou`: IoU of every detection box with every ground-truth
 * box, `[x, y, w, h]`, with crowd semantics.
 *
 * @example
 * ```ts
 * import { cocoBoxIou } from "./coco_iou.ts";
 * console.log(cocoBoxIou([[0, 0, 2, 2]], [[1, 1, 2, 2], [1, 1, 2, 2]], [0, 1])); // [[1/7, 1/4]]
 * ```
 *
 * @param dt Detection boxes (`D`).
 * @param gt Ground-truth boxes (`G`).
 * @param crowd One flag per ground truth.
 * @returns `[D][G]` IoUs.
 */
export function cocoBoxIou(
  dt: ArrayLike<number>[],
  gt: ArrayLike<number>[],
  crowd: ArrayLike<number | boolean>,
): number[][] {
  return dt.map((db) => {
    const da = db[2] * db[3];
    return gt.map((gb, g) => {
      const inter = xywhIntersection(db, gb);
      return inter > 0 ? crowdIou(inter, da, gb[2] * gb[3], crowd[g]) : 0;
    });
  });
}
