/**
 * The mask branch of Mask R-CNN with the rank-based recipe
 * (`RankBasedFCNMaskHead`; docs/departures.md, Q16 and Q23; notes in
 * docs/two_stage.md).
 *
 * Training: the positive RoIs of the box stage (at most `maxRois` per batch,
 * drawn at random when there are more) are pooled at 14x14 from the
 * pyramid, the head predicts 28x28 mask logits per class, and the map of each
 * RoI's GT class is scored by the Dice loss against the GT mask cropped and
 * resampled to the RoI ({@linkcode maskTargets}). The per-RoI losses are
 * averaged with the RoI's score weight (its top class probability, detached)
 * and self-balanced to the box stage's `L_rank + L_sort`.
 *
 * Test: the detections' boxes are pooled the same way, the map of each
 * detection's class goes through the sigmoid and is pasted into the
 * original image at threshold 0.5 and encoded as COCO RLE
 * ({@linkcode pasteMasksToRle}).
 *
 * @module
 */

import type { CocoRle } from "../data/coco_types.ts";
import { scoreWeightedMean, scoreWeights, selfBalance } from "../losses/baselines/balance.ts";
import { diceLoss } from "../losses/baselines/dice_loss.ts";
import { detach, noGrad } from "../tensor/autograd.ts";
import { full } from "../tensor/ops/creation.ts";
import { sigmoid } from "../tensor/ops/elementwise.ts";
import { indexSelect } from "../tensor/ops/index.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import type { BBoxHeadOutput } from "./heads/roi_head.ts";
import type { FcnMaskHead } from "./heads/mask_head.ts";
import { maskTargets } from "./mask_targets.ts";
import { pasteMasksToRle } from "./paste_masks.ts";
import { drawSorted, samplerRng } from "./random_sampler.ts";
import type { RoiTargets } from "./roi_targets.ts";

/** How the mask branch pools and samples. */
export interface MaskSettings {
  /** Side of the pooled features (14); the masks are twice that (28). */
  roiSize: number;
  /** Positive RoIs per batch the mask loss takes, drawn at random above it (200). */
  maxRois: number;
  /** Probability at or above which a pasted pixel is foreground (0.5). */
  threshold: number;
}

/** Pools `[K * 5]` RoIs (batch index, xyxy) at `outputSize` from the pyramid. */
export type RoiPooler = (rois: Float32Array, outputSize: number) => Tensor;

/**
 * The positives the mask loss takes: all of them, or `maxRois` drawn without
 * replacement when there are more, kept in their batch order. The draw is
 * seeded by the RoIs themselves, so a step gives the same draw every time it
 * runs (a resumed run repeats an uninterrupted one).
 *
 * @example
 * ```ts
 * import { sampleMaskRois } from "./mask_branch.ts";
 * const labels = Int32Array.of(2, -1, 0, 1, -1);
 * console.log(Array.from(sampleMaskRois(labels, new Float32Array(25), 10))); // [0, 2, 3]
 * console.log(sampleMaskRois(labels, new Float32Array(25), 2).length); // 2
 * ```
 *
 * @param labels `[K]` RoI labels, -1 for background.
 * @param rois `[K * 5]` the RoIs (the seed of the draw).
 * @param maxRois The most positives to keep.
 * @returns Indices of the kept positives, ascending.
 */
export function sampleMaskRois(
  labels: Int32Array,
  rois: Float32Array,
  maxRois: number,
): Int32Array {
  const positives: number[] = [];
  labels.forEach((label, i) => label >= 0 && positives.push(i));
  return drawSorted(positives, maxRois, samplerRng(rois));
}

/** Rows `p * classes + labels[p]` of `[P, classes, S, S]` logits, as `[P, S * S]`. */
function classMaps(logits: Tensor, labels: ArrayLike<number>): Tensor {
  const [p, classes, s] = logits.shape;
  const rows = Int32Array.from({ length: p }, (_, i) => i * classes + labels[i]);
  return indexSelect(
    reshape(logits, [p * classes, s * s]),
    0,
    tensor(rows, [p], { backend: logits.backend }),
  );
}

/** The positives a batch's mask loss takes, with their targets. */
export interface MaskTargets {
  /** `[P]` indices of the kept positives among the box stage's RoIs, ascending. */
  kept: Int32Array;
  /** `[P * 5]` their RoIs (batch index, xyxy). */
  rois: Float32Array;
  /** `[P]` their classes. */
  labels: Int32Array;
  /** `[P * 28 * 28]` their binary mask targets. */
  masks: Float32Array;
}

/**
 * The mask branch: its head and settings, trained on the box stage's
 * positives and run on the detections at test time.
 */
export class MaskBranch {
  /** Wraps `head` (registered by its owner as `roi_head.mask_head`). */
  constructor(readonly head: FcnMaskHead, readonly settings: MaskSettings) {}

  /**
   * The host side of a batch's mask loss: the sampled positives
   * ({@linkcode sampleMaskRois}), their RoIs, classes and 28x28 targets
   * ({@linkcode maskTargets}).
   *
   * @param targets The box stage's targets.
   * @param masks Per image `[n, height, width]` GT masks, parallel to the boxes.
   * @param height The masks' (padded batch) height.
   * @param width The masks' width.
   */
  targets(
    targets: RoiTargets,
    masks: readonly Uint8Array[],
    height: number,
    width: number,
  ): MaskTargets {
    const kept = sampleMaskRois(targets.labels, targets.rois, this.settings.maxRois);
    const p = kept.length, side = 2 * this.settings.roiSize, plane = side * side;
    const rois = new Float32Array(5 * p), labels = new Int32Array(p);
    const masksOut = new Float32Array(p * plane);
    kept.forEach((k, i) => {
      rois.set(targets.rois.subarray(5 * k, 5 * k + 5), 5 * i);
      labels[i] = targets.labels[k];
      const image = targets.rois[5 * k];
      const target = maskTargets(
        masks[image],
        height,
        width,
        targets.rois.subarray(5 * k + 1, 5 * k + 5),
        [targets.gtIndex[k]],
        side,
      );
      masksOut.set(target, i * plane);
    });
    return { kept, rois, labels, masks: masksOut };
  }

  /**
   * The mask loss of mask logits on {@linkcode MaskBranch.targets}: `loss`,
   * the score-weighted mean Dice loss of the positives self-balanced to
   * `ranking` (the box stage's `L_rank + L_sort`), which is what training
   * minimises, and `dice`, that mean before the balancing (detached, for
   * logs: the balanced value always equals `ranking`). Both 0 without
   * positives.
   *
   * @param logits The head's `[P, classes, 28, 28]` logits on `targets.rois` (undefined when P = 0).
   * @param targets The batch's mask targets.
   * @param cls The box stage's class logits `[K, classes]` (for the score weights).
   * @param ranking `L_rank + L_sort` of the box stage.
   */
  lossOf(
    logits: Tensor | undefined,
    targets: MaskTargets,
    cls: Tensor,
    ranking: Tensor,
  ): { loss: Tensor; dice: Tensor } {
    const backend = cls.backend, p = targets.kept.length;
    if (p === 0 || !logits) {
      return { loss: full([], 0, { backend }), dice: full([], 0, { backend }) };
    }
    const plane = targets.masks.length / p;
    const dice = diceLoss(
      classMaps(logits, targets.labels),
      tensor(targets.masks, [p, plane], { backend }),
    );
    const weights = scoreWeights(indexSelect(cls, 0, tensor(targets.kept, [p], { backend })));
    const mean = scoreWeightedMean(dice, weights);
    return { loss: selfBalance(mean, ranking), dice: detach(mean) };
  }

  /**
   * The mask loss of a batch ({@linkcode MaskBranch.targets}, the head on
   * the positives' features, {@linkcode MaskBranch.lossOf}).
   *
   * @param pool Pools RoIs from the batch's pyramid.
   * @param out The box stage's outputs on `targets.rois`.
   * @param targets The box stage's targets.
   * @param masks Per image `[n, height, width]` GT masks, parallel to the boxes.
   * @param height The masks' (padded batch) height.
   * @param width The masks' width.
   * @param ranking `L_rank + L_sort` of the box stage.
   */
  loss(
    pool: RoiPooler,
    out: BBoxHeadOutput,
    targets: RoiTargets,
    masks: readonly Uint8Array[],
    height: number,
    width: number,
    ranking: Tensor,
  ): { loss: Tensor; dice: Tensor } {
    const t = this.targets(targets, masks, height, width);
    const logits = t.kept.length > 0
      ? this.head.forward(pool(t.rois, this.settings.roiSize))
      : undefined;
    return this.lossOf(logits, t, out.cls, ranking);
  }

  /**
   * COCO RLE masks of detections, in original-image pixels.
   *
   * @param pool Pools RoIs from the images' pyramid.
   * @param boxes Per image `[n * 4]` xyxy detection boxes in the input's pixels.
   * @param labels Per image `[n]` their classes.
   * @param scales Per image `[scaleX, scaleY]` (input / original).
   * @param sizes Per image the original `[height, width]`.
   * @returns Per image one RLE per detection.
   */
  async predict(
    pool: RoiPooler,
    boxes: readonly Float32Array[],
    labels: readonly Int32Array[],
    scales: readonly [number, number][],
    sizes: readonly [number, number][],
  ): Promise<CocoRle[][]> {
    const total = labels.reduce((n, l) => n + l.length, 0);
    if (total === 0) return labels.map(() => []);
    const rois = new Float32Array(5 * total), allLabels = new Int32Array(total);
    let k = 0;
    boxes.forEach((b, image) => {
      for (let i = 0; i < labels[image].length; i++, k++) {
        rois[5 * k] = image;
        rois.set(b.subarray(4 * i, 4 * i + 4), 5 * k + 1);
        allLabels[k] = labels[image][i];
      }
    });
    const probs = await noGrad(() =>
      sigmoid(classMaps(this.head.forward(pool(rois, this.settings.roiSize)), allLabels))
    ).data();
    const side = 2 * this.settings.roiSize, plane = side * side;
    k = 0;
    return labels.map((l, image) => {
      const [sx, sy] = scales[image], [h, w] = sizes[image];
      const original = new Float32Array(4 * l.length);
      for (let i = 0; i < l.length; i++) {
        const roi = 5 * (k + i);
        original.set([
          rois[roi + 1] / sx,
          rois[roi + 2] / sy,
          rois[roi + 3] / sx,
          rois[roi + 4] / sy,
        ], 4 * i);
      }
      const rles = pasteMasksToRle(
        probs.subarray(k * plane, (k + l.length) * plane),
        original,
        h,
        w,
        this.settings.threshold,
      );
      k += l.length;
      return rles;
    });
  }
}
