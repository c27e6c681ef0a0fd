import assert from "node:assert/strict";
import { matchAll } from "../../eval/coco_match.ts";
import {
  evaluateLvis,
  formatLvisSummary,
  LVIS_STAT_NAMES,
  type LvisEvalResult,
} from "../../eval/lvis_eval.ts";
import { capPerImage, LVIS_DETECTION_STATUS, prepareLvisEval } from "../../eval/lvis_prepare.ts";
import { A_N, COCO_IOU_THRESHOLDS, type IouType } from "../../eval/params.ts";
import type { CocoDetection } from "../../data/coco_types.ts";
import type { LvisDataset } from "../../data/lvis_types.ts";

const TOL = 1e-6;
const FIXTURES = new URL("../fixtures/lvis_eval/", import.meta.url);
const PER_CATEGORY_STATS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR@300"] as const;

interface PerImageRef {
  image_id: number;
  category_id: number;
  dt_input_index: number[];
  dt_scores: number[];
  gt_ids: number[];
  gt_ignore: number[];
  dt_matches: number[][];
  dt_ignore: number[][];
}
interface ExpectedRef {
  results: Record<string, number>;
  category_ids: number[];
  image_ids: number[];
  freq_groups: Record<string, number[]>;
  precision_shape: number[];
  precision_mean_over_recall: number[][][];
  recall: number[][][];
  per_category: Record<string, number | string>[];
  precision_area_all?: number[][][];
  per_image_category_area_all?: PerImageRef[];
}
interface Fixture extends LvisDataset {
  name: string;
  iou_types: IouType[];
  detections: CocoDetection[];
  expected: Record<IouType, ExpectedRef> & { detection_status: string[] };
}

const index = JSON.parse(Deno.readTextFileSync(new URL("index.json", FIXTURES))) as {
  fixtures: { name: string; file: string }[];
};

function load(file: string): Fixture {
  return JSON.parse(Deno.readTextFileSync(new URL(file, FIXTURES)));
}

function close(actual: number, expected: number, where: string): void {
  assert.ok(
    Math.abs(actual - expected) <= TOL,
    `${where}: expected ${expected}, got ${actual} (diff ${actual - expected})`,
  );
}

function checkResult(r: LvisEvalResult, e: ExpectedRef): void {
  assert.deepEqual(r.categoryIds, e.category_ids);
  assert.deepEqual(r.imageIds, e.image_ids);
  assert.deepEqual(r.frequencyGroups, e.freq_groups);
  assert.deepEqual(r.precisionShape, e.precision_shape);
  assert.deepEqual(Object.keys(r.stats), Object.keys(e.results));
  for (const name of LVIS_STAT_NAMES) close(r.stats[name], e.results[name], name);
  const [T, R, K, A] = r.precisionShape;
  const P = (t: number, rr: number, k: number, a: number) =>
    r.precision[((t * R + rr) * K + k) * A + a];
  for (let t = 0; t < T; t++) {
    for (let k = 0; k < K; k++) {
      for (let a = 0; a < A; a++) {
        let s = 0, n = 0;
        for (let rr = 0; rr < R; rr++) {
          if (P(t, rr, k, a) > -1) {
            s += P(t, rr, k, a);
            n++;
          }
        }
        const where = `t ${t} category ${e.category_ids[k]} area ${a}`;
        close(n ? s / n : -1, e.precision_mean_over_recall[t][k][a], `mean precision ${where}`);
        close(r.recall[(t * K + k) * A + a], e.recall[t][k][a], `recall ${where}`);
      }
    }
  }
  e.per_category.forEach((pc, k) => {
    const c = r.perCategory[k];
    assert.equal(c.categoryId, pc.category_id);
    assert.equal(c.frequency, pc.frequency);
    for (const name of PER_CATEGORY_STATS) {
      close(c.stats[name], pc[name] as number, `category ${pc.category_id} ${name}`);
    }
  });
  e.precision_area_all?.forEach((perT, k) =>
    perT.forEach((curve, t) =>
      curve.forEach((v, rr) => close(P(t, rr, k, 0), v, `precision k ${k} t ${t} r ${rr}`))
    )
  );
}

/** Every (image, category) cell at area "all" against the reference's evaluate_img output. */
function checkPerImage(f: Fixture, iouType: IouType, refs: PerImageRef[]): void {
  const p = prepareLvisEval(f, f.detections, iouType);
  const mt = matchAll(p, COCO_IOU_THRESHOLDS, { withGt: true });
  const nT = COCO_IOU_THRESHOLDS.length;
  const cells = new Map<string, number>();
  for (let k = 0; k < p.categoryIds.length; k++) {
    for (let c = p.cellStart[k]; c < p.cellStart[k + 1]; c++) {
      cells.set(`${p.imageIds[p.cellImage[c]]}/${p.categoryIds[k]}`, c);
    }
  }
  assert.equal(cells.size, refs.length, "number of evaluated (image, category) cells");
  for (const ref of refs) {
    const where = `image ${ref.image_id} category ${ref.category_id}`;
    const c = cells.get(`${ref.image_id}/${ref.category_id}`);
    assert.ok(c !== undefined, `${where}: no cell`);
    const ds = Array.from({ length: p.cellDet[c + 1] - p.cellDet[c] }, (_, q) => p.cellDet[c] + q);
    const gs = Array.from({ length: p.cellGt[c + 1] - p.cellGt[c] }, (_, q) => p.cellGt[c] + q);
    // The reference lists ignored GT last (stable): at area "all" only the `ignore` flag counts.
    const ordered = [...gs.filter((g) => !p.gtIgnore[g]), ...gs.filter((g) => p.gtIgnore[g])];
    const annId = (g: number) => f.annotations[p.gtInput[g]].id;
    assert.deepEqual(ds.map((d) => p.detInput[d]), ref.dt_input_index, `${where} detections`);
    assert.deepEqual(ds.map((d) => p.detScore[d]), ref.dt_scores, `${where} scores`);
    assert.deepEqual(ordered.map(annId), ref.gt_ids, `${where} GT`);
    assert.deepEqual(ordered.map((g) => p.gtIgnore[g]), ref.gt_ignore, `${where} GT ignore`);
    for (let t = 0; t < nT; t++) {
      const o = (d: number) => (d * A_N + 0) * nT + t;
      assert.deepEqual(
        ds.map((d) => (mt.gt![o(d)] < 0 ? 0 : annId(mt.gt![o(d)]))),
        ref.dt_matches[t],
        `${where} t ${t} matches`,
      );
      assert.deepEqual(
        ds.map((d) => (mt.state[o(d)] === 2 ? 1 : 0)),
        ref.dt_ignore[t],
        `${where} t ${t} ignore`,
      );
    }
  }
}

Deno.test("evaluateLvis() matches lvis-api on every fixture", async (t) => {
  assert.equal(index.fixtures.length, 6);
  for (const { name, file } of index.fixtures) {
    const f = load(file);
    assert.ok(f.iou_types.includes("bbox"));
    for (const iouType of f.iou_types) {
      await t.step(`${name} ${iouType}`, () => {
        const r = evaluateLvis(f, f.detections, { iouType });
        assert.equal(r.iouType, iouType);
        checkResult(r, f.expected[iouType]);
        assert.deepEqual(
          [...r.detectionStatus].map((s) => LVIS_DETECTION_STATUS[s]),
          f.expected.detection_status,
        );
        const refs = f.expected[iouType].per_image_category_area_all;
        if (refs) checkPerImage(f, iouType, refs);
      });
    }
  }
});

function tiny(): LvisDataset {
  return {
    images: [{
      id: 1,
      width: 100,
      height: 80,
      file_name: "a.jpg",
      neg_category_ids: [2],
      not_exhaustive_category_ids: [],
    }],
    categories: [
      { id: 1, name: "a", frequency: "f", image_count: 300, instance_count: 900 },
      { id: 2, name: "b", frequency: "r", image_count: 3, instance_count: 4 },
    ],
    annotations: [{
      id: 1,
      image_id: 1,
      category_id: 1,
      bbox: [10, 10, 30, 30],
      area: 900,
      iscrowd: 0,
      segmentation: [[10, 10, 40, 10, 40, 40, 10, 40]],
    }],
  };
}

Deno.test("evaluateLvis() edge cases", async (t) => {
  await t.step("no detections: AP 0 where ground truth exists, -1 elsewhere", () => {
    const r = evaluateLvis(tiny(), []);
    assert.equal(r.stats.AP, 0);
    assert.equal(r.stats["AR@300"], 0);
    assert.equal(r.stats.APr, -1);
    assert.equal(r.stats.APc, -1);
    assert.equal(r.perCategory[1].stats.AP, -1);
  });
  await t.step("the summary has lvis-api's layout", () => {
    const r = evaluateLvis(tiny(), [{
      image_id: 1,
      category_id: 1,
      bbox: [10, 10, 30, 30],
      score: 1,
    }]);
    assert.equal(r.summary, formatLvisSummary(r.stats));
    const lines = r.summary.split("\n");
    assert.equal(
      lines[0],
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=300 catIds=all] = 1.000",
    );
    assert.equal(
      lines[1],
      " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=300 catIds=all] = 1.000",
    );
  });
  await t.step("capPerImage keeps the best 300 per image, ties in input order", () => {
    const dets = Array.from({ length: 302 }, (_, j) => ({ image_id: 1, score: j < 2 ? 0 : 0.5 }));
    dets.push({ image_id: 2, score: 0 });
    const keep = capPerImage(dets, 300);
    assert.deepEqual([keep[0], keep[1], keep[2], keep[301], keep[302]], [0, 0, 1, 1, 1]);
    const tied = Array.from({ length: 301 }, () => ({ image_id: 1, score: 0.5 }));
    assert.equal(capPerImage(tied, 300)[300], 0);
  });
  await t.step("zero-area detections are removed, not counted as false positives", () => {
    const r = evaluateLvis(tiny(), [
      { image_id: 1, category_id: 1, bbox: [60, 60, 0, 10], score: 0.99 },
      { image_id: 1, category_id: 1, bbox: [10, 10, 30, 30], score: 0.5 },
    ]);
    close(r.stats.AP, 1, "AP"); // precision is tp / (tp + fp + eps)
    assert.equal(r.detectionCounts.dropped_zero_area, 1);
    const kept = evaluateLvis(tiny(), [
      { image_id: 1, category_id: 1, bbox: [60, 60, 1, 10], score: 0.99 },
      { image_id: 1, category_id: 1, bbox: [10, 10, 30, 30], score: 0.5 },
    ]);
    assert.ok(kept.stats.AP < 0.6, `a 1-pixel-wide false positive counts: AP ${kept.stats.AP}`);
  });
});

Deno.test("evaluateLvis() rejects bad input with a message naming it", async (t) => {
  const det = { image_id: 1, category_id: 1, bbox: [1, 1, 5, 5], score: 0.5 } as CocoDetection;
  const cases: [string, () => unknown, ErrorConstructor, RegExp][] = [
    [
      "bad frequency",
      () => {
        const gt = tiny();
        (gt.categories[1] as unknown as Record<string, unknown>).frequency = "x";
        return evaluateLvis(gt, [det]);
      },
      RangeError,
      /Category 2 has frequency "x", expected "r", "c" or "f"/,
    ],
    [
      "missing frequency",
      () => {
        const gt = tiny();
        delete (gt.categories[0] as unknown as Record<string, unknown>).frequency;
        return evaluateLvis(gt, [det]);
      },
      RangeError,
      /Category 1 has frequency undefined/,
    ],
    [
      "missing neg_category_ids",
      () => {
        const gt = tiny();
        delete (gt.images[0] as unknown as Record<string, unknown>).neg_category_ids;
        return evaluateLvis(gt, [det]);
      },
      TypeError,
      /Image 1 has neg_category_ids undefined, expected an array of category ids/,
    ],
    [
      "not_exhaustive_category_ids not an array",
      () => {
        const gt = tiny();
        (gt.images[0] as unknown as Record<string, unknown>).not_exhaustive_category_ids = 3;
        return evaluateLvis(gt, [det]);
      },
      TypeError,
      /Image 1 has not_exhaustive_category_ids 3/,
    ],
    [
      "bad ignore flag",
      () => {
        const gt = tiny();
        (gt.annotations[0] as unknown as Record<string, unknown>).ignore = "yes";
        return evaluateLvis(gt, [det]);
      },
      TypeError,
      /Annotation 1 has ignore "yes", expected 0 or 1/,
    ],
    [
      "unknown image",
      () => evaluateLvis(tiny(), [{ ...det, image_id: 9 }]),
      RangeError,
      /Detection 0 has image_id 9, which is not in the ground truth/,
    ],
    [
      "NaN score",
      () => evaluateLvis(tiny(), [det, { ...det, score: NaN }]),
      RangeError,
      /Detection 1 has score NaN/,
    ],
    [
      "string score",
      () => evaluateLvis(tiny(), [{ ...det, score: "1" as unknown as number }]),
      TypeError,
      /Detection 0 has score "1", expected a number/,
    ],
    [
      "missing box",
      () => evaluateLvis(tiny(), [{ image_id: 1, category_id: 1, score: 1 }]),
      TypeError,
      /Detection 0 has neither a bbox nor a segmentation/,
    ],
    [
      "segm without GT segmentation",
      () => {
        const gt = tiny();
        delete gt.annotations[0].segmentation;
        return evaluateLvis(gt, [det], { iouType: "segm" });
      },
      TypeError,
      /Annotation 1 has no segmentation/,
    ],
    [
      "bad iouType",
      () => evaluateLvis(tiny(), [det], { iouType: "keypoints" as IouType }),
      TypeError,
      /Unknown iouType "keypoints"/,
    ],
  ];
  for (const [name, call, ctor, message] of cases) {
    await t.step(name, () =>
      assert.throws(call, (e: unknown) => {
        assert.ok(e instanceof ctor, `${name}: got ${e}`);
        assert.match((e as Error).message, message);
        return true;
      }));
  }
});
