/**
 * The native backend's elementwise and reduction loops against the CPU twins they replace, on
 * training-sized tensors: relu, its gradient, add, a conv bias broadcast `[1, C, 1, 1]`, a
 * permute to channels-last and `sum` over a bias gradient's axes. Both sides are host backends
 * with the same buffer pool, so only the kernels differ; divide by the element count for
 * ns/element.
 *
 * `deno bench -A bench/native_pointwise_bench.ts`
 *
 * @module
 */

import type { Backend } from "../tensor/backend.ts";
import { createHostBackend } from "../tensor/cpu_backend.ts";
import { pointwiseKernel } from "../tensor/native/pointwise_kernels.ts";
import { add, map, relu } from "../tensor/ops/elementwise.ts";
import { sum } from "../tensor/ops/reduce.ts";
import { permute } from "../tensor/ops/shape.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";

const POOL = 1 << 28;
const twin = createHostBackend({ name: "cpu", description: "CPU twins", poolBytes: POOL });
const native = createHostBackend({
  name: "native",
  description: "native pointwise kernels",
  kernels: pointwiseKernel,
  poolBytes: POOL,
});

const RELU_GRAD = {
  label: "relu_grad",
  wgsl: "select(0.0, a, b > 0.0)",
  cpu: (a: number, b: number) => b > 0 ? a : 0,
};

function random(shape: readonly number[], seed: number, backend: Backend): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: n }, (_, i) => Math.sin((i + seed) * 12.9898) * 0.5);
  return tensor(data, shape, { backend });
}

/** Registers `op` on both backends in one group, the twin as baseline. */
function pair(group: string, build: (backend: Backend) => () => Tensor): void {
  for (const backend of [twin, native]) {
    const run = build(backend);
    Deno.bench({
      name: `${group} (${backend.name === "cpu" ? "twin" : "native"})`,
      group,
      baseline: backend === twin,
      n: 10,
      warmup: 3,
      fn: () => run().dispose(),
    });
  }
}

for (const shape of [[4, 16, 128, 128], [4, 32, 32, 32]]) {
  const [n, c] = shape;
  const name = `[${shape.join(",")}]`;
  pair(`relu ${name}`, (backend) => {
    const x = random(shape, 1, backend);
    return () => relu(x);
  });
  pair(`relu_grad ${name}`, (backend) => {
    const g = random(shape, 2, backend), x = random(shape, 3, backend);
    return () => map(RELU_GRAD, [g, x]);
  });
  pair(`add ${name}`, (backend) => {
    const a = random(shape, 4, backend), b = random(shape, 5, backend);
    return () => add(a, b);
  });
  pair(`bias [1,${c},1,1] + ${name}`, (backend) => {
    const x = random(shape, 6, backend), bias = random([1, c, 1, 1], 7, backend);
    return () => add(x, bias);
  });
  pair(`permute ${name} to NHWC`, (backend) => {
    const x = random(shape, 8, backend);
    return () => permute(x, [0, 2, 3, 1]);
  });
  pair(`sum ${name} over [0,2,3]`, (backend) => {
    const x = random([n, ...shape.slice(1)], 9, backend);
    return () => sum(x, [0, 2, 3]);
  });
}
