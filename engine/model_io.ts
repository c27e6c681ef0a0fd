/**
 * Building a detector from a checkpoint: its metadata holds the whole resolved
 * config (JSON; older checkpoints only name it), the detector kind and the
 * loss it was trained with, and loading validates every tensor. The
 * final checkpoint of a run also carries each class's name and its
 * oLRP-optimal score threshold (see {@linkcode storeScoreThresholds}).
 *
 * @module
 */

import type { DetectorConfig } from "../configs/types.ts";
import { buildDetector } from "../detectors/build.ts";
import type { Detector } from "../detectors/detector.ts";
import type { Backend } from "../tensor/backend.ts";
import { encodeSafetensors, loadCheckpoint, loadSafetensors } from "../tensor/safetensors.ts";
import { applyOverrides, loadConfig } from "./config.ts";
import { writeFileAtomic } from "./files.ts";

/**
 * Metadata key of the per-class score thresholds: a JSON array in label
 * order (label `k` is the `k`-th category by ascending id), a number or
 * `null` (no threshold) per class.
 */
export const SCORE_THRESHOLDS_KEY = "score_thresholds";
/** Metadata key of the class names: a JSON array of strings in label order. */
export const CLASS_NAMES_KEY = "class_names";
/** Metadata key saying where the thresholds come from (free text). */
export const SCORE_THRESHOLDS_FROM_KEY = "score_thresholds_from";
/**
 * Metadata key of the detector kind (`atss`, ...). Checkpoints written before
 * it existed have none and load into the kind their config names.
 */
export const DETECTOR_KIND_KEY = "detector";
/**
 * Metadata key of the whole resolved config (overrides applied) as JSON: the
 * model is built from it, so a checkpoint loads without its config file.
 * Checkpoints written before it existed have only `config`, the name.
 */
export const CONFIG_JSON_KEY = "config_json";

/**
 * The dotted path of the first field where `a` and `b` differ (`""` for the
 * values themselves), or `undefined` when they are equal as JSON values.
 *
 * @example
 * ```ts
 * import { firstDifference } from "./model_io.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(firstDifference({ m: { n: 1, k: [1, 2] } }, { m: { n: 2, k: [1, 2] } }), "m.n");
 * assert.equal(firstDifference({ k: [1, 2] }, { k: [1, 3] }), "k.1");
 * assert.equal(firstDifference({ a: 1 }, { a: 1 }), undefined);
 * ```
 *
 * @param a A JSON value.
 * @param b Another.
 * @returns The path, or `undefined`.
 */
export function firstDifference(a: unknown, b: unknown, path = ""): string | undefined {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null;
  if (!isObject(a) || !isObject(b) || Array.isArray(a) !== Array.isArray(b)) {
    return a === b ? undefined : path;
  }
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  for (const key of keys) {
    const found = firstDifference(a[key], b[key], path ? `${path}.${key}` : key);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * The resolved config a checkpoint stores (see {@linkcode CONFIG_JSON_KEY}),
 * or `undefined` for a checkpoint that only names its config.
 *
 * @param metadata A checkpoint's `__metadata__`.
 * @param path The checkpoint, for messages.
 * @throws {SyntaxError} When the value is not JSON.
 * @throws {TypeError} When it is not a config.
 */
export function storedConfigOf(
  metadata: Record<string, string>,
  path = "<memory>",
): DetectorConfig | undefined {
  if (metadata[CONFIG_JSON_KEY] === undefined) return undefined;
  const config = parseMetadataJson(metadata, CONFIG_JSON_KEY, path) as DetectorConfig;
  if (!config || typeof config !== "object" || !config.model || !config.train || !config.data) {
    throw new TypeError(`Checkpoint "${path}": "${CONFIG_JSON_KEY}" is not a config`);
  }
  return config;
}

/**
 * Refuses `given` (a config named on the command line) when it disagrees with
 * `stored` (the checkpoint's) in what decides the model and its data: every
 * field except the name and the training-only ones that `deno task train`
 * overrides (`train.*` but `shortSide` and `maxSize`, `model.loss`,
 * `model.backbone.pretrained`).
 *
 * @example
 * ```ts
 * import { checkConfigMatches } from "./model_io.ts";
 * import ATSS_TINY_SHAPES from "../configs/atss_tiny_shapes.ts";
 * import assert from "node:assert/strict";
 *
 * const other = structuredClone(ATSS_TINY_SHAPES);
 * other.train.iters = 5;
 * checkConfigMatches(ATSS_TINY_SHAPES, other, "a.safetensors");
 * other.model.numClasses += 1;
 * assert.throws(
 *   () => checkConfigMatches(ATSS_TINY_SHAPES, other, "a.safetensors"),
 *   /in model\.numClasses/,
 * );
 * ```
 *
 * @param stored The checkpoint's config.
 * @param given The config given with `--config`.
 * @param path The checkpoint, for messages.
 * @throws {TypeError} Naming the first differing field.
 */
export function checkConfigMatches(
  stored: DetectorConfig,
  given: DetectorConfig,
  path: string,
): void {
  const relevant = (c: DetectorConfig) => ({
    model: {
      ...c.model,
      loss: undefined,
      backbone: { ...c.model.backbone, pretrained: undefined },
    },
    data: c.data,
    train: { shortSide: c.train.shortSide, maxSize: c.train.maxSize },
  });
  const field = firstDifference(
    JSON.parse(JSON.stringify(relevant(stored))),
    JSON.parse(JSON.stringify(relevant(given))),
  );
  if (field !== undefined) {
    throw new TypeError(
      `Checkpoint "${path}" (config "${stored.name}") differs from config "${given.name}" in ${field}`,
    );
  }
}

/**
 * Refuses a checkpoint whose metadata names another detector kind than
 * `config` builds; a checkpoint naming none (written before kinds) passes.
 *
 * @example
 * ```ts
 * import { checkDetectorKind } from "./model_io.ts";
 * import ATSS_TINY_SHAPES from "../configs/atss_tiny_shapes.ts";
 * import assert from "node:assert/strict";
 *
 * checkDetectorKind({ detector: "atss" }, ATSS_TINY_SHAPES, "a.safetensors");
 * checkDetectorKind({}, ATSS_TINY_SHAPES, "old.safetensors");
 * assert.throws(
 *   () => checkDetectorKind({ detector: "faster_rcnn" }, ATSS_TINY_SHAPES, "b.safetensors"),
 *   /holds a "faster_rcnn" detector/,
 * );
 * ```
 *
 * @param metadata A checkpoint's `__metadata__`.
 * @param config The config it is loaded into.
 * @param path The checkpoint, for messages.
 * @throws {TypeError} When the kinds differ.
 */
export function checkDetectorKind(
  metadata: Record<string, string>,
  config: DetectorConfig,
  path: string,
): void {
  const kind = metadata[DETECTOR_KIND_KEY];
  if (kind !== undefined && kind !== config.model.kind) {
    throw new TypeError(
      `Checkpoint "${path}" holds a "${kind}" detector, but config "${config.name}" builds "${config.model.kind}"`,
    );
  }
}

/** A model restored from a checkpoint, with its configuration. */
export interface RestoredModel {
  /** The model, in evaluation mode. */
  model: Detector;
  /** Its configuration. */
  config: DetectorConfig;
  /** The checkpoint's metadata (`step`, `seed`, `config`, `loss`, ...). */
  metadata: Record<string, string>;
  /** Score threshold per class (label order; `null`: none), when the checkpoint stores them. */
  scoreThresholds?: (number | null)[];
  /** Class names in label order, when the checkpoint stores them. */
  classNames?: string[];
}

/**
 * Loads `path`, a checkpoint written by `deno task train`, into a model of
 * the config it stores. `configName` (a name or a `.ts` file), when given,
 * must agree with it (see {@linkcode checkConfigMatches}). A checkpoint that
 * only names its config (written before {@linkcode CONFIG_JSON_KEY}) loads
 * that config, or `configName`, which must then have the same name.
 */
export async function loadModel(
  path: string,
  backend: Backend,
  configName?: string,
): Promise<RestoredModel> {
  const { metadata } = await loadSafetensors(path);
  const name = metadata.config;
  if (!name) throw new TypeError(`Checkpoint "${path}" names no config in its metadata`);
  const stored = storedConfigOf(metadata, path);
  let config: DetectorConfig;
  if (stored) {
    if (configName) {
      const wanted = await loadConfig(configName);
      checkDetectorKind(metadata, wanted, path);
      checkConfigMatches(stored, wanted, path);
    }
    config = stored;
  } else {
    if (configName && configName !== name && !configName.endsWith(".ts")) {
      throw new TypeError(`Checkpoint "${path}" is from config "${name}", not "${configName}"`);
    }
    config = applyOverrides(await loadConfig(configName ?? name), { loss: metadata.loss });
    if (config.name !== name) {
      throw new TypeError(`Checkpoint "${path}" is from config "${name}", not "${config.name}"`);
    }
  }
  checkDetectorKind(metadata, config, path);
  const model = buildDetector(config.model, { seed: Number(metadata.seed ?? 0), backend });
  await loadCheckpoint(path, { model });
  model.eval();
  const n = config.model.numClasses;
  return {
    model,
    config,
    metadata,
    scoreThresholds: scoreThresholdsOf(metadata, n, path),
    classNames: classNamesOf(metadata, n, path),
  };
}

function parseMetadataJson(metadata: Record<string, string>, key: string, path: string): unknown {
  try {
    return JSON.parse(metadata[key]);
  } catch (error) {
    throw new SyntaxError(
      `Cannot read "${key}" of checkpoint "${path}": ${(error as Error).message}`,
    );
  }
}

/**
 * The per-class score thresholds stored in checkpoint metadata, validated.
 *
 * @example
 * ```ts
 * import { scoreThresholdsOf } from "./model_io.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(scoreThresholdsOf({ score_thresholds: "[0.25,null]" }, 2), [0.25, null]);
 * assert.equal(scoreThresholdsOf({}, 2), undefined);
 * assert.throws(() => scoreThresholdsOf({ score_thresholds: "[0.25]" }, 2), RangeError);
 * ```
 *
 * @param metadata A checkpoint's `__metadata__`.
 * @param numClasses Classes of the model.
 * @param path The checkpoint, for messages.
 * @returns One number in `[0, 1]` or `null` per class, or `undefined` when none are stored.
 * @throws {SyntaxError} When the value is not JSON.
 * @throws {RangeError} When it is not an array of `numClasses` numbers in `[0, 1]` or nulls.
 */
export function scoreThresholdsOf(
  metadata: Record<string, string>,
  numClasses: number,
  path = "<memory>",
): (number | null)[] | undefined {
  if (metadata[SCORE_THRESHOLDS_KEY] === undefined) return undefined;
  const value = parseMetadataJson(metadata, SCORE_THRESHOLDS_KEY, path);
  if (
    !Array.isArray(value) || value.length !== numClasses ||
    !value.every((t) => t === null || (typeof t === "number" && t >= 0 && t <= 1))
  ) {
    throw new RangeError(
      `Checkpoint "${path}": "${SCORE_THRESHOLDS_KEY}" is not ${numClasses} numbers in [0, 1] or nulls`,
    );
  }
  return value;
}

/**
 * The class names stored in checkpoint metadata, validated.
 *
 * @param metadata A checkpoint's `__metadata__`.
 * @param numClasses Classes of the model.
 * @param path The checkpoint, for messages.
 * @returns `numClasses` names, or `undefined` when none are stored.
 * @throws {SyntaxError} When the value is not JSON.
 * @throws {RangeError} When it is not an array of `numClasses` strings.
 */
export function classNamesOf(
  metadata: Record<string, string>,
  numClasses: number,
  path = "<memory>",
): string[] | undefined {
  if (metadata[CLASS_NAMES_KEY] === undefined) return undefined;
  const value = parseMetadataJson(metadata, CLASS_NAMES_KEY, path);
  if (
    !Array.isArray(value) || value.length !== numClasses ||
    !value.every((t) => typeof t === "string")
  ) {
    throw new RangeError(`Checkpoint "${path}": "${CLASS_NAMES_KEY}" is not ${numClasses} strings`);
  }
  return value;
}

/**
 * Adds (or replaces) entries of a safetensors file's `__metadata__`, keeping
 * its tensors and other entries; the file is rewritten atomically.
 *
 * @param path A safetensors file.
 * @param entries Metadata to set.
 */
export async function updateCheckpointMetadata(
  path: string,
  entries: Readonly<Record<string, string>>,
): Promise<void> {
  const file = await loadSafetensors(path);
  await writeFileAtomic(path, encodeSafetensors(file.tensors, { ...file.metadata, ...entries }));
}

/**
 * Stores per-class score thresholds and class names in a checkpoint's
 * metadata (atomically; see {@linkcode SCORE_THRESHOLDS_KEY}), where
 * `deno task detect` reads them.
 *
 * @example
 * ```ts ignore
 * await storeScoreThresholds("runs/a/model_final.safetensors", [0.31, null], ["cat", "dog"],
 *   "oLRP-optimal on the val split (tau 0.5)");
 * ```
 *
 * @param path A checkpoint.
 * @param thresholds One threshold in `[0, 1]` or `null` per class, in label order.
 * @param classNames One name per class, in label order.
 * @param from Where the thresholds come from, for people reading the metadata.
 * @throws {RangeError} When the lengths differ or a threshold is outside `[0, 1]`.
 */
export async function storeScoreThresholds(
  path: string,
  thresholds: readonly (number | null)[],
  classNames: readonly string[],
  from: string,
): Promise<void> {
  if (thresholds.length !== classNames.length) {
    throw new RangeError(
      `Cannot store ${thresholds.length} score thresholds for ${classNames.length} classes`,
    );
  }
  thresholds.forEach((t, k) => {
    if (t !== null && !(t >= 0 && t <= 1)) {
      throw new RangeError(`Score threshold ${t} of class ${k} is outside [0, 1]`);
    }
  });
  await updateCheckpointMetadata(path, {
    [SCORE_THRESHOLDS_KEY]: JSON.stringify(thresholds),
    [CLASS_NAMES_KEY]: JSON.stringify(classNames),
    [SCORE_THRESHOLDS_FROM_KEY]: from,
  });
}
