/**
 * The interface both backends implement: memory, kernel launches and readback.
 *
 * @module
 */

import type { DType, TypedArray } from "./dtype.ts";
import type { Launch } from "./kernel.ts";

/** The name of a backend. */
export type BackendName = "cpu" | "webgpu";

/** A block of device memory; tensors that share it (reshapes) count references. */
export interface Storage {
  /** Bytes in use (the buffer behind it may be larger). */
  readonly byteLength: number;
  /** Tensors holding this storage; it returns to the pool at 0. */
  refs: number;
}

/** Where tensors live and kernels run. */
export interface Backend {
  /** Which backend this is. */
  readonly name: BackendName;
  /** The adapter, in words (e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`). */
  readonly description: string;
  /** Uninitialised storage for `size` elements of `dtype`. */
  alloc(dtype: DType, size: number): Storage;
  /** Storage holding a copy of `data`. */
  upload(data: TypedArray): Storage;
  /** Copies `size` elements out; the only way numbers reach the CPU. */
  read(storage: Storage, dtype: DType, size: number): Promise<TypedArray>;
  /** Returns storage to the pool. */
  release(storage: Storage): void;
  /** Encodes (GPU) or runs (CPU) one kernel launch. */
  run(launch: Launch): void;
  /** Copies `bytes` bytes between storages. */
  copy(src: Storage, srcOffset: number, dst: Storage, dstOffset: number, bytes: number): void;
  /** Submits pending work without waiting for it. */
  flush(): void;
  /** Submits pending work and waits until the device has finished it. */
  sync(): Promise<void>;
  /** Storages allocated and not returned to the pool. */
  liveBuffers(): number;
}
