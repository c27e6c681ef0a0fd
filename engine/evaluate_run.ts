/**
 * Evaluating a trained model on its validation split: the end of
 * `train()` (`val_detections.json`, `eval.json` and the oLRP-optimal
 * score thresholds in `model_final.safetensors`) and a checkpoint evaluated on
 * its own ({@linkcode evaluateCheckpoint}, behind `deno task eval --checkpoint`).
 *
 * @module
 */

import { joinPath } from "../data/path.ts";
import { CocoIndex } from "../data/coco.ts";
import type { CocoDetection } from "../data/coco_types.ts";
import { isLvisDataset } from "../data/lvis.ts";
import type { LvisDataset } from "../data/lvis_types.ts";
import { evaluateLvis } from "../eval/lvis_eval.ts";
import type { DetectorConfig } from "../configs/types.ts";
import type { Detector } from "../detectors/detector.ts";
import type { BackendName } from "../tensor/backend.ts";
import { initBackend } from "../tensor/device.ts";
import { loadValSplit, type Splits } from "./data_splits.ts";
import { detectSplit, formatThresholds, scoreDetections, storeLrpThresholds } from "./evaluate.ts";
import { evaluateResults, writeEvalOutputs } from "./eval_results.ts";
import { ensureDir, writeFileAtomic } from "./files.ts";
import { loadModel } from "./model_io.ts";

/** The evaluation at the end of a training run. */
export interface RunEvaluation {
  /** COCO box stats (the 12 numbers of pycocotools' summary). */
  stats: number[];
  /** COCO mask stats, for detectors that predict masks. */
  maskStats?: number[];
  /** Optimal LRP (tau 0.5). */
  oLRP: number;
  /** pycocotools' printed summary. */
  summary: string;
  /** Each class's oLRP-optimal score threshold, in label order (`null`: none). */
  scoreThresholds: (number | null)[];
  /** Class names, in label order. */
  classNames: string[];
}

/** Where {@linkcode evaluateRun} reads and writes. */
export interface RunEvaluationOptions {
  /** The run's configuration. */
  config: DetectorConfig;
  /** The run's data. */
  splits: Splits;
  /** The run's seed (of the val loader). */
  seed: number;
  /** Step reached (noted in the checkpoint's metadata). */
  step: number;
  /** Seconds spent training (noted in `eval.json`). */
  trainSeconds: number;
  /** Run folder: `val_detections.json` and `eval.json` go there. */
  out: string;
  /** The final checkpoint, which gets the score thresholds. */
  finalPath: string;
}

/**
 * Runs `model` on the val split, scores it with COCO AP and LRP, stores each
 * class's oLRP-optimal score threshold in `options.finalPath` and writes
 * `val_detections.json` and `eval.json` to the run folder.
 *
 * @example
 * ```ts ignore
 * const evaluation = await evaluateRun(model, {
 *   config, splits, seed: 0, step: 2000, trainSeconds: 600, out: "runs/a",
 *   finalPath: "runs/a/model_final.safetensors",
 * });
 * console.log(evaluation.summary);
 * ```
 *
 * @param model The trained model.
 * @param options The run.
 * @returns The scores and thresholds.
 */
export async function evaluateRun(
  model: Detector,
  options: RunEvaluationOptions,
): Promise<RunEvaluation> {
  const { splits, step, out } = options;
  const dataset = splits.valDataset;
  const detections = await detectSplit(
    model,
    splits.val,
    dataset,
    options.config.train,
    options.seed,
  );
  await writeFileAtomic(joinPath(out, "val_detections.json"), JSON.stringify(detections));
  const { coco, lrp, segm } = scoreDetections(dataset, detections);
  // An LVIS val split is also scored as lvis-api does (COCO's numbers ignore its federated labels).
  const lvis = isLvisDataset(dataset)
    ? (segm ? ["bbox", "segm"] as const : ["bbox"] as const).map((iouType) =>
      evaluateLvis(dataset as LvisDataset, detections, { iouType })
    )
    : [];
  // Each class's oLRP-optimal score threshold goes with the final model, for `detect`.
  const { thresholds, names } = await storeLrpThresholds(
    options.finalPath,
    dataset,
    lrp,
    `step ${step}`,
  );
  const ids = new CocoIndex(dataset).categoryIds;
  const perClass = names.map((name, k) => ({
    categoryId: ids[k],
    name,
    oLRP: lrp.perCategory.find((c) => c.categoryId === ids[k])?.oLRP[0] ?? -1,
    scoreThreshold: thresholds[k],
  }));
  await writeFileAtomic(
    joinPath(out, "eval.json"),
    JSON.stringify(
      {
        stats: coco.stats,
        ...(segm ? { maskStats: segm.stats } : {}),
        ...(lvis.length ? { lvis: Object.fromEntries(lvis.map((r) => [r.iouType, r.stats])) } : {}),
        oLRP: lrp.oLRP,
        oLRPLoc: lrp.oLRPLoc,
        oLRPFP: lrp.oLRPFP,
        oLRPFN: lrp.oLRPFN,
        perClass,
        trainSeconds: options.trainSeconds,
      },
      null,
      2,
    ),
  );
  return {
    stats: coco.stats,
    ...(segm ? { maskStats: segm.stats } : {}),
    oLRP: lrp.oLRP,
    summary: [
      coco.summary,
      ...(segm ? ["Masks (segm):", segm.summary] : []),
      ...lvis.flatMap((r) => [`LVIS ${r.iouType}:`, r.summary]),
    ].join("\n"),
    scoreThresholds: thresholds,
    classNames: names,
  };
}

/** Evaluating a trained checkpoint on its validation split. */
export interface CheckpointEvalOptions {
  /** The checkpoint. */
  checkpoint: string;
  /**
   * A COCO-format folder instead of the config's data, or a Cityscapes folder when the config's
   * `data.kind` is `"cityscapes"` (only the val split is read).
   */
  data?: string;
  /** A config name or `.ts` file that must agree with the checkpoint's. */
  config?: string;
  /** Backend name. */
  backend?: string;
  /** Output folder; nothing is written when omitted. */
  out?: string;
  /** Also write one precision–recall SVG per category. */
  perCategory?: boolean;
  /** Store each class's oLRP-optimal score threshold in the checkpoint. */
  storeThresholds?: boolean;
}

/**
 * Runs `options.checkpoint` on its validation split and evaluates the
 * detections (COCO AP and LRP); with `out`, writes the report, the curves
 * and `detections.json` there.
 *
 * @example
 * ```ts ignore
 * const { text } = await evaluateCheckpoint({ checkpoint: "runs/a/model_final.safetensors" });
 * console.log(text);
 * ```
 *
 * @param options The checkpoint and what to write.
 * @returns The text to print and the files written.
 */
export async function evaluateCheckpoint(
  options: CheckpointEvalOptions,
): Promise<{ text: string; written: string[] }> {
  const backend = await initBackend(options.backend as BackendName | undefined);
  const { model, config } = await loadModel(options.checkpoint, backend, options.config);
  const splits = await loadValSplit(config, options.data);
  const detections = await detectSplit(model, splits.val, splits.valDataset, config.train);
  if (isLvisDataset(splits.valDataset)) {
    return await evaluateLvisCheckpoint(splits.valDataset as LvisDataset, detections, options);
  }
  const outcome = evaluateResults(splits.valDataset, detections, "bbox", true);
  const withMasks = detections.length > 0 && detections.every((d) => d.segmentation);
  const masks = withMasks
    ? evaluateResults(splits.valDataset, detections, "segm", false)
    : undefined;
  const written: string[] = [];
  if (options.out) {
    written.push(
      ...await writeEvalOutputs(options.out, outcome, { perCategory: options.perCategory }),
    );
    const path = `${options.out}/detections.json`;
    await writeFileAtomic(path, JSON.stringify(detections));
    written.push(path);
  }
  if (masks && options.out) {
    written.push(
      ...await writeEvalOutputs(joinPath(options.out, "segm"), masks, {
        perCategory: options.perCategory,
      }),
    );
  }
  const lines = [outcome.coco.summary, outcome.lrp!.summary];
  if (masks) lines.push("Masks (segm):", masks.coco.summary);
  if (options.storeThresholds) {
    const { thresholds, names } = await storeLrpThresholds(
      options.checkpoint,
      splits.valDataset,
      outcome.lrp!,
      "deno task eval",
    );
    lines.push(
      `Stored oLRP-optimal score thresholds in ${options.checkpoint}: ` +
        formatThresholds(names, thresholds),
    );
  }
  return { text: lines.join("\n"), written };
}

/**
 * {@linkcode evaluateCheckpoint} on an LVIS val split: lvis-api's numbers for
 * the boxes (and the masks, when the detections carry them); LRP and its
 * score thresholds are not defined under LVIS's federated labels.
 */
async function evaluateLvisCheckpoint(
  gt: LvisDataset,
  detections: CocoDetection[],
  options: CheckpointEvalOptions,
): Promise<{ text: string; written: string[] }> {
  const withMasks = detections.length > 0 && detections.every((d) => d.segmentation);
  const results = (withMasks ? ["bbox", "segm"] as const : ["bbox"] as const).map((iouType) =>
    evaluateLvis(gt, detections, { iouType })
  );
  const lines = results.flatMap((r) => [`LVIS ${r.iouType}:`, r.summary]);
  if (options.storeThresholds) {
    lines.push("No score thresholds stored: LRP is not defined on LVIS's federated labels.");
  }
  const written: string[] = [];
  if (options.out) {
    const path = joinPath(options.out, "detections.json");
    await ensureDir(options.out);
    await writeFileAtomic(path, JSON.stringify(detections));
    const report = joinPath(options.out, "lvis.json");
    await writeFileAtomic(
      report,
      JSON.stringify(Object.fromEntries(results.map((r) => [r.iouType, r.stats])), null, 2),
    );
    written.push(path, report);
  }
  return { text: lines.join("\n"), written };
}
