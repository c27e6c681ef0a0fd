/**
 * Finding a configuration by name (`configs/NAME.ts`) or by file path, and
 * applying command-line overrides.
 *
 * @module
 */

import { DETECTOR_LOSSES } from "../detectors/build.ts";
import type { DetectorConfig } from "../configs/types.ts";

/**
 * The configuration `nameOrPath`: a name in `configs/` or a `.ts` file exporting one as default.
 *
 * @throws {TypeError} When the module does not load, has no default export of a config, or a
 *   field it checks (see {@linkcode checkConfig}) has the wrong type or value.
 */
export async function loadConfig(nameOrPath: string): Promise<DetectorConfig> {
  const isPath = nameOrPath.endsWith(".ts") || nameOrPath.includes("/");
  const url = isPath
    ? new URL(nameOrPath, `file://${Deno.cwd()}/`).href
    : new URL(`../configs/${nameOrPath}.ts`, import.meta.url).href;
  let module: { default?: DetectorConfig };
  try {
    module = await import(url);
  } catch (error) {
    // A parse error's message is the reason, the offending source lines and "at URL:LINE:COL".
    const lines = (error as Error).message.split("\n");
    const at = lines.find((line) => /^\s*at \S+:\d+:\d+$/.test(line))?.trim();
    throw new TypeError(`Cannot load config "${nameOrPath}": ${lines[0]}${at ? ` (${at})` : ""}`);
  }
  const config = module.default;
  if (!config || typeof config !== "object" || !config.model || !config.train) {
    throw new TypeError(`Config "${nameOrPath}" has no default export of a DetectorConfig`);
  }
  checkConfig(config, nameOrPath);
  return config;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** A value as messages show it: numbers as written (NaN too), else JSON; `missing` for undefined. */
function show(value: unknown): string {
  if (value === undefined) return "missing";
  if (typeof value === "number") return String(value);
  return JSON.stringify(value) ?? String(value);
}

/**
 * Checks the parts of a configuration that every detector kind shares: `name`; `model.kind`,
 * `model.loss` (one of the kind's), `model.numClasses` and `model.backbone`; every `train`
 * setting; and `data`. Extra keys are allowed; the rest of `model` is the builder's to check.
 *
 * @example
 * ```ts
 * import { checkConfig } from "./config.ts";
 * import ATSS_TINY_SHAPES from "../configs/atss_tiny_shapes.ts";
 * import assert from "node:assert/strict";
 *
 * checkConfig(ATSS_TINY_SHAPES, "atss_tiny_shapes");
 * const bad = { ...ATSS_TINY_SHAPES, train: { ...ATSS_TINY_SHAPES.train, iters: "100" } };
 * assert.throws(
 *   () => checkConfig(bad, "bad.ts"),
 *   /Config "bad\.ts": train\.iters is "100", expected an integer >= 1/,
 * );
 * ```
 *
 * @param config The value to check.
 * @param source Names the config in messages.
 * @throws {TypeError} Naming the first field with a wrong type or value.
 */
export function checkConfig(config: unknown, source: string): asserts config is DetectorConfig {
  const fail = (path: string, value: unknown, expected: string): never => {
    throw new TypeError(`Config "${source}": ${path} is ${show(value)}, expected ${expected}`);
  };
  const object = (parent: Record<string, unknown>, key: string, path: string) => {
    const v = parent[key];
    return isObject(v) ? v : fail(path, v, "an object");
  };
  const integer = (o: Record<string, unknown>, key: string, path: string, min: number) => {
    const v = o[key];
    if (!Number.isInteger(v) || (v as number) < min) fail(path, v, `an integer >= ${min}`);
  };
  const number = (o: Record<string, unknown>, key: string, path: string, min = -Infinity) => {
    const v = o[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v < min) {
      fail(path, v, min === -Infinity ? "a finite number" : `a finite number >= ${min}`);
    }
  };
  const string = (o: Record<string, unknown>, key: string, path: string) => {
    if (typeof o[key] !== "string" || o[key] === "") fail(path, o[key], "a non-empty string");
  };
  if (!isObject(config)) return fail("the default export", config, "an object");
  string(config, "name", "name");
  const model = object(config, "model", "model");
  const kind = model.kind;
  if (typeof kind !== "string" || !Object.hasOwn(DETECTOR_LOSSES, kind)) {
    fail("model.kind", kind, `one of ${Object.keys(DETECTOR_LOSSES).join(", ")}`);
  }
  const losses = DETECTOR_LOSSES[kind as keyof typeof DETECTOR_LOSSES];
  if (!losses.includes(model.loss as string)) {
    fail("model.loss", model.loss, `one of ${losses.join(", ")} for a ${kind} detector`);
  }
  integer(model, "numClasses", "model.numClasses", 1);
  const backbone = object(model, "backbone", "model.backbone");
  if (backbone.pretrained !== undefined && typeof backbone.pretrained !== "string") {
    fail("model.backbone.pretrained", backbone.pretrained, "a file name");
  }
  const train = object(config, "train", "train");
  for (const key of ["batchSize", "iters", "shortSide", "maxSize", "checkpointEvery", "logEvery"]) {
    integer(train, key, `train.${key}`, 1);
  }
  for (const key of ["lr", "momentum", "weightDecay", "gamma"]) {
    number(train, key, `train.${key}`, 0);
  }
  number(train, "flipProb", "train.flipProb", 0);
  if ((train.flipProb as number) > 1) fail("train.flipProb", train.flipProb, "a probability");
  if (train.maxGradNorm !== undefined) number(train, "maxGradNorm", "train.maxGradNorm", 0);
  if (train.optimizer !== undefined && train.optimizer !== "sgd" && train.optimizer !== "adamw") {
    fail("train.optimizer", train.optimizer, `"sgd" or "adamw"`);
  }
  if (train.lrFactors !== undefined) {
    if (!Array.isArray(train.lrFactors)) fail("train.lrFactors", train.lrFactors, "an array");
    (train.lrFactors as unknown[]).forEach((f, i) => {
      const path = `train.lrFactors[${i}]`;
      if (!isObject(f)) return fail(path, f, "an object { match, factor }");
      string(f, "match", `${path}.match`);
      number(f, "factor", `${path}.factor`, 0);
    });
  }
  const warmup = object(train, "warmup", "train.warmup");
  integer(warmup, "iters", "train.warmup.iters", 0);
  number(warmup, "factor", "train.warmup.factor", 0);
  const milestones = train.milestones;
  if (!Array.isArray(milestones) || !milestones.every((m) => Number.isInteger(m) && m >= 0)) {
    fail("train.milestones", milestones, "an array of integers >= 0");
  }
  const data = object(config, "data", "data");
  if (data.kind === "shapes") {
    for (const key of ["train", "val", "size"]) integer(data, key, `data.${key}`, 1);
    integer(data, "seed", "data.seed", 0);
  } else if (data.kind === "coco" || data.kind === "lvis") {
    for (const key of ["trainJson", "trainImages", "valJson", "valImages"]) {
      string(data, key, `data.${key}`);
    }
  } else if (data.kind === "cityscapes") {
    string(data, "root", "data.root");
  } else fail("data.kind", data.kind, `"shapes", "coco", "lvis" or "cityscapes"`);
  const t = data.repeatThreshold;
  if (t !== undefined && !(typeof t === "number" && t > 0 && t <= 1)) {
    fail("data.repeatThreshold", t, "a number in (0, 1]");
  }
}

/** Command-line overrides of a configuration. */
export interface ConfigOverrides {
  /** Classification loss. */
  loss?: string;
  /** Training steps. */
  iters?: number;
  /** Images per batch. */
  batch?: number;
  /** The backbone's pretrained weights file (`backbone.pretrained`). */
  pretrained?: string;
}

/**
 * `config` with `overrides` applied (validated; the input is not changed).
 *
 * @throws {RangeError} For a loss the detector kind does not train with, `iters` or `batch`
 *   that is not an integer >= 1, or a `pretrained` that is not a string.
 */
export function applyOverrides<C extends DetectorConfig>(config: C, overrides: ConfigOverrides): C {
  for (const key of ["iters", "batch"] as const) {
    const v: unknown = overrides[key];
    if (v !== undefined && (!Number.isInteger(v) || (v as number) < 1)) {
      throw new RangeError(`Override ${key} must be an integer >= 1, got ${show(v)}`);
    }
  }
  const pretrained: unknown = overrides.pretrained;
  if (pretrained !== undefined && typeof pretrained !== "string") {
    throw new RangeError(
      `Override pretrained must be a file name, got ${JSON.stringify(pretrained)}`,
    );
  }
  const out: C = structuredClone(config);
  if (overrides.loss !== undefined) {
    const known = DETECTOR_LOSSES[config.model.kind] ?? [];
    if (!known.includes(overrides.loss)) {
      throw new RangeError(
        `Unknown loss "${overrides.loss}" for a ${config.model.kind} detector: expected one of ${
          known.join(", ")
        }`,
      );
    }
    // The registry lists exactly the losses this kind's config accepts.
    (out.model as { loss: string }).loss = overrides.loss;
  }
  if (overrides.iters !== undefined) {
    const scale = overrides.iters / config.train.iters;
    out.train.iters = overrides.iters;
    out.train.milestones = config.train.milestones.map((m) => Math.round(m * scale));
    out.train.warmup = {
      ...config.train.warmup,
      iters: Math.min(config.train.warmup.iters, Math.max(1, Math.round(overrides.iters / 10))),
    };
  }
  if (overrides.batch !== undefined) out.train.batchSize = overrides.batch;
  if (overrides.pretrained !== undefined) out.model.backbone.pretrained = overrides.pretrained;
  return out;
}
