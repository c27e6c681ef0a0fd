/**
 * The native backend: tensors in CPU memory as on the CPU backend, GEMM-shaped kernels through
 * OpenBLAS, the rest as tight host loops where the CPU twin is too slow, and a buffer pool.
 *
 * Kernels are matched by label; a kernel with no entry here runs its CPU twin, so the native
 * backend always computes what the CPU backend computes (the op-parity tests hold it to that).
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import { createHostBackend, type HostKernels } from "../cpu_backend.ts";
import type { CpuTwin } from "../kernel.ts";
import { col2imRows, im2colRows, sgemmMatmul } from "./gemm_kernels.ts";
import { LAYER_KERNELS } from "./layer_kernels.ts";
import { pointwiseKernel } from "./pointwise_kernels.ts";
import type { OpenBlas } from "./openblas.ts";

/** Idle memory the native backend keeps for reuse (a training step's buffers, several times). */
const POOL_BYTES = 1 << 30;

/** The native implementations, by kernel label. */
export function nativeKernels(blas: OpenBlas): HostKernels {
  const byLabel: Record<string, CpuTwin> = {
    ...LAYER_KERNELS,
    "conv.im2col": im2colRows,
    "conv.col2im": col2imRows,
  };
  return (kernel) => {
    if (/^matmul\.tile\d+x\d+$/.test(kernel.label)) return sgemmMatmul(blas.sgemm, kernel.cpu);
    return byLabel[kernel.label] ?? pointwiseKernel(kernel);
  };
}

/**
 * Creates the native backend on a loaded OpenBLAS.
 *
 * @example
 * ```ts ignore
 * import { loadOpenBlas } from "./openblas.ts";
 * import { createNativeBackend } from "./native_backend.ts";
 * const backend = createNativeBackend(loadOpenBlas()); // needs --allow-ffi
 * console.log(backend.description); // native (OpenBLAS 0.3.21, 2 threads)
 * ```
 */
export function createNativeBackend(blas: OpenBlas): Backend {
  return createHostBackend({
    name: "native",
    description: `native (OpenBLAS ${blas.version || "?"}, ${blas.threads} thread${
      blas.threads === 1 ? "" : "s"
    })`,
    kernels: nativeKernels(blas),
    poolBytes: POOL_BYTES,
  });
}
