/**
 * The native backend's layer kernels against the CPU twins they replace: max pooling, group
 * normalisation and scatter-add, each forward and backward. The twins run on a host backend with
 * the same buffer pool as the native one, so only the kernels differ.
 *
 * Run: `deno bench -A bench/native_layers_bench.ts` (needs OpenBLAS for the native backend)
 *
 * @module
 */

import { backward } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { createHostBackend } from "../tensor/cpu_backend.ts";
import { hasNative, native } from "../tensor/device.ts";
import { scatterAdd } from "../tensor/ops/index.ts";
import { groupNorm } from "../tensor/ops/norm.ts";
import { maxPool2d } from "../tensor/ops/pool.ts";
import { type Tensor, tensor, tidy } from "../tensor/tensor.ts";

/** Seeded values in `[lo, hi)`. */
function values(length: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + (hi - lo) * (s / 4294967296);
  });
}

function leaf(shape: number[], seed: number, backend: Backend): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return tensor(values(size, seed), shape, { backend, requiresGrad: true });
}

/** A case's inputs on one backend (made once) and its forward pass over them. */
type Case = (backend: Backend) => { leaves: Tensor[]; forward: () => Tensor };

/** One forward and backward pass of `make` on `backend`, with inputs and upstream gradient made once. */
function prepare(backend: Backend, make: Case): () => void {
  const { leaves, forward } = make(backend);
  const probe = forward();
  const gy = tensor(values(probe.size, 9), probe.shape, { backend });
  probe.dispose();
  return () =>
    tidy(() => {
      backward(forward(), gy);
      for (const t of leaves) {
        t.grad?.dispose();
        t.grad = null;
      }
    });
}

const CASES: [string, Case][] = [
  ["maxPool2d [4, 16, 128, 128] k3 s2 p1", (backend) => {
    const x = leaf([4, 16, 128, 128], 1, backend);
    return { leaves: [x], forward: () => maxPool2d(x, { kernelSize: 3, stride: 2, padding: 1 }) };
  }],
  ["groupNorm [4, 32, 32, 32], 8 groups, affine", (backend) => {
    const x = leaf([4, 32, 32, 32], 2, backend);
    const w = leaf([32], 3, backend), b = leaf([32], 4, backend);
    return { leaves: [x, w, b], forward: () => groupNorm(x, 8, w, b) };
  }],
  ["scatterAdd [1024, 4] rows into [8192, 4] along axis 0", (backend) => {
    const target = leaf([8192, 4], 5, backend), src = leaf([1024, 4], 6, backend);
    const rows = Int32Array.from(values(4096, 7, 0, 8192), Math.floor);
    const index = tensor(rows, [1024, 4], { backend, dtype: "i32" });
    return { leaves: [target, src], forward: () => scatterAdd(target, 0, index, src) };
  }],
];

if (hasNative()) {
  const twins = createHostBackend({ name: "cpu", description: "CPU twins", poolBytes: 1 << 30 });
  const backends: [string, Backend][] = [["twin", twins], ["native", native()]];
  for (const [name, make] of CASES) {
    for (const [which, backend] of backends) {
      const step = prepare(backend, make);
      step(); // fills the pool
      Deno.bench({
        name: `${name}, forward + backward (${which})`,
        group: name,
        baseline: which === "twin",
        n: 10,
        warmup: 2,
        fn: step,
      });
    }
  }
}
