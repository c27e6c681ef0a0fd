/**
 * Mask pasting against mmdetection 2.25 + PyTorch 1.13 (tests/fixtures/mask_rcnn/, float32 pasted
 * values and binary image masks), plus hand-made cases.
 */

import assert from "node:assert/strict";
import {
  pasteMask,
  pasteMasksToRle,
  pasteMaskValues,
  type PasteWindow,
  pasteWindow,
} from "../../detectors/paste_masks.ts";
import * as mask from "../../data/mask.ts";
import { assertClose, randomArray } from "../tensor/helpers.ts";

const FIXTURES = new URL("../fixtures/mask_rcnn/", import.meta.url);

interface Paste {
  note: string;
  box: number[];
  prob_index: number;
  region: PasteWindow | null;
  cpu_error: string | null;
  prob: (number | null)[][] | null;
  mask: string[];
  fragile: [number, number][];
  whole_image_mask: string[];
  whole_image_fragile: [number, number][];
  whole_image_max_outside_window: number | null;
  whole_image_nan_count: number;
}

interface PasteCase {
  name: string;
  img_h: number;
  img_w: number;
  mask_probs: { note: string; prob: number[][] }[];
  pastes: Paste[];
}

const fixture: { cases: PasteCase[] } = JSON.parse(
  await Deno.readTextFile(new URL("paste_masks.json", FIXTURES)),
);

const bitmap = (rows: readonly string[]) =>
  Uint8Array.from(rows.join(""), (ch) => ch === "1" ? 1 : 0);

/** Asserts equal bitmaps on every cell, naming the first difference and whether it is fragile. */
function assertBitmap(
  actual: Uint8Array,
  expected: Uint8Array,
  width: number,
  fragile: [number, number][],
  what: string,
): void {
  const soft = new Set(fragile.map(([y, x]) => y * width + x));
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) {
      const where = `[${Math.floor(i / width)}, ${i % width}]`;
      assert.fail(`${what} ${where}${soft.has(i) ? " (fragile)" : ""}: got ${actual[i]}`);
    }
  }
}

Deno.test("pasting matches mmdetection's fixtures", async (t) => {
  for (const c of fixture.cases) {
    await t.step(`${c.name} (${c.pastes.length} pastes)`, () => {
      const h = c.img_h, w = c.img_w;
      const maps = c.mask_probs.map((m) => m.prob.flat());
      for (const [k, p] of c.pastes.entries()) {
        const what = `paste ${k} (${p.note})`;
        const prob = maps[p.prob_index];
        const window = pasteWindow(p.box, h, w);
        assert.deepEqual(window, p.region, `${what}: window`);
        assert.equal(window === null, p.cpu_error !== null);
        if (window) {
          // Every operation in float32 in PyTorch's order: the floats agree exactly, NaN included.
          const values = pasteMaskValues(prob, p.box, window);
          const expected = p.prob!.flat();
          assert.equal(values.length, expected.length, `${what}: window size`);
          values.forEach((v, i) => {
            const e = expected[i];
            if (e === null) assert.ok(Number.isNaN(v), `${what} value ${i}: ${v}, expected NaN`);
            else assert.equal(v, Math.fround(e), `${what} value ${i}`);
          });
        }
        // The fragile cells agree too, since the floats are exact.
        assertBitmap(pasteMask(prob, p.box, h, w), bitmap(p.mask), w, p.fragile, what);

        const whole = pasteMaskValues(prob, p.box, [0, h, 0, w]);
        const wholeMask = Uint8Array.from(whole, (v) => v >= 0.5 ? 1 : 0);
        assertBitmap(wholeMask, bitmap(p.whole_image_mask), w, p.whole_image_fragile, what);
        assert.equal(whole.filter(Number.isNaN).length, p.whole_image_nan_count, `${what}: NaNs`);
        if (window) {
          const [y0, y1, x0, x1] = window;
          let outside = -Infinity;
          whole.forEach((v, i) => {
            const y = Math.floor(i / w), x = i % w;
            const out = y < y0 || y >= y1 || x < x0 || x >= x1;
            if (out && !Number.isNaN(v)) outside = Math.max(outside, v);
          });
          const expected = p.whole_image_max_outside_window;
          assert.equal(
            outside === -Infinity ? null : outside,
            expected === null ? null : Math.fround(expected),
          );
        }
      }
      const rles = pasteMasksToRle(
        c.pastes.flatMap((p) => maps[p.prob_index]),
        c.pastes.flatMap((p) => p.box),
        h,
        w,
      );
      assert.deepEqual(rles, c.pastes.map((p) => mask.encode(bitmap(p.mask), h, w)));
    });
  }
  await t.step("the fixtures exercise NaN, errors and exact 0.5 values", () => {
    const pastes = fixture.cases.flatMap((c) => c.pastes);
    assert.ok(pastes.some((p) => p.cpu_error !== null));
    assert.ok(pastes.some((p) => p.prob?.flat().includes(null)));
    assert.ok(pastes.some((p) => p.prob?.flat().includes(0.5)));
    assert.ok(pastes.some((p) => p.fragile.length > 0));
  });
});

Deno.test("pasteMask hand-made cases", async (t) => {
  const ones = new Float32Array(28 * 28).fill(1);
  await t.step("a map of ones fills its box: pixels whose centres lie in it", () => {
    const h = 30, w = 40;
    const r = randomArray(40, 3, 0, 1);
    for (let k = 0; k < 10; k++) {
      const x0 = -3 + r[4 * k] * 30, y0 = -3 + r[4 * k + 1] * 20;
      const box = [x0, y0, x0 + 1 + r[4 * k + 2] * 25, y0 + 1 + r[4 * k + 3] * 15];
      const [fx0, fy0, fx1, fy1] = box.map(Math.fround);
      const out = pasteMask(ones, box, h, w);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const inside = x + 0.5 >= fx0 && x + 0.5 <= fx1 && y + 0.5 >= fy0 && y + 0.5 <= fy1;
          assert.equal(out[y * w + x], inside ? 1 : 0, `box ${box}, pixel [${y}, ${x}]`);
        }
      }
    }
  });
  await t.step("an integer box: exactly its pixels", () => {
    const out = pasteMask(ones, [3, 4, 13, 10], 20, 20);
    for (let y = 0; y < 20; y++) {
      for (let x = 0; x < 20; x++) {
        assert.equal(out[y * 20 + x], x >= 3 && x < 13 && y >= 4 && y < 10 ? 1 : 0);
      }
    }
  });
  await t.step("a 28 x 28 integer box reproduces the map's threshold", () => {
    const prob = randomArray(28 * 28, 9, 0, 1);
    const out = pasteMask(prob, [5, 2, 33, 30], 32, 40);
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 40; x++) {
        const inside = x >= 5 && x < 33 && y >= 2 && y < 30;
        const expected = inside ? (prob[(y - 2) * 28 + x - 5] >= 0.5 ? 1 : 0) : 0;
        assert.equal(out[y * 40 + x], expected, `[${y}, ${x}]`);
      }
    }
    // Pixel centres land on map cells (up to the rounding of the grid's division by 28).
    assertClose(pasteMaskValues(prob, [5, 2, 33, 30], [2, 30, 5, 33]), prob, 1e-6, 0);
  });
  await t.step("threshold, zero maps, and boxes far outside (whole-image result)", () => {
    const flat = new Float32Array(784).fill(0.75);
    assert.equal(pasteMask(flat, [0, 0, 10, 10], 12, 12).reduce((a, b) => a + b), 100);
    assert.equal(pasteMask(flat, [0, 0, 10, 10], 12, 12, 0.74).reduce((a, b) => a + b), 100);
    assert.equal(pasteMask(flat, [0, 0, 10, 10], 12, 12, 0.76).reduce((a, b) => a + b), 0);
    assert.ok(pasteMask(new Float32Array(784), [1, 1, 9, 9], 12, 12).every((v) => v === 0));
    assert.ok(pasteMask(ones, [-20, 2, -3, 8], 12, 12).every((v) => v === 0));
    assert.ok(pasteMask(ones, [2, 20, 8, 30], 12, 12).every((v) => v === 0));
  });
  await t.step("pasteMasksToRle equals encode(pasteMask) per detection", () => {
    const probs = randomArray(3 * 784, 11, 0, 1);
    const boxes = [1.5, 2.25, 20, 17, 0, 0, 30, 25, -5, 10, 8, 40];
    const rles = pasteMasksToRle(probs, boxes, 25, 30, 0.4);
    rles.forEach((rle, i) => {
      const one = pasteMask(
        probs.subarray(784 * i, 784 * (i + 1)),
        boxes.slice(4 * i, 4 * i + 4),
        25,
        30,
        0.4,
      );
      assert.deepEqual(rle, mask.encode(one, 25, 30));
      assert.ok(mask.area(rle) > 0);
    });
    assert.deepEqual(pasteMasksToRle([], [], 25, 30), []);
  });
  await t.step("other map sizes", () => {
    const out = pasteMask([1, 1, 1, 1], [1, 1, 3, 3], 4, 4);
    assert.deepEqual(Array.from(out), [0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
  });
});

Deno.test("pasting rejects bad input with clear errors", () => {
  const prob = new Float32Array(784);
  assert.throws(() => pasteMask(new Float32Array(783), [0, 0, 1, 1], 4, 4), {
    name: "TypeError",
    message: /pasteMask: mask map has 783 values, not a square/,
  });
  assert.throws(() => pasteMask(prob, [0, 0, 1], 4, 4), {
    name: "TypeError",
    message: /pasteMask: box has 3 values, expected 4/,
  });
  assert.throws(() => pasteMask(prob, [0, NaN, 1, 1], 4, 4), {
    name: "RangeError",
    message: /pasteMask: box \[0, NaN, 1, 1\] is not finite/,
  });
  assert.throws(() => pasteMask(prob, [0, 0, 1, 1], 4.5, 4), {
    name: "RangeError",
    message: /imageHeight 4.5 is not a non-negative integer/,
  });
  assert.throws(() => pasteMask(prob, [0, 0, 1, 1], 4, 4, NaN), {
    name: "RangeError",
    message: /threshold NaN/,
  });
  assert.throws(() => pasteMaskValues(prob, [0, 0, 1, 1], [2, 1, 0, 3]), {
    name: "RangeError",
    message: /window \[2, 1, 0, 3\] is not \[y0, y1, x0, x1\]/,
  });
  assert.throws(
    () => pasteMasksToRle(new Float32Array(2 * 784), [0, 0, 1, 1, 0, 0, Infinity, 2], 4, 4),
    {
      name: "RangeError",
      message: /pasteMasksToRle: box 1 \[0, 0, Infinity, 2\] is not finite/,
    },
  );
  assert.throws(() => pasteMasksToRle(new Float32Array(785), [0, 0, 1, 1], 4, 4), {
    name: "TypeError",
    message: /mask map has 785 values/,
  });
  assert.throws(() => pasteMasksToRle(new Float32Array(3), [0, 0, 1, 1, 0, 0, 1, 1], 4, 4), {
    name: "TypeError",
    message: /3 probabilities for 2 boxes/,
  });
});
