/**
 * The stock RPN loss (mmdetection's `RPNHead` in the stock Faster R-CNN and
 * in Co-DETR; the baseline of the rank-based RPN, `loss: "ce"`): anchors are
 * assigned by max IoU (0.7 / 0.3, low-quality matches at 0.3), 256 per image
 * are drawn with at most half positives ({@linkcode RPN_SAMPLER}), the
 * objectness of the drawn anchors is scored by sigmoid binary cross entropy
 * (positive 1, negative 0), and the positives' deltas by L1 against their GT
 * boxes encoded with the RPN's coder (stock stds `(1, 1, 1, 1)`). Both terms
 * are summed and divided by mmdetection's `num_total_samples`: the positives
 * plus the negatives drawn, each counted at least once per image.
 *
 * @module
 */

import { DeltaXywhCoder } from "../boxes/coder.ts";
import { binaryCrossEntropyWithLogits } from "../losses/baselines/cross_entropy.ts";
import { l1Loss } from "../losses/baselines/regression.ts";
import type { Backend } from "../tensor/backend.ts";
import { add, mul } from "../tensor/ops/elementwise.ts";
import { indexSelect } from "../tensor/ops/index.ts";
import { sum } from "../tensor/ops/reduce.ts";
import { reshape } from "../tensor/ops/shape.ts";
import type { Rng } from "../tensor/rng.ts";
import { tensor } from "../tensor/tensor.ts";
import type { Anchors } from "./anchors.ts";
import type { DetectorLosses } from "./detector.ts";
import type { RpnHeadOutput } from "./heads/rpn_head.ts";
import { maxIouAssign, type MaxIouAssignOptions, RPN_ASSIGN } from "./max_iou_assigner.ts";
import { RPN_SAMPLER, sampleCandidates, type SamplerSettings } from "./random_sampler.ts";

/** The stock RPN's coder (`target_stds=[1.0, 1.0, 1.0, 1.0]`), for its targets and proposals. */
export const STOCK_RPN_CODER: DeltaXywhCoder = new DeltaXywhCoder({ stds: [1, 1, 1, 1] });

/** The drawn anchors of a batch and their targets. */
export interface RpnSampledTargets {
  /** `[S]` flat index (`image * A + anchor`) of each drawn anchor, per image positives then negatives. */
  sampled: Int32Array;
  /** `[S]` objectness target of each drawn anchor: 1 positive, 0 negative. */
  labels: Float32Array;
  /** `[P]` flat index of each drawn positive (the first of each image's `sampled`). */
  positives: Int32Array;
  /** `[P * 4]` each drawn positive's GT box encoded from its anchor by the coder. */
  deltas: Float32Array;
  /** The divisor of both terms: per image `max(P_i, 1) + max(S_i - P_i, 1)`, summed. */
  avgFactor: number;
}

/** Options of {@linkcode rpnSampledTargets}. */
export interface RpnSampledTargetOptions {
  /** Thresholds; default {@linkcode RPN_ASSIGN} (0.7 / 0.3, low-quality at 0.3). */
  assign?: MaxIouAssignOptions;
  /** The coder of the regression targets; default {@linkcode STOCK_RPN_CODER}. */
  coder?: DeltaXywhCoder;
  /** The sampler; default {@linkcode RPN_SAMPLER} (256, half positives). */
  sampler?: SamplerSettings;
}

/**
 * Assigns every anchor of every image ({@linkcode maxIouAssign}), draws each
 * image's anchors ({@linkcode sampleCandidates}; ignored anchors never) and
 * encodes the drawn positives' GT boxes.
 *
 * @example One box, a 4-anchor layout: the matching anchor and the three others drawn
 * ```ts
 * import { rpnSampledTargets } from "./rpn_baseline_loss.ts";
 * import { Rng } from "../tensor/rng.ts";
 * const anchors = {
 *   boxes: Float32Array.of(0, 0, 10, 10, 20, 20, 30, 30, 40, 0, 50, 10, 0, 40, 10, 50),
 *   perLevel: [4], featureSizes: [[2, 2]] as [number, number][], perLocation: 1,
 * };
 * const t = rpnSampledTargets(anchors, [Float32Array.of(0, 0, 10, 10)], new Rng(0));
 * console.log(Array.from(t.sampled), Array.from(t.labels), t.avgFactor); // [0, 1, 2, 3] [1, 0, 0, 0] 4
 * ```
 *
 * @param anchors The anchors of the input (all levels).
 * @param boxes Per image `[G * 4]` xyxy GT boxes.
 * @param rng The generator of the draws (images in order).
 * @param options Thresholds, coder and sampler.
 */
export function rpnSampledTargets(
  anchors: Anchors,
  boxes: readonly Float32Array[],
  rng: Rng,
  options: RpnSampledTargetOptions = {},
): RpnSampledTargets {
  const { assign = RPN_ASSIGN, coder = STOCK_RPN_CODER, sampler = RPN_SAMPLER } = options;
  const numAnchors = anchors.boxes.length / 4;
  const sampled: number[] = [], labels: number[] = [], positives: number[] = [];
  const from: number[] = [], to: number[] = [];
  let avgFactor = 0;
  boxes.forEach((gt, image) => {
    const { gtIndex } = maxIouAssign(anchors.boxes, gt, assign);
    const pos: number[] = [], neg: number[] = [];
    gtIndex.forEach((g, a) => g >= 0 ? pos.push(a) : g === -1 && neg.push(a));
    const drawn = sampleCandidates(pos, neg, sampler, rng);
    for (const a of drawn.positives) {
      const g = gtIndex[a];
      sampled.push(image * numAnchors + a);
      labels.push(1);
      positives.push(image * numAnchors + a);
      from.push(...anchors.boxes.subarray(4 * a, 4 * a + 4));
      to.push(gt[4 * g], gt[4 * g + 1], gt[4 * g + 2], gt[4 * g + 3]);
    }
    for (const a of drawn.negatives) {
      sampled.push(image * numAnchors + a);
      labels.push(0);
    }
    avgFactor += Math.max(drawn.positives.length, 1) + Math.max(drawn.negatives.length, 1);
  });
  return {
    sampled: Int32Array.from(sampled),
    labels: Float32Array.from(labels),
    positives: Int32Array.from(positives),
    deltas: coder.encodeHost(from, to),
    avgFactor,
  };
}

/** Options of {@linkcode rpnBaselineLoss}. */
export interface RpnBaselineLossOptions {
  /** Weight of both terms (the stock Faster R-CNN 1; Co-DETR 12); default 1. */
  weight?: number;
}

/**
 * The stock RPN loss of head outputs against {@linkcode rpnSampledTargets},
 * on the device with no readback: `weight * BCE(drawn logits) / avgFactor`
 * (part `cls`) and `weight * L1(positive deltas) / avgFactor` (part `box`,
 * 0 with a zero gradient without positives).
 *
 * @param out The head's outputs (`cls` `[N, A]`, `reg` `[N, A, 4]`).
 * @param targets The batch's drawn anchors and targets.
 * @param options The weight.
 * @returns The total and its parts `cls` and `box`.
 * @throws {RangeError} When a drawn anchor is outside the outputs.
 */
export function rpnBaselineLoss(
  out: RpnHeadOutput,
  targets: RpnSampledTargets,
  options: RpnBaselineLossOptions = {},
): DetectorLosses {
  const { weight = 1 } = options;
  const [n, numAnchors] = out.cls.shape;
  const backend: Backend = out.cls.backend;
  const bad = targets.sampled.findIndex((i) => !(i >= 0 && i < n * numAnchors));
  if (bad >= 0) {
    throw new RangeError(
      `rpnBaselineLoss: drawn anchor ${bad} has index ${
        targets.sampled[bad]
      }, outside the ${n} x ${numAnchors} outputs`,
    );
  }
  const s = targets.sampled.length, p = targets.positives.length;
  const avgFactor = targets.avgFactor;
  const logits = indexSelect(
    reshape(out.cls, [n * numAnchors]),
    0,
    tensor(targets.sampled, [s], { backend }),
  );
  const cls = mul(
    binaryCrossEntropyWithLogits(logits, tensor(targets.labels, [s], { backend }), {
      reduction: "mean",
      avgFactor,
    }),
    weight,
  );
  const box = p === 0 ? mul(sum(out.reg), 0) : mul(
    l1Loss(
      indexSelect(
        reshape(out.reg, [n * numAnchors, 4]),
        0,
        tensor(targets.positives, [p], { backend }),
      ),
      tensor(targets.deltas, [p, 4], { backend }),
      { reduction: "mean", avgFactor },
    ),
    weight,
  );
  return { total: add(cls, box), parts: { cls, box }, numPositives: p };
}
