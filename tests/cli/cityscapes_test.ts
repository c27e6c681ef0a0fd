// deno task train and eval on a Cityscapes folder, named by the config or by --data.
import assert from "node:assert/strict";
import { join } from "node:path";
import ATSS_TINY_SHAPES from "../../configs/atss_tiny_shapes.ts";
import type { DetectorConfig } from "../../configs/types.ts";
import { CITYSCAPES_CLASSES } from "../../data/cityscapes.ts";
import { main as evalMain } from "../../cli/eval.ts";
import { main as trainMain } from "../../cli/train.ts";
import { loadModel } from "../../engine/model_io.ts";
import { cpu } from "../../tensor/device.ts";
import { smallTrainSettings } from "../engine/helpers.ts";
import { runCli } from "./helpers.ts";

const ROOT = new URL("../fixtures/cityscapes/", import.meta.url).pathname;

Deno.test("train and eval read a Cityscapes folder when the config's data says so", async (t) => {
  const dir = await Deno.makeTempDir();
  const config: DetectorConfig = {
    ...ATSS_TINY_SHAPES,
    name: "atss_tiny_cityscapes",
    model: { ...ATSS_TINY_SHAPES.model, numClasses: 8 },
    train: smallTrainSettings(1, 1),
    data: { kind: "cityscapes", root: join(dir, "not-here") },
  };
  const configFile = join(dir, "atss_tiny_cityscapes.ts");
  await Deno.writeTextFile(configFile, `export default ${JSON.stringify(config)};\n`);
  const runDir = join(dir, "run");

  await t.step("train --data DIR, then the evaluation on DIR's val split", async () => {
    const r = await runCli(trainMain, [
      "--config",
      configFile,
      "--data",
      ROOT,
      "--out",
      runDir,
      "--backend",
      "cpu",
    ]);
    assert.equal(r.code, 0, r.err);
    const evaluated = JSON.parse(await Deno.readTextFile(join(runDir, "eval.json")));
    assert.equal(evaluated.stats.length, 12);
    const restored = await loadModel(join(runDir, "model_final.safetensors"), cpu());
    assert.deepEqual(restored.classNames, [...CITYSCAPES_CLASSES]);
  });

  await t.step("eval --checkpoint --data DIR", async () => {
    const r = await runCli(evalMain, [
      "--checkpoint",
      join(runDir, "model_final.safetensors"),
      "--data",
      ROOT,
      "--backend",
      "cpu",
      "--no-out",
    ]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /Average Precision/);
  });

  await t.step("without --data the config's missing root is named", async () => {
    const r = await runCli(evalMain, [
      "--checkpoint",
      join(runDir, "model_final.safetensors"),
      "--backend",
      "cpu",
      "--no-out",
    ]);
    assert.equal(r.code, 1);
    assert.match(
      r.err,
      /Cannot load Cityscapes split "val" .*folder ".*not-here\/leftImg8bit\/val" is missing/,
    );
  });
  await Deno.remove(dir, { recursive: true });
});
