import assert from "node:assert/strict";
import { generateShapes } from "../../data/shapes.ts";
import { memorySource, prepareSample } from "../../data/loader.ts";
import {
  applyTransforms,
  flipSample,
  jitterSample,
  normalizeImage,
  resizeBilinear,
  resizeSample,
  type Sample,
} from "../../data/transforms.ts";
import { Rng } from "../../tensor/rng.ts";

function sampleOf(i: number): Sample {
  const split = generateShapes({ numImages: 4, seed: 11 });
  const src = memorySource(split);
  const item = src.items[i];
  const img = split.images[i];
  const plane = img.width * img.height;
  const masks = new Uint8Array(item.labels.length * plane);
  return {
    image: img,
    boxes: item.boxes,
    labels: item.labels,
    masks,
    meta: {
      imageId: item.imageId,
      originalWidth: 128,
      originalHeight: 128,
      scaleX: 1,
      scaleY: 1,
      flipped: false,
    },
  };
}

/**
 * Every mask pixel centre lies in its box, and the box is within `tol` px of the mask's tight box
 * (1 px, or 1/scale px after downscaling, where nearest sampling can miss a thin edge).
 */
function assertBoxesCoverMasks(s: Sample, tol = 1): number {
  const { width: w, height: h } = s.image;
  let checked = 0;
  for (let i = 0; i < s.labels.length; i++) {
    const [bx1, by1, bx2, by2] = s.boxes.subarray(4 * i, 4 * i + 4);
    let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (!s.masks![i * w * h + y * w + x]) continue;
        assert.ok(
          x + 0.5 >= bx1 && x + 0.5 <= bx2 && y + 0.5 >= by1 && y + 0.5 <= by2,
          `object ${i} pixel ${x},${y}`,
        );
        x0 = Math.min(x0, x),
          y0 = Math.min(y0, y),
          x1 = Math.max(x1, x + 1),
          y1 = Math.max(y1, y + 1);
        checked++;
      }
    }
    for (const [a, b] of [[x0, bx1], [y0, by1], [x1, bx2], [y1, by2]]) {
      assert.ok(Math.abs(a - b) <= tol, `object ${i}: ${a} vs ${b}`);
    }
  }
  return checked;
}

Deno.test("transforms", async (t) => {
  const split = generateShapes({ numImages: 4, seed: 11 });
  const src = memorySource(split);
  const settings = { transform: { flipProb: 0 }, mean: [0, 0, 0], std: [1, 1, 1], withMasks: true };
  await t.step("a flipped and resized box still covers its object's mask", async () => {
    for (let i = 0; i < 4; i++) {
      const p = await prepareSample(src.items[i], split.images[i], settings, 0);
      const s: Sample = {
        image: {
          width: p.width,
          height: p.height,
          channels: 3,
          data: new Uint8Array(p.width * p.height * 3),
        },
        boxes: p.boxes,
        labels: p.labels,
        masks: p.masks,
        meta: p.meta,
      };
      // original: boxes are exactly the tight mask boxes
      assert.ok(assertBoxesCoverMasks(s) > 0);
      for (const [short, max] of [[200, 400], [77, 77], [50, 1000]]) {
        const r = resizeSample(s, short, max);
        const tol = Math.max(1, 1 / r.meta.scaleX);
        assertBoxesCoverMasks(r, tol);
        const f = flipSample(r);
        assert.equal(f.meta.flipped, true);
        assertBoxesCoverMasks(f, tol);
      }
    }
  });
  await t.step("flip twice is the identity", () => {
    const s = sampleOf(0);
    const ff = flipSample(flipSample(s));
    assert.deepEqual(ff.image.data, s.image.data);
    assert.deepEqual(ff.boxes, s.boxes);
  });
  await t.step("bilinear resize against hand values", () => {
    const img = { width: 2, height: 1, channels: 1, data: Uint8Array.of(0, 100) };
    assert.deepEqual(Array.from(resizeBilinear(img, 4, 1).data), [0, 25, 75, 100]);
    const up = resizeBilinear(
      { width: 1, height: 1, channels: 3, data: Uint8Array.of(1, 2, 3) },
      3,
      2,
    );
    assert.deepEqual(Array.from(up.data), [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
  });
  await t.step("aspect ratio kept and meta records the scale", () => {
    const s = sampleOf(1);
    const wide = { ...s, image: resizeBilinear(s.image, 128, 64), masks: undefined };
    const r = resizeSample(wide, 32, 1000);
    assert.equal(r.image.width, 64);
    assert.equal(r.image.height, 32);
    assert.equal(r.meta.scaleX, 0.5);
  });
  await t.step("seeded: same seed same output", () => {
    const s = sampleOf(2);
    const opts = { flipProb: 0.5, jitter: {}, shortSide: 100 };
    const a = applyTransforms(s, new Rng(5), opts), b = applyTransforms(s, new Rng(5), opts);
    assert.deepEqual(a, b);
    const flips = new Set(
      Array.from({ length: 20 }, (_, k) => applyTransforms(s, new Rng(k), opts).meta.flipped),
    );
    assert.equal(flips.size, 2);
  });
  await t.step("jitter keeps geometry and stays in range", () => {
    const s = sampleOf(3);
    const j = jitterSample(s, new Rng(1), { brightness: 0.9, contrast: 0.9, saturation: 0.9 });
    assert.deepEqual(j.boxes, s.boxes);
    assert.notDeepEqual(j.image.data, s.image.data);
    // Gray pixels 250, 100 and 5 under brightness alone: each becomes round(v * b), clamped at
    // 255. The 100 pixel tells b; a brightening must saturate the 250 pixel at 255, not wrap it
    // around 256 as a Uint8Array store would.
    const gray = {
      ...s,
      image: {
        width: 3,
        height: 1,
        channels: 3,
        data: Uint8Array.of(250, 250, 250, 100, 100, 100, 5, 5, 5),
      },
    };
    let saturated = 0;
    for (let seed = 0; seed < 20; seed++) {
      const out = jitterSample(gray, new Rng(seed), { brightness: 0.9, contrast: 0, saturation: 0 })
        .image.data;
      const b = out[3] / 100;
      for (const [at, v] of [[0, 250], [6, 5]]) {
        const want = Math.min(255, v * b);
        for (let k = 0; k < 3; k++) {
          assert.ok(Math.abs(out[at + k] - want) <= 0.5 * v / 100 + 1, `seed ${seed}: ${out}`);
        }
      }
      if (b > 1.03) {
        assert.deepEqual(Array.from(out.slice(0, 3)), [255, 255, 255], `seed ${seed}: ${out}`);
        saturated++;
      }
    }
    assert.ok(saturated > 0, "some seed brightens");
  });
  await t.step("normalisation and padding", () => {
    const img = {
      width: 3,
      height: 2,
      channels: 3,
      data: Uint8Array.from({ length: 18 }, (_, i) => i * 10),
    };
    const n = normalizeImage(img, 4, [10, 20, 30], [2, 4, 5]);
    assert.equal(n.width, 4);
    assert.equal(n.height, 4);
    assert.equal(n.data[0], (0 - 10) / 2); // R of (0,0)
    assert.equal(n.data[16 + 1], (40 - 20) / 4); // G of (1,0)
    assert.equal(n.data[32 + 4 + 2], (170 - 30) / 5); // B of (2,1)
    assert.equal(n.data[3], 0); // padding
  });
});
