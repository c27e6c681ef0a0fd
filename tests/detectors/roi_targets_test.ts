import assert from "node:assert/strict";
import { roiAssignOptions, roiTargets } from "../../detectors/roi_targets.ts";

const OPTS = { posIou: 0.5 };

Deno.test("roiTargets: mmdetection's RoI assigner settings (one threshold, no low-quality matches)", () => {
  assert.deepEqual(roiAssignOptions(0.6), {
    posIou: 0.6,
    negIou: 0.6,
    minPosIou: 0.6,
    lowQuality: false,
  });
});

Deno.test("roiTargets: a hand-made layout, positives then negatives per image", () => {
  const gt = Float32Array.of(0, 0, 10, 10, 20, 20, 40, 40);
  const props = Float32Array.of(
    30,
    30,
    50,
    50, // IoU 100/700 with box 1: background
    0,
    0,
    10,
    5, //    IoU exactly 0.5 with box 0: positive
    20,
    20,
    40,
    38, // IoU 0.9 with box 1: positive
    0,
    0,
    10,
    4, //    IoU 0.4: background
    100,
    100,
    110,
    110, // no overlap: background
  );
  const t = roiTargets([props, new Float32Array(0)], [gt, new Float32Array(0)], [
    Int32Array.of(2, 5),
    new Int32Array(0),
  ], OPTS);
  assert.deepEqual(t.perImage, [7, 0]);
  assert.deepEqual(t.positivesPerImage, [4, 0]);
  assert.deepEqual(Array.from(t.labels), [2, 5, 2, 5, -1, -1, -1]);
  assert.deepEqual(Array.from(t.gtIndex), [0, 1, 0, 1, -1, -1, -1]);
  assert.deepEqual(Array.from(t.rois), [
    0,
    0,
    0,
    10,
    10,
    0,
    20,
    20,
    40,
    40,
    0,
    0,
    0,
    10,
    5,
    0,
    20,
    20,
    40,
    38,
    0,
    30,
    30,
    50,
    50,
    0,
    0,
    0,
    10,
    4,
    0,
    100,
    100,
    110,
    110,
  ]);
  assert.deepEqual(Array.from(t.gtBoxes.subarray(0, 16)), [
    0,
    0,
    10,
    10,
    20,
    20,
    40,
    40,
    0,
    0,
    10,
    10,
    20,
    20,
    40,
    40,
  ]);
  assert.deepEqual(Array.from(t.gtBoxes.subarray(16)), new Array(12).fill(0));
  assert.deepEqual(Array.from(t.maxIou.subarray(0, 2)), [1, 1]);
  assert.equal(t.maxIou[2], 0.5);
});

Deno.test("roiTargets: every ground-truth box is a positive of its own class, even when it overlaps another more", () => {
  // Box 1 lies inside box 0 (IoU 0.81 with it) and duplicates box 2: each still matches itself.
  const gt = Float32Array.of(0, 0, 10, 10, 0, 0, 9, 9, 0, 0, 9, 9);
  const t = roiTargets([new Float32Array(0)], [gt], [Int32Array.of(7, 1, 4)], OPTS);
  assert.deepEqual(Array.from(t.labels), [7, 1, 4]);
  assert.deepEqual(Array.from(t.gtIndex), [0, 1, 2]);
  assert.deepEqual(Array.from(t.gtBoxes), Array.from(gt));
  assert.deepEqual(Array.from(t.rois), [0, 0, 0, 10, 10, 0, 0, 0, 9, 9, 0, 0, 0, 9, 9]);
});

Deno.test("roiTargets: without boxes every proposal is background; without proposals only the boxes remain", () => {
  const props = Float32Array.of(0, 0, 10, 10, 5, 5, 20, 20);
  const none = roiTargets([props], [new Float32Array(0)], [new Int32Array(0)], OPTS);
  assert.deepEqual(Array.from(none.labels), [-1, -1]);
  assert.deepEqual(Array.from(none.rois), [0, 0, 0, 10, 10, 0, 5, 5, 20, 20]);
  assert.deepEqual(none.positivesPerImage, [0]);

  const gt = Float32Array.of(1, 2, 3, 4);
  const only = roiTargets([new Float32Array(0), new Float32Array(0)], [new Float32Array(0), gt], [
    new Int32Array(0),
    Int32Array.of(0),
  ], OPTS);
  assert.deepEqual(only.perImage, [0, 1]);
  assert.deepEqual(Array.from(only.rois), [1, 1, 2, 3, 4]);
  assert.deepEqual(Array.from(only.labels), [0]);
});

Deno.test("roiTargets: addGtAsProposals false and a higher threshold (a cascade stage)", () => {
  const gt = Float32Array.of(0, 0, 10, 10);
  const props = Float32Array.of(0, 0, 10, 6, 0, 0, 10, 8);
  const t = roiTargets([props], [gt], [Int32Array.of(1)], { posIou: 0.7, addGtAsProposals: false });
  assert.deepEqual(Array.from(t.labels), [1, -1]);
  assert.deepEqual(Array.from(t.rois), [0, 0, 0, 10, 8, 0, 0, 0, 10, 6]);
});

Deno.test("roiTargets: mismatched counts throw", () => {
  assert.throws(() => roiTargets([new Float32Array(0)], [], [], OPTS), RangeError);
  assert.throws(
    () =>
      roiTargets([new Float32Array(0)], [Float32Array.of(0, 0, 1, 1)], [new Int32Array(0)], OPTS),
    RangeError,
  );
});
