import assert from "node:assert/strict";
import { roiDetections } from "../../detectors/roi_postprocess.ts";

Deno.test("roiDetections: threshold, per-class NMS, cap and clipping", () => {
  // Three RoIs, two classes; RoIs 0 and 1 overlap (IoU 0.81), RoI 2 runs past the image.
  const rois = Float32Array.of(0, 0, 10, 10, 0, 0, 9, 9, 15, 15, 30, 30);
  const scores = Float32Array.of(
    0.9,
    0.3, // RoI 0
    0.8,
    0.7, // RoI 1: class 0 suppressed by RoI 0, class 1 kept
    0.02,
    0.6, // RoI 2: class 0 under the threshold
  );
  const d = roiDetections(rois, scores, new Float32Array(24), [20, 20]);
  assert.deepEqual(Array.from(d.labels), [0, 1, 1]);
  assert.deepEqual(Array.from(d.scores), [0.9, 0.7, 0.6].map(Math.fround));
  assert.deepEqual(Array.from(d.boxes), [0, 0, 10, 10, 0, 0, 9, 9, 15, 15, 20, 20]);
  // Class 1 of RoI 0 (0.3) lost to RoI 1's 0.7 in NMS.
  const capped = roiDetections(rois, scores, new Float32Array(24), [20, 20], { maxPerImage: 2 });
  assert.deepEqual(Array.from(capped.scores), [0.9, 0.7].map(Math.fround));
  const high = roiDetections(rois, scores, new Float32Array(24), [20, 20], { scoreThreshold: 0.4 });
  assert.deepEqual(Array.from(high.labels), [0, 1, 1]);
  assert.equal(
    roiDetections(rois, scores, new Float32Array(24), [20, 20], { scoreThreshold: 0.95 }).labels
      .length,
    0,
  );
});

Deno.test("roiDetections: class-specific deltas pick the class's box; class-agnostic share one", () => {
  const rois = Float32Array.of(0, 0, 10, 10);
  // Class 1: dx 10 times std 0.1 moves the centre by one width (10 pixels).
  const deltas = Float32Array.of(0, 0, 0, 0, 10, 0, 0, 0);
  const d = roiDetections(rois, Float32Array.of(0.9, 0.8), deltas, [100, 100]);
  assert.deepEqual(Array.from(d.boxes), [0, 0, 10, 10, 10, 0, 20, 10]);
  const a = roiDetections(rois, Float32Array.of(0.9, 0.8), Float32Array.of(10, 0, 0, 0), [
    100,
    100,
  ]);
  assert.deepEqual(Array.from(a.boxes), [10, 0, 20, 10, 10, 0, 20, 10]);
  assert.deepEqual(Array.from(a.labels), [0, 1]);
  assert.equal(
    roiDetections(new Float32Array(0), new Float32Array(0), new Float32Array(0), [9, 9]).labels
      .length,
    0,
  );
  assert.throws(
    () => roiDetections(rois, Float32Array.of(0.9, 0.8), new Float32Array(12), [9, 9]),
    RangeError,
  );
});
