/**
 * The paper's claim in miniature: the default ATSS trained with focal, AP,
 * BAP, RS and BRS under the same seed and schedule. Prints a markdown table of
 * AP, AP50, oLRP, seconds per step and the loss alone (forward + backward of
 * the head losses on fixed head outputs, in milliseconds).
 *
 * Run: `deno run -A bench/atss_losses.ts [--iters 150] [--losses brs,rs,bap,ap,focal]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fixedHeadOutputs, headLossMs } from "./inputs.ts";
import { join } from "node:path";
import ATSS_TINY_SHAPES from "../configs/atss_tiny_shapes.ts";
import { applyOverrides } from "../engine/config.ts";
import { trainedRow } from "./train_table.ts";
import { DetectionLoader, memorySource } from "../data/loader.ts";
import { generateShapes } from "../data/shapes.ts";
import { buildAtss } from "../detectors/atss.ts";
import type { AtssLoss } from "../detectors/atss_losses.ts";
import { assignBatch } from "../detectors/atss_targets.ts";
import { initBackend } from "../tensor/device.ts";
import { tidy } from "../tensor/tensor.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    iters: { type: "string", default: "150" },
    losses: { type: "string", default: "focal,ap,bap,rs,brs" },
    out: { type: "string", default: "bench/results/atss_losses" },
  },
});
const backend = await initBackend();
const iters = Number(values.iters);

/** Forward + backward of the head losses alone, on fixed outputs of one batch (ms). */
async function lossOnlyMs(loss: AtssLoss): Promise<number> {
  const config = applyOverrides(ATSS_TINY_SHAPES, { loss });
  const model = buildAtss(config.model, { seed: 0, backend });
  const split = generateShapes({ numImages: config.train.batchSize, seed: 1, size: 128 });
  const loader = new DetectionLoader(memorySource(split), {
    batchSize: config.train.batchSize,
    seed: 0,
    shuffle: false,
  });
  const batch = (await loader.epoch(0).next()).value!;
  loader.close();
  const fixed = tidy(() => fixedHeadOutputs(model.forward(model.images(batch))));
  const { host } = model.anchors(batch.height, batch.width);
  const targets = assignBatch(host, batch.boxes, batch.labels, config.model.topk);
  return await headLossMs(fixed, () => model.lossFromOutputs(fixed, targets).total, backend);
}

const rows: string[] = [];
for (const loss of values.losses!.split(",") as AtssLoss[]) {
  const config = applyOverrides(ATSS_TINY_SHAPES, { loss, iters });
  const { cells } = await trainedRow(config, join(values.out!, loss), backend, 2);
  const ms = await lossOnlyMs(loss);
  rows.push(`| ${loss} | ${cells.join(" | ")} | ${ms.toFixed(0)} |`);
  console.error(rows.at(-1));
}
console.log(`ATSS tiny, shapes, ${iters} steps, seed 0, ${backend.description}\n`);
console.log("| loss | AP | AP50 | oLRP | s/step | loss only, ms |");
console.log("| --- | --- | --- | --- | --- | --- |");
for (const row of rows) console.log(row);
