/**
 * The normalisation layer a detector part is built with, chosen by config.
 *
 * @module
 */

import type { Backend } from "../tensor/backend.ts";
import { BatchNorm2d, GroupNorm } from "../tensor/nn/layers.ts";
import type { Module } from "../tensor/nn/module.ts";

/** Which normalisation: batch norm (trained), frozen batch norm, or group norm. */
export type NormKind = "batch" | "frozen_batch" | "group";

/** The largest group count at most `wanted` that divides `channels`. */
export function groupsFor(channels: number, wanted: number): number {
  for (let g = Math.min(wanted, channels); g > 1; g--) if (channels % g === 0) return g;
  return 1;
}

/**
 * A normalisation layer over `channels` channels.
 *
 * @example
 * ```ts
 * import { normLayer } from "./norm_layer.ts";
 * console.log(normLayer("group", 48, 32).constructor.name); // "GroupNorm"
 * ```
 */
export function normLayer(
  kind: NormKind,
  channels: number,
  groups = 32,
  backend?: Backend,
): Module {
  if (kind === "group") return new GroupNorm(groupsFor(channels, groups), channels, { backend });
  return new BatchNorm2d(channels, { frozen: kind === "frozen_batch", backend });
}
