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
import { detectorLikeInputs, medianMs } from "./inputs.ts";

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
