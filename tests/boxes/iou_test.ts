import assert from "node:assert/strict";
import { boxIouHost, NO_FLOOR, overlapHost, overlapParts } from "../../boxes/iou.ts";
import { cocoBoxIou, crowdIou, xywhIntersection } from "../../boxes/coco_iou.ts";

Deno.test("overlapHost: IoU, IoF and GIoU, clamped at eps or not", () => {
  const a = [0, 0, 2, 2], b = [1, 1, 3, 3], point = [5, 5, 5, 5];
  assert.equal(overlapHost(a, 0, b, 0, "iou"), 1 / 7);
  assert.equal(overlapHost(a, 0, b, 0, "iof"), 1 / 4);
  assert.equal(overlapHost(a, 0, b, 0, "giou"), 1 / 7 - 2 / 9);
  assert.equal(overlapHost(point, 0, point, 0, "iou"), 0);
  assert.ok(Number.isNaN(overlapHost(point, 0, point, 0, "iou", NO_FLOOR)));
  assert.equal(boxIouHost(point, 0, point, 0), 0);
  assert.equal(boxIouHost(a, 0, b, 0), 1 / 7);
});

Deno.test("overlapHost with Math.fround rounds every step to f32", () => {
  const boxes = [0.1, 0.2, 3.3, 4.4, 1.7, 0.9, 5.1, 6.3];
  const f = Math.fround;
  const areaA = f(f(3.3 - 0.1) * f(4.4 - 0.2)), areaB = f(f(5.1 - 1.7) * f(6.3 - 0.9));
  const inter = f(f(3.3 - 1.7) * f(4.4 - 0.9));
  const want = f(inter / f(f(areaA + areaB) - inter));
  assert.equal(overlapHost(boxes, 0, boxes, 1, "iou", NO_FLOOR, f), want);
  assert.notEqual(overlapHost(boxes, 0, boxes, 1, "iou", NO_FLOOR), want);
});

Deno.test("overlapParts keeps the unclamped widths the gradients need", () => {
  const p = overlapParts([0, 0, 1, 1], 0, [2, 0, 3, 1], 0, "giou", 1e-6);
  assert.equal(p.iwr, -1);
  assert.equal(p.iw, 0);
  assert.equal(p.enclose, 3);
  assert.equal(p.value, -1 / 3);
});

Deno.test("pycocotools box IoU: xywh corners, crowd unions", () => {
  assert.equal(xywhIntersection([0, 0, 2, 2], [2, 0, 2, 2]), 0);
  assert.equal(crowdIou(1, 4, 4, 1), 1 / 4);
  assert.deepEqual(
    cocoBoxIou([[0, 0, 2, 2]], [[1, 1, 2, 2], [1, 1, 2, 2], [4, 4, 1, 1]], [0, 1, 0]),
    [
      [1 / 7, 1 / 4, 0],
    ],
  );
});
