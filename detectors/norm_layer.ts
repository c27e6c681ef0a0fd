/**
 * The normalisation layer a detector part is built with, chosen by config.
 *
 * @module
 */

import type { Backend } from "../tensor/backend.ts";
import { BatchNorm2d, GroupNorm } from "../tensor/nn/layers.ts";

/** Which normalisation: batch norm (trained), frozen batch norm, or group norm. */
export type NormKind = "batch" | "frozen_batch" | "group";

/** A layer {@linkcode normLayer} makes. */
export type NormLayer = GroupNorm | BatchNorm2d;

/** The largest group count at most `wanted` that divides `channels`. */
export function groupsFor(channels: number, wanted: number): number {
  for (let g = Math.min(wanted, channels); g > 1; g--) if (channels % g === 0) return g;
  return 1;
}

/**
 * A normalisation layer over `channels` channels; its `forward(x, { relu: true })` adds a ReLU
 * (fused into group norm's launches on hardware adapters).
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
): NormLayer {
  if (kind === "group") return new GroupNorm(groupsFor(channels, groups), channels, { backend });
  return new BatchNorm2d(channels, { frozen: kind === "frozen_batch", backend });
}
