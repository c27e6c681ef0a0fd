/**
 * Elementwise (`map.*`) and reduction (`reduce.*`) kernels on the native backend.
 *
 * @module
 */

import type { CpuTwin } from "../kernel.ts";

/** Native replacements of the elementwise and reduction twins, by kernel label. */
export const POINTWISE_KERNELS: Readonly<Record<string, CpuTwin>> = {};
