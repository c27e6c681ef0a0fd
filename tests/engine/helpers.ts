// Shared by the tests of the engine and the task entry points.
import { join } from "node:path";
import ATSS_TINY_SHAPES from "../../configs/atss_tiny_shapes.ts";
import type { DetectorConfig, TrainSettings } from "../../configs/types.ts";
import { buildDetector } from "../../detectors/build.ts";
import { cpu } from "../../tensor/device.ts";
import { saveCheckpoint } from "../../tensor/safetensors.ts";

/** Saves a random-weight checkpoint of `config` (default: the default config; no thresholds) in `dir`; returns its path. */
export async function randomCheckpoint(
  dir: string,
  config: DetectorConfig = ATSS_TINY_SHAPES,
): Promise<string> {
  const model = buildDetector(config.model, { seed: 3, backend: cpu() });
  const checkpoint = join(dir, `random_${config.name}.safetensors`);
  await saveCheckpoint(checkpoint, {
    model,
    metadata: {
      step: 0,
      seed: 3,
      config: config.name,
      detector: config.model.kind,
      loss: config.model.loss,
    },
  });
  return checkpoint;
}

/**
 * Training settings of the default config cut down for test runs: 64 px
 * images, 2 per batch, `iters` steps with one milestone, a checkpoint every 2
 * steps and a log line every step.
 */
export function smallTrainSettings(iters: number, milestone: number): TrainSettings {
  return {
    ...ATSS_TINY_SHAPES.train,
    batchSize: 2,
    iters,
    milestones: [milestone],
    warmup: { iters: 1, factor: 0.5 },
    shortSide: 64,
    maxSize: 64,
    checkpointEvery: 2,
    logEvery: 1,
  };
}
