/**
 * Host-side parts of the region proposal network (Faster R-CNN's first
 * stage, as mmdetection's `RPNHead`): its anchors and the proposals made from
 * its read-back scores and deltas. The RPN's assigner is `maxIouAssign`
 * with `RPN_ASSIGN` (`./max_iou_assigner.ts`).
 *
 * @module
 */

import { DeltaXywhCoder } from "../boxes/coder.ts";
import { batchedNmsKept } from "../boxes/nms.ts";
import { detach } from "../tensor/autograd.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { type AnchorConfig, type Anchors, generateAnchors } from "./anchors.ts";

/**
 * The RPN's anchors (docs/departures.md, R3): scale 8, ratios 0.5 / 1 / 2,
 * one size per level (8 x stride), strides 4–64 (P2–P6). mmdetection's
 * `AnchorGenerator(scales=[8], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64])`
 * gives the same boxes in the same order as {@linkcode generateAnchors} with
 * one scale per octave: locations row-major, then the three ratios.
 */
export const RPN_ANCHORS: Readonly<AnchorConfig> = Object.freeze({
  strides: Object.freeze([4, 8, 16, 32, 64]),
  octaveBaseScale: 8,
  scalesPerOctave: 1,
  ratios: Object.freeze([0.5, 1, 2]),
});

/**
 * The RPN anchors of an input of `height x width`.
 *
 * @example Three anchors per location, the first one wide
 * ```ts
 * import { rpnAnchors } from "./rpn.ts";
 * const a = rpnAnchors(8, 8, [4]);
 * console.log(a.perLevel, a.perLocation); // [12] 3
 * console.log(Array.from(a.boxes.slice(0, 4), Math.round)); // [-23, -11, 23, 11]
 * ```
 *
 * @param height Input height in pixels.
 * @param width Input width in pixels.
 * @param strides Level strides; default those of {@linkcode RPN_ANCHORS}.
 */
export function rpnAnchors(
  height: number,
  width: number,
  strides: readonly number[] = RPN_ANCHORS.strides,
): Anchors {
  return generateAnchors(height, width, { ...RPN_ANCHORS, strides });
}

/** Options of {@linkcode rpnProposals}. */
export interface ProposalOptions {
  /** Highest-scoring anchors kept per level before NMS; default 2000. */
  nmsPre?: number;
  /**
   * Proposals kept per image after NMS; default 1000 (training and test;
   * docs/departures.md, R3).
   */
  maxPerImage?: number;
  /** NMS IoU threshold, applied within each level; default 0.7. */
  iouThreshold?: number;
  /**
   * Boxes whose width or height is not above this are dropped after clipping;
   * default 0 (mmdetection's `min_bbox_size=0`: only empty boxes go, such as
   * those clipped to a border). A negative value keeps every box.
   */
  minSize?: number;
  /** The box coder; default stds `(0.1, 0.1, 0.2, 0.2)` as every non-DETR RPN. */
  coder?: DeltaXywhCoder;
}

/** Proposals of one image, by descending score. */
export interface Proposals {
  /** `[K * 4]` xyxy boxes, clipped to the image. */
  boxes: Float32Array;
  /** `[K]` scores. */
  scores: Float32Array;
  /** `[K]` pyramid level of each proposal. */
  levels: Int32Array;
}

const DEFAULT_CODER = new DeltaXywhCoder();

/**
 * Proposals of one image from the RPN's outputs, as mmdetection's
 * `RPNHead._get_bboxes`: per level the `nmsPre` highest scores (equal scores
 * by anchor index), their deltas decoded and clipped to the image, boxes not
 * wider and taller than `minSize` dropped, NMS within each level
 * (`batched_nms` with the level as class, through
 * {@linkcode batchedNmsKept}, in float32), then the `maxPerImage` highest.
 *
 * @example Two overlapping boxes on different levels both survive
 * ```ts
 * import { rpnProposals } from "./rpn.ts";
 * const anchors = Float32Array.of(0, 0, 10, 10, 0, 0, 10, 10);
 * const p = rpnProposals(anchors, [1, 1], Float32Array.of(0.9, 0.8), new Float32Array(8), [20, 20]);
 * console.log(p.levels); // Int32Array [0, 1]
 * ```
 *
 * @param anchors `[A * 4]` xyxy anchors, level by level.
 * @param perLevel Anchors on each level (sums to `A`).
 * @param scores `[A]` objectness scores (sigmoid probabilities; any monotone score ranks alike and is returned as given).
 * @param deltas `[A * 4]` predicted offsets.
 * @param imageShape `[height, width]` the boxes are clipped to.
 * @param options Caps, NMS threshold, minimum size and coder.
 * @throws {RangeError} When the lengths disagree or a cap is negative.
 */
export function rpnProposals(
  anchors: Float32Array,
  perLevel: readonly number[],
  scores: ArrayLike<number>,
  deltas: ArrayLike<number>,
  imageShape: readonly [number, number],
  options: ProposalOptions = {},
): Proposals {
  const {
    nmsPre = 2000,
    maxPerImage = 1000,
    iouThreshold = 0.7,
    minSize = 0,
    coder = DEFAULT_CODER,
  } = options;
  const op = "rpnProposals";
  const numAnchors = anchors.length / 4;
  const total = perLevel.reduce((a, b) => a + b, 0);
  if (anchors.length % 4 !== 0 || total !== numAnchors) {
    throw new RangeError(
      `${op}: per-level counts sum to ${total}, not the ${anchors.length / 4} anchors`,
    );
  }
  if (scores.length !== numAnchors || deltas.length !== 4 * numAnchors) {
    throw new RangeError(
      `${op}: ${scores.length} scores and ${deltas.length} delta coordinates for ${numAnchors} anchors`,
    );
  }
  for (const [name, v] of [["nmsPre", nmsPre], ["maxPerImage", maxPerImage]] as const) {
    if (!(Number.isInteger(v) && v >= 0)) {
      throw new RangeError(`${op}: ${name} ${v} is not a non-negative integer`);
    }
  }

  // Top nmsPre per level.
  const picked: number[] = [], pickedLevel: number[] = [];
  let start = 0;
  perLevel.forEach((count, level) => {
    let idx = Array.from({ length: count }, (_, k) => start + k);
    if (count > nmsPre) {
      idx.sort((a, b) => (scores[b] - scores[a]) || a - b);
      idx = idx.slice(0, nmsPre);
    }
    for (const i of idx) {
      picked.push(i);
      pickedLevel.push(level);
    }
    start += count;
  });

  const n = picked.length;
  const pa = new Float32Array(4 * n), pd = new Float32Array(4 * n);
  picked.forEach((i, k) => {
    for (let c = 0; c < 4; c++) {
      pa[4 * k + c] = anchors[4 * i + c];
      pd[4 * k + c] = deltas[4 * i + c];
    }
  });
  const decoded = coder.decodeHost(pa, pd, imageShape);

  // Drop boxes not above minSize.
  const valid: number[] = [];
  for (let k = 0; k < n; k++) {
    const w = decoded[4 * k + 2] - decoded[4 * k], h = decoded[4 * k + 3] - decoded[4 * k + 1];
    if (minSize < 0 || (w > minSize && h > minSize)) valid.push(k);
  }
  const boxes = new Float32Array(4 * valid.length);
  const s = new Float32Array(valid.length), lv = new Int32Array(valid.length);
  valid.forEach((k, j) => {
    boxes.set(decoded.subarray(4 * k, 4 * k + 4), 4 * j);
    s[j] = scores[picked[k]];
    lv[j] = pickedLevel[k];
  });

  const kept = batchedNmsKept(boxes, s, lv, iouThreshold, maxPerImage);
  return { boxes: kept.boxes, scores: kept.scores, levels: kept.classes };
}

/**
 * Proposals of every image of a batch from the RPN head's outputs, read back
 * once (both tensors together): {@linkcode rpnProposals} per image, boxes only.
 *
 * @example
 * ```ts ignore
 * const boxes = await batchProposals(rpnHead.forward(features), anchors, [[h, w], [h, w]], { nmsPre: 2000 });
 * ```
 *
 * @param out Objectness `cls` `[N, A]` and deltas `reg` `[N, A, 4]` of the batch.
 * @param anchors The anchors of the batch's input size.
 * @param shapes Per image the `[height, width]` its boxes are clipped to.
 * @param options Caps, NMS threshold, minimum size and coder.
 * @returns Per image `[K * 4]` xyxy proposals, by descending score.
 */
export async function batchProposals(
  out: { cls: Tensor; reg: Tensor },
  anchors: Anchors,
  shapes: readonly (readonly [number, number])[],
  options: ProposalOptions = {},
): Promise<Float32Array[]> {
  const [scores, deltas] = await Promise.all([detach(out.cls).data(), detach(out.reg).data()]);
  const a = anchors.boxes.length / 4;
  return shapes.map((shape, i) =>
    rpnProposals(
      anchors.boxes,
      anchors.perLevel,
      scores.subarray(i * a, (i + 1) * a),
      deltas.subarray(4 * i * a, 4 * (i + 1) * a),
      shape,
      options,
    ).boxes
  );
}
