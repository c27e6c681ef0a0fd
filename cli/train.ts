/**
 * `deno task train`: reads the flags, loads the config (by default ATSS with
 * BRS on the built-in synthetic data, generated in memory), applies the
 * overrides and calls the library's `train()` (`engine/train.ts`: progress
 * line, `metrics.jsonl`, loss curves, checkpoints, `--resume`, and a COCO/LRP
 * evaluation at the end whose per-class oLRP-optimal score thresholds are
 * stored in the final checkpoint, where `deno task detect` reads them); then
 * prints the result.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import type { BackendName } from "../tensor/backend.ts";
import { initBackend } from "../tensor/device.ts";
import { applyOverrides, loadConfig } from "../engine/config.ts";
import { formatThresholds } from "../engine/evaluate.ts";
import { FINAL_CHECKPOINT_FILE, train } from "../engine/train.ts";
import { integerFlag, parseFlags } from "./args.ts";

/** Usage text of `deno task train`. */
export const TRAIN_USAGE = `Usage: deno task train [options]

Trains a detector. With no options: ATSS with BRS on the built-in synthetic
shapes data (generated in memory), then a COCO/LRP evaluation on its val split.
The run folder gets checkpoint.safetensors (to resume) and, after the evaluation,
model_final.safetensors with each class's oLRP-optimal score threshold in its
metadata (deno task detect draws the detections at or above them), and eval.json.

Options:
  --config NAME|FILE   configs/NAME.ts or a .ts file exporting a config (default atss_tiny_shapes);
                       built in: atss_tiny_shapes, paa_tiny_shapes, faster_rcnn_tiny_shapes,
                       faster_rcnn_ce_tiny_shapes, cascade_rcnn_tiny_shapes, mask_rcnn_tiny_shapes,
                       brs_detr_tiny_shapes, co_detr_tiny_shapes (shapes data), atss_r50_coco, paa_r50_coco,
                       faster_rcnn_r50_coco, cascade_rcnn_r50_coco, mask_rcnn_r50_coco,
                       mask_rcnn_r50_cityscapes, mask_rcnn_r50_lvis, brs_detr_r50_coco
  --loss NAME          ATSS, PAA: brs | rs | bap | ap | focal; Faster/Cascade R-CNN: brs | rs | ce
                       (ce: the stock sampled cross entropy + L1; faster_rcnn_ce_tiny_shapes also sets
                       the RPN weight to 1); Mask R-CNN: brs | rs; Co-DETR: brs (BRS-DETR) | rs | focal
                       (default: the config's)
  --data DIR           a COCO-format dataset: DIR/annotations/instances_{train,val}.json, DIR/{train,val}/;
                       with a config whose data.kind is "cityscapes", a Cityscapes folder:
                       DIR/leftImg8bit/{train,val}/CITY/*.png, DIR/gtFine/{train,val}/CITY/*_polygons.json
  --iters N            training steps (milestones scale with it)
  --batch N            images per batch
  --seed N             weights, shuffling and augmentation seed (default 0)
  --out DIR            run folder (default runs/<config>_<loss>_seed<seed>)
  --pretrained FILE    torchvision .pth / timm .safetensors ResNet weights for the backbone
                       (overrides the config's backbone.pretrained)
  --resume             continue from DIR's last checkpoint (same result as an uninterrupted run)
  --no-eval            skip the final evaluation
  --backend NAME       webgpu | native | cpu (default: chosen by the machine)
  --log-every N        read back and log losses every N steps
  -h, --help           this text
`;

/** Runs the task with command-line `args`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseFlags(
    () =>
      parseArgs({
        args,
        strict: true,
        options: {
          config: { type: "string", default: "atss_tiny_shapes" },
          loss: { type: "string" },
          data: { type: "string" },
          iters: { type: "string" },
          batch: { type: "string" },
          seed: { type: "string", default: "0" },
          out: { type: "string" },
          pretrained: { type: "string" },
          resume: { type: "boolean", default: false },
          "no-eval": { type: "boolean", default: false },
          backend: { type: "string" },
          "log-every": { type: "string" },
          help: { type: "boolean", short: "h", default: false },
        },
      }),
    TRAIN_USAGE,
  );
  if (typeof parsed === "number") return parsed;
  const v = parsed.values;
  try {
    const seed = integerFlag("seed", v.seed) ?? 0;
    const config = applyOverrides(await loadConfig(v.config!), {
      loss: v.loss,
      iters: integerFlag("iters", v.iters, 1),
      batch: integerFlag("batch", v.batch, 1),
      pretrained: v.pretrained,
    });
    const logEvery = integerFlag("log-every", v["log-every"], 1);
    if (logEvery) config.train.logEvery = logEvery;
    const backend = await initBackend(v.backend as BackendName | undefined);
    if (v.backend) console.error(`brl: backend ${backend.name}: ${backend.description}`);
    const out = v.out ?? join("runs", `${config.name}_${config.model.loss}_seed${seed}`);
    const result = await train({
      config,
      seed,
      out,
      resume: v.resume,
      dataDir: v.data,
      backend,
      evaluate: !v["no-eval"],
    });
    console.log(`Trained ${result.step} steps in ${result.trainSeconds.toFixed(1)} s (${out})`);
    if (result.eval) {
      console.log(result.eval.summary);
      console.log(`oLRP: ${result.eval.oLRP.toFixed(4)}`);
      const { scoreThresholds, classNames } = result.eval;
      console.log(
        `oLRP-optimal score thresholds (stored in ${join(out, FINAL_CHECKPOINT_FILE)}): ` +
          formatThresholds(classNames, scoreThresholds),
      );
    }
    return 0;
  } catch (error) {
    console.error(`brl train: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
