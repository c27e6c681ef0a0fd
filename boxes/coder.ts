/**
 * The delta-xywh box coder (mmdetection's `DeltaXYWHBBoxCoder`) as tensor
 * ops: `encode(proposals, gt)` gives normalised offsets
 * `((gx - px) / pw, (gy - py) / ph, log(gw / pw), log(gh / ph))`, minus
 * `means`, over `stds`; `decode(anchors, deltas)` inverts it, clamping the
 * log-size offsets at `log(1000 / 16)` and optionally clipping the boxes to
 * the image. Boxes are `xyxy` without a `+1` on sizes.
 *
 * Kernels: `box_coder.encode`, `box_coder.decode`, `box_coder.decode_grad`
 * (one invocation per box).
 *
 * @module
 */

import { record } from "../tensor/autograd.ts";
import type { DType } from "../tensor/dtype.ts";
import { entryPoint, type Kernel, kernelCache, type ParamType } from "../tensor/kernel.ts";
import { backendOf, launchInto } from "../tensor/ops/launch.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { checkBoxes } from "./box_ops.ts";

const WORKGROUP = 64;

/** `|log(16 / 1000)|`: the default bound of the decoded log-size offsets. */
export const DEFAULT_MAX_RATIO: number = Math.abs(Math.log(16 / 1000));

/** Options of {@linkcode DeltaXywhCoder}. */
export interface DeltaXywhCoderOptions {
  /** Subtracted from the raw offsets; default `[0, 0, 0, 0]`. */
  means?: readonly [number, number, number, number];
  /** Divide the raw offsets; default `[0.1, 0.1, 0.2, 0.2]`. */
  stds?: readonly [number, number, number, number];
  /** Bound of `|dw|`, `|dh|` when decoding; default {@linkcode DEFAULT_MAX_RATIO}. */
  maxRatio?: number;
}

const COMMON_PARAMS: Record<string, ParamType> = {
  rows: "u32",
  anchor_rows: "u32",
  m0: "f32",
  m1: "f32",
  m2: "f32",
  m3: "f32",
  s0: "f32",
  s1: "f32",
  s2: "f32",
  s3: "f32",
};

type Variant = "encode" | "decode" | "decode_grad";
const cached = kernelCache();

const WGSL_LOAD = /* wgsl */ `
fn anchor_at(r: u32) -> vec4<f32> {
  let o = 4u * (r % p.anchor_rows);
  let a = vec4<f32>(anc[o], anc[o + 1u], anc[o + 2u], anc[o + 3u]);
  return vec4<f32>((a.x + a.z) * 0.5, (a.y + a.w) * 0.5, a.z - a.x, a.w - a.y);
}
`;

/** WGSL shared by decode and its gradient: de-normalised deltas, box centre and size. */
const DECODE_CENTRE = `  let q = anchor_at(i);
  let d = vec4<f32>(deltas[o], deltas[o + 1u], deltas[o + 2u], deltas[o + 3u]) * s + m;
  let dw = clamp(d.z, -p.max_ratio, p.max_ratio);
  let dh = clamp(d.w, -p.max_ratio, p.max_ratio);
  let w = q.z * exp(dw);
  let h = q.w * exp(dh);
  let cx = q.x + q.z * d.x;
  let cy = q.y + q.w * d.y;
`;

function coderKernel(variant: Variant, dtype: DType): Kernel {
  const key = `${variant}|${dtype}`;
  return cached(key, () => {
    const params: Record<string, ParamType> = { ...COMMON_PARAMS };
    if (variant !== "encode") {
      Object.assign(params, { max_ratio: "f32", clip: "u32", max_w: "f32", max_h: "f32" });
    }
    const inputs: Record<string, DType> = variant === "encode"
      ? { anc: dtype, gt: dtype }
      : variant === "decode"
      ? { anc: dtype, deltas: dtype }
      : { g: dtype, anc: dtype, deltas: dtype };
    const body = {
      encode: `  let q = anchor_at(i);
  let t = vec4<f32>(gt[o], gt[o + 1u], gt[o + 2u], gt[o + 3u]);
  let gx = (t.x + t.z) * 0.5;
  let gy = (t.y + t.w) * 0.5;
  let d = vec4<f32>((gx - q.x) / q.z, (gy - q.y) / q.w, log((t.z - t.x) / q.z), log((t.w - t.y) / q.w));
  let r = (d - m) / s;
  out[o] = r.x;
  out[o + 1u] = r.y;
  out[o + 2u] = r.z;
  out[o + 3u] = r.w;`,
      decode:
        `${DECODE_CENTRE}  var box = vec4<f32>(cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h);
  if (p.clip == 1u) {
    box = clamp(box, vec4<f32>(0.0), vec4<f32>(p.max_w, p.max_h, p.max_w, p.max_h));
  }
  out[o] = box.x;
  out[o + 1u] = box.y;
  out[o + 2u] = box.z;
  out[o + 3u] = box.w;`,
      decode_grad:
        `${DECODE_CENTRE}  let box = vec4<f32>(cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h);
  var gb = vec4<f32>(g[o], g[o + 1u], g[o + 2u], g[o + 3u]);
  if (p.clip == 1u) {
    let hi = vec4<f32>(p.max_w, p.max_h, p.max_w, p.max_h);
    gb = select(vec4<f32>(0.0), gb, (box >= vec4<f32>(0.0)) & (box <= hi));
  }
  let gcx = gb.x + gb.z;
  let gcy = gb.y + gb.w;
  let gw = 0.5 * (gb.z - gb.x);
  let gh = 0.5 * (gb.w - gb.y);
  let in_w = select(0.0, 1.0, abs(d.z) <= p.max_ratio);
  let in_h = select(0.0, 1.0, abs(d.w) <= p.max_ratio);
  let gd = vec4<f32>(gcx * q.z, gcy * q.w, gw * w * in_w, gh * h * in_h) * s;
  out[o] = gd.x;
  out[o + 1u] = gd.y;
  out[o + 2u] = gd.z;
  out[o + 3u] = gd.w;`,
    }[variant];
    return {
      label: `box_coder.${variant}`,
      inputs,
      outputs: { out: dtype },
      params,
      workgroupSize: WORKGROUP,
      code: `${WGSL_LOAD}
${entryPoint(WORKGROUP)}
  if (i >= p.rows) { return; }
  let o = 4u * i;
  let m = vec4<f32>(p.m0, p.m1, p.m2, p.m3);
  let s = vec4<f32>(p.s0, p.s1, p.s2, p.s3);
${body}
}`,
      cpu(ins, outs, p) {
        const q = p as Record<string, number>;
        const m = [q.m0, q.m1, q.m2, q.m3], s = [q.s0, q.s1, q.s2, q.s3];
        const anc = ins.anc, out = outs.out;
        for (let r = 0; r < q.rows; r++) {
          const o = 4 * r, a = 4 * (r % q.anchor_rows);
          const px = (anc[a] + anc[a + 2]) * 0.5, py = (anc[a + 1] + anc[a + 3]) * 0.5;
          const pw = anc[a + 2] - anc[a], ph = anc[a + 3] - anc[a + 1];
          if (variant === "encode") {
            const t = ins.gt;
            const gx = (t[o] + t[o + 2]) * 0.5, gy = (t[o + 1] + t[o + 3]) * 0.5;
            const d = [
              (gx - px) / pw,
              (gy - py) / ph,
              Math.log((t[o + 2] - t[o]) / pw),
              Math.log((t[o + 3] - t[o + 1]) / ph),
            ];
            for (let k = 0; k < 4; k++) out[o + k] = (d[k] - m[k]) / s[k];
            continue;
          }
          const dl = ins.deltas;
          const d = [0, 1, 2, 3].map((k) => dl[o + k] * s[k] + m[k]);
          const dw = Math.min(Math.max(d[2], -q.max_ratio), q.max_ratio);
          const dh = Math.min(Math.max(d[3], -q.max_ratio), q.max_ratio);
          const w = pw * Math.exp(dw), h = ph * Math.exp(dh);
          const cx = px + pw * d[0], cy = py + ph * d[1];
          const box = [cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h];
          const hi = [q.max_w, q.max_h, q.max_w, q.max_h];
          if (variant === "decode") {
            for (let k = 0; k < 4; k++) {
              out[o + k] = q.clip === 1 ? Math.min(Math.max(box[k], 0), hi[k]) : box[k];
            }
            continue;
          }
          const g = [0, 1, 2, 3].map((k) =>
            q.clip === 1 && !(box[k] >= 0 && box[k] <= hi[k]) ? 0 : ins.g[o + k]
          );
          const inW = Math.abs(d[2]) <= q.max_ratio ? 1 : 0;
          const inH = Math.abs(d[3]) <= q.max_ratio ? 1 : 0;
          out[o] = (g[0] + g[2]) * pw * s[0];
          out[o + 1] = (g[1] + g[3]) * ph * s[1];
          out[o + 2] = 0.5 * (g[2] - g[0]) * w * inW * s[2];
          out[o + 3] = 0.5 * (g[3] - g[1]) * h * inH * s[3];
        }
      },
    };
  });
}

/**
 * mmdetection's delta-xywh box coder (no `+1` on sizes), as tensor ops.
 *
 * @example Round trip
 * ```ts
 * import { DeltaXywhCoder } from "./coder.ts";
 * import { tensor } from "../tensor/tensor.ts";
 * const coder = new DeltaXywhCoder();
 * const anchors = tensor([[0, 0, 10, 10]]);
 * const deltas = coder.encode(anchors, tensor([[1, 2, 9, 14]]));
 * console.log(await deltas.data()); // Float32Array [0, 3, -1.1157..., 0.9116...]
 * console.log(await coder.decode(anchors, deltas).data()); // Float32Array [1, 2, 9, 14]
 * ```
 */
export class DeltaXywhCoder {
  /** Subtracted from the raw offsets. */
  readonly means: readonly [number, number, number, number];
  /** Divide the raw offsets. */
  readonly stds: readonly [number, number, number, number];
  /** Bound of the decoded `|dw|`, `|dh|`. */
  readonly maxRatio: number;

  /** A coder with the given means, stds and log-size bound. */
  constructor(options: DeltaXywhCoderOptions = {}) {
    this.means = options.means ?? [0, 0, 0, 0];
    this.stds = options.stds ?? [0.1, 0.1, 0.2, 0.2];
    this.maxRatio = options.maxRatio ?? DEFAULT_MAX_RATIO;
    if (this.means.length !== 4 || this.stds.length !== 4) {
      throw new TypeError("DeltaXywhCoder: means and stds must have 4 values");
    }
    this.stds.forEach((s, k) => {
      if (!(s > 0)) throw new RangeError(`DeltaXywhCoder: stds[${k}] = ${s} is not positive`);
    });
    if (!(this.maxRatio >= 0)) {
      throw new RangeError(`DeltaXywhCoder: maxRatio ${this.maxRatio} is negative`);
    }
  }

  #params(rows: number, anchorRows: number): Record<string, number> {
    const [m0, m1, m2, m3] = this.means, [s0, s1, s2, s3] = this.stds;
    return { rows, anchor_rows: Math.max(anchorRows, 1), m0, m1, m2, m3, s0, s1, s2, s3 };
  }

  #check(op: string, anchors: Tensor, other: Tensor, name: string): void {
    checkBoxes(op, anchors, "anchors");
    checkBoxes(op, other, name);
    if (anchors.dtype !== other.dtype) {
      throw new TypeError(`${op}: element types ${anchors.dtype} and ${other.dtype} differ`);
    }
    backendOf(op, [anchors, other]);
    const rows = other.size / 4, anchorRows = anchors.size / 4;
    if (anchorRows === 0 ? rows !== 0 : rows % anchorRows !== 0) {
      throw new TypeError(
        `${op}: ${name} [${other.shape.join(", ")}] do not repeat anchors [${
          anchors.shape.join(", ")
        }]`,
      );
    }
  }

  /**
   * Offsets that move `proposals` onto `gt`. No gradient (targets).
   *
   * @param proposals Boxes `[..., 4]`; repeated when `gt` has a multiple of their rows.
   * @param gt Target boxes `[..., 4]`.
   * @returns Deltas of `gt`'s shape.
   */
  encode(proposals: Tensor, gt: Tensor): Tensor {
    const op = "DeltaXywhCoder.encode";
    this.#check(op, proposals, gt, "gt");
    const rows = gt.size / 4;
    return launchInto(
      coderKernel("encode", gt.dtype),
      [proposals, gt],
      gt.shape,
      gt.dtype,
      this.#params(rows, proposals.size / 4),
      Math.ceil(rows / WORKGROUP),
    );
  }

  /**
   * Boxes from `anchors` moved by `deltas`, with gradient to `deltas` (the
   * anchors get none).
   *
   * @param anchors Boxes `[..., 4]`; repeated when `deltas` has a multiple of their rows.
   * @param deltas Offsets `[..., 4]`.
   * @param maxShape `[height, width]`: clip the boxes to `[0, width] x [0, height]`.
   * @returns Boxes of `deltas`' shape.
   */
  decode(anchors: Tensor, deltas: Tensor, maxShape?: readonly [number, number]): Tensor {
    const op = "DeltaXywhCoder.decode";
    this.#check(op, anchors, deltas, "deltas");
    if (maxShape && !(maxShape[0] >= 0 && maxShape[1] >= 0)) {
      throw new RangeError(`${op}: maxShape [${maxShape.join(", ")}] is negative`);
    }
    const rows = deltas.size / 4;
    const params = {
      ...this.#params(rows, anchors.size / 4),
      max_ratio: this.maxRatio,
      clip: maxShape ? 1 : 0,
      max_h: maxShape?.[0] ?? 0,
      max_w: maxShape?.[1] ?? 0,
    };
    const out = launchInto(
      coderKernel("decode", deltas.dtype),
      [anchors, deltas],
      deltas.shape,
      deltas.dtype,
      params,
      Math.ceil(rows / WORKGROUP),
    );
    record(op, [deltas], [out], ([g]) => [
      launchInto(
        coderKernel("decode_grad", deltas.dtype),
        [g!, anchors, deltas],
        deltas.shape,
        deltas.dtype,
        params,
        Math.ceil(rows / WORKGROUP),
      ),
    ]);
    return out;
  }

  /**
   * The host twin of {@linkcode DeltaXywhCoder.encode} on row-aligned typed
   * arrays (float64 arithmetic, float32 results): the regression targets of
   * host-assigned anchors or RoIs.
   *
   * @example
   * ```ts
   * import { DeltaXywhCoder } from "./coder.ts";
   * const coder = new DeltaXywhCoder({ stds: [1, 1, 1, 1] });
   * console.log(coder.encodeHost(Float32Array.of(0, 0, 10, 10), Float32Array.of(10, 0, 20, 10)));
   * // Float32Array [1, 0, 0, 0]
   * ```
   *
   * @param proposals `[N * 4]` xyxy boxes the offsets start from.
   * @param gt `[N * 4]` xyxy target boxes.
   * @returns `[N * 4]` offsets.
   * @throws {RangeError} When the lengths differ or are not a multiple of 4.
   */
  encodeHost(proposals: ArrayLike<number>, gt: ArrayLike<number>): Float32Array {
    if (proposals.length !== gt.length || gt.length % 4 !== 0) {
      throw new RangeError(
        `DeltaXywhCoder.encodeHost: ${proposals.length} proposal and ${gt.length} box coordinates`,
      );
    }
    const out = new Float32Array(gt.length);
    for (let o = 0; o < gt.length; o += 4) {
      const pw = proposals[o + 2] - proposals[o], ph = proposals[o + 3] - proposals[o + 1];
      const px = proposals[o] + 0.5 * pw, py = proposals[o + 1] + 0.5 * ph;
      const gw = gt[o + 2] - gt[o], gh = gt[o + 3] - gt[o + 1];
      const gx = gt[o] + 0.5 * gw, gy = gt[o + 1] + 0.5 * gh;
      const raw = [(gx - px) / pw, (gy - py) / ph, Math.log(gw / pw), Math.log(gh / ph)];
      for (let k = 0; k < 4; k++) out[o + k] = (raw[k] - this.means[k]) / this.stds[k];
    }
    return out;
  }

  /**
   * The host twin of {@linkcode DeltaXywhCoder.decode} on typed arrays
   * (float64 arithmetic, float32 results): what proposal generation uses
   * after reading the RPN's outputs back.
   *
   * @example
   * ```ts
   * import { DeltaXywhCoder } from "./coder.ts";
   * const coder = new DeltaXywhCoder();
   * console.log(coder.decodeHost(Float32Array.of(0, 0, 10, 10), Float32Array.of(0, 0, 0, 0)));
   * // Float32Array [0, 0, 10, 10]
   * ```
   *
   * @param anchors `[N * 4]` xyxy boxes.
   * @param deltas `[N * 4]` offsets.
   * @param maxShape `[height, width]`: clip the boxes to `[0, width] x [0, height]`.
   * @returns `[N * 4]` xyxy boxes.
   * @throws {RangeError} When the lengths differ or are not a multiple of 4.
   */
  decodeHost(
    anchors: ArrayLike<number>,
    deltas: ArrayLike<number>,
    maxShape?: readonly [number, number],
  ): Float32Array {
    if (anchors.length !== deltas.length || deltas.length % 4 !== 0) {
      throw new RangeError(
        `DeltaXywhCoder.decodeHost: ${anchors.length} anchor and ${deltas.length} delta coordinates`,
      );
    }
    const [m0, m1, m2, m3] = this.means, [s0, s1, s2, s3] = this.stds, r = this.maxRatio;
    const out = new Float32Array(deltas.length);
    const clip = (v: number, hi: number) => maxShape ? Math.min(Math.max(v, 0), hi) : v;
    for (let o = 0; o < deltas.length; o += 4) {
      const pw = anchors[o + 2] - anchors[o], ph = anchors[o + 3] - anchors[o + 1];
      const px = (anchors[o] + anchors[o + 2]) * 0.5, py = (anchors[o + 1] + anchors[o + 3]) * 0.5;
      const dx = deltas[o] * s0 + m0, dy = deltas[o + 1] * s1 + m1;
      const dw = Math.min(Math.max(deltas[o + 2] * s2 + m2, -r), r);
      const dh = Math.min(Math.max(deltas[o + 3] * s3 + m3, -r), r);
      const w = pw * Math.exp(dw), h = ph * Math.exp(dh);
      const cx = px + pw * dx, cy = py + ph * dy;
      out[o] = clip(cx - 0.5 * w, maxShape?.[1] ?? 0);
      out[o + 1] = clip(cy - 0.5 * h, maxShape?.[0] ?? 0);
      out[o + 2] = clip(cx + 0.5 * w, maxShape?.[1] ?? 0);
      out[o + 3] = clip(cy + 0.5 * h, maxShape?.[0] ?? 0);
    }
    return out;
  }
}
