/**
 * One training step and the optimiser of a config, shared by {@linkcode train} (files, resuming,
 * metrics) and callers that keep everything in memory, such as the browser demo (`web/`).
 *
 * @module
 */

import type { Batch } from "../data/loader.ts";
import type { TrainSettings } from "../configs/types.ts";
import type { Detector } from "../detectors/detector.ts";
import { backward } from "../tensor/autograd.ts";
import { stack } from "../tensor/ops/concat.ts";
import { reshape } from "../tensor/ops/shape.ts";
import type { Optimizer } from "../tensor/optim/optimizer.ts";
import {
  composeSchedules,
  linearWarmup,
  type LrSchedule,
  multiStepSchedule,
} from "../tensor/optim/schedules.ts";
import { type Tensor, tidyAsync } from "../tensor/tensor.ts";
import { buildOptimizer } from "./optimizer.ts";

/** The optimiser of a run and its learning-rate factor per step. */
export interface TrainingOptimizer {
  /**
   * SGD or AdamW (`settings.optimizer`) over the model's trainable parameters, with the
   * settings' momentum, decay, clipping and per-parameter learning-rate factors.
   */
  optimizer: Optimizer;
  /** Factor of `settings.lr` at a step: linear warm-up (none when `warmup.iters` is 0), then the step schedule. */
  schedule: LrSchedule;
}

/**
 * The optimiser ({@linkcode buildOptimizer}) and learning-rate schedule that `settings` describe,
 * over `model`'s trainable parameters.
 *
 * @example The default config's schedule
 * ```ts
 * import { trainingOptimizer } from "./train_step.ts";
 * import { ATSS_TINY_SHAPES } from "../configs/atss_tiny_shapes.ts";
 * import { buildDetector } from "../detectors/build.ts";
 * import { cpu } from "../tensor/device.ts";
 * import assert from "node:assert/strict";
 *
 * const model = buildDetector(ATSS_TINY_SHAPES.model, { seed: 0, backend: cpu() });
 * const { optimizer, schedule } = trainingOptimizer(model, ATSS_TINY_SHAPES.train);
 * assert.equal(schedule(0), 0.001); // warm-up starts at 0.1% of the learning rate
 * assert.ok(Math.abs(schedule(14000) - 0.01) < 1e-12); // after both milestones
 * optimizer.lr = ATSS_TINY_SHAPES.train.lr * schedule(0);
 * ```
 *
 * @param model The detector to train.
 * @param settings Learning rate, momentum, weight decay, gradient clipping, warm-up, milestones.
 */
export function trainingOptimizer(model: Detector, settings: TrainSettings): TrainingOptimizer {
  const params = model.namedParameters().filter(([, p]) => p.requiresGrad);
  const optimizer = buildOptimizer(params, settings);
  // `warmup.iters: 0` trains without warm-up (the DETR configs).
  const schedule = composeSchedules(
    ...(settings.warmup.iters > 0
      ? [linearWarmup(settings.warmup.iters, settings.warmup.factor)]
      : []),
    multiStepSchedule(settings.milestones, settings.gamma),
  );
  return { optimizer, schedule };
}

/** What {@linkcode trainStep} hands back. */
export interface StepLosses {
  /** Names of the loss parts, in the order of `values[1..]`. */
  names: string[];
  /** `[1 + names.length]`: the total loss, then each part; still on the device (read it when logging). */
  values: Tensor;
  /** Positive anchors or proposals of the batch. */
  positives: number;
}

/**
 * One optimiser step on one batch: forward, backward, update, zeroed gradients; every temporary
 * tensor is released. The caller disposes `values` once read.
 *
 * @example One step on two generated images, on the CPU
 * ```ts
 * import { trainingOptimizer, trainStep } from "./train_step.ts";
 * import { ATSS_TINY_SHAPES } from "../configs/atss_tiny_shapes.ts";
 * import { DetectionLoader, memorySource } from "../data/loader.ts";
 * import { generateShapes } from "../data/shapes.ts";
 * import { buildDetector } from "../detectors/build.ts";
 * import { cpu } from "../tensor/device.ts";
 * import assert from "node:assert/strict";
 *
 * const model = buildDetector(ATSS_TINY_SHAPES.model, { seed: 0, backend: cpu() });
 * const { optimizer } = trainingOptimizer(model, ATSS_TINY_SHAPES.train);
 * const images = memorySource(generateShapes({ numImages: 2, seed: 0, size: 64 }));
 * const loader = new DetectionLoader(images, { batchSize: 2, seed: 0, transform: { shortSide: 64 } });
 * for await (const batch of loader.epoch(0)) {
 *   const step = await trainStep(model, batch, optimizer);
 *   assert.deepEqual(step.names, ["rank", "sort", "box"]); // ATSS with the BRS loss
 *   const [total, ...parts] = await step.values.data();
 *   assert.ok(Math.abs(total - parts.reduce((a, b) => a + b)) < 1e-4);
 *   step.values.dispose();
 * }
 * loader.close();
 * ```
 *
 * @param model The detector, in training mode.
 * @param batch One batch from a {@linkcode DetectionLoader}.
 * @param optimizer Its optimiser (learning rate already set for this step).
 */
export function trainStep(
  model: Detector,
  batch: Batch,
  optimizer: Optimizer,
): Promise<StepLosses> {
  return tidyAsync(async () => {
    const losses = await model.loss(batch);
    backward(losses.total);
    optimizer.step();
    optimizer.zeroGrad();
    const names = Object.keys(losses.parts);
    return {
      names,
      values: stack([
        reshape(losses.total, [1]),
        ...names.map((n) => reshape(losses.parts[n], [1])),
      ]),
      positives: losses.numPositives,
    };
  });
}
