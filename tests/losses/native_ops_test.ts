/**
 * The bucketed ranking ops on the native backend, where they run the fast array functions of
 * `losses/fast` on the tensors' memory (`losses/ops/native_losses.ts`): the same outputs as the
 * CPU backend's kernel twins and the float64 references, no kernel launch, repeated calls on
 * reused (poisoned) pool buffers giving identical bits, the same autograd contract and limits.
 */

import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { mul } from "../../tensor/ops/elementwise.ts";
import { tensor, tidy } from "../../tensor/tensor.ts";
import {
  bucketedApLoss as refBap,
  bucketedRankSortLoss as refBrs,
  type RankingLossResult,
} from "../../losses/reference/mod.ts";
import {
  bucketBySearch,
  bucketPrototypes,
  fastBucketedApLoss,
  fastBucketedRankSortLoss,
  sortPositives,
} from "../../losses/fast/mod.ts";
import {
  bucketedAp,
  bucketedRankSort,
  MAX_POSITIVES,
  rankingForward,
  type RankingOpOptions,
} from "../../losses/ops/mod.ts";
import { CPU, NATIVE, nativeBackend, poisonPool, randomArray } from "../tensor/helpers.ts";
import { loadRankingVectors } from "./loss_vectors.ts";

type Kind = "brs" | "bap";
const REF: Record<
  Kind,
  (s: ArrayLike<number>, y: ArrayLike<number>, o: { delta: number }) => RankingLossResult
> = {
  brs: refBrs,
  bap: refBap,
};
const FAST = { brs: fastBucketedRankSortLoss, bap: fastBucketedApLoss };
const DELTAS: Record<Kind, number[]> = { brs: [0.5, 0, 0.25], bap: [1, 0.5, 0] };

interface OpResult {
  rankingLoss: number;
  sortingLoss: number;
  grad: Float64Array;
}

/** One forward pass on `backend` (inputs uploaded as `dtype`), read back as float64. */
async function runOp(
  backend: Backend,
  kind: Kind,
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  options: RankingOpOptions,
  dtype: "f32" | "f64" = "f32",
): Promise<OpResult> {
  const m = logits.length;
  const cast = (a: ArrayLike<number>) =>
    dtype === "f32" ? Float32Array.from(a) : Float64Array.from(a);
  const r = tidy(() =>
    rankingForward(
      kind,
      tensor(cast(logits), [m], { backend }),
      tensor(cast(targets), [m], { backend }),
      options,
    )
  );
  const [lr, ls, g] = await Promise.all([
    r.rankingLoss.data(),
    r.sortingLoss.data(),
    r.grad.data(),
  ]);
  for (const t of [r.rankingLoss, r.sortingLoss, r.grad]) t.dispose();
  return { rankingLoss: lr[0], sortingLoss: ls[0], grad: Float64Array.from(g) };
}

function l1(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]);
  return s;
}

/** The op tests' tolerances: losses 1e-5 relative (1e-7 absolute), gradient 1e-4 of its L1. */
function assertOpClose(
  got: OpResult,
  expected: { rankingLoss: number; sortingLoss: number; grad: ArrayLike<number> },
  what: string,
  rel = 1e-5,
): void {
  for (const key of ["rankingLoss", "sortingLoss"] as const) {
    const e = expected[key], a = got[key];
    assert.ok(
      Math.abs(a - e) <= Math.max(1e-7, rel * Math.abs(e)),
      `${what} ${key}: got ${a}, expected ${e}`,
    );
  }
  assert.equal(got.grad.length, expected.grad.length, `${what}: gradient length`);
  let diff = 0;
  for (let i = 0; i < got.grad.length; i++) diff += Math.abs(got.grad[i] - expected.grad[i]);
  const tol = 10 * rel * l1(expected.grad) + 1e-9;
  assert.ok(diff <= tol, `${what} grad: L1 difference ${diff} > ${tol}`);
}

/** Same bits: loss values and every gradient entry (`Object.is`, so NaN and -0 count). */
function assertIdentical(a: OpResult, b: OpResult, what: string): void {
  assert.ok(Object.is(a.rankingLoss, b.rankingLoss), `${what}: rankingLoss`);
  assert.ok(Object.is(a.sortingLoss, b.sortingLoss), `${what}: sortingLoss`);
  const differ = a.grad.findIndex((g, i) => !Object.is(g, b.grad[i]));
  assert.equal(differ, -1, `${what}: gradients differ first at entry ${differ}`);
}

/** Random inputs: `p` positives with IoU targets (BAP: 1), 5% ignored, logits in [-3, 3]. */
function randomCase(m: number, p: number, seed: number, binary: boolean) {
  const s = randomArray(m, seed, -3, 3);
  const iou = randomArray(m, seed + 1, 0.05, 1);
  const pick = randomArray(m, seed + 2, 0, 1);
  const y = new Float32Array(m);
  const step = p > 0 ? m / p : 0;
  for (let k = 0; k < p; k++) y[Math.floor(k * step)] = binary ? 1 : iou[k];
  for (let i = 0; i < m; i++) if (y[i] === 0 && pick[i] < 0.05) y[i] = -1;
  return { s, y };
}

/** Logits on a 0.25 grid and targets on a 0.2 grid: ties among and across both. */
function tied({ s, y }: { s: Float32Array; y: Float32Array }) {
  for (let i = 0; i < s.length; i++) {
    s[i] = Math.round(s[i] * 4) / 4;
    if (y[i] > 0) y[i] = Math.ceil(y[i] * 5) / 5;
  }
  return { s, y };
}

Deno.test(
  "native bucketed ops match the CPU backend's kernels and the references",
  { ignore: !NATIVE },
  async (t) => {
    const native = nativeBackend();
    const sizes: [number, number][] = [[1, 0], [1, 1], [7, 3], [1000, 0], [5000, 1], [20011, 97], [
      70001,
      300,
    ]];
    for (const [m, p] of sizes) {
      for (const kind of ["brs", "bap"] as const) {
        for (const delta of DELTAS[kind]) {
          await t.step(`${kind} M=${m} P=${p} δ=${delta}`, async () => {
            const { s, y } = randomCase(m, p, m + 7 * p, kind === "bap");
            poisonPool(native, [m]);
            const got = await runOp(native, kind, s, y, { delta });
            assertOpClose(got, await runOp(CPU, kind, s, y, { delta }), `${kind} vs CPU op`);
            assertOpClose(got, REF[kind](s, y, { delta }), `${kind} vs reference`);
          });
        }
      }
    }
    for (const kind of ["brs", "bap"] as const) {
      for (const delta of DELTAS[kind]) {
        await t.step(`${kind} with tied logits and targets, δ=${delta}`, async () => {
          const { s, y } = tied(randomCase(6007, 700, 21, kind === "bap"));
          const got = await runOp(native, kind, s, y, { delta });
          assertOpClose(got, await runOp(CPU, kind, s, y, { delta }), `${kind} ties vs CPU op`);
          assertOpClose(got, REF[kind](s, y, { delta }), `${kind} ties vs reference`);
        });
        await t.step(`${kind} all positive and no positive, δ=${delta}`, async () => {
          const { s, y } = randomCase(3001, 3001, 5, kind === "bap");
          for (const targets of [y, new Float32Array(y.length), y.map(() => -1)]) {
            const got = await runOp(native, kind, s, targets, { delta });
            assertOpClose(got, await runOp(CPU, kind, s, targets, { delta }), `${kind} vs CPU op`);
            assertOpClose(got, REF[kind](s, targets, { delta }), `${kind} vs reference`);
          }
        });
      }
    }
    await t.step("the shared official-code vectors: as the CPU op and the reference", async () => {
      let cases = 0;
      for (const c of await loadRankingVectors()) {
        const kind = c.loss === "BucketedRankSort"
          ? "brs"
          : c.loss === "BucketedAPLoss"
          ? "bap"
          : null;
        if (kind === null) continue;
        const s = Float32Array.from(c.logits), y = Float32Array.from(c.targets);
        const got = await runOp(native, kind, s, y, { delta: c.delta });
        assertOpClose(got, await runOp(CPU, kind, s, y, { delta: c.delta }), `${c.name} vs CPU op`);
        assertOpClose(got, REF[kind](s, y, { delta: c.delta }), `${c.name} vs reference`);
        cases++;
      }
      assert.ok(cases >= 100, `${cases} cases`);
    });
    await t.step("vectors V1 (BRS) and V5 (BAP), and the empty input", async () => {
      const s = [2.0, 1.2, 0.9, 0.5, 0.3, -0.1, -0.4, -1.5, 1.0, 0.1];
      const brs = await runOp(native, "brs", s, [0.3, 0, 0.6, 0, 0.9, 0, 0, 0, 0, -1], {});
      const v1 = [0.126667, 0.140671, -0.173333, 0.055136, -0.296101, 0.006289, 0, 0, 0.140671, 0];
      assert.ok(Math.abs(brs.rankingLoss - 0.342767) < 1e-6);
      assert.ok(Math.abs(brs.sortingLoss - 0.186667) < 1e-6);
      v1.forEach((g, i) => assert.ok(Math.abs(brs.grad[i] - g) < 1e-6, `V1 grad ${i}`));
      const bap = await runOp(native, "bap", s, [1, 0, 1, 0, 1, 0, 0, 0, 0, -1], {});
      assert.ok(Math.abs(bap.rankingLoss - 0.396272) < 1e-6);
      assert.ok(Math.abs(bap.grad[1] - 0.148530) < 1e-6);
      for (const kind of ["brs", "bap"] as const) {
        const empty = await runOp(native, kind, [], [], {});
        assert.deepEqual(empty, { rankingLoss: 0, sortingLoss: 0, grad: new Float64Array(0) });
      }
    });
    await t.step("bucketing by sort = by search, bit for bit, and = the CPU op", async () => {
      for (const kind of ["brs", "bap"] as const) {
        for (const delta of [DELTAS[kind][0], 0]) {
          const { s, y } = randomCase(30011, 900, 61, kind === "bap");
          for (let i = 0; i < s.length; i += 2) s[i] = Math.round(s[i] * 8) / 8;
          const bySearch = await runOp(native, kind, s, y, { delta, bucketing: "search" });
          const bySort = await runOp(native, kind, s, y, { delta, bucketing: "sort" });
          assertIdentical(bySort, bySearch, `${kind} δ=${delta} sort vs search`);
          const cpu = await runOp(CPU, kind, s, y, { delta, bucketing: "sort" });
          assertOpClose(bySort, cpu, `${kind} δ=${delta} vs CPU op by sort`);
        }
      }
    });
    await t.step("float64 tensors match the CPU backend's float64 op", async () => {
      for (const kind of ["brs", "bap"] as const) {
        const { s, y } = tied(randomCase(20011, 400, 71, kind === "bap"));
        const delta = DELTAS[kind][0];
        const got = await runOp(native, kind, s, y, { delta }, "f64");
        assertOpClose(got, await runOp(CPU, kind, s, y, { delta }, "f64"), `${kind} f64`, 1e-9);
        assertOpClose(got, REF[kind](s, y, { delta }), `${kind} f64 vs reference`, 1e-9);
      }
    });
    await t.step("a million entries: against the CPU op and the fast array function", async () => {
      for (const kind of ["brs", "bap"] as const) {
        const { s, y } = randomCase(1_000_003, 3000, 11, kind === "bap");
        const delta = DELTAS[kind][0];
        const got = await runOp(native, kind, s, y, { delta });
        assertOpClose(got, FAST[kind](s, y, { delta }), `${kind} 1e6 vs fast`);
        assertOpClose(got, await runOp(CPU, kind, s, y, { delta }), `${kind} 1e6 vs CPU op`);
      }
    });
  },
);

Deno.test(
  "native bucketed ops: repeated calls on reused buffers give identical results",
  { ignore: !NATIVE },
  async () => {
    const native = nativeBackend();
    for (const kind of ["brs", "bap"] as const) {
      const { s, y } = tied(randomCase(50021, 500, 3, kind === "bap"));
      const delta = DELTAS[kind][0];
      const first = await runOp(native, kind, s, y, { delta });
      for (let r = 0; r < 3; r++) {
        // The pool hands back the buffer just released, first filled with NaN; a call of
        // another size in between leaves other garbage in the pool.
        poisonPool(native, [s.length]);
        assertIdentical(await runOp(native, kind, s, y, { delta }), first, `${kind} call ${r}`);
        await runOp(native, kind, s.subarray(0, 1000), y.subarray(0, 1000), { delta });
      }
    }
  },
);

Deno.test(
  "native bucketed ops: no kernel launch, autograd, limits, errors, no leak",
  { ignore: !NATIVE },
  async (t) => {
    const native = nativeBackend();
    const s = [2.0, 1.2, 0.9, 0.5, 0.3, -0.1, -0.4, -1.5, 1.0, 0.1];
    const y = [0.3, 0, 0.6, 0, 0.9, 0, 0, 0, 0, -1];
    await t.step("forward and backward launch no kernel and read nothing back", async () => {
      const { s, y } = randomCase(3000, 40, 3, false);
      const read = native.read;
      let reads = 0;
      native.read = (...args) => {
        reads++;
        return read.apply(native, args);
      };
      native.startProfile();
      try {
        const logits = tensor(s, [s.length], { backend: native, requiresGrad: true });
        tidy(() => {
          const { rankingLoss, sortingLoss } = bucketedRankSort(
            logits,
            tensor(y, [y.length], { backend: native }),
          );
          sortingLoss.dispose();
          backward(rankingLoss);
          const binary = tensor(y.map((v) => (v > 0 ? 1 : v)), [y.length], { backend: native });
          backward(bucketedAp(logits, binary).loss);
        });
        logits.grad!.dispose();
        logits.dispose();
      } finally {
        native.read = read;
      }
      // Only the accumulation of the two gradients into `logits.grad` launches a kernel.
      const launches = (await native.stopProfile()).map((k) => k.label);
      assert.deepEqual(launches, ["map.add"]);
      assert.equal(reads, 0);
    });
    await t.step("backward scales the stored gradient by the upstream, in place", async () => {
      for (const upstream of [1, 2.5, -0.5]) {
        const expected = refBrs(Float32Array.from(s), y, { delta: 0.5 }).grad;
        const logits = tensor(s, undefined, { backend: native, requiresGrad: true });
        const { rankingLoss, sortingLoss } = bucketedRankSort(
          logits,
          tensor(y, undefined, { backend: native }),
        );
        // The sorting output's upstream gradient is ignored (official behaviour;
        // docs/departures.md, Q10).
        backward(mul(rankingLoss, upstream));
        const g = await logits.grad!.data();
        for (let i = 0; i < s.length; i++) {
          assert.ok(Math.abs(g[i] - upstream * expected[i]) < 1e-6, `upstream ${upstream}: ${i}`);
        }
        // Same bits as the CPU op, whose backward multiplies with the `mul` kernel.
        const x = tensor(s, undefined, { backend: CPU, requiresGrad: true });
        backward(
          mul(bucketedRankSort(x, tensor(y, undefined, { backend: CPU })).rankingLoss, upstream),
        );
        const forward = await runOp(native, "brs", s, y, {});
        const gc = await x.grad!.data();
        for (let i = 0; i < s.length; i++) {
          assert.ok(Object.is(g[i], Math.fround(forward.grad[i] * Math.fround(upstream))));
          assert.ok(Math.abs(g[i] - gc[i]) < 1e-6);
        }
        sortingLoss.dispose();
        const bap = tensor(s, undefined, { backend: native, requiresGrad: true });
        const binary = tensor([1, 0, 1, 0, 1, 0, 0, 0, 0, -1], undefined, { backend: native });
        backward(mul(bucketedAp(bap, binary).loss, upstream));
        assert.ok(Math.abs((await bap.grad!.data())[1] - upstream * 0.148530) < 1e-5);
      }
      // Only the sorting output used: no gradient reaches the logits.
      const x = tensor(s, undefined, { backend: native, requiresGrad: true });
      backward(bucketedRankSort(x, tensor(y, undefined, { backend: native })).sortingLoss);
      assert.equal(x.grad, null);
    });
    await t.step(`more than maxPositives or ${MAX_POSITIVES} positives give NaN`, async () => {
      for (const kind of ["brs", "bap"] as const) {
        const capped = await runOp(native, kind, s, y, { maxPositives: 2 });
        assert.ok(Number.isNaN(capped.rankingLoss) && Number.isNaN(capped.sortingLoss));
        assert.ok(capped.grad.every((g) => g === 0));
        assertIdentical(capped, await runOp(CPU, kind, s, y, { maxPositives: 2 }), kind);
        const enough = await runOp(native, kind, s, y, { maxPositives: 3 });
        assertOpClose(enough, REF[kind](s, y, { delta: DELTAS[kind][0] }), `${kind} P = cap`);
      }
      const m = MAX_POSITIVES + 10;
      const many = await runOp(native, "brs", randomArray(m, 5), new Float32Array(m).fill(0.5), {});
      assert.ok(Number.isNaN(many.rankingLoss));
    });
    await t.step("options and inputs are checked as on the other backends", () => {
      const x = tensor(s, undefined, { backend: native });
      const target = tensor(y, undefined, { backend: native });
      assert.throws(() => bucketedRankSort(x, target, { delta: -1 }), RangeError);
      assert.throws(() => bucketedAp(x, target, { delta: NaN }), RangeError);
      assert.throws(() => bucketedRankSort(x, target, { maxPositives: 1.5 }), RangeError);
      assert.throws(
        () => bucketedRankSort(x, target, { bucketing: "radix" as "sort" }),
        /unknown bucketing "radix"/,
      );
      assert.throws(() => bucketedAp(x, tensor([1, 0], undefined, { backend: native })), TypeError);
      assert.throws(() => bucketedAp(x, tensor(y, undefined, { backend: CPU })), TypeError);
      assert.throws(
        () => bucketedAp(x, tensor(y, undefined, { backend: native, dtype: "i32" })),
        TypeError,
      );
      // Entries the kernels cannot check without a readback are checked here.
      const bad = tensor([0.5, NaN, 1], undefined, { backend: native });
      const ok = tensor([1, 0, 0], undefined, { backend: native });
      assert.throws(
        () => bucketedRankSort(bad, ok),
        {
          name: "RangeError",
          message: "bucketedRankSort: logit 1 is NaN, expected a finite number",
        },
      );
      const above = tensor([0.5, 0, 1.5], undefined, { backend: native });
      assert.throws(
        () => bucketedAp(ok, above),
        {
          name: "RangeError",
          message: "bucketedAp: target 2 is 1.5, expected at most 1",
        },
      );
    });
    await t.step("no leaked buffer, with and without backward", async () => {
      const { s, y } = randomCase(5000, 50, 9, false);
      const live = native.liveBuffers();
      for (const grad of [true, false]) {
        const logits = tensor(s, [s.length], { backend: native, requiresGrad: grad });
        const targets = tensor(y, [y.length], { backend: native });
        const out = bucketedRankSort(logits, targets);
        const ap = bucketedAp(logits, targets);
        if (grad) {
          backward(out.rankingLoss);
          const scaled = mul(ap.loss, 3);
          backward(scaled);
          scaled.dispose();
          logits.grad!.dispose();
        }
        for (const x of [out.rankingLoss, out.sortingLoss, ap.loss, logits, targets]) x.dispose();
      }
      // The error path releases what the op allocated.
      const bad = tensor([0, Infinity], undefined, { backend: native, requiresGrad: true });
      const target = tensor([1, 0], undefined, { backend: native });
      assert.throws(() => bucketedRankSort(bad, target), /logit 1 is Infinity/);
      bad.dispose();
      target.dispose();
      await native.sync();
      assert.equal(native.liveBuffers(), live);
    });
  },
);

Deno.test("the Float32 scan of bucketBySearch equals the generic scan", async (t) => {
  const cases: [string, Float32Array, Float32Array, number][] = [];
  const { s, y } = randomCase(20011, 300, 81, false);
  for (const delta of [0, 0.5, 1e6]) cases.push([`random δ=${delta}`, s, y, delta]);
  const ties = tied(randomCase(5003, 400, 83, false));
  for (const delta of [0, 0.25]) cases.push([`ties δ=${delta}`, ties.s, ties.y, delta]);
  // Logits far outside the grid, subnormal and signed zeros, -0 targets, equal positives.
  const odd = Float32Array.from([1e30, -1e30, 3e38, -3e38, 1e-45, -1e-45, 0, -0, 0.5, 0.5, 0.25]);
  const oddY = Float32Array.from([0, 0, 0, -0, 0, -0, 0, 0.5, 0, 0.7, 0.9]);
  for (const delta of [0, 1e-40, 0.5]) cases.push([`odd values δ=${delta}`, odd, oddY, delta]);
  const same = Float32Array.from([1, 1, 2, 0.5, 1]);
  cases.push(["equal positives, δ=0 (no grid)", same, Float32Array.from([0.5, 0.5, 0, 0, 0]), 0]);
  for (const [name, logits, targets, delta] of cases) {
    await t.step(name, () => {
      const pos = sortPositives(logits, targets, delta);
      const slots = new Int32Array(logits.length).fill(-7);
      const f32 = bucketBySearch(logits, targets, pos, slots);
      const genericSlots = new Float64Array(logits.length);
      const generic = bucketBySearch(Array.from(logits), Array.from(targets), pos, genericSlots);
      assert.deepEqual(Array.from(slots), Array.from(genericSlots));
      assert.deepEqual(f32.count, generic.count);
      assert.deepEqual(f32.sum, generic.sum);
      assert.equal(f32.relevant, generic.relevant);
      assert.ok(f32.finite && generic.finite);
      // Same prototypes, up to the sign of a zero mean (the bounds differ, see NegativeBuckets).
      const [a, b] = [bucketPrototypes(f32), bucketPrototypes(generic)];
      assert.deepEqual(a.id, b.id);
      assert.deepEqual(a.size, b.size);
      assert.deepEqual(Array.from(a.mean, (v) => v + 0), Array.from(b.mean, (v) => v + 0));
    });
  }
  await t.step("non-finite logits are reported", () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const logits = Float32Array.from([1, bad, 0.5]), targets = Float32Array.from([1, 0, 0]);
      const pos = sortPositives(logits, targets, 0.5, { checkLogits: false });
      assert.ok(pos.valid);
      assert.equal(bucketBySearch(logits, targets, pos, new Int32Array(3)).finite, false);
    }
  });
});
