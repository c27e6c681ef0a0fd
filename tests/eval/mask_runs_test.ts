import assert from "node:assert/strict";
import * as mask from "../../data/mask.ts";
import type { CocoDataset, CocoDetection, CocoSegmentation } from "../../data/coco_types.ts";
import {
  decodeCounts,
  type MaskRuns,
  polygonRuns,
  runsArea,
  runsBbox,
  runsIou,
  segmentationRuns,
  unionRuns,
} from "../../eval/mask_runs.ts";

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

Deno.test("polygonRuns() matches data/mask.ts on fixture and random polygons", () => {
  const polys: [number[], number, number][] = randomPolygons(4000, 7);
  for (const [seg, h, w] of allSegmentations()) {
    if (Array.isArray(seg)) { for (const p of seg) polys.push([p, h, w]); }
  }
  for (const [p, h, w] of polys) {
    const expected = mask.rleCounts(mask.fromPolygons([p], h, w)[0]);
    assert.deepEqual(polygonRuns(p, h, w), expected, `polygon ${JSON.stringify(p)} at ${h}x${w}`);
  }
});

Deno.test("segmentationRuns() reproduces pycocotools' masks of every fixture", async (t) => {
  for (const [name, f] of fixtures) {
    const ref = f.expected.segm_masks;
    if (!ref) continue;
    await t.step(name, () => {
      const imgs = new Map(f.images.map((im) => [im.id, im]));
      for (const a of f.annotations) {
        const im = imgs.get(a.image_id)!;
        const m = segmentationRuns(a.segmentation!, im.height, im.width);
        assert.deepEqual(m.counts, decodeCounts(ref.gt[String(a.id)].counts), `annotation ${a.id}`);
        assert.equal(runsArea(m.counts), ref.gt[String(a.id)].area);
      }
      f.detections.forEach((d, i) => {
        const im = imgs.get(d.image_id)!;
        let seg = d.segmentation as CocoSegmentation | undefined;
        if (!seg) {
          const [x, y, w, h] = d.bbox!;
          seg = [[x, y, x, y + h, x + w, y + h, x + w, y]];
        }
        const m = segmentationRuns(seg, im.height, im.width);
        assert.deepEqual(m.counts, decodeCounts(ref.det[i].counts), `detection ${i}`);
        assert.equal(runsArea(m.counts), ref.det[i].area);
      });
    });
  }
});

Deno.test("decodeCounts() matches countsFromString and rejects bad strings", () => {
  for (const [seg] of allSegmentations()) {
    if (!Array.isArray(seg) && typeof seg.counts === "string") {
      assert.deepEqual(decodeCounts(seg.counts), mask.countsFromString(seg.counts));
    }
  }
  const counts = [0, 5, 3, 1000000, 2, 70000, 1];
  assert.deepEqual(Array.from(decodeCounts(mask.countsToString(counts))), counts);
  assert.throws(() => decodeCounts("5 "), SyntaxError);
  assert.throws(() => decodeCounts("0P"), { name: "SyntaxError", message: /ends inside count 1/ });
  assert.throws(() => decodeCounts("0N"), { name: "SyntaxError", message: /count 1 is -2/ });
});

Deno.test("runsIou(), runsBbox() and unionRuns() match data/mask.ts", () => {
  const rnd = lcg(3);
  const [, f] = fixtures.find(([n]) => n === "random_realistic_seed0.json")!;
  const imgs = new Map(f.images.map((im) => [im.id, im]));
  const byImage = new Map<number, { rle: mask.CocoRle; runs: MaskRuns; crowd: number }[]>();
  for (const a of [...f.annotations, ...f.detections]) {
    const im = imgs.get(a.image_id)!;
    const rle = mask.fromSegmentation(a.segmentation!, im.height, im.width);
    const runs = segmentationRuns(a.segmentation!, im.height, im.width);
    assert.deepEqual(runsBbox(runs), mask.toBbox(rle));
    const list = byImage.get(a.image_id) ?? [];
    list.push({ rle, runs, crowd: "iscrowd" in a && a.iscrowd ? 1 : rnd() < 0.2 ? 1 : 0 });
    byImage.set(a.image_id, list);
  }
  let compared = 0;
  for (const list of byImage.values()) {
    const dets = list.filter(() => rnd() < 0.6), gts = list.filter(() => rnd() < 0.5);
    const crowd = gts.map((g) => g.crowd);
    const expected = mask.iou(dets.map((d) => d.rle), gts.map((g) => g.rle), crowd);
    const out = new Float64Array(3 + dets.length * gts.length).fill(NaN);
    runsIou(dets.map((d) => d.runs), gts.map((g) => g.runs), crowd, out, 3);
    assert.deepEqual(Array.from(out.subarray(3)), expected.flat());
    compared += dets.length * gts.length;
    if (list.length >= 2) {
      assert.deepEqual(
        unionRuns(list[0].runs.counts, list[1].runs.counts),
        mask.rleCounts(mask.merge([list[0].rle, list[1].rle])),
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
