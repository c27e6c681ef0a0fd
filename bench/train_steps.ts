/**
 * Training steps of a config for the benches: the detector, its SGD and the first batches of
 * the synthetic shapes on one backend, and a function that runs step `k` (batch `k` modulo the
 * batches made). Shared by `train_step_profile.ts` and `mesa25/bind_groups_ab.ts`.
 *
 * @example
 * ```ts ignore
 * const step = await trainSteps(backend, { config: await loadConfig("atss_tiny_shapes"), batches: 4 });
 * await step(0); // compiles every kernel
 * await backend.sync();
 * ```
 *
 * @module
 */

import type { DetectorConfig } from "../configs/types.ts";
import { type Batch, DetectionLoader, memorySource } from "../data/loader.ts";
import { generateShapes } from "../data/shapes.ts";
import { buildDetector } from "../detectors/build.ts";
import { backward } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { SGD } from "../tensor/optim/sgd.ts";
import { tidyAsync } from "../tensor/tensor.ts";

/** What {@linkcode trainSteps} builds. */
export interface TrainStepsOptions {
  /** The config whose model and training settings (momentum, decay, clipping) are used. */
  config: DetectorConfig;
  /** Distinct batches to cycle through. */
  batches: number;
  /** Images per batch (default: the config's). */
  batchSize?: number;
}

/**
 * Builds `config`'s detector (seed 0) and SGD on `backend` and `batches` batches of 128 px
 * shapes; returns the step function (forward, backward, SGD step, all inside `tidyAsync`).
 *
 * @param backend Where the model lives.
 * @param options The config and the batches.
 * @returns `step(k)`: one training step on batch `k % batches`.
 */
export async function trainSteps(
  backend: Backend,
  { config, batches, batchSize = config.train.batchSize }: TrainStepsOptions,
): Promise<(k: number) => Promise<void>> {
  const model = buildDetector(config.model, { seed: 0, backend });
  const optimizer = new SGD(model.namedParameters().filter(([, p]) => p.requiresGrad), {
    lr: 1e-3,
    momentum: config.train.momentum,
    weightDecay: config.train.weightDecay,
    maxGradNorm: config.train.maxGradNorm,
  });
  const split = generateShapes({ numImages: batchSize * batches, seed: 1, size: 128 });
  const loader = new DetectionLoader(memorySource(split), { batchSize, seed: 0, shuffle: false });
  const made: Batch[] = [];
  for await (const batch of loader.epoch(0)) made.push(batch);
  loader.close();
  return async (k) => {
    await tidyAsync(async () => {
      backward((await model.loss(made[k % made.length])).total);
      optimizer.step();
      optimizer.zeroGrad();
    });
  };
}
