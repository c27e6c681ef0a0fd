/**
 * Elementwise (`map.*`) and reduction (`reduce.*`) kernels on the native backend.
 *
 * @module
 */

import type { CpuTwin, Kernel } from "../kernel.ts";

/** A native replacement of an elementwise or reduction kernel's twin, or `undefined`. */
export function pointwiseKernel(_kernel: Kernel): CpuTwin | undefined {
  return undefined;
}
