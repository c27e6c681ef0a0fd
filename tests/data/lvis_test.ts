import assert from "node:assert/strict";
import { CocoIndex } from "../../data/coco.ts";
import { cocoSource } from "../../data/loader.ts";
import { isLvisDataset, loadLvis, parseLvis } from "../../data/lvis.ts";

const FIXTURE = new URL("../fixtures/lvis_eval/federated_basics.json", import.meta.url);

type Json = Record<string, unknown> & {
  images: Record<string, unknown>[];
  categories: Record<string, unknown>[];
  annotations: Record<string, unknown>[];
};

/** An LVIS v1-style file: images named by coco_url, annotations without iscrowd. */
function v1(): Json {
  return {
    info: { version: "v1" },
    images: [
      {
        id: 397133,
        width: 40,
        height: 30,
        coco_url: "http://images.cocodataset.org/val2017/000000397133.jpg",
        neg_category_ids: [3],
        not_exhaustive_category_ids: [1],
      },
      {
        id: 5,
        width: 20,
        height: 20,
        file_name: "own/5.jpg",
        coco_url: "http://images.cocodataset.org/train2017/000000000005.jpg",
        neg_category_ids: [],
        not_exhaustive_category_ids: [],
      },
    ],
    categories: [
      { id: 1, name: "aerosol", frequency: "c", image_count: 40, instance_count: 90 },
      { id: 3, name: "apple", frequency: "f", image_count: 900, instance_count: 5000 },
    ],
    annotations: [
      {
        id: 1,
        image_id: 397133,
        category_id: 1,
        bbox: [2, 2, 10, 8],
        area: 70,
        segmentation: [[2, 2, 12, 2, 12, 10, 2, 10]],
      },
      { id: 2, image_id: 5, category_id: 3, bbox: [0, 0, 5, 5], area: 25 },
    ],
  };
}

Deno.test("parseLvis reads an LVIS v1 file", async (t) => {
  const warnings: string[] = [];
  const ds = parseLvis(v1(), { onWarning: (m) => warnings.push(m) });
  await t.step("file names come from coco_url unless given", () => {
    assert.equal(ds.images[0].file_name, "val2017/000000397133.jpg");
    assert.equal(ds.images[1].file_name, "own/5.jpg");
  });
  await t.step("iscrowd is 0 without a warning; LVIS keys are kept", () => {
    assert.deepEqual(ds.annotations.map((a) => a.iscrowd), [0, 0]);
    assert.deepEqual(warnings, []);
    assert.deepEqual(ds.images[0].neg_category_ids, [3]);
    assert.equal(ds.categories[1].frequency, "f");
    assert.equal(ds.categories[1].image_count, 900);
    assert.equal(ds.info?.version, "v1");
  });
  await t.step("the result is a COCO dataset for the index and the loader", () => {
    const index = new CocoIndex(ds);
    assert.deepEqual(index.imagesWith(1), [397133]);
    const source = cocoSource(ds, "data/lvis");
    assert.equal(source.items[0].path, "data/lvis/val2017/000000397133.jpg");
    assert.deepEqual([...source.items[1].labels], [1]);
  });
  await t.step("COCO's repairs still warn, naming LVIS", () => {
    const d = v1();
    d.annotations[1].bbox = [15, 15, 10, 10];
    const w: string[] = [];
    parseLvis(d, { source: "v.json", onWarning: (m) => w.push(m) });
    assert.equal(w.length, 1);
    assert.match(
      w[0],
      /^LVIS file "v\.json": annotation 2 has bbox \[15,15,10,10\] outside image 5/,
    );
  });
});

Deno.test("loadLvis reads a file and names it in errors", async () => {
  const ds = await loadLvis(FIXTURE);
  assert.equal(ds.images.length, 5);
  assert.equal(ds.categories.find((c) => c.id === 1)?.frequency, "r");
  const dir = await Deno.makeTempDir();
  try {
    const bad = v1();
    bad.categories[0].frequency = "rare";
    await Deno.writeTextFile(`${dir}/bad.json`, JSON.stringify(bad));
    await assert.rejects(
      () => loadLvis(`${dir}/bad.json`),
      {
        name: "SyntaxError",
        message: `Cannot load LVIS file "${dir}/bad.json": category 1 has frequency "rare", ` +
          `expected "r", "c" or "f"`,
      },
    );
    await Deno.writeTextFile(`${dir}/trunc.json`, '{ "images": [');
    await assert.rejects(
      () => loadLvis(`${dir}/trunc.json`),
      (e: Error) =>
        e instanceof SyntaxError &&
        e.message.startsWith(`Cannot load LVIS file "${dir}/trunc.json"`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseLvis names every LVIS problem with its id", async (t) => {
  const cases: [string, (d: Json) => unknown, RegExp][] = [
    [
      "unknown category in neg_category_ids",
      (d) => (d.images[0].neg_category_ids = [3, 77], d),
      /^Cannot load LVIS file "<memory>": image 397133 lists unknown category id 77 in neg_category_ids$/,
    ],
    [
      "unknown category in not_exhaustive_category_ids",
      (d) => (d.images[1].not_exhaustive_category_ids = [2], d),
      /image 5 lists unknown category id 2 in not_exhaustive_category_ids/,
    ],
    [
      "missing neg_category_ids",
      (d) => (delete d.images[1].neg_category_ids, d),
      /image 5 is missing key "neg_category_ids"/,
    ],
    [
      "missing not_exhaustive_category_ids",
      (d) => (delete d.images[0].not_exhaustive_category_ids, d),
      /image 397133 is missing key "not_exhaustive_category_ids"/,
    ],
    [
      "neither file_name nor coco_url",
      (d) => (delete d.images[0].coco_url, d),
      /image 397133 has neither "file_name" nor "coco_url"/,
    ],
    [
      "coco_url that is not a URL",
      (d) => (d.images[0].coco_url = "not a url", d),
      /image 397133 has coco_url "not a url", expected an image URL/,
    ],
    [
      "bad frequency",
      (d) => (d.categories[1].frequency = "x", d),
      /category 3 has frequency "x", expected "r", "c" or "f"/,
    ],
    [
      "missing frequency",
      (d) => (delete d.categories[0].frequency, d),
      /category 1 is missing key "frequency"/,
    ],
    [
      "missing image_count",
      (d) => (delete d.categories[0].image_count, d),
      /category 1 is missing key "image_count"/,
    ],
    [
      "negative instance_count",
      (d) => (d.categories[1].instance_count = -2, d),
      /category 3 has instance_count -2, expected an integer >= 0/,
    ],
    [
      "bad ignore flag",
      (d) => (d.annotations[0].ignore = 2, d),
      /annotation 1 has ignore 2, expected 0 or 1/,
    ],
    [
      "COCO problems name LVIS too",
      (d) => (d.annotations[1].category_id = 9, d),
      /^Cannot load LVIS file "<memory>": annotation 2 has unknown category_id 9$/,
    ],
  ];
  for (const [name, mutate, message] of cases) {
    await t.step(name, () => {
      assert.throws(() => parseLvis(mutate(v1()), { onWarning: () => {} }), (e: Error) => {
        assert.ok(e instanceof SyntaxError, `${name}: ${e}`);
        assert.match(e.message, message);
        return true;
      });
    });
  }
});

Deno.test("isLvisDataset tells LVIS from COCO", () => {
  assert.equal(isLvisDataset(v1()), true);
  const coco = v1();
  coco.images.forEach((im) => delete im.neg_category_ids);
  coco.categories.forEach((c) => delete c.frequency);
  assert.equal(isLvisDataset(coco), false);
  assert.equal(isLvisDataset([]), false);
  assert.equal(isLvisDataset({ images: [], categories: [{ id: 1, frequency: "r" }] }), true);
});
