/**
 * `deno task detect --checkpoint FILE IMAGE...`: runs a trained detector on
 * image files and writes each image, scaled up to a readable size, with its
 * detections drawn and captioned `class score` (PNG or SVG), with the masks
 * of a Mask R-CNN tinted in its class colour, plus a COCO results file with
 * every detection (and its RLE `segmentation` where the model predicts masks).
 *
 * Ranking losses order scores without calibrating them, so no single score
 * threshold suits every model or class. By default a class's detections are
 * drawn when they score at least that class's oLRP-optimal threshold, which
 * `deno task train` stores in the final checkpoint (see `model_io.ts`).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { basename, extname, join, relative, resolve } from "node:path";
import { cocoSource, DetectionLoader } from "../data/loader.ts";
import type { CocoDataset, CocoDetection } from "../data/coco_types.ts";
import { loadImage, toRgb } from "../data/image.ts";
import * as mask from "../data/mask.ts";
import { encodePng } from "../data/png.ts";
import { CITYSCAPES_CLASSES } from "../data/cityscapes.ts";
import { SHAPE_CLASSES } from "../data/shapes.ts";
import type { BackendName } from "../tensor/backend.ts";
import { initBackend } from "../tensor/device.ts";
import { detectAll } from "../engine/evaluate.ts";
import {
  classColor,
  detectionsSvg,
  drawBoxes,
  type DrawnBox,
  tintMask,
  upscale,
} from "../engine/draw.ts";
import { ensureDir, writeFileAtomic } from "../engine/files.ts";
import { loadModel } from "../engine/model_io.ts";
import { integerFlag, parseFlags } from "./args.ts";

/** Class names by data kind, for a checkpoint that stores none (COCO files name them at eval). */
const KNOWN_CLASSES: Partial<Record<string, readonly string[]>> = {
  shapes: SHAPE_CLASSES,
  cityscapes: CITYSCAPES_CLASSES,
};

/** How many detections per image are drawn when the checkpoint stores no thresholds. */
export const FALLBACK_TOP = 10;

/** Usage text of `deno task detect`. */
export const DETECT_USAGE = `Usage: deno task detect --checkpoint FILE [options] IMAGE...

Runs a trained detector on PNG/JPEG files; writes each image, scaled up, with its
boxes drawn and captioned "class score" (a Mask R-CNN's masks tinted under them),
and detections.json (COCO results with every detection, with an RLE segmentation
from mask models; image_id = position in the list, from 1).

Which detections are drawn: by default those scoring at least their class's
oLRP-optimal threshold, which deno task train computes on the val split and stores
in model_final.safetensors. A class without one (no ground truth or no true
positive in val) uses the highest threshold stored for another class. A checkpoint
with no thresholds (checkpoint.safetensors, --no-eval, or older runs) draws the top
${FALLBACK_TOP} per image, and says so.

Options:
  --checkpoint FILE    a checkpoint written by deno task train (required)
  --config NAME|FILE   a config that must agree with the one the checkpoint stores
                       (the first differing field is an error); not needed to load it
  --out DIR            output folder (default detections/)
  --format png|svg     drawn images as PNG or SVG (default png)
  --score-thr X        draw detections scoring at least X, one threshold for every
                       class instead of the stored ones
  --top K              draw the K highest-scoring detections per image, ignoring the
                       stored thresholds (with --score-thr, both apply)
  --min-size PX        scale images up by a whole factor (nearest neighbour) until the
                       long side is at least PX (default 512; 0 keeps the size)
  --backend NAME       webgpu | native | cpu (default: chosen by the machine)
  -h, --help           this text
`;

/** Which detections are drawn on each image. */
export interface DrawRule {
  /** Minimum score per class, in label order; absent: no threshold. */
  thresholds?: readonly number[];
  /** At most this many per image, highest scores first; absent: no limit. */
  top?: number;
  /** The rule in words, for the log. */
  description: string;
}

/**
 * The rule `detect` draws by: `scoreThr` for every class and/or the `top`
 * highest-scoring detections when given, else the stored per-class
 * thresholds (a class without one takes the highest stored threshold), else
 * the top {@linkcode FALLBACK_TOP}. Falling back is reported through `warn`.
 *
 * @example
 * ```ts
 * import { drawRule } from "./detect.ts";
 * import assert from "node:assert/strict";
 *
 * const warnings: string[] = [];
 * const rule = drawRule([0.2, null, 0.4], ["a", "b", "c"], {}, (m) => warnings.push(m));
 * assert.deepEqual(rule.thresholds, [0.2, 0.4, 0.4]);
 * assert.equal(warnings.length, 1); // class "b" falls back
 * assert.deepEqual(drawRule(undefined, ["a"], { top: 3 }).top, 3);
 * ```
 *
 * @param stored Thresholds from the checkpoint, one number or `null` per class, if any.
 * @param classNames Class names in label order (for messages; their count is the class count).
 * @param options `scoreThr` and `top` from the command line.
 * @param warn Receives what fell back (default: stderr).
 * @returns The rule.
 */
export function drawRule(
  stored: readonly (number | null)[] | undefined,
  classNames: readonly string[],
  options: { scoreThr?: number; top?: number },
  warn: (message: string) => void = (m) => console.error(m),
): DrawRule {
  const n = classNames.length;
  const { scoreThr, top } = options;
  if (scoreThr !== undefined || top !== undefined) {
    const parts = [
      ...(scoreThr !== undefined ? [`score >= ${scoreThr}`] : []),
      ...(top !== undefined ? [`top ${top}`] : []),
    ];
    return {
      thresholds: scoreThr !== undefined ? new Array(n).fill(scoreThr) : undefined,
      top,
      description: parts.join(", "),
    };
  }
  const known = (stored ?? []).filter((t): t is number => t !== null);
  if (known.length === 0) {
    warn(
      `brl detect: the checkpoint stores no score thresholds ${
        stored ? "(no class had a true positive in val)" : "(not a final checkpoint of a run)"
      }; drawing the top ${FALLBACK_TOP} per image (choose with --score-thr or --top)`,
    );
    return { top: FALLBACK_TOP, description: `top ${FALLBACK_TOP}, no stored thresholds` };
  }
  const highest = Math.max(...known);
  const missing = stored!.flatMap((t, k) => (t === null ? [classNames[k]] : []));
  if (missing.length > 0) {
    warn(
      `brl detect: no stored score threshold for ${
        missing.map((m) => `"${m}"`).join(", ")
      }; using the highest stored one, ${highest.toFixed(3)}`,
    );
  }
  return {
    thresholds: stored!.map((t) => t ?? highest),
    description: "per-class oLRP thresholds",
  };
}

/**
 * The detections of one image that `rule` draws, highest score first.
 *
 * @param detections Detections of the image.
 * @param rule Thresholds (indexed by `category_id - 1`) and/or a count.
 * @returns The kept detections.
 */
export function selectDetections(
  detections: readonly CocoDetection[],
  rule: DrawRule,
): CocoDetection[] {
  const t = rule.thresholds;
  return detections
    .filter((d) => !t || d.score >= t[d.category_id - 1])
    .sort((a, b) => b.score - a.score)
    .slice(0, rule.top ?? Infinity);
}

/**
 * The whole factor that brings an image's long side to at least `minSize`
 * (1 when it already is, or when `minSize` is 0).
 */
export function upscaleFactor(width: number, height: number, minSize: number): number {
  return Math.max(1, Math.ceil(minSize / Math.max(width, height)));
}

/** Runs the task with command-line `args`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseFlags(
    () =>
      parseArgs({
        args,
        strict: true,
        allowPositionals: true,
        options: {
          checkpoint: { type: "string" },
          config: { type: "string" },
          out: { type: "string", default: "detections" },
          format: { type: "string", default: "png" },
          "score-thr": { type: "string" },
          top: { type: "string" },
          "min-size": { type: "string", default: "512" },
          backend: { type: "string" },
          help: { type: "boolean", short: "h", default: false },
        },
      }),
    DETECT_USAGE,
  );
  if (typeof parsed === "number") return parsed;
  const v = parsed.values;
  if (!v.checkpoint || parsed.positionals.length === 0 || !["png", "svg"].includes(v.format!)) {
    console.error(
      `brl detect: give --checkpoint, --format png|svg and at least one image\n\n${DETECT_USAGE}`,
    );
    return 2;
  }
  try {
    const scoreThr = v["score-thr"] === undefined ? undefined : Number(v["score-thr"]);
    if (scoreThr !== undefined && (!(scoreThr >= 0 && scoreThr <= 1) || !v["score-thr"]!.trim())) {
      throw new RangeError(`--score-thr must be in [0, 1], got "${v["score-thr"]}"`);
    }
    const top = integerFlag("top", v.top, 1);
    const minSize = integerFlag("min-size", v["min-size"])!;
    const backend = await initBackend(v.backend as BackendName | undefined);
    const restored = await loadModel(v.checkpoint, backend, v.config);
    const { model, config } = restored;
    const names = restored.classNames ??
      Array.from(
        { length: config.model.numClasses },
        (_, k) => KNOWN_CLASSES[config.data.kind]?.[k] ?? `class${k + 1}`,
      );
    const rule = drawRule(restored.scoreThresholds, names, { scoreThr, top });
    const paths = parsed.positionals;
    const images = await Promise.all(paths.map(async (p) => toRgb(await loadImage(p))));
    // Paths as given, relative to the working folder or absolute, reach the loader from the cwd.
    const cwd = Deno.cwd();
    const dataset: CocoDataset = {
      images: paths.map((p, i) => ({
        id: i + 1,
        file_name: relative(cwd, resolve(p)),
        width: images[i].width,
        height: images[i].height,
      })),
      categories: names.map((name, k) => ({ id: k + 1, name })),
      annotations: [],
    };
    const loader = new DetectionLoader(cocoSource(dataset, cwd), {
      batchSize: 1,
      seed: 0,
      shuffle: false,
      workers: 0,
      transform: { shortSide: config.train.shortSide, maxSize: config.train.maxSize, flipProb: 0 },
    });
    let detections: CocoDetection[];
    try {
      detections = await detectAll(model, loader, dataset);
    } finally {
      loader.close();
    }
    await ensureDir(v.out!);
    for (const [i, path] of paths.entries()) {
      const mine = detections.filter((d) => d.image_id === i + 1);
      const f = upscaleFactor(images[i].width, images[i].height, minSize);
      const image = upscale(images[i], f);
      // Lowest score first, so that the best detection's box and caption end on top.
      const drawn = selectDetections(mine, rule).reverse();
      for (const d of drawn) {
        // A detector with a mask branch: its masks are tinted under the boxes.
        const rle = d.segmentation;
        if (rle) {
          const [h, w] = rle.size;
          tintMask(image, mask.decode(rle), h, w, classColor(d.category_id - 1), 0.45, f);
        }
      }
      const boxes: DrawnBox[] = drawn.map((d) => {
        const [x, y, w, h] = d.bbox!;
        return {
          box: [x * f, y * f, (x + w) * f, (y + h) * f],
          classId: d.category_id - 1,
          score: d.score,
          label: names[d.category_id - 1],
        };
      });
      const stem = basename(path, extname(path));
      const file = join(v.out!, `${stem}.${v.format}`);
      if (v.format === "svg") {
        await writeFileAtomic(file, await detectionsSvg(image, boxes));
      } else {
        const textScale = Math.min(
          3,
          Math.max(1, Math.round(Math.max(image.width, image.height) / 256)),
        );
        const drawn = drawBoxes(image, boxes, { captions: true, textScale });
        await writeFileAtomic(file, await encodePng(drawn));
      }
      console.log(
        `${path}: drew ${boxes.length} of ${mine.length} detections (${rule.description}) on ` +
          `${image.width}x${image.height} -> ${file}`,
      );
    }
    await writeFileAtomic(join(v.out!, "detections.json"), JSON.stringify(detections));
    return 0;
  } catch (error) {
    console.error(`brl detect: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
