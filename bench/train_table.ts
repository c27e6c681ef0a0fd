/**
 * One training run of a loss bench (`atss_losses.ts`, `paa_losses.ts`,
 * `two_stage_losses.ts`): trained quietly from seed 0 with the end-of-run
 * evaluation, and its AP, AP50, oLRP and seconds per step as table cells.
 *
 * @module
 */

import type { DetectorConfig } from "../configs/types.ts";
import { train, type TrainResult } from "../engine/train.ts";
import type { Backend } from "../tensor/backend.ts";

/**
 * Trains `config` from seed 0 into `out` and returns the run and its cells
 * `[AP, AP50, oLRP, s/step]` (AP in percent).
 *
 * @example
 * ```ts ignore
 * const { result, cells } = await trainedRow(config, "bench/results/x/brs", backend);
 * console.log(`| brs | ${cells.join(" | ")} |`);
 * ```
 */
export async function trainedRow(
  config: DetectorConfig,
  out: string,
  backend: Backend,
  stepDigits = 3,
): Promise<{ result: TrainResult; cells: string[] }> {
  const result = await train({ config, seed: 0, out, backend, write: () => {} });
  const [ap, ap50] = result.eval!.stats;
  const cells = [
    (100 * ap).toFixed(1),
    (100 * ap50).toFixed(1),
    result.eval!.oLRP.toFixed(3),
    (result.trainSeconds / result.step).toFixed(stepDigits),
  ];
  return { result, cells };
}
