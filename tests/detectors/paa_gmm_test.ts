/**
 * PAA's GMM re-assignment against scikit-learn 1.2.1 + mmdetection (tests/fixtures/paa_gmm/).
 *
 * What is asserted, per fitted variant (`f32_diag`, `f64_diag`, `f32_full`):
 * - iterations and convergence exactly; weights, means, variances within `REL` relative, the
 *   lower bound and every log-likelihood within `ABS`; every EM iteration of the stored trace
 *   within `TRACE_REL`;
 * - components (labels), the threshold index, the positive masks (sorted and input order) and the
 *   positive anchors exactly;
 * - `f32_diag` of `isolated_max_f32_diag_error`, where scikit-learn raises: the float32 fit fails
 *   in iteration 1, as there, and the fit returned is the float64 one, checked against `f64_diag`;
 * - the README's rounding-sensitive case (`near_equal_f32_neighbours`): only the fitted
 *   parameters (and iteration counts) are asserted; components, log-likelihoods and positives are
 *   compared and reported, not asserted, since 1e-14 differences decide them.
 */

import assert from "node:assert/strict";
import {
  fitGmm2,
  type Gmm2Fit,
  type GmmCovariance,
  type GmmIteration,
  paaReassign,
  paaSelect,
  paaSeparate,
  pairwiseSum,
} from "../../detectors/paa_gmm.ts";

const FIXTURES = new URL("../fixtures/paa_gmm/", import.meta.url);
// deno-lint-ignore no-explicit-any
type Json = any;
const gmmCases: Json[] = JSON.parse(
  Deno.readTextFileSync(new URL("gmm_cases.json", FIXTURES)),
).cases;
const reassignCases: Json[] = JSON.parse(
  Deno.readTextFileSync(new URL("reassign_cases.json", FIXTURES)),
).cases;

/** Tolerances; the measured worst errors are printed (bit-identical in nearly every fit). */
const REL = 1e-12, ABS = 1e-12, TRACE_REL = 1e-11;
const VARIANTS: Record<string, { f32: boolean; covariance: GmmCovariance }> = {
  f32_diag: { f32: true, covariance: "diag" },
  f64_diag: { f32: false, covariance: "diag" },
  f32_full: { f32: true, covariance: "full" },
};

const worst = { mean: 0, variance: 0, weight: 0, logLikelihood: 0, trace: 0 };
let fitsChecked = 0, bitIdentical = 0;

function rel(actual: number, expected: number): number {
  return actual === expected ? 0 : Math.abs(actual - expected) / Math.abs(expected);
}

function close(actual: number, expected: number, tol: number, what: string): number {
  const e = rel(actual, expected);
  assert.ok(e <= tol, `${what}: ${actual} vs ${expected} (relative ${e})`);
  return e;
}

const losses = (values: number[], f32: boolean) =>
  f32 ? new Float32Array(values) : new Float64Array(values);

/** Checks a fit's parameters (and, unless `paramsOnly`, its verdicts) against a variant. */
function checkFit(fit: Gmm2Fit, v: Json, what: string, paramsOnly = false): boolean {
  assert.equal(fit.iterations, v.n_iter, `${what}: iterations`);
  assert.equal(fit.converged, v.converged, `${what}: converged`);
  let identical = fit.lowerBound === v.lower_bound;
  for (let k = 0; k < 2; k++) {
    worst.mean = Math.max(worst.mean, close(fit.means[k], v.means[k], REL, `${what} mean ${k}`));
    worst.variance = Math.max(
      worst.variance,
      close(fit.variances[k], v.covariances[k], REL, `${what} variance ${k}`),
    );
    worst.weight = Math.max(
      worst.weight,
      close(fit.weights[k], v.weights[k], REL, `${what} weight ${k}`),
    );
    if (v.precisions_cholesky) {
      close(fit.precisionsCholesky[k], v.precisions_cholesky[k], REL, `${what} precision ${k}`);
    }
    identical &&= fit.means[k] === v.means[k] && fit.variances[k] === v.covariances[k] &&
      fit.weights[k] === v.weights[k];
  }
  assert.ok(Math.abs(fit.lowerBound - v.lower_bound) <= ABS, `${what}: lower bound`);
  fit.logLikelihoods.forEach((ll, i) => identical &&= ll === v.log_likelihood[i]);
  if (!paramsOnly) {
    fit.logLikelihoods.forEach((ll, i) => {
      const e = Math.abs(ll - v.log_likelihood[i]);
      worst.logLikelihood = Math.max(worst.logLikelihood, e);
      assert.ok(e <= ABS, `${what}: log-likelihood ${i}: ${ll} vs ${v.log_likelihood[i]}`);
    });
    assert.deepEqual(Array.from(fit.labels), v.component, `${what}: components`);
  }
  fitsChecked++;
  if (identical) bitIdentical++;
  return identical;
}

function checkTrace(trace: GmmIteration[], v: Json, what: string) {
  if (!v.trace) return;
  assert.equal(trace.length, v.trace.length, `${what}: trace length`);
  v.trace.forEach((step: Json, t: number) => {
    assert.equal(trace[t].iteration, step.iteration);
    for (let k = 0; k < 2; k++) {
      const e = Math.max(
        close(trace[t].means[k], step.means[k], TRACE_REL, `${what} it ${t + 1} mean`),
        close(trace[t].variances[k], step.covariances[k], TRACE_REL, `${what} it ${t + 1} var`),
        close(trace[t].weights[k], step.weights[k], TRACE_REL, `${what} it ${t + 1} weight`),
      );
      worst.trace = Math.max(worst.trace, e);
    }
    assert.ok(Math.abs(trace[t].lowerBound - step.lower_bound) <= ABS, `${what}: trace bound`);
  });
}

/** paaSelect on the case's unsorted candidates must give the variant's positives. */
function checkSelection(c: Json, variant: string, v: Json, assertVerdicts: boolean) {
  const { f32, covariance } = VARIANTS[variant];
  const s = paaSelect(losses(c.losses, f32), { covariance });
  assert.equal(s.status, "fitted");
  assert.deepEqual(Array.from(s.order), c.expected.sort_order, `${c.name}: sort order`);
  const got = {
    thr: s.separation!.thresholdIndex,
    sorted: Array.from(s.separation!.positive, Boolean),
    input: Array.from(s.positive, Boolean),
    anchors: Array.from(s.order).filter((i) => s.positive[i]).map((i) => c.anchor_inds[i]),
  };
  const want = {
    thr: v.pos_thr_ind,
    sorted: v.positive_mask_sorted,
    input: v.positive_mask_input,
    anchors: v.positive_anchor_inds,
  };
  if (assertVerdicts) {
    assert.deepEqual(got, want, `${c.name} ${variant}: positives`);
    assert.equal(s.numPositives, v.num_positive);
    // paaSeparate alone, on the reference's own components and scores.
    const ref = paaSeparate(v.component, v.log_likelihood);
    assert.equal(ref.thresholdIndex, v.pos_thr_ind);
    assert.deepEqual(Array.from(ref.positive, Boolean), v.positive_mask_sorted);
  } else {
    const same = JSON.stringify(got) === JSON.stringify(want);
    console.log(
      `  ${c.name} ${variant}: positives ${same ? "match" : "differ from"} the reference`,
    );
  }
}

Deno.test("every gmm_cases.json case (fit, components, positives)", async (t) => {
  let cases = 0;
  for (const c of gmmCases) {
    await t.step(c.name, () => {
      const e = c.expected;
      assert.equal(c.losses.length, e.num_candidates);
      if (e.status === "skipped_fewer_than_2") {
        const s = paaSelect(new Float32Array(c.losses));
        assert.equal(s.status, "skipped");
        assert.deepEqual(Array.from(s.positive, Boolean), e.positive_mask_input);
        assert.throws(() => fitGmm2(new Float32Array(c.losses)), RangeError);
        cases++;
        return;
      }
      const sensitive = e.rounding_sensitive.length > 0;
      assert.equal(sensitive, c.name === "near_equal_f32_neighbours");
      for (const [variant, v] of Object.entries<Json>(e.variants)) {
        const { f32, covariance } = VARIANTS[variant];
        const trace: GmmIteration[] = [];
        const fit = fitGmm2(losses(e.sorted_losses, f32), {
          covariance,
          onIteration: (step) => trace.push(step),
        });
        if (v.status === "error") {
          // scikit-learn raises in iteration v.failed_at_iteration; the fit falls back to float64.
          assert.equal(variant, "f32_diag");
          assert.equal(trace[0].iteration, v.failed_at_iteration);
          assert.ok(trace[0].variances.some((x) => x <= 0), "the float32 variance is not positive");
          assert.equal(fit.fallback, "float64");
          assert.equal(fit.arithmetic, "float64");
          const f64 = e.variants.f64_diag;
          checkFit(fit, f64, `${c.name} f32_diag -> float64`);
          checkTrace(trace.slice(1), f64, `${c.name} f32_diag -> float64`);
          checkSelection(c, variant, f64, true);
          continue;
        }
        assert.equal(fit.fallback, null);
        assert.equal(fit.arithmetic, f32 ? "float32" : "float64");
        checkFit(fit, v, `${c.name} ${variant}`, sensitive);
        checkTrace(trace, v, `${c.name} ${variant}`);
        if (sensitive) {
          const same = Array.from(fit.labels).every((l, i) => l === v.component[i]);
          console.log(`  ${c.name} ${variant}: components ${same ? "match" : "differ"}`);
        }
        checkSelection(c, variant, v, !sensitive);
      }
      cases++;
    });
  }
  assert.equal(cases, gmmCases.length);
  assert.equal(cases, 14, "gmm_cases.json holds 14 cases");
  console.log(
    `checked ${cases} gmm cases, ${fitsChecked} fits (${bitIdentical} bit-identical); worst ` +
      `relative: means ${worst.mean.toExponential(1)}, variances ` +
      `${worst.variance.toExponential(1)}, weights ${worst.weight.toExponential(1)}, trace ` +
      `${worst.trace.toExponential(1)}; worst absolute log-likelihood ` +
      worst.logLikelihood.toExponential(1),
  );
  assert.equal(fitsChecked, 13 * 3, "every fitted variant, the float64 fallback included");
});

Deno.test("every reassign_cases.json case (whole image)", async (t) => {
  let cases = 0, fits = 0, identical = 0;
  for (const c of reassignCases) {
    await t.step(c.name, () => {
      const e = c.expected;
      const r = paaReassign({
        posInds: c.pos_inds,
        posGtInds: c.pos_gt_inds,
        posLosses: new Float32Array(c.pos_losses),
        numAnchorsPerLevel: c.num_anchors_each_level,
        topk: c.topk,
      });
      assert.equal(r.perGt.length, e.num_gt);
      e.per_gt.forEach((g: Json, i: number) => {
        const got = r.perGt[i];
        const what = `${c.name} GT ${g.gt_index}`;
        assert.deepEqual(
          Array.from(got.candidates),
          g.candidate_anchor_inds,
          `${what}: candidates`,
        );
        assert.deepEqual(Array.from(got.candidateLosses), g.candidate_losses);
        assert.equal(got.selection.status, g.status === "fitted" ? "fitted" : "skipped");
        assert.deepEqual(Array.from(got.positives), g.positive_anchor_inds, `${what}: positives`);
        if (g.status !== "fitted") return;
        const order = Array.from(got.selection.order);
        assert.deepEqual(order.map((k) => got.candidates[k]), g.sorted_anchor_inds);
        assert.deepEqual(order.map((k) => got.candidateLosses[k]), g.sorted_losses);
        if (checkFit(got.selection.fit!, g.gmm, what)) identical++;
        fits++;
        assert.equal(got.selection.separation!.thresholdIndex, g.pos_thr_ind);
      });
      assert.deepEqual(Array.from(r.positives), e.pos_inds_after_paa);
      assert.deepEqual(Array.from(r.reassignedToNegative), e.reassigned_to_negative);
      assert.equal(r.numPositives, e.num_pos);
      cases++;
    });
  }
  assert.equal(cases, reassignCases.length);
  assert.equal(cases, 1, "reassign_cases.json holds 1 case");
  console.log(`checked ${cases} reassign case(s), ${fits} fits (${identical} bit-identical)`);
});

const byName = (name: string) => gmmCases.find((c) => c.name === name);

Deno.test("named edge cases", async (t) => {
  await t.step("one candidate: skipped, no positive", () => {
    const s = paaSelect(new Float32Array(byName("one_candidate").losses));
    assert.equal(s.status, "skipped");
    assert.equal(s.fit, null);
    assert.equal(s.numPositives, 0);
    const r = paaReassign({
      posInds: [5],
      posGtInds: [0],
      posLosses: new Float32Array([0.8]),
      numAnchorsPerLevel: [10],
    });
    assert.deepEqual(Array.from(r.positives), []);
    assert.deepEqual(Array.from(r.reassignedToNegative), [5]);
  });
  await t.step("equal scores: two equal losses, one positive (the first)", () => {
    const c = byName("two_equal");
    const s = paaSelect(new Float32Array(c.losses));
    const fit = s.fit!;
    assert.equal(fit.means[0], fit.means[1]);
    assert.ok(Math.abs(fit.variances[0] - 1e-6) < 1e-14, "variance = reg_covar");
    assert.deepEqual(Array.from(fit.labels), [0, 0]);
    assert.deepEqual(Array.from(s.positive), [1, 0]);
  });
  await t.step("equal scores: three tied best fg candidates, the first wins", () => {
    const c = byName("fg_max_tie"), v = c.expected.variants.f32_diag;
    const s = paaSelect(new Float32Array(c.losses));
    assert.equal(v.fg_max_tie_count, 3);
    assert.equal(s.separation!.thresholdIndex, 0);
    assert.deepEqual(Array.from(s.positive, Boolean), v.positive_mask_input);
  });
  await t.step("all-equal scores: nine equal losses, one positive (torch CPU would keep 8)", () => {
    const c = byName("all_equal_9"), v = c.expected.variants.f32_diag;
    const s = paaSelect(new Float32Array(c.losses));
    assert.deepEqual(Array.from(s.fit!.labels), new Array(9).fill(0));
    assert.equal(new Set(s.fit!.logLikelihoods).size, 1, "bit-identical scores");
    assert.equal(s.numPositives, 1);
    assert.deepEqual(Array.from(s.positive, Boolean), v.positive_mask_input);
    assert.equal(v.pos_thr_ind_torch_cpu + 1, 8);
  });
  await t.step("spread scores: losses from 1e-3 to 1e3 (float32 and float64 differ)", () => {
    const c = byName("very_spread");
    const f32 = fitGmm2(new Float32Array(c.expected.sorted_losses));
    const f64 = fitGmm2(new Float64Array(c.expected.sorted_losses));
    checkFit(f32, c.expected.variants.f32_diag, "very_spread f32");
    checkFit(f64, c.expected.variants.f64_diag, "very_spread f64");
    // The float32 rounding of x² moves component 0's variance by 2.5e-5 (2.6e-9 relative).
    assert.ok(Math.abs(f32.variances[0] - f64.variances[0]) > 1e-5);
    assert.equal(paaSelect(new Float32Array(c.losses)).numPositives, 12);
  });
  await t.step("spread scores: moderate spread, 19 iterations", () => {
    const c = byName("spread_moderate"), v = c.expected.variants.f32_diag;
    const s = paaSelect(new Float32Array(c.losses));
    assert.equal(s.fit!.iterations, 19);
    assert.deepEqual(Array.from(s.positive, Boolean), v.positive_mask_input);
  });
  await t.step("non-contiguous fg: component 1 takes the smallest loss too", () => {
    const c = byName("noncontiguous_fg"), v = c.expected.variants.f32_diag;
    const s = paaSelect(new Float32Array(c.losses));
    assert.equal(s.fit!.labels[0], 1);
    assert.equal(s.separation!.positive[0], 0, "mmdetection's rule skips it");
    assert.notDeepEqual(v.positive_mask_sorted, v.positive_mask_sorted_original_paa_rule);
  });
});

Deno.test("bad input", async (t) => {
  await t.step("NaN and Infinity losses throw", () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      assert.throws(() => fitGmm2(new Float64Array([0.1, bad])), RangeError);
      assert.throws(() => paaSelect(new Float32Array([0.1, bad, 0.3])), RangeError);
      assert.throws(() => paaSelect(new Float32Array([bad])), RangeError);
      assert.throws(
        () =>
          paaReassign({
            posInds: [0, 1],
            posGtInds: [0, 0],
            posLosses: new Float32Array([0.1, bad]),
            numAnchorsPerLevel: [4],
          }),
        RangeError,
      );
    }
    assert.throws(() => paaSeparate([0, 0], [0.5, NaN]), RangeError);
  });
  await t.step(
    "empty candidate sets: fitGmm2 throws, paaSelect skips, paaReassign is empty",
    () => {
      assert.throws(() => fitGmm2(new Float32Array(0)), RangeError);
      assert.throws(() => fitGmm2(new Float32Array([1])), RangeError);
      const s = paaSelect(new Float32Array(0));
      assert.equal(s.status, "skipped");
      assert.equal(s.positive.length, 0);
      const r = paaReassign({
        posInds: [],
        posGtInds: [],
        posLosses: new Float32Array(0),
        numAnchorsPerLevel: [4, 2],
      });
      assert.deepEqual([r.perGt.length, r.numPositives, r.reassignedToNegative.length], [0, 0, 0]);
      // A GT index with no first-stage positive (numGt given) is skipped.
      const r2 = paaReassign({
        posInds: [0, 1],
        posGtInds: [1, 1],
        posLosses: new Float32Array([0.1, 0.2]),
        numAnchorsPerLevel: [4],
        numGt: 3,
      });
      assert.deepEqual(r2.perGt.map((g) => g.selection.status), ["skipped", "fitted", "skipped"]);
      const sep = paaSeparate([], []);
      assert.deepEqual([sep.thresholdIndex, sep.numPositives], [null, 0]);
      assert.deepEqual(paaSeparate([1, 1], [0, 1]).thresholdIndex, null);
    },
  );
  await t.step("unsorted losses where sorted ones are required throw", () => {
    assert.throws(() => fitGmm2(new Float32Array([0.5, 0.2, 0.9])), /ascending/);
    assert.throws(
      () =>
        paaReassign({
          posInds: [3, 1],
          posGtInds: [0, 0],
          posLosses: new Float32Array([0.1, 0.2]),
          numAnchorsPerLevel: [4],
        }),
      /ascending/,
    );
  });
  await t.step("inconsistent input throws", () => {
    assert.throws(
      () => fitGmm2(new Float64Array([0.1, 0.2]), { arithmetic: "float32" }),
      /not a float32/,
    );
    assert.throws(() => fitGmm2(new Float64Array([0.1, 0.2]), { maxIter: 0 }), RangeError);
    assert.throws(() => paaSeparate([0, 2], [0, 0]), RangeError);
    assert.throws(() => paaSeparate([0], [0, 0]), RangeError);
    const base = {
      posInds: [0, 1],
      posGtInds: [0, 0],
      posLosses: new Float32Array([0.1, 0.2]),
      numAnchorsPerLevel: [2],
    };
    assert.throws(() => paaReassign({ ...base, posInds: [0, 2] }), /not an anchor/);
    assert.throws(() => paaReassign({ ...base, posGtInds: [0, -1] }), RangeError);
    assert.throws(() => paaReassign({ ...base, posGtInds: [0] }), RangeError);
    assert.throws(() => paaReassign({ ...base, numGt: 0 }), RangeError);
    assert.throws(() => paaReassign({ ...base, topk: 0 }), RangeError);
  });
});

Deno.test("options: maxIter, regCovar, float64 arithmetic on float32 data", () => {
  const c = byName("slow_convergence"), sorted = c.expected.sorted_losses;
  const capped = fitGmm2(new Float32Array(sorted), { maxIter: 10 });
  assert.equal(capped.iterations, 10);
  assert.equal(capped.converged, false);
  const trace = c.expected.variants.f32_diag.trace[9];
  for (let k = 0; k < 2; k++) close(capped.means[k], trace.means[k], TRACE_REL, "capped mean");
  const reg = fitGmm2(new Float32Array([0.5, 0.5]), { regCovar: 1e-5 });
  assert.ok(Math.abs(reg.variances[0] - 1e-5) < 1e-12);
  const asF64 = fitGmm2(new Float32Array(sorted), { arithmetic: "float64" });
  checkFit(asF64, c.expected.variants.f64_diag, "slow_convergence as float64");
});

Deno.test("numpy's pairwise summation", () => {
  // 0.1 summed 200 times: the pairwise blocks round differently from a plain loop.
  const a = new Float64Array(200).fill(0.1);
  let plain = 0;
  for (const v of a) plain += v;
  assert.equal(pairwiseSum(a), 20); // np.sum(np.full(200, 0.1))
  assert.equal(plain, 20.000000000000014);
  assert.equal(pairwiseSum(new Float64Array([1, 2, 3])), 6);
});
