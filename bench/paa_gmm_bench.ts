/**
 * PAA's per-GT Gaussian-mixture fit on the host: `fitGmm2` on a typical GT's 20, 27 (3 levels
 * x 9) and 36 candidates, `paaSelect` (sort + fit + separation) on 27, and `paaReassign` on an
 * image of 8 GTs with up to 9 candidates on each of 5 levels. Losses: a low cluster (good anchors)
 * and a wider high one, as PAA's cls + box scores look, float32 as in training.
 *
 * Run: `XDG_RUNTIME_DIR=/tmp/xdg deno bench bench/paa_gmm_bench.ts`
 *
 * @module
 */

import { fitGmm2, paaReassign, paaSelect } from "../detectors/paa_gmm.ts";
import { uniform } from "./inputs.ts";

/** `n` losses: about a third near 0.4, the rest spread over 0.9–2.5 (float32, unsorted). */
function gtLosses(n: number, seed: number): Float32Array {
  const r = uniform(seed);
  return Float32Array.from({ length: n }, () => r() < 0.35 ? 0.25 + 0.3 * r() : 0.9 + 1.6 * r());
}

const sorted = (a: Float32Array) => a.slice().sort();

for (const n of [20, 27, 36]) {
  const x = sorted(gtLosses(n, n));
  Deno.bench(`fitGmm2, ${n} candidates`, { group: "fit", baseline: n === 27 }, () => {
    fitGmm2(x);
  });
}

const unsorted27 = gtLosses(27, 99);
Deno.bench("paaSelect, 27 candidates", () => {
  paaSelect(unsorted27);
});

// One image: 5 levels of 4000/1000/250/64/16 anchors, 8 GTs with 4–14 first-stage positives per
// level.
const levels = [4000, 1000, 250, 64, 16];
const image = (() => {
  const r = uniform(7);
  const entries: [number, number, number][] = [];
  let start = 0;
  for (const size of levels) {
    const taken = new Set<number>();
    for (let g = 0; g < 8; g++) {
      const count = Math.min(4 + Math.floor(r() * 11), size / 8);
      for (let c = 0; c < count; c++) {
        let a: number;
        do a = start + Math.floor(r() * size); while (taken.has(a));
        taken.add(a);
        entries.push([a, g, r() < 0.35 ? 0.25 + 0.3 * r() : 0.9 + 1.6 * r()]);
      }
    }
    start += size;
  }
  entries.sort((a, b) => a[0] - b[0]);
  return {
    posInds: entries.map((e) => e[0]),
    posGtInds: entries.map((e) => e[1]),
    posLosses: Float32Array.from(entries, (e) => e[2]),
    numAnchorsPerLevel: levels,
  };
})();
Deno.bench(`paaReassign, 8 GTs, ${image.posInds.length} first-stage positives`, () => {
  paaReassign(image);
});
