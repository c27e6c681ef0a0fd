/**
 * Theorem 4.1 of the BR paper as a property test: at δ = 0 and without positive–negative ties,
 * the bucketed losses equal the unbucketed ones (loss and every gradient entry); at δ > 0 they
 * differ a little (docs/departures.md, B1).
 */

import assert from "node:assert/strict";
import {
  bucketedApLoss,
  bucketedRankSortLoss,
  rankSortLoss,
  sortAndBucket,
} from "../../losses/reference/mod.ts";
import { fastBucketedApLoss, fastBucketedRankSortLoss } from "../../losses/fast/mod.ts";
import { loadRankingVectors } from "./loss_vectors.ts";
import { maxAbsDiff, randomRankingInputs } from "./random_inputs.ts";

const SHAPES: [number, number][] = [[1, 10], [3, 50], [10, 200], [40, 300], [200, 2000]];

Deno.test("Theorem 4.1: at δ = 0 bucketed equals unbucketed without pos-neg ties", async (t) => {
  for (const [p, n] of SHAPES) {
    for (let seed = 0; seed < 4; seed++) {
      await t.step(`P=${p} N=${n} seed=${seed}`, () => {
        const { logits, targets } = randomRankingInputs(1000 * p + seed, {
          positives: p,
          negatives: n,
          ignored: 5,
        });
        const rs = rankSortLoss(logits, targets, { delta: 0 });
        for (
          const [name, brs] of [
            ["reference", bucketedRankSortLoss(logits, targets, { delta: 0 })],
            ["fast", fastBucketedRankSortLoss(logits, targets, { delta: 0 })],
          ] as const
        ) {
          assert.ok(Math.abs(brs.rankingLoss - rs.rankingLoss) <= 1e-12, `${name} L_rank`);
          assert.ok(Math.abs(brs.sortingLoss - rs.sortingLoss) <= 1e-12, `${name} L_sort`);
          assert.ok(maxAbsDiff(brs.grad, rs.grad) <= 1e-12, `${name} grad`);
        }
        // BAP is the ranking part alone: Rank & Sort with every positive's IoU set to 1.
        const binary = targets.map((y) => (y > 0 ? 1 : y));
        const ap = rankSortLoss(logits, binary, { delta: 0 });
        assert.equal(ap.sortingLoss, 0);
        for (
          const bap of [
            bucketedApLoss(logits, targets, { delta: 0 }),
            fastBucketedApLoss(logits, targets, { delta: 0 }),
          ]
        ) {
          assert.ok(Math.abs(bap.loss - ap.rankingLoss) <= 1e-12);
          assert.ok(maxAbsDiff(bap.grad, ap.grad) <= 1e-12);
        }
      });
    }
  }
  await t.step("a positive-negative tie breaks it (Q5, V3)", () => {
    const s = [1.0, 1.0, 0.2, 0.5];
    const y = [0.7, 0, 0.4, 0];
    assert.equal(rankSortLoss(s, y, { delta: 0 }).rankingLoss, 0.5);
    assert.equal(bucketedRankSortLoss(s, y, { delta: 0 }).rankingLoss, 0.25);
    assert.equal(fastBucketedRankSortLoss(s, y, { delta: 0 }).rankingLoss, 0.25);
  });
});

Deno.test("at δ > 0 bucketed and unbucketed differ a little on the shared random cases", async (t) => {
  const cases = await loadRankingVectors();
  const groups = [...new Set(cases.filter((c) => c.kind === "random").map((c) => c.group))];
  assert.equal(groups.length, 12);
  let worstLoss = 0;
  let worstGrad = 0;
  for (const group of groups) {
    const c = cases.find((c) => c.group === group && c.loss === "RankSort" && c.delta === 0.5)!;
    await t.step(group, () => {
      const rs = rankSortLoss(c.logits, c.targets, { delta: 0.5 });
      const brs = fastBucketedRankSortLoss(c.logits, c.targets, { delta: 0.5 });
      // The sorting part only involves positives, which are never bucketed.
      assert.ok(Math.abs(brs.sortingLoss - rs.sortingLoss) <= 1e-12);
      const dLoss = Math.abs(brs.rankingLoss - rs.rankingLoss);
      const dGrad = maxAbsDiff(brs.grad, rs.grad);
      worstLoss = Math.max(worstLoss, dLoss);
      worstGrad = Math.max(worstGrad, dGrad);
      // docs/departures.md, B1: |ΔL_rank| up to ~2e-2, max |Δgrad| up to ~3e-2 on these cases.
      assert.ok(dLoss <= 0.03, `${group}: |ΔL_rank| = ${dLoss}`);
      assert.ok(dGrad <= 0.05, `${group}: max |Δgrad| = ${dGrad}`);
    });
  }
  assert.ok(worstLoss > 0, "bucketing should change something at δ > 0");
  assert.ok(worstGrad > 0);
});

Deno.test("at δ > 0 buckets inside one linear piece keep positives and bucket sums exact", () => {
  // docs/departures.md, B1: every |negative - positive| <= δ, so no bucket straddles a knee.
  const s = [1.0, 1.2, 0.9, 0.8, 1.1, 0.7, 1.25, 0.75];
  const y = [0.8, 0, 0, 0, 0.5, 0, 0, 0];
  for (const delta of [0.5, 1]) {
    const rs = rankSortLoss(s, y, { delta });
    const brs = bucketedRankSortLoss(s, y, { delta });
    assert.ok(Math.abs(rs.rankingLoss - brs.rankingLoss) < 1e-12);
    for (const i of [0, 4]) assert.ok(Math.abs(rs.grad[i] - brs.grad[i]) < 1e-12);
    for (const b of sortAndBucket(s, y, delta).buckets) {
      const sumRs = b.members.reduce((acc, i) => acc + rs.grad[i], 0);
      const sumBrs = b.members.reduce((acc, i) => acc + brs.grad[i], 0);
      assert.ok(Math.abs(sumRs - sumBrs) < 1e-12, `bucket above ${b.positivesAbove} positives`);
      // ...but every member gets the bucket's average.
      for (const i of b.members) assert.equal(brs.grad[i], brs.grad[b.members[0]]);
    }
  }
});
