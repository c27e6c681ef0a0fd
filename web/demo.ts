/**
 * The browser demo: trains the default detector (`atss_tiny_shapes`, Bucketed Rank & Sort loss)
 * on generated shapes with WebGPU in the page, charting the loss as it goes, then draws its
 * detections on held-out images. `deno task bundle:web` bundles this file (with the module) into
 * `web/dist/demo.js`; `deno task serve` serves `web/` on 127.0.0.1.
 *
 * @module
 */

import {
  ATSS_TINY_SHAPES,
  buildDetector,
  DetectionLoader,
  type DetectorConfig,
  evaluateCoco,
  generateShapes,
  initBackend,
  memorySource,
  SHAPE_CLASSES,
  trainingOptimizer,
  trainStep,
} from "../mod.ts";
import type { AtssModelConfig } from "../detectors/atss.ts";
import { detectAll } from "../engine/evaluate.ts";
import { drawBoxes, type DrawnBox, upscale } from "../engine/draw.ts";
import { lineChartSvg } from "../engine/svg_chart.ts";

/** Settings of one demo run. */
export interface DemoOptions {
  /** Optimiser steps. */
  steps: number;
  /** Images per batch. */
  batchSize: number;
  /** Image side in pixels (generated at this size; the detector trains at it). */
  size: number;
  /** Generated training images (cycled through in epochs). */
  trainImages: number;
  /** Held-out images drawn (and scored) at the end. */
  valImages: number;
  /** Seed of the data, the weights and the order. */
  seed: number;
  /** Peak learning rate; default the config's. */
  lr?: number;
}

/**
 * Defaults of the page: a short run (several minutes on Chromium's software adapter without a
 * GPU); steps, batch and image size are fields of the page, the rest query parameters.
 */
export const DEMO_DEFAULTS: DemoOptions = {
  steps: 200,
  batchSize: 4,
  size: 64,
  trainImages: 256,
  valImages: 8,
  seed: 0,
};

/** The part of a `<canvas>` the demo uses (typed here: Deno's own types have no DOM). */
export interface DemoCanvas {
  width: number;
  height: number;
  getContext(kind: "2d"): { putImageData(image: ImageData, x: number, y: number): void } | null;
}

/** Where the demo draws (any of them may be missing). */
export interface DemoView {
  /** Status line. */
  status?: (text: string) => void;
  /** Gets the loss chart's SVG text after each logged step. */
  chart?: (svg: string) => void;
  /** Canvas for the detections. */
  canvas?: DemoCanvas;
}

/** What a demo run measured. */
export interface DemoResult {
  /** The backend's description (adapter). */
  backend: string;
  /** Total loss after each step. */
  losses: number[];
  /** Seconds of the first step, which compiles most kernels. */
  firstStepSeconds: number;
  /**
   * Training steps per second after the first (data, forward, backward, update, readback of
   * the loss); `NaN` for a one-step run.
   */
  stepsPerSecond: number;
  /** Detections drawn on the held-out images (see {@linkcode DRAW_RULE}). */
  drawn: number;
  /** COCO AP@[.5:.95] and AP50 on the held-out images. */
  ap: number;
  ap50: number;
}

/** The default config cut to `options`: size, batch, steps; warm-up over the first fifth. */
export function demoConfig(options: DemoOptions): DetectorConfig<AtssModelConfig> {
  const base = ATSS_TINY_SHAPES;
  return {
    ...base,
    name: `${base.name}_web`,
    train: {
      ...base.train,
      batchSize: options.batchSize,
      iters: options.steps,
      lr: options.lr ?? base.train.lr,
      warmup: { iters: Math.max(1, Math.ceil(options.steps / 5)), factor: 0.01 },
      milestones: [Math.ceil(options.steps * 0.85)],
      shortSide: options.size,
      maxSize: options.size,
    },
    data: {
      kind: "shapes",
      train: options.trainImages,
      val: options.valImages,
      size: options.size,
      seed: options.seed,
    },
  };
}

/**
 * Runs the demo: WebGPU backend, generated data, `options.steps` steps, then detections.
 *
 * @example
 * ```ts ignore
 * const result = await runDemo({ ...DEMO_DEFAULTS, steps: 20 }, { status: console.log });
 * console.log(result.losses.at(-1), result.stepsPerSecond);
 * ```
 */
export async function runDemo(options: DemoOptions, view: DemoView = {}): Promise<DemoResult> {
  const say = view.status ?? (() => {});
  const config = demoConfig(options);
  const settings = config.train;
  say("Starting WebGPU…");
  const backend = await initBackend("webgpu");
  say(`Generating ${options.trainImages} + ${options.valImages} images…`);
  const trainSplit = generateShapes({
    numImages: options.trainImages,
    seed: options.seed,
    size: options.size,
  });
  const valSplit = generateShapes({
    numImages: options.valImages,
    seed: options.seed + 1,
    size: options.size,
    firstImageId: options.trainImages + 1,
  });
  const model = buildDetector(config.model, { seed: options.seed, backend });
  const { optimizer, schedule } = trainingOptimizer(model, settings);
  const loader = new DetectionLoader(memorySource(trainSplit), {
    batchSize: settings.batchSize,
    seed: options.seed,
    dropLast: true,
    transform: { shortSide: options.size, maxSize: options.size, flipProb: settings.flipProb },
  });
  const losses: number[] = [];
  let step = 0;
  let trainMs = 0, firstMs = 0;
  say("Training…");
  for (let epoch = 0; step < options.steps; epoch++) {
    for await (const batch of loader.epoch(epoch)) {
      const started = performance.now();
      optimizer.lr = settings.lr * schedule(step);
      const logged = await trainStep(model, batch, optimizer);
      const loss = (await logged.values.data())[0];
      logged.values.dispose();
      if (step === 0) firstMs = performance.now() - started;
      else trainMs += performance.now() - started;
      step++;
      if (!Number.isFinite(loss)) throw new RangeError(`The loss is ${loss} at step ${step}`);
      losses.push(loss);
      const rate = step > 1 ? `${((step - 1) / (trainMs / 1000)).toFixed(2)} steps/s` : "compiling";
      say(`Step ${step}/${options.steps}: loss ${loss.toFixed(4)}, ${rate}`);
      view.chart?.(lossChart(losses));
      if (step >= options.steps) break;
    }
  }
  loader.close();
  say("Detecting on held-out images…");
  const valLoader = new DetectionLoader(memorySource(valSplit), {
    batchSize: settings.batchSize,
    seed: options.seed,
    transform: { shortSide: options.size, maxSize: options.size, flipProb: 0 },
  });
  const detections = await detectAll(model, valLoader, valSplit.dataset);
  valLoader.close();
  const stats = evaluateCoco(valSplit.dataset, detections).stats;
  let drawn = 0;
  if (view.canvas) drawn = drawDetections(view.canvas, valSplit, detections);
  const result: DemoResult = {
    backend: backend.description,
    losses,
    firstStepSeconds: firstMs / 1000,
    stepsPerSecond: step > 1 ? (step - 1) / (trainMs / 1000) : NaN,
    drawn,
    ap: stats[0],
    ap50: stats[1],
  };
  say(
    `Done: ${step} steps (the first ${result.firstStepSeconds.toFixed(1)} s, then ${
      result.stepsPerSecond.toFixed(2)
    } steps/s); loss ${losses[0].toFixed(3)} → ${losses.at(-1)!.toFixed(3)}; held-out AP ${
      result.ap.toFixed(3)
    }, AP50 ${result.ap50.toFixed(3)}`,
  );
  return result;
}

/** The loss curve (raw and a running mean) as SVG text. */
function lossChart(losses: readonly number[]): string {
  const mean: [number, number][] = [];
  let acc = 0;
  losses.forEach((v, i) => {
    acc += v;
    if (i >= 10) acc -= losses[i - 10];
    mean.push([i + 1, acc / Math.min(i + 1, 10)]);
  });
  return lineChartSvg([
    { name: "loss", points: losses.map((v, i) => [i + 1, v]), opacity: 0.4 },
    { name: "mean of 10", points: mean },
  ], { title: "Training loss", xLabel: "step", yLabel: "loss", width: 560, height: 320 });
}

/**
 * Which detections of an image are drawn: those scoring at least `relative` times the image's
 * best, `max` at most. Relative, because ranking losses order scores without calibrating them:
 * after a short run the best scores are far below a usual cut-off such as 0.3.
 */
export const DRAW_RULE = { relative: 0.5, max: 8 } as const;

/** Draws each held-out image, 3× larger, with its detections ({@linkcode DRAW_RULE}) in a grid. */
function drawDetections(
  canvas: DemoCanvas,
  split: ReturnType<typeof generateShapes>,
  detections: Awaited<ReturnType<typeof detectAll>>,
): number {
  const factor = 3, columns = 4;
  const tiles = split.images.map((image, i) => {
    const id = split.dataset.images[i].id;
    const own = detections.filter((d) => d.image_id === id && d.bbox)
      .sort((a, b) => b.score - a.score);
    const cut = DRAW_RULE.relative * (own[0]?.score ?? 0);
    const boxes: DrawnBox[] = own.filter((d) => d.score >= cut).slice(0, DRAW_RULE.max)
      .map((d) => ({
        box: xywhToXyxyScaled(d.bbox!, factor),
        classId: d.category_id - 1,
        score: d.score,
      }));
    return {
      count: boxes.length,
      image: drawBoxes(upscale(image, factor), boxes, {
        captions: true,
        classNames: SHAPE_CLASSES,
      }),
    };
  });
  const w = tiles[0].image.width, h = tiles[0].image.height, gap = 8;
  const rows = Math.ceil(tiles.length / columns);
  canvas.width = Math.min(columns, tiles.length) * (w + gap) - gap;
  canvas.height = rows * (h + gap) - gap;
  const context = canvas.getContext("2d");
  if (!context) throw new TypeError("The canvas has no 2-D context");
  tiles.forEach(({ image }, i) => {
    const rgba = new Uint8ClampedArray(image.width * image.height * 4);
    const c = image.channels;
    for (let p = 0; p < image.width * image.height; p++) {
      rgba.set(image.data.subarray(p * c, p * c + 3), p * 4);
      rgba[p * 4 + 3] = 255;
    }
    const x = (i % columns) * (w + gap), y = Math.floor(i / columns) * (h + gap);
    context.putImageData(new ImageData(rgba, image.width, image.height), x, y);
  });
  return tiles.reduce((n, t) => n + t.count, 0);
}

/** A COCO `[x, y, w, h]` box as `[x1, y1, x2, y2]`, times `factor`. */
function xywhToXyxyScaled(
  [x, y, w, h]: readonly number[],
  factor: number,
): [number, number, number, number] {
  return [x * factor, y * factor, (x + w) * factor, (y + h) * factor];
}
