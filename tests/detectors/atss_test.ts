import assert from "node:assert/strict";
import { join } from "node:path";
import type { DetectorConfig } from "../../configs/types.ts";
import ATSS_TINY_SHAPES from "../../configs/atss_tiny_shapes.ts";
import { generateShapes } from "../../data/shapes.ts";
import { DetectionLoader, memorySource } from "../../data/loader.ts";
import { type AtssModelConfig, buildAtss } from "../../detectors/atss.ts";
import { train } from "../../engine/train.ts";
import { loadModel } from "../../engine/model_io.ts";
import { loadCheckpoint, saveCheckpoint } from "../../tensor/safetensors.ts";
import { tensor } from "../../tensor/tensor.ts";
import type { Backend } from "../../tensor/backend.ts";
import { smallTrainSettings } from "../engine/helpers.ts";
import { assertBlankDetectsNothing, fitSteps } from "./helpers.ts";
import { CPU, GPU, gpuBackend, NATIVE, nativeBackend } from "../tensor/helpers.ts";

/** A model and data small enough for tests: 64 px images, narrow layers. */
const SMALL: DetectorConfig<AtssModelConfig> = {
  ...ATSS_TINY_SHAPES,
  name: "atss_test_small",
  model: {
    ...ATSS_TINY_SHAPES.model,
    backbone: { ...ATSS_TINY_SHAPES.model.backbone, baseWidth: 8 },
    neckChannels: 16,
    head: { ...ATSS_TINY_SHAPES.model.head, featChannels: 16, stackedConvs: 1, normGroups: 4 },
    anchors: { ...ATSS_TINY_SHAPES.model.anchors, strides: [8, 16, 32] },
    // The stock threshold: an untrained head scores everything at its 0.01 prior.
    test: { ...ATSS_TINY_SHAPES.model.test, scoreThr: 0.05 },
  },
  train: smallTrainSettings(4, 3),
  data: { kind: "shapes", train: 8, val: 2, size: 64, seed: 3 },
};

/** The backends the ATSS tests run on: WebGPU where there is an adapter (else the CPU), and native. */
const BACKENDS: Backend[] = [GPU ? await gpuBackend() : CPU, ...(NATIVE ? [nativeBackend()] : [])];

async function firstBatch(config: DetectorConfig) {
  const split = generateShapes({ numImages: 4, seed: 11, size: 64 });
  const loader = new DetectionLoader(memorySource(split), {
    batchSize: config.train.batchSize,
    seed: 0,
    shuffle: false,
    transform: { shortSide: 64, maxSize: 64, flipProb: 0 },
  });
  const batch = (await loader.epoch(0).next()).value!;
  loader.close();
  return batch;
}

Deno.test("ATSS: bad input gives clear errors", async () => {
  const backend = BACKENDS[0];
  const model = buildAtss(SMALL.model, { seed: 0, backend });
  assert.throws(
    () => model.forward(tensor(new Float32Array(2 * 64 * 32), [2, 1, 64, 32], { backend })),
    /expected f32 images \[N, 3, H, W\]/,
  );
  assert.throws(
    () => model.forward(tensor(new Float32Array(3 * 40 * 40), [1, 3, 40, 40], { backend })),
    /not a multiple of 32/,
  );
  assert.throws(
    () => buildAtss({ ...SMALL.model, loss: "hinge" as "brs" }, { seed: 0, backend }),
    /unknown loss "hinge"/,
  );
  const dir = await Deno.makeTempDir();
  const other = buildAtss({ ...SMALL.model, numClasses: 3 }, { seed: 0, backend });
  const path = join(dir, "other.safetensors");
  await saveCheckpoint(path, {
    model: other,
    metadata: { step: 0, seed: 0, config: "atss_tiny_shapes", loss: "brs" },
  });
  await assert.rejects(() => loadModel(path, backend), /loadStateDict: "[a-z_0-9.]+"/);
  await Deno.remove(dir, { recursive: true });
});

for (const backend of BACKENDS) {
  Deno.test(`ATSS: a few steps on one batch lower each loss (${backend.name})`, async (t) => {
    const batch = await firstBatch(SMALL);
    for (const loss of ["brs", "focal"] as const) {
      await t.step(loss, async () => {
        const model = buildAtss({ ...SMALL.model, loss }, { seed: 1, backend });
        const totals = await fitSteps(model, batch, 8, { lr: 0.01 });
        assert.ok(totals.every(Number.isFinite), `non-finite loss: ${totals}`);
        assert.ok(
          totals.at(-1)! < totals[0],
          `${loss} loss did not fall: ${totals.map((v) => v.toFixed(4))}`,
        );
      });
    }
  });

  Deno.test(`ATSS: predict on an image with no objects gives typed, empty results (${backend.name})`, async () => {
    const model = buildAtss(SMALL.model, { seed: 0, backend });
    model.eval();
    await assertBlankDetectsNothing(model);
  });

  Deno.test(`ATSS training: checkpoint round trip and resume give the same model (${backend.name})`, async () => {
    const dir = await Deno.makeTempDir();
    const quiet = () => {};
    const full = await train({
      config: SMALL,
      seed: 5,
      out: join(dir, "full"),
      backend,
      evaluate: false,
      write: quiet,
    });
    await train({
      config: SMALL,
      seed: 5,
      out: join(dir, "cut"),
      backend,
      evaluate: false,
      stopAfter: 2,
      write: quiet,
    });
    const resumed = await train({
      config: SMALL,
      seed: 5,
      out: join(dir, "cut"),
      backend,
      evaluate: false,
      resume: true,
      write: quiet,
    });
    assert.equal(full.step, 4);
    assert.equal(resumed.step, 4);
    const a = full.model.stateDict(), b = resumed.model.stateDict();
    for (const [name, t] of a) {
      assert.deepEqual(await b.get(name)!.data(), await t.data(), `${name} differs after resuming`);
    }
    // The checkpoint restores a model that predicts exactly what the trained one does.
    const restored = buildAtss(SMALL.model, { seed: 99, backend });
    await loadCheckpoint(join(dir, "full", "checkpoint.safetensors"), { model: restored });
    const batch = await firstBatch(SMALL);
    full.model.eval();
    restored.eval();
    const images = tensor(batch.images, [2, 3, 64, 64], { backend });
    const p1 = await full.model.predict(images, [[1, 1], [1, 1]]);
    const p2 = await restored.predict(images, [[1, 1], [1, 1]]);
    assert.deepEqual(p2, p1);
    const metrics = (await Deno.readTextFile(join(dir, "cut", "metrics.jsonl"))).trim().split("\n");
    assert.deepEqual(metrics.map((l) => JSON.parse(l).step), [1, 2, 3, 4]);
    await Deno.remove(dir, { recursive: true });
  });
}

Deno.test("ATSS focal: a detection's score is its class score times the sigmoid of its centerness", async () => {
  const backend = BACKENDS[0];
  const test = { ...SMALL.model.test, scoreThr: 0 };
  const model = buildAtss({ ...SMALL.model, loss: "focal", test }, { seed: 0, backend });
  model.eval();
  const batch = await firstBatch(SMALL);
  const images = tensor(batch.images, [2, 3, 64, 64], { backend });
  const out = model.forward(images);
  const [cls, ctr] = await Promise.all([out.cls.data(), out.centerness!.data()]);
  const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
  // 64 px images have fewer (anchor, class) pairs per level than nmsPre: the best product survives.
  const classes = SMALL.model.numClasses, anchors = out.cls.shape[1];
  let best = 0;
  for (let a = 0; a < anchors; a++) {
    for (let c = 0; c < classes; c++) {
      best = Math.max(best, sigmoid(cls[a * classes + c]) * sigmoid(ctr[a]));
    }
  }
  const [first] = await model.predict(images, [[1, 1], [1, 1]]);
  assert.ok(Math.abs(first.scores[0] - best) < 1e-6, `${first.scores[0]} vs ${best}`);
  for (const s of first.scores) assert.ok(s > 0 && s < 1);
});
