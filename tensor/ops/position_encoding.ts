/**
 * DETR's sine positional encoding of a padded feature map (`PositionEmbeddingSine` in DETR
 * and Deformable-DETR, `SinePositionalEncoding` in mmdetection), computed on the device from
 * the padding mask with no readback. No gradient: the encoding is a constant of the mask.
 *
 * One kernel, `position.sine`, gives each invocation one pixel `(n, y, x)`: it counts the
 * unpadded pixels of its column up to its row (and in the whole column) and of its row up to
 * its column (and in the whole row), then writes the pixel's `2 * numFeats` channels.
 *
 * @module
 */

import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import type { Tensor } from "../tensor.ts";
import { launchInto } from "./launch.ts";

const WG = 64;

const cached = kernelCache();

function sineKernel(maskType: DType): Kernel {
  return cached(maskType, () => ({
    label: "position.sine",
    inputs: { mask: maskType },
    outputs: { out: "f32" },
    params: {
      n: "u32",
      h: "u32",
      w: "u32",
      feats: "u32",
      normalize: "u32",
      temperature: "f32",
      scale: "f32",
      offset: "f32",
      eps: "f32",
    },
    workgroupSize: WG,
    code: `alias M = ${maskType === "f64" ? "f32" : maskType};
${entryPoint(WG)}
  let plane = p.h * p.w;
  if (i >= p.n * plane) { return; }
  let col = i % p.w;
  let row = (i / p.w) % p.h;
  let img = i / plane;
  let base = img * plane;
  var ye = 0.0;
  var ytot = 0.0;
  for (var r = 0u; r < p.h; r++) {
    let open = select(1.0, 0.0, mask[base + r * p.w + col] != M(0));
    ytot += open;
    if (r <= row) { ye += open; }
  }
  var xe = 0.0;
  var xtot = 0.0;
  for (var c = 0u; c < p.w; c++) {
    let open = select(1.0, 0.0, mask[base + row * p.w + c] != M(0));
    xtot += open;
    if (c <= col) { xe += open; }
  }
  if (p.normalize != 0u) {
    ye = (ye + p.offset) / (ytot + p.eps) * p.scale;
    xe = (xe + p.offset) / (xtot + p.eps) * p.scale;
  }
  let at = img * 2u * p.feats * plane + row * p.w + col;
  for (var k = 0u; k < p.feats; k++) {
    let dim = pow(p.temperature, f32(2u * (k / 2u)) / f32(p.feats));
    let ay = ye / dim;
    let ax = xe / dim;
    if (k % 2u == 0u) {
      out[at + k * plane] = sin(ay);
      out[at + (p.feats + k) * plane] = sin(ax);
    } else {
      out[at + k * plane] = cos(ay);
      out[at + (p.feats + k) * plane] = cos(ax);
    }
  }
}`,
    cpu(ins, outs, params) {
      const { n, h, w, feats, normalize, temperature, scale, offset, eps } = params as Record<
        string,
        number
      >;
      const mask = ins.mask, out = outs.out;
      const plane = h * w;
      const dims = Array.from({ length: feats }, (_, k) => temperature ** (2 * (k >> 1) / feats));
      for (let i = 0; i < n * plane; i++) {
        const col = i % w, row = Math.floor(i / w) % h, img = Math.floor(i / plane);
        const base = img * plane;
        let ye = 0, ytot = 0, xe = 0, xtot = 0;
        for (let r = 0; r < h; r++) {
          const open = mask[base + r * w + col] !== 0 ? 0 : 1;
          ytot += open;
          if (r <= row) ye += open;
        }
        for (let c = 0; c < w; c++) {
          const open = mask[base + row * w + c] !== 0 ? 0 : 1;
          xtot += open;
          if (c <= col) xe += open;
        }
        if (normalize) {
          ye = (ye + offset) / (ytot + eps) * scale;
          xe = (xe + offset) / (xtot + eps) * scale;
        }
        const at = img * 2 * feats * plane + row * w + col;
        for (let k = 0; k < feats; k++) {
          const wave = k % 2 === 0 ? Math.sin : Math.cos;
          out[at + k * plane] = wave(ye / dims[k]);
          out[at + (feats + k) * plane] = wave(xe / dims[k]);
        }
      }
    },
  }));
}

/** Options of {@linkcode sinePositionEncoding}. */
export interface SinePositionOptions {
  /** Channels per axis (the output has `2 * numFeats`); default 128. Must be even. */
  numFeats?: number;
  /** Base of the geometric progression of wavelengths; default 10000. */
  temperature?: number;
  /** Scale the cumulative positions to `[0, scale]` by the unpadded extent; default true. */
  normalize?: boolean;
  /** The normalised range; default `2 * pi`. */
  scale?: number;
  /** Added to the cumulative positions before normalising; default 0 (Deformable-DETR: -0.5). */
  offset?: number;
  /** Added to the extent before dividing; default 1e-6. */
  eps?: number;
}

/**
 * The sine positional encoding of DETR: for each pixel, its 1-based position
 * among the unpadded pixels of its column (`y`) and row (`x`), optionally
 * normalised as `(pos + offset) / (extent + eps) * scale` (extent: the column's
 * or row's unpadded count), then divided by `temperature^(2 floor(k/2) / numFeats)`
 * for each channel `k` and passed through `sin` (even `k`) or `cos` (odd `k`).
 * Channels `0 .. numFeats` encode `y`, the next `numFeats` encode `x`
 * (mmdetection's `SinePositionalEncoding` and Deformable-DETR's
 * `PositionEmbeddingSine`; Deformable-DETR and Co-DETR pass `offset: -0.5`).
 * With `normalize`, a row or column that is padding throughout has an empty
 * extent, so its pixels get angles near `offset / eps * scale` (as in
 * PyTorch): meaningless values, masked downstream, whose sines differ between
 * backends.
 *
 * @example A 2 x 3 map whose last column is padding
 * ```ts
 * import { sinePositionEncoding } from "./position_encoding.ts";
 * import { tensor } from "../tensor.ts";
 * const mask = tensor([0, 0, 1, 0, 0, 1], [1, 2, 3], { dtype: "u32" });
 * const pos = sinePositionEncoding(mask, { numFeats: 4, offset: -0.5 });
 * console.log(pos.shape); // [1, 8, 2, 3]
 * ```
 *
 * @param mask Padding mask `[N, H, W]`, non-zero where the pixel is padding (any element type).
 * @param options Channels, temperature, normalisation.
 * @returns `[N, 2 * numFeats, H, W]` (`f32`), on the mask's backend.
 */
export function sinePositionEncoding(mask: Tensor, options: SinePositionOptions = {}): Tensor {
  const {
    numFeats = 128,
    temperature = 10000,
    normalize = true,
    scale = 2 * Math.PI,
    offset = 0,
    eps = 1e-6,
  } = options;
  if (mask.rank !== 3) {
    throw new TypeError(
      `sinePositionEncoding: mask must be [N, H, W] but has shape [${mask.shape.join(", ")}]`,
    );
  }
  if (!Number.isInteger(numFeats) || numFeats <= 0 || numFeats % 2 !== 0) {
    throw new RangeError(
      `sinePositionEncoding: numFeats ${numFeats} is not a positive even integer`,
    );
  }
  for (const [name, v] of [["temperature", temperature], ["scale", scale]] as const) {
    if (!(v > 0) || !Number.isFinite(v)) {
      throw new RangeError(`sinePositionEncoding: ${name} ${v} is not a positive number`);
    }
  }
  if (!Number.isFinite(offset) || !(eps >= 0)) {
    throw new RangeError(`sinePositionEncoding: offset ${offset} or eps ${eps} is invalid`);
  }
  const [n, h, w] = mask.shape;
  return launchInto(
    sineKernel(mask.dtype),
    [mask],
    [n, 2 * numFeats, h, w],
    "f32",
    {
      n,
      h,
      w,
      feats: numFeats,
      normalize: normalize ? 1 : 0,
      temperature,
      scale,
      offset,
      eps,
    },
    Math.ceil((n * h * w) / WG),
  );
}
