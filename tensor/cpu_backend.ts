/**
 * Backends whose tensors live in CPU memory (`ArrayBuffer`s).
 *
 * The CPU backend is plain TypeScript: it runs each kernel's CPU twin, so it is
 * the oracle the other backends are tested against, and the fallback where
 * nothing else runs. It also holds `f64` tensors.
 *
 * {@linkcode createHostBackend} is the same machinery with two additions the
 * native backend uses: a table of faster implementations that replace some
 * twins (looked up once per kernel), and a pool that reuses released buffers
 * instead of allocating (and page-faulting) fresh zeroed memory every step.
 *
 * @module
 */

import {
  addKernelTime,
  type Backend,
  type BackendName,
  emptyHostStats,
  type KernelTime,
  poolBucket,
  sortedKernelTimes,
  type Storage,
} from "./backend.ts";
import { hostProfile } from "./device_profile.ts";
import { BYTES_PER_ELEMENT, type DType, type TypedArray, viewAs } from "./dtype.ts";
import {
  type BufferBinding,
  type CpuTwin,
  type Kernel,
  type Launch,
  UNIFORM_WINDOW_FLOATS,
} from "./kernel.ts";

/**
 * CPU storage: an `ArrayBuffer` (possibly larger than `byteLength` when pooled), or a range of
 * one (a view, at `byteOffset`).
 */
export interface CpuStorage extends Storage {
  readonly buffer: ArrayBuffer;
}

/**
 * A faster implementation of `kernel` with its twin's contract, or `undefined` to run the twin.
 * Asked once per kernel object.
 */
export type HostKernels = (kernel: Kernel) => CpuTwin | undefined;

/** What distinguishes one host backend from another. */
export interface HostBackendSpec {
  /** The backend's name. */
  readonly name: BackendName;
  /** The backend in words. */
  readonly description: string;
  /** Replacements for some CPU twins; default none. */
  readonly kernels?: HostKernels;
  /** Idle bytes the buffer pool keeps for reuse; default 0 (no pool: fresh buffers). */
  readonly poolBytes?: number;
}

/** The typed-array view of one binding, or of a host tensor (a tensor is a binding of itself). */
export function hostView(binding: BufferBinding): TypedArray {
  const { buffer, byteOffset } = binding.storage as CpuStorage;
  return viewAs(buffer, binding.dtype, binding.size, byteOffset);
}

/**
 * Creates a backend over CPU memory that runs `spec.kernels`' implementations where given and
 * the kernels' CPU twins elsewhere.
 *
 * @example
 * ```ts
 * import { createHostBackend } from "./cpu_backend.ts";
 * import { tensor } from "./tensor.ts";
 * import { add } from "./ops/elementwise.ts";
 * const backend = createHostBackend({ name: "cpu", description: "demo", poolBytes: 1 << 20 });
 * const x = tensor([1, 2], undefined, { backend });
 * console.log(await add(x, x).data()); // Float32Array [2, 4]
 * ```
 */
export function createHostBackend(spec: HostBackendSpec): Backend {
  let live = 0;
  let profile: Map<string, KernelTime> | null = null;
  /** Host backends never wait: every run or copy is a "submit" that has already finished. */
  const stats = emptyHostStats();
  const resolved = new WeakMap<Kernel, CpuTwin>();
  const poolLimit = spec.poolBytes ?? 0;
  const pool = new Map<number, ArrayBuffer[]>();
  let pooled = 0;

  function twinOf(kernel: Kernel): CpuTwin {
    let twin = resolved.get(kernel);
    if (!twin) {
      twin = spec.kernels?.(kernel) ?? kernel.cpu;
      resolved.set(kernel, twin);
    }
    return twin;
  }

  function allocBuffer(byteLength: number): ArrayBuffer {
    if (poolLimit === 0) return new ArrayBuffer(byteLength);
    const bucket = poolBucket(byteLength);
    const reused = pool.get(bucket)?.pop();
    if (reused) {
      pooled -= bucket;
      return reused;
    }
    return new ArrayBuffer(bucket);
  }

  return {
    name: spec.name,
    description: spec.description,
    profile: hostProfile(),
    alloc(dtype: DType, size: number): CpuStorage {
      live++;
      const byteLength = size * BYTES_PER_ELEMENT[dtype];
      return { buffer: allocBuffer(byteLength), byteLength, byteOffset: 0, refs: 0 };
    },
    upload(data: TypedArray): CpuStorage {
      live++;
      const buffer = allocBuffer(data.byteLength);
      new Uint8Array(buffer, 0, data.byteLength).set(
        new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      );
      return { buffer, byteLength: data.byteLength, byteOffset: 0, refs: 0 };
    },
    read(storage: Storage, dtype: DType, size: number): Promise<TypedArray> {
      const bytes = size * BYTES_PER_ELEMENT[dtype];
      const { buffer, byteOffset } = storage as CpuStorage;
      return Promise.resolve(viewAs(buffer.slice(byteOffset, byteOffset + bytes), dtype, size));
    },
    release(storage: Storage) {
      live--;
      if (poolLimit === 0) return;
      const buffer = (storage as CpuStorage).buffer;
      if (pooled + buffer.byteLength > poolLimit) return;
      const list = pool.get(buffer.byteLength);
      if (list) list.push(buffer);
      else pool.set(buffer.byteLength, [buffer]);
      pooled += buffer.byteLength;
    },
    run(launch: Launch) {
      const { kernel } = launch;
      const inputs: Record<string, TypedArray> = {};
      const outputs: Record<string, TypedArray> = {};
      Object.keys(kernel.inputs).forEach((name, k) => inputs[name] = hostView(launch.inputs[k]));
      Object.keys(kernel.outputs).forEach((name, k) => outputs[name] = hostView(launch.outputs[k]));
      (kernel.uniforms ?? []).forEach((name, k) => {
        const window = launch.uniformInputs?.[k];
        if (!window) throw new TypeError(`Kernel "${kernel.label}" is missing uniform "${name}"`);
        const { buffer, byteOffset } = window.storage as CpuStorage;
        const at = byteOffset + window.byteOffset;
        const floats = Math.min(UNIFORM_WINDOW_FLOATS, Math.max(0, (buffer.byteLength - at) / 4));
        inputs[name] = new Float32Array(buffer, at, Math.floor(floats));
      });
      const twin = twinOf(kernel);
      const started = profile ? performance.now() : 0;
      twin(inputs, outputs, launch.params);
      const ended = performance.now();
      if (profile) addKernelTime(profile, kernel.label, ended - started);
      stats.lastSubmitAt = ended;
      stats.launches++;
      stats.submits++;
    },
    copy(src: Storage, srcOffset: number, dst: Storage, dstOffset: number, bytes: number) {
      const from = src as CpuStorage, to = dst as CpuStorage;
      new Uint8Array(to.buffer, to.byteOffset + dstOffset, bytes).set(
        new Uint8Array(from.buffer, from.byteOffset + srcOffset, bytes),
      );
      stats.lastSubmitAt = performance.now();
    },
    flush() {},
    sync: () => Promise.resolve(),
    liveBuffers: () => live,
    hostStats: () => ({ ...stats }),
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

/** Creates the CPU backend: every kernel's CPU twin, fresh buffers. */
export function createCpuBackend(): Backend {
  return createHostBackend({ name: "cpu", description: "CPU (TypeScript)" });
}

/**
 * Whether `backend` keeps its tensors in CPU memory as {@linkcode CpuStorage} (the CPU and
 * native backends), so that host code may read them in place.
 */
export function isHostBackend(backend: Backend): boolean {
  return backend.name === "cpu" || backend.name === "native";
}
