import assert from "node:assert/strict";
import { join } from "node:path";
import { generateShapesSplits, SHAPE_CLASSES, writeShapes } from "../../data/shapes.ts";
import { lrpScoreThresholds } from "../../engine/evaluate.ts";
import { evaluateCheckpoint } from "../../engine/evaluate_run.ts";
import { loadModel } from "../../engine/model_io.ts";
import { evaluateLrp } from "../../eval/lrp.ts";
import { cpu } from "../../tensor/device.ts";
import { randomCheckpoint } from "./helpers.ts";

Deno.test("eval --checkpoint --store-thresholds stores them in the checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const checkpoint = await randomCheckpoint(dir);
  const data = join(dir, "shapes");
  const { train: trainSplit, val } = generateShapesSplits({ seed: 4, train: 1, val: 3, size: 64 });
  await writeShapes(data, "train", trainSplit);
  await writeShapes(data, "val", val);
  const out = join(dir, "eval");
  const { text } = await evaluateCheckpoint({
    checkpoint,
    data,
    backend: "cpu",
    out,
    storeThresholds: true,
  });
  assert.match(text, /Stored oLRP-optimal score thresholds/);
  const dets = JSON.parse(await Deno.readTextFile(join(out, "detections.json")));
  const expected = lrpScoreThresholds(val.dataset, evaluateLrp(val.dataset, dets));
  const restored = await loadModel(checkpoint, cpu());
  assert.deepEqual(restored.scoreThresholds, expected);
  assert.deepEqual(restored.classNames, [...SHAPE_CLASSES]);
  await Deno.remove(dir, { recursive: true });
});
