/**
 * The one overlap formula of `xyxy` boxes (`[x1, y1, x2, y2]`, sizes without a
 * `+1`), on the host and in WGSL: IoU, IoF (intersection over the first box's
 * area) and GIoU, with the union (and enclosing) area clamped from below at
 * `eps`. Everything that compares two boxes this way (the pairwise and aligned
 * box kernels and their CPU twins, NMS, the ATSS assigner) calls it.
 *
 * The host version computes in float64, or in float32 with every step rounded
 * (`round = Math.fround`, as the WGSL does); {@linkcode NO_FLOOR} turns the
 * clamp off (plain `inter / union`, as torchvision's NMS).
 *
 * @module
 */

/** What an overlap measures: intersection over union, over the first box's area, or GIoU. */
export type OverlapMode = "iou" | "iof" | "giou";

/** The `mode` number of each {@linkcode OverlapMode} in the WGSL snippet. */
export const MODE_ID: Record<OverlapMode, number> = { iou: 0, iof: 1, giou: 2 };

/** An `eps` that clamps nothing: the union is used as it is. */
export const NO_FLOOR = -Infinity;

/** The intermediate values of one overlap (what the aligned kernels' gradients need). */
export interface OverlapParts {
  /** Width and height of the first box. */
  aw: number;
  ah: number;
  /** Width and height of the second box. */
  bw: number;
  bh: number;
  /** Intersection width and height before clamping at 0, and after. */
  iwr: number;
  ihr: number;
  iw: number;
  ih: number;
  /** Intersection area. */
  inter: number;
  /** Union (IoF: first box's area) before the `eps` clamp, and after. */
  ur: number;
  union: number;
  /** Enclosing box width and height before clamping at 0, and after (GIoU only; else 0). */
  ewr: number;
  ehr: number;
  ew: number;
  eh: number;
  /** Enclosing area before the `eps` clamp, and after (GIoU only; else 0 and 1). */
  er: number;
  enclose: number;
  /** The overlap. */
  value: number;
}

const exact = (x: number) => x;

const scratch: OverlapParts = {
  aw: 0,
  ah: 0,
  bw: 0,
  bh: 0,
  iwr: 0,
  ihr: 0,
  iw: 0,
  ih: 0,
  inter: 0,
  ur: 0,
  union: 0,
  ewr: 0,
  ehr: 0,
  ew: 0,
  eh: 0,
  er: 0,
  enclose: 1,
  value: 0,
};

/**
 * The overlap of box `i` of `a` with box `j` of `b` and its intermediate
 * values. The result is one shared object, overwritten by the next call.
 *
 * @example GIoU of two boxes that share a corner square
 * ```ts
 * import { overlapParts } from "./iou.ts";
 * const p = overlapParts([0, 0, 2, 2], 0, [1, 1, 3, 3], 0, "giou", 1e-6);
 * console.log(p.inter, p.union, p.enclose); // 1 7 9
 * ```
 *
 * @param a Flat `xyxy` boxes.
 * @param i Box of `a`.
 * @param b Flat `xyxy` boxes.
 * @param j Box of `b`.
 * @param mode IoU, IoF or GIoU.
 * @param eps Lower bound of the union and enclosing areas ({@linkcode NO_FLOOR}: none).
 * @param round Applied to every arithmetic result: `Math.fround` for float32 steps.
 */
export function overlapParts(
  a: ArrayLike<number>,
  i: number,
  b: ArrayLike<number>,
  j: number,
  mode: OverlapMode,
  eps: number,
  round: (x: number) => number = exact,
): OverlapParts {
  const r = round, p = scratch;
  const ax1 = a[4 * i], ay1 = a[4 * i + 1], ax2 = a[4 * i + 2], ay2 = a[4 * i + 3];
  const bx1 = b[4 * j], by1 = b[4 * j + 1], bx2 = b[4 * j + 2], by2 = b[4 * j + 3];
  p.aw = r(ax2 - ax1);
  p.ah = r(ay2 - ay1);
  p.bw = r(bx2 - bx1);
  p.bh = r(by2 - by1);
  const areaA = r(p.aw * p.ah), areaB = r(p.bw * p.bh);
  p.iwr = r(Math.min(ax2, bx2) - Math.max(ax1, bx1));
  p.ihr = r(Math.min(ay2, by2) - Math.max(ay1, by1));
  p.iw = Math.max(p.iwr, 0);
  p.ih = Math.max(p.ihr, 0);
  p.inter = r(p.iw * p.ih);
  p.ur = mode === "iof" ? areaA : r(r(areaA + areaB) - p.inter);
  p.union = Math.max(p.ur, eps);
  p.value = r(p.inter / p.union);
  p.ewr =
    p.ehr =
    p.ew =
    p.eh =
    p.er =
      0;
  p.enclose = 1;
  if (mode === "giou") {
    p.ewr = r(Math.max(ax2, bx2) - Math.min(ax1, bx1));
    p.ehr = r(Math.max(ay2, by2) - Math.min(ay1, by1));
    p.ew = Math.max(p.ewr, 0);
    p.eh = Math.max(p.ehr, 0);
    p.er = r(p.ew * p.eh);
    p.enclose = Math.max(p.er, eps);
    p.value = r(p.value - r(r(p.enclose - p.union) / p.enclose));
  }
  return p;
}

/**
 * The overlap of box `i` of `a` with box `j` of `b` (float64 unless `round`
 * says otherwise): the CPU twins' formula.
 *
 * @example IoU, IoF and GIoU
 * ```ts
 * import { overlapHost } from "./iou.ts";
 * const a = [0, 0, 2, 2], b = [1, 1, 3, 3];
 * console.log(overlapHost(a, 0, b, 0, "iou")); // 1/7
 * console.log(overlapHost(a, 0, b, 0, "iof")); // 1/4
 * console.log(overlapHost(a, 0, b, 0, "giou")); // 1/7 - 2/9
 * ```
 *
 * @param a Flat `xyxy` boxes.
 * @param i Box of `a`.
 * @param b Flat `xyxy` boxes.
 * @param j Box of `b`.
 * @param mode IoU, IoF or GIoU.
 * @param eps Lower bound of the union and enclosing areas; default `1e-6`.
 * @param round Applied to every arithmetic result: `Math.fround` for float32 steps.
 */
export function overlapHost(
  a: ArrayLike<number>,
  i: number,
  b: ArrayLike<number>,
  j: number,
  mode: OverlapMode,
  eps = 1e-6,
  round: (x: number) => number = exact,
): number {
  return overlapParts(a, i, b, j, mode, eps, round).value;
}

/**
 * Whether the IoU of box `i` of `a` with box `j` of `b` is above `thr`,
 * exactly as `overlapHost(a, i, b, j, "iou", NO_FLOOR, round) > thr` says
 * (NMS's test), but faster: disjoint boxes are decided at once (for
 * `thr >= 0`), and an IoU more than `1e-5` from `thr` in float64 is decided
 * without the rounded steps, which move it by less than `1e-6`. Near the
 * threshold, and for empty or inverted boxes, the full formula decides.
 *
 * @example Exactly the float32 decision at the threshold
 * ```ts
 * import { iouAbove, overlapHost, NO_FLOOR } from "./iou.ts";
 * const a = Float32Array.of(0, 0, 10, 10), b = Float32Array.of(0, 0, 10, 3);
 * const iou = overlapHost(a, 0, b, 0, "iou", NO_FLOOR, Math.fround); // 0.3f = 0.30000001192...
 * console.log(iouAbove(a, 0, b, 0, 0.3, Math.fround), iou > 0.3); // true true
 * console.log(iouAbove(a, 0, b, 0, 0.5, Math.fround)); // false
 * ```
 *
 * @param a Flat `xyxy` boxes.
 * @param i Box of `a`.
 * @param b Flat `xyxy` boxes.
 * @param j Box of `b`.
 * @param thr The threshold.
 * @param round Applied to every arithmetic result of the full formula: `Math.fround` for float32 steps.
 */
export function iouAbove(
  a: ArrayLike<number>,
  i: number,
  b: ArrayLike<number>,
  j: number,
  thr: number,
  round: (x: number) => number = exact,
): boolean {
  const ax1 = a[4 * i], ay1 = a[4 * i + 1], ax2 = a[4 * i + 2], ay2 = a[4 * i + 3];
  const bx1 = b[4 * j], by1 = b[4 * j + 1], bx2 = b[4 * j + 2], by2 = b[4 * j + 3];
  const iw = Math.min(ax2, bx2) - Math.max(ax1, bx1);
  const ih = Math.min(ay2, by2) - Math.max(ay1, by1);
  // Disjoint: the intersection is 0 and the IoU 0 or NaN, above no thr >= 0.
  if ((iw <= 0 || ih <= 0) && thr >= 0) return false;
  const aw = ax2 - ax1, ah = ay2 - ay1, bw = bx2 - bx1, bh = by2 - by1;
  if (iw > 0 && ih > 0 && aw > 0 && ah > 0 && bw > 0 && bh > 0) {
    const inter = iw * ih;
    const v = inter / (aw * ah + bw * bh - inter);
    if (v > thr + 1e-5) return true;
    if (v < thr - 1e-5) return false;
  }
  return overlapParts(a, i, b, j, "iou", NO_FLOOR, round).value > thr;
}

/**
 * Float64 IoU of box `i` of `a` with box `j` of `b`, unclamped, and 0 where
 * the union is empty (the ATSS assigner's IoU).
 *
 * @example
 * ```ts
 * import { boxIouHost } from "./iou.ts";
 * console.log(boxIouHost([0, 0, 2, 2], 0, [1, 1, 3, 3], 0)); // 1/7
 * console.log(boxIouHost([0, 0, 0, 0], 0, [0, 0, 0, 0], 0)); // 0
 * ```
 *
 * @param a Flat `xyxy` boxes.
 * @param i Box of `a`.
 * @param b Flat `xyxy` boxes.
 * @param j Box of `b`.
 */
export function boxIouHost(
  a: ArrayLike<number>,
  i: number,
  b: ArrayLike<number>,
  j: number,
): number {
  // A positive intersection implies a positive union; otherwise 0 (or 0/0).
  return overlapHost(a, i, b, j, "iou", NO_FLOOR) || 0;
}

/**
 * The WGSL twin of {@linkcode overlapParts}: `overlap_parts(a, b, area_a,
 * area_b, mode, eps)` (areas passed in, so that a kernel can hoist them),
 * `overlap(a, b, mode, eps)`, `box_area(b)` and the constant `NO_FLOOR`.
 * `mode` is {@linkcode MODE_ID}'s number; boxes are `vec4<f32>` `xyxy`.
 */
export const WGSL_OVERLAP = /* wgsl */ `
const NO_FLOOR: f32 = -3.4028234663852886e38; // -FLT_MAX exactly: Tint rejects a literal beyond it
struct Overlap {
  iwr: f32, ihr: f32, iw: f32, ih: f32, inter: f32, ur: f32, uni: f32,
  ewr: f32, ehr: f32, ew: f32, eh: f32, er: f32, enclose: f32, value: f32,
}
fn box_area(b: vec4<f32>) -> f32 {
  return (b.z - b.x) * (b.w - b.y);
}
fn overlap_parts(a: vec4<f32>, b: vec4<f32>, area_a: f32, area_b: f32, mode: u32, eps: f32) -> Overlap {
  var o: Overlap;
  o.iwr = min(a.z, b.z) - max(a.x, b.x);
  o.ihr = min(a.w, b.w) - max(a.y, b.y);
  o.iw = max(o.iwr, 0.0);
  o.ih = max(o.ihr, 0.0);
  o.inter = o.iw * o.ih;
  o.ur = select(area_a + area_b - o.inter, area_a, mode == 1u);
  o.uni = max(o.ur, eps);
  o.value = o.inter / o.uni;
  o.enclose = 1.0;
  if (mode == 2u) {
    o.ewr = max(a.z, b.z) - min(a.x, b.x);
    o.ehr = max(a.w, b.w) - min(a.y, b.y);
    o.ew = max(o.ewr, 0.0);
    o.eh = max(o.ehr, 0.0);
    o.er = o.ew * o.eh;
    o.enclose = max(o.er, eps);
    o.value = o.value - (o.enclose - o.uni) / o.enclose;
  }
  return o;
}
fn overlap(a: vec4<f32>, b: vec4<f32>, mode: u32, eps: f32) -> f32 {
  return overlap_parts(a, b, box_area(a), box_area(b), mode, eps).value;
}
`;
