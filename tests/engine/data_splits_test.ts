import assert from "node:assert/strict";
import { join } from "node:path";
import ATSS_TINY_SHAPES from "../../configs/atss_tiny_shapes.ts";
import type { DetectorConfig } from "../../configs/types.ts";
import { loadCityscapes } from "../../data/cityscapes.ts";
import { loadSplits, loadValSplit } from "../../engine/data_splits.ts";

const ROOT = new URL("../fixtures/cityscapes/", import.meta.url).pathname;

const CITYSCAPES: DetectorConfig = {
  ...ATSS_TINY_SHAPES,
  name: "atss_tiny_cityscapes",
  model: { ...ATSS_TINY_SHAPES.model, numClasses: 8 },
  data: { kind: "cityscapes", root: ROOT },
};

Deno.test("data.kind cityscapes: splits from the config's root or from --data", async (t) => {
  const train = await loadCityscapes(ROOT, "train");
  const val = await loadCityscapes(ROOT, "val");

  await t.step("the config's root: train without crowds, val with them", async () => {
    const splits = await loadSplits(CITYSCAPES);
    assert.deepEqual(splits.valDataset, val);
    assert.deepEqual(
      splits.train.items.map((i) => [i.imageId, i.path, i.labels.length]),
      train.images.map((im) => [
        im.id,
        join(ROOT, "leftImg8bit", "train", im.file_name),
        train.annotations.filter((a) => a.image_id === im.id && !a.iscrowd).length,
      ]),
    );
    assert.equal(splits.train.items.reduce((n, i) => n + i.labels.length, 0), 10);
    assert.deepEqual(splits.val.categoryIds, [24, 25, 26, 27, 28, 31, 32, 33]);
  });

  await t.step("a data folder replaces the root", async () => {
    const elsewhere = { ...CITYSCAPES, data: { kind: "cityscapes" as const, root: "no/such/dir" } };
    const { valDataset, val: source } = await loadValSplit(elsewhere, ROOT);
    assert.deepEqual(valDataset, val);
    assert.equal(source.items[0].path, join(ROOT, "leftImg8bit", "val", val.images[0].file_name));
    assert.equal((await loadSplits(elsewhere, ROOT)).train.items.length, 3);
    await assert.rejects(
      () => loadValSplit(elsewhere),
      (e: Error) =>
        e instanceof Deno.errors.NotFound &&
        e.message.includes(`folder "${join("no/such/dir", "leftImg8bit", "val")}" is missing`),
    );
  });
});
