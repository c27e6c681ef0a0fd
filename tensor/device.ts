/**
 * Choosing the backend: WebGPU on a hardware adapter, else the native backend (OpenBLAS through
 * FFI), else WebGPU on a software adapter (llvmpipe, lavapipe, SwiftShader), else the CPU.
 *
 * `BRL_BACKEND=cpu|native|webgpu` forces a backend; {@linkcode initBackend} does the same from
 * code. Without either, one line on stderr says which backend was chosen and why.
 *
 * @module
 */

import type { Backend, BackendName } from "./backend.ts";
import { createCpuBackend } from "./cpu_backend.ts";
import { GpuUnavailableError, NativeUnavailableError } from "./errors.ts";
import { createNativeBackend } from "./native/native_backend.ts";
import { loadOpenBlas } from "./native/openblas.ts";
import { createWebGpuBackend } from "./webgpu_backend.ts";
import { adapterProfile, isSoftwareAdapter } from "./device_profile.ts";

export { isSoftwareAdapter };

let cpuBackend: Backend | null = null;
let nativeBackend: Backend | null = null;
let adapterRequest: Promise<GPUAdapter> | null = null;
let gpuBackend: Promise<Backend> | null = null;
let defaultBackend: Backend | null = null;

const BACKENDS: readonly BackendName[] = ["cpu", "native", "webgpu"];

/** The CPU backend (always available). */
export function cpu(): Backend {
  cpuBackend ??= createCpuBackend();
  return cpuBackend;
}

/**
 * The native backend (OpenBLAS through FFI; `BRL_BLAS` names the library, `BRL_THREADS` its
 * threads). Throws {@linkcode NativeUnavailableError} saying what is missing.
 */
export function native(): Backend {
  nativeBackend ??= createNativeBackend(loadOpenBlas());
  return nativeBackend;
}

/** Whether the native backend can run here (for skipping its tests). */
export function hasNative(): boolean {
  try {
    native();
    return true;
  } catch {
    return false;
  }
}

function requestAdapter(): Promise<GPUAdapter> {
  adapterRequest ??= (async () => {
    const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
    if (!gpu) throw new GpuUnavailableError("WebGPU is not available (navigator.gpu is missing)");
    const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) throw new GpuUnavailableError("No WebGPU adapter was found");
    return adapter;
  })();
  return adapterRequest;
}

/**
 * The adapter in words, as backends describe it: its description, else its vendor and
 * architecture (Chromium's SwiftShader has an empty description and names itself only by its
 * architecture, `swiftshader`, which the device profile must see to count it as software).
 */
function adapterName(adapter: GPUAdapter): string {
  const { description, vendor, architecture } = adapter.info;
  return description || [vendor, architecture].filter(Boolean).join(" ") || "WebGPU";
}

/**
 * A new WebGPU device on the adapter, with the adapter's limits that the kernels need, and the
 * adapter's description. {@linkcode webgpu} builds its backend on one; tests build backends with
 * other profiles (`DeviceProfile`, e.g. other `bindGroupsPerGeneration`) on others.
 *
 * @example
 * ```ts ignore
 * const { device, description } = await requestGpuDevice();
 * const profile = { ...adapterProfile({ description }), bindGroupsPerGeneration: 3 };
 * const backend = createWebGpuBackend(device, description, profile);
 * ```
 *
 * @returns The device and the adapter's description; rejects with
 * {@linkcode GpuUnavailableError} where there is no adapter.
 */
export async function requestGpuDevice(): Promise<
  { device: GPUDevice; description: string; isFallbackAdapter?: boolean }
> {
  const adapter = await requestAdapter();
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
  return {
    device,
    description: adapterName(adapter),
    isFallbackAdapter: adapter.info.isFallbackAdapter,
  };
}

async function requestGpu(): Promise<Backend> {
  const { device, description, isFallbackAdapter } = await requestGpuDevice();
  const profile = adapterProfile({ description, isFallbackAdapter, limits: device.limits });
  return createWebGpuBackend(device, description, profile);
}

/** The WebGPU backend; rejects with {@linkcode GpuUnavailableError} where there is no adapter. */
export function webgpu(): Promise<Backend> {
  gpuBackend ??= requestGpu();
  return gpuBackend;
}

/**
 * Whether a WebGPU adapter is available (for skipping GPU tests). Only a missing adapter
 * ({@linkcode GpuUnavailableError}) reads as `false`: an adapter whose device cannot be created
 * is a broken backend, and its error propagates rather than turning into a skip.
 */
export async function hasGpu(): Promise<boolean> {
  try {
    await webgpu();
    return true;
  } catch (error) {
    if (error instanceof GpuUnavailableError) return false;
    throw error;
  }
}

function envBackend(): string | undefined {
  try {
    return Deno.env.get("BRL_BACKEND");
  } catch {
    return undefined; // no --allow-env: choose automatically
  }
}

/** The automatic choice, with the reason in words. */
async function chooseBackend(): Promise<{ backend: Backend; why: string }> {
  let adapter: GPUAdapter | null = null;
  let noGpu = "";
  try {
    adapter = await requestAdapter();
  } catch (error) {
    noGpu = (error as Error).message;
  }
  const software = adapter !== null && isSoftwareAdapter(adapter.info);
  if (adapter && !software) return { backend: await webgpu(), why: "a hardware WebGPU adapter" };
  const gpuState = adapter
    ? `the WebGPU adapter (${adapterName(adapter)}) is software`
    : `no WebGPU adapter: ${noGpu}`;
  let noNative = "";
  try {
    return { backend: native(), why: gpuState };
  } catch (error) {
    if (!(error instanceof NativeUnavailableError)) throw error;
    noNative = error.message;
  }
  if (adapter) {
    return { backend: await webgpu(), why: `software adapter; native unavailable: ${noNative}` };
  }
  return { backend: cpu(), why: `${gpuState}; native unavailable: ${noNative}` };
}

/**
 * Chooses the default backend: `name`, else `BRL_BACKEND`, else automatically (a hardware
 * WebGPU adapter, else native, else a software WebGPU adapter, else the CPU), saying on stderr
 * which and why (as it does for a backend forced by `BRL_BACKEND`).
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
  if (wanted !== undefined && !BACKENDS.includes(wanted as BackendName)) {
    throw new RangeError(
      `Unknown backend "${wanted}": expected ${BACKENDS.map((b) => `"${b}"`).join(", ")}`,
    );
  }
  if (wanted === "cpu") defaultBackend = cpu();
  else if (wanted === "native") defaultBackend = native();
  else if (wanted === "webgpu") defaultBackend = await webgpu();
  if (wanted !== undefined && name === undefined) {
    console.error(`brl: backend ${wanted}: ${defaultBackend!.description} (BRL_BACKEND)`);
  }
  if (wanted === undefined) {
    const { backend, why } = await chooseBackend();
    console.error(`brl: backend ${backend.name}: ${backend.description} (${why})`);
    defaultBackend = backend;
  }
  return defaultBackend!;
}

/** The default backend: the one {@linkcode initBackend} chose, else the CPU. */
export function defaultDevice(): Backend {
  return defaultBackend ?? cpu();
}
