import assert from "node:assert/strict";
import { evaluateCocoAndLrp } from "../../eval/coco_and_lrp.ts";
import { evaluateCoco, formatSummary } from "../../eval/coco_eval.ts";
import { evaluateLrp } from "../../eval/lrp.ts";
import { COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS } from "../../eval/params.ts";
import type { CocoDataset, CocoDetection } from "../../data/coco_types.ts";

/** Equal up to float rounding (precision is tp / (tp + fp + eps)). */
function near(actual: number, expected: number): void {
  assert.ok(Math.abs(actual - expected) < 1e-12, `expected ${expected}, got ${actual}`);
}

function dataset(): CocoDataset {
  return {
    images: [
      { id: 7, width: 200, height: 100, file_name: "b.jpg" },
      { id: 3, width: 200, height: 100, file_name: "a.jpg" },
    ],
    categories: [{ id: 5, name: "thing" }],
    annotations: [
      {
        id: 1,
        image_id: 3,
        category_id: 5,
        bbox: [10, 10, 20, 20],
        area: 400,
        iscrowd: 0,
        segmentation: [[10, 10, 30, 10, 30, 30, 10, 30]],
      },
      {
        id: 2,
        image_id: 7,
        category_id: 5,
        bbox: [100, 20, 40, 40],
        area: 1600,
        iscrowd: 0,
        segmentation: [[100, 20, 140, 20, 140, 60, 100, 60]],
      },
    ],
  };
}

// d1 finds GT 1, d2 is a false positive, d3 finds GT 2 (boxes identical: IoU 1).
function detections(): CocoDetection[] {
  return [
    { image_id: 3, category_id: 5, bbox: [10, 10, 20, 20], score: 0.9 },
    { image_id: 7, category_id: 5, bbox: [0, 70, 10, 10], score: 0.8 },
    { image_id: 7, category_id: 5, bbox: [100, 20, 40, 40], score: 0.7 },
  ];
}

Deno.test("thresholds are numpy.linspace's exact values", () => {
  assert.deepEqual(
    [...COCO_IOU_THRESHOLDS],
    [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.8999999999999999, 0.95],
  );
  assert.equal(COCO_RECALL_THRESHOLDS.length, 101);
  assert.equal(COCO_RECALL_THRESHOLDS[35], 0.35000000000000003);
  assert.equal(COCO_RECALL_THRESHOLDS[50], 0.5);
  assert.equal(COCO_RECALL_THRESHOLDS[100], 1);
});

Deno.test("hand-computed AP, AR and oLRP", async (t) => {
  const { coco, lrp } = evaluateCocoAndLrp(dataset(), detections(), { iouType: "bbox" });
  await t.step("AP: precision 1 up to recall 0.5, then 2/3", () => {
    // Envelope [1, 2/3, 2/3] over recalls [0.5, 0.5, 1]: thresholds 0..0.50 (51) get 1.
    const ap = (51 * 1 + 50 * (2 / (2 + 1 + 2.220446049250313e-16))) / 101;
    near(coco.stats[0], ap);
    near(coco.stats[1], ap);
    assert.equal(coco.stats[8], 1); // AR100
    assert.equal(coco.stats[6], 0.5); // AR1: image 7 keeps only its FP (score 0.8)
  });
  await t.step("area ranges split the two objects", () => {
    // small: GT 1 (area 400) and the 100-pixel FP count, d3 matches an ignored GT:
    // recall 1 at precision 1 from the first detection.
    near(coco.stats[3], 1);
    // medium: d1 matches an ignored GT, the FP's own area (100) is out of range: only d3 counts.
    near(coco.stats[4], 1);
    assert.equal(coco.stats[9], 1);
    assert.equal(coco.stats[10], 1);
    assert.equal(coco.stats[5], -1); // large: no GT
    assert.equal(coco.stats[11], -1);
  });
  await t.step("oLRP at the third detection", () => {
    // Prefix LRPs: (0 + 0 + 1) / 2, (0 + 1 + 1) / 3, (0 + 1 + 0) / 3.
    assert.equal(lrp.oLRP, 1 / 3);
    assert.equal(lrp.oLRPLoc, 0);
    assert.equal(lrp.oLRPFP, 1 / 3);
    assert.equal(lrp.oLRPFN, 0);
    assert.equal(lrp.perCategory[0].threshold[0], 0.7);
    assert.equal(lrp.oLRPLarge, -1);
  });
  await t.step("array layout", () => {
    assert.deepEqual(coco.precisionShape, [10, 101, 1, 4, 3]);
    assert.deepEqual(coco.recallShape, [10, 1, 4, 3]);
    assert.equal(coco.precision.length, 10 * 101 * 4 * 3);
    // precision[t=0][r=100][k=0][a=0][m=2]
    near(coco.precision[(100 * 4 + 0) * 3 + 2], 2 / 3);
    assert.equal(coco.precision[(100 * 4 + 3) * 3 + 2], -1); // large
    assert.deepEqual(coco.imageIds, [3, 7]);
  });
});

Deno.test("segm on the same data gives the same numbers as bbox", () => {
  const dets = detections().map((d) => ({ ...d })); // no segmentation: the box becomes the mask
  const a = evaluateCoco(dataset(), dets, { iouType: "bbox" });
  const b = evaluateCoco(dataset(), dets, { iouType: "segm" });
  assert.deepEqual(b.stats, a.stats);
});

Deno.test("bad input gives clear errors or the documented result", async (t) => {
  await t.step("detection on an unknown image", () => {
    const d = [...detections(), { image_id: 99, category_id: 5, bbox: [0, 0, 1, 1], score: 0.5 }];
    assert.throws(() => evaluateCoco(dataset(), d as CocoDetection[]), {
      name: "RangeError",
      message: /Detection 3 has image_id 99/,
    });
  });
  await t.step("detection with an undeclared category is dropped and counted", () => {
    const d = [...detections(), { image_id: 3, category_id: 6, bbox: [0, 0, 1, 1], score: 0.95 }];
    const r = evaluateCoco(dataset(), d as CocoDetection[]);
    assert.equal(r.droppedDetections, 1);
    assert.deepEqual(r.stats, evaluateCoco(dataset(), detections()).stats);
  });
  await t.step("missing and non-finite scores", () => {
    const d = detections();
    delete (d[1] as Partial<CocoDetection>).score;
    assert.throws(() => evaluateCoco(dataset(), d), { name: "TypeError", message: /Detection 1/ });
    d[1].score = NaN;
    assert.throws(() => evaluateCoco(dataset(), d), { name: "RangeError", message: /NaN/ });
  });
  await t.step("non-finite and malformed boxes", () => {
    const d = detections();
    d[2].bbox = [0, 0, Infinity, 1];
    assert.throws(() => evaluateCoco(dataset(), d), {
      name: "RangeError",
      message: /Detection 2 has non-finite bbox/,
    });
    (d[2] as { bbox: unknown }).bbox = [0, 0, 1];
    assert.throws(() => evaluateCoco(dataset(), d), { name: "TypeError", message: /Detection 2/ });
    delete d[2].bbox;
    assert.throws(() => evaluateCoco(dataset(), d), { name: "TypeError", message: /Detection 2/ });
  });
  await t.step("empty results list: AP/AR 0 where GT exists, oLRP 1", () => {
    const { coco, lrp } = evaluateCocoAndLrp(dataset(), []);
    assert.deepEqual(coco.stats, [0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0, -1]);
    assert.equal(lrp.oLRP, 1);
    assert.equal(lrp.oLRPFN, 1);
    assert.equal(lrp.oLRPLoc, -1);
    assert.ok(Number.isNaN(lrp.perCategory[0].oLRPLoc[0]));
  });
  await t.step("not an array, no bbox nor segmentation, bad options", () => {
    assert.throws(
      () => evaluateCoco(dataset(), {} as unknown as CocoDetection[]),
      { name: "TypeError" },
    );
    assert.throws(
      () => evaluateCoco(dataset(), [{ image_id: 3, category_id: 5, score: 1 }]),
      { name: "TypeError", message: /neither a bbox nor a segmentation/ },
    );
    assert.throws(
      () => evaluateCoco(dataset(), [], { iouType: "keypoints" as "bbox" }),
      { name: "TypeError", message: /keypoints/ },
    );
    assert.throws(() => evaluateLrp(dataset(), [], { tau: 1 }), { name: "RangeError" });
  });
  await t.step("ground truth without area", () => {
    const gt = dataset();
    delete (gt.annotations[1] as Partial<CocoDataset["annotations"][0]>).area;
    assert.throws(() => evaluateCoco(gt, detections()), {
      name: "TypeError",
      message: /Annotation 2 has area/,
    });
  });
});

Deno.test("formatSummary() lays out lines like pycocotools", () => {
  const s = formatSummary([0.5, 0.0625, 0.1875, -1, 1, 0.0005, 0, 0, 0, 0, 0, 0]).split("\n");
  assert.equal(s.length, 12);
  assert.equal(
    s[0],
    " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.500",
  );
  // Python formats the exact binary value and rounds ties to even.
  assert.equal(
    s[1],
    " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.062",
  );
  assert.ok(s[2].endsWith("] = 0.188"));
  assert.equal(
    s[3],
    " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000",
  );
  assert.ok(s[5].endsWith("] = 0.001")); // 0.0005 is just above 0.0005 in binary
  assert.equal(
    s[6],
    " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.000",
  );
  assert.ok(s[10].includes("area=medium | maxDets=100"));
});
