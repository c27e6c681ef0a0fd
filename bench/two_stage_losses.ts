/**
 * The paper's claim in miniature for the two-stage detectors: the tiny
 * Faster R-CNN, Cascade R-CNN and Mask R-CNN trained with RS and with BRS
 * under the same seed and schedule. Prints a markdown table of box AP, AP50,
 * oLRP, mask AP (Mask R-CNN), seconds per step and the loss alone: forward +
 * backward of the RPN's ranking loss and each RoI stage's (and Mask R-CNN's
 * self-balanced Dice loss), on fixed head outputs of one training batch (for
 * Cascade R-CNN the three stage losses are taken on the first stage's RoIs at
 * IoU 0.5 / 0.6 / 0.7, so the loss alone runs without the heads), in
 * milliseconds.
 *
 * Run: `deno run -A bench/two_stage_losses.ts [--iters 1500] [--detectors faster_rcnn,cascade_rcnn,mask_rcnn] [--losses brs,rs]`
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { meanMs } from "./inputs.ts";
import CASCADE_RCNN_TINY_SHAPES from "../configs/cascade_rcnn_tiny_shapes.ts";
import FASTER_RCNN_TINY_SHAPES from "../configs/faster_rcnn_tiny_shapes.ts";
import MASK_RCNN_TINY_SHAPES from "../configs/mask_rcnn_tiny_shapes.ts";
import type { DetectorConfig } from "../configs/types.ts";
import { type Batch, DetectionLoader, memorySource } from "../data/loader.ts";
import { generateShapes } from "../data/shapes.ts";
import { buildDetector } from "../detectors/build.ts";
import type { BBoxHeadOutput } from "../detectors/heads/roi_head.ts";
import { roiLoss } from "../detectors/roi_loss.ts";
import { roiTargets } from "../detectors/roi_targets.ts";
import { batchProposals } from "../detectors/rpn.ts";
import { rpnLoss, rpnTargets } from "../detectors/rpn_loss.ts";
import type { TwoStageDetector } from "../detectors/two_stage.ts";
import {
  TWO_STAGE_RANKING_LOSSES,
  type TwoStageRankingLoss,
} from "../detectors/two_stage_losses.ts";
import { multiRoiAlign } from "../detectors/heads/roi_head.ts";
import { applyOverrides } from "../engine/config.ts";
import { trainedRow } from "./train_table.ts";
import { backward, detach, noGrad } from "../tensor/autograd.ts";
import { initBackend } from "../tensor/device.ts";
import { add } from "../tensor/ops/elementwise.ts";
import { type Tensor, tidy } from "../tensor/tensor.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    iters: { type: "string", default: "1500" },
    detectors: { type: "string", default: "faster_rcnn,cascade_rcnn" },
    losses: { type: "string", default: "brs,rs" },
    out: { type: "string", default: "bench/results/two_stage_losses" },
  },
});
const backend = await initBackend();
const iters = Number(values.iters);
const CONFIGS: Record<string, DetectorConfig> = {
  faster_rcnn: FASTER_RCNN_TINY_SHAPES,
  cascade_rcnn: CASCADE_RCNN_TINY_SHAPES,
  mask_rcnn: MASK_RCNN_TINY_SHAPES,
};

function leaf(t: Tensor): Tensor {
  const d = detach(t);
  d.requiresGrad = true;
  return d;
}

/** Forward + backward of the RPN and RoI ranking losses on fixed head outputs (ms). */
async function lossOnlyMs(config: DetectorConfig, loss: TwoStageRankingLoss): Promise<number> {
  const model = buildDetector(config.model, { seed: 0, backend }) as TwoStageDetector;
  const { train: settings } = config;
  const split = generateShapes({ numImages: settings.batchSize, seed: 1, size: 128 });
  const loader = new DetectionLoader(memorySource(split), {
    batchSize: settings.batchSize,
    seed: 0,
    shuffle: false,
    withMasks: model.usesMasks,
  });
  const batch = (await loader.epoch(0).next()).value as Batch;
  loader.close();
  const { delta, rpn, roi } = model.config;
  const features = noGrad(() => model.forward(model.images(batch)));
  const rpnOut = noGrad(() => model.rpnHead.forward(features));
  const anchors = model.anchors(batch.height, batch.width);
  const rpnT = rpnTargets(anchors, batch.boxes);
  const proposals = await batchProposals(
    rpnOut,
    anchors,
    batch.boxes.map(() => [batch.height, batch.width] as const),
    rpn.train,
  );
  const fixedRpn = { ...rpnOut, cls: leaf(rpnOut.cls), reg: leaf(rpnOut.reg) };
  const stages = model.stages.map((stage) => {
    const targets = roiTargets(proposals, batch.boxes, batch.labels, { posIou: stage.posIou });
    const out = noGrad(() =>
      stage.head.forward(multiRoiAlign(
        features.slice(0, roi.poolLevels),
        targets.rois,
        rpn.anchors.strides.slice(0, roi.poolLevels),
        { outputSize: roi.roiSize, samplingRatio: roi.samplingRatio, finestScale: roi.finestScale },
      ))
    );
    const fixed: BBoxHeadOutput = { cls: leaf(out.cls), reg: leaf(out.reg) };
    return { stage, targets, fixed };
  });
  // Mask R-CNN: the mask head's logits on the sampled positives of its one stage.
  const maskBranch = model.mask && (() => {
    const targets = model.mask.targets(stages[0].targets, batch.masks!, batch.height, batch.width);
    const logits = leaf(noGrad(() =>
      model.mask!.head.forward(multiRoiAlign(
        features.slice(0, roi.poolLevels),
        targets.rois,
        rpn.anchors.strides.slice(0, roi.poolLevels),
        {
          outputSize: model.mask!.settings.roiSize,
          samplingRatio: roi.samplingRatio,
          finestScale: roi.finestScale,
        },
      ))
    ));
    return { targets, logits };
  })();
  const leaves = [
    fixedRpn.cls,
    fixedRpn.reg,
    ...stages.flatMap((s) => [s.fixed.cls, s.fixed.reg]),
    ...(maskBranch ? [maskBranch.logits] : []),
  ];
  const once = () =>
    tidy(() => {
      let total = rpnLoss(fixedRpn, rpnT, { loss, delta, weight: rpn.weight }).total;
      for (const { stage, targets, fixed } of stages) {
        const l = roiLoss(fixed, targets, {
          loss,
          delta,
          weight: stage.weight,
          coder: stage.coder,
        });
        total = add(total, l.total);
        if (maskBranch) {
          const ranking = add(l.parts.rank, l.parts.sort);
          total = add(
            total,
            model.mask!.lossOf(maskBranch.logits, maskBranch.targets, fixed.cls, ranking).loss,
          );
        }
      }
      backward(total);
      for (const t of leaves) {
        t.grad?.dispose();
        t.grad = null;
      }
    });
  return await meanMs(once, backend);
}

const rows: string[] = [];
for (const kind of values.detectors!.split(",")) {
  const base = CONFIGS[kind];
  if (!base) throw new RangeError(`Unknown detector "${kind}" (known: ${Object.keys(CONFIGS)})`);
  for (const loss of values.losses!.split(",") as TwoStageRankingLoss[]) {
    if (!TWO_STAGE_RANKING_LOSSES.includes(loss)) {
      // The stock losses ("ce") train from their own configs (faster_rcnn_ce_tiny_shapes).
      throw new RangeError(
        `Unknown loss "${loss}" for this bench (expected ${TWO_STAGE_RANKING_LOSSES.join(", ")})`,
      );
    }
    const config = applyOverrides(base, { loss, iters });
    const { result, cells } = await trainedRow(
      config,
      join(values.out!, `${kind}_${loss}`),
      backend,
    );
    const ms = await lossOnlyMs(config, loss);
    const maskAp = result.eval?.maskStats ? (100 * result.eval.maskStats[0]).toFixed(1) : "–";
    cells.splice(3, 0, maskAp);
    rows.push(`| ${kind} | ${loss} | ${cells.join(" | ")} | ${ms.toFixed(1)} |`);
    console.error(rows.at(-1));
  }
}
console.log(`Two-stage tiny configs, shapes, ${iters} steps, seed 0, ${backend.description}\n`);
console.log("| detector | loss | AP | AP50 | oLRP | mask AP | s/step | loss only, ms |");
console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
for (const row of rows) console.log(row);
