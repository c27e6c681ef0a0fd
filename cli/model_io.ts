/**
 * Building a detector from a checkpoint: its metadata names the config and
 * the loss it was trained with, and loading validates every tensor.
 *
 * @module
 */

import type { DetectorConfig } from "../configs/types.ts";
import { Atss } from "../detectors/atss.ts";
import type { Backend } from "../tensor/backend.ts";
import { loadCheckpoint, loadSafetensors } from "../tensor/safetensors.ts";
import { applyOverrides, loadConfig } from "./config.ts";

/** A model restored from a checkpoint, with its configuration. */
export interface RestoredModel {
  /** The model, in evaluation mode. */
  model: Atss;
  /** Its configuration. */
  config: DetectorConfig;
  /** The checkpoint's metadata (`step`, `seed`, `config`, `loss`). */
  metadata: Record<string, string>;
}

/**
 * Loads `path`, a checkpoint written by `deno task train`, into a model of
 * the config it names (or `configName`, which must then match).
 */
export async function loadModel(
  path: string,
  backend: Backend,
  configName?: string,
): Promise<RestoredModel> {
  const { metadata } = await loadSafetensors(path);
  const name = metadata.config;
  if (!name) throw new TypeError(`Checkpoint "${path}" names no config in its metadata`);
  if (configName && configName !== name && !configName.endsWith(".ts")) {
    throw new TypeError(`Checkpoint "${path}" is from config "${name}", not "${configName}"`);
  }
  const config = applyOverrides(await loadConfig(configName ?? name), { loss: metadata.loss });
  if (config.name !== name) {
    throw new TypeError(`Checkpoint "${path}" is from config "${name}", not "${config.name}"`);
  }
  const model = new Atss(config.model, { seed: Number(metadata.seed ?? 0), backend });
  await loadCheckpoint(path, { model });
  model.eval();
  return { model, config, metadata };
}
