import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CITYSCAPES_CLASSES,
  cityscapesCategories,
  cityscapesImageDir,
  loadCityscapes,
  parseCityscapesPolygons,
} from "../../data/cityscapes.ts";
import { CocoIndex, parseCoco } from "../../data/coco.ts";
import type { CocoAnnotation, CocoDataset, CocoRle } from "../../data/coco_types.ts";
import { loadImage } from "../../data/image.ts";
import { type Batch, cocoSource, DetectionLoader } from "../../data/loader.ts";
import * as mask from "../../data/mask.ts";
import { Rng } from "../../tensor/rng.ts";

const ROOT = new URL("../fixtures/cityscapes/", import.meta.url).pathname;

/** One expected annotation: image id, category id, iscrowd, area, bbox. */
type Row = [number, number, 0 | 1, number, [number, number, number, number]];

const rows = (ds: CocoDataset): Row[] =>
  ds.annotations.map((a) => [a.image_id, a.category_id, a.iscrowd, a.area, a.bbox]);

// Counted by hand. Every fixture polygon is an axis-aligned rectangle with integer corners, which
// pycocotools rasterises as the pixels x0 <= x < x1, y0 <= y < y1 (clipped to the image); an object
// keeps the pixels no later painted polygon covers (see the comments of each image).
const TRAIN_ROWS: Row[] = [
  // aachen_000000: persongroup 12x10 and 8x8 (x 56..69 clipped to 56..63), one crowd: 120 + 64.
  [1, 24, 1, 184, [40, 4, 24, 10]],
  // person 8x22, painted after the car.
  [1, 24, 0, 176, [20, 8, 8, 22]],
  // car 20x16 less the person's 4 columns (all its rows) and the pole's 2: 16 columns, 224 px; the
  // license plate inside it is not painted.
  [1, 26, 0, 224, [4, 10, 16, 16]],
  // car x 50..79 clipped to 50..63: 14x8.
  [1, 26, 0, 112, [50, 16, 14, 8]],
  // bicycle at x -4..5, y -3..4: clipped to 6x5.
  [1, 33, 0, 30, [0, 0, 6, 5]],
  // aachen_000001: bicyclegroup 10x10 and 6x7 (over the caravan): one crowd of 142, first by id.
  [2, 33, 1, 142, [50, 5, 10, 25]],
  // car 10x10 less the 6x6 car painted over it (the deleted bus paints nothing); the truck is
  // covered entirely by the building and the caravan is not an evaluated class.
  [2, 26, 0, 64, [0, 0, 10, 10]],
  [2, 26, 0, 36, [2, 2, 6, 6]],
  // bochum_000000: rider 10x20 less the motorcycle's 10x10 over it; bus 20x18; train 10x10;
  // motorcycle 14x13.
  [3, 25, 0, 100, [10, 5, 10, 10]],
  [3, 28, 0, 360, [30, 2, 20, 18]],
  [3, 31, 0, 100, [52, 2, 10, 10]],
  [3, 32, 0, 182, [8, 15, 14, 13]],
];

const VAL_ROWS: Row[] = [
  // frankfurt_000000: persons 4x10 and 2x4 over the truck (25x20 - 40 - 8); the ego vehicle (last)
  // covers the car's 2 bottom rows (25x20 - 50); bicycle 4x6.
  [1, 24, 0, 40, [40, 10, 4, 10]],
  [1, 24, 0, 8, [50, 12, 2, 4]],
  [1, 26, 0, 450, [5, 10, 25, 18]],
  [1, 27, 0, 452, [35, 5, 25, 20]],
  [1, 33, 0, 24, [2, 2, 4, 6]],
];

/** A polygon file's objects, read straight from the fixture. */
async function objectsOf(split: string, stem: string): Promise<
  { label: string; polygon: number[][] }[]
> {
  const path = join(ROOT, "gtFine", split, stem.split("_")[0], `${stem}_gtFine_polygons.json`);
  return JSON.parse(await Deno.readTextFile(path)).objects;
}

/**
 * Independent reference of the visible masks: paints the fixture's rectangles in file order by the
 * rule above. `owners[i]` is the index of the annotation object `i` paints into, `null` for an
 * object that paints background over what is under it, `"none"` for one that paints nothing.
 * Returns the non-empty masks in owner order.
 */
function paintRectangles(
  objects: { polygon: number[][] }[],
  owners: (number | null | "none")[],
  h: number,
  w: number,
): Uint8Array[] {
  const count = 1 + Math.max(...owners.map((o) => typeof o === "number" ? o : -1));
  assert.equal(owners.length, objects.length);
  const owner = new Int32Array(h * w).fill(-1);
  objects.forEach((o, i) => {
    const who = owners[i];
    if (who === "none") return;
    const xs = o.polygon.map((p) => p[0]), ys = o.polygon.map((p) => p[1]);
    for (let y = Math.max(0, Math.min(...ys)); y < Math.min(h, Math.max(...ys)); y++) {
      for (let x = Math.max(0, Math.min(...xs)); x < Math.min(w, Math.max(...xs)); x++) {
        owner[y * w + x] = who ?? -1;
      }
    }
  });
  return Array.from({ length: count }, (_, k) => Uint8Array.from(owner, (o) => (o === k ? 1 : 0)))
    .filter((m) => m.some((b) => b));
}

function masksOf(ds: CocoDataset, imageId: number): Uint8Array[] {
  return ds.annotations.filter((a) => a.image_id === imageId).map((a) =>
    mask.decode(a.segmentation as CocoRle)
  );
}

Deno.test("Cityscapes classes and category ids are mmdetection's", () => {
  assert.deepEqual(cityscapesCategories(), [
    { id: 24, name: "person" },
    { id: 25, name: "rider" },
    { id: 26, name: "car" },
    { id: 27, name: "truck" },
    { id: 28, name: "bus" },
    { id: 31, name: "train" },
    { id: 32, name: "motorcycle" },
    { id: 33, name: "bicycle" },
  ]);
  const index = new CocoIndex({ images: [], annotations: [], categories: cityscapesCategories() });
  assert.deepEqual(
    CITYSCAPES_CLASSES.map((name) =>
      index.labelOf(cityscapesCategories().find((c) => c.name === name)!.id)
    ),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
});

Deno.test("loadCityscapes reads the fixture's train and val splits", async (t) => {
  const train = await loadCityscapes(ROOT, "train");
  const val = await loadCityscapes(ROOT, "val");

  await t.step(
    "images in city and name order, ids from 1, paths relative to leftImg8bit/split",
    () => {
      assert.deepEqual(train.images, [
        { id: 1, width: 64, height: 32, file_name: "aachen/aachen_000000_000019_leftImg8bit.png" },
        { id: 2, width: 64, height: 32, file_name: "aachen/aachen_000001_000019_leftImg8bit.png" },
        { id: 3, width: 64, height: 32, file_name: "bochum/bochum_000000_000313_leftImg8bit.png" },
      ]);
      assert.deepEqual(val.images, [
        {
          id: 1,
          width: 64,
          height: 32,
          file_name: "frankfurt/frankfurt_000000_000294_leftImg8bit.png",
        },
      ]);
    },
  );

  await t.step("annotations, areas and boxes as counted by hand", () => {
    assert.deepEqual(rows(train), TRAIN_ROWS);
    assert.deepEqual(rows(val), VAL_ROWS);
    assert.deepEqual(train.annotations.map((a) => a.id), TRAIN_ROWS.map((_, i) => i + 1));
  });

  await t.step("area and bbox are pycocotools' area and toBbox of the stored RLE", () => {
    for (const a of [...train.annotations, ...val.annotations]) {
      const rle = a.segmentation as CocoRle;
      assert.equal(typeof rle.counts, "string");
      assert.deepEqual(rle.size, [32, 64]);
      const bits = mask.decode(rle);
      assert.equal(a.area, bits.reduce((s, b) => s + b, 0));
      assert.deepEqual(a.bbox, mask.toBbox(rle));
    }
  });

  await t.step("the result is a valid COCO file (parseCoco accepts it without warnings)", () => {
    const warnings: string[] = [];
    const again = parseCoco(JSON.parse(JSON.stringify(train)), {
      onWarning: (m) => warnings.push(m),
    });
    assert.deepEqual(warnings, []);
    assert.equal(again.annotations.length, TRAIN_ROWS.length);
  });

  await t.step(
    "occlusion: each visible mask equals the rectangles painted in file order",
    async () => {
      const cases: [CocoDataset, number, string, string, (number | null | "none")[]][] = [
        // road, car, person, persongroup x2, car, license plate, pole, bicycle
        [train, 1, "train", "aachen_000000_000019", [null, 2, 1, 0, 0, 3, "none", null, 4]],
        // car, deleted bus, car, truck (then covered), building, caravan, bicyclegroup x2
        [train, 2, "train", "aachen_000001_000019", [1, "none", 2, 3, null, null, 0, 0]],
        // sky, rider, motorcycle, bus, train
        [train, 3, "train", "bochum_000000_000313", [null, 0, 3, 1, 2]],
        // car, truck, person, bicycle, person, ego vehicle
        [val, 1, "val", "frankfurt_000000_000294", [2, 3, 0, 4, 1, null]],
      ];
      for (const [ds, imageId, split, stem, owners] of cases) {
        const got = masksOf(ds, imageId);
        // aachen_000001's truck (owner 3) is covered entirely: its reference mask is empty and dropped.
        const want = paintRectangles(await objectsOf(split, stem), owners, 32, 64);
        assert.equal(got.length, want.length, stem);
        got.forEach((m, k) => assert.deepEqual(m, want[k], `${stem} annotation ${k}`));
      }
    },
  );

  await t.step("crowd groups of a class share one crowd annotation per image", () => {
    const crowds = train.annotations.filter((a) => a.iscrowd === 1);
    assert.deepEqual(crowds.map((a) => [a.image_id, a.category_id]), [[1, 24], [2, 33]]);
    // The two persongroup rectangles of image 1, disjoint, in one mask.
    const bits = mask.decode(crowds[0].segmentation as CocoRle);
    assert.equal(bits[4 * 64 + 40], 1);
    assert.equal(bits[4 * 64 + 63], 1);
    assert.equal(bits[4 * 64 + 53], 0);
  });
});

Deno.test("parseCityscapesPolygons: labels, groups and painting rules", async (t) => {
  const rect = (
    x0: number,
    y0: number,
    x1: number,
    y1: number,
  ) => [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
  const parse = (objects: unknown[]) =>
    parseCityscapesPolygons({ imgHeight: 10, imgWidth: 10, objects }).annotations;
  const summary = (anns: CocoAnnotation[]) => anns.map((a) => [a.category_id, a.iscrowd, a.area]);

  await t.step("an image without objects has no annotations", () => {
    const out = parseCityscapesPolygons({ imgHeight: 4, imgWidth: 6, objects: [] });
    assert.deepEqual(out, { width: 6, height: 4, annotations: [] });
  });

  await t.step(
    "annotations follow instance-image ids: crowds first, then label id x 1000 + n",
    () => {
      const anns = parse([
        { label: "car", polygon: rect(0, 0, 2, 2) },
        { label: "person", polygon: rect(3, 0, 5, 1) },
        { label: "cargroup", polygon: rect(0, 5, 1, 8) },
        { label: "car", polygon: rect(6, 6, 9, 9) },
      ]);
      assert.deepEqual(summary(anns), [[26, 1, 3], [24, 0, 2], [26, 0, 4], [26, 0, 9]]);
    },
  );

  await t.step("a group of a class without instances, ignored classes and stuff: none", () => {
    assert.deepEqual(
      parse([
        { label: "polegroup", polygon: rect(0, 0, 2, 2) },
        { label: "skygroup", polygon: rect(0, 0, 2, 2) },
        { label: "trailer", polygon: rect(0, 0, 2, 2) },
        { label: "caravangroup", polygon: rect(0, 0, 2, 2) },
        { label: "dynamic", polygon: rect(0, 0, 2, 2) },
      ]),
      [],
    );
  });

  await t.step(
    "stuff painted later covers a thing; a license plate and a deleted object do not",
    () => {
      const anns = parse([
        { label: "truck", polygon: rect(0, 0, 10, 10) },
        { label: "license plate", polygon: rect(0, 0, 10, 5) },
        { label: "sky", polygon: rect(0, 0, 10, 5), deleted: 1 },
        { label: "terrain", polygon: rect(0, 8, 10, 10) },
      ]);
      assert.deepEqual(summary(anns), [[27, 0, 80]]);
      assert.deepEqual(anns[0].bbox, [0, 0, 10, 8]);
    },
  );

  await t.step("random rectangles: each visible mask equals the painted reference", () => {
    const rng = new Rng(11);
    for (let image = 0; image < 40; image++) {
      const objects: { label: string; polygon: number[][] }[] = [];
      const owners: (number | null | "none")[] = [];
      let cars = 0;
      for (let i = 0; i < 12; i++) {
        const x0 = rng.int(46) - 4, y0 = rng.int(30) - 4;
        const label = ["car", "car", "road", "license plate"][rng.int(4)];
        objects.push({ label, polygon: rect(x0, y0, x0 + 1 + rng.int(14), y0 + 1 + rng.int(10)) });
        owners.push(label === "car" ? cars++ : label === "road" ? null : "none");
      }
      const got = parseCityscapesPolygons({ imgHeight: 24, imgWidth: 40, objects }).annotations;
      const want = paintRectangles(objects, owners, 24, 40);
      assert.deepEqual(
        got.map((a) => mask.decode(a.segmentation as CocoRle)),
        want,
        `image ${image}`,
      );
    }
  });

  await t.step("a polygon that is not a rectangle: area from the rasterised mask", () => {
    // The triangle (0,0), (8,0), (0,8) by pycocotools' rules (5x grid, column centres): column k
    // keeps rows 0 .. 6 - k, the pixels whose centres lie strictly inside (those on the hypotenuse,
    // x + y = 7, are out), 7 + 6 + ... + 1 = 28 pixels.
    const anns = parse([{ label: "bus", polygon: [[0, 0], [8, 0], [0, 8]] }]);
    assert.equal(anns[0].area, 28);
    assert.deepEqual(anns[0].bbox, [0, 0, 7, 7]);
  });
});

Deno.test("Cityscapes images load through cocoSource and the loader, masks as annotated", async () => {
  const train = await loadCityscapes(ROOT, "train");
  const source = cocoSource(train, cityscapesImageDir(ROOT, "train"));
  for (const item of source.items) {
    const image = await loadImage(item.path!);
    assert.deepEqual([image.width, image.height], [item.width, item.height], item.path);
  }
  using loader = new DetectionLoader(source, {
    batchSize: 3,
    seed: 0,
    shuffle: false,
    workers: 0,
    withMasks: true,
    transform: { shortSide: 32, maxSize: 64, flipProb: 0 },
  });
  const batches: Batch[] = [];
  for await (const b of loader.epoch(0)) batches.push(b);
  assert.equal(batches.length, 1);
  const [b] = batches;
  assert.deepEqual([b.height, b.width], [32, 64]);
  const index = new CocoIndex(train);
  b.meta.forEach((m, k) => {
    // Crowds are skipped for training; the rest come with their visible masks.
    const anns = index.annotationsOf(m.imageId).filter((a) => !a.iscrowd);
    assert.deepEqual(Array.from(b.labels[k]), anns.map((a) => index.labelOf(a.category_id)));
    anns.forEach((a, i) => {
      const want = mask.decode(a.segmentation as CocoRle);
      assert.deepEqual(b.masks![k].subarray(i * 32 * 64, (i + 1) * 32 * 64), want);
    });
  });
});

/** A copy of the fixture in a temporary folder, changed by `edit`. */
async function withCopy(
  edit: (root: string) => Promise<void>,
  check: (root: string) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir();
  try {
    for (const top of ["leftImg8bit", "gtFine"]) {
      for (const split of ["train", "val"]) {
        for await (const city of Deno.readDir(join(ROOT, top, split))) {
          await Deno.mkdir(join(root, top, split, city.name), { recursive: true });
          for await (const f of Deno.readDir(join(ROOT, top, split, city.name))) {
            await Deno.copyFile(
              join(ROOT, top, split, city.name, f.name),
              join(root, top, split, city.name, f.name),
            );
          }
        }
      }
    }
    await edit(root);
    await check(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const AACHEN_JSON = "gtFine/train/aachen/aachen_000000_000019_gtFine_polygons.json";
const AACHEN_PNG = "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png";

const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

Deno.test("loadCityscapes: bad input gives errors naming the file and object", async (t) => {
  const badJson = (objectsOrFile: unknown) => async (root: string) => {
    await Deno.writeTextFile(join(root, AACHEN_JSON), JSON.stringify(objectsOrFile));
  };
  const fileError = (root: string, msg: string) =>
    new RegExp(`^Cannot load Cityscapes file "${literal(join(root, AACHEN_JSON))}": ${msg}$`);

  await t.step("a polygon with 2 points", () =>
    withCopy(
      badJson({
        imgHeight: 32,
        imgWidth: 64,
        objects: [{ label: "road", polygon: [[0, 0], [1, 1], [0, 2]] }, {
          label: "car",
          polygon: [[0, 0], [4, 4]],
        }],
      }),
      (root) =>
        assert.rejects(
          () => loadCityscapes(root, "train"),
          (e: Error) =>
            e instanceof SyntaxError &&
            fileError(
              root,
              literal(`object 1 ("car") has a polygon of 2 points, expected at least 3`),
            ).test(e.message),
        ),
    ));

  await t.step("a file without imgHeight", () =>
    withCopy(
      badJson({ imgWidth: 64, objects: [] }),
      (root) =>
        assert.rejects(
          () => loadCityscapes(root, "train"),
          (e: Error) =>
            e instanceof SyntaxError &&
            fileError(root, literal(`missing key "imgHeight"`)).test(e.message),
        ),
    ));

  await t.step("a file that is not JSON", () =>
    withCopy(
      async (root) => await Deno.writeTextFile(join(root, AACHEN_JSON), '{"imgHeight": 32,'),
      (root) =>
        assert.rejects(
          () => loadCityscapes(root, "train"),
          (e: Error) => e instanceof SyntaxError && fileError(root, ".+").test(e.message),
        ),
    ));

  await t.step("a missing image file", () =>
    withCopy(
      (root) => Deno.remove(join(root, AACHEN_PNG)),
      (root) =>
        assert.rejects(
          () => loadCityscapes(root, "train"),
          (e: Error) =>
            e instanceof Deno.errors.NotFound &&
            e.message ===
              `Cannot load Cityscapes split "train" of "${root}": image "${
                join(root, AACHEN_PNG)
              }" of "${join(root, AACHEN_JSON)}" is missing`,
        ),
    ));

  await t.step("a missing polygon file", () =>
    withCopy(
      (root) => Deno.remove(join(root, AACHEN_JSON)),
      (root) =>
        assert.rejects(
          () => loadCityscapes(root, "train"),
          (e: Error) =>
            e instanceof Deno.errors.NotFound &&
            e.message ===
              `Cannot load Cityscapes split "train" of "${root}": polygon file "${
                join(root, AACHEN_JSON)
              }" of "${join(root, AACHEN_PNG)}" is missing`,
        ),
    ));

  await t.step("only the split asked for is read", () =>
    withCopy(
      async (root) => {
        await Deno.remove(join(root, "gtFine", "train"), { recursive: true });
        await Deno.remove(join(root, "leftImg8bit", "train"), { recursive: true });
      },
      async (root) => {
        assert.deepEqual(rows(await loadCityscapes(root, "val")), VAL_ROWS);
        await assert.rejects(
          () => loadCityscapes(root, "train"),
          (e: Error) =>
            e instanceof Deno.errors.NotFound &&
            e.message ===
              `Cannot load Cityscapes split "train" of "${root}": folder "${
                join(root, "leftImg8bit", "train")
              }" is missing`,
        );
      },
    ));

  await t.step("an unknown split", async () => {
    await assert.rejects(
      // @ts-expect-error: not a split
      () => loadCityscapes(ROOT, "tset"),
      (e: Error) =>
        e instanceof RangeError &&
        e.message === `Unknown Cityscapes split "tset": expected one of "train", "val", "test"`,
    );
    // The fixture has no test split: its folder is named.
    await assert.rejects(
      () => loadCityscapes(ROOT, "test"),
      (e: Error) =>
        e instanceof Deno.errors.NotFound &&
        e.message.includes(`folder "${join(ROOT, "leftImg8bit", "test")}" is missing`),
    );
  });
});

Deno.test("parseCityscapesPolygons: bad objects are named by index", () => {
  const good = { label: "car", polygon: [[0, 0], [4, 0], [4, 4]] };
  const cases: [unknown, string][] = [
    [[], "top level is not an object"],
    [{ imgHeight: 32, objects: [] }, `missing key "imgWidth"`],
    [{ imgHeight: 0, imgWidth: 8, objects: [] }, "imgHeight is 0, expected a positive integer"],
    [{ imgHeight: 4.5, imgWidth: 8, objects: [] }, "imgHeight is 4.5, expected a positive integer"],
    [{ imgHeight: 8, imgWidth: 8 }, `"objects" is missing`],
    [{ imgHeight: 8, imgWidth: 8, objects: {} }, `"objects" is not an array`],
    [{ imgHeight: 8, imgWidth: 8, objects: [good, 3] }, "object 1 is not an object"],
    [
      { imgHeight: 8, imgWidth: 8, objects: [good, { polygon: good.polygon }] },
      "object 1 has no label",
    ],
    [
      { imgHeight: 8, imgWidth: 8, objects: [{ label: 7, polygon: good.polygon }] },
      "object 0 has label 7, expected a string",
    ],
    [
      { imgHeight: 8, imgWidth: 8, objects: [good, { label: "bus" }] },
      `object 1 ("bus") has no polygon`,
    ],
    [
      { imgHeight: 8, imgWidth: 8, objects: [{ label: "bus", polygon: [[0, 0]] }] },
      `object 0 ("bus") has a polygon of 1 point, expected at least 3`,
    ],
    [
      {
        imgHeight: 8,
        imgWidth: 8,
        objects: [good, good, { label: "bus", polygon: [[0, 0], [1, 0], [1, NaN]] }],
      },
      `object 2 ("bus") has polygon point 2 = [1,null], expected [x, y]`,
    ],
    [
      {
        imgHeight: 8,
        imgWidth: 8,
        objects: [{ label: "bus", polygon: [[0, 0], [1, 0, 2], [1, 1]] }],
      },
      `object 0 ("bus") has polygon point 1 = [1,0,2], expected [x, y]`,
    ],
    [
      { imgHeight: 8, imgWidth: 8, objects: [good, { label: "spaceship", polygon: good.polygon }] },
      `object 1 ("spaceship") has an unknown label`,
    ],
    [
      { imgHeight: 8, imgWidth: 8, objects: [{ label: "foogroup", polygon: good.polygon }] },
      `object 0 ("foogroup") has an unknown label`,
    ],
    [
      { imgHeight: 1 << 15, imgWidth: 1 << 14, objects: [] },
      "image size 16384x32768 exceeds the 268435456-pixel limit of PNG images",
    ],
  ];
  for (const [json, message] of cases) {
    assert.throws(
      () => parseCityscapesPolygons(json, "x.json"),
      (e: Error) =>
        e instanceof SyntaxError &&
        e.message === `Cannot load Cityscapes file "x.json": ${message}`,
      message,
    );
  }
  // A deleted object is skipped before it is checked, as cityscapesScripts skips it.
  assert.deepEqual(
    parseCityscapesPolygons({
      imgHeight: 8,
      imgWidth: 8,
      objects: [{ label: "car", polygon: [], deleted: 1 }],
    }).annotations,
    [],
  );
});
