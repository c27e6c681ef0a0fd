/**
 * Dense-detector post-processing as mmdetection's ATSS test config does it
 * (`nms_pre=1000`, `score_thr=0.05`, `nms=dict(type='nms', iou_threshold=0.6)`,
 * `max_per_img=100`), as tensor ops on the device with one readback at the
 * end:
 *
 * 1. per level, sigmoid class scores `[A_l, C]`; the top `nmsPre` (anchor,
 *    class) pairs by score among those with score `> scoreThr` (a `topk` over
 *    the flattened `A_l * C` scores; picks at or under the threshold become
 *    padding with label `-1`);
 * 2. their boxes decoded from the anchors (`DeltaXywhCoder.decode`, clipped to
 *    the network input `imageShape`), their scores optionally multiplied by a
 *    per-anchor score factor (centerness);
 * 3. levels concatenated, boxes divided by the scale factor (back to the
 *    original image, before NMS as mmdetection does with `rescale=True`);
 * 4. batched NMS (IoU `iouThreshold`), the first `maxPerImage` survivors
 *    packed as `f32 [maxPerImage, 6]` rows `(x1, y1, x2, y2, score, label)`,
 *    padding rows `(0, 0, 0, 0, 0, -1)`.
 *
 * {@linkcode readDetections} reads such tensors back (one readback for a whole
 * batch) into `{ boxes, scores, labels }` typed arrays.
 *
 * @module
 */

import type { CocoRle } from "../data/coco_types.ts";
import { noGrad } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { entryPoint, type Kernel, kernelCache } from "../tensor/kernel.ts";
import { concat } from "../tensor/ops/concat.ts";
import { div, sigmoid } from "../tensor/ops/elementwise.ts";
import { backendOf, expectDtype, launch } from "../tensor/ops/launch.ts";
import { topk } from "../tensor/ops/sort.ts";
import { empty, type Tensor, tensor, tidy, viewOf } from "../tensor/tensor.ts";
import { DeltaXywhCoder } from "../boxes/coder.ts";
import { batchedNms } from "../boxes/nms.ts";

const WORKGROUP = 64;

/** Values per row of the packed detections: `x1, y1, x2, y2, score, label`. */
export const DETECTION_WIDTH = 6;

/** One feature level of a dense head's output for one image. */
export interface DenseLevel {
  /** Class logits `f32 [A, C]` (before the sigmoid). */
  logits: Tensor;
  /** Box offsets `f32 [A, 4]` for the coder. */
  deltas: Tensor;
  /** Anchors `f32 [A, 4]` (xyxy, network input pixels). */
  anchors: Tensor;
  /** Optional per-anchor factors `f32 [A]` (e.g. sigmoid centerness) multiplied into the scores. */
  scoreFactors?: Tensor;
}

/** Options of {@linkcode denseDetections}; defaults are mmdetection's ATSS test config. */
export interface DensePostprocessOptions {
  /** `[height, width]` of the network input: decoded boxes are clipped to it. */
  imageShape: readonly [number, number];
  /**
   * Network-input size over original size, `[w, h]` or one number: boxes are
   * divided by it. Default `1`.
   */
  scaleFactor?: number | readonly [number, number];
  /** Candidates kept per level before NMS; default `1000`. */
  nmsPre?: number;
  /** Scores must be greater than this; default `0.05`. */
  scoreThr?: number;
  /** NMS IoU threshold; default `0.6`. */
  iouThreshold?: number;
  /** Detections per image (rows of the output); default `100`. */
  maxPerImage?: number;
  /** The box coder; default `new DeltaXywhCoder()` (means 0, stds `[0.1, 0.1, 0.2, 0.2]`). */
  coder?: DeltaXywhCoder;
}

/** Detections of one image on the host. */
export interface Detections {
  /** `[n, 4]` xyxy boxes in original-image pixels, row-major. */
  boxes: Float32Array;
  /** `[n]` scores, descending. */
  scores: Float32Array;
  /** `[n]` class indices. */
  labels: Int32Array;
  /** `[n]` COCO RLE masks of the original image, from detectors with a mask branch. */
  masks?: CocoRle[];
}

const cached = kernelCache();

function selectKernel(withFactors: boolean): Kernel {
  const key = `select|${withFactors}`;
  return cached(key, () => ({
    label: "postprocess.select",
    inputs: {
      vals: "f32",
      idx: "u32",
      deltas: "f32",
      anchors: "f32",
      ...(withFactors ? { factors: "f32" as const } : {}),
    },
    outputs: { sel_deltas: "f32", sel_anchors: "f32", scores: "f32", labels: "i32" },
    params: { k: "u32", classes: "u32", thr: "f32" },
    workgroupSize: WORKGROUP,
    code: `${entryPoint(WORKGROUP)}
  if (i >= p.k) { return; }
  let v = vals[i];
  let a = idx[i] / p.classes;
  for (var c = 0u; c < 4u; c++) {
    sel_deltas[4u * i + c] = deltas[4u * a + c];
    sel_anchors[4u * i + c] = anchors[4u * a + c];
  }
  let valid = v > p.thr;
  scores[i] = select(0.0, v${withFactors ? " * factors[a]" : ""}, valid);
  labels[i] = select(-1, i32(idx[i] % p.classes), valid);
}`,
    cpu(ins, outs, params) {
      const { k, classes, thr } = params as Record<string, number>;
      const { vals, idx, deltas, anchors, factors } = ins;
      const { sel_deltas: selDeltas, sel_anchors: selAnchors, scores, labels } = outs;
      for (let i = 0; i < k; i++) {
        const v = vals[i], a = Math.floor(idx[i] / classes);
        for (let c = 0; c < 4; c++) {
          selDeltas[4 * i + c] = deltas[4 * a + c];
          selAnchors[4 * i + c] = anchors[4 * a + c];
        }
        const valid = v > thr;
        scores[i] = valid ? (withFactors ? Math.fround(v * factors[a]) : v) : 0;
        labels[i] = valid ? idx[i] % classes : -1;
      }
    },
  }));
}

function packKernel(): Kernel {
  return cached("pack", () => ({
    label: "postprocess.pack",
    inputs: { boxes: "f32", scores: "f32", labels: "i32", keep: "i32" },
    outputs: { dets: "f32" },
    params: { m: "u32" },
    workgroupSize: WORKGROUP,
    code: `${entryPoint(WORKGROUP)}
  if (i >= p.m) { return; }
  let o = ${DETECTION_WIDTH}u * i;
  let j = keep[i];
  if (j < 0) {
    for (var c = 0u; c < 5u; c++) { dets[o + c] = 0.0; }
    dets[o + 5u] = -1.0;
    return;
  }
  let b = 4u * u32(j);
  for (var c = 0u; c < 4u; c++) { dets[o + c] = boxes[b + c]; }
  dets[o + 4u] = scores[j];
  dets[o + 5u] = f32(labels[j]);
}`,
    cpu(ins, outs, params) {
      const m = params.m as number;
      const { boxes, scores, labels, keep } = ins, dets = outs.dets;
      for (let i = 0; i < m; i++) {
        const o = DETECTION_WIDTH * i, j = keep[i];
        if (j < 0) {
          dets.fill(0, o, o + 5);
          dets[o + 5] = -1;
          continue;
        }
        for (let c = 0; c < 4; c++) dets[o + c] = boxes[4 * j + c];
        dets[o + 4] = scores[j];
        dets[o + 5] = labels[j];
      }
    },
  }));
}

function positiveInteger(op: string, name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${op}: ${name} ${value} is not a positive integer`);
  }
  return value;
}

function checkLevel(op: string, level: DenseLevel, l: number): void {
  const { logits, deltas, anchors, scoreFactors } = level ?? {};
  for (const [name, t] of [["logits", logits], ["deltas", deltas], ["anchors", anchors]] as const) {
    if (!t || typeof t !== "object" || !("dtype" in t)) {
      throw new TypeError(`${op}: level ${l} has no ${name} tensor`);
    }
    expectDtype(`${op}: level ${l} ${name}`, t, ["f32"]);
  }
  const a = logits.shape[0];
  if (logits.rank !== 2) {
    throw new TypeError(
      `${op}: level ${l} logits must have shape [A, C] but got [${logits.shape.join(", ")}]`,
    );
  }
  for (const [name, t] of [["deltas", deltas], ["anchors", anchors]] as const) {
    if (t.rank !== 2 || t.shape[0] !== a || t.shape[1] !== 4) {
      throw new TypeError(
        `${op}: level ${l} ${name} must have shape [${a}, 4] but got [${t.shape.join(", ")}]`,
      );
    }
  }
  if (scoreFactors) {
    expectDtype(`${op}: level ${l} scoreFactors`, scoreFactors, ["f32"]);
    if (scoreFactors.rank !== 1 || scoreFactors.shape[0] !== a) {
      throw new TypeError(
        `${op}: level ${l} scoreFactors must have shape [${a}] but got [${
          scoreFactors.shape.join(", ")
        }]`,
      );
    }
  }
}

/**
 * Detections of one image from a dense head's per-level outputs, on the
 * device and without a readback: `f32 [maxPerImage, 6]` rows
 * `(x1, y1, x2, y2, score, label)` by descending score, boxes in
 * original-image pixels, then padding rows `(0, 0, 0, 0, 0, -1)`. See the
 * module doc for the steps (mmdetection's ATSS test pipeline). No gradient is
 * recorded.
 *
 * @example Two anchors, two classes
 * ```ts
 * import { denseDetections, readDetections } from "./postprocess.ts";
 * import { tensor } from "../tensor/tensor.ts";
 * const dets = denseDetections([{
 *   logits: tensor([[2, -5], [-5, 1]]),
 *   deltas: tensor([[0, 0, 0, 0], [0, 0, 0, 0]]),
 *   anchors: tensor([[0, 0, 10, 10], [20, 20, 40, 40]]),
 * }], { imageShape: [64, 64], scaleFactor: 2, maxPerImage: 3 });
 * const [{ boxes, scores, labels }] = await readDetections(dets);
 * console.log(boxes); // Float32Array [0, 0, 5, 5, 10, 10, 20, 20]
 * console.log(scores); // Float32Array [0.8807..., 0.7310...]
 * console.log(labels); // Int32Array [0, 1]
 * ```
 *
 * @param levels Per-level logits `[A_l, C]`, deltas and anchors `[A_l, 4]` (same `C`).
 * @param options Image shape, scale factor and thresholds.
 * @returns `f32 [maxPerImage, 6]`.
 */
export function denseDetections(
  levels: readonly DenseLevel[],
  options: DensePostprocessOptions,
): Tensor {
  const op = "denseDetections";
  if (!Array.isArray(levels) || levels.length === 0) {
    throw new TypeError(`${op}: needs at least one level`);
  }
  levels.forEach((level, l) => checkLevel(op, level, l));
  const classes = levels[0].logits.shape[1];
  levels.forEach((level, l) => {
    if (level.logits.shape[1] !== classes) {
      throw new TypeError(
        `${op}: level ${l} has ${level.logits.shape[1]} classes but level 0 has ${classes}`,
      );
    }
  });
  const backend: Backend = backendOf(
    op,
    levels.flatMap((
      v,
    ) => [v.logits, v.deltas, v.anchors, ...(v.scoreFactors ? [v.scoreFactors] : [])]),
  );
  const [height, width] = options?.imageShape ?? [];
  if (!(height >= 0 && width >= 0)) {
    throw new RangeError(
      `${op}: imageShape [${options?.imageShape}] is not a valid [height, width]`,
    );
  }
  const scale = options.scaleFactor ?? 1;
  const [sw, sh] = typeof scale === "number" ? [scale, scale] : scale;
  if (!(sw > 0 && sh > 0)) {
    throw new RangeError(`${op}: scaleFactor ${JSON.stringify(scale)} is not positive`);
  }
  const nmsPre = positiveInteger(op, "nmsPre", options.nmsPre ?? 1000);
  const maxPerImage = positiveInteger(op, "maxPerImage", options.maxPerImage ?? 100);
  const scoreThr = options.scoreThr ?? 0.05;
  const iouThreshold = options.iouThreshold ?? 0.6;
  const coder = options.coder ?? new DeltaXywhCoder();
  return noGrad(() =>
    tidy(() => {
      const boxes: Tensor[] = [], scores: Tensor[] = [], labels: Tensor[] = [];
      for (const level of levels) {
        const a = level.logits.shape[0];
        const k = Math.min(nmsPre, a * classes);
        if (k === 0) continue;
        const flat = viewOf(sigmoid(level.logits), [a * classes]);
        const top = topk(flat, k);
        const selDeltas = empty([k, 4], "f32", backend);
        const selAnchors = empty([k, 4], "f32", backend);
        const levelScores = empty([k], "f32", backend);
        const levelLabels = empty([k], "i32", backend);
        launch(
          selectKernel(level.scoreFactors !== undefined),
          [
            top.values,
            top.indices,
            level.deltas,
            level.anchors,
            ...(level.scoreFactors ? [level.scoreFactors] : []),
          ],
          [selDeltas, selAnchors, levelScores, levelLabels],
          { k, classes, thr: scoreThr },
          Math.ceil(k / WORKGROUP),
        );
        boxes.push(coder.decode(selAnchors, selDeltas, [height, width]));
        scores.push(levelScores);
        labels.push(levelLabels);
      }
      let allBoxes = boxes.length > 0 ? concat(boxes, 0) : empty([0, 4], "f32", backend);
      const allScores = scores.length > 0 ? concat(scores, 0) : empty([0], "f32", backend);
      const allLabels = labels.length > 0 ? concat(labels, 0) : empty([0], "i32", backend);
      if (sw !== 1 || sh !== 1) {
        allBoxes = div(allBoxes, tensor(Float32Array.of(sw, sh, sw, sh), [4], { backend }));
      }
      const { keep } = batchedNms(allBoxes, allScores, allLabels, {
        iouThreshold,
        maxOutput: maxPerImage,
      });
      const dets = empty([maxPerImage, DETECTION_WIDTH], "f32", backend);
      launch(
        packKernel(),
        [allBoxes, allScores, allLabels, keep],
        [dets],
        { m: maxPerImage },
        Math.ceil(maxPerImage / WORKGROUP),
      );
      return dets;
    })
  );
}

/**
 * Reads packed detections (from {@linkcode denseDetections}) back to the
 * host: one tensor `[M, 6]` is one image; several (same backend and width)
 * are joined on the device first, so a batch costs one readback. Padding rows
 * (label `-1`) are dropped.
 *
 * @example
 * ```ts
 * import { readDetections } from "./postprocess.ts";
 * import { tensor } from "../tensor/tensor.ts";
 * const dets = tensor([[1, 2, 3, 4, 0.9, 7], [0, 0, 0, 0, 0, -1]]);
 * const [d] = await readDetections(dets);
 * console.log(d.boxes, d.scores, d.labels); // Float32Array [1, 2, 3, 4] Float32Array [0.9...] Int32Array [7]
 * ```
 *
 * @param dets One `f32 [M, 6]` tensor or a list of them.
 * @returns One {@linkcode Detections} per tensor.
 */
export async function readDetections(dets: Tensor | readonly Tensor[]): Promise<Detections[]> {
  const op = "readDetections";
  const list = Array.isArray(dets) ? dets as readonly Tensor[] : [dets as Tensor];
  for (const [k, t] of list.entries()) {
    expectDtype(`${op}: tensor ${k}`, t, ["f32"]);
    if (t.rank !== 2 || t.shape[1] !== DETECTION_WIDTH) {
      throw new TypeError(
        `${op}: tensor ${k} must have shape [M, ${DETECTION_WIDTH}] but got [${
          t.shape.join(", ")
        }]`,
      );
    }
  }
  if (list.length === 0) return [];
  let data: ArrayLike<number>;
  if (list.length === 1) data = await list[0].data();
  else {
    const joined = noGrad(() => concat(list, 0));
    data = await joined.data();
    joined.dispose();
  }
  const out: Detections[] = [];
  let row = 0;
  for (const t of list) {
    const rows: number[] = [];
    for (let r = row; r < row + t.shape[0]; r++) {
      if (data[DETECTION_WIDTH * r + 5] >= 0) rows.push(r);
    }
    row += t.shape[0];
    const boxes = new Float32Array(4 * rows.length);
    const scores = new Float32Array(rows.length);
    const labels = new Int32Array(rows.length);
    rows.forEach((r, n) => {
      const o = DETECTION_WIDTH * r;
      for (let c = 0; c < 4; c++) boxes[4 * n + c] = data[o + c];
      scores[n] = data[o + 4];
      labels[n] = data[o + 5];
    });
    out.push({ boxes, scores, labels });
  }
  return out;
}

/**
 * {@linkcode denseDetections} then {@linkcode readDetections} for one image:
 * the host-side end of inference (one readback).
 *
 * @example
 * ```ts
 * import { postprocessDetections } from "./postprocess.ts";
 * import { tensor } from "../tensor/tensor.ts";
 * const d = await postprocessDetections([{
 *   logits: tensor([[3], [2]]),
 *   deltas: tensor([[0, 0, 0, 0], [0, 0, 0, 0]]),
 *   anchors: tensor([[0, 0, 10, 10], [1, 0, 10, 10]]),
 * }], { imageShape: [32, 32] });
 * console.log(d.labels, d.scores); // Int32Array [0] Float32Array [0.9525...]
 * ```
 *
 * @param levels Per-level logits, deltas and anchors.
 * @param options Image shape, scale factor and thresholds.
 * @returns Boxes `[n, 4]` in original-image pixels, scores and labels.
 */
export async function postprocessDetections(
  levels: readonly DenseLevel[],
  options: DensePostprocessOptions,
): Promise<Detections> {
  const dets = denseDetections(levels, options);
  try {
    return (await readDetections(dets))[0];
  } finally {
    dets.dispose();
  }
}
