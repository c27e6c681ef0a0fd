import assert from "node:assert/strict";
import { join, relative } from "node:path";
import ATSS_TINY_SHAPES from "../../configs/atss_tiny_shapes.ts";
import type { CocoDetection } from "../../data/coco_types.ts";
import { decodePng, encodePng } from "../../data/png.ts";
import { generateShapes, SHAPE_CLASSES } from "../../data/shapes.ts";
import { DETECT_USAGE, drawRule, main, selectDetections } from "../../cli/detect.ts";
import MASK_RCNN_TINY_SHAPES from "../../configs/mask_rcnn_tiny_shapes.ts";
import * as mask from "../../data/mask.ts";
import { classColor, drawBoxes, tintMask, upscale } from "../../engine/draw.ts";
import { loadModel, SCORE_THRESHOLDS_KEY, storeScoreThresholds } from "../../engine/model_io.ts";
import { cpu } from "../../tensor/device.ts";
import { loadSafetensors } from "../../tensor/safetensors.ts";
import { randomCheckpoint } from "../engine/helpers.ts";

const det = (category_id: number, score: number, image_id = 1): CocoDetection => ({
  image_id,
  category_id,
  bbox: [0, 0, 4, 4],
  score,
});

Deno.test("drawRule() uses stored thresholds, falls back, and gives way to flags", async (t) => {
  const names = ["a", "b", "c"];
  await t.step("stored per-class thresholds", () => {
    const warnings: string[] = [];
    const rule = drawRule([0.2, 0.5, 0.3], names, {}, (m) => warnings.push(m));
    assert.deepEqual(rule.thresholds, [0.2, 0.5, 0.3]);
    assert.equal(rule.top, undefined);
    assert.deepEqual(warnings, []);
  });
  await t.step("a class without one takes the highest stored threshold, with a warning", () => {
    const warnings: string[] = [];
    const rule = drawRule([0.2, null, 0.3], names, {}, (m) => warnings.push(m));
    assert.deepEqual(rule.thresholds, [0.2, 0.3, 0.3]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /"b".*0\.300/);
  });
  await t.step("no thresholds at all: the top 10, with a warning", () => {
    for (const stored of [undefined, [null, null, null]]) {
      const warnings: string[] = [];
      const rule = drawRule(stored, names, {}, (m) => warnings.push(m));
      assert.equal(rule.thresholds, undefined);
      assert.equal(rule.top, 10);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], /no score thresholds/);
    }
  });
  await t.step("--score-thr and --top override the stored thresholds", () => {
    const quiet = () => assert.fail("no warning expected");
    assert.deepEqual(drawRule([0.2, 0.5, 0.3], names, { scoreThr: 0.4 }, quiet), {
      thresholds: [0.4, 0.4, 0.4],
      top: undefined,
      description: "score >= 0.4",
    });
    assert.deepEqual(drawRule(undefined, names, { top: 3 }, quiet), {
      thresholds: undefined,
      top: 3,
      description: "top 3",
    });
    assert.deepEqual(drawRule([0.2, 0.5, 0.3], names, { scoreThr: 0, top: 2 }, quiet).top, 2);
  });
});

Deno.test("selectDetections() keeps scores at or above their class's threshold", () => {
  const dets = [det(1, 0.1), det(1, 0.25), det(2, 0.25), det(2, 0.6), det(1, 0.9)];
  const kept = selectDetections(dets, { thresholds: [0.25, 0.5], description: "" });
  assert.deepEqual(kept.map((d) => [d.category_id, d.score]), [[1, 0.9], [2, 0.6], [1, 0.25]]);
  const top = selectDetections(dets, { thresholds: [0, 0], top: 2, description: "" });
  assert.deepEqual(top.map((d) => d.score), [0.9, 0.6]);
  assert.equal(selectDetections(dets, { description: "" }).length, 5);
});

const SHAPES = ATSS_TINY_SHAPES;

/** A random-weight checkpoint of the default config (no thresholds) and two small images. */
async function setUp(dir: string) {
  const checkpoint = await randomCheckpoint(dir);
  const images = [];
  for (const [i, size] of [96, 64].entries()) {
    const image = generateShapes({ numImages: 1, seed: 20 + i, size }).images[0];
    const path = join(dir, `image${i}.png`);
    await Deno.writeFile(path, await encodePng(image));
    images.push({ path, image });
  }
  return { checkpoint, images };
}

/** Runs `detect` in this process; returns its exit code, stdout lines and stderr lines. */
async function detect(args: string[]) {
  const out: string[] = [], err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    return { code: await main([...args, "--backend", "cpu"]), out, err };
  } finally {
    Object.assign(console, { log, error });
  }
}

const drewCounts = (lines: string[]) => lines.map((l) => Number(l.match(/drew (\d+) of \d+/)![1]));

Deno.test("detect: per-class thresholds from the checkpoint, --score-thr, --top", async (t) => {
  const dir = await Deno.makeTempDir();
  const { checkpoint, images } = await setUp(dir);
  const paths = images.map((i) => i.path);
  let all: CocoDetection[] = [];

  await t.step("a checkpoint without thresholds draws the top 10 and says so", async () => {
    const out = join(dir, "plain");
    const run = await detect(["--checkpoint", checkpoint, "--out", out, ...paths]);
    assert.equal(run.code, 0, run.err.join("\n"));
    assert.match(run.err.join("\n"), /stores no score thresholds.*top 10/);
    assert.deepEqual(drewCounts(run.out), [10, 10]);
    all = JSON.parse(await Deno.readTextFile(join(out, "detections.json")));
    assert.ok(all.length > 20, "an untrained head with no score threshold detects plenty");
    // The pictures are scaled up by a whole factor to at least 512 px, and boxes are drawn.
    for (const [i, { image }] of images.entries()) {
      const png = await decodePng(await Deno.readFile(join(out, `image${i}.png`)));
      const f = Math.ceil(512 / image.width);
      assert.equal(png.width, image.width * f);
      assert.equal(png.height, image.height * f);
      assert.ok(png.width >= 512 && png.width > image.width);
      assert.notDeepEqual(png.data, upscale(image, f).data);
    }
  });

  // Thresholds that cut through the detections: each class's third-best score overall.
  const thresholds = SHAPE_CLASSES.map((_, k) => {
    const scores = all.filter((d) => d.category_id === k + 1).map((d) => d.score);
    return scores.sort((a, b) => b - a)[2] ?? null;
  });
  const highest = Math.max(...thresholds.filter((x) => x !== null));
  const expected = [1, 2].map((id) =>
    all.filter((d) => d.image_id === id && d.score >= (thresholds[d.category_id - 1] ?? highest))
      .length
  );

  await t.step("thresholds stored in the checkpoint are used by default", async () => {
    await storeScoreThresholds(checkpoint, thresholds, [...SHAPE_CLASSES], "test");
    const { metadata } = await loadSafetensors(checkpoint);
    assert.deepEqual(JSON.parse(metadata[SCORE_THRESHOLDS_KEY]), thresholds);
    assert.equal(metadata.config, SHAPES.name, "the rest of the metadata is kept");
    const restored = await loadModel(checkpoint, cpu());
    assert.deepEqual(restored.scoreThresholds, thresholds);
    const out = join(dir, "stored");
    const run = await detect(["--checkpoint", checkpoint, "--out", out, ...paths]);
    assert.equal(run.code, 0, run.err.join("\n"));
    assert.ok(!run.err.some((l) => l.includes("no score thresholds")));
    assert.deepEqual(drewCounts(run.out), expected);
    assert.ok(expected[0] + expected[1] < all.length, "some detections are below");
    assert.match(run.out[0], /per-class oLRP thresholds/);
  });

  await t.step("detections below the thresholds are not drawn", async () => {
    await storeScoreThresholds(checkpoint, SHAPE_CLASSES.map(() => 1), [...SHAPE_CLASSES], "t");
    const out = join(dir, "none");
    const run = await detect(["--checkpoint", checkpoint, "--out", out, ...paths]);
    assert.equal(run.code, 0, run.err.join("\n"));
    assert.deepEqual(drewCounts(run.out), [0, 0]);
    for (const [i, { image }] of images.entries()) {
      const png = await decodePng(await Deno.readFile(join(out, `image${i}.png`)));
      const big = upscale(image, Math.ceil(512 / image.width));
      assert.deepEqual(png.data, big.data, "nothing is drawn on the scaled image");
    }
  });

  await t.step("--score-thr and --top override the stored thresholds", async () => {
    const out = join(dir, "flags");
    const thr = thresholds[0]!;
    let run = await detect([
      "--checkpoint",
      checkpoint,
      "--out",
      out,
      "--score-thr",
      `${thr}`,
      ...paths,
    ]);
    assert.equal(run.code, 0, run.err.join("\n"));
    assert.deepEqual(
      drewCounts(run.out),
      [1, 2].map((id) => all.filter((d) => d.image_id === id && d.score >= thr).length),
    );
    // Relative image paths work as well as absolute ones.
    const relativePaths = paths.map((p) => relative(Deno.cwd(), p));
    run = await detect(["--checkpoint", checkpoint, "--out", out, "--top", "3", ...relativePaths]);
    assert.deepEqual(drewCounts(run.out), [3, 3]);
    run = await detect([
      "--checkpoint",
      checkpoint,
      "--out",
      out,
      "--format",
      "svg",
      "--min-size",
      "0",
      "--top",
      "2",
      paths[1],
    ]);
    assert.equal(run.code, 0, run.err.join("\n"));
    const svg = await Deno.readTextFile(join(out, "image1.svg"));
    assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"'));
    assert.equal(svg.split('<g class="det"').length - 1, 2);
  });

  await t.step("bad flags and --help", async () => {
    assert.equal(
      (await detect(["--checkpoint", checkpoint, "--score-thr", "2", paths[0]])).code,
      1,
    );
    assert.equal((await detect(["--checkpoint", checkpoint, "--top", "0", paths[0]])).code, 1);
    assert.equal((await detect(["--checkpoint", checkpoint, "--max-draw", "3", paths[0]])).code, 2);
    const help = await detect(["--help"]);
    assert.equal(help.code, 0);
    for (const flag of ["--score-thr", "--top", "--min-size", "oLRP"]) {
      assert.ok(DETECT_USAGE.includes(flag), flag);
    }
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("detect: a Mask R-CNN's masks are tinted under its boxes and written as RLE", async () => {
  const dir = await Deno.makeTempDir();
  const checkpoint = await randomCheckpoint(dir, MASK_RCNN_TINY_SHAPES);
  const image = generateShapes({ numImages: 1, seed: 30, size: 64 }).images[0];
  const path = join(dir, "shapes.png");
  await Deno.writeFile(path, await encodePng(image));
  const out = join(dir, "out");
  const run = await detect(["--checkpoint", checkpoint, "--out", out, "--top", "3", path]);
  assert.equal(run.code, 0, run.err.join("\n"));
  const dets: CocoDetection[] = JSON.parse(await Deno.readTextFile(join(out, "detections.json")));
  assert.ok(dets.length >= 3);
  for (const d of dets) assert.deepEqual(d.segmentation?.size, [64, 64]);
  // The drawing: the top 3 (lowest score first) tinted, then outlined and captioned.
  const drawn = selectDetections(dets, { thresholds: undefined, top: 3, description: "" })
    .reverse();
  assert.ok(drawn.some((d) => mask.area(d.segmentation!) > 0), "an untrained head still paints");
  const f = Math.ceil(512 / 64);
  const tinted = upscale(image, f);
  for (const d of drawn) {
    tintMask(tinted, mask.decode(d.segmentation!), 64, 64, classColor(d.category_id - 1), 0.45, f);
  }
  const boxes = drawn.map((d) => {
    const [x, y, w, h] = d.bbox!;
    return {
      box: [x * f, y * f, (x + w) * f, (y + h) * f] as [number, number, number, number],
      classId: d.category_id - 1,
      score: d.score,
      label: SHAPE_CLASSES[d.category_id - 1],
    };
  });
  const expected = drawBoxes(tinted, boxes, { captions: true, textScale: 2 });
  const png = await decodePng(await Deno.readFile(join(out, "shapes.png")));
  assert.deepEqual(png.data, expected.data);
  await Deno.remove(dir, { recursive: true });
});
