/**
 * Transposed 2-D convolution (NCHW, PyTorch's `conv_transpose2d`) and its
 * gradient, built from the three passes of `conv2d`.
 *
 * A transposed convolution of `x` with `weight` `[Cin, Cout, kh, kw]` is the
 * input gradient of the convolution of a `[N, Cout, Hout, Wout]` image with
 * that same weight read as conv2d's `[Cout' = Cin, C' = Cout, kh, kw]`, taken
 * at output gradient `x`. So the forward pass is conv2d's input gradient
 * (`weightᵀ x` per image, folded into the output by `conv.col2im`), the input
 * gradient is conv2d's forward pass of the output gradient `gy` (`conv.im2col`
 * of `gy`, multiplied by the weight), and the weight gradient is conv2d's
 * weight gradient with `x` as the output gradient and `gy` as the input (`x`
 * times the columns of `gy`, which the input gradient's pass hands over when
 * it built them). Every backend and every path of `conv.ts` applies
 * unchanged: WGSL kernels on WebGPU (the direct and packed uniform-window
 * kernels on llvmpipe), OpenBLAS products and native column loops on the
 * native backend, the CPU twins on the CPU.
 *
 * @module
 */

import { noGrad, record } from "../autograd.ts";
import { type Tensor, viewOf } from "../tensor.ts";
import { forward, type Geometry, gradInput, gradWeight, pair } from "./conv.ts";
import { add } from "./elementwise.ts";
import { backendOf } from "./launch.ts";
import { sum } from "./reduce.ts";

/**
 * Options of {@linkcode convTranspose2d}; numbers apply to both axes, pairs
 * are `[y, x]`. Groups are not supported (always 1).
 */
export interface ConvTranspose2dOptions {
  /** Step between the output positions of neighbouring input pixels; default 1. */
  stride?: number | readonly [number, number];
  /** Rows and columns cropped from both sides of the full output; default 0. */
  padding?: number | readonly [number, number];
  /**
   * Rows and columns added at the bottom and right of the output; default 0.
   * Must be smaller than the stride or the dilation of its axis (as in PyTorch).
   */
  outputPadding?: number | readonly [number, number];
  /** Spacing between kernel taps; default 1. */
  dilation?: number | readonly [number, number];
  /** Optional `[Cout]` bias added to every output position. */
  bias?: Tensor;
}

const shapeOf = (t: Tensor) => `[${t.shape.join(", ")}]`;

/**
 * The geometry of the conv2d whose input gradient is this transposed
 * convolution: `n` images of `c = Cout` x `h = Hout` x `w = Wout`, `cout =
 * Cin` filters, outputs `ho = H` x `wo = W`. (With an output padding at or past
 * the stride, which PyTorch allows below the dilation, conv2d's size rule
 * would give more than `H` outputs; the ones past `H` would read zero padding
 * of `x`, and every pass of `conv.ts` takes `ho` and `wo` from the geometry.)
 */
function geometryOf(
  op: string,
  x: Tensor,
  weight: Tensor,
  options: ConvTranspose2dOptions,
): Geometry {
  if (x.rank !== 4 || weight.rank !== 4) {
    throw new TypeError(
      `${op}: expected input [N, Cin, H, W] and weight [Cin, Cout, kh, kw], got ${shapeOf(x)} and ${
        shapeOf(weight)
      }`,
    );
  }
  if (x.dtype !== weight.dtype || (x.dtype !== "f32" && x.dtype !== "f64")) {
    throw new TypeError(
      `${op}: expected f32 input and weight, got ${x.dtype} ${shapeOf(x)} and ${weight.dtype} ${
        shapeOf(weight)
      }`,
    );
  }
  const groups = (options as { groups?: unknown }).groups;
  if (groups !== undefined && groups !== 1) {
    throw new RangeError(`${op}: groups ${groups} is not supported (only 1)`);
  }
  const [n, cin, h, w] = x.shape;
  const [wcin, cout, kh, kw] = weight.shape;
  if (wcin !== cin) {
    throw new TypeError(
      `${op}: input ${shapeOf(x)} has ${cin} channels but weight ${
        shapeOf(weight)
      } expects ${wcin}`,
    );
  }
  if (h < 1 || w < 1 || kh < 1 || kw < 1) {
    throw new TypeError(
      `${op}: input ${shapeOf(x)} and weight ${shapeOf(weight)} need non-empty planes and kernels`,
    );
  }
  const [sh, sw] = pair(op, "stride", options.stride, 1, 1);
  const [ph, pw] = pair(op, "padding", options.padding, 0, 0);
  const [oh, ow] = pair(op, "outputPadding", options.outputPadding, 0, 0);
  const [dh, dw] = pair(op, "dilation", options.dilation, 1, 1);
  if ((oh >= sh && oh >= dh) || (ow >= sw && ow >= dw)) {
    throw new RangeError(
      `${op}: outputPadding [${oh}, ${ow}] must be smaller than stride [${sh}, ${sw}] or dilation [${dh}, ${dw}]`,
    );
  }
  const ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oh + 1;
  const wo = (w - 1) * sw - 2 * pw + dw * (kw - 1) + ow + 1;
  if (ho < 1 || wo < 1) {
    const settings = `stride ${sh}, ${sw}, padding ${ph}, ${pw}, dilation ${dh}, ${dw}` +
      ` and outputPadding ${oh}, ${ow}`;
    throw new TypeError(
      `${op}: input ${
        shapeOf(x)
      } with kernel [${kh}, ${kw}], ${settings} gives an output of ${ho} x ${wo}`,
    );
  }
  const bias = options.bias;
  if (bias && (bias.rank !== 1 || bias.shape[0] !== cout || bias.dtype !== x.dtype)) {
    throw new TypeError(
      `${op}: bias ${bias.dtype} ${shapeOf(bias)} does not match ${cout} output channels`,
    );
  }
  return {
    n,
    c: cout,
    h: ho,
    w: wo,
    cout: cin,
    groups: 1,
    kh,
    kw,
    sh,
    sw,
    ph,
    pw,
    dh,
    dw,
    ho: h,
    wo: w,
  };
}

/**
 * Transposed 2-D convolution of NCHW `x` with `weight` `[Cin, Cout, kh, kw]`
 * (PyTorch's `conv_transpose2d` with groups 1, the adjoint of
 * `conv2d`): input pixel `(y, x)` adds `x[n, ci, y, x] *
 * weight[ci, co, ki, kj]` to output `(y * stride - padding + ki * dilation,
 * x * stride - padding + kj * dilation)`. Output `[N, Cout, Hout, Wout]` with
 * `Hout = (H - 1) * stride - 2 * padding + dilation * (kh - 1) + outputPadding + 1`.
 * Differentiable in `x`, `weight` and `bias`.
 *
 * @example A 2 x 2, stride-2 upsampling (Mask R-CNN's mask head)
 * ```ts
 * import { convTranspose2d } from "./conv_transpose.ts";
 * import { tensor } from "../tensor.ts";
 * import assert from "node:assert/strict";
 * const x = tensor([1, 2, 3, 4], [1, 1, 2, 2]);
 * const w = tensor([1, 10, 100, 1000], [1, 1, 2, 2]);
 * const y = convTranspose2d(x, w, { stride: 2 });
 * assert.deepEqual(y.shape, [1, 1, 4, 4]); // each pixel becomes a 2 x 2 block
 * assert.deepEqual([...(await y.data()).slice(0, 4)], [1, 10, 2, 20]);
 * ```
 *
 * @param x Input `[N, Cin, H, W]` (f32, or f64 on the CPU).
 * @param weight Filters `[Cin, Cout, kh, kw]`.
 * @param options Stride, padding, output padding, dilation, bias.
 * @returns `[N, Cout, Hout, Wout]`.
 */
export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  options: ConvTranspose2dOptions = {},
): Tensor {
  const op = "convTranspose2d";
  const bias = options.bias;
  const inputs = bias ? [x, weight, bias] : [x, weight];
  backendOf(op, inputs);
  const g = geometryOf(op, x, weight, options);
  const out = noGrad(() => {
    const y = gradInput(x, weight, g);
    if (!bias) return y;
    const b4 = viewOf(bias, [1, g.c, 1, 1]);
    const biased = add(y, b4);
    b4.dispose();
    y.dispose();
    return biased;
  });
  record(op, inputs, [out], ([gy]) => {
    let gx: Tensor | null = null;
    let columns: Tensor | null = null;
    if (x.requiresGrad) {
      ({ out: gx, columns } = forward(gy!, weight, g, weight.requiresGrad));
    }
    const gw = weight.requiresGrad ? gradWeight(x, gy!, g, columns) : null;
    if (columns && !columns.disposed) columns.dispose();
    const grads = [gx, gw];
    if (bias) grads.push(bias.requiresGrad ? sum(gy!, [0, 2, 3]) : null);
    return grads;
  });
  return out;
}
