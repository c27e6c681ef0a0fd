/**
 * Evaluation of a COCO results file: reading the inputs, the JSON report,
 * precision–recall curves as SVG (drawn by `svg_chart.ts`, written atomically
 * by `files.ts`) and the per-category table. `deno task eval` parses the flags
 * and calls {@linkcode evaluateResultsFile}, which also evaluates against an
 * LVIS ground truth (told apart by `isLvisDataset`) with `evaluateLvis`;
 * other entry points (a checkpoint run that first produces detections) can
 * call {@linkcode evaluateResults} and {@linkcode writeEvalOutputs} directly.
 *
 * @module
 */

import { evaluateCocoAndLrp } from "../eval/coco_and_lrp.ts";
import { COCO_STAT_NAMES, type CocoEvalResult, evaluateCoco } from "../eval/coco_eval.ts";
import type { LrpEvalResult } from "../eval/lrp.ts";
import { evaluateLvis, type LvisEvalResult } from "../eval/lvis_eval.ts";
import { isLvisDataset } from "../data/lvis.ts";
import type { LvisDataset } from "../data/lvis_types.ts";
import { COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS, type IouType } from "../eval/params.ts";
import type { CocoDataset, CocoDetection } from "../data/coco_types.ts";
import { ensureDir, writeFileAtomic } from "./files.ts";
import { type ChartSeries, lineChartSvg } from "./svg_chart.ts";

/** What {@linkcode evaluateResults} computed. */
export interface EvalOutcome {
  /** COCO AP/AR. */
  coco: CocoEvalResult;
  /** Optimal LRP, when requested. */
  lrp?: LrpEvalResult;
}

/** What {@linkcode evaluateResultsFile} computed for an LVIS ground truth. */
export interface LvisEvalOutcome {
  /** LVIS AP/AR. */
  lvis: LvisEvalResult;
}

/** Options of {@linkcode evaluateResultsFile}. */
export interface EvalFileOptions {
  /** Path of the COCO annotation file. */
  gt: string;
  /** Path of the COCO results file (a JSON array). */
  dets: string;
  /** IoU type, `"bbox"` by default. */
  iouType?: IouType;
  /** Also compute optimal LRP (COCO ground truth only). */
  lrp?: boolean;
  /** Output folder; nothing is written when omitted. */
  out?: string;
  /** Also write one precision–recall SVG per category. */
  perCategory?: boolean;
}

async function readJson(path: string, what: string): Promise<unknown> {
  const text = await Deno.readTextFile(path);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`Cannot parse ${what} "${path}": ${(e as Error).message}`);
  }
}

/**
 * Read a COCO annotation file and a results file.
 *
 * @param gtPath Annotation file.
 * @param detsPath Results file: a JSON array of detections.
 * @returns The parsed ground truth and detections.
 * @throws {SyntaxError} When a file is not JSON or has the wrong top-level shape.
 */
export async function readEvalInputs(
  gtPath: string,
  detsPath: string,
): Promise<{ groundTruth: CocoDataset; detections: CocoDetection[] }> {
  const gt = await readJson(gtPath, "annotation file");
  if (gt === null || typeof gt !== "object" || Array.isArray(gt)) {
    throw new SyntaxError(`Cannot load annotation file "${gtPath}": expected a JSON object`);
  }
  for (const key of ["images", "categories", "annotations"]) {
    if (!Array.isArray((gt as Record<string, unknown>)[key])) {
      throw new SyntaxError(`Cannot load annotation file "${gtPath}": "${key}" is not an array`);
    }
  }
  const dets = await readJson(detsPath, "results file");
  if (!Array.isArray(dets)) {
    throw new SyntaxError(`Cannot load results file "${detsPath}": expected a JSON array`);
  }
  return { groundTruth: gt as CocoDataset, detections: dets as CocoDetection[] };
}

/**
 * Run COCO evaluation, and optimal LRP when asked, sharing one IoU pass.
 *
 * @param groundTruth COCO dataset.
 * @param detections COCO results.
 * @param iouType `"bbox"` or `"segm"`.
 * @param lrp Also compute optimal LRP.
 * @returns The results.
 */
export function evaluateResults(
  groundTruth: CocoDataset,
  detections: readonly CocoDetection[],
  iouType: IouType = "bbox",
  lrp = false,
): EvalOutcome {
  return lrp
    ? evaluateCocoAndLrp(groundTruth, detections, { iouType })
    : { coco: evaluateCoco(groundTruth, detections, { iouType }) };
}

/**
 * What {@linkcode prCurvesSvg} draws from: a COCO result, or an LVIS one with a maxDets axis of
 * length 1 added to its shape.
 */
export type PrCurveSource =
  & Pick<CocoEvalResult, "iouType" | "precisionShape" | "precision" | "categoryIds">
  & { perCategory: readonly { name: string }[] };

/** Mean precision over categories per recall threshold at `t` (area all, last maxDets); -1 if none. */
function meanCurve(r: PrCurveSource, t: number, ks: number[]): number[] {
  const [, R, K, A, M] = r.precisionShape;
  return Array.from({ length: R }, (_, rr) => {
    let s = 0, n = 0;
    for (const k of ks) {
      const v = r.precision[(((t * R + rr) * K + k) * A + 0) * M + (M - 1)];
      if (v > -1) {
        s += v;
        n++;
      }
    }
    return n ? s / n : -1;
  });
}

/**
 * Precision–recall curves as an SVG chart: one line per IoU threshold (area
 * all, maxDets 100), averaged over the categories that have ground truth, or
 * for one category. The legend gives each curve's AP.
 *
 * @example
 * ```ts ignore
 * const svg = prCurvesSvg(evaluateCoco(gt, dets));
 * ```
 *
 * @param r COCO evaluation result (or an LVIS one, see {@linkcode PrCurveSource}).
 * @param category Index on the `K` axis for one category's curves; all categories when omitted.
 * @param maxDets The detection limit the last maxDets entry stands for (in the title).
 * @returns SVG text.
 * @throws {RangeError} When `category` is not an index on the `K` axis.
 */
export function prCurvesSvg(r: PrCurveSource, category?: number, maxDets = 100): string {
  const K = r.precisionShape[2];
  if (category !== undefined && !(Number.isInteger(category) && category >= 0 && category < K)) {
    throw new RangeError(`Category index ${category} is outside [0, ${K})`);
  }
  const ks = category === undefined ? Array.from({ length: K }, (_, k) => k) : [category];
  const title = category === undefined
    ? `Precision–recall, ${r.iouType}, all categories (area all, maxDets ${maxDets})`
    : `Precision–recall, ${r.iouType}, category ${r.categoryIds[category]} ` +
      `"${r.perCategory[category].name}"`;
  const series: ChartSeries[] = COCO_IOU_THRESHOLDS.map((iou, t) => {
    const curve = meanCurve(r, t, ks);
    const valid = curve.filter((v) => v >= 0);
    const ap = valid.length ? valid.reduce((a, b) => a + b, 0) / valid.length : -1;
    return {
      name: `IoU ${iou.toFixed(2)}: ${ap < 0 ? "no data" : `AP ${ap.toFixed(3)}`}`,
      points: curve.map((v, i) => [COCO_RECALL_THRESHOLDS[i], v < 0 ? NaN : v] as const),
    };
  });
  return lineChartSvg(series, {
    title,
    xLabel: "recall",
    yLabel: "precision",
    xDomain: [0, 1],
    yDomain: [0, 1],
    width: 720,
    height: 480,
  });
}

function named(stats: readonly number[]): Record<string, number> {
  return Object.fromEntries(COCO_STAT_NAMES.map((n, i) => [n, stats[i]]));
}

/**
 * The JSON report: summary numbers, per-category AP/AR (and LRP), recall
 * `[T][K][A][M]` and the precision curves at area all, maxDets 100 as
 * `[K][T][R]`. NaN becomes `null`.
 *
 * @param outcome Evaluation results.
 * @param sources Input file names to record.
 * @returns A JSON-serialisable object.
 */
export function evalReport(
  outcome: EvalOutcome,
  sources: { gt?: string; dets?: string } = {},
): Record<string, unknown> {
  const { coco, lrp } = outcome;
  const [T, R, K, A, M] = coco.precisionShape;
  const nest = <X>(n: number, f: (i: number) => X): X[] =>
    Array.from({ length: n }, (_, i) => f(i));
  return {
    ...sources,
    iouType: coco.iouType,
    stats: named(coco.stats),
    summary: coco.summary,
    droppedDetections: coco.droppedDetections,
    imageCount: coco.imageIds.length,
    categoryIds: coco.categoryIds,
    iouThresholds: COCO_IOU_THRESHOLDS,
    areaRanges: ["all", "small", "medium", "large"],
    maxDets: [1, 10, 100],
    perCategory: coco.perCategory.map((c, k) => ({
      categoryId: c.categoryId,
      name: c.name,
      ...named(c.stats),
      ...(lrp
        ? {
          oLRP: lrp.perCategory[k].oLRP,
          oLRPLoc: lrp.perCategory[k].oLRPLoc,
          oLRPFP: lrp.perCategory[k].oLRPFP,
          oLRPFN: lrp.perCategory[k].oLRPFN,
          lrpThreshold: lrp.perCategory[k].threshold,
        }
        : {}),
    })),
    recall: nest(
      T,
      (t) =>
        nest(K, (k) => nest(A, (a) => nest(M, (m) => coco.recall[((t * K + k) * A + a) * M + m]))),
    ),
    precisionAllArea100: nest(
      K,
      (k) =>
        nest(
          T,
          (t) => nest(R, (r) => coco.precision[(((t * R + r) * K + k) * A + 0) * M + (M - 1)]),
        ),
    ),
    ...(lrp
      ? {
        lrp: {
          tau: lrp.tau,
          oLRP: lrp.oLRP,
          oLRPLoc: lrp.oLRPLoc,
          oLRPFP: lrp.oLRPFP,
          oLRPFN: lrp.oLRPFN,
          oLRPSmall: lrp.oLRPSmall,
          oLRPMedium: lrp.oLRPMedium,
          oLRPLarge: lrp.oLRPLarge,
          summary: lrp.summary,
        },
      }
      : {}),
  };
}

const fmt = (v: number) => Number.isNaN(v) ? "nan" : v.toFixed(3);

/**
 * A fixed-width table of per-category AP, AP50, AP75, AR100 (and oLRP with
 * its threshold when LRP was computed).
 *
 * @param outcome Evaluation results.
 * @returns Table text, one line per category after a header.
 */
export function perCategoryTable(outcome: EvalOutcome): string {
  const { coco, lrp } = outcome;
  const names = coco.perCategory.map((c) => `${c.categoryId} ${c.name}`);
  const w = Math.max(8, ...names.map((n) => n.length));
  const head = ["AP", "AP50", "AP75", "AR100", ...(lrp ? ["oLRP", "thr"] : [])];
  const lines = [`${"category".padEnd(w)} ${head.map((h) => h.padStart(7)).join(" ")}`];
  coco.perCategory.forEach((c, k) => {
    const vals = [c.stats[0], c.stats[1], c.stats[2], c.stats[8]];
    if (lrp) vals.push(lrp.perCategory[k].oLRP[0], lrp.perCategory[k].threshold[0]);
    lines.push(`${names[k].padEnd(w)} ${vals.map((v) => fmt(v).padStart(7)).join(" ")}`);
  });
  return lines.join("\n");
}

/**
 * Write `report.json`, `pr_curves.svg` and, when asked,
 * `pr_curves/category_<id>.svg` into `outDir` (created if needed), each atomically.
 *
 * @param outDir Output folder.
 * @param outcome Evaluation results.
 * @param options Per-category curves, and input names for the report.
 * @returns The paths written.
 */
export async function writeEvalOutputs(
  outDir: string,
  outcome: EvalOutcome,
  options: { perCategory?: boolean; gt?: string; dets?: string } = {},
): Promise<string[]> {
  const report = evalReport(outcome, { gt: options.gt, dets: options.dets });
  return await writeReportAndCurves(outDir, report, outcome.coco, options.perCategory, 100);
}

/** `report.json`, `pr_curves.svg` and the per-category curves, each written atomically. */
async function writeReportAndCurves(
  outDir: string,
  report: Record<string, unknown>,
  curves: PrCurveSource,
  perCategory: boolean | undefined,
  maxDets: number,
): Promise<string[]> {
  await ensureDir(outDir);
  const written: string[] = [];
  const put = async (name: string, text: string) => {
    const path = `${outDir}/${name}`;
    await writeFileAtomic(path, text);
    written.push(path);
  };
  // One top-level key per line, values compact (the curves stay a few lines long).
  const body = Object.entries(report)
    .map(([key, value]) => `  ${JSON.stringify(key)}: ${JSON.stringify(value)}`)
    .join(",\n");
  await put("report.json", `{\n${body}\n}\n`);
  await put("pr_curves.svg", prCurvesSvg(curves, undefined, maxDets));
  if (perCategory) {
    await ensureDir(`${outDir}/pr_curves`);
    for (let k = 0; k < curves.categoryIds.length; k++) {
      await put(`pr_curves/category_${curves.categoryIds[k]}.svg`, prCurvesSvg(curves, k, maxDets));
    }
  }
  return written;
}

/**
 * The JSON report of an LVIS evaluation: the 13 summary numbers, what became
 * of the detections, the frequency groups, per-category AP/AR, recall
 * `[T][K][A]` and the precision curves at area all as `[K][T][R]`.
 *
 * @param r LVIS evaluation result.
 * @param sources Input file names to record.
 * @returns A JSON-serialisable object.
 */
export function lvisReport(
  r: LvisEvalResult,
  sources: { gt?: string; dets?: string } = {},
): Record<string, unknown> {
  const [T, R, K, A] = r.precisionShape;
  const nest = <X>(n: number, f: (i: number) => X): X[] =>
    Array.from({ length: n }, (_, i) => f(i));
  return {
    ...sources,
    format: "lvis",
    iouType: r.iouType,
    stats: r.stats,
    summary: r.summary,
    detectionCounts: r.detectionCounts,
    imageCount: r.imageIds.length,
    categoryIds: r.categoryIds,
    frequencyGroups: r.frequencyGroups,
    iouThresholds: COCO_IOU_THRESHOLDS,
    areaRanges: ["all", "small", "medium", "large"],
    maxDetsPerImage: 300,
    perCategory: r.perCategory.map((c) => ({
      categoryId: c.categoryId,
      name: c.name,
      frequency: c.frequency,
      ...c.stats,
    })),
    recall: nest(T, (t) => nest(K, (k) => nest(A, (a) => r.recall[(t * K + k) * A + a]))),
    precisionAllArea: nest(
      K,
      (k) => nest(T, (t) => nest(R, (rr) => r.precision[((t * R + rr) * K + k) * A])),
    ),
  };
}

/**
 * A fixed-width table of per-category AP, AP50, AP75 and AR@300 with each
 * category's frequency group.
 *
 * @param r LVIS evaluation result.
 * @returns Table text, one line per category after a header.
 */
export function lvisCategoryTable(r: LvisEvalResult): string {
  const names = r.perCategory.map((c) => `${c.categoryId} ${c.name}`);
  const w = Math.max(8, ...names.map((n) => n.length));
  const head = ["freq", "AP", "AP50", "AP75", "AR@300"];
  const lines = [`${"category".padEnd(w)} ${head.map((h) => h.padStart(7)).join(" ")}`];
  r.perCategory.forEach((c, k) => {
    const vals = [c.stats.AP, c.stats.AP50, c.stats.AP75, c.stats["AR@300"]];
    lines.push(
      `${names[k].padEnd(w)} ${c.frequency.padStart(7)} ${
        vals.map((v) => fmt(v).padStart(7)).join(" ")
      }`,
    );
  });
  return lines.join("\n");
}

/**
 * Read both files, evaluate, write the outputs (when `out` is set) and return
 * the text to print: the COCO summary, then the LRP lines and the
 * per-category table when asked. An LVIS ground truth (see `isLvisDataset`)
 * is evaluated with `evaluateLvis` instead, printing lvis-api's 13 lines.
 *
 * @example
 * ```ts ignore
 * const { text } = await evaluateResultsFile({ gt: "val.json", dets: "dets.json", lrp: true });
 * console.log(text);
 * ```
 *
 * @param options Paths and switches.
 * @returns Results, printable text and the files written.
 * @throws {TypeError} When LRP is asked for against an LVIS ground truth.
 */
export async function evaluateResultsFile(
  options: EvalFileOptions,
): Promise<(EvalOutcome | LvisEvalOutcome) & { text: string; written: string[] }> {
  const { groundTruth, detections } = await readEvalInputs(options.gt, options.dets);
  const sources = { gt: options.gt, dets: options.dets };
  if (isLvisDataset(groundTruth)) {
    if (options.lrp) {
      throw new TypeError(
        `"${options.gt}" is an LVIS annotation file: optimal LRP is not defined under its ` +
          `federated labels (drop --lrp)`,
      );
    }
    const lvis = evaluateLvis(groundTruth as LvisDataset, detections, {
      iouType: options.iouType,
    });
    const text = [lvis.summary, ...(options.perCategory ? ["", lvisCategoryTable(lvis)] : [])]
      .join("\n");
    const [T, R, K, A] = lvis.precisionShape;
    const curves: PrCurveSource = { ...lvis, precisionShape: [T, R, K, A, 1] };
    const written = options.out === undefined ? [] : await writeReportAndCurves(
      options.out,
      lvisReport(lvis, sources),
      curves,
      options.perCategory,
      300,
    );
    return { lvis, text, written };
  }
  const outcome = evaluateResults(groundTruth, detections, options.iouType, options.lrp);
  const text = [
    outcome.coco.summary,
    ...(outcome.lrp ? [outcome.lrp.summary] : []),
    ...(options.perCategory ? ["", perCategoryTable(outcome)] : []),
  ].join("\n");
  const written = options.out === undefined ? [] : await writeEvalOutputs(options.out, outcome, {
    perCategory: options.perCategory,
    ...sources,
  });
  return { ...outcome, text, written };
}
