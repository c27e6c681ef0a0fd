/**
 * The optimiser a config's training settings ask for: SGD with momentum or
 * AdamW, with per-parameter learning-rate factors matched on parameter names.
 *
 * @module
 */

import type { TrainSettings } from "../configs/types.ts";
import { AdamW } from "../tensor/optim/adamw.ts";
import type { Optimizer } from "../tensor/optim/optimizer.ts";
import { SGD } from "../tensor/optim/sgd.ts";
import type { Tensor } from "../tensor/tensor.ts";

/**
 * The learning-rate factor of parameter `name`: that of the first entry of
 * `factors` whose `match` the name contains, else 1.
 *
 * @example
 * ```ts
 * import { lrFactorOf } from "./optimizer.ts";
 * const factors = [{ match: "backbone.", factor: 0.1 }, { match: "sampling_offsets", factor: 0.1 }];
 * console.log(lrFactorOf("backbone.conv1.weight", factors), lrFactorOf("neck.convs0.weight", factors)); // 0.1 1
 * ```
 */
export function lrFactorOf(
  name: string,
  factors: TrainSettings["lrFactors"] = [],
): number {
  return factors.find((f) => name.includes(f.match))?.factor ?? 1;
}

/**
 * Builds the optimiser of `settings` over the named `params`.
 *
 * @example
 * ```ts
 * import { buildOptimizer } from "./optimizer.ts";
 * import { AdamW } from "../tensor/optim/adamw.ts";
 * import { tensor } from "../tensor/tensor.ts";
 * import assert from "node:assert/strict";
 *
 * const w = tensor([1], undefined, { requiresGrad: true });
 * const opt = buildOptimizer([["w", w]], {
 *   optimizer: "adamw", lr: 2e-4, momentum: 0.9, weightDecay: 1e-4, maxGradNorm: 0.1,
 * });
 * assert.ok(opt instanceof AdamW);
 * ```
 *
 * @throws {RangeError} When `settings.optimizer` names no optimiser.
 */
export function buildOptimizer(
  params: [string, Tensor][],
  settings: Pick<
    TrainSettings,
    "optimizer" | "lr" | "momentum" | "weightDecay" | "maxGradNorm" | "lrFactors"
  >,
): Optimizer {
  const common = {
    lr: settings.lr,
    weightDecay: settings.weightDecay,
    maxGradNorm: settings.maxGradNorm,
    lrScale: (name: string) => lrFactorOf(name, settings.lrFactors),
  };
  const kind = settings.optimizer ?? "sgd";
  if (kind === "sgd") return new SGD(params, { ...common, momentum: settings.momentum });
  if (kind === "adamw") return new AdamW(params, common);
  throw new RangeError(`buildOptimizer: unknown optimizer "${kind}" (expected sgd or adamw)`);
}
