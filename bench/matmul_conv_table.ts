/**
 * Prints a markdown table of matmul and conv2d throughput (GFLOP/s) on the
 * WebGPU backend (`--backend native` or `cpu` for the others):
 * `deno run -A bench/matmul_conv_table.ts [--backend webgpu|native|cpu]`.
 *
 * Each row is timed after one warm-up run (so compile time is excluded), as
 * the mean of `--repeat` runs ended by `backend.sync()`. The `path` column
 * compares, in the same run, the default choice (`auto`: the backend's profile,
 * packed uniform-window products on llvmpipe) with the storage-buffer kernels
 * (`storage`: the profile's uniform-window paths off) and the hardware adapters'
 * kernels (`hardware`: the profile's `HARDWARE_PATHS`, the shared-memory matmul
 * and implicit-GEMM convolution); pick with `--paths auto,storage,hardware`
 * (WebGPU only).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { backward } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { cpu, native, webgpu } from "../tensor/device.ts";
import { conv2d } from "../tensor/ops/conv.ts";
import { type DeviceProfile, HARDWARE_PATHS, withProfile } from "../tensor/device_profile.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { type Tensor, tensor, tidy } from "../tensor/tensor.ts";

function random(n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 0.5);
}

async function time(backend: Backend, repeat: number, fn: () => void): Promise<number> {
  fn();
  await backend.sync();
  const t0 = performance.now();
  for (let r = 0; r < repeat; r++) fn();
  await backend.sync();
  return (performance.now() - t0) / repeat;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      repeat: { type: "string", default: "2" },
      sizes: { type: "string", default: "256,512,1024" },
      paths: { type: "string", default: "auto,storage,hardware" },
      backend: { type: "string", default: "webgpu" },
    },
  });
  const repeat = Number(values.repeat);
  const name = values.backend;
  const backend = name === "native" ? native() : name === "cpu" ? cpu() : await webgpu();
  console.log(`Adapter: ${backend.description}\n`);
  console.log("| op | shape | path | ms | GFLOP/s |");
  console.log("| --- | --- | --- | ---: | ---: |");
  const row = (op: string, shape: string, tile: string, ms: number, flops: number) =>
    console.log(
      `| ${op} | ${shape} | ${tile} | ${ms.toFixed(1)} | ${(flops / ms / 1e6).toFixed(2)} |`,
    );
  // The path choice exists on WebGPU only; host backends have one path.
  const overrides: Record<string, Partial<DeviceProfile>> = {
    auto: {},
    storage: { matmulUniform: "off", convUniform: "off" },
    hardware: HARDWARE_PATHS,
  };
  const paths = backend.name === "webgpu" ? values.paths!.split(",") : ["auto"];
  for (const path of paths) {
    if (!(path in overrides)) {
      throw new RangeError(`Unknown path "${path}": expected auto, storage or hardware`);
    }
  }
  const product = async (m: number, k: number, n: number) => {
    const a = tensor(random(m * k), [m, k], { backend });
    const b = tensor(random(k * n), [k, n], { backend });
    for (const path of paths) {
      const ms = await withProfile(
        backend,
        overrides[path],
        () => time(backend, repeat, () => matmul(a, b).dispose()),
      );
      row("matmul", `${m}x${k}x${n}`, path, ms, 2 * m * n * k);
    }
    a.dispose();
    b.dispose();
  };
  for (const s of values.sizes!.split(",").map(Number)) await product(s, s, s);
  await product(64, 576, 8 * 64 * 64);
  const [n, c, h, w, co] = [8, 64, 64, 64, 64];
  const flops = 2 * n * co * h * w * c * 9;
  const x = tensor(random(n * c * h * w), [n, c, h, w], { backend, requiresGrad: true });
  const wt = tensor(random(co * c * 9), [co, c, 3, 3], { backend, requiresGrad: true });
  const gy = tensor(random(n * co * h * w), [n, co, h, w], { backend });
  for (const path of paths) {
    await withProfile(backend, overrides[path], async () => {
      const fwd = await time(backend, repeat, () => conv2d(x, wt, { padding: 1 }).dispose());
      row("conv2d fwd", "8x64x64x64, 3x3 pad 1", path, fwd, flops);
      const bwd = await time(backend, repeat, () => {
        tidy(() => {
          const y = conv2d(x, wt, { padding: 1 });
          backward(y, gy);
        });
        (x.grad as Tensor).dispose();
        (wt.grad as Tensor).dispose();
        x.grad = null;
        wt.grad = null;
      });
      row("conv2d fwd+bwd", "8x64x64x64, 3x3 pad 1", path, bwd, 3 * flops);
      row("conv2d bwd only", "8x64x64x64, 3x3 pad 1", path, bwd - fwd, 2 * flops);
    });
  }
}
