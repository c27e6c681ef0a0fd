/**
 * Batched non-maximum suppression (torchvision's `batched_nms`): boxes of
 * different classes never suppress each other, a box is dropped when its IoU
 * with a kept, higher-scoring box of its class is strictly greater than the
 * threshold. IoU is torchvision's: `xyxy` boxes, sizes without a `+1`,
 * `inter / (areaA + areaB - inter)` in `f32`.
 *
 * {@linkcode batchedNms} runs on the device without a readback, so its
 * outputs have fixed sizes: `keep` (`i32 [maxOutput]`, the kept indices in
 * descending score order, padded with `-1`) and `count` (`i32 [1]`).
 *
 * The pipeline:
 * 1. `argsort` of the scores, descending and stable (ties: lower index first;
 *    NaN scores last);
 * 2. `nms.gather_sorted` copies boxes and classes into score order;
 * 3. `nms.iou_mask`: one invocation per (sorted row, 32-column block) writes
 *    the 32 bits "column `c > row` has the row's class and IoU > threshold"
 *    of the `u32 [ceil(K / 32), K]` suppression mask (block-major);
 * 4. `nms.init` clears the removed-bit words, `keep` and `count`;
 * 5. `nms.suppress`: one invocation walks the sorted rows in order; a row not
 *    yet removed (and with a class `>= 0`) is appended to `keep` and ORs its
 *    mask row into the removed words. It stops once `maxOutput` boxes are
 *    kept. The rows are split over several dispatches so that no invocation
 *    loops more than {@linkcode NMS_LOOP_BUDGET} times (llvmpipe silently
 *    ends loops past `LOOP_LIMIT`); the state lives in the output buffers between them.
 *
 * A negative class marks a padding candidate: it is never kept (and so never
 * suppresses anything), which lets fixed-size candidate lists (top-k with a
 * score threshold) go through NMS without a readback.
 *
 * Cost: `K * ceil(K / 32)` mask words (`4 * K^2 / 32` bytes: 3 MB for 5,000
 * boxes) and `K^2 / 2` IoUs; the suppression is sequential, `K` row checks
 * plus `ceil(K / 32)` word ORs per kept box.
 *
 * @module
 */

import type { Backend } from "../tensor/backend.ts";
import { entryPoint, type Kernel, kernelCache } from "../tensor/kernel.ts";
import { backendOf, expectDtype, launch } from "../tensor/ops/launch.ts";
import { argsort } from "../tensor/ops/sort.ts";
import { empty, type Tensor } from "../tensor/tensor.ts";
import { iouAbove, NO_FLOOR, overlapHost, WGSL_OVERLAP } from "./iou.ts";

/** Most loop iterations of one `nms.suppress` invocation (below `LOOP_LIMIT`, tensor/kernel.ts). */
export const NMS_LOOP_BUDGET = 40000;
const WORKGROUP = 64;

/** Options of {@linkcode batchedNms} and {@linkcode batchedNmsHost}. */
export interface NmsOptions {
  /** A box is suppressed when its IoU with a kept box of its class is greater than this. */
  iouThreshold: number;
  /**
   * Length of `keep`: at most this many boxes are kept (the highest-scoring
   * survivors). Default: the number of boxes.
   */
  maxOutput?: number;
}

/** The result of {@linkcode batchedNms}: fixed-size, still on the device. */
export interface NmsResult {
  /** `i32 [maxOutput]`: indices of the kept boxes by descending score, then `-1`s. */
  keep: Tensor;
  /** `i32 [1]`: how many entries of `keep` are not `-1`. */
  count: Tensor;
}

const cached = kernelCache();

/** IoU of boxes `a` and `b` of `boxes` (xyxy) with every step rounded to f32, as the WGSL does. */
function iouF32(boxes: ArrayLike<number>, a: number, b: number): number {
  return overlapHost(boxes, a, boxes, b, "iou", NO_FLOOR, Math.fround);
}

function gatherKernel(): Kernel {
  return cached("gather", () => ({
    label: "nms.gather_sorted",
    inputs: { boxes: "f32", classes: "i32", order: "u32" },
    outputs: { sorted_boxes: "f32", sorted_classes: "i32" },
    params: { n: "u32" },
    workgroupSize: WORKGROUP,
    code: `${entryPoint(WORKGROUP)}
  if (i >= p.n) { return; }
  let k = order[i];
  for (var c = 0u; c < 4u; c++) { sorted_boxes[4u * i + c] = boxes[4u * k + c]; }
  sorted_classes[i] = classes[k];
}`,
    cpu(ins, outs, params) {
      const n = params.n as number;
      const { boxes, classes, order } = ins;
      const { sorted_boxes: sortedBoxes, sorted_classes: sortedClasses } = outs;
      for (let i = 0; i < n; i++) {
        const k = order[i];
        for (let c = 0; c < 4; c++) sortedBoxes[4 * i + c] = boxes[4 * k + c];
        sortedClasses[i] = classes[k];
      }
    },
  }));
}

/** Rows one `nms.iou_mask` invocation covers (register blocking: each column load serves them all). */
const MASK_ROWS = 8;

/** Unrolled WGSL: `body(k)` for each of the {@linkcode MASK_ROWS} rows. */
function perRow(body: (k: number) => string): string {
  return Array.from({ length: MASK_ROWS }, (_, k) => body(k)).join("\n");
}

/**
 * `mask[blk * n + row]` (column-block-major, so a workgroup writes consecutive
 * words): bit `j` says sorted box `c = 32 * blk + j > row` has the row's class
 * and IoU > threshold. One workgroup covers one block and
 * `WORKGROUP * MASK_ROWS` rows (invocation `lid` takes rows
 * `first + lid + k * WORKGROUP`), holding its rows in registers, so that each
 * column's five loads serve {@linkcode MASK_ROWS} IoUs.
 */
function maskKernel(): Kernel {
  return cached("mask", () => ({
    label: "nms.iou_mask",
    inputs: { boxes: "f32", classes: "i32" },
    outputs: { mask: "u32" },
    params: { n: "u32", tiles: "u32", groups: "u32", thr: "f32" },
    workgroupSize: WORKGROUP,
    code: `${WGSL_OVERLAP}
fn box_at(k: u32) -> vec4<f32> {
  let j = min(k, p.n - 1u);
  return vec4<f32>(boxes[4u * j], boxes[4u * j + 1u], boxes[4u * j + 2u], boxes[4u * j + 3u]);
}
fn class_at(k: u32) -> i32 {
  return select(-1, classes[min(k, p.n - 1u)], k < p.n);
}
${entryPoint(WORKGROUP)}
  let g = wid.y * nwg.x + wid.x;
  if (g >= p.groups) { return; }
  let blk = g / p.tiles;
  let first = (g % p.tiles) * (WG * ${MASK_ROWS}u);
  let start = blk * 32u;
  let stop = min(p.n, start + 32u);
${
      perRow((k) =>
        `  let row${k} = first + lid + ${k * WORKGROUP}u;
  let a${k} = box_at(row${k});
  let rc${k} = class_at(row${k});
  let area${k} = box_area(a${k});
  var bits${k} = 0u;`
      )
    }
  // Uniform in the workgroup: skip blocks left of every row's diagonal.
  if (stop > first + 1u) {
    for (var c = start; c < stop; c++) {
      let b = box_at(c);
      let cc = classes[c];
      let area_b = box_area(b);
      let bit = 1u << (c - start);
${
      perRow((k) =>
        `      {
        let iou = overlap_parts(a${k}, b, area${k}, area_b, 0u, NO_FLOOR).value;
        let hit = (c > row${k}) & (rc${k} >= 0) & (cc == rc${k}) & (iou > p.thr);
        bits${k} |= select(0u, bit, hit);
      }`
      )
    }
    }
  }
${perRow((k) => `  if (row${k} < p.n) { mask[blk * p.n + row${k}] = bits${k}; }`)}
}`,
    cpu(ins, outs, params) {
      const { n, thr } = params as Record<string, number>;
      const { boxes, classes } = ins, mask = outs.mask;
      const words = Math.ceil(n / 32);
      for (let blk = 0; blk < words; blk++) {
        const start = blk * 32, stop = Math.min(n, start + 32);
        for (let row = 0; row < n; row++) {
          const rc = classes[row];
          let bits = 0;
          if (rc >= 0) {
            for (let c = Math.max(start, row + 1); c < stop; c++) {
              if (classes[c] === rc && iouF32(boxes, row, c) > thr) bits |= 1 << (c - start);
            }
          }
          mask[blk * n + row] = bits >>> 0;
        }
      }
    },
  }));
}

function initKernel(): Kernel {
  return cached("init", () => ({
    label: "nms.init",
    inputs: {},
    outputs: { removed: "u32", keep: "i32", count: "i32" },
    params: { words: "u32", max_out: "u32", total: "u32" },
    workgroupSize: WORKGROUP,
    code: `${entryPoint(WORKGROUP)}
  if (i >= p.total) { return; }
  if (i < p.words) { removed[i] = 0u; }
  if (i < p.max_out) { keep[i] = -1; }
  if (i == 0u) { count[0] = 0; }
}`,
    cpu(_ins, outs) {
      outs.removed.fill(0);
      outs.keep.fill(-1);
      outs.count[0] = 0;
    },
  }));
}

function suppressKernel(): Kernel {
  return cached("suppress", () => ({
    label: "nms.suppress",
    inputs: { mask: "u32", order: "u32", classes: "i32" },
    outputs: { removed: "u32", keep: "i32", count: "i32" },
    params: { n: "u32", words: "u32", r0: "u32", r1: "u32", max_out: "u32" },
    workgroupSize: 1,
    code: `${entryPoint(1)}
  if (i != 0u) { return; }
  var cnt = u32(count[0]);
  for (var r = p.r0; r < p.r1 && cnt < p.max_out; r++) {
    let w = r / 32u;
    if (((removed[w] >> (r % 32u)) & 1u) != 0u) { continue; }
    if (classes[r] < 0) { continue; }
    keep[cnt] = i32(order[r]);
    cnt++;
    for (var k = w; k < p.words; k++) { removed[k] = removed[k] | mask[k * p.n + r]; }
  }
  count[0] = i32(cnt);
}`,
    cpu(ins, outs, params) {
      const { n, words, r0, r1, max_out: maxOut } = params as Record<string, number>;
      const { mask, order, classes } = ins, { removed, keep, count } = outs;
      let cnt = count[0];
      for (let r = r0; r < r1 && cnt < maxOut; r++) {
        const w = r >>> 5;
        if ((removed[w] >>> (r & 31)) & 1) continue;
        if (classes[r] < 0) continue;
        keep[cnt++] = order[r];
        for (let k = w; k < words; k++) removed[k] |= mask[k * n + r];
      }
      count[0] = cnt;
    },
  }));
}

/**
 * Rows per `nms.suppress` dispatch: the most `r` with `r + min(r, maxOut) * words`
 * loop iterations within {@linkcode NMS_LOOP_BUDGET}.
 */
export function suppressRowsPerDispatch(words: number, maxOut: number): number {
  const budget = NMS_LOOP_BUDGET;
  const full = Math.floor(budget / (1 + words));
  return Math.max(1, full >= maxOut ? budget - maxOut * words : full);
}

/**
 * The largest `f32` at or below `t`: for every `f32` IoU `x`, `x > t` (the
 * double comparison torchvision makes) is the same as `x > f32AtOrBelow(t)`
 * (what the WGSL can make). Rounding `t` to the nearest `f32` instead would
 * keep a box whose IoU is `fround(t) > t`, e.g. `0.3f` at threshold 0.3.
 */
export function f32AtOrBelow(t: number): number {
  const f = Math.fround(t);
  if (!(f > t)) return f;
  if (f === 0) return -(2 ** -149);
  const bits = new Int32Array(Float32Array.of(f).buffer);
  bits[0] += f > 0 ? -1 : 1;
  return new Float32Array(bits.buffer)[0];
}

function checkOptions(op: string, options: NmsOptions, n: number): number {
  const thr = options?.iouThreshold;
  if (typeof thr !== "number" || Number.isNaN(thr)) {
    throw new TypeError(`${op}: iouThreshold ${thr} is not a number`);
  }
  const maxOut = options.maxOutput ?? n;
  if (!Number.isInteger(maxOut) || maxOut < 0) {
    throw new RangeError(`${op}: maxOutput ${maxOut} is not a non-negative integer`);
  }
  return maxOut;
}

/**
 * Batched NMS on the tensors' device, without a readback: boxes of different
 * classes never suppress each other; a box whose IoU with a kept
 * higher-scoring box of its class exceeds `iouThreshold` is dropped (IoU equal
 * to the threshold is kept; the `f32` IoU is compared with the threshold as a
 * double, as torchvision does, so that its float32 `nms` and `batched_nms`
 * results are reproduced). Scores are ranked descending, ties by lower
 * index, NaN last (torchvision ranks NaN first: see {@linkcode nmsIndices}).
 * Boxes with a negative class are padding: never kept (torchvision treats a
 * negative class as any other).
 *
 * The outputs have fixed sizes: `keep` is `i32 [maxOutput]` (indices of the
 * kept boxes by descending score, at most `maxOutput` of them, then `-1`s)
 * and `count` is `i32 [1]`. On the CPU backend the kernels' twins run.
 *
 * @example Two overlapping boxes of class 0, one of class 1
 * ```ts
 * import { batchedNms } from "./nms.ts";
 * import { tensor } from "../tensor/tensor.ts";
 * const boxes = tensor([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]]);
 * const scores = tensor([0.9, 0.8, 0.7]);
 * const classes = tensor([0, 0, 1], undefined, { dtype: "i32" });
 * const { keep, count } = batchedNms(boxes, scores, classes, { iouThreshold: 0.5, maxOutput: 4 });
 * console.log(await keep.data()); // Int32Array [0, 2, -1, -1]
 * console.log(await count.data()); // Int32Array [2]
 * ```
 *
 * @param boxes `f32 [N, 4]` xyxy boxes.
 * @param scores `f32 [N]`.
 * @param classes `i32 [N]`; negative marks padding.
 * @param options `iouThreshold` and `maxOutput` (default `N`).
 * @returns `keep` (`i32 [maxOutput]`) and `count` (`i32 [1]`).
 */
export function batchedNms(
  boxes: Tensor,
  scores: Tensor,
  classes: Tensor,
  options: NmsOptions,
): NmsResult {
  const op = "batchedNms";
  expectDtype(op, boxes, ["f32"]);
  expectDtype(op, scores, ["f32"]);
  expectDtype(op, classes, ["i32"]);
  if (boxes.rank !== 2 || boxes.shape[1] !== 4) {
    throw new TypeError(`${op}: boxes must have shape [N, 4] but got [${boxes.shape.join(", ")}]`);
  }
  const n = boxes.shape[0];
  for (const [name, t] of [["scores", scores], ["classes", classes]] as const) {
    if (t.rank !== 1 || t.shape[0] !== n) {
      throw new TypeError(
        `${op}: ${name} must have shape [${n}] but got [${t.shape.join(", ")}]`,
      );
    }
  }
  const backend: Backend = backendOf(op, [boxes, scores, classes]);
  const maxOut = checkOptions(op, options, n);
  const words = Math.ceil(n / 32);
  const removed = empty([words], "u32", backend);
  const keep = empty([maxOut], "i32", backend);
  const count = empty([1], "i32", backend);
  const initTotal = Math.max(words, maxOut, 1);
  launch(
    initKernel(),
    [],
    [removed, keep, count],
    { words, max_out: maxOut, total: initTotal },
    Math.ceil(initTotal / WORKGROUP),
  );
  if (n > 0 && maxOut > 0) {
    const order = argsort(scores, { descending: true });
    const sortedBoxes = empty([n, 4], "f32", backend);
    const sortedClasses = empty([n], "i32", backend);
    launch(
      gatherKernel(),
      [boxes, classes, order],
      [sortedBoxes, sortedClasses],
      { n },
      Math.ceil(n / WORKGROUP),
    );
    const tiles = Math.ceil(n / (WORKGROUP * MASK_ROWS));
    const groups = tiles * words;
    const mask = empty([words, n], "u32", backend);
    launch(
      maskKernel(),
      [sortedBoxes, sortedClasses],
      [mask],
      { n, tiles, groups, thr: f32AtOrBelow(options.iouThreshold) },
      groups,
    );
    sortedBoxes.dispose();
    const rows = suppressRowsPerDispatch(words, maxOut);
    for (let r0 = 0; r0 < n; r0 += rows) {
      launch(
        suppressKernel(),
        [mask, order, sortedClasses],
        [removed, keep, count],
        { n, words, r0, r1: Math.min(n, r0 + rows), max_out: maxOut },
        1,
      );
    }
    mask.dispose();
    order.dispose();
    sortedClasses.dispose();
  }
  removed.dispose();
  return { keep, count };
}

/**
 * The classic greedy batched NMS in plain TypeScript (the reference of
 * {@linkcode batchedNms}): visit boxes by descending score (stable; NaN
 * last), keep each one not yet suppressed and with a class `>= 0`, and
 * suppress the later boxes of its class whose IoU with it (computed in `f32`)
 * exceeds the threshold.
 *
 * @example
 * ```ts
 * import { batchedNmsHost } from "./nms.ts";
 * const boxes = [0, 0, 10, 10, 1, 1, 10, 10, 20, 20, 30, 30];
 * const keep = batchedNmsHost(boxes, [0.5, 0.9, 0.1], [0, 0, 0], { iouThreshold: 0.5 });
 * console.log(keep); // Int32Array [1, 2]
 * ```
 *
 * @param boxes `N * 4` xyxy coordinates, row-major.
 * @param scores `N` scores.
 * @param classes `N` classes; negative marks padding.
 * @param options `iouThreshold` and `maxOutput` (default `N`).
 * @returns The kept indices by descending score (no padding).
 */
export function batchedNmsHost(
  boxes: ArrayLike<number>,
  scores: ArrayLike<number>,
  classes: ArrayLike<number>,
  options: NmsOptions,
): Int32Array {
  const op = "batchedNmsHost";
  const n = scores.length;
  if (boxes.length !== 4 * n || classes.length !== n) {
    throw new TypeError(
      `${op}: ${boxes.length} coordinates and ${classes.length} classes do not match ${n} scores`,
    );
  }
  const maxOut = checkOptions(op, options, n);
  const thr = options.iouThreshold;
  const rank = (s: number) => (Number.isNaN(s) ? -Infinity : s);
  const order = Array.from({ length: n }, (_, k) => k).sort((a, b) => {
    const sa = scores[a], sb = scores[b];
    if (Number.isNaN(sa) !== Number.isNaN(sb)) return Number.isNaN(sa) ? 1 : -1;
    return rank(sb) - rank(sa) || 0;
  });
  const suppressed = new Uint8Array(n);
  const keep: number[] = [];
  for (let a = 0; a < n && keep.length < maxOut; a++) {
    const i = order[a];
    if (suppressed[i] || classes[i] < 0) continue;
    keep.push(i);
    for (let b = a + 1; b < n; b++) {
      const j = order[b];
      if (!suppressed[j] && classes[j] === classes[i] && iouF32(boxes, i, j) > thr) {
        suppressed[j] = 1;
      }
    }
  }
  return Int32Array.from(keep);
}

/** Box coordinates whose element type sets the precision of the host NMS. */
export type HostBoxes = Float32Array | Float64Array;

function checkHostNms(
  op: string,
  boxes: HostBoxes,
  scores: ArrayLike<number>,
  iouThreshold: number,
  classes?: ArrayLike<number>,
): number {
  if (!(boxes instanceof Float32Array || boxes instanceof Float64Array)) {
    throw new TypeError(`${op}: boxes must be a Float32Array or a Float64Array`);
  }
  if (boxes.length % 4 !== 0) {
    throw new RangeError(`${op}: ${boxes.length} coordinates are not a multiple of 4`);
  }
  const n = boxes.length / 4;
  if (scores.length !== n) {
    throw new RangeError(`${op}: ${scores.length} scores for ${n} boxes`);
  }
  if (classes && classes.length !== n) {
    throw new RangeError(`${op}: ${classes.length} classes for ${n} boxes`);
  }
  if (typeof iouThreshold !== "number" || Number.isNaN(iouThreshold)) {
    throw new TypeError(`${op}: iouThreshold ${iouThreshold} is not a number`);
  }
  return n;
}

/**
 * torchvision's visiting order: descending score, NaN above every number (as
 * `torch.sort`), equal scores by increasing index.
 */
function torchvisionOrder(scores: ArrayLike<number>, n: number): Int32Array {
  const order = Int32Array.from({ length: n }, (_, k) => k);
  return order.sort((a, b) => {
    const sa = scores[a], sb = scores[b];
    const na = Number.isNaN(sa), nb = Number.isNaN(sb);
    if (na || nb) return na === nb ? a - b : na ? -1 : 1;
    return sb > sa ? 1 : sb < sa ? -1 : a - b;
  });
}

function greedyNms(
  boxes: HostBoxes,
  scores: ArrayLike<number>,
  classes: ArrayLike<number> | null,
  thr: number,
  n: number,
): Int32Array {
  const round = boxes instanceof Float32Array ? Math.fround : (x: number) => x;
  const order = torchvisionOrder(scores, n);
  // Boxes of different classes never meet: each class's boxes are visited alone, in the
  // global order. A NaN class equals no class, not even itself: such a box is always kept.
  const groups = new Map<number, number[]>();
  for (const i of order) {
    const c = classes ? classes[i] : 0;
    if (Number.isNaN(c)) continue;
    const group = groups.get(c);
    if (group) group.push(i);
    else groups.set(c, [i]);
  }
  const suppressed = new Uint8Array(n);
  for (const group of groups.values()) suppressWithin(boxes, group, suppressed, thr, round);
  return order.filter((i) => !suppressed[i]);
}

/** Greedy suppression among `group` (box indices by visiting order), marking `suppressed`. */
function suppressWithin(
  boxes: HostBoxes,
  group: readonly number[],
  suppressed: Uint8Array,
  thr: number,
  round: (x: number) => number,
): void {
  for (let a = 0; a < group.length; a++) {
    const i = group[a];
    if (suppressed[i]) continue;
    for (let b = a + 1; b < group.length; b++) {
      const j = group[b];
      // NaN (two empty boxes) is not greater than the threshold: both are kept.
      if (!suppressed[j] && iouAbove(boxes, i, boxes, j, thr, round)) suppressed[j] = 1;
    }
  }
}

/**
 * torchvision's `nms` on the host: the kept indices in torchvision's order.
 * Boxes are visited by descending score (equal scores by increasing index);
 * a box not yet suppressed is kept and suppresses every later box whose IoU
 * with it is strictly greater than `iouThreshold`.
 *
 * The precision follows `boxes`: a `Float32Array` computes the IoU in float32
 * (every step rounded, as torchvision on float32 tensors) and compares it with
 * the threshold as a double, so that an IoU of `0.3f = 0.300000012` is
 * suppressed at threshold 0.3; a `Float64Array` computes in float64. The IoU
 * of two zero-area boxes is `0 / 0 = NaN`, which suppresses nothing.
 *
 * NaN scores rank above every number, as in `torch.sort` (NaN boxes come
 * first, by index). The device op {@linkcode batchedNms} ranks them last.
 *
 * @example Two overlapping boxes and a distant one
 * ```ts
 * import { nmsIndices } from "./nms.ts";
 * const boxes = Float32Array.of(0, 0, 10, 10, 1, 1, 10, 10, 20, 20, 30, 30);
 * console.log(nmsIndices(boxes, Float32Array.of(0.5, 0.9, 0.1), 0.5)); // Int32Array [1, 2]
 * ```
 *
 * @param boxes `[N * 4]` xyxy coordinates, row-major; the element type sets the precision.
 * @param scores `[N]` scores.
 * @param iouThreshold A box is suppressed when its IoU with a kept box is greater than this.
 * @returns The kept indices by descending score.
 * @throws {RangeError} When `boxes.length` is not a multiple of 4 or `scores` has another length.
 */
export function nmsIndices(
  boxes: HostBoxes,
  scores: ArrayLike<number>,
  iouThreshold: number,
): Int32Array {
  const n = checkHostNms("nmsIndices", boxes, scores, iouThreshold);
  return greedyNms(boxes, scores, null, iouThreshold, n);
}

/**
 * torchvision's `batched_nms` on the host: {@linkcode nmsIndices} within each
 * class (boxes of different classes never suppress each other), the kept
 * boxes merged by descending score, equal scores by increasing index. Any
 * number is a class, negative ones included. Precision and NaN scores as in
 * {@linkcode nmsIndices}.
 *
 * Above 1,000 boxes torchvision runs `nms` per class and merges with an
 * unstable sort, so its order of equal scores is not defined there; this
 * function keeps the increasing-index order at every size.
 *
 * @example The same box under two classes survives once per class
 * ```ts
 * import { batchedNmsIndices } from "./nms.ts";
 * const boxes = Float32Array.of(0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 10, 10);
 * const keep = batchedNmsIndices(boxes, Float32Array.of(0.2, 0.9, 0.5), [3, 3, 7], 0.5);
 * console.log(keep); // Int32Array [1, 2]
 * ```
 *
 * @param boxes `[N * 4]` xyxy coordinates, row-major; the element type sets the precision.
 * @param scores `[N]` scores.
 * @param classes `[N]` class of each box.
 * @param iouThreshold A box is suppressed when its IoU with a kept box of its class is greater than this.
 * @returns The kept indices by descending score.
 * @throws {RangeError} When `boxes.length` is not a multiple of 4 or `scores` or `classes` has another length.
 */
export function batchedNmsIndices(
  boxes: HostBoxes,
  scores: ArrayLike<number>,
  classes: ArrayLike<number>,
  iouThreshold: number,
): Int32Array {
  const n = checkHostNms("batchedNmsIndices", boxes, scores, iouThreshold, classes);
  return greedyNms(boxes, scores, classes, iouThreshold, n);
}

/** The rows {@linkcode batchedNmsKept} keeps, best first. */
export interface KeptBoxes {
  /** `[K * 4]` xyxy coordinates. */
  boxes: Float32Array;
  /** `[K]` scores. */
  scores: Float32Array;
  /** `[K]` class (or other group) of each box. */
  classes: Int32Array;
}

/**
 * {@linkcode batchedNmsIndices} in float32, then the rows of the first `maxOutput` kept boxes.
 *
 * @example
 * ```ts
 * import { batchedNmsKept } from "./nms.ts";
 * import assert from "node:assert/strict";
 *
 * const boxes = Float32Array.of(0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 10, 10);
 * const kept = batchedNmsKept(boxes, Float32Array.of(0.2, 0.9, 0.5), [3, 3, 7], 0.5, 1);
 * assert.deepEqual([...kept.scores, ...kept.classes], [0.8999999761581421, 3]);
 * ```
 *
 * @param boxes `[N * 4]` xyxy coordinates.
 * @param scores `[N]` scores.
 * @param classes `[N]` class of each box (boxes of different classes never suppress each other).
 * @param iouThreshold A box is suppressed when its IoU with a kept box of its class exceeds this.
 * @param maxOutput Most boxes returned.
 * @returns The kept rows by descending score.
 */
export function batchedNmsKept(
  boxes: Float32Array,
  scores: Float32Array,
  classes: ArrayLike<number>,
  iouThreshold: number,
  maxOutput: number,
): KeptBoxes {
  const keep = batchedNmsIndices(boxes, scores, classes, iouThreshold).subarray(0, maxOutput);
  const out = {
    boxes: new Float32Array(4 * keep.length),
    scores: new Float32Array(keep.length),
    classes: new Int32Array(keep.length),
  };
  keep.forEach((k, j) => {
    out.boxes.set(boxes.subarray(4 * k, 4 * k + 4), 4 * j);
    out.scores[j] = scores[k];
    out.classes[j] = classes[k];
  });
  return out;
}
