/**
 * The DETR matcher against Deformable-DETR's `HungarianMatcher` run in float64 with PyTorch 1.13
 * and scipy 1.10.1 (tests/fixtures/detr/matcher.json).
 *
 * Asserted: every cost term and the weighted total within 1e-12 absolute; per image the total
 * matched cost within 1e-12 and the indices exactly where `optimum_unique`; BRS-DETR's class
 * weight 4 against the fixture's terms re-weighted and solved by `hungarian()`; equal results
 * on repeated and float32 inputs; clear errors on bad input.
 */

import assert from "node:assert/strict";
import {
  BRS_DETR_MATCH,
  detrMatch,
  detrMatchCost,
  type DetrPredictions,
  type DetrTargets,
} from "../../detectors/detr_matcher.ts";
import { hungarian } from "../../detectors/hungarian.ts";

// deno-lint-ignore no-explicit-any
type Json = any;
const fixture = JSON.parse(
  Deno.readTextFileSync(new URL("../fixtures/detr/matcher.json", import.meta.url)),
);
const cases: Json[] = fixture.cases;
const TOL = 1e-12;

function inputs(c: Json): { pred: DetrPredictions; targets: DetrTargets[] } {
  const logits: number[][][] = c.pred_logits;
  return {
    pred: {
      logits: Float64Array.from(logits.flat(2)),
      boxes: Float64Array.from(c.pred_boxes.flat(2)),
      numQueries: logits[0].length,
      numClasses: logits[0][0].length,
    },
    targets: c.targets.map((t: Json) => ({
      labels: Int32Array.from(t.labels),
      boxes: Float64Array.from(t.boxes.flat()),
    })),
  };
}

function assertClose(got: ArrayLike<number>, want: number[], what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let worst = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= worst)) [worst, at] = [err, i];
  }
  assert.ok(worst <= TOL, `${what}: |error| ${worst} at ${at} (${got[at]} vs ${want[at]})`);
}

Deno.test("detrMatchCost() equals Deformable-DETR's matching cost", async (t) => {
  assert.deepEqual(
    [fixture.meta.cost_class, fixture.meta.cost_bbox, fixture.meta.cost_giou, fixture.meta.alpha],
    [2, 5, 2, 0.25],
  );
  for (const c of cases) {
    await t.step(c.name, () => {
      const { pred, targets } = inputs(c);
      const cost = detrMatchCost(pred, targets);
      assert.deepEqual(Array.from(cost.sizes), c.expected.sizes);
      assertClose(cost.costClass, c.expected.cost_class.flat(), "cost_class");
      assertClose(cost.costBbox, c.expected.cost_bbox.flat(), "cost_bbox");
      assertClose(cost.costGiou, c.expected.cost_giou.flat(), "cost_giou");
      assertClose(cost.total, c.expected.C.flat(2), "C");
    });
  }
});

Deno.test("detrMatch() equals Deformable-DETR's matching", async (t) => {
  for (const c of cases) {
    await t.step(c.name, () => {
      const { pred, targets } = inputs(c);
      const got = detrMatch(pred, targets);
      assert.equal(got.length, c.expected.per_image.length);
      got.forEach((m, b) => {
        const e = c.expected.per_image[b];
        const size = c.expected.sizes[b];
        assert.equal(m.queryIndex.length, size);
        assert.deepEqual(Array.from(m.targetIndex).sort((x, y) => x - y), [...Array(size).keys()]);
        for (let k = 1; k < size; k++) assert.ok(m.queryIndex[k] > m.queryIndex[k - 1]);
        assert.ok(
          Math.abs(m.cost - e.total_cost) <= TOL,
          `image ${b}: ${m.cost} vs ${e.total_cost}`,
        );
        if (e.optimum_unique) {
          assert.deepEqual(Array.from(m.queryIndex), e.query_ind, `image ${b}`);
          assert.deepEqual(Array.from(m.targetIndex), e.target_ind, `image ${b}`);
        }
      });
    });
  }

  await t.step("the identical targets: the same queries, one of the two orders", () => {
    const c = cases.find((c) => c.name === "edge_saturated_duplicates");
    const { pred, targets } = inputs(c);
    const [m] = detrMatch(pred, targets);
    const e = c.expected.per_image[0];
    assert.deepEqual(Array.from(m.queryIndex), e.query_ind);
    // Targets 0 and 1 are the same box with the same label: they may trade queries.
    const canon = (t: ArrayLike<number>) => Array.from(t, (j) => (j === 1 ? 0 : j));
    assert.deepEqual(canon(m.targetIndex), canon(e.target_ind));
  });

  await t.step(
    "inputs rounded to float32 keep the matching where float32 keeps it in the fixture",
    () => {
      for (const c of cases.filter((c) => c.expected.float32_same_matching)) {
        const { pred, targets } = inputs(c);
        const f32 = {
          ...pred,
          logits: Float32Array.from(pred.logits),
          boxes: Float32Array.from(pred.boxes),
        };
        detrMatch(f32, targets).forEach((m, b) => {
          assert.deepEqual(Array.from(m.queryIndex), c.expected.per_image[b].query_ind, c.name);
          assert.deepEqual(Array.from(m.targetIndex), c.expected.per_image[b].target_ind, c.name);
        });
      }
    },
  );

  await t.step("repeated calls give equal results", () => {
    for (const c of cases) {
      const { pred, targets } = inputs(c);
      assert.deepEqual(detrMatch(pred, targets), detrMatch(pred, targets));
    }
  });
});

Deno.test("detrMatch() with BRS-DETR's weights (class 4)", () => {
  assert.deepEqual(
    [BRS_DETR_MATCH.classWeight, BRS_DETR_MATCH.bboxWeight, BRS_DETR_MATCH.giouWeight],
    [4, 5, 2],
  );
  let differs = 0;
  for (const c of cases) {
    const { pred, targets } = inputs(c);
    const q = pred.numQueries, all = c.expected.sizes.reduce((a: number, b: number) => a + b, 0);
    const cost = detrMatchCost(pred, targets, BRS_DETR_MATCH);
    const want = c.expected.cost_class.flat().map((cls: number, i: number) =>
      5 * c.expected.cost_bbox.flat()[i] + 4 * cls + 2 * c.expected.cost_giou.flat()[i]
    );
    assertClose(cost.total, want, `${c.name}: C`);
    const got = detrMatch(pred, targets, BRS_DETR_MATCH);
    let first = 0;
    c.expected.sizes.forEach((size: number, b: number) => {
      const block = Float64Array.from(
        { length: q * size },
        (_, i) => want[(b * q + Math.floor(i / size)) * all + first + (i % size)],
      );
      first += size;
      const ref = hungarian(block, q, size);
      let total = 0;
      for (let k = 0; k < size; k++) total += block[ref.rows[k] * size + ref.cols[k]];
      assert.ok(Math.abs(got[b].cost - total) <= TOL, `${c.name} image ${b}`);
      if (c.expected.per_image[b].optimum_unique) {
        assert.deepEqual(got[b].queryIndex, ref.rows);
        assert.deepEqual(got[b].targetIndex, ref.cols);
      }
      if (got[b].queryIndex.join() !== c.expected.per_image[b].query_ind.join()) differs++;
    });
  }
  assert.ok(differs > 0, "class weight 4 changes some matching");
});

Deno.test("detrMatch() rejects bad input with a clear error", async (t) => {
  const { pred, targets } = inputs(cases[1]); // 3 images, 10 queries, 8 classes; 4, 0, 10 targets

  await t.step("more targets than queries", () => {
    const eleven = {
      labels: new Int32Array(11),
      boxes: Float64Array.from({ length: 44 }, () => 0.3),
    };
    assert.throws(
      () => detrMatch(pred, [targets[0], eleven, targets[2]]),
      (e: Error) =>
        e instanceof RangeError && /image 1 has 11 targets but only 10 queries/.test(e.message),
    );
  });
  await t.step("a NaN logit names image, query and class", () => {
    const logits = Float64Array.from(pred.logits);
    logits[(2 * 10 + 3) * 8 + 5] = NaN;
    assert.throws(
      () => detrMatch({ ...pred, logits }, targets),
      /detrMatch: the logit of class 5 of query 3 in image 2 is NaN/,
    );
  });
  await t.step("a label outside [0, K)", () => {
    const bad = { ...targets[0], labels: Int32Array.of(0, 1, 8, 2) };
    assert.throws(
      () => detrMatchCost(pred, [bad, targets[1], targets[2]]),
      /label 8 of target 2 in image 0 is not in \[0, 8\)/,
    );
  });
  await t.step("array lengths that do not fit B, Q, K", () => {
    assert.throws(
      () => detrMatch({ ...pred, numClasses: 7 }, targets),
      /logits have 240 entries, but 3 images x 10 queries x 7 classes need 210/,
    );
    assert.throws(() => detrMatch(pred, targets.slice(0, 2)), TypeError);
    const short = { ...targets[0], boxes: Array.from(targets[0].boxes).slice(0, 12) };
    assert.throws(
      () => detrMatch(pred, [short, targets[1], targets[2]]),
      /image 0 has 4 labels but 12 box coordinates/,
    );
  });
  await t.step("a box of negative width or not finite", () => {
    const boxes = Float64Array.from(pred.boxes);
    boxes[4 * 12 + 2] = -0.1;
    assert.throws(
      () => detrMatch({ ...pred, boxes }, targets),
      /predicted box 2 of image 1 has negative width -0.1/,
    );
    const t0 = { ...targets[0], boxes: Float64Array.from(targets[0].boxes) };
    t0.boxes[5] = Infinity;
    assert.throws(
      () => detrMatch(pred, [t0, targets[1], targets[2]]),
      /target box 1 of image 0 has coordinate 1 = Infinity/,
    );
  });
  await t.step("an undefined GIoU (two empty boxes) names the image and the pair", () => {
    const one = { numQueries: 2, numClasses: 1, logits: [0, 0] };
    const pred = { ...one, boxes: [0.5, 0.5, 0, 0, 0.5, 0.5, 0.1, 0.1] };
    assert.throws(
      () => detrMatch(pred, [{ labels: [0], boxes: [0.2, 0.2, 0, 0] }]),
      /detrMatch: image 0: hungarian: cost\[0\]\[0\] is NaN/,
    );
  });
  await t.step("an image without targets gets empty lists", () => {
    const m = detrMatch(pred, targets)[1];
    assert.deepEqual([m.queryIndex.length, m.targetIndex.length, m.cost], [0, 0, 0]);
  });
});
