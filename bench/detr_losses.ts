/**
 * BRS-DETR vs Co-DETR in miniature (issue 15, spec §11.2): the tiny configs
 * `co_detr_tiny_shapes` (focal losses) and `brs_detr_tiny_shapes` (BRS)
 * trained under the same seed and schedule on shapes. Prints a markdown
 * table of AP, AP50, oLRP, seconds per step and the auxiliary ATSS head's
 * loss alone: forward + backward of its loss (times its weight) on fixed head
 * outputs of one training batch, in milliseconds.
 *
 * Run: `deno run -A bench/detr_losses.ts [--iters 1200] [--configs co_detr_tiny_shapes,brs_detr_tiny_shapes]`
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { meanMs } from "./inputs.ts";
import BRS_DETR_TINY_SHAPES from "../configs/brs_detr_tiny_shapes.ts";
import CO_DETR_TINY_SHAPES from "../configs/co_detr_tiny_shapes.ts";
import type { DetectorConfig } from "../configs/types.ts";
import { type Batch, DetectionLoader, memorySource } from "../data/loader.ts";
import { generateShapes } from "../data/shapes.ts";
import { assignBatch } from "../detectors/atss_targets.ts";
import { buildCoDetr, type CoDetrModelConfig } from "../detectors/co_detr.ts";
import { applyOverrides } from "../engine/config.ts";
import { trainedRow } from "./train_table.ts";
import { backward, detach, noGrad } from "../tensor/autograd.ts";
import { initBackend } from "../tensor/device.ts";
import { add } from "../tensor/ops/elementwise.ts";
import { type Tensor, tidy } from "../tensor/tensor.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    iters: { type: "string" },
    configs: { type: "string", default: "co_detr_tiny_shapes,brs_detr_tiny_shapes" },
    out: { type: "string", default: "bench/results/detr_losses" },
  },
});
const backend = await initBackend();
const CONFIGS: Record<string, DetectorConfig<CoDetrModelConfig>> = {
  co_detr_tiny_shapes: CO_DETR_TINY_SHAPES,
  brs_detr_tiny_shapes: BRS_DETR_TINY_SHAPES,
};

function leaf(t: Tensor): Tensor {
  const d = detach(t);
  d.requiresGrad = true;
  return d;
}

/** Forward + backward of the auxiliary ATSS head's loss on fixed head outputs (ms). */
async function auxLossMs(config: DetectorConfig<CoDetrModelConfig>): Promise<number> {
  const model = buildCoDetr(config.model, { seed: 0, backend });
  const { batchSize } = config.train;
  const split = generateShapes({ numImages: batchSize, seed: 1, size: 128 });
  const loader = new DetectionLoader(memorySource(split), { batchSize, seed: 0, shuffle: false });
  const batch = (await loader.epoch(0).next()).value as Batch;
  loader.close();
  const out = noGrad(() =>
    model.auxHead!.forward(model.auxFeatures(model.forward(model.images(batch))))
  );
  const fixed = {
    cls: leaf(out.cls),
    reg: leaf(out.reg),
    centerness: out.centerness ? leaf(out.centerness) : undefined,
  };
  const positives = assignBatch(
    model.auxAnchors(batch.height, batch.width),
    batch.boxes,
    batch.labels,
    config.model.auxAtss!.topk,
  );
  const leaves = [fixed.cls, fixed.reg, ...(fixed.centerness ? [fixed.centerness] : [])];
  const once = () =>
    tidy(() => {
      backward(Object.values(model.auxHeadLoss(fixed, positives)).reduce((a, b) => add(a, b)));
      for (const t of leaves) {
        t.grad?.dispose();
        t.grad = null;
      }
    });
  return await meanMs(once, backend);
}

const rows: string[] = [];
let steps = 0;
for (const name of values.configs!.split(",")) {
  const base = CONFIGS[name];
  if (!base) throw new RangeError(`Unknown config "${name}" (known: ${Object.keys(CONFIGS)})`);
  const config = values.iters ? applyOverrides(base, { iters: Number(values.iters) }) : base;
  steps = config.train.iters;
  const { cells } = await trainedRow(config, join(values.out!, name), backend);
  const ms = await auxLossMs(config);
  rows.push(`| ${name} | ${config.model.loss} | ${cells.join(" | ")} | ${ms.toFixed(1)} |`);
  console.error(rows.at(-1));
}
console.log(`Co-DETR tiny configs, shapes, ${steps} steps, seed 0, ${backend.description}\n`);
console.log("| config | loss | AP | AP50 | oLRP | s/step | aux ATSS loss only, ms |");
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const row of rows) console.log(row);
