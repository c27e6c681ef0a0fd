/**
 * Box operations as tensor ops: format conversions between `xyxy`
 * (`[x1, y1, x2, y2]`), `xywh` (`[x1, y1, w, h]`) and `cxcywh`
 * (`[cx, cy, w, h]`), pairwise IoU / IoF / GIoU matrices, and row-aligned
 * IoU / GIoU with gradients (the kernels under the IoU and GIoU losses).
 *
 * Boxes are in pixels with no `+1` on widths (mmdetection 2.x convention).
 * Three kernel families: `box.linear4` (conversions and their gradients),
 * `box.pairwise` and `box.aligned` / `box.aligned_grad`.
 *
 * @module
 */

import { record } from "../tensor/autograd.ts";
import type { DType } from "../tensor/dtype.ts";
import { entryPoint, type Kernel, kernelCache, type ParamType } from "../tensor/kernel.ts";
import { backendOf, expectDtype, launch, launchInto } from "../tensor/ops/launch.ts";
import { empty, type Tensor } from "../tensor/tensor.ts";
import { MODE_ID, overlapHost, type OverlapMode, overlapParts, WGSL_OVERLAP } from "./iou.ts";

const WORKGROUP = 64;
const MODE_NAME = ["iou", "iof", "giou"] as const;

/** Throws a `TypeError` naming `op` unless `t` is a float tensor of shape `[..., 4]`. */
export function checkBoxes(op: string, t: Tensor, name = "boxes"): void {
  expectDtype(op, t, ["f32", "f64"]);
  if (t.rank < 1 || t.shape[t.rank - 1] !== 4) {
    throw new TypeError(`${op}: ${name} must have shape [..., 4] but got [${t.shape.join(", ")}]`);
  }
}

function floatKind(t: Tensor): DType {
  return t.dtype === "f64" ? "f64" : "f32";
}

// ---------------------------------------------------------------------------
// Format conversions: one 4x4 linear map per row.

const cached = kernelCache();
const MATRIX_PARAMS = Array.from({ length: 16 }, (_, k) => `m${k}`);

function linearKernel(dtype: DType): Kernel {
  return cached(`linear4|${dtype}`, () => {
    const params: Record<string, ParamType> = { rows: "u32" };
    for (const name of MATRIX_PARAMS) params[name] = "f32";
    const rowsOf = (k: number) =>
      [0, 1, 2, 3].map((j) => `p.m${4 * k + j} * x[b + ${j}u]`).join(" + ");
    return {
      label: "box.linear4",
      inputs: { x: dtype },
      outputs: { out: dtype },
      params,
      workgroupSize: WORKGROUP,
      code: `${entryPoint(WORKGROUP)}
  if (i >= p.rows) { return; }
  let b = i * 4u;
  let o0 = ${rowsOf(0)};
  let o1 = ${rowsOf(1)};
  let o2 = ${rowsOf(2)};
  let o3 = ${rowsOf(3)};
  out[b] = o0;
  out[b + 1u] = o1;
  out[b + 2u] = o2;
  out[b + 3u] = o3;
}`,
      cpu(ins, outs, p) {
        const m = MATRIX_PARAMS.map((name) => p[name] as number);
        linear4Host(ins.x, outs.out, p.rows as number, m);
      },
    };
  });
}

/** `out[r] = m x[r]` for each 4-vector `r < rows`: the one host form of the 4x4 maps. */
function linear4Host(
  x: ArrayLike<number>,
  out: { [k: number]: number },
  rows: number,
  m: readonly number[],
): void {
  for (let r = 0; r < rows; r++) {
    const b = 4 * r;
    const x0 = x[b], x1 = x[b + 1], x2 = x[b + 2], x3 = x[b + 3];
    for (let k = 0; k < 4; k++) {
      out[b + k] = m[4 * k] * x0 + m[4 * k + 1] * x1 + m[4 * k + 2] * x2 + m[4 * k + 3] * x3;
    }
  }
}

function applyLinear(x: Tensor, matrix: readonly number[]): Tensor {
  const params: Record<string, number> = { rows: x.size / 4 };
  matrix.forEach((v, k) => (params[`m${k}`] = v));
  return launchInto(
    linearKernel(floatKind(x)),
    [x],
    x.shape,
    x.dtype,
    params,
    Math.ceil(x.size / 4 / WORKGROUP),
  );
}

function transpose4(m: readonly number[]): number[] {
  return m.map((_, k) => m[4 * (k % 4) + Math.floor(k / 4)]);
}

function convert(op: string, boxes: Tensor, matrix: readonly number[]): Tensor {
  checkBoxes(op, boxes);
  const out = applyLinear(boxes, matrix);
  const back = transpose4(matrix);
  record(op, [boxes], [out], ([g]) => [applyLinear(g!, back)]);
  return out;
}

// deno-fmt-ignore
const XYXY_TO_XYWH = [1, 0, 0, 0, 0, 1, 0, 0, -1, 0, 1, 0, 0, -1, 0, 1];
// deno-fmt-ignore
const XYWH_TO_XYXY = [1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1];
// deno-fmt-ignore
const XYXY_TO_CXCYWH = [0.5, 0, 0.5, 0, 0, 0.5, 0, 0.5, -1, 0, 1, 0, 0, -1, 0, 1];
// deno-fmt-ignore
const CXCYWH_TO_XYXY = [1, 0, -0.5, 0, 0, 1, 0, -0.5, 1, 0, 0.5, 0, 0, 1, 0, 0.5];

/**
 * Converts `[x1, y1, x2, y2]` boxes to `[x1, y1, w, h]`, with gradient.
 *
 * @example
 * ```ts
 * import { xyxyToXywh } from "./box_ops.ts";
 * import { tensor } from "../tensor/tensor.ts";
 * console.log(await xyxyToXywh(tensor([[1, 2, 4, 6]])).data()); // Float32Array [1, 2, 3, 4]
 * ```
 *
 * @param boxes Float tensor `[..., 4]`.
 * @returns A tensor of the same shape.
 */
export function xyxyToXywh(boxes: Tensor): Tensor {
  return convert("xyxyToXywh", boxes, XYXY_TO_XYWH);
}

/**
 * Converts `[x1, y1, w, h]` boxes to `[x1, y1, x2, y2]`, with gradient.
 *
 * @example
 * ```ts
 * import { xywhToXyxy } from "./box_ops.ts";
 * import { tensor } from "../tensor/tensor.ts";
 * console.log(await xywhToXyxy(tensor([[1, 2, 3, 4]])).data()); // Float32Array [1, 2, 4, 6]
 * ```
 *
 * @param boxes Float tensor `[..., 4]`.
 * @returns A tensor of the same shape.
 */
export function xywhToXyxy(boxes: Tensor): Tensor {
  return convert("xywhToXyxy", boxes, XYWH_TO_XYXY);
}

/**
 * Converts `[x1, y1, x2, y2]` boxes to `[cx, cy, w, h]`, with gradient.
 *
 * @example
 * ```ts
 * import { xyxyToCxcywh } from "./box_ops.ts";
 * import { tensor } from "../tensor/tensor.ts";
 * console.log(await xyxyToCxcywh(tensor([[0, 0, 4, 2]])).data()); // Float32Array [2, 1, 4, 2]
 * ```
 *
 * @param boxes Float tensor `[..., 4]`.
 * @returns A tensor of the same shape.
 */
export function xyxyToCxcywh(boxes: Tensor): Tensor {
  return convert("xyxyToCxcywh", boxes, XYXY_TO_CXCYWH);
}

/**
 * Converts `[cx, cy, w, h]` boxes to `[x1, y1, x2, y2]`, with gradient.
 *
 * @example
 * ```ts
 * import { cxcywhToXyxy } from "./box_ops.ts";
 * import { tensor } from "../tensor/tensor.ts";
 * console.log(await cxcywhToXyxy(tensor([[2, 1, 4, 2]])).data()); // Float32Array [0, 0, 4, 2]
 * ```
 *
 * @param boxes Float tensor `[..., 4]`.
 * @returns A tensor of the same shape.
 */
export function cxcywhToXyxy(boxes: Tensor): Tensor {
  return convert("cxcywhToXyxy", boxes, CXCYWH_TO_XYXY);
}

/**
 * Converts flat `[cx, cy, w, h]` boxes to `[x1, y1, x2, y2]` on the host, in
 * float64 (`cx - 0.5 w`, ..., exactly): the host twin of {@linkcode cxcywhToXyxy}.
 *
 * @example
 * ```ts
 * import { cxcywhToXyxyHost } from "./box_ops.ts";
 * console.log(cxcywhToXyxyHost([2, 1, 4, 2, 0.5, 0.5, 0.2, 0.1])); // Float64Array [0, 0, 4, 2, 0.4, 0.45, 0.6, 0.55]
 * ```
 *
 * @param boxes `[N * 4]` boxes, `[cx, cy, w, h]` each.
 * @returns `[N * 4]` boxes, `[x1, y1, x2, y2]` each.
 * @throws {TypeError} When the length is not a multiple of 4.
 */
export function cxcywhToXyxyHost(boxes: ArrayLike<number>): Float64Array {
  if (boxes.length % 4 !== 0) {
    throw new TypeError(`cxcywhToXyxyHost: ${boxes.length} coordinates are not a multiple of 4`);
  }
  const out = new Float64Array(boxes.length);
  linear4Host(boxes, out, boxes.length / 4, CXCYWH_TO_XYXY);
  return out;
}

// ---------------------------------------------------------------------------
// Pairwise overlaps.

function pairwiseKernel(dtype: DType): Kernel {
  return cached(`pairwise|${dtype}`, () => ({
    label: "box.pairwise",
    inputs: { a: dtype, b: dtype },
    outputs: { out: dtype },
    params: { n: "u32", m: "u32", mode: "u32", eps: "f32" },
    workgroupSize: WORKGROUP,
    code: `${WGSL_OVERLAP}
${entryPoint(WORKGROUP)}
  if (i >= p.n * p.m) { return; }
  let r = i / p.m;
  let c = i % p.m;
  let ba = vec4<f32>(a[4u * r], a[4u * r + 1u], a[4u * r + 2u], a[4u * r + 3u]);
  let bb = vec4<f32>(b[4u * c], b[4u * c + 1u], b[4u * c + 2u], b[4u * c + 3u]);
  out[i] = overlap(ba, bb, p.mode, p.eps);
}`,
    cpu(ins, outs, p) {
      const { n, m, mode, eps } = p as Record<string, number>;
      const out = outs.out;
      for (let r = 0; r < n; r++) {
        for (let c = 0; c < m; c++) {
          out[r * m + c] = overlapHost(ins.a, r, ins.b, c, MODE_NAME[mode], eps);
        }
      }
    },
  }));
}

/** Options of {@linkcode boxIou} and {@linkcode bboxOverlaps}. */
export interface OverlapOptions {
  /** `"iou"` (default), `"iof"` (intersection over the first box's area) or `"giou"`. */
  mode?: OverlapMode;
  /** Lower bound of the union (and enclosing) area; default `1e-6`. */
  eps?: number;
}

function checkMode(op: string, mode: string): OverlapMode {
  if (!(mode in MODE_ID)) throw new RangeError(`${op}: unknown mode "${mode}"`);
  return mode as OverlapMode;
}

/**
 * Pairwise overlaps of `xyxy` boxes: entry `[i, j]` compares `a[i]` with
 * `b[j]`. One invocation per pair; no gradient (used by assigners).
 *
 * @example Disjoint, contained and identical boxes
 * ```ts
 * import { boxIou } from "./box_ops.ts";
 * import { tensor } from "../tensor/tensor.ts";
 * const a = tensor([[0, 0, 2, 2]]);
 * const b = tensor([[0, 0, 2, 2], [0, 0, 1, 1], [3, 3, 4, 4]]);
 * console.log(await boxIou(a, b).data()); // Float32Array [1, 0.25, 0]
 * ```
 *
 * @param a Boxes `[N, 4]`.
 * @param b Boxes `[M, 4]`, same element type and backend.
 * @param options Mode and `eps`.
 * @returns Overlaps `[N, M]`.
 */
export function boxIou(a: Tensor, b: Tensor, options: OverlapOptions = {}): Tensor {
  const op = "boxIou";
  const mode = checkMode(op, options.mode ?? "iou");
  checkBoxes(op, a, "a");
  checkBoxes(op, b, "b");
  if (a.rank !== 2 || b.rank !== 2) {
    throw new TypeError(
      `${op}: expected boxes [N, 4] and [M, 4] but got [${a.shape.join(", ")}] and [${
        b.shape.join(", ")
      }]`,
    );
  }
  if (a.dtype !== b.dtype) {
    throw new TypeError(`${op}: element types ${a.dtype} and ${b.dtype} differ`);
  }
  backendOf(op, [a, b]);
  const n = a.shape[0], m = b.shape[0];
  return launchInto(
    pairwiseKernel(floatKind(a)),
    [a, b],
    [n, m],
    a.dtype,
    { n, m, mode: MODE_ID[mode], eps: options.eps ?? 1e-6 },
    Math.ceil((n * m) / WORKGROUP),
  );
}

// ---------------------------------------------------------------------------
// Row-aligned overlaps with gradients.

/** What the aligned kernel writes per row: the overlap `v`, `1 - max(v, floor)` or `-log(max(v, floor))`. */
export type AlignedKind = "value" | "one_minus" | "neg_log";

const KIND_ID: Record<AlignedKind, number> = { value: 0, one_minus: 1, neg_log: 2 };

/** Parameters of {@linkcode alignedOverlapOp}. */
export interface AlignedOptions {
  /** `"iou"` or `"giou"` (`"iof"` also works). */
  mode: OverlapMode;
  /** What is written per row. */
  kind: AlignedKind;
  /** Lower bound of union and enclosing areas. */
  eps: number;
  /** `v` is clamped from below at `floor` before `one_minus` / `neg_log` (gradient 0 below). */
  floor: number;
}

/** Float64 forward and backward of one aligned row (the CPU twin; mirrors the WGSL). */
function alignedRow(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  r: number,
  mode: number,
  kind: number,
  eps: number,
  floor: number,
  g: number | null,
  ga: { [k: number]: number } | null,
  gb: { [k: number]: number } | null,
): number {
  const {
    aw,
    ah,
    bw,
    bh,
    iwr,
    ihr,
    iw,
    ih,
    inter,
    ur,
    union,
    ewr,
    ehr,
    ew,
    eh,
    er,
    enclose,
    value: v,
  } = overlapParts(a, r, b, r, MODE_NAME[mode], eps);
  const vc = Math.max(v, floor);
  const out = kind === 0 ? v : kind === 1 ? 1 - vc : -Math.log(vc);
  if (g === null || !ga || !gb) return out;
  const o = 4 * r;
  const ax1 = a[o], ay1 = a[o + 1], ax2 = a[o + 2], ay2 = a[o + 3];
  const bx1 = b[o], by1 = b[o + 1], bx2 = b[o + 2], by2 = b[o + 3];
  const pass = v > floor ? 1 : 0;
  const dv = kind === 0 ? g : kind === 1 ? -g * pass : -g / vc * pass;
  let gUnion = -dv * inter / (union * union);
  let gInter = dv / union;
  let gEncl = 0;
  if (mode === 2) {
    gUnion += dv / enclose;
    gEncl = -dv * union / (enclose * enclose);
  }
  const gUr = ur > eps ? gUnion : 0;
  const gAreaA = gUr;
  let gAreaB = gUr;
  if (mode === 1) gAreaB = 0;
  else gInter -= gUr;
  const gIw = iwr > 0 ? gInter * ih : 0, gIh = ihr > 0 ? gInter * iw : 0;
  for (let k = 0; k < 4; k++) ga[o + k] = gb[o + k] = 0;
  // Intersection: right = min(ax2, bx2), left = max(ax1, bx1) (ties go to a).
  if (ax2 <= bx2) ga[o + 2] += gIw;
  else gb[o + 2] += gIw;
  if (ax1 >= bx1) ga[o] -= gIw;
  else gb[o] -= gIw;
  if (ay2 <= by2) ga[o + 3] += gIh;
  else gb[o + 3] += gIh;
  if (ay1 >= by1) ga[o + 1] -= gIh;
  else gb[o + 1] -= gIh;
  // Areas.
  ga[o + 2] += gAreaA * ah;
  ga[o] -= gAreaA * ah;
  ga[o + 3] += gAreaA * aw;
  ga[o + 1] -= gAreaA * aw;
  gb[o + 2] += gAreaB * bh;
  gb[o] -= gAreaB * bh;
  gb[o + 3] += gAreaB * bw;
  gb[o + 1] -= gAreaB * bw;
  if (mode === 2) {
    const gEr = er > eps ? gEncl : 0;
    const gEw = ewr > 0 ? gEr * eh : 0, gEh = ehr > 0 ? gEr * ew : 0;
    if (ax2 >= bx2) ga[o + 2] += gEw;
    else gb[o + 2] += gEw;
    if (ax1 <= bx1) ga[o] -= gEw;
    else gb[o] -= gEw;
    if (ay2 >= by2) ga[o + 3] += gEh;
    else gb[o + 3] += gEh;
    if (ay1 <= by1) ga[o + 1] -= gEh;
    else gb[o + 1] -= gEh;
  }
  return out;
}

const WGSL_ALIGNED = /* wgsl */ `${WGSL_OVERLAP}struct Row { a: vec4<f32>, b: vec4<f32> }
fn load_row(r: u32) -> Row {
  let o = 4u * r;
  return Row(vec4<f32>(a[o], a[o + 1u], a[o + 2u], a[o + 3u]),
             vec4<f32>(b[o], b[o + 1u], b[o + 2u], b[o + 3u]));
}
fn finish(v: f32, kind: u32, floor: f32) -> f32 {
  let vc = max(v, floor);
  if (kind == 0u) { return v; }
  if (kind == 1u) { return 1.0 - vc; }
  return -log(vc);
}
`;

function alignedKernel(dtype: DType): Kernel {
  const key = `fwd|${dtype}`;
  return cached(key, () => ({
    label: "box.aligned",
    inputs: { a: dtype, b: dtype },
    outputs: { out: dtype },
    params: { n: "u32", mode: "u32", kind: "u32", eps: "f32", floor: "f32" },
    workgroupSize: WORKGROUP,
    code: `${WGSL_ALIGNED}
${entryPoint(WORKGROUP)}
  if (i >= p.n) { return; }
  let row = load_row(i);
  out[i] = finish(overlap(row.a, row.b, p.mode, p.eps), p.kind, p.floor);
}`,
    cpu(ins, outs, p) {
      const { n, mode, kind, eps, floor } = p as Record<string, number>;
      for (let r = 0; r < n; r++) {
        outs.out[r] = alignedRow(ins.a, ins.b, r, mode, kind, eps, floor, null, null, null);
      }
    },
  }));
}

function alignedGradKernel(dtype: DType): Kernel {
  const key = `grad|${dtype}`;
  return cached(key, () => ({
    label: "box.aligned_grad",
    inputs: { g: dtype, a: dtype, b: dtype },
    outputs: { ga: dtype, gb: dtype },
    params: {
      n: "u32",
      mode: "u32",
      kind: "u32",
      eps: "f32",
      floor: "f32",
      g_scalar: "u32",
    },
    workgroupSize: WORKGROUP,
    code: `${WGSL_ALIGNED}
${entryPoint(WORKGROUP)}
  if (i >= p.n) { return; }
  let row = load_row(i);
  let pa = row.a;
  let pb = row.b;
  let gin = g[select(i, 0u, p.g_scalar == 1u)];
  let aw = pa.z - pa.x;
  let ah = pa.w - pa.y;
  let bw = pb.z - pb.x;
  let bh = pb.w - pb.y;
  let ov = overlap_parts(pa, pb, aw * ah, bw * bh, p.mode, p.eps);
  let vc = max(ov.value, p.floor);
  let pass_ = select(0.0, 1.0, ov.value > p.floor);
  var dv = gin;
  if (p.kind == 1u) { dv = -gin * pass_; }
  if (p.kind == 2u) { dv = -gin / vc * pass_; }
  var g_union = -dv * ov.inter / (ov.uni * ov.uni);
  var g_inter = dv / ov.uni;
  var g_encl = 0.0;
  if (p.mode == 2u) {
    g_union = g_union + dv / ov.enclose;
    g_encl = -dv * ov.uni / (ov.enclose * ov.enclose);
  }
  let g_ur = select(0.0, g_union, ov.ur > p.eps);
  let g_area_a = g_ur;
  var g_area_b = g_ur;
  if (p.mode == 1u) { g_area_b = 0.0; } else { g_inter = g_inter - g_ur; }
  let g_iw = select(0.0, g_inter * ov.ih, ov.iwr > 0.0);
  let g_ih = select(0.0, g_inter * ov.iw, ov.ihr > 0.0);
  var da = vec4<f32>(0.0);
  var db = vec4<f32>(0.0);
  if (pa.z <= pb.z) { da.z += g_iw; } else { db.z += g_iw; }
  if (pa.x >= pb.x) { da.x -= g_iw; } else { db.x -= g_iw; }
  if (pa.w <= pb.w) { da.w += g_ih; } else { db.w += g_ih; }
  if (pa.y >= pb.y) { da.y -= g_ih; } else { db.y -= g_ih; }
  da += vec4<f32>(-g_area_a * ah, -g_area_a * aw, g_area_a * ah, g_area_a * aw);
  db += vec4<f32>(-g_area_b * bh, -g_area_b * bw, g_area_b * bh, g_area_b * bw);
  if (p.mode == 2u) {
    let g_er = select(0.0, g_encl, ov.er > p.eps);
    let g_ew = select(0.0, g_er * ov.eh, ov.ewr > 0.0);
    let g_eh = select(0.0, g_er * ov.ew, ov.ehr > 0.0);
    if (pa.z >= pb.z) { da.z += g_ew; } else { db.z += g_ew; }
    if (pa.x <= pb.x) { da.x -= g_ew; } else { db.x -= g_ew; }
    if (pa.w >= pb.w) { da.w += g_eh; } else { db.w += g_eh; }
    if (pa.y <= pb.y) { da.y -= g_eh; } else { db.y -= g_eh; }
  }
  let o = 4u * i;
  ga[o] = da.x;
  ga[o + 1u] = da.y;
  ga[o + 2u] = da.z;
  ga[o + 3u] = da.w;
  gb[o] = db.x;
  gb[o + 1u] = db.y;
  gb[o + 2u] = db.z;
  gb[o + 3u] = db.w;
}`,
    cpu(ins, outs, p) {
      const { n, mode, kind, eps, floor, g_scalar: gScalar } = p as Record<string, number>;
      for (let r = 0; r < n; r++) {
        const gin = ins.g[gScalar === 1 ? 0 : r];
        alignedRow(ins.a, ins.b, r, mode, kind, eps, floor, gin, outs.ga, outs.gb);
      }
    },
  }));
}

function checkAligned(op: string, a: Tensor, b: Tensor): void {
  checkBoxes(op, a, "a");
  checkBoxes(op, b, "b");
  if (a.shape.join() !== b.shape.join()) {
    throw new TypeError(
      `${op}: box shapes [${a.shape.join(", ")}] and [${b.shape.join(", ")}] differ`,
    );
  }
  if (a.dtype !== b.dtype) {
    throw new TypeError(`${op}: element types ${a.dtype} and ${b.dtype} differ`);
  }
  backendOf(op, [a, b]);
}

/**
 * One value per row of two aligned box tensors `[..., 4]` (IoU or GIoU, or a
 * loss of it), without recording a gradient: the fused forward kernel under
 * `iouLoss` / `giouLoss`. Inputs must be validated by the caller
 * ({@linkcode checkAlignedBoxes}).
 *
 * @param a Boxes `[..., 4]`.
 * @param b Boxes of the same shape.
 * @param options Mode, output kind, `eps` and `floor`.
 * @returns Values of shape `a.shape` without its last axis.
 */
export function alignedOverlapRaw(a: Tensor, b: Tensor, options: AlignedOptions): Tensor {
  const n = a.size / 4;
  return launchInto(
    alignedKernel(floatKind(a)),
    [a, b],
    a.shape.slice(0, -1),
    a.dtype,
    alignedParams(n, options),
    Math.ceil(n / WORKGROUP),
  );
}

function alignedParams(n: number, options: AlignedOptions) {
  return {
    n,
    mode: MODE_ID[options.mode],
    kind: KIND_ID[options.kind],
    eps: options.eps,
    floor: options.floor,
  };
}

/**
 * Gradients of {@linkcode alignedOverlapRaw}'s rows with respect to `a` and
 * `b`, given the rows' gradient `g` (one element per row, or one element for
 * all rows): the fused backward kernel.
 *
 * @returns `[gradA, gradB]`, each of `a`'s shape.
 */
export function alignedOverlapGrad(
  g: Tensor,
  a: Tensor,
  b: Tensor,
  options: AlignedOptions,
): [Tensor, Tensor] {
  const n = a.size / 4;
  if (g.size !== 1 && g.size !== n) {
    throw new TypeError(
      `alignedOverlapGrad: gradient [${g.shape.join(", ")}] does not have ${n} rows`,
    );
  }
  const ga = empty(a.shape, a.dtype, a.backend);
  const gb = empty(b.shape, b.dtype, b.backend);
  launch(
    alignedGradKernel(floatKind(a)),
    [g, a, b],
    [ga, gb],
    { ...alignedParams(n, options), g_scalar: g.size === 1 ? 1 : 0 },
    Math.ceil(n / WORKGROUP),
  );
  return [ga, gb];
}

/**
 * {@linkcode alignedOverlapRaw} with its gradient recorded under `op`.
 *
 * @param op Names the op on the tape.
 * @param a Boxes `[..., 4]`.
 * @param b Boxes of the same shape.
 * @param options Mode, output kind, `eps` and `floor`.
 * @returns Values of shape `a.shape` without its last axis.
 */
export function alignedOverlapOp(
  op: string,
  a: Tensor,
  b: Tensor,
  options: AlignedOptions,
): Tensor {
  const out = alignedOverlapRaw(a, b, options);
  record(op, [a, b], [out], ([g]) => {
    const [ga, gb] = alignedOverlapGrad(g!, a, b, options);
    if (!a.requiresGrad) ga.dispose();
    if (!b.requiresGrad) gb.dispose();
    return [a.requiresGrad ? ga : null, b.requiresGrad ? gb : null];
  });
  return out;
}

/** Options of {@linkcode bboxOverlaps}. */
export interface BboxOverlapsOptions extends OverlapOptions {
  /** Compare row `i` of `a` with row `i` of `b` (output `[N]`) instead of all pairs. */
  isAligned?: boolean;
}

/**
 * mmdetection-style `bbox_overlaps` of `xyxy` boxes: all pairs (`[N, M]`, no
 * gradient) or, with `isAligned`, row by row (`[N]`, with gradients to both
 * inputs).
 *
 * @example Aligned IoU and GIoU
 * ```ts
 * import { bboxOverlaps } from "./box_ops.ts";
 * import { tensor } from "../tensor/tensor.ts";
 * const a = tensor([[0, 0, 2, 2], [0, 0, 1, 1]]);
 * const b = tensor([[1, 1, 3, 3], [2, 0, 3, 1]]);
 * console.log(await bboxOverlaps(a, b, { isAligned: true }).data()); // Float32Array [1/7, 0]
 * console.log(await bboxOverlaps(a, b, { isAligned: true, mode: "giou" }).data());
 * // Float32Array [1/7 - 2/9, -1/3]
 * ```
 *
 * @param a Boxes `[N, 4]`.
 * @param b Boxes `[M, 4]` (`[N, 4]` when aligned).
 * @param options Mode, `eps`, `isAligned`.
 * @returns `[N, M]`, or `[N]` when aligned.
 */
export function bboxOverlaps(a: Tensor, b: Tensor, options: BboxOverlapsOptions = {}): Tensor {
  const op = "bboxOverlaps";
  if (!options.isAligned) return boxIou(a, b, options);
  const mode = checkMode(op, options.mode ?? "iou");
  checkAligned(op, a, b);
  return alignedOverlapOp(op, a, b, { mode, kind: "value", eps: options.eps ?? 1e-6, floor: 0 });
}

/** Validates two aligned box tensors for a loss named `op`. */
export function checkAlignedBoxes(op: string, a: Tensor, b: Tensor): void {
  checkAligned(op, a, b);
}
