/**
 * Sort of 1M key-value pairs and exclusive scan of 1e7 `u32`, WebGPU kernels
 * against their CPU twins (the CPU backend: a JS radix sort and a JS scan).
 * Run: `XDG_RUNTIME_DIR=/tmp/xdg deno bench --allow-read --allow-env bench/sort_bench.ts`.
 *
 * @module
 */
import type { Backend } from "../tensor/backend.ts";
import { cpu, hasGpu, webgpu } from "../tensor/device.ts";
import { exclusiveScan } from "../tensor/ops/scan.ts";
import { sort } from "../tensor/ops/sort.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";

const SORT_SIZE = 1 << 20;
const SCAN_SIZE = 10_000_000;

function randomKeys(n: number): Float32Array {
  let a = 12345;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    out[i] = (a / 4294967296) * 2 - 1;
  }
  return out;
}

const keys = randomKeys(SORT_SIZE);
const counts = Uint32Array.from({ length: SCAN_SIZE }, (_, i) => (i * 2654435761) >>> 28);
const backends: [string, Backend, boolean][] = [["cpu twin", cpu(), true]];
if (await hasGpu()) backends.push(["webgpu", await webgpu(), false]);

for (const [name, backend, baseline] of backends) {
  const x: Tensor = tensor(keys, [SORT_SIZE], { backend });
  const c: Tensor = tensor(counts, [SCAN_SIZE], { backend, dtype: "u32" });
  // Warm up: compile the kernels and fill the buffer pool.
  for (let k = 0; k < 2; k++) {
    const { values, indices } = sort(x);
    values.dispose();
    indices.dispose();
    exclusiveScan(c).dispose();
  }
  await backend.sync();
  Deno.bench({
    name: `sort 1M f32 key-value pairs (${name})`,
    group: "sort 1M",
    baseline,
    async fn() {
      const { values, indices } = sort(x);
      await backend.sync();
      values.dispose();
      indices.dispose();
    },
  });
  Deno.bench({
    name: `exclusiveScan 1e7 u32 (${name})`,
    group: "scan 1e7",
    baseline,
    async fn() {
      const out = exclusiveScan(c);
      await backend.sync();
      out.dispose();
    },
  });
}
