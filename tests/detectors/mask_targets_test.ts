/**
 * Mask targets against mmdetection 2.25 + mmcv 1.5.3 (tests/fixtures/mask_rcnn/, float32 RoIAlign
 * outputs and 28x28 targets), plus hand-made cases.
 */

import assert from "node:assert/strict";
import { maskTargets, maskTargetsSoft } from "../../detectors/mask_targets.ts";
import { collate } from "../../data/loader.ts";
import { randomArray } from "../tensor/helpers.ts";

const FIXTURES = new URL("../fixtures/mask_rcnn/", import.meta.url);

interface TargetRoi {
  note: string;
  proposal: number[];
  gt_index: number;
  soft: number[][];
  target: string[];
  fragile: [number, number][];
}

interface TargetCase {
  name: string;
  height: number;
  width: number;
  gt_masks: string[][];
  rois: TargetRoi[];
}

const fixture: { cases: TargetCase[] } = JSON.parse(
  await Deno.readTextFile(new URL("mask_targets.json", FIXTURES)),
);

/** Row-major 0/1 bytes of a bitmap written as one string per row. */
function bitmap(rows: readonly string[]): Uint8Array {
  return Uint8Array.from(rows.join(""), (ch) => ch === "1" ? 1 : 0);
}

Deno.test("maskTargets matches mmdetection's fixtures", async (t) => {
  for (const c of fixture.cases) {
    await t.step(`${c.name} (${c.rois.length} RoIs)`, () => {
      const masks = new Uint8Array(c.gt_masks.length * c.height * c.width);
      c.gt_masks.forEach((m, k) => masks.set(bitmap(m), k * c.height * c.width));
      const rois = c.rois.flatMap((r) => r.proposal);
      const gtIndex = c.rois.map((r) => r.gt_index);
      const soft = maskTargetsSoft(masks, c.height, c.width, rois, gtIndex);
      const target = maskTargets(masks, c.height, c.width, rois, gtIndex);
      assert.equal(soft.length, c.rois.length * 784);
      c.rois.forEach((r, k) => {
        const expected = bitmap(r.target);
        const fragile = new Set(r.fragile.map(([y, x]) => y * 28 + x));
        for (let i = 0; i < 784; i++) {
          const [y, x] = [Math.floor(i / 28), i % 28];
          // Every operation in float32 in the kernel's order: the floats agree exactly.
          assert.equal(
            soft[k * 784 + i],
            Math.fround(r.soft[y][x]),
            `RoI ${k} (${r.note}) soft [${y}, ${x}]`,
          );
          if (!fragile.has(i)) {
            assert.equal(target[k * 784 + i], expected[i], `RoI ${k} (${r.note}) [${y}, ${x}]`);
          }
        }
        // With the floats exact, the fragile cells agree too.
        const all = target.subarray(k * 784, (k + 1) * 784);
        assert.deepEqual(Array.from(all), Array.from(expected), `RoI ${k} (${r.note})`);
      });
    });
  }
  await t.step("the fixtures exercise exact 0.5 cells and fragile cells", () => {
    const rois = fixture.cases.flatMap((c) => c.rois);
    assert.ok(rois.some((r) => r.fragile.length > 0));
    assert.ok(rois.some((r) => r.soft.flat().includes(0.5)));
  });
});

Deno.test("maskTargets hand-made cases", async (t) => {
  const h = 40, w = 50;
  const random = randomArray(h * w, 5, 0, 1);
  const noise = Uint8Array.from(random, (v) => v < 0.4 ? 1 : 0);
  await t.step("an integer 28 x 28 RoI copies the mask crop", () => {
    const out = maskTargets(noise, h, w, [7, 5, 35, 33], [0]);
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        assert.equal(out[y * 28 + x], noise[(5 + y) * w + 7 + x], `[${y}, ${x}]`);
      }
    }
  });
  await t.step("a RoI on a mask of 2 x 2 blocks gives the mask at half size", () => {
    const big = 56;
    const blocks = Uint8Array.from(randomArray(28 * 28, 6, 0, 1), (v) => v < 0.5 ? 1 : 0);
    const mask = new Uint8Array(big * big);
    for (let y = 0; y < big; y++) {
      for (let x = 0; x < big; x++) mask[y * big + x] = blocks[(y >> 1) * 28 + (x >> 1)];
    }
    const pad = new Uint8Array(big * big); // a second, empty object first
    const masks = new Uint8Array([...pad, ...mask]);
    assert.deepEqual(Array.from(maskTargets(masks, big, big, [0, 0, 56, 56], [1])), [...blocks]);
    assert.ok(maskTargets(masks, big, big, [0, 0, 56, 56], [0]).every((v) => v === 0));
  });
  await t.step("a RoI outside the mask, or of zero width, gives zeros", () => {
    const full = new Uint8Array(h * w).fill(1);
    const rois = [60, 10, 80, 30, -30, -20, -5, -1, 10, 45, 20, 60, 12, 3, 12, 30];
    const out = maskTargetsSoft(full, h, w, rois, [0, 0, 0, 0]);
    assert.ok(out.every((v) => v === 0));
  });
  await t.step("a full mask gives ones up to the clipped border", () => {
    const full = new Uint8Array(h * w).fill(1);
    const rois = [-10, -3, 55, 20.7, 0.2, 0.3, 0.9, 0.8];
    // The float32 sum of the four bilinear weights can miss 1 by an ulp.
    assert.ok(maskTargetsSoft(full, h, w, rois, [0, 0]).every((v) => Math.abs(v - 1) < 1e-6));
    assert.ok(maskTargets(full, h, w, rois, [0, 0]).every((v) => v === 1));
  });
  await t.step("binary values are the soft values thresholded at 0.5", () => {
    const rois = [3.3, 2.1, 30.7, 21.9, 0, 0, 50, 40, 10.25, 7.5, 17.75, 39];
    const soft = maskTargetsSoft(noise, h, w, rois, [0, 0, 0]);
    const hard = maskTargets(noise, h, w, rois, [0, 0, 0]);
    assert.deepEqual(Array.from(hard), Array.from(soft, (v) => v >= 0.5 ? 1 : 0));
    assert.ok(soft.some((v) => v > 0 && v < 1));
  });
  await t.step("other sizes: 14 x 14 on a 14 x 14 integer RoI copies the crop", () => {
    const out = maskTargets(noise, h, w, [20, 10, 34, 24], [0], 14);
    assert.equal(out.length, 196);
    for (let i = 0; i < 196; i++) {
      assert.equal(out[i], noise[(10 + Math.floor(i / 14)) * w + 20 + (i % 14)]);
    }
  });
  await t.step("no RoIs", () => {
    assert.equal(maskTargets(new Uint8Array(0), h, w, [], []).length, 0);
  });
});

Deno.test("maskTargets reads the loader's padded batch masks", () => {
  const meta = {
    imageId: 1,
    originalWidth: 30,
    originalHeight: 20,
    scaleX: 1,
    scaleY: 1,
    flipped: false,
  };
  const sample = (height: number, width: number, boxes: number[][]) => {
    const masks = new Uint8Array(boxes.length * height * width);
    boxes.forEach(([x1, y1, x2, y2], k) => {
      for (let y = y1; y < y2; y++) {
        masks.fill(1, (k * height + y) * width + x1, (k * height + y) * width + x2);
      }
    });
    return {
      chw: new Float32Array(3 * height * width),
      width,
      height,
      boxes: Float32Array.from(boxes.flat()),
      labels: new Int32Array(boxes.length),
      masks,
      meta,
    };
  };
  const samples = [
    sample(20, 30, [[2, 3, 12, 9], [15, 10, 29, 19]]),
    sample(45, 33, [[4, 30, 20, 44]]),
  ];
  const batch = collate(samples);
  assert.equal(batch.height, 64);
  assert.equal(batch.width, 64);
  const [a, b] = batch.masks!;
  // RoIs away from the image's right and bottom edges read the padded planes as the unpadded ones.
  const roisA = [2, 3, 12, 9, 15, 10, 29, 19, 2.5, 3.5, 13, 10];
  const ta = maskTargets(a, batch.height, batch.width, roisA, [0, 1, 1]);
  assert.deepEqual(ta, maskTargets(samples[0].masks, 20, 30, roisA, [0, 1, 1]));
  const tb = maskTargets(b, batch.height, batch.width, [4, 30, 20, 44], [0]);
  assert.deepEqual(tb, maskTargets(samples[1].masks, 45, 33, [4, 30, 20, 44], [0]));
  assert.ok(ta.subarray(0, 2 * 784).some((v) => v === 1));
  assert.ok(ta.subarray(2 * 784).every((v) => v === 0)); // object 1 seen through object 0's box
});

Deno.test("maskTargets rejects bad input with clear errors", () => {
  const masks = new Uint8Array(2 * 10 * 12);
  assert.throws(() => maskTargets(masks, 10, 13, [0, 0, 1, 1], [0]), {
    name: "TypeError",
    message: /maskTargets: masks have 240 values, not a multiple of 10x13/,
  });
  assert.throws(() => maskTargets(masks, 10, 12, [0, 0, 1, 1, 2], [0]), {
    name: "TypeError",
    message: /5 RoI coordinates for 1 gtIndex entries/,
  });
  assert.throws(() => maskTargets(masks, 10, 12, [0, 0, 1, 1, 0, 0, 2, 2], [0, 2]), {
    name: "RangeError",
    message: /RoI 1 has gtIndex 2, outside the 2 masks/,
  });
  assert.throws(() => maskTargets(masks, 10, 12, [0, NaN, 1, 1], [0]), {
    name: "RangeError",
    message: /RoI 0 has coordinate NaN/,
  });
  assert.throws(() => maskTargets(masks, 10, 12, [0, 0, 1, 1], [0], 0), {
    name: "RangeError",
    message: /size 0 is not a positive integer/,
  });
  assert.throws(() => maskTargetsSoft(masks, 0, 12, [], []), {
    name: "RangeError",
    message: /maskTargetsSoft: height 0 is not a positive integer/,
  });
});
