import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { add, mul } from "../../tensor/ops/elementwise.ts";
import { tensor, tidy } from "../../tensor/tensor.ts";
import {
  alrpLoss as refAlrp,
  apLoss as refAp,
  bucketedApLoss as refBap,
  bucketedRankSortLoss as refBrs,
  type RankingLossResult,
  rankSortLoss as refRs,
} from "../../losses/reference/mod.ts";
import { fastBucketedApLoss, fastBucketedRankSortLoss } from "../../losses/fast/mod.ts";
import {
  alrp,
  apLoss,
  bucketedAp,
  bucketedRankSort,
  MAX_POSITIVES,
  rankingForward,
  rankSort,
} from "../../losses/ops/mod.ts";
import { CPU, GPU, gpuBackend, poisonPool, randomArray } from "../tensor/helpers.ts";
import { loadAlrpVectors, loadRankingVectors, type VectorCase } from "./loss_vectors.ts";

type Kind = "rs" | "brs" | "ap" | "bap";
const KIND: Record<VectorCase["loss"], Kind> = {
  RankSort: "rs",
  BucketedRankSort: "brs",
  APLoss: "ap",
  BucketedAPLoss: "bap",
};
const REF: Record<
  Kind,
  (s: ArrayLike<number>, y: ArrayLike<number>, o: { delta: number }) => RankingLossResult
> = { rs: refRs, brs: refBrs, ap: refAp, bap: refBap };

interface OpResult {
  rankingLoss: number;
  sortingLoss: number;
  grad: Float64Array;
}

async function runOp(
  backend: Backend,
  kind: Kind,
  logits: Float32Array,
  targets: Float32Array,
  delta: number,
  maxPositives?: number,
  bucketing?: "search" | "sort",
): Promise<OpResult> {
  const r = tidy(() =>
    rankingForward(
      kind,
      tensor(logits, [logits.length], { backend }),
      tensor(targets, [targets.length], { backend }),
      { delta, maxPositives, bucketing },
    )
  );
  const [lr, ls, g] = await Promise.all([
    r.rankingLoss.data(),
    r.sortingLoss.data(),
    r.grad.data(),
  ]);
  r.rankingLoss.dispose();
  r.sortingLoss.dispose();
  r.grad.dispose();
  return { rankingLoss: lr[0], sortingLoss: ls[0], grad: Float64Array.from(g) };
}

/**
 * Losses within 1e-5 relative (1e-7 absolute near 0); every gradient entry
 * within 1e-4 of itself plus a small share of the largest entry (1e-5, or
 * the float32 drift of a prefix sum over the input's length where that is
 * larger: float32 against a float64 reference), so that no single entry can
 * be wrong unnoticed.
 */
function assertOpClose(
  got: OpResult,
  expected: { rankingLoss: number; sortingLoss: number; grad: ArrayLike<number> },
  what: string,
): void {
  for (const key of ["rankingLoss", "sortingLoss"] as const) {
    const e = expected[key], a = got[key];
    assert.ok(
      Math.abs(a - e) <= Math.max(1e-7, 1e-5 * Math.abs(e)),
      `${what} ${key}: got ${a}, expected ${e}`,
    );
  }
  assert.equal(got.grad.length, expected.grad.length);
  let scale = 0;
  for (let i = 0; i < expected.grad.length; i++) {
    scale = Math.max(scale, Math.abs(expected.grad[i]));
  }
  // float32 prefix sums over n terms drift like a random walk, ~sqrt(n) roundings of 2^-24 each
  // (measured: 1.2e-4 of the largest entry at n = 1e6 on llvmpipe, 9e-7 at n = 7e4).
  const atol = Math.max(1e-5, 4 * Math.sqrt(got.grad.length) * 2 ** -24) * scale + 1e-12;
  let bad = 0, at = -1;
  for (let i = 0; i < got.grad.length; i++) {
    const e = expected.grad[i];
    if (!(Math.abs(got.grad[i] - e) <= atol + 1e-4 * Math.abs(e))) {
      if (bad++ === 0) at = i;
    }
  }
  assert.equal(
    bad,
    0,
    `${what} grad: ${bad} entries off (first at ${at}: got ${got.grad[at]}, expected ${
      expected.grad[at]
    }; bound ${atol} + 1e-4 |expected|)`,
  );
}

const isF32 = (a: readonly number[]) => a.every((x) => Math.fround(x) === x);

const vectors = await loadRankingVectors();

async function checkVectors(backend: Backend, t: Deno.TestContext): Promise<void> {
  let exact = 0;
  let f32Matched = 0;
  for (const c of vectors) {
    const kind = KIND[c.loss];
    const s = Float32Array.from(c.logits), y = Float32Array.from(c.targets);
    const got = await runOp(backend, kind, s, y, c.delta);
    // Every case: the float64 reference on the same (float32-rounded) inputs.
    const ref = REF[kind](s, y, { delta: c.delta });
    assertOpClose(got, ref, `${c.name} vs reference`);
    if (c.outputs.error !== undefined) {
      // Documented divergences: where the official code crashes or gives NaN, ours is finite.
      assert.ok(Number.isFinite(got.rankingLoss), `${c.name}: finite loss`);
      continue;
    }
    // The official float32 run (training code path): loss values.
    const f32 = (c.outputs as { f32?: Record<string, unknown> }).f32;
    if (f32 && f32.error === undefined) {
      const lr = (f32.ranking_loss ?? f32.loss) as number, ls = (f32.sorting_loss ?? 0) as number;
      if (typeof lr === "number" && typeof ls === "number") {
        assert.ok(Math.abs(got.rankingLoss - lr) <= Math.max(1e-6, 1e-5 * Math.abs(lr)), c.name);
        assert.ok(Math.abs(got.sortingLoss - ls) <= Math.max(1e-6, 1e-5 * Math.abs(ls)), c.name);
        f32Matched++;
      }
    }
    if (!isF32(c.logits) || !isF32(c.targets)) continue;
    // Float32-representable inputs: the official float64 outputs themselves.
    const o = c.outputs;
    const expected = {
      rankingLoss: o.ranking_loss ?? o.loss!,
      sortingLoss: o.sorting_loss ?? 0,
      grad: o.grad!,
    };
    // The empty input's official ranking loss is a shape-[0] tensor (no number to compare).
    if (o.grad === undefined || typeof expected.rankingLoss !== "number") continue;
    assertOpClose(got, expected, `${c.name} vs official`);
    exact++;
  }
  await t.step(`${exact} official cases with float32 inputs matched exactly`, () => {
    assert.ok(exact >= 15);
  });
  await t.step(`${f32Matched} official float32 runs: loss values matched`, () => {
    assert.ok(f32Matched >= 200);
  });
}

Deno.test("ranking ops (CPU backend) match the official vectors and the references", async (t) => {
  await checkVectors(CPU, t);
});

Deno.test(
  "ranking ops (WebGPU) match the official vectors and the references",
  { ignore: !GPU },
  async (t) => {
    await checkVectors(await gpuBackend(), t);
  },
);

/** Random inputs: `p` positives with IoU targets (AP: 1), some ignored, logits in [-3, 3]. */
function randomCase(m: number, p: number, seed: number, binary: boolean) {
  const s = randomArray(m, seed, -3, 3);
  const iou = randomArray(m, seed + 1, 0.05, 1);
  const pick = randomArray(m, seed + 2, 0, 1);
  const y = new Float32Array(m);
  // Positives at evenly spread indices; 5% ignored.
  const step = p > 0 ? m / p : 0;
  for (let k = 0; k < p; k++) y[Math.floor(k * step)] = binary ? 1 : iou[k];
  for (let i = 0; i < m; i++) if (y[i] === 0 && pick[i] < 0.05) y[i] = -1;
  return { s, y };
}

/** The `O(P M)` reference of the large-`P` RS case, shared by both backends' runs. */
let largeRsReference: RankingLossResult | undefined;

async function checkRandom(backend: Backend, t: Deno.TestContext): Promise<void> {
  const sizes: [number, number][] = [[1, 0], [7, 3], [1000, 0], [5000, 1], [20011, 97], [
    70001,
    300,
  ]];
  for (const [m, p] of sizes) {
    for (const kind of ["rs", "brs", "ap", "bap"] as const) {
      for (const delta of kind === "rs" || kind === "brs" ? [0.5, 0] : [1, 0.5]) {
        await t.step(`${kind} M=${m} P=${p} δ=${delta}`, async () => {
          const { s, y } = randomCase(m, p, m + p, kind === "ap" || kind === "bap");
          poisonPool(backend, [m]);
          const got = await runOp(backend, kind, s, y, delta);
          assertOpClose(got, REF[kind](s, y, { delta }), `${kind} M=${m} P=${p}`);
        });
      }
    }
  }
  // Bucketed at scale: against the fast CPU implementation (itself tested against the reference).
  // 3.3e6 entries: each of the 64 columns walks more than one dispatch's share (SUB entries).
  const big: [number, number, number | undefined, string[]][] = [
    [1_000_003, 3000, undefined, ["brs", "bap"]],
    [250_000, 2000, 2100, ["brs", "bap"]],
    [3_300_001, 50, undefined, ["brs"]],
  ];
  for (const [m, p, cap, kinds] of big) {
    for (const kind of kinds as ("brs" | "bap")[]) {
      await t.step(`${kind} M=${m} P=${p} maxPositives=${cap ?? "M"}`, async () => {
        const { s, y } = randomCase(m, p, 11, kind === "bap");
        const delta = kind === "brs" ? 0.5 : 1;
        const got = await runOp(backend, kind, s, y, delta, cap);
        const fast = kind === "brs" ? fastBucketedRankSortLoss : fastBucketedApLoss;
        assertOpClose(got, fast(s, y, { delta }), `${kind} M=${m}`);
      });
    }
  }
  // Ties in logits and in targets (the dominance sums split target ties by `>=` and `>`).
  for (const kind of ["rs", "brs", "ap", "bap"] as const) {
    for (const delta of [0.5, 0]) {
      await t.step(`${kind} with tied logits and targets, δ=${delta}`, async () => {
        const { s, y } = randomCase(6007, 700, 21, kind === "ap" || kind === "bap");
        for (let i = 0; i < s.length; i++) {
          s[i] = Math.round(s[i] * 4) / 4;
          if (y[i] > 0) y[i] = Math.ceil(y[i] * 5) / 5;
        }
        const got = await runOp(backend, kind, s, y, delta);
        assertOpClose(got, REF[kind](s, y, { delta }), `${kind} ties`);
      });
    }
  }
  // More positives than a P x P kernel could hold (the pairwise sums are prefix lookups).
  await t.step("rs M=20000 P=17000", async () => {
    const { s, y } = randomCase(20_000, 17_000, 31, false);
    largeRsReference ??= refRs(s, y, { delta: 0.5 });
    assertOpClose(await runOp(backend, "rs", s, y, 0.5), largeRsReference, "rs 1.7e4");
  });
  // The paper's full-sort bucketing gives the same buckets as the binary search: same bits.
  for (const kind of ["brs", "bap"] as const) {
    for (const delta of [kind === "brs" ? 0.5 : 1, 0]) {
      await t.step(`${kind} bucketing by sort = by search, ties, δ=${delta}`, async () => {
        const { s, y } = randomCase(30_011, 900, 61, kind === "bap");
        for (let i = 0; i < s.length; i += 2) s[i] = Math.round(s[i] * 8) / 8;
        const bySearch = await runOp(backend, kind, s, y, delta, undefined, "search");
        const bySort = await runOp(backend, kind, s, y, delta, undefined, "sort");
        assert.equal(bySort.rankingLoss, bySearch.rankingLoss);
        assert.equal(bySort.sortingLoss, bySearch.sortingLoss);
        const differ = bySort.grad.findIndex((g, i) => !Object.is(g, bySearch.grad[i]));
        assert.equal(differ, -1, `gradients differ first at entry ${differ}`);
        assertOpClose(bySort, REF[kind](s, y, { delta }), `${kind} by sort`);
      });
    }
  }
  // The default capacity (maxPositives = M) on 1.2e7 entries: every buffer within the binding limit.
  if (backend.name === "webgpu") {
    await t.step("brs M=12000000 P=20 maxPositives=M", async () => {
      const { s, y } = randomCase(12_000_000, 20, 51, false);
      const got = await runOp(backend, "brs", s, y, 0.5);
      assertOpClose(got, fastBucketedRankSortLoss(s, y, { delta: 0.5 }), "brs 1.2e7");
    });
  }
  for (const kind of ["brs", "bap"] as const) {
    await t.step(`${kind} M=1000000 P=100000`, async () => {
      const { s, y } = randomCase(1_000_000, 100_000, 41, kind === "bap");
      const delta = kind === "brs" ? 0.5 : 1;
      const fast = kind === "brs" ? fastBucketedRankSortLoss : fastBucketedApLoss;
      assertOpClose(await runOp(backend, kind, s, y, delta), fast(s, y, { delta }), kind);
    });
  }
}

Deno.test("ranking ops (CPU backend) agree with the references on random inputs", async (t) => {
  await checkRandom(CPU, t);
});

Deno.test(
  "ranking ops (WebGPU) agree with the references on random inputs",
  { ignore: !GPU },
  async (t) => {
    await checkRandom(await gpuBackend(), t);
  },
);

Deno.test("ranking ops: autograd, limits, no readback, no leak", async (t) => {
  const backends: Backend[] = [CPU];
  if (GPU) backends.push(await gpuBackend());
  for (const backend of backends) {
    await t.step(
      `${backend.name}: backward scales the stored gradient by the upstream`,
      async () => {
        const s = [2.0, 1.2, 0.9, 0.5, 0.3, -0.1, -0.4, -1.5, 1.0, 0.1];
        const y = [0.3, 0, 0.6, 0, 0.9, 0, 0, 0, 0, -1];
        const expected = refBrs(Float32Array.from(s), y, { delta: 0.5 }).grad;
        const logits = tensor(s, undefined, { backend, requiresGrad: true });
        const { rankingLoss, sortingLoss } = bucketedRankSort(
          logits,
          tensor(y, undefined, { backend }),
        );
        // The sorting output's upstream gradient is ignored (official behaviour;
        // docs/departures.md, Q10).
        backward(mul(mul(rankingLoss, 2.5), 1), undefined);
        const g = await logits.grad!.data();
        for (let i = 0; i < s.length; i++) assert.ok(Math.abs(g[i] - 2.5 * expected[i]) < 1e-6);
        sortingLoss.dispose();
        const x = tensor(s, undefined, { backend, requiresGrad: true });
        const out = rankSort(x, tensor(y, undefined, { backend }));
        backward(out.sortingLoss);
        assert.equal(x.grad, null);
        const ap = tensor(s, undefined, { backend, requiresGrad: true });
        backward(apLoss(ap, tensor([1, 0, 1, 0, 1, 0, 0, 0, 0, -1], undefined, { backend })).loss);
        const gap = await ap.grad!.data();
        assert.ok(Math.abs(gap[1] - 0.144909) < 1e-5);
        const bap = tensor(s, undefined, { backend, requiresGrad: true });
        backward(
          bucketedAp(bap, tensor([1, 0, 1, 0, 1, 0, 0, 0, 0, -1], undefined, { backend })).loss,
        );
        assert.ok(Math.abs((await bap.grad!.data())[1] - 0.148530) < 1e-5);
      },
    );
    await t.step(`${backend.name}: more than ${MAX_POSITIVES} positives give NaN`, async () => {
      const m = MAX_POSITIVES + 10;
      const s = randomArray(m, 5), y = new Float32Array(m).fill(0.5);
      const r = await runOp(backend, "brs", s, y, 0.5);
      assert.ok(Number.isNaN(r.rankingLoss));
      const capped = await runOp(backend, "brs", s, y, 0.5, 100);
      assert.ok(Number.isNaN(capped.rankingLoss));
    });
    await t.step(`${backend.name}: no readback inside the op, no leaked buffer`, async () => {
      const { s, y } = randomCase(3000, 40, 3, false);
      const live = backend.liveBuffers();
      const read = backend.read;
      let reads = 0;
      backend.read = (...args) => {
        reads++;
        return read.apply(backend, args);
      };
      try {
        const logits = tensor(s, [s.length], { backend, requiresGrad: true });
        tidy(() => {
          const { rankingLoss, sortingLoss } = bucketedRankSort(
            logits,
            tensor(y, [y.length], { backend }),
          );
          sortingLoss.dispose();
          backward(rankingLoss);
        });
        assert.equal(reads, 0);
        logits.grad!.dispose();
        logits.dispose();
      } finally {
        backend.read = read;
      }
      await backend.sync();
      assert.equal(backend.liveBuffers(), live);
    });
  }
  for (const backend of backends) {
    await t.step(`${backend.name}: no leak outside tidy, with and without backward`, async () => {
      const { s, y } = randomCase(500, 20, 9, false);
      const live = backend.liveBuffers();
      for (const grad of [true, false]) {
        const logits = tensor(s, [s.length], { backend, requiresGrad: grad });
        const targets = tensor(y, [y.length], { backend });
        const errors = tensor(new Float32Array(20).fill(0.5), [20], {
          backend,
          requiresGrad: grad,
        });
        const out = rankSort(logits, targets);
        const binary = tensor(y.map((v) => (v > 0 ? 1 : v)), [y.length], { backend });
        const a = alrp(logits, binary, errors);
        if (grad) {
          const partial = add(out.rankingLoss, out.sortingLoss);
          const total = add(partial, a.classificationLoss);
          backward(total);
          partial.dispose();
          total.dispose();
          logits.grad!.dispose();
        }
        for (
          const x of [out.rankingLoss, out.sortingLoss, a.classificationLoss, a.localisationLoss]
        ) {
          x.dispose();
        }
        errors.grad?.dispose();
        logits.dispose();
        targets.dispose();
        binary.dispose();
        errors.dispose();
      }
      await backend.sync();
      assert.equal(backend.liveBuffers(), live);
    });
  }
  await t.step("bad inputs throw", () => {
    assert.throws(() => rankSort(tensor([1, 2]), tensor([1])), TypeError);
    assert.throws(() => bucketedRankSort(tensor([1]), tensor([1]), { delta: -1 }), RangeError);
    assert.throws(
      () => bucketedAp(tensor([1]), tensor([1], undefined, { dtype: "i32" })),
      TypeError,
    );
  });
});

const alrpVectors = await loadAlrpVectors();

async function checkAlrp(backend: Backend, t: Deno.TestContext): Promise<void> {
  let exact = 0;
  for (const c of alrpVectors) {
    const s = Float32Array.from(c.logits), y = Float32Array.from(c.targets);
    const e = Float32Array.from(c.regression_losses);
    const r = tidy(() =>
      rankingForward(
        "alrp",
        tensor(s, [s.length], { backend }),
        tensor(y, [y.length], { backend }),
        { delta: c.delta },
        tensor(e, [e.length], { backend }),
      )
    );
    const [lr, ls, g, eg] = await Promise.all([
      r.rankingLoss.data(),
      r.sortingLoss.data(),
      r.grad.data(),
      r.errorGrad!.data(),
    ]);
    for (const x of [r.rankingLoss, r.sortingLoss, r.grad, r.errorGrad!]) x.dispose();
    const got = { rankingLoss: lr[0], sortingLoss: ls[0], grad: Float64Array.from(g) };
    const ref = refAlrp(s, y, e, { delta: c.delta });
    assertOpClose(
      got,
      { rankingLoss: ref.loss, sortingLoss: ref.localisationLoss, grad: ref.grad },
      `${c.name} vs reference`,
    );
    assertOpClose(
      { rankingLoss: 0, sortingLoss: 0, grad: Float64Array.from(eg) },
      { rankingLoss: 0, sortingLoss: 0, grad: ref.regressionGrad },
      `${c.name} regression gradient`,
    );
    // The official float64 outputs: every case, on the CPU in float64 with the official inputs.
    const official = await runAlrp64(c.logits, c.targets, c.regression_losses, c.delta);
    assertOpClose(
      official,
      { rankingLoss: c.outputs.loss, sortingLoss: ref.localisationLoss, grad: c.outputs.grad },
      `${c.name} (float64) vs official`,
    );
    exact++;
  }
  await t.step(`${exact} of ${alrpVectors.length} official aLRP cases matched`, () => {
    assert.equal(alrpVectors.length, 16);
    assert.equal(exact, alrpVectors.length);
  });
}

/** The aLRP op on the CPU backend in float64 (what the official float64 outputs are compared with). */
async function runAlrp64(
  logits: readonly number[],
  targets: readonly number[],
  errors: readonly number[],
  delta: number,
): Promise<OpResult> {
  const f64 = (v: readonly number[]) =>
    tensor(Float64Array.from(v), [v.length], { backend: CPU, dtype: "f64" });
  const r = tidy(() => rankingForward("alrp", f64(logits), f64(targets), { delta }, f64(errors)));
  const [lr, ls, g] = await Promise.all([
    r.rankingLoss.data(),
    r.sortingLoss.data(),
    r.grad.data(),
  ]);
  for (const x of [r.rankingLoss, r.sortingLoss, r.grad, r.errorGrad!]) x.dispose();
  return { rankingLoss: lr[0], sortingLoss: ls[0], grad: Float64Array.from(g) };
}

Deno.test("alrp op (CPU backend) matches the official vectors and the reference", async (t) => {
  await checkAlrp(CPU, t);
});

Deno.test(
  "alrp op (WebGPU) matches the official vectors and the reference",
  { ignore: !GPU },
  async (t) => {
    await checkAlrp(await gpuBackend(), t);
  },
);

Deno.test("alrp op: gradients reach the logits and the regression errors", async () => {
  const backends: Backend[] = [CPU];
  if (GPU) backends.push(await gpuBackend());
  for (const backend of backends) {
    const s = [2.0, 0.5, 1.0, -1.0, 1.5], y = [0, 0, 1, 0, 1], e = [0.3, 0.7];
    const ref = refAlrp(Float32Array.from(s), y, Float32Array.from(e));
    const logits = tensor(s, undefined, { backend, requiresGrad: true });
    const errors = tensor(e, undefined, { backend, requiresGrad: true });
    const out = alrp(logits, tensor(y, undefined, { backend }), errors);
    // One backward through both outputs (the tape is released after a backward).
    backward(add(mul(out.classificationLoss, 2), mul(out.localisationLoss, 3)));
    const g = await logits.grad!.data(), ge = await errors.grad!.data();
    for (let i = 0; i < s.length; i++) assert.ok(Math.abs(g[i] - 2 * ref.grad[i]) < 1e-6);
    for (let k = 0; k < e.length; k++) {
      assert.ok(Math.abs(ge[k] - 3 * ref.regressionGrad[k]) < 1e-6, `${ge[k]}`);
    }
    // A wrong number of regression errors: NaN losses.
    const bad = alrp(
      tensor(s, undefined, { backend }),
      tensor(y, undefined, { backend }),
      tensor([1], undefined, { backend }),
    );
    assert.ok(Number.isNaN((await bad.classificationLoss.data())[0]));
  }
});
