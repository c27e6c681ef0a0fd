/**
 * Wall time of the fast CPU bucketed losses (`losses/fast`, one whole call: loss and gradient)
 * on detector-like `Float32Array` inputs, as a markdown table: BRS and BAP for `N` in 1e5, 1e6,
 * 1e7 and `P` in 10, 100, 1000, 1e5 (`P > N / 10` skipped), medians of `--reps` runs after one
 * warm-up, and the doubling ratio `t(2N) / t(N)` of BRS (`N log P` growth gives about 2).
 *
 * Run: `deno run -A bench/fast_loss_table.ts [--reps 5] [--max-n 1e7] [--no-doubling]`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fastBucketedApLoss, fastBucketedRankSortLoss } from "../losses/fast/mod.ts";

/** mulberry32 uniform generator on `[0, 1)`. */
function uniform(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `n` detector-like entries: negatives a 70/30 mix of N(-2.5, 1) and N(0.3, 1), `p` positives
 * at distinct random places with logits N(1, 1) and IoU targets U(0.05, 1), as in the shared
 * vector generator.
 *
 * @example
 * ```ts
 * import { detectorLikeInputs } from "./fast_loss_table.ts";
 * import assert from "node:assert/strict";
 *
 * const { targets } = detectorLikeInputs(1000, 10);
 * assert.equal(targets.filter((y) => y > 0).length, 10);
 * ```
 *
 * @param n Number of entries.
 * @param p Number of positives, `<= n`.
 * @param seed Generator seed.
 * @returns Logits and targets, `[n]` each.
 */
export function detectorLikeInputs(
  n: number,
  p: number,
  seed = 1,
): { logits: Float32Array; targets: Float32Array } {
  const rand = uniform(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const logits = new Float32Array(n);
  const targets = new Float32Array(n);
  for (let i = 0; i < n; i++) logits[i] = rand() < 0.7 ? -2.5 + normal() : 0.3 + normal();
  for (let placed = 0; placed < p;) {
    const i = Math.floor(rand() * n);
    if (targets[i] !== 0) continue;
    targets[i] = 0.05 + 0.95 * rand();
    logits[i] = 1 + normal();
    placed++;
  }
  return { logits, targets };
}

/** Median wall time in ms of `reps` calls after one warm-up call. */
function medianMs(reps: number, fn: () => void): number {
  fn();
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(reps / 2)];
}

/** BRS (IoU targets) and BAP (binary targets) medians at `n` entries, `p` positives. */
function timeBoth(n: number, p: number, reps: number): { brs: number; bap: number } {
  const { logits, targets } = detectorLikeInputs(n, p);
  const binary = targets.map((y) => (y > 0 ? 1 : y));
  return {
    brs: medianMs(reps, () => fastBucketedRankSortLoss(logits, targets)),
    bap: medianMs(reps, () => fastBucketedApLoss(logits, binary)),
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      reps: { type: "string", default: "5" },
      "max-n": { type: "string", default: "1e7" },
      "no-doubling": { type: "boolean", default: false },
    },
  });
  const reps = Number(values.reps);
  const maxN = Number(values["max-n"]);
  console.log(`| N | P | BRS ms | BAP ms | BRS t(2N)/t(N) |`);
  console.log(`| ---: | ---: | ---: | ---: | ---: |`);
  for (const n of [1e5, 1e6, 1e7].filter((n) => n <= maxN)) {
    for (const p of [10, 100, 1000, 1e5].filter((p) => p <= n / 10)) {
      const { brs, bap } = timeBoth(n, p, reps);
      let ratio = "";
      if (!values["no-doubling"]) {
        const { logits, targets } = detectorLikeInputs(2 * n, p);
        ratio = (medianMs(reps, () => fastBucketedRankSortLoss(logits, targets)) / brs).toFixed(2);
      }
      console.log(
        `| ${n.toExponential(0)} | ${p} | ${brs.toFixed(1)} | ${bap.toFixed(1)} | ${ratio} |`,
      );
    }
  }
}
