/**
 * Benchmarks of the matmul, conv2d and pooling kernels: each WebGPU kernel
 * against its CPU twin (the baseline) at sizes the CPU tolerates, plus
 * GPU-only matmul 1024³ and the 8x64x64x64 3x3 convolution forward and
 * backward. Every GPU run ends with `backend.sync()` so that GPU time counts;
 * kernels are compiled by a warm-up run first.
 *
 * `deno bench --allow-read --allow-env bench/tensor_bench.ts`
 *
 * @module
 */

import { backward } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { cpu, hasGpu, webgpu } from "../tensor/device.ts";
import { conv2d } from "../tensor/ops/conv.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { maxPool2d, upsampleNearest2d } from "../tensor/ops/pool.ts";
import { type Tensor, tensor, tidy } from "../tensor/tensor.ts";

const GPU = await hasGpu();

function random(n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 0.5);
}

function make(backend: Backend, shape: number[], grad = false): Tensor {
  return tensor(random(shape.reduce((a, b) => a * b, 1)), shape, { backend, requiresGrad: grad });
}

/** Registers a bench of `fn` on `backend`, warmed up once. */
async function pair(
  group: string,
  name: string,
  build: (backend: Backend) => () => void,
): Promise<void> {
  const cpuRun = build(cpu());
  Deno.bench({ name: `${name} (cpu)`, group, baseline: true, fn: cpuRun });
  if (!GPU) return;
  const gpu = await webgpu();
  const gpuRun = build(gpu);
  gpuRun();
  await gpu.sync();
  Deno.bench({
    name: `${name} (webgpu)`,
    group,
    async fn() {
      gpuRun();
      await gpu.sync();
    },
  });
}

await pair("matmul 128x128x128", "matmul", (backend) => {
  const a = make(backend, [128, 128]), b = make(backend, [128, 128]);
  return () => matmul(a, b).dispose();
});

await pair("conv2d 2x16x32x32 3x3", "conv2d forward", (backend) => {
  const x = make(backend, [2, 16, 32, 32]), w = make(backend, [16, 16, 3, 3]);
  return () => conv2d(x, w, { padding: 1 }).dispose();
});

await pair("conv2d 2x16x32x32 3x3 backward", "conv2d forward + backward", (backend) => {
  const x = make(backend, [2, 16, 32, 32], true), w = make(backend, [16, 16, 3, 3], true);
  const gy = make(backend, [2, 16, 32, 32]);
  return () => {
    tidy(() => backward(conv2d(x, w, { padding: 1 }), gy));
    x.grad?.dispose();
    w.grad?.dispose();
    x.grad = null;
    w.grad = null;
  };
});

await pair("maxPool2d 4x64x64x64 3x3 s2", "maxPool2d", (backend) => {
  const x = make(backend, [4, 64, 64, 64]);
  return () => maxPool2d(x, { kernelSize: 3, stride: 2, padding: 1 }).dispose();
});

await pair("upsampleNearest2d 4x64x32x32 x2", "upsampleNearest2d", (backend) => {
  const x = make(backend, [4, 64, 32, 32]);
  return () => upsampleNearest2d(x, 2).dispose();
});

if (GPU) {
  const gpu = await webgpu();
  const a = make(gpu, [1024, 1024]), b = make(gpu, [1024, 1024]);
  matmul(a, b).dispose();
  await gpu.sync();
  Deno.bench({
    name: "matmul 1024³ (webgpu, 2.15 GFLOP)",
    group: "gpu only",
    n: 3,
    warmup: 1,
    async fn() {
      matmul(a, b).dispose();
      await gpu.sync();
    },
  });
  const x = make(gpu, [8, 64, 64, 64], true), w = make(gpu, [64, 64, 3, 3], true);
  const gy = make(gpu, [8, 64, 64, 64]);
  conv2d(x, w, { padding: 1 }).dispose();
  await gpu.sync();
  Deno.bench({
    name: "conv2d 8x64x64x64 3x3 forward (webgpu, 2.42 GFLOP)",
    group: "gpu only",
    n: 3,
    warmup: 1,
    async fn() {
      conv2d(x, w, { padding: 1 }).dispose();
      await gpu.sync();
    },
  });
  Deno.bench({
    name: "conv2d 8x64x64x64 3x3 forward + backward (webgpu, 7.25 GFLOP)",
    group: "gpu only",
    n: 2,
    warmup: 1,
    async fn() {
      tidy(() => backward(conv2d(x, w, { padding: 1 }), gy));
      x.grad?.dispose();
      w.grad?.dispose();
      x.grad = null;
      w.grad = null;
      await gpu.sync();
    },
  });
}
