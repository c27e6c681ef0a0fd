/**
 * The fast bucketed losses against their own slower variants and the reference: bucketing by
 * search equals bucketing by the full sort bit for bit; prefix-sum/Fenwick pairwise sums equal
 * the direct double loops; both equal the reference `bucketed*Loss` functions.
 */

import assert from "node:assert/strict";
import { bucketedApLoss, bucketedRankSortLoss, sortAndBucket } from "../../losses/reference/mod.ts";
import {
  bucketBySearch,
  bucketBySort,
  BucketGrid,
  CompensatedPrefixSum,
  directPairwise,
  fastBucketedApLoss,
  fastBucketedRankSortLoss,
  FenwickTree,
  positivesAtOrAbove,
  prefixPairwise,
  sortPositives,
} from "../../losses/fast/mod.ts";
import { mulberry32, randomRankingInputs } from "./random_inputs.ts";
import { assertNear } from "./loss_vectors.ts";

const INPUTS = [
  { seed: 11, positives: 1, negatives: 40, ignored: 3, ties: "none" as const },
  { seed: 12, positives: 9, negatives: 200, ignored: 3, ties: "many" as const },
  { seed: 13, positives: 150, negatives: 3000, ignored: 30, ties: "none" as const },
  { seed: 14, positives: 300, negatives: 300, ignored: 0, ties: "many" as const },
  { seed: 15, positives: 40, negatives: 0, ignored: 2, ties: "many" as const },
];
const DELTAS = [0, 0.25, 0.5, 1];

Deno.test("bucketing by search equals the paper's full sort, bit for bit", async (t) => {
  for (const inp of INPUTS) {
    for (const delta of DELTAS) {
      await t.step(`P=${inp.positives} N=${inp.negatives} ties=${inp.ties} δ=${delta}`, () => {
        const { logits, targets } = randomRankingInputs(inp.seed, inp);
        const pos = sortPositives(logits, targets, delta);
        const slotsA = new Float64Array(logits.length);
        const slotsB = new Float64Array(logits.length);
        const a = bucketBySearch(logits, targets, pos, slotsA);
        const b = bucketBySort(logits, targets, pos, slotsB);
        assert.deepEqual(a, b);
        assert.deepEqual(slotsA, slotsB);
        // Same membership as the reference bucketing; every other entry keeps slot 0.
        const ref = sortAndBucket(logits, targets, delta);
        assert.deepEqual(Array.from(pos.index), ref.positives);
        const expected = new Float64Array(logits.length);
        for (const bucket of ref.buckets) {
          for (const i of bucket.members) expected[i] = bucket.positivesAbove + 1;
        }
        assert.deepEqual(slotsA, expected);
        const members = ref.buckets.reduce((n, bucket) => n + bucket.members.length, 0);
        assert.equal(a.relevant, members);
        for (const fn of [fastBucketedRankSortLoss, fastBucketedApLoss]) {
          assert.deepEqual(
            fn(logits, targets, { delta, bucketing: "search" }),
            fn(logits, targets, { delta, bucketing: "sort" }),
          );
        }
      });
    }
  }
});

/** The next float64 above `x` (`x` finite). */
function nextUp(x: number): number {
  if (x === 0) return Number.MIN_VALUE;
  const f = new Float64Array([x]);
  const u = new BigInt64Array(f.buffer);
  u[0] += x > 0 ? 1n : -1n;
  return f[0];
}

Deno.test("BucketGrid lookups equal a binary search, at cell edges and ties", async (t) => {
  const rand = mulberry32(31);
  const cases: Record<string, number[]> = {
    spread: Array.from({ length: 300 }, () => 4 * rand() - 2),
    ties: Array.from({ length: 300 }, () => Math.round(8 * rand()) / 4),
    "one cluster and an outlier": [
      1e3,
      ...Array.from({ length: 400 }, () => 0.5 + 1e-9 * rand()),
    ],
    "all equal": Array.from({ length: 50 }, () => 0.7),
    "ulp apart": [1, nextUp(1), nextUp(nextUp(1)), 1],
    single: [-3],
  };
  for (const [name, values] of Object.entries(cases)) {
    for (const delta of [0, 0.5]) {
      await t.step(`${name} δ=${delta}`, () => {
        const sorted = Float64Array.from(values).sort().reverse();
        const threshold = sorted[sorted.length - 1] - delta;
        const grid = new BucketGrid(sorted, threshold);
        const queries = [threshold, nextUp(threshold), 2 * sorted[0] + 1];
        for (const p of sorted) queries.push(p, nextUp(p), -nextUp(-p));
        for (let k = 0; k < 2000; k++) {
          queries.push(threshold + (sorted[0] - threshold) * rand() * 1.01);
          // Values at the grid's own cell edges.
          queries.push(threshold + Math.floor(rand() * 4 * sorted.length) / grid.scale);
        }
        for (const s of queries.filter((s) => s >= threshold)) {
          assert.equal(grid.bucketOf(s), positivesAtOrAbove(sorted, s), `s = ${s}`);
        }
      });
    }
  }
});

Deno.test("typed-array inputs are checked during the positives scan", () => {
  const s = new Float32Array([0.5, 0.2, NaN, 0.1]);
  const y = new Float32Array([1, 0, 0, 0]);
  for (const fn of [fastBucketedRankSortLoss, fastBucketedApLoss]) {
    assert.throws(() => fn(s, y), { name: "RangeError", message: /logit 2 is NaN/ });
    assert.throws(
      () => fn(new Float64Array([0.5, 0.2, 0.3]), new Float64Array([1, 0, 1.5])),
      { name: "RangeError", message: /target 2 is 1.5/ },
    );
    assert.throws(
      () => fn(new Float32Array(3), new Float32Array([1, -Infinity, 0])),
      { name: "RangeError", message: /target 1 is -Infinity/ },
    );
    assert.throws(() => fn(new Float32Array(2), new Float32Array(3)), TypeError);
  }
});

Deno.test("prefix/Fenwick pairwise sums equal the direct loops and the reference", async (t) => {
  for (const inp of INPUTS) {
    for (const delta of DELTAS) {
      await t.step(`P=${inp.positives} N=${inp.negatives} ties=${inp.ties} δ=${delta}`, () => {
        const { logits, targets } = randomRankingInputs(inp.seed, inp);
        const pairs = [
          [fastBucketedRankSortLoss, bucketedRankSortLoss],
          [fastBucketedApLoss, bucketedApLoss],
        ] as const;
        for (const [fast, reference] of pairs) {
          const ref = reference(logits, targets, { delta });
          for (const pairwise of ["prefix", "direct"] as const) {
            const r = fast(logits, targets, { delta, pairwise });
            const what = `${fast.name} ${pairwise}`;
            assertNear(r.rankingLoss, ref.rankingLoss, `${what} L_rank`);
            assertNear(r.sortingLoss, ref.sortingLoss, `${what} L_sort`);
            ref.grad.forEach((g, i) => assertNear(r.grad[i], g, `${what} grad[${i}]`));
          }
        }
      });
    }
  }
});

Deno.test("pairwise building blocks agree on random sorted sequences", () => {
  const rand = mulberry32(5);
  for (const delta of [0, 0.3, 2]) {
    const v = Float64Array.from({ length: 500 }, () => Math.round(rand() * 40) / 10)
      .sort().reverse();
    const q = Float64Array.from({ length: 300 }, () => Math.round(rand() * 44 - 2) / 10)
      .sort().reverse();
    const w = Float64Array.from({ length: 500 }, () => rand());
    const y = Float64Array.from({ length: 500 }, () => Math.round(rand() * 20) / 20);
    const close = (a: Float64Array, b: Float64Array, what: string) =>
      a.forEach((x, i) => assertNear(x, b[i], `${what}[${i}] δ=${delta}`, 1e-10, 1e-12));
    close(
      prefixPairwise.sumAbove(v, w, q, delta),
      directPairwise.sumAbove(v, w, q, delta),
      "above",
    );
    close(
      prefixPairwise.sumBelow(v, w, q, delta),
      directPairwise.sumBelow(v, w, q, delta),
      "below",
    );
    const rankPos = directPairwise.sumAbove(v, new Float64Array(500).fill(1), v, delta);
    const a = prefixPairwise.sortingErrors(v, y, rankPos, delta);
    const b = directPairwise.sortingErrors(v, y, rankPos, delta);
    close(a.error, b.error, "SE");
    close(a.missorted, b.missorted, "D");
    for (let i = 0; i < 500; i++) assert.equal(a.missorted[i] === 0, b.missorted[i] === 0);
    close(
      prefixPairwise.sortingShare(v, y, w, delta),
      directPairwise.sortingShare(v, y, w, delta),
      "share",
    );
  }
});

Deno.test("CompensatedPrefixSum and FenwickTree range sums", () => {
  const rand = mulberry32(9);
  const values = Array.from({ length: 257 }, () => (rand() - 0.5) * 10 ** Math.floor(rand() * 12));
  const prefix = new CompensatedPrefixSum(values);
  const tree = new FenwickTree(257, 1);
  values.forEach((x, i) => tree.add(i, 0, x));
  for (let k = 0; k < 200; k++) {
    const a = Math.floor(rand() * 258);
    const c = a + Math.floor(rand() * (258 - a));
    let exact = 0;
    let scale = 0;
    for (let i = a; i < c; i++) {
      exact += values[i];
      scale += Math.abs(values[i]);
    }
    assert.ok(Math.abs(prefix.range(a, c) - exact) <= 1e-15 * scale, `prefix ${a}..${c}`);
    // A Fenwick node may mix the range with entries before it: bound by the whole prefix.
    let prefixScale = 0;
    for (let i = 0; i < c; i++) prefixScale += Math.abs(values[i]);
    assert.ok(Math.abs(tree.range(a, c, 0) - exact) <= 1e-14 * prefixScale, `tree ${a}..${c}`);
  }
});

Deno.test("Float32Array inputs of a million entries", () => {
  const rand = mulberry32(21);
  const m = 1_000_000;
  const logits = new Float32Array(m);
  const targets = new Float32Array(m);
  for (let i = 0; i < m; i++) {
    logits[i] = rand() < 0.7 ? -2.5 + 2 * (rand() - 0.5) : 0.3 + 2 * (rand() - 0.5);
    if (rand() < 1e-3) {
      targets[i] = Math.fround(0.05 + 0.95 * rand());
      logits[i] = 1 + 2 * (rand() - 0.5);
    } else if (rand() < 0.01) targets[i] = -1;
  }
  const a = fastBucketedRankSortLoss(logits, targets);
  const b = fastBucketedRankSortLoss(logits, targets, { pairwise: "direct" });
  assertNear(a.rankingLoss, b.rankingLoss, "L_rank");
  assertNear(a.sortingLoss, b.sortingLoss, "L_sort");
  let sum = 0;
  let diff = 0;
  for (let i = 0; i < m; i++) {
    sum += a.grad[i];
    diff = Math.max(diff, Math.abs(a.grad[i] - b.grad[i]));
    if (targets[i] < 0) assert.equal(a.grad[i], 0);
  }
  assert.ok(Math.abs(sum) < 1e-12, `gradient sums to ${sum}`);
  assert.ok(diff < 1e-12, `prefix vs direct grad ${diff}`);
});
