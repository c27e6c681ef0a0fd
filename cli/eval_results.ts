/**
 * Evaluation of a COCO results file for the `eval` task: reading the inputs,
 * the JSON report, precision–recall curves as SVG, the per-category table, and
 * atomic file writes. `cli/eval.ts` parses the flags and calls
 * {@linkcode evaluateResultsFile}; other entry points (a checkpoint run that
 * first produces detections) can call {@linkcode evaluateResults} and
 * {@linkcode writeEvalOutputs} directly.
 *
 * @module
 */

import {
  COCO_IOU_THRESHOLDS,
  COCO_RECALL_THRESHOLDS,
  COCO_STAT_NAMES,
  type CocoEvalResult,
  evaluateCoco,
  evaluateCocoAndLrp,
  type IouType,
  type LrpEvalResult,
} from "../eval/coco_eval.ts";
import type { CocoDataset, CocoDetection } from "../data/coco_types.ts";

/** What {@linkcode evaluateResults} computed. */
export interface EvalOutcome {
  /** COCO AP/AR. */
  coco: CocoEvalResult;
  /** Optimal LRP, when requested. */
  lrp?: LrpEvalResult;
}

/** Options of {@linkcode evaluateResultsFile}. */
export interface EvalFileOptions {
  /** Path of the COCO annotation file. */
  gt: string;
  /** Path of the COCO results file (a JSON array). */
  dets: string;
  /** IoU type, `"bbox"` by default. */
  iouType?: IouType;
  /** Also compute optimal LRP. */
  lrp?: boolean;
  /** Output folder; nothing is written when omitted. */
  out?: string;
  /** Also write one precision–recall SVG per category. */
  perCategory?: boolean;
}

/**
 * Write a file atomically: the data goes to a temporary file in the same
 * folder, which is then renamed over `path`.
 *
 * @example
 * ```ts ignore
 * await writeFileAtomic("runs/eval/report.json", JSON.stringify({ ok: true }));
 * ```
 *
 * @param path Destination.
 * @param data Text to write.
 */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeTextFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
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

/** Mean precision over categories per recall threshold at `t` (area all, maxDets 100); -1 if none. */
function meanCurve(r: CocoEvalResult, t: number, ks: number[]): number[] {
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

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const PALETTE = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

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
 * @param r COCO evaluation result.
 * @param category Index on the `K` axis for one category's curves; all categories when omitted.
 * @returns SVG text.
 */
export function prCurvesSvg(r: CocoEvalResult, category?: number): string {
  const K = r.precisionShape[2];
  if (category !== undefined && !(Number.isInteger(category) && category >= 0 && category < K)) {
    throw new RangeError(`Category index ${category} is outside [0, ${K})`);
  }
  const ks = category === undefined ? Array.from({ length: K }, (_, k) => k) : [category];
  const title = category === undefined
    ? `Precision–recall, ${r.iouType}, all categories (area all, maxDets 100)`
    : `Precision–recall, ${r.iouType}, category ${r.categoryIds[category]} ` +
      `"${r.perCategory[category].name}"`;
  const W = 640, H = 480, L = 60, T = 40, PW = 400, PH = 380;
  const x = (v: number) => (L + v * PW).toFixed(1);
  const y = (v: number) => (T + (1 - v) * PH).toFixed(1);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" ` +
    `viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
  ];
  for (let i = 0; i <= 10; i++) {
    const v = i / 10;
    parts.push(
      `<line x1="${x(v)}" y1="${y(0)}" x2="${x(v)}" y2="${y(1)}" stroke="#eee"/>`,
      `<line x1="${x(0)}" y1="${y(v)}" x2="${x(1)}" y2="${y(v)}" stroke="#eee"/>`,
      `<text x="${x(v)}" y="${T + PH + 16}" text-anchor="middle">${v.toFixed(1)}</text>`,
      `<text x="${L - 6}" y="${(T + (1 - v) * PH + 4).toFixed(1)}" text-anchor="end">` +
        `${v.toFixed(1)}</text>`,
    );
  }
  parts.push(
    `<rect x="${L}" y="${T}" width="${PW}" height="${PH}" fill="none" stroke="black"/>`,
    `<text x="${L + PW / 2}" y="${H - 12}" text-anchor="middle">recall</text>`,
    `<text x="16" y="${T + PH / 2}" text-anchor="middle" ` +
      `transform="rotate(-90 16 ${T + PH / 2})">precision</text>`,
  );
  COCO_IOU_THRESHOLDS.forEach((iou, t) => {
    const curve = meanCurve(r, t, ks);
    const color = PALETTE[t % PALETTE.length];
    const ly = T + 10 + t * 18;
    let label = `IoU ${iou.toFixed(2)}`;
    if (curve.every((v) => v < 0)) label += ": no data";
    else {
      const valid = curve.filter((v) => v >= 0);
      label += `: AP ${(valid.reduce((a, b) => a + b, 0) / valid.length).toFixed(3)}`;
      const pts = curve.map((v, i) => `${x(COCO_RECALL_THRESHOLDS[i])},${y(Math.max(v, 0))}`);
      parts.push(
        `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts.join(" ")}"/>`,
      );
    }
    parts.push(
      `<line x1="${L + PW + 14}" y1="${ly}" x2="${L + PW + 34}" y2="${ly}" stroke="${color}" ` +
        `stroke-width="2"/>`,
      `<text x="${L + PW + 40}" y="${ly + 4}">${escapeXml(label)}</text>`,
    );
  });
  parts.push("</svg>", "");
  return parts.join("\n");
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
  await Deno.mkdir(outDir, { recursive: true });
  const written: string[] = [];
  const put = async (name: string, text: string) => {
    const path = `${outDir}/${name}`;
    await writeFileAtomic(path, text);
    written.push(path);
  };
  await put(
    "report.json",
    JSON.stringify(evalReport(outcome, { gt: options.gt, dets: options.dets }), null, 1) + "\n",
  );
  await put("pr_curves.svg", prCurvesSvg(outcome.coco));
  if (options.perCategory) {
    await Deno.mkdir(`${outDir}/pr_curves`, { recursive: true });
    for (let k = 0; k < outcome.coco.categoryIds.length; k++) {
      await put(
        `pr_curves/category_${outcome.coco.categoryIds[k]}.svg`,
        prCurvesSvg(outcome.coco, k),
      );
    }
  }
  return written;
}

/**
 * Read both files, evaluate, write the outputs (when `out` is set) and return
 * the text to print: the COCO summary, then the LRP lines and the
 * per-category table when asked.
 *
 * @example
 * ```ts ignore
 * const { text } = await evaluateResultsFile({ gt: "val.json", dets: "dets.json", lrp: true });
 * console.log(text);
 * ```
 *
 * @param options Paths and switches.
 * @returns Results, printable text and the files written.
 */
export async function evaluateResultsFile(
  options: EvalFileOptions,
): Promise<EvalOutcome & { text: string; written: string[] }> {
  const { groundTruth, detections } = await readEvalInputs(options.gt, options.dets);
  const outcome = evaluateResults(groundTruth, detections, options.iouType, options.lrp);
  const text = [
    outcome.coco.summary,
    ...(outcome.lrp ? [outcome.lrp.summary] : []),
    ...(options.perCategory ? ["", perCategoryTable(outcome)] : []),
  ].join("\n");
  const written = options.out === undefined ? [] : await writeEvalOutputs(options.out, outcome, {
    perCategory: options.perCategory,
    gt: options.gt,
    dets: options.dets,
  });
  return { ...outcome, text, written };
}
