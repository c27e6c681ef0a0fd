import assert from "node:assert/strict";
import * as mask from "../../data/mask.ts";
import type { CocoBbox, CocoSegmentation } from "../../data/coco_types.ts";

interface MaskCase {
  images: Record<string, [number, number]>;
  gt: {
    id: number;
    image_id: number;
    iscrowd: number;
    segmentation: CocoSegmentation;
    area: number;
    counts: string;
  }[];
  det: {
    image_id: number;
    area: number;
    counts: string;
    segmentation?: CocoSegmentation;
    bbox?: CocoBbox;
  }[];
}

// pycocotools' own rasterisation of every GT and detection mask of the shared
// coco_eval segm fixtures (see tests/fixtures/data/README.md).
const FIXTURES: Record<string, MaskCase> = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/data/segm_masks.json", import.meta.url)),
);

Deno.test("mask matches pycocotools on the coco_eval segm fixtures", async (t) => {
  for (const [name, fx] of Object.entries(FIXTURES)) {
    await t.step(name, () => {
      for (const g of fx.gt) {
        const [h, w] = fx.images[String(g.image_id)];
        const rle = mask.fromSegmentation(g.segmentation, h, w);
        assert.equal(rle.counts, g.counts, `GT ${g.id} counts`);
        assert.equal(mask.area(rle), g.area, `GT ${g.id} area`);
      }
      fx.det.forEach((d, i) => {
        const [h, w] = fx.images[String(d.image_id)];
        let seg = d.segmentation;
        if (!seg) {
          const [x, y, bw, bh] = d.bbox!;
          seg = [[x, y, x, y + bh, x + bw, y + bh, x + bw, y]];
        }
        const rle = mask.fromSegmentation(seg, h, w);
        assert.equal(rle.counts, d.counts, `${name} detection ${i} counts`);
        assert.equal(mask.area(rle), d.area, `${name} detection ${i} area`);
      });
    });
  }
});

function bruteIou(a: Uint8Array, b: Uint8Array, crowd: boolean): number {
  let i = 0, u = 0, da = 0;
  for (let k = 0; k < a.length; k++) {
    if (a[k] && b[k]) i++;
    if (a[k] || b[k]) u++;
    if (a[k]) da++;
  }
  if (i === 0) return 0;
  return i / (crowd ? da : u);
}

Deno.test("mask encode/decode/merge/iou/toBbox agree with brute force", async (t) => {
  const fx = FIXTURES.random_small_seed4;
  const byImage = new Map<number, mask.CocoRle[]>();
  const crowd = new Map<number, number[]>();
  for (const g of fx.gt) {
    const [h, w] = fx.images[String(g.image_id)];
    const list = byImage.get(g.image_id) ?? [];
    list.push(mask.fromSegmentation(g.segmentation, h, w));
    byImage.set(g.image_id, list);
    crowd.set(g.image_id, [...(crowd.get(g.image_id) ?? []), g.iscrowd]);
  }
  await t.step("decode then encode round-trips and toBbox is tight", () => {
    for (const [imageId, rles] of byImage) {
      const [h, w] = fx.images[String(imageId)];
      for (const rle of rles) {
        const bits = mask.decode(rle);
        const back = mask.encode(bits, h, w);
        assert.equal(back.counts, rle.counts);
        let x0 = w, y0 = h, x1 = -1, y1 = -1, n = 0;
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) {
            if (!bits[y * w + x]) continue;
            n++;
            x0 = Math.min(x0, x), y0 = Math.min(y0, y), x1 = Math.max(x1, x), y1 = Math.max(y1, y);
          }
        }
        assert.equal(mask.area(rle), n);
        assert.deepEqual(mask.toBbox(rle), n ? [x0, y0, x1 - x0 + 1, y1 - y0 + 1] : [0, 0, 0, 0]);
      }
    }
  });
  await t.step("merge union and intersection", () => {
    for (const rles of byImage.values()) {
      if (rles.length < 2) continue;
      const bits = rles.map(mask.decode);
      const union = mask.decode(mask.merge(rles));
      const inter = mask.decode(mask.merge(rles, true));
      for (let k = 0; k < union.length; k++) {
        assert.equal(union[k], bits.some((b) => b[k]) ? 1 : 0);
        assert.equal(inter[k], bits.every((b) => b[k]) ? 1 : 0);
      }
    }
  });
  await t.step("iou with crowd", () => {
    const dets = new Map<number, mask.CocoRle[]>();
    for (const d of fx.det) {
      const list = dets.get(d.image_id) ?? [];
      list.push({ size: fx.images[String(d.image_id)], counts: d.counts });
      dets.set(d.image_id, list);
    }
    let checked = 0;
    for (const [imageId, ds] of dets) {
      const gs = byImage.get(imageId) ?? [];
      const cr = crowd.get(imageId) ?? [];
      const got = mask.iou(ds, gs, cr);
      ds.forEach((d, i) =>
        gs.forEach((g, j) => {
          assert.equal(got[i][j], bruteIou(mask.decode(d), mask.decode(g), cr[j] === 1));
          checked++;
        })
      );
    }
    assert.ok(checked > 50);
  });
});

Deno.test("mask API edge cases", async (t) => {
  await t.step("string counts round trip with large and negative deltas", () => {
    const counts = [0, 5, 100000, 3, 1, 2 ** 20, 7, 0x7fffffff];
    assert.deepEqual(Array.from(mask.countsFromString(mask.countsToString(counts))), counts);
  });
  await t.step("pycocotools strings", () => {
    // 2x3 mask, column-major bits [0,1, 1,1, 0,0] -> counts [1, 3, 2]
    const rle = mask.encode([0, 1, 0, 1, 1, 0], 2, 3);
    assert.deepEqual(Array.from(mask.rleCounts(rle)), [1, 3, 2]);
    assert.equal(rle.counts, "132");
    assert.deepEqual(mask.toBbox(rle), [0, 0, 2, 2]);
  });
  await t.step("fromUncompressed", () => {
    const rle = mask.fromUncompressed({ size: [2, 2], counts: [1, 2, 1] });
    assert.equal(mask.area(rle), 2);
    assert.deepEqual(mask.toUncompressed(rle).counts, [1, 2, 1]);
    assert.throws(() => mask.fromUncompressed({ size: [2, 2], counts: [1, 2] }), RangeError);
  });
  await t.step("empty and size mismatch", () => {
    const empty = mask.encode(new Uint8Array(12), 3, 4);
    assert.equal(mask.area(empty), 0);
    assert.deepEqual(mask.toBbox(empty), [0, 0, 0, 0]);
    const a = mask.encode(new Uint8Array(12).fill(1), 3, 4);
    const b = mask.encode(new Uint8Array(12).fill(1), 4, 3);
    assert.throws(() => mask.merge([a, b]), RangeError);
    assert.deepEqual(mask.iou([a], [b], [0]), [[-1]]);
    assert.deepEqual(mask.iou([], [a], [0]), []);
  });
  await t.step("box iou follows pycocotools' operation order", () => {
    assert.deepEqual(mask.iou([[0, 0, 2, 2]], [[1, 1, 2, 2]], [0]), [[1 / 7]]);
    assert.deepEqual(mask.iou([[0, 0, 2, 2]], [[1, 1, 2, 2]], [1]), [[1 / 4]]);
    assert.deepEqual(mask.iou([[0, 0, 1, 1]], [[1, 0, 1, 1]], [0]), [[0]]);
  });
  await t.step("fromBboxes equals box polygon", () => {
    const [r] = mask.fromBboxes([[1, 1, 3, 2]], 6, 6);
    assert.equal(mask.area(r), 6);
    assert.deepEqual(mask.toBbox(r), [1, 1, 3, 2]);
  });
  await t.step("bad input", () => {
    assert.throws(() => mask.countsFromString("\u0001"), SyntaxError);
    assert.throws(() => mask.countsFromString("0`"), SyntaxError);
    assert.throws(() => mask.fromPolygons([[1, 2, 3]], 4, 4), TypeError);
    assert.throws(() => mask.encode([1, 0], 2, 2), TypeError);
    assert.throws(() => mask.decode({ size: [2, 2], counts: "5" }), RangeError);
  });
});
