/**
 * Finding a configuration by name (`configs/NAME.ts`) or by file path, and
 * applying command-line overrides.
 *
 * @module
 */

import { DETECTOR_LOSSES } from "../detectors/build.ts";
import type { DetectorConfig } from "../configs/types.ts";

/** The configuration `nameOrPath`: a name in `configs/` or a `.ts` file exporting one as default. */
export async function loadConfig(nameOrPath: string): Promise<DetectorConfig> {
  const isPath = nameOrPath.endsWith(".ts") || nameOrPath.includes("/");
  const url = isPath
    ? new URL(nameOrPath, `file://${Deno.cwd()}/`).href
    : new URL(`../configs/${nameOrPath}.ts`, import.meta.url).href;
  let module: { default?: DetectorConfig };
  try {
    module = await import(url);
  } catch (error) {
    throw new TypeError(
      `Cannot load config "${nameOrPath}": ${(error as Error).message.split("\n")[0]}`,
    );
  }
  const config = module.default;
  if (!config || typeof config !== "object" || !config.model || !config.train) {
    throw new TypeError(`Config "${nameOrPath}" has no default export of a DetectorConfig`);
  }
  return config;
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

/** `config` with `overrides` applied (validated; the input is not changed). */
export function applyOverrides<C extends DetectorConfig>(config: C, overrides: ConfigOverrides): C {
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
