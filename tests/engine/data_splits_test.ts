import assert from "node:assert/strict";
import { join } from "node:path";
import ATSS_TINY_SHAPES from "../../configs/atss_tiny_shapes.ts";
import type { DetectorConfig } from "../../configs/types.ts";
import { loadCityscapes } from "../../data/cityscapes.ts";
import { checkConfig } from "../../engine/config.ts";
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

/** An LVIS v1-style split: images named by coco_url, annotations without iscrowd. */
function lvisSplit(split: string) {
  return {
    images: [1, 2].map((id) => ({
      id,
      width: 16,
      height: 16,
      coco_url: `http://images.cocodataset.org/${split}2017/${id}.jpg`,
      neg_category_ids: [],
      not_exhaustive_category_ids: [],
    })),
    categories: [{ id: 4, name: "a", frequency: "r", image_count: 1, instance_count: 1 }],
    annotations: [{ id: 1, image_id: 2, category_id: 4, bbox: [1, 1, 4, 4], area: 16 }],
  };
}

Deno.test("an LVIS data config loads LVIS v1 files and checks repeatThreshold", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    for (const split of ["train", "val"]) {
      await Deno.writeTextFile(`${dir}/${split}.json`, JSON.stringify(lvisSplit(split)));
    }
    const config: DetectorConfig = {
      ...ATSS_TINY_SHAPES,
      data: {
        kind: "lvis",
        trainJson: `${dir}/train.json`,
        trainImages: `${dir}/images`,
        valJson: `${dir}/val.json`,
        valImages: `${dir}/images`,
        repeatThreshold: 1e-3,
      },
    };
    await t.step("the config is valid", () => checkConfig(config, "lvis.ts"));
    await t.step("repeatThreshold is checked", () => {
      for (const bad of [0, 2, "1e-3", NaN]) {
        const c = { ...config, data: { ...config.data, repeatThreshold: bad } };
        assert.throws(
          () => checkConfig(c, "lvis.ts"),
          new RegExp(`data\\.repeatThreshold is .*, expected a number in \\(0, 1\\]`),
        );
      }
      const c = { ...config, data: { ...config.data, kind: "openimages" } };
      assert.throws(
        () => checkConfig(c, "x.ts"),
        /expected "shapes", "coco", "lvis" or "cityscapes"/,
      );
    });
    await t.step("the splits come from the LVIS files", async () => {
      const splits = await loadSplits(config);
      assert.deepEqual(splits.train.items.map((it) => it.path), [
        `${dir}/images/train2017/1.jpg`,
        `${dir}/images/train2017/2.jpg`,
      ]);
      assert.deepEqual([...splits.train.items[1].labels], [0]);
      assert.equal(splits.valDataset.annotations[0].iscrowd, 0);
      const { val } = await loadValSplit(config);
      assert.equal(val.items[0].path, `${dir}/images/val2017/1.jpg`);
    });
    await t.step("an LVIS problem names the file", async () => {
      const bad = lvisSplit("val");
      bad.categories[0].frequency = "x";
      await Deno.writeTextFile(`${dir}/val.json`, JSON.stringify(bad));
      await assert.rejects(
        () => loadValSplit(config),
        new RegExp(`Cannot load LVIS file ".*val\\.json": category 4 has frequency "x"`),
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
