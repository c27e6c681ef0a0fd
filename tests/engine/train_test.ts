import assert from "node:assert/strict";
import { join } from "node:path";
import ATSS_TINY_SHAPES from "../../configs/atss_tiny_shapes.ts";
import type { DetectorConfig } from "../../configs/types.ts";
import { SHAPE_CLASSES } from "../../data/shapes.ts";
import { loadSplits } from "../../engine/data_splits.ts";
import { lrpScoreThresholds } from "../../engine/evaluate.ts";
import { CLASS_NAMES_KEY, SCORE_THRESHOLDS_KEY } from "../../engine/model_io.ts";
import { train } from "../../engine/train.ts";
import { evaluateLrp } from "../../eval/lrp.ts";
import { cpu } from "../../tensor/device.ts";
import { loadSafetensors } from "../../tensor/safetensors.ts";
import { smallTrainSettings } from "./helpers.ts";

const SHAPES = ATSS_TINY_SHAPES;

/** The default model on 64 px images with 2 val images: training stops after 2 steps. */
const SMALL: DetectorConfig = {
  ...SHAPES,
  train: smallTrainSettings(2, 1),
  data: { kind: "shapes", train: 4, val: 2, size: 64, seed: 3 },
};

Deno.test("train: the final checkpoint stores each class's oLRP threshold", async () => {
  const dir = await Deno.makeTempDir();
  const result = await train({ config: SMALL, seed: 1, out: dir, backend: cpu(), write: () => {} });
  const { metadata } = await loadSafetensors(join(dir, "model_final.safetensors"));
  const stored = JSON.parse(metadata[SCORE_THRESHOLDS_KEY]);
  assert.deepEqual(stored, result.eval!.scoreThresholds);
  assert.equal(stored.length, SHAPE_CLASSES.length);
  assert.deepEqual(JSON.parse(metadata[CLASS_NAMES_KEY]), [...SHAPE_CLASSES]);
  assert.equal(metadata.step, "2");
  // The same thresholds as LRP gives on the saved val detections.
  const { valDataset } = await loadSplits(SMALL);
  const dets = JSON.parse(await Deno.readTextFile(join(dir, "val_detections.json")));
  assert.deepEqual(lrpScoreThresholds(valDataset, evaluateLrp(valDataset, dets)), stored);
  const report = JSON.parse(await Deno.readTextFile(join(dir, "eval.json")));
  assert.deepEqual(report.perClass.map((c: { name: string }) => c.name), [...SHAPE_CLASSES]);
  assert.deepEqual(
    report.perClass.map((c: { scoreThreshold: number | null }) => c.scoreThreshold),
    stored,
  );
  const resume = await loadSafetensors(join(dir, "checkpoint.safetensors"));
  assert.equal(resume.metadata[SCORE_THRESHOLDS_KEY], undefined, "only the final model has them");
  await Deno.remove(dir, { recursive: true });
});
