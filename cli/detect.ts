/**
 * `deno task detect --checkpoint FILE IMAGE...`: runs a trained detector on
 * image files and writes each image with its detections drawn (PNG or SVG),
 * plus a COCO results file.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { basename, extname, join } from "node:path";
import { cocoSource, DetectionLoader } from "../data/loader.ts";
import type { CocoDataset, CocoDetection } from "../data/coco_types.ts";
import { loadImage, toRgb } from "../data/image.ts";
import { encodePng } from "../data/png.ts";
import { SHAPE_CLASSES } from "../data/shapes.ts";
import type { BackendName } from "../tensor/backend.ts";
import { initBackend } from "../tensor/device.ts";
import { detectAll } from "./evaluate_model.ts";
import { detectionsSvg, drawBoxes, type DrawnBox } from "./draw.ts";
import { ensureDir, writeFileAtomic } from "./files.ts";
import { loadModel } from "./model_io.ts";
import { parseFlags, positiveInt } from "./args.ts";

/** Usage text of `deno task detect`. */
export const DETECT_USAGE = `Usage: deno task detect --checkpoint FILE [options] IMAGE...

Runs a trained detector on PNG/JPEG files; writes each image with its boxes
drawn and detections.json (COCO results; image_id = position in the list, from 1).

Options:
  --checkpoint FILE    a checkpoint written by deno task train (required)
  --out DIR            output folder (default detections/)
  --format png|svg     drawn images as PNG (boxes only) or SVG (boxes, labels, scores); default png
  --score-thr X        draw detections scoring at least X (default 0; all go to the JSON)
  --max-draw N         draw at most the N highest-scoring detections per image (default 10;
                       ranking losses order scores without calibrating them, so a fixed
                       threshold may draw nothing)
  --backend NAME       webgpu | native | cpu (default: chosen by the machine)
  -h, --help           this text
`;

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
          out: { type: "string", default: "detections" },
          format: { type: "string", default: "png" },
          "score-thr": { type: "string", default: "0" },
          "max-draw": { type: "string", default: "10" },
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
    const scoreThr = Number(v["score-thr"]);
    if (!(scoreThr >= 0 && scoreThr <= 1)) {
      throw new RangeError(`--score-thr must be in [0, 1], got "${v["score-thr"]}"`);
    }
    const maxDraw = positiveInt("max-draw", v["max-draw"])!;
    const backend = await initBackend(v.backend as BackendName | undefined);
    const { model, config } = await loadModel(v.checkpoint, backend);
    const paths = parsed.positionals;
    const images = await Promise.all(paths.map(async (p) => toRgb(await loadImage(p))));
    const names = config.data.kind === "shapes" ? SHAPE_CLASSES : undefined;
    const dataset: CocoDataset = {
      images: paths.map((p, i) => ({
        id: i + 1,
        file_name: p,
        width: images[i].width,
        height: images[i].height,
      })),
      categories: Array.from({ length: config.model.numClasses }, (_, k) => ({
        id: k + 1,
        name: names?.[k] ?? `class${k + 1}`,
      })),
      annotations: [],
    };
    const loader = new DetectionLoader(cocoSource(dataset, ""), {
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
      const boxes: DrawnBox[] = detections
        .filter((d) => d.image_id === i + 1 && d.score >= scoreThr)
        .sort((a, b) => b.score - a.score)
        .slice(0, maxDraw)
        .map((d) => ({
          box: [d.bbox![0], d.bbox![1], d.bbox![0] + d.bbox![2], d.bbox![1] + d.bbox![3]],
          classId: d.category_id - 1,
          score: d.score,
          label: dataset.categories[d.category_id - 1].name,
        }));
      const stem = basename(path, extname(path));
      if (v.format === "svg") {
        await writeFileAtomic(join(v.out!, `${stem}.svg`), await detectionsSvg(images[i], boxes));
      } else {
        await writeFileAtomic(
          join(v.out!, `${stem}.png`),
          await encodePng(drawBoxes(images[i], boxes)),
        );
      }
      console.log(
        `${path}: drew ${boxes.length} detections (score >= ${scoreThr}, at most ${maxDraw})`,
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
