/**
 * Reference ranking losses (RS, BRS, AP, BAP; float64, plain arrays) against the fast CPU
 * bucketed losses, on synthetic detector-like inputs.
 *
 * Run: `deno bench bench/loss_reference_bench.ts` (all groups take a few minutes; filter with
 * `--filter "N=1e5"`). Groups `N=1e7 ...` time only the fast losses (the official PyTorch CPU
 * BRS takes 1.99 s at N = 1e7, P = 1000). Inputs: {@linkcode detectorLikeInputs}; the table of
 * fast-loss times is `bench/fast_loss_table.ts`.
 *
 * @module
 */

import {
  apLoss,
  bucketedApLoss,
  bucketedRankSortLoss,
  rankSortLoss,
} from "../losses/reference/mod.ts";
import { fastBucketedApLoss, fastBucketedRankSortLoss } from "../losses/fast/mod.ts";
import { detectorLikeInputs } from "./inputs.ts";

// The AP family gets binary targets (official `APLoss` counts only targets equal to 1).
const LOSSES = [
  { name: "reference RS", fn: rankSortLoss, reference: true, baseline: true },
  { name: "reference BRS", fn: bucketedRankSortLoss, reference: true },
  { name: "reference AP", fn: apLoss, reference: true, binary: true },
  { name: "reference BAP", fn: bucketedApLoss, reference: true, binary: true },
  { name: "fast BRS", fn: fastBucketedRankSortLoss },
  { name: "fast BAP", fn: fastBucketedApLoss, binary: true },
  { name: "fast BRS (full sort)", fn: fastBucketedRankSortLoss, options: { bucketing: "sort" } },
] as const;

const cache = new Map<
  string,
  { logits: Float32Array; targets: Float32Array; binary: Float32Array }
>();
function cached(n: number, p: number) {
  const key = `${n}/${p}`;
  if (!cache.has(key)) {
    cache.clear();
    const { logits, targets } = detectorLikeInputs(n, p);
    const binary = targets.map((y) => (y > 0 ? 1 : y));
    cache.set(key, { logits, targets, binary });
  }
  return cache.get(key)!;
}

for (const [n, nLabel] of [[1e5, "1e5"], [1e6, "1e6"]] as const) {
  for (const p of [10, 100, 1000]) {
    const group = `N=${nLabel} P=${p}`;
    for (const loss of LOSSES) {
      const options = "options" in loss ? loss.options : {};
      Deno.bench({
        name: `${loss.name} ${group}`,
        group,
        baseline: "baseline" in loss,
        n: n >= 1e6 || p >= 1000 ? 3 : 10,
        warmup: 1,
        fn: () => {
          const { logits, targets, binary } = cached(n, p);
          loss.fn(logits, "binary" in loss ? binary : targets, options);
        },
      });
    }
  }
}

for (const p of [1000, 100_000]) {
  const group = `N=1e7 P=${p}`;
  for (const loss of LOSSES.filter((l) => !("reference" in l))) {
    const options = "options" in loss ? loss.options : {};
    Deno.bench({
      name: `${loss.name} ${group}`,
      group,
      baseline: loss.name === "fast BRS",
      n: 3,
      warmup: 1,
      fn: () => {
        const { logits, targets, binary } = cached(1e7, p);
        loss.fn(logits, "binary" in loss ? binary : targets, options);
      },
    });
  }
}
