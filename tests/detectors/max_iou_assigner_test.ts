import assert from "node:assert/strict";
import {
  ASSIGN_IGNORED,
  ASSIGN_NEGATIVE,
  maxIouAssign,
  RPN_ASSIGN,
} from "../../detectors/max_iou_assigner.ts";

const f32 = (...v: number[]) => Float32Array.from(v);

Deno.test("maxIouAssign()", async (t) => {
  await t.step("no ground truth: every anchor negative with max IoU 0", () => {
    const anchors = f32(0, 0, 10, 10, 5, 5, 15, 15, 0, 0, 4, 4);
    const r = maxIouAssign(anchors, f32(), RPN_ASSIGN);
    assert.deepEqual(Array.from(r.gtIndex), [ASSIGN_NEGATIVE, ASSIGN_NEGATIVE, ASSIGN_NEGATIVE]);
    assert.deepEqual(Array.from(r.maxIou), [0, 0, 0]);
    assert.equal(r.numPositives, 0);
  });

  await t.step("no anchors: empty results", () => {
    const r = maxIouAssign(f32(), f32(0, 0, 10, 10), RPN_ASSIGN);
    assert.equal(r.gtIndex.length, 0);
    assert.equal(r.numPositives, 0);
  });

  await t.step("one box: positive, ignored band, negative", () => {
    const anchors = f32(
      0,
      0,
      10,
      10, // IoU 1: positive
      0,
      0,
      10,
      20, // IoU 0.5: ignored
      0,
      0,
      10,
      40, // IoU 0.25: negative
      50,
      50,
      60,
      60, // IoU 0: negative
    );
    const r = maxIouAssign(anchors, f32(0, 0, 10, 10), { ...RPN_ASSIGN, lowQuality: false });
    assert.deepEqual(Array.from(r.gtIndex), [0, ASSIGN_IGNORED, ASSIGN_NEGATIVE, ASSIGN_NEGATIVE]);
    assert.ok(Math.abs(r.maxIou[1] - 0.5) < 1e-6 && Math.abs(r.maxIou[2] - 0.25) < 1e-6);
    assert.equal(r.numPositives, r.gtIndex.filter((g) => g >= 0).length);
  });

  await t.step("IoU exactly at negIou is ignored, just below is negative", () => {
    const anchors = f32(0, 0, 10, 10, 0, 0, 10, 10);
    const r0 = maxIouAssign(anchors.slice(0, 4), f32(0, 0, 10, 5), {
      posIou: 0.7,
      negIou: 0.5,
      minPosIou: 0.3,
      lowQuality: false,
    });
    assert.deepEqual(Array.from(r0.gtIndex), [ASSIGN_IGNORED]);
    const r1 = maxIouAssign(anchors.slice(0, 4), f32(0, 0, 10, 4), {
      posIou: 0.7,
      negIou: 0.5,
      minPosIou: 0.3,
      lowQuality: false,
    });
    assert.deepEqual(Array.from(r1.gtIndex), [ASSIGN_NEGATIVE]);
  });

  await t.step(
    "a box smaller than every anchor gets its best anchors as low-quality matches",
    () => {
      // 16 px anchors, two of them identical; a 6 px box inside those two (IoU 36/256 each),
      // touching the third along an edge (IoU 0).
      const anchors = f32(
        0,
        0,
        16,
        16,
        0,
        0,
        16,
        16,
        8,
        0,
        24,
        16,
        100,
        100,
        116,
        116,
      );
      const gt = f32(2, 2, 8, 8);
      const without = maxIouAssign(anchors, gt, {
        ...RPN_ASSIGN,
        minPosIou: 0.1,
        lowQuality: false,
      });
      assert.equal(without.numPositives, 0);
      const r = maxIouAssign(anchors, gt, { ...RPN_ASSIGN, minPosIou: 0.1 });
      // gt_max_assign_all: both anchors at the box's best IoU become positive.
      assert.deepEqual(Array.from(r.gtIndex), [0, 0, ASSIGN_NEGATIVE, ASSIGN_NEGATIVE]);
      assert.equal(r.numPositives, 2);
      assert.ok(Math.abs(r.maxIou[0] - 36 / 256) < 1e-6);
      // Below minPosIou the box gets nothing.
      const strict = maxIouAssign(anchors, gt, RPN_ASSIGN);
      assert.equal(strict.numPositives, 0);
    },
  );

  await t.step("ties between boxes: the first box wins by max, a later one by low quality", () => {
    const anchors = f32(0, 0, 10, 10, 40, 40, 50, 50);
    // Two identical boxes on anchor 0 (IoU 1 with both).
    const gt = f32(0, 0, 10, 10, 0, 0, 10, 10);
    const noLq = maxIouAssign(anchors, gt, { ...RPN_ASSIGN, lowQuality: false });
    assert.deepEqual(Array.from(noLq.gtIndex), [0, ASSIGN_NEGATIVE]);
    // Low-quality matches run box by box, so box 1 overrides box 0 (mmdetection's loop).
    const lq = maxIouAssign(anchors, gt, RPN_ASSIGN);
    assert.deepEqual(Array.from(lq.gtIndex), [1, ASSIGN_NEGATIVE]);
    assert.equal(lq.numPositives, 1);
  });

  await t.step("a low-quality match can take an anchor from another box's regular match", () => {
    const anchors = f32(0, 0, 10, 10, 100, 0, 110, 10);
    // Box 0 matches anchor 0 at IoU 0.8; box 1 only ever overlaps anchor 0 (IoU 0.4).
    const gt = f32(0, 0, 10, 8, 0, 0, 10, 4);
    const r = maxIouAssign(anchors, gt, RPN_ASSIGN);
    assert.ok(Math.abs(r.maxIou[0] - 0.8) < 1e-6);
    assert.deepEqual(Array.from(r.gtIndex), [1, ASSIGN_NEGATIVE]);
  });

  await t.step("bad input is refused", () => {
    assert.throws(() => maxIouAssign(f32(0, 0, 1), f32(), RPN_ASSIGN), RangeError);
    assert.throws(() => maxIouAssign(f32(), f32(0, 0, 1), RPN_ASSIGN), RangeError);
    assert.throws(
      () => maxIouAssign(f32(), f32(), { ...RPN_ASSIGN, negIou: 0.8 }),
      RangeError,
    );
  });
});
