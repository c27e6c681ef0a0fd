/**
 * The one seam for adapter tuning: a {@linkcode DeviceProfile} says, once per
 * backend, what kind of adapter runs the kernels (a hardware GPU, Mesa's llvmpipe,
 * another software adapter, or the host), how long a kernel's loops may run, which
 * matmul tiles fit its limits and which adapter-specific kernel variants pay. Ops read
 * `backend.profile`; nothing else decides by the adapter's name. Tests and benches
 * force a path on one backend with {@linkcode withProfile}.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import { LOOP_BUDGET } from "./kernel.ts";

/** What runs a backend's kernels. */
export type AdapterKind = "hardware" | "llvmpipe" | "software" | "host";

/** How an optional kernel path is chosen: by its size rule, always, or never. */
export type PathMode = "auto" | "on" | "off";

/**
 * Workgroup tiles of the shared-memory matmul ({@linkcode DeviceProfile.tiles}): a workgroup
 * computes a `bm x bn` output block, stepping the inner axis `bk` at a time through workgroup
 * memory, with `(bm / tm) x (bn / tn)` invocations each holding a `tm x tn` register block.
 */
export interface GemmTiles {
  /** Output rows per workgroup. */
  readonly bm: number;
  /** Output columns per workgroup. */
  readonly bn: number;
  /** Inner-axis steps per shared-memory tile. */
  readonly bk: number;
  /** Output rows per invocation. */
  readonly tm: number;
  /** Output columns per invocation. */
  readonly tn: number;
}

/** What each op asks about the adapter; see docs/device_profile.md. */
export interface DeviceProfile {
  /** The adapter's kind: decides the defaults of every other field. */
  readonly kind: AdapterKind;
  /** Whether the adapter renders on the CPU (llvmpipe, lavapipe, SwiftShader, WARP) or is the host. */
  readonly software: boolean;
  /**
   * Iterations one invocation's main loop may run (matmul's inner-axis chunk, the direct
   * convolutions' taps): a quarter of llvmpipe's ~65,535-iteration limit there, and a larger,
   * still bounded chunk on hardware adapters.
   */
  readonly loopBudget: number;
  /**
   * Whether 64 KiB uniform windows beat storage loads (llvmpipe only): the `"auto"` of the three
   * `ops/software/` path modes below means "where this holds, by the variant's size rule".
   */
  readonly uniformWindows: boolean;
  /**
   * The matmul family of the portable path: `"blocked"` (one register block per invocation,
   * blocks sized for llvmpipe there) or `"tiled"` (workgroup-memory tiles of {@linkcode tiles}).
   */
  readonly matmul: "blocked" | "tiled";
  /** How conv2d runs outside the llvmpipe variants: `"im2col"` + matmul, or `"implicit"` GEMM. */
  readonly conv: "im2col" | "implicit";
  /** Tiles of the shared-memory kernels, chosen from the adapter's limits. */
  readonly tiles: GemmTiles;
  /** The packed uniform-window matmul of `ops/software/` (`"auto"`: large f32 products). */
  readonly matmulUniform: PathMode;
  /** The direct uniform-window convolutions of `ops/software/` (`"auto"`: f32, groups 1). */
  readonly convDirect: PathMode;
  /** The packed uniform-window convolution products of `ops/software/` (`"auto"`: large f32). */
  readonly convUniform: PathMode;
  /** Most elements of one im2col matrix; images are processed in chunks below it. */
  readonly convColLimit: number;
  /**
   * How reductions and group-norm statistics run: `"chunked"` (every invocation reduces a short
   * run, partial results merged over several launches: no workgroup barriers, which are slow where
   * invocations run as coroutines, llvmpipe) or `"workgroup"` (a workgroup reduces a whole row
   * through a tree in workgroup memory: one launch per reduction, `ops/workgroup_tree.ts`).
   */
  readonly reductions: "chunked" | "workgroup";
  /**
   * Bind groups a generation makes before the WebGPU backend releases it (`bind_groups.ts`), or
   * 0 to leave bind groups to the garbage collector. Mesa's lavapipe (the Vulkan llvmpipe; Mesa
   * 25.0.7 is Debian 13's) backs every descriptor set with its own memory mapping and does not
   * check that the mapping succeeded: the bind groups waiting for the collector exhaust
   * `vm.max_map_count` and the driver crashes (`docs/mesa25_crash.md`). The adapter does not
   * report the Mesa version, so every llvmpipe and lavapipe adapter releases bind groups in
   * generations.
   */
  readonly bindGroupsPerGeneration: number;
}

/** The adapter limits the profile reads (a `GPUSupportedLimits` has them all). */
export interface ProfileLimits {
  /** Invocations of one workgroup. */
  readonly maxComputeInvocationsPerWorkgroup: number;
  /** A workgroup's x extent. */
  readonly maxComputeWorkgroupSizeX: number;
  /** Bytes of `var<workgroup>` memory. */
  readonly maxComputeWorkgroupStorageSize: number;
}

/** What is known of an adapter when its profile is made. */
export interface AdapterFacts {
  /** The adapter in words (`GPUAdapterInfo.description`, else its vendor). */
  readonly description?: string;
  /** The adapter says it is a fallback (software) adapter. */
  readonly isFallbackAdapter?: boolean;
  /** Its limits; WebGPU's defaults where absent. */
  readonly limits?: ProfileLimits;
}

/**
 * The overrides that put any backend on the hardware adapters' kernels (shared-memory matmul,
 * implicit-GEMM convolution, workgroup reductions, no uniform windows): tests and benches pass them to
 * {@linkcode withProfile} to run those kernels on llvmpipe or the CPU twins.
 */
export const HARDWARE_PATHS: Readonly<Partial<DeviceProfile>> = {
  matmul: "tiled",
  conv: "implicit",
  uniformWindows: false,
  reductions: "workgroup",
};

/**
 * Bind groups per generation on llvmpipe: a default training step makes ~1,700 launches; its
 * first steps make ~1,200, ~900 and ~350 groups, later steps ~20 (the buffer pool hands out the
 * oldest free buffer, `buffer_pool.ts`), so a generation lasts ~250 steps and holds ~12,000
 * mappings at most.
 */
export const LLVMPIPE_BIND_GROUPS_PER_GENERATION = 8192;

/** Default most elements of one im2col matrix. */
export const CONV_COL_LIMIT = 1 << 24;

/** WebGPU's default limits (every adapter has at least these). */
const DEFAULT_LIMITS: ProfileLimits = {
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupStorageSize: 16384,
};

/**
 * Whether an adapter renders in software on the CPU (llvmpipe, lavapipe, SwiftShader, WARP):
 * the adapter says so itself (`isFallbackAdapter`) or its name does.
 *
 * @example
 * ```ts
 * import { isSoftwareAdapter } from "./device_profile.ts";
 * console.log(isSoftwareAdapter({ description: "llvmpipe (LLVM 15.0.6, 256 bits)" })); // true
 * ```
 */
export function isSoftwareAdapter(info: AdapterFacts): boolean {
  return info.isFallbackAdapter === true ||
    /llvmpipe|lavapipe|softpipe|swiftshader|microsoft basic render|\bwarp\b/i.test(
      info.description ?? "",
    );
}

/** The kind of a WebGPU adapter: llvmpipe (Mesa's LLVM rasteriser), another software one, or hardware. */
export function adapterKind(info: AdapterFacts): AdapterKind {
  if (/llvmpipe/i.test(info.description ?? "")) return "llvmpipe";
  return isSoftwareAdapter(info) ? "software" : "hardware";
}

/**
 * The largest {@linkcode GemmTiles} the limits allow: 4 x 4 register blocks, 16 x 16 invocations
 * (64 x 64 outputs) where a workgroup may have 256, fewer where not, and the inner step `bk`
 * (at most 16) that fits both (padded) tiles in workgroup memory.
 *
 * @example
 * ```ts
 * import { preferredTiles } from "./device_profile.ts";
 * const tiles = preferredTiles({
 *   maxComputeInvocationsPerWorkgroup: 256,
 *   maxComputeWorkgroupSizeX: 256,
 *   maxComputeWorkgroupStorageSize: 16384,
 * });
 * console.log(tiles); // { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 }
 * ```
 */
export function preferredTiles(limits: ProfileLimits): GemmTiles {
  const invocations = Math.min(
    limits.maxComputeInvocationsPerWorkgroup,
    limits.maxComputeWorkgroupSizeX,
  );
  const tm = 4, tn = 4;
  let side = 16; // invocations per row of the workgroup
  while (side > 1 && side * side > invocations) side /= 2;
  const bm = side * tm, bn = side * tn;
  let bk = 16;
  // Both tiles, rows padded by one float (A) and one vec4 (B): see tiled_gemm.ts's tileBytes.
  while (bk > 1 && (bm + 1 + bn + 4) * bk * 4 > limits.maxComputeWorkgroupStorageSize) bk /= 2;
  return { bm, bn, bk, tm, tn };
}

/**
 * The profile of a WebGPU adapter. llvmpipe keeps its own kernels (wide register blocks, uniform
 * windows, direct convolutions, chunked reductions) and loop budget; hardware adapters get the
 * shared-memory matmul, implicit-GEMM convolution and workgroup reductions; other software adapters (SwiftShader) the portable register blocks.
 *
 * @example
 * ```ts
 * import { adapterProfile } from "./device_profile.ts";
 * const gpu = adapterProfile({ description: "NVIDIA H100" });
 * console.log(gpu.kind, gpu.matmul, gpu.conv); // hardware tiled implicit
 * const mesa = adapterProfile({ description: "llvmpipe (LLVM 15.0.6, 256 bits)" });
 * console.log(mesa.loopBudget, mesa.uniformWindows); // 16384 true
 * ```
 */
export function adapterProfile(info: AdapterFacts): DeviceProfile {
  const kind = adapterKind(info);
  const mesa = /llvmpipe|lavapipe/i.test(info.description ?? "");
  const llvmpipe = kind === "llvmpipe", hardware = kind === "hardware";
  return {
    kind,
    software: !hardware,
    loopBudget: hardware ? 4 * LOOP_BUDGET : LOOP_BUDGET,
    uniformWindows: llvmpipe,
    matmul: hardware ? "tiled" : "blocked",
    conv: hardware ? "implicit" : "im2col",
    tiles: preferredTiles(info.limits ?? DEFAULT_LIMITS),
    matmulUniform: "auto",
    convDirect: "auto",
    convUniform: "auto",
    convColLimit: CONV_COL_LIMIT,
    reductions: hardware ? "workgroup" : "chunked",
    bindGroupsPerGeneration: mesa ? LLVMPIPE_BIND_GROUPS_PER_GENERATION : 0,
  };
}

/**
 * The profile of a host backend (the CPU twins, OpenBLAS): the portable paths, which its own
 * kernels replace where it has them.
 *
 * @example
 * ```ts
 * import { hostProfile } from "./device_profile.ts";
 * console.log(hostProfile().kind); // host
 * ```
 */
export function hostProfile(): DeviceProfile {
  return {
    kind: "host",
    software: true,
    loopBudget: LOOP_BUDGET,
    uniformWindows: false,
    matmul: "blocked",
    conv: "im2col",
    tiles: preferredTiles(DEFAULT_LIMITS),
    matmulUniform: "auto",
    convDirect: "auto",
    convUniform: "auto",
    convColLimit: CONV_COL_LIMIT,
    reductions: "chunked",
    bindGroupsPerGeneration: 0,
  };
}

function checkOverrides(overrides: Partial<DeviceProfile>): void {
  for (const name of ["matmulUniform", "convDirect", "convUniform"] as const) {
    const mode = overrides[name];
    if (mode !== undefined && mode !== "auto" && mode !== "on" && mode !== "off") {
      throw new RangeError(
        `Profile field "${name}" ${JSON.stringify(mode)} is not auto, on or off`,
      );
    }
  }
  const reductions = overrides.reductions;
  if (reductions !== undefined && reductions !== "chunked" && reductions !== "workgroup") {
    throw new RangeError(
      `Profile field "reductions" ${JSON.stringify(reductions)} is not chunked or workgroup`,
    );
  }
  for (const name of ["loopBudget", "convColLimit"] as const) {
    const value = overrides[name];
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
      throw new RangeError(`Profile field "${name}" ${value} must be a positive integer`);
    }
  }
  const tiles = overrides.tiles;
  if (
    tiles && (tiles.bm % tiles.tm !== 0 || tiles.bn % tiles.tn !== 0 || tiles.bk < 1 ||
      (tiles.bm / tiles.tm) * (tiles.bn / tiles.tn) > 256)
  ) {
    throw new RangeError(
      `Profile tiles ${JSON.stringify(tiles)} must split into at most 256 whole register blocks`,
    );
  }
}

/**
 * Runs `run` with `overrides` applied to `backend.profile`, restoring the profile afterwards
 * (after the promise settles when `run` is async). Paths are chosen when an op is called, so
 * ops called inside `run` take the overridden paths.
 *
 * @example Force the shared-memory matmul on the CPU backend (its twin runs)
 * ```ts
 * import { withProfile } from "./device_profile.ts";
 * import { cpu } from "./device.ts";
 * import { matmul } from "./ops/matmul.ts";
 * import { tensor } from "./tensor.ts";
 * const backend = cpu();
 * const c = withProfile(backend, { matmul: "tiled" }, () => {
 *   const a = tensor([[1, 2], [3, 4]], undefined, { backend });
 *   return matmul(a, a);
 * });
 * console.log(await c.data()); // Float32Array [7, 10, 15, 22]
 * ```
 *
 * @param backend The backend whose profile is overridden.
 * @param overrides Fields to replace.
 * @param run Work to do under the overridden profile.
 * @returns What `run` returns.
 */
export function withProfile<T>(
  backend: Backend,
  overrides: Partial<DeviceProfile>,
  run: () => T,
): T {
  checkOverrides(overrides);
  const previous = backend.profile;
  backend.profile = { ...previous, ...overrides };
  let result: T;
  try {
    result = run();
  } catch (error) {
    backend.profile = previous;
    throw error;
  }
  if (result instanceof Promise) {
    return result.finally(() => (backend.profile = previous)) as T;
  }
  backend.profile = previous;
  return result;
}
