/**
 * The CPU backend: plain TypeScript over typed arrays. It runs each kernel's
 * CPU twin, so it is the oracle the WebGPU kernels are tested against, and the
 * fallback where no adapter exists. It also holds `f64` tensors.
 *
 * @module
 */

import {
  addKernelTime,
  type Backend,
  type KernelTime,
  sortedKernelTimes,
  type Storage,
} from "./backend.ts";
import { BYTES_PER_ELEMENT, type DType, type TypedArray, viewAs } from "./dtype.ts";
import type { BufferBinding, Launch } from "./kernel.ts";

/** CPU storage: an `ArrayBuffer`. */
export interface CpuStorage extends Storage {
  readonly buffer: ArrayBuffer;
}

function view(binding: BufferBinding): TypedArray {
  return viewAs((binding.storage as CpuStorage).buffer, binding.dtype, binding.size);
}

/** Creates the CPU backend. */
export function createCpuBackend(): Backend {
  let live = 0;
  let profile: Map<string, KernelTime> | null = null;
  return {
    name: "cpu",
    description: "CPU (TypeScript)",
    alloc(dtype: DType, size: number): CpuStorage {
      live++;
      const byteLength = size * BYTES_PER_ELEMENT[dtype];
      return { buffer: new ArrayBuffer(byteLength), byteLength, refs: 0 };
    },
    upload(data: TypedArray): CpuStorage {
      live++;
      const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
      return { buffer: buffer as ArrayBuffer, byteLength: data.byteLength, refs: 0 };
    },
    read(storage: Storage, dtype: DType, size: number): Promise<TypedArray> {
      const bytes = size * BYTES_PER_ELEMENT[dtype];
      return Promise.resolve(viewAs((storage as CpuStorage).buffer.slice(0, bytes), dtype, size));
    },
    release() {
      live--;
    },
    run(launch: Launch) {
      const { kernel } = launch;
      const inputs: Record<string, TypedArray> = {};
      const outputs: Record<string, TypedArray> = {};
      Object.keys(kernel.inputs).forEach((name, k) => inputs[name] = view(launch.inputs[k]));
      Object.keys(kernel.outputs).forEach((name, k) => outputs[name] = view(launch.outputs[k]));
      (kernel.uniforms ?? []).forEach((name, k) => {
        const window = launch.uniformInputs?.[k];
        if (!window) throw new TypeError(`Kernel "${kernel.label}" is missing uniform "${name}"`);
        const buffer = (window.storage as CpuStorage).buffer;
        const floats = Math.min(16384, Math.max(0, (buffer.byteLength - window.byteOffset) / 4));
        inputs[name] = new Float32Array(buffer, window.byteOffset, Math.floor(floats));
      });
      const started = profile ? performance.now() : 0;
      kernel.cpu(inputs, outputs, launch.params);
      if (profile) addKernelTime(profile, kernel.label, performance.now() - started);
    },
    copy(src: Storage, srcOffset: number, dst: Storage, dstOffset: number, bytes: number) {
      new Uint8Array((dst as CpuStorage).buffer, dstOffset, bytes).set(
        new Uint8Array((src as CpuStorage).buffer, srcOffset, bytes),
      );
    },
    flush() {},
    sync: () => Promise.resolve(),
    liveBuffers: () => live,
    startProfile() {
      profile = new Map();
    },
    stopProfile() {
      const times = sortedKernelTimes(profile ?? new Map());
      profile = null;
      return Promise.resolve(times);
    },
  };
}
