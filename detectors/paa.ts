/**
 * PAA (Kim & Lee, ECCV 2020: probabilistic anchor assignment) trained with a
 * ranking-based loss (BRS by default; RS, BAP, AP) or, for comparison, as
 * stock PAA with the focal loss and an IoU-prediction branch
 * (docs/departures.md, R5). {@linkcode buildPaa} builds the parts (ResNet
 * backbone, FPN, the ATSS head, with its 1-channel branch only for `focal`)
 * and picks the loss from the typed table of `paa_losses.ts`.
 *
 * A training step: the forward pass; the first-stage candidates by max IoU
 * (host); each candidate's score, focal + weighted GIoU, on the device and
 * read back (the step's one readback, so {@linkcode Paa.loss} is truly
 * asynchronous); the GMM re-assignment per image (host, timed); the loss of
 * the surviving positives on the device. Inference: per level the top
 * `nmsPre` anchors by their best class score, decoded, read back once per
 * batch; then per image, on the host, the candidates above the score
 * threshold, class-wise NMS, the first `maxPerImage`, and score voting.
 *
 * @module
 */

import type { Batch } from "../data/loader.ts";
import { batchedNmsHost } from "../boxes/nms.ts";
import { noGrad } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { concat } from "../tensor/ops/concat.ts";
import { mul, sigmoid, sqrt } from "../tensor/ops/elementwise.ts";
import { indexSelect } from "../tensor/ops/index.ts";
import { max } from "../tensor/ops/reduce.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { topk } from "../tensor/ops/sort.ts";
import { type Tensor, tidy } from "../tensor/tensor.ts";
import {
  AnchorDetector,
  type AnchorDetectorConfig,
  type AnchorDetectorParts,
  buildAnchorParts,
} from "./anchor_detector.ts";
import type { AtssTargets } from "./atss_targets.ts";
import type { Detector, DetectorLosses } from "./detector.ts";
import type { AtssHeadOutput } from "./heads/atss_head.ts";
import { type PaaLoss, paaLoss, type PaaLossEntry, reassignScores } from "./paa_losses.ts";
import {
  type PaaCandidates,
  paaCandidates,
  paaReassignBatch,
  type PaaReassignment,
} from "./paa_targets.ts";
import type { Detections } from "./postprocess.ts";
import { scoreVoting } from "./score_voting.ts";

/** PAA's inference settings. */
export interface PaaTestSettings {
  /** Anchors kept per level (by their best class score) before NMS (1000). */
  nmsPre: number;
  /** Candidates must score above this, for NMS and for voting (COCO: 0.05). */
  scoreThr: number;
  /** Class-wise NMS IoU threshold (0.6). */
  iouThreshold: number;
  /** Detections per image (100). */
  maxPerImage: number;
  /** Whether to apply score voting after NMS (on in every PAA config). */
  scoreVoting: boolean;
}

/** Everything that defines a PAA model. */
export interface PaaModelConfig extends AnchorDetectorConfig {
  /** Detector kind. */
  kind: "paa";
  /** Candidates per GT and pyramid level that the GMM sees (9). */
  topk: number;
  /** The loss. */
  loss: PaaLoss;
  /** δ of the ranking loss; default 0.5 for every ranking loss (docs/departures.md, Q20). */
  delta?: number;
  /** Inference settings. */
  test: PaaTestSettings;
}

/** The parts a {@linkcode Paa} is composed of. */
export interface PaaParts extends AnchorDetectorParts {
  /** The loss (with its re-assignment constants). */
  loss: PaaLossEntry;
}

/** The loss of a batch, with what the re-assignment did. */
export interface PaaLosses extends DetectorLosses {
  /** Host milliseconds spent fitting the GMMs this step. */
  gmmMs: number;
  /** First-stage candidates in the batch (before re-assignment). */
  numCandidates: number;
}

/** A batch's assignment: candidates, their scores and the re-assignment. */
export interface PaaAssignment extends PaaReassignment {
  /** The first-stage candidates. */
  candidates: PaaCandidates;
  /** `[P]` each candidate's score (read back from the device). */
  scores: Float32Array;
}

/**
 * Builds a PAA model: the backbone, neck and head with weights drawn from
 * `seed` (in that order; the head has the IoU branch only for `focal`), and
 * the configured loss from the loss table.
 *
 * @example Build the tiny model and train one step
 * ```ts ignore
 * import { buildPaa } from "./paa.ts";
 * import { PAA_TINY_SHAPES } from "../configs/paa_tiny_shapes.ts";
 * const model = buildPaa(PAA_TINY_SHAPES.model, { seed: 0 });
 * const { total, gmmMs } = await model.loss(batch);
 * ```
 *
 * @throws {RangeError} When the config names an unknown loss.
 */
export function buildPaa(
  config: PaaModelConfig,
  options: { seed: number; backend?: Backend },
): Paa {
  const loss = paaLoss(config.loss);
  const { backend, ...parts } = buildAnchorParts(config, {
    ...options,
    extraBranch: loss.centerness,
  });
  return new Paa(config, { ...parts, loss }, backend);
}

/**
 * The PAA detector, composed of its parts (see {@linkcode buildPaa}).
 *
 * @example
 * ```ts ignore
 * const model = new Paa(config, { backbone, neck, head, loss: paaLoss("brs") }, backend);
 * ```
 */
export class Paa extends AnchorDetector<PaaModelConfig> implements Detector {
  readonly #loss: PaaLossEntry;

  /** Composes the model of `parts`, whose weights live on `backend`. */
  constructor(config: PaaModelConfig, parts: PaaParts, backend: Backend) {
    super(config, parts, backend, "Paa");
    this.#loss = parts.loss;
  }

  /**
   * The training loss of a batch (docs/departures.md, R5): first-stage
   * candidates, their scores (one readback), the GMM re-assignment, then the
   * configured loss on the survivors. A batch with no positive left gets the
   * official heads' result ({@linkcode PaaLossEntry.empty}). Run it in
   * `tidyAsync`.
   */
  async loss(batch: Batch): Promise<PaaLosses> {
    const out = this.forward(this.images(batch));
    const assignment = await this.assign(out, batch);
    return {
      ...this.lossFromOutputs(out, assignment.targets),
      gmmMs: assignment.gmmMs,
      numCandidates: assignment.candidates.index.length,
    };
  }

  /**
   * PAA's assignment of a batch against head outputs: the first-stage
   * candidates ({@linkcode paaCandidates}), their scores on the device
   * ({@linkcode reassignScores}, read back once) and the per-image GMM
   * re-assignment ({@linkcode paaReassignBatch}).
   *
   * @throws {RangeError} When a score is not finite (the head diverged).
   */
  async assign(out: AtssHeadOutput, batch: Batch): Promise<PaaAssignment> {
    const [n, numAnchors] = out.cls.shape;
    const { host } = this.anchors(batch.height, batch.width);
    const candidates = paaCandidates(host, batch.boxes, batch.labels);
    let scores: Float32Array = new Float32Array(0);
    if (candidates.index.length > 0) {
      const device = reassignScores(
        reshape(out.cls, [n * numAnchors, this.config.numClasses]),
        reshape(out.reg, [n * numAnchors, 4]),
        candidates,
        this.coder,
        this.#loss.scoreBoxWeight,
      );
      scores = (await device.data()) as Float32Array;
      device.dispose();
    }
    const reassigned = paaReassignBatch(candidates, scores, host.perLevel, {
      topk: this.config.topk,
      gmm: { regCovar: this.#loss.regCovar },
    });
    return { ...reassigned, candidates, scores };
  }

  /** The loss of head outputs against the re-assigned positives. */
  lossFromOutputs(out: AtssHeadOutput, targets: AtssTargets): DetectorLosses {
    if (targets.index.length > 0) {
      return this.#loss.compute(this.lossInputs(out, targets, this.config.delta));
    }
    const [n, numAnchors] = out.cls.shape;
    return this.#loss.empty(out, reshape(out.cls, [n * numAnchors, this.config.numClasses]));
  }

  /**
   * Detections for `images` `[N, 3, H, W]`, in the coordinates of each original
   * image (`scales[i]` is `[scaleX, scaleY]`, resized / original), sorted by
   * descending score. Scores are the sigmoid class scores (stock PAA:
   * `sqrt(score * sigmoid(iou))`). One readback for the batch.
   */
  async predict(images: Tensor, scales: readonly [number, number][]): Promise<Detections[]> {
    const [n, , h, w] = images.shape;
    const anchors = this.anchors(h, w);
    const { test, numClasses } = this.config;
    const width = 4 + numClasses;
    const packed = noGrad(() =>
      tidy(() => {
        const out = this.forward(images);
        const rows: Tensor[] = [];
        for (let i = 0; i < n; i++) {
          for (const level of this.imageLevels(out, i, anchors)) {
            let scores = sigmoid(level.logits);
            if (level.extraLogits) {
              const iou = reshape(sigmoid(level.extraLogits), [level.logits.shape[0], 1]);
              scores = sqrt(mul(scores, iou));
            }
            let { deltas, anchors: priors } = level;
            if (scores.shape[0] > test.nmsPre) {
              const best = topk(max(scores, 1), test.nmsPre).indices;
              scores = indexSelect(scores, 0, best);
              deltas = indexSelect(deltas, 0, best);
              priors = indexSelect(priors, 0, best);
            }
            rows.push(concat([this.coder.decode(priors, deltas, [h, w]), scores], 1));
          }
        }
        return concat(rows, 0);
      })
    );
    const data = (await packed.data()) as Float32Array;
    packed.dispose();
    const perImage = packed.shape[0] / n;
    return Array.from(
      { length: n },
      (_, i) =>
        this.#postprocess(data.subarray(i * perImage * width, (i + 1) * perImage * width), {
          width,
          scale: scales[i],
        }),
    );
  }

  /** One image's candidates `[K, 4 + C]` (boxes, class scores) to detections. */
  #postprocess(rows: Float32Array, o: { width: number; scale: readonly [number, number] }) {
    const { test, numClasses } = this.config;
    const k = rows.length / o.width;
    const boxes: number[] = [], scores: number[] = [], labels: number[] = [];
    for (let r = 0; r < k; r++) {
      for (let c = 0; c < numClasses; c++) {
        const s = rows[r * o.width + 4 + c];
        if (!(s > test.scoreThr)) continue;
        const b = r * o.width;
        boxes.push(
          rows[b] / o.scale[0],
          rows[b + 1] / o.scale[1],
          rows[b + 2] / o.scale[0],
          rows[b + 3] / o.scale[1],
        );
        scores.push(s);
        labels.push(c);
      }
    }
    const candidates: Detections = {
      boxes: Float32Array.from(boxes),
      scores: Float32Array.from(scores),
      labels: Int32Array.from(labels),
    };
    const keep = batchedNmsHost(candidates.boxes, candidates.scores, candidates.labels, {
      iouThreshold: test.iouThreshold,
      maxOutput: test.maxPerImage,
    });
    const kept: Detections = {
      boxes: Float32Array.from(
        { length: 4 * keep.length },
        (_, j) => candidates.boxes[4 * keep[j >> 2] + (j & 3)],
      ),
      scores: Float32Array.from(keep, (j) => candidates.scores[j]),
      labels: Int32Array.from(keep, (j) => candidates.labels[j]),
    };
    return test.scoreVoting ? scoreVoting(kept, candidates) : kept;
  }
}
