import assert from "node:assert/strict";
import { generateAnchors } from "../../detectors/anchors.ts";
import { RPN_ANCHORS, rpnAnchors, rpnProposals } from "../../detectors/rpn.ts";
import { overlapHost } from "../../boxes/iou.ts";

/** A small deterministic generator (tests only). */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

Deno.test("rpnAnchors() follow mmdetection's AnchorGenerator", async (t) => {
  await t.step("scale 8, ratios 0.5 / 1 / 2, one size per level", () => {
    const a = rpnAnchors(64, 32);
    assert.deepEqual(a.perLevel, [16 * 8 * 3, 8 * 4 * 3, 4 * 2 * 3, 2 * 1 * 3, 1 * 1 * 3]);
    assert.equal(a.perLocation, 3);
    let start = 0;
    RPN_ANCHORS.strides.forEach((stride, level) => {
      // mmdetection: base size = stride, h_ratios = sqrt(r), w_ratios = 1 / h_ratios,
      // ws = base * w_ratios * 8, centred on (0, 0) (center_offset 0).
      const expected = [0.5, 1, 2].flatMap((r) => {
        const w = stride / Math.sqrt(r) * 8, h = stride * Math.sqrt(r) * 8;
        return [-w / 2, -h / 2, w / 2, h / 2];
      });
      const got = Array.from(a.boxes.subarray(4 * start, 4 * start + 12));
      got.forEach((v, k) => assert.ok(Math.abs(v - expected[k]) < 1e-4, `level ${level}`));
      // Sizes per level: every anchor of the level has area (8 stride)^2.
      for (let i = start; i < start + a.perLevel[level]; i++) {
        const w = a.boxes[4 * i + 2] - a.boxes[4 * i], h = a.boxes[4 * i + 3] - a.boxes[4 * i + 1];
        assert.ok(Math.abs(w * h / (8 * stride) ** 2 - 1) < 1e-5);
      }
      start += a.perLevel[level];
    });
  });
  await t.step("locations row-major, the three ratios at each", () => {
    const a = rpnAnchors(8, 8, [4]);
    // Anchor 3 is the first ratio at location (x=1, y=0); anchor 6 at (x=0, y=1).
    assert.equal(a.boxes[4 * 3] - a.boxes[0], 4);
    assert.equal(a.boxes[4 * 3 + 1] - a.boxes[1], 0);
    assert.equal(a.boxes[4 * 6 + 1] - a.boxes[1], 4);
    assert.equal(a.boxes[4 * 6] - a.boxes[0], 0);
  });
  await t.step("the same as generateAnchors with RPN_ANCHORS", () => {
    assert.deepEqual(rpnAnchors(40, 24).boxes, generateAnchors(40, 24, RPN_ANCHORS).boxes);
  });
});

Deno.test("rpnProposals()", async (t) => {
  const rand = lcg(7);
  const imageShape: [number, number] = [64, 96];
  const anchors = rpnAnchors(...imageShape, [4, 8, 16]);
  const numAnchors = anchors.boxes.length / 4;
  const scores = Float32Array.from({ length: numAnchors }, rand);
  const deltas = Float32Array.from({ length: 4 * numAnchors }, () => rand() * 4 - 2);

  await t.step("never more than the caps, sorted by score, clipped", () => {
    for (const [nmsPre, maxPerImage] of [[2000, 1000], [50, 1000], [50, 30], [0, 10]]) {
      const p = rpnProposals(anchors.boxes, anchors.perLevel, scores, deltas, imageShape, {
        nmsPre,
        maxPerImage,
      });
      const k = p.scores.length;
      assert.ok(k <= maxPerImage);
      assert.equal(p.boxes.length, 4 * k);
      assert.equal(p.levels.length, k);
      anchors.perLevel.forEach((_, level) => {
        assert.ok(p.levels.filter((l) => l === level).length <= nmsPre);
      });
      for (let j = 1; j < k; j++) assert.ok(p.scores[j - 1] >= p.scores[j]);
      for (let j = 0; j < k; j++) {
        const [x1, y1, x2, y2] = p.boxes.subarray(4 * j, 4 * j + 4);
        assert.ok(x1 >= 0 && y1 >= 0 && x2 <= imageShape[1] && y2 <= imageShape[0]);
        assert.ok(x2 > x1 && y2 > y1, "empty boxes are dropped (minSize 0)");
      }
      if (nmsPre === 0) assert.equal(k, 0);
      if (maxPerImage === 30) assert.equal(k, 30, "the per-image cap is reached");
    }
  });

  await t.step("NMS within each level only", () => {
    const p = rpnProposals(anchors.boxes, anchors.perLevel, scores, deltas, imageShape);
    const k = p.scores.length;
    let crossLevel = 0;
    for (let i = 0; i < k; i++) {
      for (let j = i + 1; j < k; j++) {
        const iou = overlapHost(p.boxes, i, p.boxes, j, "iou", 0, Math.fround);
        if (p.levels[i] === p.levels[j]) assert.ok(!(iou > 0.7), `${i}, ${j}: IoU ${iou}`);
        else if (iou > 0.7) crossLevel++;
      }
    }
    assert.ok(crossLevel > 0, "some overlapping pairs on different levels survive");
    // Two identical boxes: suppressed on one level, both kept on two.
    const two = Float32Array.of(10, 10, 30, 30, 11, 10, 30, 30);
    const s = Float32Array.of(0.9, 0.8), d = new Float32Array(8);
    const same = rpnProposals(two, [2], s, d, [64, 64]);
    assert.deepEqual(Array.from(same.scores), [s[0]]);
    const apart = rpnProposals(two, [1, 1], s, d, [64, 64]);
    assert.deepEqual(Array.from(apart.scores), [s[0], s[1]]);
    assert.deepEqual(Array.from(apart.levels), [0, 1]);
  });

  await t.step("top nmsPre per level by score, then decode and clip", () => {
    // Level 0: three anchors, nmsPre 2 keeps the two best (0.7 and 0.5).
    const a = Float32Array.of(0, 0, 10, 10, 20, 0, 30, 10, 40, 0, 50, 10, -20, -20, 20, 20);
    const s = Float32Array.of(0.2, 0.7, 0.5, 0.1);
    const d = new Float32Array(16);
    d[4] = 1; // anchor 1 shifted right by 0.1 x 10 = 1 px
    const p = rpnProposals(a, [3, 1], s, d, [15, 45], { nmsPre: 2 });
    assert.deepEqual(Array.from(p.scores), [s[1], s[2], s[3]]);
    assert.deepEqual(Array.from(p.boxes), [21, 0, 31, 10, 40, 0, 45, 10, 0, 0, 20, 15]);
    assert.deepEqual(Array.from(p.levels), [0, 0, 1]);
  });

  await t.step("minSize drops small boxes; a box clipped to nothing goes at 0", () => {
    const a = Float32Array.of(0, 0, 4, 4, 0, 0, 10, 10, 100, 100, 110, 110);
    const s = Float32Array.of(0.9, 0.8, 0.7), d = new Float32Array(12);
    assert.equal(rpnProposals(a, [3], s, d, [50, 50]).scores.length, 2);
    assert.equal(rpnProposals(a, [3], s, d, [50, 50], { minSize: 4 }).scores.length, 1);
    assert.equal(rpnProposals(a, [3], s, d, [50, 50], { minSize: -1 }).scores.length, 3);
  });

  await t.step("an image with no anchors gives empty results", () => {
    const p = rpnProposals(new Float32Array(), [0, 0], new Float32Array(), new Float32Array(), [
      0,
      0,
    ]);
    assert.equal(p.boxes.length, 0);
    assert.equal(p.scores.length, 0);
    assert.equal(p.levels.length, 0);
    const none = rpnAnchors(0, 0);
    assert.equal(none.boxes.length, 0);
  });

  await t.step("bad input is refused", () => {
    const a = Float32Array.of(0, 0, 1, 1);
    assert.throws(() => rpnProposals(a, [2], [0.5], new Float32Array(4), [4, 4]), RangeError);
    assert.throws(() => rpnProposals(a, [1], [0.5, 0.1], new Float32Array(4), [4, 4]), RangeError);
    assert.throws(
      () => rpnProposals(a, [1], [0.5], new Float32Array(4), [4, 4], { nmsPre: -1 }),
      RangeError,
    );
  });
});
