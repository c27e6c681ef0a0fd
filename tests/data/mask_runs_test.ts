import assert from "node:assert/strict";
import * as mask from "../../data/mask.ts";
import type { CocoDataset, CocoDetection, CocoSegmentation } from "../../data/coco_types.ts";
import {
  countsFromString,
  countsToString,
  type MaskRuns,
  mergeRuns,
  polygonRuns,
  runsArea,
  runsBbox,
  runsIou,
} from "../../data/mask_runs.ts";

const FIXTURES = new URL("../fixtures/coco_eval/", import.meta.url);

interface MaskRef {
  area: number;
  counts: string;
}
interface Fixture extends CocoDataset {
  detections: CocoDetection[];
  expected: {
    segm_masks?: { gt: Record<string, MaskRef>; det: (MaskRef & { result_area: number })[] };
  };
}

const fixtures: [string, Fixture][] = [...Deno.readDirSync(FIXTURES)]
  .filter((e) => e.name.endsWith(".json") && e.name !== "index.json")
  .map((e) => e.name)
  .sort()
  .map((name) => [name, JSON.parse(Deno.readTextFileSync(new URL(name, FIXTURES)))]);

/** Deterministic generator (LCG) for the random polygons. */
function lcg(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
}

function randomPolygons(n: number, seed: number): [number[], number, number][] {
  const rnd = lcg(seed);
  const out: [number[], number, number][] = [];
  for (let i = 0; i < n; i++) {
    const k = 2 + Math.floor(rnd() * 9),
      h = 1 + Math.floor(rnd() * 60),
      w = 1 + Math.floor(rnd() * 60);
    const p: number[] = [];
    for (let j = 0; j < k; j++) {
      if (j > 0 && rnd() < 0.1) { // repeated vertex: a zero-length edge
        p.push(p[p.length - 2], p[p.length - 1]);
        continue;
      }
      const q = [1, 2, 10, 100][Math.floor(rnd() * 4)]; // integer, .5, .1 and .01 grids
      p.push(
        Math.round((rnd() * (w + 30) - 15) * q) / q,
        Math.round((rnd() * (h + 30) - 15) * q) / q,
      );
    }
    out.push([p, h, w]);
  }
  return out;
}

/** C's `(int)(v + 0.5)`: truncation toward zero; NaN gives INT_MIN like x86. */
function cRound(v: number): number {
  const t = v + 0.5;
  return Number.isNaN(t) ? -2147483648 : Math.trunc(t);
}

/**
 * Independent reference rasteriser: walks every point of the 5x upsampled
 * boundary, keeps the column crossings and sorts them, the plain way
 * pycocotools' `rleFrPoly` works.
 */
function referencePolygonRuns(xy: ArrayLike<number>, h: number, w: number): Uint32Array {
  const k = Math.floor(xy.length / 2);
  const x: number[] = [], y: number[] = [];
  for (let j = 0; j <= k; j++) {
    x.push(cRound(5 * xy[2 * (j % k)]));
    y.push(cRound(5 * xy[2 * (j % k) + 1]));
  }
  const u: number[] = [], v: number[] = [];
  for (let j = 0; j < k; j++) {
    let xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
    const dx = Math.abs(xe - xs), dy = Math.abs(ys - ye);
    const flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) [xs, xe, ys, ye] = [xe, xs, ye, ys];
    const n = dx >= dy ? dx : dy;
    for (let d = 0; d <= n; d++) {
      const t = flip ? n - d : d;
      if (dx >= dy) {
        u.push(t + xs);
        v.push(cRound(ys + ((ye - ys) / dx) * t));
      } else {
        v.push(t + ys);
        u.push(cRound(xs + ((xe - xs) / dy) * t));
      }
    }
  }
  const idx: number[] = [];
  for (let j = 1; j < u.length; j++) {
    if (u[j] === u[j - 1]) continue;
    const xd = (Math.min(u[j], u[j - 1]) + 0.5) / 5 - 0.5;
    if (Math.floor(xd) !== xd || xd < 0 || xd > w - 1) continue;
    const yd = (Math.min(v[j], v[j - 1]) + 0.5) / 5 - 0.5;
    idx.push(xd * h + Math.ceil(Math.min(Math.max(yd, 0), h)));
  }
  idx.push(h * w);
  idx.sort((a, b) => a - b);
  const diffs = idx.map((t, j) => t - (j > 0 ? idx[j - 1] : 0));
  const out: number[] = [diffs[0]];
  for (let j = 1; j < diffs.length; j++) {
    if (diffs[j] > 0) out.push(diffs[j]);
    else if (++j < diffs.length) out[out.length - 1] += diffs[j];
  }
  return Uint32Array.from(out);
}

/** Brute-force box, area, union and IoU of decoded bitmaps. */
function pixels(rle: mask.CocoRle): { bits: Uint8Array; area: number; bbox: number[] } {
  const [h, w] = rle.size, bits = mask.decode(rle);
  let area = 0, x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!bits[y * w + x]) continue;
      area++;
      [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
    }
  }
  return { bits, area, bbox: area ? [x0, y0, x1 - x0 + 1, y1 - y0 + 1] : [0, 0, 0, 0] };
}

function allSegmentations(): [CocoSegmentation, number, number][] {
  const out: [CocoSegmentation, number, number][] = [];
  for (const [, f] of fixtures) {
    const imgs = new Map(f.images.map((im) => [im.id, im]));
    for (const a of [...f.annotations, ...f.detections]) {
      const im = imgs.get(a.image_id)!;
      if (a.segmentation) out.push([a.segmentation, im.height, im.width]);
    }
  }
  return out;
}

Deno.test("polygonRuns() matches a reference rasteriser on fixture and random polygons", () => {
  const polys: [number[], number, number][] = randomPolygons(4000, 7);
  for (const [seg, h, w] of allSegmentations()) {
    if (Array.isArray(seg)) { for (const p of seg) polys.push([p, h, w]); }
  }
  for (const [p, h, w] of polys) {
    const expected = referencePolygonRuns(p, h, w);
    assert.deepEqual(polygonRuns(p, h, w), expected, `polygon ${JSON.stringify(p)} at ${h}x${w}`);
  }
});

Deno.test("mask.segmentationRuns() reproduces pycocotools' masks of every fixture", async (t) => {
  for (const [name, f] of fixtures) {
    const ref = f.expected.segm_masks;
    if (!ref) continue;
    await t.step(name, () => {
      const imgs = new Map(f.images.map((im) => [im.id, im]));
      for (const a of f.annotations) {
        const im = imgs.get(a.image_id)!;
        const m = mask.segmentationRuns(a.segmentation!, im.height, im.width);
        assert.deepEqual(
          m.counts,
          countsFromString(ref.gt[String(a.id)].counts),
          `annotation ${a.id}`,
        );
        assert.equal(runsArea(m.counts), ref.gt[String(a.id)].area);
      }
      f.detections.forEach((d, i) => {
        const im = imgs.get(d.image_id)!;
        let seg = d.segmentation as CocoSegmentation | undefined;
        if (!seg) {
          const [x, y, w, h] = d.bbox!;
          seg = [[x, y, x, y + h, x + w, y + h, x + w, y]];
        }
        const m = mask.segmentationRuns(seg, im.height, im.width);
        assert.deepEqual(m.counts, countsFromString(ref.det[i].counts), `detection ${i}`);
        assert.equal(runsArea(m.counts), ref.det[i].area);
      });
    });
  }
});

Deno.test("countsFromString() inverts countsToString and rejects bad strings", () => {
  for (const [seg] of allSegmentations()) {
    if (!Array.isArray(seg) && typeof seg.counts === "string") {
      assert.equal(countsToString(countsFromString(seg.counts)), seg.counts);
    }
  }
  const counts = [0, 5, 3, 1000000, 2, 70000, 1];
  assert.deepEqual(Array.from(countsFromString(countsToString(counts))), counts);
  assert.throws(() => countsFromString("5 "), SyntaxError);
  assert.throws(() => countsFromString("0P"), {
    name: "SyntaxError",
    message: /ends inside count 1/,
  });
  assert.throws(() => countsFromString("0N"), { name: "SyntaxError", message: /count 1 is -2/ });
});

Deno.test("runsIou(), runsBbox() and mergeRuns() match decoded bitmaps", () => {
  const rnd = lcg(3);
  const [, f] = fixtures.find(([n]) => n === "random_realistic_seed0.json")!;
  const imgs = new Map(f.images.map((im) => [im.id, im]));
  const byImage = new Map<
    number,
    { rle: mask.CocoRle; runs: MaskRuns; px: ReturnType<typeof pixels>; crowd: number }[]
  >();
  for (const a of [...f.annotations, ...f.detections]) {
    const im = imgs.get(a.image_id)!;
    const rle = mask.fromSegmentation(a.segmentation!, im.height, im.width);
    const runs = mask.segmentationRuns(a.segmentation!, im.height, im.width);
    const px = pixels(rle);
    assert.deepEqual(runsBbox(runs), px.bbox);
    const list = byImage.get(a.image_id) ?? [];
    list.push({ rle, runs, px, crowd: "iscrowd" in a && a.iscrowd ? 1 : rnd() < 0.2 ? 1 : 0 });
    byImage.set(a.image_id, list);
  }
  let compared = 0;
  for (const list of byImage.values()) {
    const dets = list.filter(() => rnd() < 0.6), gts = list.filter(() => rnd() < 0.5);
    const crowd = gts.map((g) => g.crowd);
    const expected = dets.map((d) =>
      gts.map((g, k) => {
        const a = d.px, b = g.px, w = d.rle.size[1];
        let inter = 0; // only inside both boxes
        const [x0, y0] = [Math.max(a.bbox[0], b.bbox[0]), Math.max(a.bbox[1], b.bbox[1])];
        const x1 = Math.min(a.bbox[0] + a.bbox[2], b.bbox[0] + b.bbox[2]);
        const y1 = Math.min(a.bbox[1] + a.bbox[3], b.bbox[1] + b.bbox[3]);
        for (let y = y0; y < y1; y++) {
          for (let x = x0; x < x1; x++) inter += a.bits[y * w + x] & b.bits[y * w + x];
        }
        return inter === 0 ? 0 : inter / (crowd[k] ? a.area : a.area + b.area - inter);
      })
    );
    const out = new Float64Array(3 + dets.length * gts.length).fill(NaN);
    runsIou(dets.map((d) => d.runs), gts.map((g) => g.runs), crowd, out, 3);
    assert.deepEqual(Array.from(out.subarray(3)), expected.flat());
    compared += dets.length * gts.length;
    if (list.length >= 2) {
      const [a, b] = [list[0].px.bits, list[1].px.bits];
      const [h, w] = list[0].rle.size;
      assert.deepEqual(
        mergeRuns(list[0].runs.counts, list[1].runs.counts),
        mask.rleCounts(mask.encode(a.map((v, i) => v | b[i]), h, w)),
      );
    }
  }
  assert.ok(compared > 1000, `only ${compared} pairs compared`);
  // Sizes that differ give -1 where the boxes overlap, as in pycocotools.
  const a: MaskRuns = { h: 4, w: 4, counts: Uint32Array.from([0, 16]) };
  const b: MaskRuns = { h: 4, w: 5, counts: Uint32Array.from([0, 20]) };
  const out = new Float64Array(1);
  runsIou([a], [b], [0], out);
  assert.equal(out[0], -1);
});
