import assert from "node:assert/strict";
import {
  generateShapes,
  generateShapesSplits,
  SHAPE_CLASSES,
  writeShapes,
} from "../../data/shapes.ts";
import { loadCoco } from "../../data/coco.ts";
import { loadImage } from "../../data/image.ts";
import * as mask from "../../data/mask.ts";

async function digest(split: ReturnType<typeof generateShapes>): Promise<string> {
  const parts = [
    new TextEncoder().encode(JSON.stringify(split.dataset)),
    ...split.images.map((i) => i.data),
  ];
  const total = parts.reduce((a, p) => a + p.length, 0);
  const all = new Uint8Array(total);
  let o = 0;
  for (const p of parts) all.set(p, o), o += p.length;
  const h = await crypto.subtle.digest("SHA-256", all);
  return Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("shapes", async (t) => {
  const split = generateShapes({ numImages: 60, seed: 3 });
  await t.step("same seed gives byte-identical output, another seed does not", async () => {
    assert.equal(await digest(generateShapes({ numImages: 60, seed: 3 })), await digest(split));
    assert.notEqual(await digest(generateShapes({ numImages: 60, seed: 4 })), await digest(split));
  });
  await t.step("boxes are tight around the drawn mask pixels", () => {
    for (let i = 0; i < split.images.length; i++) {
      const im = split.dataset.images[i];
      const anns = split.dataset.annotations.filter((a) => a.image_id === im.id);
      assert.ok(anns.length >= 2, `image ${im.id} has ${anns.length} objects`);
      const img = split.images[i];
      anns.forEach((a, k) => {
        const rle = mask.fromSegmentation(a.segmentation!, im.height, im.width);
        const bits = mask.decode(rle);
        // tight box by brute force over the rasterised polygon
        let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1, n = 0;
        for (let y = 0; y < im.height; y++) {
          for (let x = 0; x < im.width; x++) {
            if (bits[y * im.width + x]) {
              n++,
                x0 = Math.min(x0, x),
                y0 = Math.min(y0, y),
                x1 = Math.max(x1, x),
                y1 = Math.max(y1, y);
            }
          }
        }
        assert.deepEqual(a.bbox, [x0, y0, x1 - x0 + 1, y1 - y0 + 1]);
        assert.equal(a.area, n);
        // the topmost object is painted in one colour exactly on its mask
        if (k === anns.length - 1) {
          const p = bits.indexOf(1);
          const col = img.data.subarray(p * 3, p * 3 + 3);
          for (let q = 0; q < bits.length; q++) {
            if (bits[q]) assert.deepEqual(img.data.subarray(q * 3, q * 3 + 3), col);
          }
        }
      });
    }
  });
  await t.step("all classes and all three COCO scales occur", () => {
    const big = generateShapes({ numImages: 200, seed: 5 });
    const scales = new Set(
      big.dataset.annotations.map((a) => (a.area < 1024 ? 0 : a.area <= 9216 ? 1 : 2)),
    );
    assert.deepEqual([...scales].sort(), [0, 1, 2]);
    const cats = new Set(big.dataset.annotations.map((a) => a.category_id));
    assert.equal(cats.size, SHAPE_CLASSES.length);
  });
  await t.step("split sizes as asked, disjoint ids", () => {
    const { train, val } = generateShapesSplits({ seed: 1, train: 7, val: 3, size: 64 });
    assert.equal(train.images.length, 7);
    assert.equal(val.dataset.images.length, 3);
    assert.equal(train.images[0].width, 64);
    const ids = new Set(train.dataset.images.map((i) => i.id));
    assert.ok(val.dataset.images.every((i) => !ids.has(i.id)));
  });
  await t.step("written to disk as a COCO dataset that loads back identically", async () => {
    const dir = await Deno.makeTempDir();
    const small = generateShapes({ numImages: 3, seed: 9 });
    const path = await writeShapes(dir, "train", small);
    const ds = await loadCoco(path, { onWarning: (m) => assert.fail(m) });
    assert.deepEqual(ds.annotations, small.dataset.annotations);
    const img = await loadImage(`${dir}/train/${ds.images[1].file_name}`);
    assert.deepEqual(img, small.images[1]);
    await Deno.remove(dir, { recursive: true });
  });
});
