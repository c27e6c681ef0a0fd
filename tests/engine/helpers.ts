// Shared by the tests of the engine and the task entry points.
import { join } from "node:path";
import ATSS_TINY_SHAPES from "../../configs/atss_tiny_shapes.ts";
import { Atss } from "../../detectors/atss.ts";
import { cpu } from "../../tensor/device.ts";
import { saveCheckpoint } from "../../tensor/safetensors.ts";

/** Saves a random-weight checkpoint of the default config (no thresholds) in `dir`; returns its path. */
export async function randomCheckpoint(dir: string): Promise<string> {
  const config = ATSS_TINY_SHAPES;
  const model = new Atss(config.model, { seed: 3, backend: cpu() });
  const checkpoint = join(dir, "random.safetensors");
  await saveCheckpoint(checkpoint, {
    model,
    metadata: { step: 0, seed: 3, config: config.name, loss: config.model.loss },
  });
  return checkpoint;
}
