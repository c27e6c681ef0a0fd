/**
 * Choosing the backend: one `GPUDevice` per process, requested with the
 * adapter's real limits, or the CPU backend where there is no adapter.
 *
 * `BRL_BACKEND=cpu|webgpu` forces a backend; {@linkcode initBackend} does the same
 * from code. Without either, WebGPU is used when an adapter is found, and one
 * line on stderr says when the CPU fallback is taken.
 *
 * @module
 */

import type { Backend, BackendName } from "./backend.ts";
import { createCpuBackend } from "./cpu_backend.ts";
import { GpuUnavailableError } from "./errors.ts";
import { createWebGpuBackend } from "./webgpu_backend.ts";

let cpuBackend: Backend | null = null;
let gpuBackend: Promise<Backend> | null = null;
let defaultBackend: Backend | null = null;

/** The CPU backend (always available). */
export function cpu(): Backend {
  cpuBackend ??= createCpuBackend();
  return cpuBackend;
}

async function requestGpu(): Promise<Backend> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) throw new GpuUnavailableError("WebGPU is not available (navigator.gpu is missing)");
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new GpuUnavailableError("No WebGPU adapter was found");
  const requiredLimits: Record<string, number> = {};
  for (
    const name of [
      "maxStorageBufferBindingSize",
      "maxBufferSize",
      "maxStorageBuffersPerShaderStage",
      "maxComputeWorkgroupStorageSize",
      "maxComputeInvocationsPerWorkgroup",
      "maxComputeWorkgroupSizeX",
      "maxComputeWorkgroupsPerDimension",
    ] as const
  ) requiredLimits[name] = adapter.limits[name];
  // Timestamps serve `Backend.startProfile` only; ask for them where the adapter has them.
  const requiredFeatures: GPUFeatureName[] = adapter.features.has("timestamp-query")
    ? ["timestamp-query"]
    : [];
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  return createWebGpuBackend(device, adapter.info.description || adapter.info.vendor || "WebGPU");
}

/** The WebGPU backend; rejects with {@linkcode GpuUnavailableError} where there is no adapter. */
export function webgpu(): Promise<Backend> {
  gpuBackend ??= requestGpu();
  return gpuBackend;
}

/** Whether a WebGPU adapter is available (for skipping GPU tests). */
export async function hasGpu(): Promise<boolean> {
  try {
    await webgpu();
    return true;
  } catch {
    return false;
  }
}

function envBackend(): string | undefined {
  try {
    return Deno.env.get("BRL_BACKEND");
  } catch {
    return undefined; // no --allow-env: choose automatically
  }
}

/**
 * Chooses the default backend: `name`, else `BRL_BACKEND`, else WebGPU when an
 * adapter exists and the CPU otherwise (saying so on stderr once).
 *
 * @example Force the CPU backend
 * ```ts
 * import { initBackend } from "./device.ts";
 * const backend = await initBackend("cpu");
 * console.log(backend.name); // "cpu"
 * ```
 */
export async function initBackend(name?: BackendName): Promise<Backend> {
  const wanted = name ?? envBackend();
  if (wanted !== undefined && wanted !== "cpu" && wanted !== "webgpu") {
    throw new RangeError(`Unknown backend "${wanted}": expected "cpu" or "webgpu"`);
  }
  if (wanted === "cpu") defaultBackend = cpu();
  else if (wanted === "webgpu") defaultBackend = await webgpu();
  else {
    try {
      defaultBackend = await webgpu();
    } catch (error) {
      console.error(`brl: ${(error as Error).message}; using the CPU backend`);
      defaultBackend = cpu();
    }
  }
  return defaultBackend;
}

/** The default backend: the one {@linkcode initBackend} chose, else the CPU. */
export function defaultDevice(): Backend {
  return defaultBackend ?? cpu();
}
