import assert from "node:assert/strict";
import {
  CocoIndex,
  loadCoco,
  loadCocoResults,
  parseCoco,
  parseCocoResults,
  stringifyCocoResults,
  toCocoDetections,
  writeCocoResults,
} from "../../data/coco.ts";
import type { CocoDetection } from "../../data/coco_types.ts";
import * as mask from "../../data/mask.ts";

const SMALL = new URL("../fixtures/data/coco_small.json", import.meta.url);
const LVIS = new URL("../fixtures/data/lvis_small.json", import.meta.url);

function base(): Record<string, unknown> & {
  images: Record<string, unknown>[];
  categories: Record<string, unknown>[];
  annotations: Record<string, unknown>[];
} {
  return {
    images: [{ id: 1, width: 10, height: 8, file_name: "a.png" }],
    categories: [{ id: 4, name: "x" }],
    annotations: [{ id: 1, image_id: 1, category_id: 4, bbox: [1, 1, 2, 2], area: 4, iscrowd: 0 }],
  };
}

Deno.test("loadCoco reads and indexes a hand-written file", async (t) => {
  const warnings: string[] = [];
  const ds = await loadCoco(SMALL, { onWarning: (m) => warnings.push(m) });
  const index = new CocoIndex(ds);
  await t.step("boxes outside the image are clipped with a warning", () => {
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /annotation 2 .*outside image 7/);
    assert.deepEqual(index.annotations.get(2)!.bbox, [10, 8, 6, 4]);
  });
  await t.step("index by image and category", () => {
    assert.deepEqual(index.imageIds, [7, 9, 42]);
    assert.deepEqual(index.annotationsOf(7).map((a) => a.id), [1, 2]);
    assert.deepEqual(index.annotationsOf(9), []);
    assert.deepEqual(index.annotationsOfCategory(3).map((a) => a.id), [1, 5]);
    assert.deepEqual(index.imagesWith(3), [7, 42]);
    assert.deepEqual(index.imagesWith(18), [42]);
  });
  await t.step("contiguous labels follow ascending category ids", () => {
    assert.deepEqual(index.categoryIds, [3, 18, 90]);
    assert.equal(index.numClasses, 3);
    assert.equal(index.labelOf(90), 2);
    assert.equal(index.categoryIdOf(1), 18);
    assert.throws(() => index.labelOf(4), RangeError);
    assert.throws(() => index.categoryIdOf(3), RangeError);
  });
  await t.step("segmentations: polygon, uncompressed and compressed RLE", () => {
    const a1 = index.annotations.get(1)!;
    assert.equal(mask.area(mask.fromSegmentation(a1.segmentation!, 12, 16)), 12);
    const a5 = index.annotations.get(5)!;
    assert.equal(a5.iscrowd, 1);
    assert.equal(mask.area(mask.fromSegmentation(a5.segmentation!, 10, 20)), 20);
    assert.deepEqual(mask.toBbox(mask.fromSegmentation(a5.segmentation!, 10, 20)), [0, 0, 2, 10]);
    const a6 = index.annotations.get(6)!;
    assert.deepEqual(mask.toBbox(mask.fromSegmentation(a6.segmentation!, 10, 20)), [4, 2, 3, 3]);
  });
  await t.step("extra keys are kept", () => {
    assert.equal(ds.info?.description, "hand-written test file");
    assert.equal(index.images.get(42)!.license, 1);
  });
});

Deno.test("loadCoco keeps LVIS fields and fills defaults", async () => {
  const warnings: string[] = [];
  const ds = await loadCoco(LVIS, { onWarning: (m) => warnings.push(m) });
  assert.deepEqual(ds.images[0].not_exhaustive_category_ids, [2]);
  assert.deepEqual(ds.images[0].neg_category_ids, [3]);
  assert.equal(ds.categories[2].frequency, "r");
  assert.equal(ds.annotations[0].iscrowd, 0);
  assert.match(warnings[0], /annotation 10 is missing key "iscrowd"/);
  const bad = JSON.parse(await Deno.readTextFile(LVIS));
  bad.images[0].neg_category_ids = [3, 99];
  assert.throws(() => parseCoco(bad), /image 1 lists unknown category id 99 in neg_category_ids/);
});

Deno.test("parseCoco names every validation problem", async (t) => {
  type D = ReturnType<typeof base>;
  const cases: [string, (d: D) => unknown, RegExp][] = [
    ["not an object", () => [], /top level is not an object/],
    ["missing images", (d) => (delete (d as Partial<D>).images, d), /missing key "images"/],
    [
      "missing categories",
      (d) => (delete (d as Partial<D>).categories, d),
      /missing key "categories"/,
    ],
    ["annotations not array", (d) => ({ ...d, annotations: {} }), /"annotations" is not an array/],
    ["image missing id", (d) => (delete d.images[0].id, d), /image at index 0 is missing key "id"/],
    ["image missing width", (d) => (delete d.images[0].width, d), /image 1 is missing key "width"/],
    [
      "image missing file_name",
      (d) => (delete d.images[0].file_name, d),
      /image 1 is missing key "file_name"/,
    ],
    ["image NaN height", (d) => (d.images[0].height = NaN, d), /image 1 has height null/],
    ["image negative width", (d) => (d.images[0].width = -3, d), /image 1 has width -3/],
    ["image zero height", (d) => (d.images[0].height = 0, d), /image 1 has height 0/],
    ["image string id", (d) => (d.images[0].id = "1", d), /image at index 0 has id "1"/],
    ["duplicate image id", (d) => (d.images.push({ ...d.images[0] }), d), /duplicate image id 1/],
    [
      "duplicate category id",
      (d) => (d.categories.push({ id: 4, name: "y" }), d),
      /duplicate category id 4/,
    ],
    [
      "category missing name",
      (d) => (delete d.categories[0].name, d),
      /category 4 is missing key "name"/,
    ],
    [
      "duplicate annotation id",
      (d) => (d.annotations.push({ ...d.annotations[0] }), d),
      /duplicate annotation id 1/,
    ],
    [
      "annotation missing bbox",
      (d) => (delete d.annotations[0].bbox, d),
      /annotation 1 is missing key "bbox"/,
    ],
    [
      "annotation missing image_id",
      (d) => (delete d.annotations[0].image_id, d),
      /annotation 1 is missing key "image_id"/,
    ],
    [
      "unknown image id",
      (d) => (d.annotations[0].image_id = 5, d),
      /annotation 1 has unknown image_id 5/,
    ],
    [
      "unknown category id",
      (d) => (d.annotations[0].category_id = 1, d),
      /annotation 1 has unknown category_id 1/,
    ],
    [
      "bbox with 3 numbers",
      (d) => (d.annotations[0].bbox = [1, 2, 3], d),
      /annotation 1 has bbox \[1,2,3\]/,
    ],
    [
      "bbox infinite",
      (d) => (d.annotations[0].bbox = [1, 2, Infinity, 3], d),
      /annotation 1 has bbox/,
    ],
    [
      "bbox negative size",
      (d) => (d.annotations[0].bbox = [1, 2, -1, 3], d),
      /annotation 1 has negative bbox size -1x3/,
    ],
    ["negative area", (d) => (d.annotations[0].area = -2, d), /annotation 1 has area -2/],
    ["iscrowd 2", (d) => (d.annotations[0].iscrowd = 2, d), /annotation 1 has iscrowd 2/],
    [
      "odd polygon",
      (d) => (d.annotations[0].segmentation = [[1, 2, 3, 4, 5, 6, 7]], d),
      /annotation 1 has polygon 0 with 7 coordinates/,
    ],
    [
      "NaN polygon",
      (d) => (d.annotations[0].segmentation = [[1, 2, 3, 4, 5, "a"]], d),
      /annotation 1 has polygon 0 coordinate 5/,
    ],
    [
      "RLE wrong size",
      (d) => (d.annotations[0].segmentation = { size: [4, 4], counts: [16] }, d),
      /annotation 1 has RLE size \[4,4\], expected \[8, 10\]/,
    ],
    [
      "RLE wrong sum",
      (d) => (d.annotations[0].segmentation = { size: [8, 10], counts: [70] }, d),
      /RLE counts summing to 70, expected 80/,
    ],
    [
      "RLE bad string",
      (d) => (d.annotations[0].segmentation = { size: [8, 10], counts: "\u0001" }, d),
      /annotation 1 has RLE counts that do not decode/,
    ],
    [
      "segmentation number",
      (d) => (d.annotations[0].segmentation = 3, d),
      /annotation 1 has segmentation 3/,
    ],
  ];
  for (const [name, mutate, re] of cases) {
    await t.step(name, () => {
      assert.throws(() => parseCoco(mutate(base()), { source: "t.json" }), (e: Error) => {
        assert.ok(e instanceof SyntaxError, `${name}: ${e}`);
        assert.match(e.message, /^Cannot load COCO file "t\.json": /);
        assert.match(e.message, re);
        return true;
      });
    });
  }
  await t.step("missing area warns and uses the box area", () => {
    const d = base();
    delete d.annotations[0].area;
    const w: string[] = [];
    assert.equal(parseCoco(d, { onWarning: (m) => w.push(m) }).annotations[0].area, 4);
    assert.match(w[0], /annotation 1 is missing key "area"/);
  });
  await t.step("file that is not JSON", async () => {
    const p = await Deno.makeTempFile({ suffix: ".json" });
    await Deno.writeTextFile(p, "{ nope");
    await assert.rejects(
      loadCoco(p),
      (e: Error) => e instanceof SyntaxError && e.message.includes(p),
    );
    await Deno.remove(p);
  });
});

Deno.test("results file round trip", async (t) => {
  const index = new CocoIndex(await loadCoco(SMALL, { onWarning: () => {} }));
  const [rle] = mask.fromPolygons([[1, 1, 5, 1, 5, 4, 1, 4]], 12, 16);
  const dets: CocoDetection[] = [
    { image_id: 7, category_id: 3, bbox: [1.25, 1.5, 4, 3.125], score: 0.875 },
    { image_id: 7, category_id: 90, bbox: [0, 0, 1, 1], score: 0.1, segmentation: rle },
    { image_id: 42, category_id: 18, segmentation: rle, score: 0.5 },
  ];
  await t.step("write then read gives the same detections", async () => {
    const p = await Deno.makeTempFile({ suffix: ".json" });
    await writeCocoResults(p, dets);
    const back = await loadCocoResults(p, index);
    assert.deepEqual(back, dets);
    // pycocotools reads a plain JSON list of dicts with these keys
    const raw = JSON.parse(await Deno.readTextFile(p));
    assert.ok(Array.isArray(raw));
    assert.deepEqual(Object.keys(raw[1]).sort(), [
      "bbox",
      "category_id",
      "image_id",
      "score",
      "segmentation",
    ]);
    assert.equal(typeof raw[1].segmentation.counts, "string");
    await Deno.remove(p);
  });
  await t.step("errors name the detection", () => {
    const bad: [unknown, RegExp][] = [
      [{}, /top level is not an array/],
      [[{ image_id: 7, category_id: 3, bbox: [0, 0, 1, 1] }], /detection 0 is missing key "score"/],
      [[dets[0], { ...dets[0], image_id: 5 }], /detection 1 has unknown image_id 5/],
      [[{ ...dets[0], category_id: 2 }], /detection 0 has unknown category_id 2/],
      [[{ ...dets[0], bbox: [0, 0, -1, 1] }], /detection 0 has bbox/],
      [[{ image_id: 7, category_id: 3, score: 1 }], /neither "bbox" nor "segmentation"/],
      [[{ ...dets[2], segmentation: { size: [1, 1], counts: [1] } }], /not a compressed RLE/],
      [[{ ...dets[0], score: "high" }], /detection 0 has score "high"/],
    ];
    for (const [json, re] of bad) {
      assert.throws(
        () => parseCocoResults(json, index),
        (e: Error) => e instanceof SyntaxError && re.test(e.message),
      );
    }
  });
  await t.step("toCocoDetections maps labels back to ids", () => {
    const out = toCocoDetections(index, 7, [0, 0, 2, 3, 1, 1, 5, 5], [0.9, 0.8], [2, 0]);
    assert.deepEqual(out.map((d) => d.category_id), [90, 3]);
    assert.deepEqual(out[0].bbox, [0, 0, 2, 3]);
    assert.equal(stringifyCocoResults(out).startsWith("[{"), true);
  });
});
