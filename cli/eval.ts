/**
 * `deno task eval`: COCO evaluation of a results file against an annotation
 * file, or of a trained checkpoint on its config's validation split, with
 * pycocotools' numbers and printout, optimal LRP, a JSON report and
 * precision–recall curves as SVG. Against an LVIS annotation file (its
 * images carry `neg_category_ids`, its categories `frequency`) the results
 * are evaluated as lvis-api does, with its 13 numbers and printout.
 *
 * ```sh
 * deno task eval --gt annotations.json --dets results.json --iou-type segm --lrp --out runs/eval
 * deno task eval --checkpoint runs/atss_tiny_shapes_brs_seed0/model_final.safetensors
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type CheckpointEvalOptions, evaluateCheckpoint } from "../engine/evaluate_run.ts";
import { type EvalFileOptions, evaluateResultsFile } from "../engine/eval_results.ts";

/** Usage text printed by `--help` and after a bad flag. */
export const EVAL_USAGE: string = `Usage: deno task eval --gt FILE --dets FILE [options]
       deno task eval --checkpoint FILE [--data DIR] [--config NAME|FILE] [options]

Evaluate COCO detection results like pycocotools' COCOeval (and LRP-Error's oLRP),
or run a trained checkpoint on its config's validation split and evaluate that
(COCO AP and LRP; detections.json is written beside the report). An LVIS
annotation file (images with neg_category_ids, categories with frequency) is
evaluated like lvis-api's LVISEval: federated labels, 300 detections per image,
AP per frequency group (APr, APc, APf).

Options:
  --gt FILE          COCO or LVIS annotation file (images, categories, annotations)
  --dets FILE        COCO results file (JSON array of detections)
  --checkpoint FILE  a checkpoint written by deno task train
  --data DIR         with --checkpoint: a COCO-format folder (annotations/instances_val.json, val/),
                     or a Cityscapes folder (leftImg8bit/val/, gtFine/val/) when the checkpoint's
                     config has data.kind "cityscapes"
  --config NAME|FILE with --checkpoint: a config that must agree with the one the
                     checkpoint stores (the first differing field is an error)
  --backend NAME     with --checkpoint: webgpu | native | cpu
  --store-thresholds with --checkpoint: store each class's oLRP-optimal score threshold
                     in the checkpoint's metadata (rewritten atomically), for deno task
                     detect; deno task train does this for model_final.safetensors
  --iou-type TYPE    bbox (default) or segm
  --lrp              also compute optimal LRP (tau 0.5; not for LVIS)
  --out DIR          write report.json and pr_curves.svg there (default runs/eval)
  --no-out           write nothing, only print
  --per-category     print a per-category table and write pr_curves/category_<id>.svg
  -h, --help         show this help`;

/** What the command line asks for. */
export type EvalOptions = EvalFileOptions | CheckpointEvalOptions;

/** Thrown for flags that cannot be used: the CLI prints the usage and exits 2. */
export class UsageError extends Error {
  /**
   * Create the error.
   *
   * @param message What is wrong with the flags.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * Parse the command line (strict: unknown flags are errors).
 *
 * @example
 * ```ts
 * import { parseEvalArgs } from "./eval.ts";
 * import assert from "node:assert/strict";
 *
 * const o = parseEvalArgs(["--gt", "a.json", "--dets", "b.json", "--lrp"]);
 * assert.deepEqual(o, {
 *   gt: "a.json", dets: "b.json", iouType: "bbox", lrp: true, out: "runs/eval", perCategory: false,
 * });
 * ```
 *
 * @param args Command-line arguments without the program name.
 * @returns The options, or `"help"` when help was asked for.
 * @throws {UsageError} On an unknown flag, a missing value, or a bad `--iou-type`.
 */
export function parseEvalArgs(args: string[]): EvalOptions | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        gt: { type: "string" },
        dets: { type: "string" },
        checkpoint: { type: "string" },
        data: { type: "string" },
        config: { type: "string" },
        backend: { type: "string" },
        "iou-type": { type: "string", default: "bbox" },
        lrp: { type: "boolean", default: false },
        out: { type: "string" },
        "no-out": { type: "boolean", default: false },
        "per-category": { type: "boolean", default: false },
        "store-thresholds": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return "help";
  const iouType = values["iou-type"];
  if (iouType !== "bbox" && iouType !== "segm") {
    throw new UsageError(`Unknown --iou-type "${iouType}", expected bbox or segm`);
  }
  if (values["no-out"] && values.out !== undefined) {
    throw new UsageError("--out and --no-out exclude each other");
  }
  if (values.checkpoint) {
    if (values.gt || values.dets) throw new UsageError("--checkpoint excludes --gt and --dets");
    return {
      checkpoint: values.checkpoint,
      data: values.data,
      config: values.config,
      backend: values.backend,
      out: values["no-out"] ? undefined : values.out ?? "runs/eval",
      perCategory: values["per-category"],
      storeThresholds: values["store-thresholds"],
    };
  }
  if (values.data || values.config || values.backend || values["store-thresholds"]) {
    throw new UsageError("--data, --config, --backend and --store-thresholds go with --checkpoint");
  }
  if (!values.gt) throw new UsageError("Missing --gt FILE");
  if (!values.dets) throw new UsageError("Missing --dets FILE");
  return {
    gt: values.gt,
    dets: values.dets,
    iouType,
    lrp: values.lrp,
    out: values["no-out"] ? undefined : values.out ?? "runs/eval",
    perCategory: values["per-category"],
  };
}

/**
 * Run the CLI.
 *
 * @param args Command-line arguments without the program name.
 * @returns The exit code: 0 on success, 1 when evaluation fails, 2 on bad flags.
 */
export async function main(args: string[]): Promise<number> {
  let options;
  try {
    options = parseEvalArgs(args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`${e.message}\n\n${EVAL_USAGE}`);
    return 2;
  }
  if (options === "help") {
    console.log(EVAL_USAGE);
    return 0;
  }
  try {
    const t0 = performance.now();
    if ("checkpoint" in options) {
      const { text, written } = await evaluateCheckpoint(options);
      console.log(text);
      for (const path of written) console.error(`Wrote ${path}`);
      return 0;
    }
    const result = await evaluateResultsFile(options);
    console.log(result.text);
    if ("lvis" in result) {
      const n = result.lvis.detectionCounts;
      console.error(
        `Detections: ${n.kept} evaluated, ${n.capped} over the 300-per-image cap, ` +
          `${n.dropped_unknown_category} of an unknown category, ${n.dropped_zero_area} of zero ` +
          `area, ${n.dropped_not_labeled_on_image} on categories not labeled on their image`,
      );
    } else if (result.coco.droppedDetections > 0) {
      console.error(
        `Dropped ${result.coco.droppedDetections} detection(s) whose category is not in the annotation file`,
      );
    }
    for (const path of result.written) console.error(`Wrote ${path}`);
    console.error(`Evaluated in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    return 0;
  } catch (e) {
    console.error(`Evaluation failed: ${(e as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
