// A run trained from a config file loads for detect and eval after the file is gone.
import assert from "node:assert/strict";
import { join } from "node:path";
import ATSS_TINY_SHAPES from "../../configs/atss_tiny_shapes.ts";
import type { DetectorConfig } from "../../configs/types.ts";
import { generateShapesSplits, writeShapes } from "../../data/shapes.ts";
import { main as detectMain } from "../../cli/detect.ts";
import { main as evalMain } from "../../cli/eval.ts";
import { main as trainMain } from "../../cli/train.ts";
import { loadModel } from "../../engine/model_io.ts";
import { cpu } from "../../tensor/device.ts";
import { smallTrainSettings } from "../engine/helpers.ts";
import { runCli } from "./helpers.ts";

/** Runs a CLI `main` with console output captured. */
const run = runCli;

const MY_CONFIG: DetectorConfig = {
  ...ATSS_TINY_SHAPES,
  name: "my_config",
  train: smallTrainSettings(2, 1),
  data: { kind: "shapes", train: 4, val: 2, size: 64, seed: 3 },
};

Deno.test("a checkpoint trained from a config file that is gone loads for detect and eval", async (t) => {
  const dir = await Deno.makeTempDir();
  const configFile = join(dir, "my_config.ts");
  await Deno.writeTextFile(configFile, `export default ${JSON.stringify(MY_CONFIG)};\n`);
  const runDir = join(dir, "run");
  const trained = await run(trainMain, [
    "--config",
    configFile,
    "--out",
    runDir,
    "--backend",
    "cpu",
    "--no-eval",
  ]);
  assert.equal(trained.code, 0, trained.err);
  const checkpoint = join(runDir, "checkpoint.safetensors");
  const other = join(dir, "other.ts");
  const differing = structuredClone(MY_CONFIG);
  differing.model.numClasses += 1;
  await Deno.writeTextFile(other, `export default ${JSON.stringify(differing)};\n`);
  await Deno.remove(configFile);

  const data = join(dir, "val_only");
  const { val } = generateShapesSplits({ seed: 5, train: 1, val: 2, size: 64 });
  await writeShapes(data, "val", val);

  await t.step("the model is built from the stored config", async () => {
    const restored = await loadModel(checkpoint, cpu());
    assert.equal(restored.config.name, "my_config");
    assert.deepEqual(restored.config.data, MY_CONFIG.data);
  });

  await t.step("detect", async () => {
    const image = join(data, "val", val.dataset.images[0].file_name);
    const r = await run(detectMain, [
      "--checkpoint",
      checkpoint,
      "--out",
      join(dir, "detections"),
      "--backend",
      "cpu",
      image,
    ]);
    assert.equal(r.code, 0, r.err);
    await Deno.stat(join(dir, "detections", "detections.json"));
  });

  await t.step("eval with a data folder holding only the val split", async () => {
    const r = await run(evalMain, [
      "--checkpoint",
      checkpoint,
      "--data",
      data,
      "--backend",
      "cpu",
      "--no-out",
    ]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /Average Precision/);
  });

  await t.step("a differing --config is an error naming the field", async () => {
    const r = await run(evalMain, [
      "--checkpoint",
      checkpoint,
      "--data",
      data,
      "--config",
      other,
      "--backend",
      "cpu",
      "--no-out",
    ]);
    assert.equal(r.code, 1);
    assert.match(r.err, /differs from config "my_config" in model\.numClasses/);
    const d = await run(detectMain, [
      "--checkpoint",
      checkpoint,
      "--config",
      other,
      "--out",
      join(dir, "detections2"),
      "--backend",
      "cpu",
      join(data, "val", val.dataset.images[0].file_name),
    ]);
    assert.notEqual(d.code, 0);
    assert.match(d.err, /model\.numClasses/);
  });

  await t.step(
    "a --config differing only in training fields passes",
    async () => {
      const same = join(dir, "same.ts");
      await Deno.writeTextFile(
        same,
        `export default ${
          JSON.stringify({ ...MY_CONFIG, train: { ...MY_CONFIG.train, iters: 9 } })
        };\n`,
      );
      const restored = await loadModel(checkpoint, cpu(), same);
      assert.equal(restored.config.train.iters, 2);
    },
  );
  await Deno.remove(dir, { recursive: true });
});
