/**
 * Layer kernels on the native backend: pooling, normalisation, indexing, optimizer steps.
 *
 * @module
 */

import type { CpuTwin } from "../kernel.ts";

/** Native replacements of the pooling, norm, index and optimizer twins, by kernel label. */
export const LAYER_KERNELS: Readonly<Record<string, CpuTwin>> = {};
