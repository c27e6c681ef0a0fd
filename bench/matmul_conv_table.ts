/**
 * Prints a markdown table of matmul and conv2d throughput (GFLOP/s) on the
 * WebGPU backend (`--backend native` or `cpu` for the others):
 * `deno run -A bench/matmul_conv_table.ts [--backend webgpu|native|cpu]`.
 *
 * The `path` column compares, in the same run, the default choice (`auto`: the
 * backend's profile, packed uniform-window products on llvmpipe) with the
 * storage-buffer kernels (`storage`: the profile's uniform-window paths off)
 * and the hardware adapters' kernels (`hardware`: the profile's
 * `HARDWARE_PATHS`, the shared-memory matmul and implicit-GEMM convolution);
 * pick with `--paths auto,storage,hardware` (WebGPU only). The rows are
 * `gemm_rows.ts`'s; `bench/browser_gemm.ts` prints the same table from
 * headless Chromium's adapter.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { cpu, native, webgpu } from "../tensor/device.ts";
import { GEMM_TABLE_HEADER, gemmRowLine, gemmRows } from "./gemm_rows.ts";

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
  const name = values.backend;
  const backend = name === "native" ? native() : name === "cpu" ? cpu() : await webgpu();
  console.log(`Adapter: ${backend.description}\n`);
  console.log(GEMM_TABLE_HEADER);
  // The path choice exists on WebGPU only; host backends have one path.
  const paths = backend.name === "webgpu" ? values.paths!.split(",") : ["auto"];
  const rows = gemmRows(backend, {
    sizes: values.sizes!.split(",").map(Number),
    paths,
    repeat: Number(values.repeat),
  });
  for await (const row of rows) console.log(gemmRowLine(row));
}
