/**
 * The training loop every detector's runs go through: {@linkcode train}
 * builds the model and its optimizer from a typed config, steps through the
 * data with a learning-rate schedule, logs to `metrics.jsonl` and a progress
 * line, draws the loss curves, saves atomic safetensors checkpoints (resumable:
 * a resumed run gives the same model as an uninterrupted one) and ends with a
 * COCO/LRP evaluation on the val split (see `evaluate_run.ts`).
 * `deno task train` parses its flags and calls it.
 *
 * @module
 */

import { joinPath } from "../data/path.ts";
import { DetectionLoader } from "../data/loader.ts";
import type { DetectorConfig } from "../configs/types.ts";
import { buildDetector } from "../detectors/build.ts";
import { loadBackbonePretrained } from "./pretrained.ts";
import type { Detector } from "../detectors/detector.ts";
import type { Backend } from "../tensor/backend.ts";
import { loadCheckpoint, saveCheckpoint } from "../tensor/safetensors.ts";
import { loadSplits } from "./data_splits.ts";
import { checkDetectorKind, CONFIG_JSON_KEY, DETECTOR_KIND_KEY } from "./model_io.ts";
import { evaluateRun, type RunEvaluation } from "./evaluate_run.ts";
import { ensureDir, writeFileAtomic } from "./files.ts";
import { MetricsWriter, readMetrics } from "./metrics.ts";
import { Progress, writeStderr } from "./progress.ts";
import { lossCurvesSvg } from "./svg_chart.ts";
import { trainingOptimizer, trainStep } from "./train_step.ts";

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
  /**
   * A dataset folder instead of the config's data: COCO-format, or a Cityscapes folder when the
   * config's `data.kind` is `"cityscapes"`.
   */
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
  model: Detector;
  /** Step reached. */
  step: number;
  /**
   * COCO stats (12 numbers), oLRP and each class's oLRP-optimal score
   * threshold (label order, `null`: none) on the val split, when evaluated.
   */
  eval?: RunEvaluation;
  /** Seconds spent in training steps. */
  trainSeconds: number;
}

/** File name of a run's resumable checkpoint, in its run folder. */
export const CHECKPOINT_FILE = "checkpoint.safetensors";
/** File name of a run's final model (with its score thresholds), in its run folder. */
export const FINAL_CHECKPOINT_FILE = "model_final.safetensors";

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
  const write = options.write ?? writeStderr;
  await ensureDir(out);
  const splits = await loadSplits(config, options.dataDir);
  const model = buildDetector(config.model, { seed, backend: options.backend });
  const { optimizer, schedule } = trainingOptimizer(model, settings);
  let step = 0;
  let resumed = false;
  const checkpointPath = joinPath(out, CHECKPOINT_FILE);
  if (options.resume) {
    try {
      const meta = await loadCheckpoint(checkpointPath, { model, optimizer });
      checkDetectorKind(meta, config, checkpointPath);
      if (meta.config !== config.name || meta.loss !== config.model.loss) {
        throw new TypeError(
          `Checkpoint "${checkpointPath}" is from config "${meta.config}" (${meta.loss}), not "${config.name}" (${config.model.loss})`,
        );
      }
      step = Number(meta.step);
      resumed = true;
      write(`brl: resuming from step ${step} (${checkpointPath})\n`);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      write(`brl: no checkpoint in ${out}; starting from step 0\n`);
    }
  }
  const pretrained = config.model.backbone.pretrained;
  if (pretrained && !resumed) {
    const report = await loadBackbonePretrained(model, pretrained);
    write(`brl: backbone weights from ${pretrained} (${report.loaded.length} tensors)\n`);
  }
  const metrics = await MetricsWriter.open(joinPath(out, "metrics.jsonl"), { resumeStep: step });
  const loader = new DetectionLoader(splits.train, {
    batchSize: settings.batchSize,
    seed,
    dropLast: true,
    withMasks: model.usesMasks ?? false,
    repeatThreshold: config.data.repeatThreshold,
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
      metadata: {
        step,
        seed,
        config: config.name,
        [CONFIG_JSON_KEY]: JSON.stringify(config),
        [DETECTOR_KIND_KEY]: config.model.kind,
        loss: config.model.loss,
      },
    });
    const records = await readMetrics(joinPath(out, "metrics.jsonl"));
    await writeFileAtomic(
      joinPath(out, "loss_curves.svg"),
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
        const logged = await trainStep(model, batch, optimizer);
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
    const finalPath = joinPath(out, FINAL_CHECKPOINT_FILE);
    await writeFileAtomic(finalPath, await Deno.readFile(checkpointPath));
    result.eval = await evaluateRun(model, {
      config,
      splits,
      seed,
      step,
      trainSeconds,
      out,
      finalPath,
    });
  }
  return result;
}
