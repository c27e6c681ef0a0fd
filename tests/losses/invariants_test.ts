/**
 * Invariants of every ranking loss on random inputs: gradients balance, ignored and
 * below-threshold entries get exactly 0, loss values lie in [0, 1], and the input order does
 * not matter.
 */

import assert from "node:assert/strict";
import {
  alrpLoss,
  apLoss,
  bucketedApLoss,
  bucketedRankSortLoss,
  rankSortLoss,
} from "../../losses/reference/mod.ts";
import { fastBucketedApLoss, fastBucketedRankSortLoss } from "../../losses/fast/mod.ts";
import { mulberry32, randomRankingInputs } from "./random_inputs.ts";
import type { LossFn } from "./helpers.ts";

/** aLRP with a regression error tied to each positive entry (a function of its logit). */
const alrpWithErrors: LossFn = (logits, targets, options) => {
  const errors: number[] = [];
  for (let i = 0; i < targets.length; i++) {
    if (targets[i] === 1) errors.push((Math.abs(logits[i]) * 7.3) % 1);
  }
  return alrpLoss(logits, targets, errors, options);
};

const LOSSES: { name: string; fn: LossFn; isPositive: (y: number) => boolean; binary: boolean }[] =
  [
    { name: "rankSortLoss", fn: rankSortLoss, isPositive: (y) => y > 0, binary: false },
    {
      name: "bucketedRankSortLoss",
      fn: bucketedRankSortLoss,
      isPositive: (y) => y > 0,
      binary: false,
    },
    {
      name: "fastBucketedRankSortLoss",
      fn: fastBucketedRankSortLoss,
      isPositive: (y) => y > 0,
      binary: false,
    },
    { name: "apLoss", fn: apLoss, isPositive: (y) => y === 1, binary: true },
    { name: "alrpLoss", fn: alrpWithErrors, isPositive: (y) => y === 1, binary: true },
    { name: "bucketedApLoss", fn: bucketedApLoss, isPositive: (y) => y > 0, binary: true },
    { name: "fastBucketedApLoss", fn: fastBucketedApLoss, isPositive: (y) => y > 0, binary: true },
  ];

const INPUTS = [
  { seed: 1, positives: 1, negatives: 30, ignored: 4, ties: "none" as const },
  { seed: 2, positives: 7, negatives: 100, ignored: 10, ties: "many" as const },
  { seed: 3, positives: 60, negatives: 500, ignored: 20, ties: "none" as const },
  { seed: 4, positives: 25, negatives: 25, ignored: 0, ties: "many" as const },
];

for (const { name, fn, isPositive, binary } of LOSSES) {
  Deno.test(`${name}() invariants`, async (t) => {
    for (const inp of INPUTS) {
      const { logits, targets } = randomRankingInputs(inp.seed, { ...inp, binary });
      for (const delta of [0, 0.5, 1]) {
        await t.step(`P=${inp.positives} N=${inp.negatives} ties=${inp.ties} δ=${delta}`, () => {
          const r = fn(logits, targets, { delta });
          // Loss values.
          for (const v of [r.rankingLoss, r.sortingLoss]) {
            assert.ok(v >= -1e-15 && v <= 1 + 1e-15, `loss value ${v}`);
          }
          assert.equal(r.loss, r.rankingLoss + r.sortingLoss);
          // Balance: every unit of error given to a culprit is taken from its owner.
          let sum = 0;
          let l1 = 0;
          for (const g of r.grad) {
            sum += g;
            l1 += Math.abs(g);
          }
          assert.ok(Math.abs(sum) <= 1e-13 * Math.max(1, l1), `gradient sums to ${sum}`);
          // Exact zeros: ignored, non-positive non-negative (AP: 0 < y < 1), below threshold.
          let minPos = Infinity;
          for (let i = 0; i < logits.length; i++) {
            if (isPositive(targets[i])) minPos = Math.min(minPos, logits[i]);
          }
          for (let i = 0; i < logits.length; i++) {
            const relevantNegative = targets[i] === 0 && logits[i] >= minPos - delta;
            if (!isPositive(targets[i]) && !relevantNegative) {
              assert.equal(r.grad[i], 0, `grad[${i}] (target ${targets[i]}, logit ${logits[i]})`);
            }
          }
          // Permutation: shuffling the entries permutes the gradient, nothing else.
          const rand = mulberry32(inp.seed + 99);
          const perm = Array.from(logits, (_, i) => i);
          for (let i = perm.length - 1; i > 0; i--) {
            const j = Math.floor(rand() * (i + 1));
            [perm[i], perm[j]] = [perm[j], perm[i]];
          }
          const q = fn(perm.map((i) => logits[i]), perm.map((i) => targets[i]), { delta });
          assert.ok(Math.abs(q.rankingLoss - r.rankingLoss) <= 1e-12);
          assert.ok(Math.abs(q.sortingLoss - r.sortingLoss) <= 1e-12);
          perm.forEach((i, k) => {
            assert.ok(Math.abs(q.grad[k] - r.grad[i]) <= 1e-12, `permuted grad[${k}]`);
          });
        });
      }
    }
  });
}

Deno.test("ignored entries with the largest logits change nothing", () => {
  const s = [0.9, 0.1, 0.5, -0.3];
  const y = [0.8, 0, 0.6, 0];
  const withIgnored = [...s, 9, 8];
  const yIgnored = [...y, -1, -1];
  for (const fn of [rankSortLoss, bucketedRankSortLoss, fastBucketedRankSortLoss]) {
    const a = fn(s, y);
    const b = fn(withIgnored, yIgnored);
    assert.equal(b.loss, a.loss);
    assert.deepEqual(Array.from(b.grad), [...a.grad, 0, 0]);
  }
});

Deno.test("no positive gives zeros; empty input gives empty gradient", () => {
  for (const fn of [rankSortLoss, bucketedRankSortLoss, fastBucketedRankSortLoss, apLoss]) {
    const r = fn([0.3, 2, -1], [0, 0, -1]);
    assert.equal(r.loss, 0);
    assert.deepEqual(Array.from(r.grad), [0, 0, 0]);
    assert.equal(fn([], []).grad.length, 0);
  }
  const a = alrpLoss([0.3], [0], []);
  assert.equal(a.loss, 0);
  assert.equal(a.rank.length, 0);
});
