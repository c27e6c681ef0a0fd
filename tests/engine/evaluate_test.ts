import assert from "node:assert/strict";
import type { CocoDataset, CocoDetection } from "../../data/coco_types.ts";
import { formatThresholds, lrpScoreThresholds } from "../../engine/evaluate.ts";
import { evaluateLrp } from "../../eval/lrp.ts";

Deno.test("lrpScoreThresholds() is each class's oLRP-optimal score", () => {
  // Class 1 (label 0): TP 0.9, FP 0.8, TP 0.7, FP 0.2; class 2 has ground truth, no TP;
  // class 3 has no ground truth.
  const box = (x: number): [number, number, number, number] => [x, 0, 10, 10];
  const gt: CocoDataset = {
    images: [{ id: 1, width: 100, height: 20, file_name: "a.png" }],
    categories: [{ id: 3, name: "c" }, { id: 1, name: "a" }, { id: 2, name: "b" }],
    annotations: [
      { id: 1, image_id: 1, category_id: 1, bbox: box(0), area: 100, iscrowd: 0 },
      { id: 2, image_id: 1, category_id: 1, bbox: box(20), area: 100, iscrowd: 0 },
      { id: 3, image_id: 1, category_id: 2, bbox: box(40), area: 100, iscrowd: 0 },
    ],
  };
  const d = (category_id: number, x: number, score: number): CocoDetection => ({
    image_id: 1,
    category_id,
    bbox: box(x),
    score,
  });
  const dets = [d(1, 0, 0.9), d(1, 60, 0.8), d(1, 20, 0.7), d(1, 80, 0.2), d(2, 60, 0.5)];
  const lrp = evaluateLrp(gt, dets);
  // LRP after each detection of class 1: 1/2, 2/3, 1/3 (the optimum), 2/4.
  assert.ok(Math.abs(lrp.perCategory[0].oLRP[0] - 1 / 3) < 1e-12);
  assert.deepEqual(lrpScoreThresholds(gt, lrp), [0.7, null, null]);
});

Deno.test("formatThresholds() names each class's threshold or none", () => {
  assert.equal(formatThresholds(["a", "b", "c"], [0.7, null, 0.12345]), "a 0.700, b none, c 0.123");
});
