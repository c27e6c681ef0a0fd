/**
 * Mask targets of a Mask R-CNN mask head (mmdetection 2.25 `mask_target_single`
 * with `BitmapMasks.crop_and_resize`): each positive RoI takes the binary
 * ground-truth mask of the object it was matched with, cropped to the RoI and
 * resampled to `size x size` by aligned RoIAlign (mmcv's kernel with
 * `spatial_scale = 1`, `sampling_ratio = 0`, average pooling), then
 * thresholded at 0.5.
 *
 * Every operation is rounded to float32 in the kernel's order, so the soft
 * values equal mmcv's CPU kernel bit for bit (tests/fixtures/mask_rcnn/).
 *
 * @module
 */

const f32 = Math.fround;

/** Sample positions of one RoI along one axis: `size * grid` samples, cell-major. */
interface AxisSamples {
  /** Samples per output cell along this axis (0 for an empty RoI). */
  grid: number;
  /** Index of the low neighbour, premultiplied by `scale`. */
  low: Int32Array;
  /** Index of the high neighbour, premultiplied by `scale`. */
  high: Int32Array;
  /** Distance to the low neighbour (float32). */
  frac: Float32Array;
  /** `1 - frac` (float32). */
  rest: Float32Array;
  /** 0 where the sample lies beyond the mask by more than one pixel (the value is 0). */
  inside: Uint8Array;
}

/**
 * Bilinear sample positions along one axis of a clipped RoI `[start, end]`
 * (mmcv's `pre_calc_for_bilinear_interpolate`, separated by axis: the y terms
 * depend only on the row, the x terms only on the column).
 */
function axisSamples(
  start: number,
  end: number,
  size: number,
  limit: number,
  scale: number,
): AxisSamples {
  const from = f32(start - 0.5), to = f32(end - 0.5); // aligned: pixel centres at integers
  const extent = f32(to - from);
  const bin = f32(extent / size);
  const grid = Math.ceil(bin);
  const n = grid > 0 ? size * grid : 0;
  const s: AxisSamples = {
    grid,
    low: new Int32Array(n),
    high: new Int32Array(n),
    frac: new Float32Array(n),
    rest: new Float32Array(n),
    inside: new Uint8Array(n),
  };
  for (let p = 0, k = 0; p < size; p++) {
    const cellStart = f32(from + f32(p * bin));
    for (let i = 0; i < grid; i++, k++) {
      let c = f32(cellStart + f32(f32((i + 0.5) * bin) / grid));
      if (c < -1 || c > limit) continue; // value 0
      if (c <= 0) c = 0;
      let low = Math.trunc(c), high = low + 1;
      if (low >= limit - 1) {
        low = high = limit - 1;
        c = low;
      }
      const frac = f32(c - low);
      s.low[k] = low * scale;
      s.high[k] = high * scale;
      s.frac[k] = frac;
      s.rest[k] = f32(1 - frac);
      s.inside[k] = 1;
    }
  }
  return s;
}

/**
 * Aligned RoIAlign of the 0/1 plane at `offset` over the clipped RoI, written
 * into `out` (`size * size` values from `at`), thresholded at 0.5 when
 * `binarize`.
 */
function alignOne(
  masks: Uint8Array,
  offset: number,
  ys: AxisSamples,
  xs: AxisSamples,
  size: number,
  out: Float32Array,
  at: number,
  binarize: boolean,
): void {
  const gh = ys.grid, gw = xs.grid;
  const count = Math.max(gh * gw, 1);
  const { low: yLow, high: yHigh, frac: yFrac, rest: yRest, inside: yIn } = ys;
  const { low: xLow, high: xHigh, frac: xFrac, rest: xRest, inside: xIn } = xs;
  for (let ph = 0; ph < size; ph++) {
    for (let pw = 0; pw < size; pw++) {
      let acc = 0;
      for (let iy = 0, ky = ph * gh; iy < gh; iy++, ky++) {
        if (!yIn[ky]) continue;
        const rowLow = offset + yLow[ky], rowHigh = offset + yHigh[ky];
        const ly = yFrac[ky], hy = yRest[ky];
        for (let ix = 0, kx = pw * gw; ix < gw; ix++, kx++) {
          if (!xIn[kx]) continue;
          const xl = xLow[kx], xh = xHigh[kx];
          const m1 = masks[rowLow + xl], m2 = masks[rowLow + xh];
          const m3 = masks[rowHigh + xl], m4 = masks[rowHigh + xh];
          if (!(m1 | m2 | m3 | m4)) continue; // four zero taps add exactly 0
          const lx = xFrac[kx], hx = xRest[kx];
          // ((w1 m1 + w2 m2) + w3 m3) + w4 m4 with m in {0, 1}: w m is w or 0.
          let v = m1 ? f32(hy * hx) : 0;
          v = f32(v + (m2 ? f32(hy * lx) : 0));
          v = f32(v + (m3 ? f32(ly * hx) : 0));
          v = f32(v + (m4 ? f32(ly * lx) : 0));
          acc = f32(acc + v);
        }
      }
      const soft = f32(acc / count);
      out[at + ph * size + pw] = binarize ? (soft >= 0.5 ? 1 : 0) : soft;
    }
  }
}

function checkedInputs(
  op: string,
  masks: Uint8Array,
  height: number,
  width: number,
  rois: ArrayLike<number>,
  gtIndex: ArrayLike<number>,
  size: number,
): number {
  for (const [name, v] of [["height", height], ["width", width], ["size", size]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`${op}: ${name} ${v} is not a positive integer`);
    }
  }
  const plane = height * width;
  if (masks.length % plane !== 0) {
    throw new TypeError(
      `${op}: masks have ${masks.length} values, not a multiple of ${height}x${width}`,
    );
  }
  const numMasks = masks.length / plane;
  const k = gtIndex.length;
  if (rois.length !== 4 * k) {
    throw new TypeError(`${op}: ${rois.length} RoI coordinates for ${k} gtIndex entries`);
  }
  for (let i = 0; i < k; i++) {
    const g = gtIndex[i];
    if (!Number.isInteger(g) || g < 0 || g >= numMasks) {
      throw new RangeError(`${op}: RoI ${i} has gtIndex ${g}, outside the ${numMasks} masks`);
    }
    for (let c = 0; c < 4; c++) {
      if (!Number.isFinite(rois[4 * i + c])) {
        throw new RangeError(`${op}: RoI ${i} has coordinate ${rois[4 * i + c]}`);
      }
    }
  }
  return k;
}

function resample(
  op: string,
  masks: Uint8Array,
  height: number,
  width: number,
  rois: ArrayLike<number>,
  gtIndex: ArrayLike<number>,
  size: number,
  binarize: boolean,
): Float32Array {
  const k = checkedInputs(op, masks, height, width, rois, gtIndex, size);
  const cells = size * size;
  const out = new Float32Array(k * cells);
  const clip = (v: number, hi: number) => Math.min(Math.max(f32(v), 0), hi);
  for (let i = 0; i < k; i++) {
    const x1 = clip(rois[4 * i], width), y1 = clip(rois[4 * i + 1], height);
    const x2 = clip(rois[4 * i + 2], width), y2 = clip(rois[4 * i + 3], height);
    const ys = axisSamples(y1, y2, size, height, width);
    const xs = axisSamples(x1, x2, size, width, 1);
    alignOne(masks, gtIndex[i] * height * width, ys, xs, size, out, i * cells, binarize);
  }
  return out;
}

/**
 * Binary mask targets of positive RoIs (mmdetection's `mask_target_single`):
 * each RoI is clipped to `[0, width] x [0, height]`, its matched mask is
 * resampled over it to `size x size` by aligned RoIAlign (adaptive
 * `ceil(side / size)` samples per cell), and the average is thresholded:
 * `>= 0.5` gives 1. A RoI that clipping leaves with zero width or height
 * (outside the image, or degenerate) gets zeros.
 *
 * The masks are the loader's per-image `Batch.masks[b]` (`[n, H, W]` at the
 * batch's padded `H`, `W`); the cost is about `max(size^2, RoI area)` samples
 * per RoI, with no copy of the masks. (mmdetection pads each image's masks to
 * a multiple of 32 only; the two agree except within half a pixel of the
 * right or bottom edge of an image whose size is already such a multiple,
 * where mmdetection clamps onto the edge pixel and a wider batch reads the
 * padding's zeros.)
 *
 * @example A RoI on a 28 x 28 integer box copies the mask; one outside the image gives zeros
 * ```ts
 * import { maskTargets } from "./mask_targets.ts";
 * import assert from "node:assert/strict";
 *
 * const masks = new Uint8Array(40 * 40);
 * masks[10 * 40 + 12] = 1; // one foreground pixel at row 10, column 12
 * const t = maskTargets(masks, 40, 40, [5, 6, 33, 34, 50, 0, 60, 10], [0, 0]);
 * assert.equal(t.length, 2 * 28 * 28);
 * assert.equal(t[(10 - 6) * 28 + (12 - 5)], 1);
 * assert.equal(t.reduce((a, b) => a + b, 0), 1);
 * ```
 *
 * @param masks `[n, height, width]` 0/1 masks (non-zero counts as 1), one plane per object.
 * @param height Mask height.
 * @param width Mask width.
 * @param rois `[K, 4]` xyxy RoIs in mask pixels (rounded to float32).
 * @param gtIndex `[K]` index of each RoI's mask in `masks`.
 * @param size Output side (28 in Mask R-CNN).
 * @returns `[K, size, size]` of 0 and 1.
 * @throws {RangeError} For a non-integer size, a `gtIndex` outside `[0, n)` or a non-finite RoI.
 * @throws {TypeError} When the lengths of `masks`, `rois` and `gtIndex` disagree.
 */
export function maskTargets(
  masks: Uint8Array,
  height: number,
  width: number,
  rois: ArrayLike<number>,
  gtIndex: ArrayLike<number>,
  size = 28,
): Float32Array {
  return resample("maskTargets", masks, height, width, rois, gtIndex, size, true);
}

/**
 * The soft values behind {@linkcode maskTargets}: the float32 RoIAlign
 * averages in `[0, 1]`, before the 0.5 threshold (equal to mmcv's CPU kernel
 * bit for bit).
 *
 * @example Shifted by half a pixel, samples fall on a mask edge and average to 0.5
 * ```ts
 * import { maskTargetsSoft } from "./mask_targets.ts";
 * import assert from "node:assert/strict";
 *
 * const masks = new Uint8Array(4 * 4).fill(1, 0, 8); // the top two rows
 * const soft = maskTargetsSoft(masks, 4, 4, [0, 1.5, 2, 3.5], [0], 2);
 * assert.deepEqual(Array.from(soft), [0.5, 0.5, 0, 0]);
 * ```
 *
 * @param masks `[n, height, width]` 0/1 masks.
 * @param height Mask height.
 * @param width Mask width.
 * @param rois `[K, 4]` xyxy RoIs (rounded to float32).
 * @param gtIndex `[K]` mask index of each RoI.
 * @param size Output side.
 * @returns `[K, size, size]` float32 averages.
 */
export function maskTargetsSoft(
  masks: Uint8Array,
  height: number,
  width: number,
  rois: ArrayLike<number>,
  gtIndex: ArrayLike<number>,
  size = 28,
): Float32Array {
  return resample("maskTargetsSoft", masks, height, width, rois, gtIndex, size, false);
}
