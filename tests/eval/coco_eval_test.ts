import assert from "node:assert/strict";
import { evaluateCocoAndLrp } from "../../eval/coco_and_lrp.ts";
import { COCO_STAT_NAMES, type CocoEvalResult, evaluateCoco } from "../../eval/coco_eval.ts";
import { evaluateLrp, type LrpEvalResult } from "../../eval/lrp.ts";
import type { IouType } from "../../eval/params.ts";
import type { CocoDataset, CocoDetection } from "../../data/coco_types.ts";

const TOL = 1e-6;
const FIXTURES = new URL("../fixtures/coco_eval/", import.meta.url);

type Num = number | null;
interface PerCategoryRef {
  category_id: number;
  precision_mean_per_iou: number[];
  [stat: string]: unknown;
}
interface LrpRef {
  oLRP: Num;
  oLRP_loc: Num;
  oLRP_fp: Num;
  oLRP_fn: Num;
  oLRP_small: Num;
  oLRP_medium: Num;
  oLRP_large: Num;
  per_category: {
    category_id: number;
    oLRP: Num[];
    oLRP_loc: Num[];
    oLRP_fp: Num[];
    oLRP_fn: Num[];
    threshold: Num[];
  }[];
}
interface ExpectedRef {
  stats: number[];
  category_ids: number[];
  image_ids: number[];
  per_category: PerCategoryRef[];
  precision_mean_over_recall: number[][][][];
  recall: number[][][][];
  precision_all_area_maxdet100?: number[][][];
  lrp: LrpRef;
}
interface Fixture extends CocoDataset {
  name: string;
  iou_types: IouType[];
  detections: CocoDetection[];
  expected: Record<string, ExpectedRef>;
}

function loadFixture(name: string): Fixture {
  return JSON.parse(Deno.readTextFileSync(new URL(`${name}.json`, FIXTURES)));
}

/** Compare with null = NaN, to an absolute tolerance. */
function close(actual: number, expected: Num, where: string): void {
  if (expected === null || Number.isNaN(expected)) {
    assert.ok(Number.isNaN(actual), `${where}: expected NaN, got ${actual}`);
    return;
  }
  assert.ok(
    Math.abs(actual - expected) <= TOL,
    `${where}: expected ${expected}, got ${actual} (diff ${actual - expected})`,
  );
}

function checkCoco(r: CocoEvalResult, e: ExpectedRef): void {
  assert.deepEqual(r.categoryIds, e.category_ids);
  assert.deepEqual(r.imageIds, e.image_ids);
  r.stats.forEach((v, i) => close(v, e.stats[i], `stats[${i}] ${COCO_STAT_NAMES[i]}`));
  const [T, R, K, A, M] = r.precisionShape;
  const P = (t: number, rr: number, k: number, a: number, m: number) =>
    r.precision[(((t * R + rr) * K + k) * A + a) * M + m];
  e.per_category.forEach((pc, k) => {
    assert.equal(r.perCategory[k].categoryId, pc.category_id);
    COCO_STAT_NAMES.forEach((name, i) => {
      close(r.perCategory[k].stats[i], pc[name] as number, `category ${pc.category_id} ${name}`);
    });
    pc.precision_mean_per_iou.forEach((v, t) => {
      let s = 0;
      for (let rr = 0; rr < R; rr++) s += P(t, rr, k, 0, 2);
      close(s / R, v, `category ${pc.category_id} precision mean at t=${t}`);
    });
  });
  for (let t = 0; t < T; t++) {
    for (let k = 0; k < K; k++) {
      for (let a = 0; a < A; a++) {
        for (let m = 0; m < M; m++) {
          let s = 0;
          for (let rr = 0; rr < R; rr++) s += P(t, rr, k, a, m);
          const at = `[t=${t}][k=${k}][a=${a}][m=${m}]`;
          close(s / R, e.precision_mean_over_recall[t][k][a][m], `precision mean ${at}`);
          close(r.recall[((t * K + k) * A + a) * M + m], e.recall[t][k][a][m], `recall ${at}`);
        }
      }
    }
  }
  if (e.precision_all_area_maxdet100) {
    e.precision_all_area_maxdet100.forEach((curves, k) =>
      curves.forEach((curve, t) =>
        curve.forEach((v, rr) => close(P(t, rr, k, 0, 2), v, `precision[t=${t}][r=${rr}][k=${k}]`))
      )
    );
  }
}

function checkLrp(r: LrpEvalResult, e: LrpRef): void {
  close(r.oLRP, e.oLRP, "oLRP");
  close(r.oLRPLoc, e.oLRP_loc, "oLRP_loc");
  close(r.oLRPFP, e.oLRP_fp, "oLRP_fp");
  close(r.oLRPFN, e.oLRP_fn, "oLRP_fn");
  close(r.oLRPSmall, e.oLRP_small, "oLRP_small");
  close(r.oLRPMedium, e.oLRP_medium, "oLRP_medium");
  close(r.oLRPLarge, e.oLRP_large, "oLRP_large");
  e.per_category.forEach((pc, k) => {
    const c = r.perCategory[k];
    assert.equal(c.categoryId, pc.category_id);
    for (let a = 0; a < 4; a++) {
      const at = `category ${pc.category_id} area ${a}`;
      close(c.oLRP[a], pc.oLRP[a], `oLRP ${at}`);
      close(c.oLRPLoc[a], pc.oLRP_loc[a], `oLRP_loc ${at}`);
      close(c.oLRPFP[a], pc.oLRP_fp[a], `oLRP_fp ${at}`);
      close(c.oLRPFN[a], pc.oLRP_fn[a], `oLRP_fn ${at}`);
      close(c.threshold[a], pc.threshold[a], `threshold ${at}`);
    }
  });
}

const index = JSON.parse(Deno.readTextFileSync(new URL("index.json", FIXTURES))) as {
  fixtures: { name: string; iou_types: IouType[] }[];
};

Deno.test("evaluateCoco() and evaluateLrp() match the reference fixtures", async (t) => {
  for (const { name, iou_types } of index.fixtures) {
    const f = loadFixture(name);
    for (const iouType of iou_types) {
      await t.step(`${name} ${iouType}`, () => {
        const e = f.expected[iouType];
        const { coco, lrp } = evaluateCocoAndLrp(f, f.detections, { iouType });
        checkCoco(coco, e);
        checkLrp(lrp, e.lrp);
        if (name !== "random_large_seed0") {
          // The separate entry points match on their own (LRP with its own matching pass).
          checkCoco(evaluateCoco(f, f.detections, { iouType }), e);
          checkLrp(evaluateLrp(f, f.detections, { iouType, tau: 0.5 }), e.lrp);
        }
      });
    }
  }
});
