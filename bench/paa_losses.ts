/**
 * The paper's PAA rows in miniature: the tiny PAA trained with focal (stock
 * PAA), AP, BAP, RS and BRS under the same seed and schedule. Prints a
 * markdown table of AP, AP50, oLRP, seconds per step, the loss alone
 * (forward + backward of the head losses on fixed head outputs and fixed
 * re-assigned targets, in milliseconds) and the host time of the GMM
 * re-assignment per step (mean over `--gmm-batches` training batches with
 * the trained model).
 *
 * Run: `deno run -A bench/paa_losses.ts [--iters 150] [--losses focal,ap,bap,rs,brs]`
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { fixedHeadOutputs, headLossMs } from "./inputs.ts";
import PAA_TINY_SHAPES from "../configs/paa_tiny_shapes.ts";
import { applyOverrides } from "../engine/config.ts";
import { trainedRow } from "./train_table.ts";
import { type Batch, DetectionLoader, memorySource } from "../data/loader.ts";
import { generateShapes } from "../data/shapes.ts";
import { buildPaa, type Paa } from "../detectors/paa.ts";
import type { PaaLoss } from "../detectors/paa_losses.ts";
import { initBackend } from "../tensor/device.ts";
import { tidy, tidyAsync } from "../tensor/tensor.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    iters: { type: "string", default: "150" },
    losses: { type: "string", default: "focal,ap,bap,rs,brs" },
    "gmm-batches": { type: "string", default: "20" },
    out: { type: "string", default: "bench/results/paa_losses" },
  },
});
const backend = await initBackend();
const iters = Number(values.iters);
const gmmBatches = Number(values["gmm-batches"]);

/** `count` batches of the tiny config's size from generated training images (seed 1). */
async function batches(count: number): Promise<Batch[]> {
  const size = PAA_TINY_SHAPES.train.batchSize;
  const split = generateShapes({ numImages: count * size, seed: 1, size: 128 });
  const loader = new DetectionLoader(memorySource(split), {
    batchSize: size,
    seed: 0,
    shuffle: false,
  });
  const out: Batch[] = [];
  for await (const batch of loader.epoch(0)) out.push(batch);
  loader.close();
  return out;
}

/** Forward + backward of the head losses alone, on fixed outputs and targets of one batch (ms). */
async function lossOnlyMs(loss: PaaLoss, batch: Batch): Promise<number> {
  const config = applyOverrides(PAA_TINY_SHAPES, { loss });
  const model = buildPaa(config.model, { seed: 0, backend });
  const fixed = tidy(() => fixedHeadOutputs(model.forward(model.images(batch))));
  const { targets } = await tidyAsync(() => model.assign(fixed, batch));
  return await headLossMs(fixed, () => model.lossFromOutputs(fixed, targets).total, backend);
}

/** Mean host milliseconds of the GMM re-assignment per step of `model` over `list`. */
async function gmmMsPerStep(model: Paa, list: Batch[]): Promise<number> {
  model.train();
  let total = 0;
  for (const batch of list) {
    total += await tidyAsync(async () => (await model.loss(batch)).gmmMs);
  }
  return total / list.length;
}

const fixedBatches = await batches(Math.max(gmmBatches, 1));
const rows: string[] = [];
for (const loss of values.losses!.split(",") as PaaLoss[]) {
  const config = applyOverrides(PAA_TINY_SHAPES, { loss, iters });
  const { result, cells } = await trainedRow(config, join(values.out!, loss), backend);
  const ms = await lossOnlyMs(loss, fixedBatches[0]);
  const gmm = await gmmMsPerStep(result.model as Paa, fixedBatches.slice(0, gmmBatches));
  rows.push(`| ${loss} | ${cells.join(" | ")} | ${ms.toFixed(0)} | ${gmm.toFixed(2)} |`);
  console.error(rows.at(-1));
}
console.log(`PAA tiny, shapes, ${iters} steps, seed 0, ${backend.description}\n`);
console.log("| loss | AP | AP50 | oLRP | s/step | loss only, ms | GMM, ms/step |");
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const row of rows) console.log(row);
