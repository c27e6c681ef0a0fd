/**
 * Matmul and conv2d throughput rows (GFLOP/s) on one backend, for each path of the device
 * profile asked for: the measurement behind `bench/matmul_conv_table.ts` (Deno) and
 * `bench/browser_gemm.ts` (the same rows inside headless Chromium). Uses no Deno API, so that it
 * bundles for the browser.
 *
 * Each row is timed after one warm-up run (compile time excluded), as the mean of `repeat` runs
 * ended by `backend.sync()`.
 *
 * @module
 */

import { backward } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { type DeviceProfile, HARDWARE_PATHS, withProfile } from "../tensor/device_profile.ts";
import { conv2d } from "../tensor/ops/conv.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { type Tensor, tensor, tidy } from "../tensor/tensor.ts";

/**
 * The paths a row can be measured on: `auto` (the backend's own profile), `storage` (its
 * uniform-window paths off, llvmpipe's storage-buffer kernels) and `hardware` (`HARDWARE_PATHS`:
 * the shared-memory matmul and implicit-GEMM convolution).
 */
export const GEMM_PATHS: Readonly<Record<string, Partial<DeviceProfile>>> = {
  auto: {},
  storage: { matmulUniform: "off", convUniform: "off" },
  hardware: HARDWARE_PATHS,
};

/** One measured row. */
export interface GemmRow {
  /** `matmul`, `conv2d fwd`, `conv2d fwd+bwd` or `conv2d bwd only`. */
  op: string;
  /** The problem, in words. */
  shape: string;
  /** The path (a key of {@linkcode GEMM_PATHS}). */
  path: string;
  /** Milliseconds per run. */
  ms: number;
  /** Floating-point operations per run. */
  flops: number;
}

/** What {@linkcode gemmRows} measures. */
export interface GemmOptions {
  /** Square matmul sizes; default 256, 512, 1024. */
  sizes?: readonly number[];
  /** Paths to compare (keys of {@linkcode GEMM_PATHS}); default all three. */
  paths?: readonly string[];
  /** Timed runs per row after the warm-up; default 2. */
  repeat?: number;
}

function wave(n: number): Float32Array {
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

/**
 * Measures the square matmuls of `options.sizes`, the 64 x 576 x 32768 product of a 3 x 3
 * convolution's im2col, and a 3 x 3 convolution of 8 x 64 x 64 x 64 (forward, forward +
 * backward), on each of `options.paths`, yielding rows as they are measured.
 *
 * @example
 * ```ts
 * import { gemmRows } from "./gemm_rows.ts";
 * import { cpu } from "../tensor/device.ts";
 * for await (const row of gemmRows(cpu(), { sizes: [32], paths: ["auto"], repeat: 1 })) {
 *   if (row.op === "matmul") console.log(row.shape, row.flops); // 32x32x32 65536
 *   break;
 * }
 * ```
 *
 * @throws {RangeError} When a path is not a key of {@linkcode GEMM_PATHS}.
 */
export async function* gemmRows(
  backend: Backend,
  { sizes = [256, 512, 1024], paths = ["auto", "storage", "hardware"], repeat = 2 }: GemmOptions =
    {},
): AsyncGenerator<GemmRow> {
  for (const path of paths) {
    if (!(path in GEMM_PATHS)) {
      throw new RangeError(`gemmRows: unknown path "${path}" (expected auto, storage or hardware)`);
    }
  }
  const product = async function* (m: number, k: number, n: number) {
    const a = tensor(wave(m * k), [m, k], { backend });
    const b = tensor(wave(k * n), [k, n], { backend });
    for (const path of paths) {
      const ms = await withProfile(
        backend,
        GEMM_PATHS[path],
        () => time(backend, repeat, () => matmul(a, b).dispose()),
      );
      yield { op: "matmul", shape: `${m}x${k}x${n}`, path, ms, flops: 2 * m * n * k };
    }
    a.dispose();
    b.dispose();
  };
  for (const s of sizes) yield* product(s, s, s);
  yield* product(64, 576, 8 * 64 * 64);
  const [n, c, h, w, co] = [8, 64, 64, 64, 64];
  const flops = 2 * n * co * h * w * c * 9;
  const shape = "8x64x64x64, 3x3 pad 1";
  const x = tensor(wave(n * c * h * w), [n, c, h, w], { backend, requiresGrad: true });
  const wt = tensor(wave(co * c * 9), [co, c, 3, 3], { backend, requiresGrad: true });
  const gy = tensor(wave(n * co * h * w), [n, co, h, w], { backend });
  for (const path of paths) {
    const [fwd, both] = await withProfile(backend, GEMM_PATHS[path], async () => [
      await time(backend, repeat, () => conv2d(x, wt, { padding: 1 }).dispose()),
      await time(backend, repeat, () => {
        tidy(() => backward(conv2d(x, wt, { padding: 1 }), gy));
        for (const t of [x, wt]) {
          (t.grad as Tensor).dispose();
          t.grad = null;
        }
      }),
    ]);
    yield { op: "conv2d fwd", shape, path, ms: fwd, flops };
    yield { op: "conv2d fwd+bwd", shape, path, ms: both, flops: 3 * flops };
    yield { op: "conv2d bwd only", shape, path, ms: both - fwd, flops: 2 * flops };
  }
  for (const t of [x, wt, gy]) t.dispose();
}

/** A row as a markdown table line: op, shape, path, ms, GFLOP/s. */
export function gemmRowLine(row: GemmRow): string {
  const gflops = row.flops / row.ms / 1e6;
  return `| ${row.op} | ${row.shape} | ${row.path} | ${row.ms.toFixed(1)} | ${gflops.toFixed(2)} |`;
}

/** The header of the table that {@linkcode gemmRowLine} fills. */
export const GEMM_TABLE_HEADER =
  "| op | shape | path | ms | GFLOP/s |\n| --- | --- | --- | ---: | ---: |";
