/**
 * Layer kernels on the native backend: pooling, normalisation, indexing and data movement. Each
 * module holds one family's replacements; a label missing here runs its CPU twin.
 *
 * @module
 */

import type { CpuTwin } from "../kernel.ts";
import { INDEX_KERNELS } from "./index_kernels.ts";
import { NORM_KERNELS } from "./norm_kernels.ts";
import { POOL_KERNELS } from "./pool_kernels.ts";

/** Native replacements of the pooling, norm and index twins, by kernel label. */
export const LAYER_KERNELS: Readonly<Record<string, CpuTwin>> = {
  ...POOL_KERNELS,
  ...NORM_KERNELS,
  ...INDEX_KERNELS,
};
