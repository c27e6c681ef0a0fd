/**
 * `deno task train`: trains a detector from a typed config (by default ATSS
 * with BRS on the built-in synthetic data, generated in memory), with a
 * progress line, `metrics.jsonl`, an SVG of the loss curves, atomic
 * safetensors checkpoints, `--resume`, and a COCO/LRP evaluation at the end
 * whose per-class oLRP-optimal score thresholds are stored in the final
 * checkpoint, where `deno task detect` reads them.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { CocoIndex } from "../data/coco.ts";
import { DetectionLoader } from "../data/loader.ts";
import type { DetectorConfig } from "../configs/types.ts";
import { Atss } from "../detectors/atss.ts";
import { backward } from "../tensor/autograd.ts";
import type { Backend, BackendName } from "../tensor/backend.ts";
import { initBackend } from "../tensor/device.ts";
import { stack } from "../tensor/ops/concat.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { SGD } from "../tensor/optim/sgd.ts";
import { composeSchedules, linearWarmup, multiStepSchedule } from "../tensor/optim/schedules.ts";
import { loadCheckpoint, saveCheckpoint } from "../tensor/safetensors.ts";
import { tidy } from "../tensor/tensor.ts";
import { applyOverrides, loadConfig } from "./config.ts";
import { loadSplits } from "./data_splits.ts";
import { classNames, detectAll, lrpScoreThresholds, scoreDetections } from "./evaluate_model.ts";
import { ensureDir, writeFileAtomic } from "../engine/files.ts";
import { MetricsWriter, readMetrics } from "../engine/metrics.ts";
import { storeScoreThresholds } from "./model_io.ts";
import { Progress } from "../engine/progress.ts";
import { lossCurvesSvg } from "../engine/svg_chart.ts";
import { parseFlags, positiveInt } from "./args.ts";

/** Usage text of `deno task train`. */
export const TRAIN_USAGE = `Usage: deno task train [options]

Trains a detector. With no options: ATSS with BRS on the built-in synthetic
shapes data (generated in memory), then a COCO/LRP evaluation on its val split.
The run folder gets checkpoint.safetensors (to resume) and, after the evaluation,
model_final.safetensors with each class's oLRP-optimal score threshold in its
metadata (deno task detect draws the detections at or above them), and eval.json.

Options:
  --config NAME|FILE   configs/NAME.ts or a .ts file exporting a config (default atss_tiny_shapes)
  --loss NAME          brs | rs | bap | ap | focal (default: the config's)
  --data DIR           a COCO-format dataset: DIR/annotations/instances_{train,val}.json, DIR/{train,val}/
  --iters N            training steps (milestones scale with it)
  --batch N            images per batch
  --seed N             weights, shuffling and augmentation seed (default 0)
  --out DIR            run folder (default runs/<config>_<loss>_seed<seed>)
  --resume             continue from DIR's last checkpoint (same result as an uninterrupted run)
  --no-eval            skip the final evaluation
  --backend NAME       webgpu | native | cpu (default: chosen by the machine)
  --log-every N        read back and log losses every N steps
  -h, --help           this text
`;

/** What a training run needs. */
export interface TrainOptions {
  /** The configuration (overrides already applied). */
  config: DetectorConfig;
  /** Seed of weights, order and augmentation. */
  seed: number;
  /** Run folder. */
  out: string;
  /** Continue from the run folder's checkpoint. */
  resume?: boolean;
  /** A COCO-format dataset folder instead of the config's data. */
  dataDir?: string;
  /** Backend (default: the default device). */
  backend?: Backend;
  /** Evaluate on the val split at the end (default true). */
  evaluate?: boolean;
  /** Stop after this step (to test resuming); the run is left resumable. */
  stopAfter?: number;
  /** Where progress goes (default stderr). */
  write?: (text: string) => void;
}

/** What a training run produced. */
export interface TrainResult {
  /** The trained model. */
  model: Atss;
  /** Step reached. */
  step: number;
  /**
   * COCO stats (12 numbers), oLRP and each class's oLRP-optimal score
   * threshold (label order, `null`: none) on the val split, when evaluated.
   */
  eval?: {
    stats: number[];
    oLRP: number;
    summary: string;
    scoreThresholds: (number | null)[];
    classNames: string[];
  };
  /** Seconds spent in training steps. */
  trainSeconds: number;
}

const CHECKPOINT = "checkpoint.safetensors";
const FINAL = "model_final.safetensors";

/**
 * Trains `options.config` and returns the model (and its evaluation).
 *
 * @example Ten steps of the default config
 * ```ts ignore
 * import { train } from "./train.ts";
 * import ATSS_TINY_SHAPES from "../configs/atss_tiny_shapes.ts";
 * const { step } = await train({ config: ATSS_TINY_SHAPES, seed: 0, out: "runs/demo", evaluate: false });
 * ```
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const { config, seed, out } = options;
  const settings = config.train;
  const write = options.write ??
    ((text: string) => Deno.stderr.writeSync(new TextEncoder().encode(text)));
  await ensureDir(out);
  const splits = await loadSplits(config, options.dataDir);
  const model = new Atss(config.model, { seed, backend: options.backend });
  const params = model.namedParameters().filter(([, p]) => p.requiresGrad);
  const optimizer = new SGD(params, {
    lr: settings.lr,
    momentum: settings.momentum,
    weightDecay: settings.weightDecay,
    maxGradNorm: settings.maxGradNorm,
  });
  const schedule = composeSchedules(
    linearWarmup(settings.warmup.iters, settings.warmup.factor),
    multiStepSchedule(settings.milestones, settings.gamma),
  );
  let step = 0;
  const checkpointPath = join(out, CHECKPOINT);
  if (options.resume) {
    try {
      const meta = await loadCheckpoint(checkpointPath, { model, optimizer });
      if (meta.config !== config.name || meta.loss !== config.model.loss) {
        throw new TypeError(
          `Checkpoint "${checkpointPath}" is from config "${meta.config}" (${meta.loss}), not "${config.name}" (${config.model.loss})`,
        );
      }
      step = Number(meta.step);
      write(`brl: resuming from step ${step} (${checkpointPath})\n`);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      write(`brl: no checkpoint in ${out}; starting from step 0\n`);
    }
  }
  const metrics = await MetricsWriter.open(join(out, "metrics.jsonl"), { resumeStep: step });
  const loader = new DetectionLoader(splits.train, {
    batchSize: settings.batchSize,
    seed,
    dropLast: true,
    transform: {
      shortSide: settings.shortSide,
      maxSize: settings.maxSize,
      flipProb: settings.flipProb,
    },
  });
  const perEpoch = loader.length;
  if (perEpoch === 0) throw new RangeError(`The training split has fewer images than one batch`);
  const stopAt = Math.min(settings.iters, options.stopAfter ?? Infinity);
  const progress = new Progress({
    total: settings.iters,
    label: `${config.name} ${config.model.loss}`,
    logEvery: settings.logEvery,
    startStep: step,
    write,
  });
  const started = performance.now();
  const saveState = async () => {
    await saveCheckpoint(checkpointPath, {
      model,
      optimizer,
      metadata: { step, seed, config: config.name, loss: config.model.loss },
    });
    const records = await readMetrics(join(out, "metrics.jsonl"));
    await writeFileAtomic(
      join(out, "loss_curves.svg"),
      lossCurvesSvg(records, [
        "loss",
        ...Object.keys(records.at(-1) ?? {}).filter((k) => k.startsWith("loss_")),
      ], {
        smooth: 5,
      }),
    );
  };
  try {
    while (step < stopAt) {
      const epoch = Math.floor(step / perEpoch);
      for await (const batch of loader.epoch(epoch, step % perEpoch)) {
        optimizer.lr = settings.lr * schedule(step);
        const logged = tidy(() => {
          const losses = model.loss(batch);
          backward(losses.total);
          optimizer.step();
          optimizer.zeroGrad();
          const names = Object.keys(losses.parts);
          return {
            names,
            values: stack([
              reshape(losses.total, [1]),
              ...names.map((n) => reshape(losses.parts[n], [1])),
            ]),
            positives: losses.numPositives,
          };
        });
        step++;
        if (step % settings.logEvery === 0 || step === stopAt) {
          const values = await logged.values.data();
          const fields: Record<string, number> = { loss: values[0] };
          logged.names.forEach((n, k) => (fields[`loss_${n}`] = values[k + 1]));
          fields.lr = optimizer.lr;
          fields.positives = logged.positives;
          await metrics.append(step, fields);
          progress.update(step, { loss: values[0], lr: optimizer.lr });
        } else {
          progress.update(step);
        }
        logged.values.dispose();
        if (step % settings.checkpointEvery === 0 || step === stopAt) await saveState();
        if (step >= stopAt) break;
      }
    }
  } finally {
    loader.close();
    await metrics.close();
  }
  const trainSeconds = (performance.now() - started) / 1000;
  progress.done();
  const result: TrainResult = { model, step, trainSeconds };
  if (step >= settings.iters && options.evaluate !== false) {
    const finalPath = join(out, FINAL);
    await writeFileAtomic(finalPath, await Deno.readFile(checkpointPath));
    const valLoader = new DetectionLoader(splits.val, {
      batchSize: settings.batchSize,
      seed,
      shuffle: false,
      transform: { shortSide: settings.shortSide, maxSize: settings.maxSize, flipProb: 0 },
    });
    try {
      const detections = await detectAll(model, valLoader, splits.valDataset);
      await writeFileAtomic(join(out, "val_detections.json"), JSON.stringify(detections));
      const { coco, lrp } = scoreDetections(splits.valDataset, detections);
      // Each class's oLRP-optimal score threshold goes with the final model, for `detect`.
      const thresholds = lrpScoreThresholds(splits.valDataset, lrp);
      const names = classNames(splits.valDataset);
      await storeScoreThresholds(
        finalPath,
        thresholds,
        names,
        `oLRP-optimal on the val split (tau ${lrp.tau}, ${splits.valDataset.images.length} images, step ${step})`,
      );
      const ids = new CocoIndex(splits.valDataset).categoryIds;
      const perClass = names.map((name, k) => ({
        categoryId: ids[k],
        name,
        oLRP: lrp.perCategory.find((c) => c.categoryId === ids[k])?.oLRP[0] ?? -1,
        scoreThreshold: thresholds[k],
      }));
      result.eval = {
        stats: coco.stats,
        oLRP: lrp.oLRP,
        summary: coco.summary,
        scoreThresholds: thresholds,
        classNames: names,
      };
      await writeFileAtomic(
        join(out, "eval.json"),
        JSON.stringify(
          {
            stats: coco.stats,
            oLRP: lrp.oLRP,
            oLRPLoc: lrp.oLRPLoc,
            oLRPFP: lrp.oLRPFP,
            oLRPFN: lrp.oLRPFN,
            perClass,
            trainSeconds,
          },
          null,
          2,
        ),
      );
    } finally {
      valLoader.close();
    }
  }
  return result;
}

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
    const seed = positiveInt("seed", v.seed) ?? 0;
    const config = applyOverrides(await loadConfig(v.config!), {
      loss: v.loss,
      iters: positiveInt("iters", v.iters),
      batch: positiveInt("batch", v.batch),
    });
    const logEvery = positiveInt("log-every", v["log-every"]);
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
        `oLRP-optimal score thresholds (stored in ${join(out, FINAL)}): ` +
          classNames.map((n, k) => `${n} ${scoreThresholds[k]?.toFixed(3) ?? "none"}`).join(", "),
      );
    }
    return 0;
  } catch (error) {
    console.error(`brl train: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
