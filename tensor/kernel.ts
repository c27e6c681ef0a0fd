/**
 * Kernels: one WGSL compute shader and its plain-TypeScript twin, described
 * once and run by either backend.
 *
 * A kernel names its storage inputs and outputs and its uniform parameters;
 * {@linkcode wgslPrelude} generates the matching WGSL declarations, so a
 * kernel's `code` holds only its entry point. Bindings are: group 0, the inputs
 * then the outputs in declaration order; group 1 binding 0, the uniform `p`.
 *
 * @module
 */

import type { DType, TypedArray } from "./dtype.ts";
import { wgslType } from "./dtype.ts";

/** The type of one uniform parameter; `u32x8` is an array of 8 `u32` (shapes, strides). */
export type ParamType = "u32" | "i32" | "f32" | "u32x8";

/** Values for a kernel's uniform parameters, by name. */
export type ParamValues = Readonly<Record<string, number | readonly number[]>>;

/** The CPU twin: reads `inputs`, writes every element of `outputs`. */
export type CpuTwin = (
  inputs: Record<string, TypedArray>,
  outputs: Record<string, TypedArray>,
  params: ParamValues,
) => void;

/** A compute kernel with its CPU twin. */
export interface Kernel {
  /** `family.variant`, e.g. `reduce.sum_rows`; names the kernel in errors. */
  readonly label: string;
  /** Storage inputs in binding order, with their element types. */
  readonly inputs: Readonly<Record<string, DType>>;
  /** Storage outputs in binding order (after the inputs), with their element types. */
  readonly outputs: Readonly<Record<string, DType>>;
  /** Uniform parameters in struct order. */
  readonly params: Readonly<Record<string, ParamType>>;
  /** Invocations per workgroup (1-D). */
  readonly workgroupSize: number;
  /** The WGSL entry point `main` and its helpers; the prelude is prepended. */
  readonly code: string;
  /** The CPU twin, the reference the WGSL is tested against. */
  readonly cpu: CpuTwin;
  /**
   * Optional f32 inputs the WGSL reads 4 floats at a time, declared `array<vec4<f32>>` (the CPU
   * twin sees plain floats). A launch must bind them with a multiple of 4 elements.
   */
  readonly vec4Inputs?: readonly string[];
  /**
   * Optional uniform-window inputs, each declared `var<uniform> NAME: array<vec4<f32>, 4096>`
   * (64 KiB) in group 2, bindings in list order; a launch supplies them as
   * {@linkcode Launch.uniformInputs}. The CPU twin sees each as an `f32` input of
   * {@linkcode UNIFORM_WINDOW_FLOATS} elements under its name.
   */
  readonly uniforms?: readonly string[];
}

/** Bytes in one uniform window: 64 KiB, WebGPU's default `maxUniformBufferBindingSize`. */
export const UNIFORM_WINDOW_BYTES = 65536;

/** Floats in one uniform window ({@linkcode UNIFORM_WINDOW_BYTES} / 4). */
export const UNIFORM_WINDOW_FLOATS: number = UNIFORM_WINDOW_BYTES / 4;

/**
 * Loop iterations one kernel invocation may run: llvmpipe (Mesa's software adapter) silently ends
 * a shader loop after about 65,535 iterations, so every kernel keeps each invocation's loops below
 * this and splits longer work over invocations or dispatches.
 */
export const LOOP_LIMIT = 65535;

/**
 * Iterations an invocation's main loop is planned for: a quarter of {@linkcode LOOP_LIMIT},
 * leaving room for what each iteration loops over (matmul's inner-axis chunk, the direct
 * convolutions' taps, a prefix scan's lane).
 */
export const LOOP_BUDGET: number = (LOOP_LIMIT + 1) / 4;

/** Window offsets are multiples of this, WebGPU's default `minUniformBufferOffsetAlignment`. */
export const UNIFORM_WINDOW_ALIGNMENT = 256;

/**
 * Floats a window is sure to hold of a run that starts anywhere: a window begins at the aligned
 * offset at or before the run's first float, so up to 63 floats of it may lie before the run.
 */
export const UNIFORM_WINDOW_SPAN: number = UNIFORM_WINDOW_FLOATS -
  (UNIFORM_WINDOW_ALIGNMENT / 4 - 1);

/** A 64 KiB window of a tensor's storage, read by a kernel through a uniform binding. */
export interface UniformWindow {
  /** The backend's storage (f32); it must hold `byteOffset + 65536` bytes. */
  readonly storage: unknown;
  /** Byte offset of the window, a multiple of {@linkcode UNIFORM_WINDOW_ALIGNMENT}. */
  readonly byteOffset: number;
}

/** Where a launch reads and writes: a backend's storage and its element count. */
export interface BufferBinding {
  /** The backend's storage. */
  readonly storage: unknown;
  /** Element type the kernel sees. */
  readonly dtype: DType;
  /** Element count. */
  readonly size: number;
}

/** One dispatch of a kernel. */
export interface Launch {
  /** The kernel to run. */
  readonly kernel: Kernel;
  /** Its storage inputs, in the kernel's order. */
  readonly inputs: readonly BufferBinding[];
  /** Its storage outputs, in the kernel's order. */
  readonly outputs: readonly BufferBinding[];
  /** Its uniform parameters. */
  readonly params: ParamValues;
  /** Total workgroups; the backend folds counts over 65,535 into a 2-D grid. */
  readonly workgroups: number;
  /** Windows for the kernel's {@linkcode Kernel.uniforms}, in order. */
  readonly uniformInputs?: readonly UniformWindow[];
  /**
   * Take the workgroup count from the device instead: three `u32` (x, y, z) at `byteOffset` of
   * `storage`, written by an earlier kernel. `workgroups` is then an upper bound (a CPU twin
   * runs once, as always). Data-dependent sizes need no readback this way.
   */
  readonly indirect?: { readonly storage: unknown; readonly byteOffset: number };
}

/**
 * A module's cache of kernel variants: the returned `cached(key, make)` builds the variant
 * `key` with `make` on first use and returns the same object afterwards (backends cache
 * compiled pipelines by kernel object).
 *
 * @example
 * ```ts
 * import { entryPoint, kernelCache } from "./kernel.ts";
 * import assert from "node:assert/strict";
 *
 * const cached = kernelCache();
 * const make = () => ({
 *   label: "demo.noop",
 *   inputs: {},
 *   outputs: {},
 *   params: {},
 *   workgroupSize: 1,
 *   code: `${entryPoint(1)}\n}`,
 *   cpu() {},
 * });
 * assert.equal(cached("noop", make), cached("noop", make));
 * ```
 */
export function kernelCache(): (key: string, make: () => Kernel) => Kernel {
  const kernels = new Map<string, Kernel>();
  return (key, make) => {
    let kernel = kernels.get(key);
    if (!kernel) {
      kernel = make();
      kernels.set(key, kernel);
    }
    return kernel;
  };
}

/** Declarations of a kernel's bindings, its `Params` struct and the `flat_id` helper. */
export function wgslPrelude(kernel: Kernel): string {
  const lines: string[] = [];
  const fields = Object.entries(kernel.params).map(([name, type]) =>
    `  ${name}: ${type === "u32x8" ? "array<vec4<u32>, 2>" : type},`
  );
  if (fields.length === 0) fields.push("  unused: u32,");
  lines.push(`struct Params {\n${fields.join("\n")}\n}`);
  let binding = 0;
  for (const [name, dtype] of Object.entries(kernel.inputs)) {
    const type = kernel.vec4Inputs?.includes(name) ? "vec4<f32>" : wgslType(dtype);
    lines.push(`@group(0) @binding(${binding++}) var<storage, read> ${name}: array<${type}>;`);
  }
  for (const [name, dtype] of Object.entries(kernel.outputs)) {
    lines.push(
      `@group(0) @binding(${binding++}) var<storage, read_write> ${name}: array<${
        wgslType(dtype)
      }>;`,
    );
  }
  lines.push(`@group(1) @binding(0) var<uniform> p: Params;`);
  (kernel.uniforms ?? []).forEach((name, k) =>
    lines.push(
      `@group(2) @binding(${k}) var<uniform> ${name}: array<vec4<f32>, ${
        UNIFORM_WINDOW_FLOATS / 4
      }>;`,
    )
  );
  lines.push(`fn u32x8_at(a: array<vec4<u32>, 2>, i: u32) -> u32 { return a[i / 4u][i % 4u]; }`);
  lines.push(
    `fn flat_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * ${kernel.workgroupSize}u + lid;
}`,
  );
  lines.push(`const WG: u32 = ${kernel.workgroupSize}u;`);
  return lines.join("\n") + "\n";
}

/** The standard entry-point signature; `i` is the flat invocation id. */
export function entryPoint(workgroupSize: number): string {
  return `@compute @workgroup_size(${workgroupSize})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = flat_id(wid, nwg, lid);`;
}

/** Byte offsets of each parameter in the uniform struct, and its padded size. */
export function paramLayout(
  params: Readonly<Record<string, ParamType>>,
): { offsets: Record<string, number>; size: number } {
  return paramStruct(params);
}

function paramStruct(params: Readonly<Record<string, ParamType>>): ParamStruct {
  let layout = layouts.get(params);
  if (!layout) layouts.set(params, layout = computeLayout(params));
  return layout;
}

/** A params struct's layout, with its fields in order for {@linkcode packParams}. */
interface ParamStruct {
  offsets: Record<string, number>;
  size: number;
  fields: readonly { name: string; type: ParamType; offset: number }[];
}

const layouts = new WeakMap<object, ParamStruct>();

function computeLayout(params: Readonly<Record<string, ParamType>>): ParamStruct {
  const offsets: Record<string, number> = {};
  let offset = 0;
  let align = 4;
  for (const [name, type] of Object.entries(params)) {
    if (type === "u32x8") {
      offset = Math.ceil(offset / 16) * 16;
      align = 16;
      offsets[name] = offset;
      offset += 32;
    } else {
      offsets[name] = offset;
      offset += 4;
    }
  }
  const size = Math.max(16, Math.ceil(offset / Math.max(align, 16)) * Math.max(align, 16));
  const fields = Object.entries(params).map(([name, type]) => ({
    name,
    type,
    offset: offsets[name],
  }));
  return { offsets, size, fields };
}

/** Writes `values` into `view` at the offsets of {@linkcode paramLayout}. */
export function packParams(
  kernel: Kernel,
  values: ParamValues,
  view: DataView,
  base: number,
): void {
  // Runs once per launch: the fields come in order from the cached layout.
  for (const { name, type, offset } of paramStruct(kernel.params).fields) {
    const value = values[name];
    if (value === undefined) {
      throw new TypeError(`Kernel "${kernel.label}" is missing parameter "${name}"`);
    }
    const at = base + offset;
    if (type === "u32x8") {
      const list = value as readonly number[];
      for (let k = 0; k < 8; k++) view.setUint32(at + 4 * k, list[k] ?? 0, true);
    } else if (type === "f32") view.setFloat32(at, value as number, true);
    else if (type === "i32") view.setInt32(at, value as number, true);
    else view.setUint32(at, value as number, true);
  }
}
