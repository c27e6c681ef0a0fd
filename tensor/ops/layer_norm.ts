/**
 * Layer normalisation over the last axes (PyTorch's `layer_norm`: biased
 * variance, `eps` inside the square root), with hand-written gradients for the
 * input, the weight and the bias.
 *
 * One kernel family, `layer_norm.*`, views the input as `[rows, d]` with `d`
 * the product of the normalised dimensions. `layer_norm.forward` gives each
 * invocation one row (mean, then the sum of squared deviations, then the
 * normalised and scaled row) and keeps the row's mean and `1 / std` for the
 * backward pass. `layer_norm.grad_input` recomputes `xhat` per row and needs
 * only the row's two sums; `layer_norm.grad_affine` sums `g` and `g * xhat`
 * down the rows for each column, {@linkcode LAYER_NORM_ROW_CHUNK} rows per
 * invocation, and a short `sum` merges the chunks. Rows longer than
 * {@linkcode LAYER_NORM_FUSED_MAX} (past llvmpipe's per-invocation loop limit)
 * go through `groupNorm` with one group over a `[rows, d]` view instead, whose
 * statistics are reduced in chunks. The native backend runs these twins as
 * they are: each is already one loop over whole rows.
 *
 * @module
 */

import { record } from "../autograd.ts";
import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { empty, sizeOf, type Tensor, viewOf } from "../tensor.ts";
import { full } from "./creation.ts";
import { backendOf, expectDtype, launch, launchInto } from "./launch.ts";
import { groupNorm } from "./norm.ts";
import { sum } from "./reduce.ts";
import { reshape } from "./shape.ts";

/** Longest row (`d` elements) one invocation normalises; longer rows use `groupNorm`. */
export const LAYER_NORM_FUSED_MAX = 8192;
/** Rows one `layer_norm.grad_affine` invocation sums per column. */
export const LAYER_NORM_ROW_CHUNK = 256;
const WG = 64;

const cached = kernelCache();

const AFFINE_PARAMS = { rows: "u32", d: "u32", has_w: "u32", has_b: "u32" } as const;

function forwardKernel(dtype: DType): Kernel {
  return cached(`forward|${dtype}`, () => ({
    label: "layer_norm.forward",
    inputs: { x: dtype, w: dtype, b: dtype },
    outputs: { out: dtype, mean: dtype, rstd: dtype },
    params: { ...AFFINE_PARAMS, eps: "f32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  if (i >= p.rows) { return; }
  let base = i * p.d;
  var s = 0.0;
  for (var k = 0u; k < p.d; k++) { s += x[base + k]; }
  let mu = s / f32(p.d);
  var m2 = 0.0;
  for (var k = 0u; k < p.d; k++) {
    let dev = x[base + k] - mu;
    m2 += dev * dev;
  }
  let rs = inverseSqrt(m2 / f32(p.d) + p.eps);
  mean[i] = mu;
  rstd[i] = rs;
  for (var k = 0u; k < p.d; k++) {
    var y = (x[base + k] - mu) * rs;
    if (p.has_w != 0u) { y = y * w[k]; }
    if (p.has_b != 0u) { y = y + b[k]; }
    out[base + k] = y;
  }
}`,
    cpu(ins, outs, params) {
      const { rows, d, has_w: hasW, has_b: hasB, eps } = params as Record<string, number>;
      const { x, w, b } = ins;
      const { out, mean, rstd } = outs;
      for (let i = 0; i < rows; i++) {
        const base = i * d;
        let s = 0;
        for (let k = 0; k < d; k++) s += x[base + k];
        const mu = s / d;
        let m2 = 0;
        for (let k = 0; k < d; k++) {
          const dev = x[base + k] - mu;
          m2 += dev * dev;
        }
        const rs = 1 / Math.sqrt(m2 / d + eps);
        mean[i] = mu;
        rstd[i] = rs;
        for (let k = 0; k < d; k++) {
          let y = (x[base + k] - mu) * rs;
          if (hasW) y *= w[k];
          if (hasB) y += b[k];
          out[base + k] = y;
        }
      }
    },
  }));
}

function gradInputKernel(dtype: DType): Kernel {
  return cached(`grad_input|${dtype}`, () => ({
    label: "layer_norm.grad_input",
    inputs: { g: dtype, x: dtype, mean: dtype, rstd: dtype, w: dtype },
    outputs: { dx: dtype },
    params: AFFINE_PARAMS,
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  if (i >= p.rows) { return; }
  let base = i * p.d;
  let mu = mean[i];
  let rs = rstd[i];
  var s1 = 0.0;
  var s2 = 0.0;
  for (var k = 0u; k < p.d; k++) {
    var gw = g[base + k];
    if (p.has_w != 0u) { gw = gw * w[k]; }
    s1 += gw;
    s2 += gw * (x[base + k] - mu) * rs;
  }
  let c1 = s1 / f32(p.d);
  let c2 = s2 / f32(p.d);
  for (var k = 0u; k < p.d; k++) {
    var gw = g[base + k];
    if (p.has_w != 0u) { gw = gw * w[k]; }
    dx[base + k] = rs * (gw - c1 - (x[base + k] - mu) * rs * c2);
  }
}`,
    cpu(ins, outs, params) {
      const { rows, d, has_w: hasW } = params as Record<string, number>;
      const { g, x, mean, rstd, w } = ins;
      const dx = outs.dx;
      for (let i = 0; i < rows; i++) {
        const base = i * d, mu = mean[i], rs = rstd[i];
        let s1 = 0, s2 = 0;
        for (let k = 0; k < d; k++) {
          const gw = hasW ? g[base + k] * w[k] : g[base + k];
          s1 += gw;
          s2 += gw * (x[base + k] - mu) * rs;
        }
        const c1 = s1 / d, c2 = s2 / d;
        for (let k = 0; k < d; k++) {
          const gw = hasW ? g[base + k] * w[k] : g[base + k];
          dx[base + k] = rs * (gw - c1 - (x[base + k] - mu) * rs * c2);
        }
      }
    },
  }));
}

/** Per (row chunk, column) sums of `g * xhat` (`gw`) and `g` (`gb`), laid out `[chunks, d]`. */
function gradAffineKernel(dtype: DType): Kernel {
  return cached(`grad_affine|${dtype}`, () => ({
    label: "layer_norm.grad_affine",
    inputs: { g: dtype, x: dtype, mean: dtype, rstd: dtype },
    outputs: { gw: dtype, gb: dtype },
    params: { rows: "u32", d: "u32", chunk: "u32", chunks: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  if (i >= p.chunks * p.d) { return; }
  let col = i % p.d;
  let start = (i / p.d) * p.chunk;
  let stop = min(p.rows, start + p.chunk);
  var sg = 0.0;
  var sgx = 0.0;
  for (var r = start; r < stop; r++) {
    let at = r * p.d + col;
    sg += g[at];
    sgx += g[at] * (x[at] - mean[r]) * rstd[r];
  }
  gw[i] = sgx;
  gb[i] = sg;
}`,
    cpu(ins, outs, params) {
      const { rows, d, chunk, chunks } = params as Record<string, number>;
      const { g, x, mean, rstd } = ins;
      const sg = new Float64Array(d), sgx = new Float64Array(d);
      // Row by row (the same sums per column as the kernel's column walk, read in memory order).
      for (let c = 0; c < chunks; c++) {
        sg.fill(0);
        sgx.fill(0);
        for (let r = c * chunk; r < Math.min(rows, (c + 1) * chunk); r++) {
          const mu = mean[r], rs = rstd[r];
          for (let col = 0, at = r * d; col < d; col++, at++) {
            sg[col] += g[at];
            sgx[col] += g[at] * (x[at] - mu) * rs;
          }
        }
        outs.gw.set(sgx, c * d);
        outs.gb.set(sg, c * d);
      }
    },
  }));
}

/** Options of {@linkcode layerNorm}. */
export interface LayerNormOptions {
  /** Scale of the normalised dimensions (shape `normalizedShape`); none by default. */
  weight?: Tensor;
  /** Shift of the normalised dimensions (shape `normalizedShape`); none by default. */
  bias?: Tensor;
  /** Added to the variance; default 1e-5. */
  eps?: number;
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function checkAffine(
  x: Tensor,
  normalized: readonly number[],
  t: Tensor | undefined,
  name: string,
) {
  if (!t) return;
  if (t.shape.join() !== normalized.join()) {
    throw new TypeError(
      `layerNorm: ${name} has shape ${shapeText(t.shape)} but the normalized shape is ${
        shapeText(normalized)
      }`,
    );
  }
  if (t.dtype !== x.dtype) {
    throw new TypeError(`layerNorm: ${name} is ${t.dtype} but the input is ${x.dtype}`);
  }
  backendOf("layerNorm", [x, t]);
}

/**
 * Sums of the `[chunks, d]` partial sums down to one row of `shape`; disposes `part`
 * (or hands its memory on).
 */
function mergeChunks(part: Tensor, chunks: number, shape: readonly number[]): Tensor {
  const merged = chunks > 1 ? sum(part, 0) : viewOf(part, shape);
  part.dispose();
  if (merged.shape.join() === shape.join()) return merged;
  const out = viewOf(merged, shape);
  merged.dispose();
  return out;
}

/** Rows longer than the fused kernels take: `groupNorm` with one group over `[rows, d]`. */
function layerNormLong(
  x: Tensor,
  rows: number,
  d: number,
  weight: Tensor | undefined,
  bias: Tensor | undefined,
  eps: number,
): Tensor {
  const filler = (value: number) => full([d], value, { dtype: x.dtype, backend: x.backend });
  const flat = reshape(x, [rows, d]);
  const w = weight ? reshape(weight, [d]) : bias ? filler(1) : undefined;
  const b = bias ? reshape(bias, [d]) : weight ? filler(0) : undefined;
  const y = groupNorm(flat, 1, w, b, eps);
  const out = reshape(y, x.shape);
  y.dispose();
  // The tape reads the views in the backward pass; without one they are scratch.
  if (!out.node) { for (const t of [flat, w, b]) t?.dispose(); }
  return out;
}

/**
 * Layer normalisation: each run of the last `normalizedShape.length`
 * dimensions of `x` is normalised by its mean and biased variance, then
 * multiplied by `weight` and shifted by `bias` elementwise (as PyTorch's
 * `F.layer_norm`). Gradients flow to `x`, `weight` and `bias`.
 *
 * @example Normalising the last axis of `[2, 3]`
 * ```ts
 * import { layerNorm } from "./layer_norm.ts";
 * import { tensor } from "../tensor.ts";
 * const x = tensor([[1, 2, 3], [2, 4, 6]]);
 * const y = layerNorm(x, [3], { weight: tensor([1, 1, 2]), bias: tensor([0, 0, 1]) });
 * console.log(await y.data()); // ~[-1.2247, 0, 3.4495, -1.2247, 0, 3.4495]
 * ```
 *
 * @param x Input `[..., *normalizedShape]` (f32, or f64 on the CPU).
 * @param normalizedShape The trailing dimensions normalised together (a number: the last one).
 * @param options `weight` and `bias` of shape `normalizedShape` (each optional), `eps`.
 * @returns A tensor of `x`'s shape.
 */
export function layerNorm(
  x: Tensor,
  normalizedShape: number | readonly number[],
  options: LayerNormOptions = {},
): Tensor {
  const { weight, bias, eps = 1e-5 } = options;
  expectDtype("layerNorm", x, ["f32", "f64"]);
  const normalized = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
  const trailing = x.shape.slice(x.rank - normalized.length);
  if (
    normalized.length === 0 || normalized.length > x.rank ||
    trailing.join() !== normalized.join()
  ) {
    throw new TypeError(
      `layerNorm: normalized shape ${shapeText(normalized)} does not match the last dimensions of ${
        shapeText(x.shape)
      }`,
    );
  }
  if (!(eps >= 0)) throw new RangeError(`layerNorm: eps ${eps} is not a non-negative number`);
  checkAffine(x, normalized, weight, "weight");
  checkAffine(x, normalized, bias, "bias");
  const d = sizeOf(normalized);
  const rows = d === 0 ? 0 : x.size / d;
  if (d > LAYER_NORM_FUSED_MAX && rows > 0) return layerNormLong(x, rows, d, weight, bias, eps);
  const backend = backendOf("layerNorm", [x]);
  const out = empty(x.shape, x.dtype, backend);
  const mean = empty([rows], x.dtype, backend);
  const rstd = empty([rows], x.dtype, backend);
  const affine = { rows, d, has_w: weight ? 1 : 0, has_b: bias ? 1 : 0 };
  launch(
    forwardKernel(x.dtype),
    [x, weight ?? x, bias ?? x],
    [out, mean, rstd],
    { ...affine, eps },
    Math.ceil(rows / WG),
  );
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  record("layerNorm", inputs, [out], ([g]) => {
    let dx: Tensor | null = null, gw: Tensor | null = null, gb: Tensor | null = null;
    if (x.requiresGrad) {
      dx = launchInto(
        gradInputKernel(x.dtype),
        [g!, x, mean, rstd, weight ?? x],
        x.shape,
        x.dtype,
        affine,
        Math.ceil(rows / WG),
      );
    }
    if (weight?.requiresGrad || bias?.requiresGrad) {
      const chunks = Math.max(1, Math.ceil(rows / LAYER_NORM_ROW_CHUNK));
      const pw = empty([chunks, d], x.dtype, backend), pb = empty([chunks, d], x.dtype, backend);
      launch(
        gradAffineKernel(x.dtype),
        [g!, x, mean, rstd],
        [pw, pb],
        { rows, d, chunk: LAYER_NORM_ROW_CHUNK, chunks },
        Math.ceil((chunks * d) / WG),
      );
      if (weight?.requiresGrad) gw = mergeChunks(pw, chunks, normalized);
      else pw.dispose();
      if (bias?.requiresGrad) gb = mergeChunks(pb, chunks, normalized);
      else pb.dispose();
    }
    mean.dispose();
    rstd.dispose();
    return [dx, ...(weight ? [gw] : []), ...(bias ? [gb] : [])];
  });
  if (!out.node) {
    mean.dispose();
    rstd.dispose();
  }
  return out;
}
