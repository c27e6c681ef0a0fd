// Shared by the detector tests: small batches of synthetic shapes, a few SGD steps, blank images.
import assert from "node:assert/strict";
import { join } from "node:path";
import type { DetectorConfig } from "../../configs/types.ts";
import { type Batch, DetectionLoader, memorySource } from "../../data/loader.ts";
import { generateShapes } from "../../data/shapes.ts";
import type { Detector } from "../../detectors/detector.ts";
import type { FasterRcnnModelConfig } from "../../detectors/faster_rcnn.ts";
import { loadModel } from "../../engine/model_io.ts";
import { train } from "../../engine/train.ts";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import type { Optimizer } from "../../tensor/optim/optimizer.ts";
import { SGD } from "../../tensor/optim/sgd.ts";
import { tensor, tidyAsync } from "../../tensor/tensor.ts";

/**
 * One batch of `numImages` generated 64 px shapes images (seed `seed`),
 * unshuffled and unflipped, with GT masks when `withMasks`.
 */
export async function shapesBatch(
  numImages: number,
  seed: number,
  objects?: [number, number],
  withMasks = false,
): Promise<Batch> {
  const split = generateShapes({ numImages, seed, size: 64, objectsPerImage: objects });
  const loader = new DetectionLoader(memorySource(split), {
    batchSize: numImages,
    seed: 0,
    shuffle: false,
    withMasks,
    transform: { shortSide: 64, maxSize: 64, flipProb: 0 },
  });
  const batch = (await loader.epoch(0).next()).value as Batch;
  loader.close();
  return batch;
}

/**
 * `steps` SGD steps (momentum 0.9) of `model` on `batch`; the total loss of
 * each. `maxGradNorm` clips the gradients as the configs do (10).
 */
export async function fitSteps(
  model: Detector,
  batch: Batch,
  steps: number,
  options: { lr: number; maxGradNorm?: number },
): Promise<number[]> {
  const params = model.namedParameters().map(([, p]) => p).filter((p) => p.requiresGrad);
  const opt = new SGD(params, { lr: options.lr, momentum: 0.9, maxGradNorm: options.maxGradNorm });
  return await optimizerSteps(model, batch, steps, opt);
}

/** `steps` steps of `opt` (over `model`'s parameters) on `batch`; the total loss of each. */
export async function optimizerSteps(
  model: Detector,
  batch: Batch,
  steps: number,
  opt: Optimizer,
): Promise<number[]> {
  const totals: number[] = [];
  for (let step = 0; step < steps; step++) {
    const total = await tidyAsync(async () => {
      const l = await model.loss(batch);
      backward(l.total);
      opt.step();
      opt.zeroGrad();
      return l.total;
    });
    totals.push((await total.data())[0]);
    total.dispose();
  }
  return totals;
}

/**
 * Asserts that `model` (in evaluation mode) finds nothing on two blank 64 px
 * images, the second scaled by 0.5, and returns typed arrays for both.
 */
export async function assertBlankDetectsNothing(model: Detector): Promise<void> {
  const blank = tensor(new Float32Array(2 * 3 * 64 * 64), [2, 3, 64, 64], {
    backend: model.backend,
  });
  const results = await model.predict(blank, [[1, 1], [0.5, 0.5]]);
  blank.dispose();
  assert.equal(results.length, 2);
  for (const r of results) {
    assert.ok(
      r.boxes instanceof Float32Array && r.scores instanceof Float32Array &&
        r.labels instanceof Int32Array,
    );
    assert.equal(r.scores.length, 0);
    assert.equal(r.boxes.length, 0);
    assert.equal(r.labels.length, 0);
  }
}

/**
 * Trains `config` (4 steps, seed 5) in one go and cut after 2 steps then
 * resumed, in folders under `dir`; asserts that both give the same weights,
 * bit for bit, and that the checkpoint restores a model of the same kind
 * whose detections on `batch` (64 px) equal the trained model's.
 */
export async function assertResumeIsExact(
  config: DetectorConfig,
  backend: Backend,
  batch: Batch,
  dir: string,
): Promise<void> {
  const common = { config, seed: 5, backend, evaluate: false, write: () => {} };
  const full = await train({ ...common, out: join(dir, "full") });
  await train({ ...common, out: join(dir, "cut"), stopAfter: 2 });
  const resumed = await train({ ...common, out: join(dir, "cut"), resume: true });
  assert.equal(resumed.step, 4);
  const a = full.model.stateDict(), b = resumed.model.stateDict();
  for (const [name, t] of a) {
    assert.deepEqual(await b.get(name)!.data(), await t.data(), `${name} differs after resuming`);
  }
  const restored = await loadModel(join(dir, "full", "checkpoint.safetensors"), backend);
  assert.equal(restored.model.config.kind, config.model.kind);
  const images = tensor(batch.images, [batch.batchSize, 3, 64, 64], { backend });
  full.model.eval();
  const scales = Array.from({ length: batch.batchSize }, () => [1, 1] as [number, number]);
  assert.deepEqual(
    await restored.model.predict(images, scales),
    await full.model.predict(images, scales),
  );
  images.dispose();
}

/**
 * Narrow layers and few proposals on 64 px images: what a two-stage test config changes from the
 * tiny config whose `model` is given (spread over its model).
 */
export function smallTwoStageParts(
  model: Pick<FasterRcnnModelConfig, "backbone" | "rpn" | "roi">,
): Pick<FasterRcnnModelConfig, "backbone" | "neckChannels" | "rpn" | "roi"> {
  return {
    backbone: { ...model.backbone, baseWidth: 8 },
    neckChannels: 16,
    rpn: {
      ...model.rpn,
      featChannels: 16,
      train: { nmsPre: 200, maxPerImage: 32, iouThreshold: 0.7 },
      test: { nmsPre: 200, maxPerImage: 32, iouThreshold: 0.7 },
    },
    roi: { ...model.roi, fcChannels: 32 },
  };
}
