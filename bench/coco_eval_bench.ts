/**
 * COCO evaluation speed on the 500-image timing fixture (10,109 detections).
 * pycocotools takes 0.88 s (bbox) and 0.90 s (segm) for evaluate + accumulate
 * + summarize on it (median of 3, 2-core AMD EPYC, stored in the fixture as
 * `reference_timing`). Run: `deno bench --allow-read bench/coco_eval_bench.ts`.
 *
 * @module
 */
import { evaluateCoco } from "../eval/coco_eval.ts";
import { evaluateLrp } from "../eval/lrp.ts";
import type { CocoDataset, CocoDetection } from "../data/coco_types.ts";

const fixture = JSON.parse(
  Deno.readTextFileSync(
    new URL("../tests/fixtures/coco_eval/random_large_seed0.json", import.meta.url),
  ),
) as CocoDataset & { detections: CocoDetection[] };

// Fresh copies per run so that no cache keyed on the parsed objects carries over.
function inputs(): [CocoDataset, CocoDetection[]] {
  return [structuredClone(fixture), structuredClone(fixture.detections)];
}

for (const iouType of ["bbox", "segm"] as const) {
  Deno.bench({
    name: `evaluateCoco ${iouType} (500 images, 10,109 dets)`,
    group: `coco ${iouType}`,
    baseline: true,
    fn(b) {
      const [gt, dets] = inputs();
      b.start();
      evaluateCoco(gt, dets, { iouType });
      b.end();
    },
  });
  Deno.bench({
    name: `evaluateLrp ${iouType} (500 images, 10,109 dets)`,
    group: `coco ${iouType}`,
    fn(b) {
      const [gt, dets] = inputs();
      b.start();
      evaluateLrp(gt, dets, { iouType });
      b.end();
    },
  });
}
