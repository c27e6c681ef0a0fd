/**
 * The interface both backends implement: memory, kernel launches and readback.
 *
 * @module
 */

import type { DType, TypedArray } from "./dtype.ts";
import type { DeviceProfile } from "./device_profile.ts";
import type { Launch } from "./kernel.ts";

/** The name of a backend. */
export type BackendName = "cpu" | "native" | "webgpu";

/**
 * A block of device memory; tensors that share it (reshapes) count references. A view
 * ({@linkcode storageView}) is a byte range of a parent storage, which lives while its views do.
 */
export interface Storage {
  /** Bytes in use (the buffer behind it may be larger). */
  readonly byteLength: number;
  /** Where it starts in its buffer: 0, or a multiple of {@linkcode STORAGE_VIEW_ALIGNMENT}. */
  readonly byteOffset: number;
  /** The storage this one is a byte range of, for a view. */
  readonly parent?: Storage;
  /** Tensors (and views) holding this storage; it returns to the pool at 0. */
  refs: number;
}

/**
 * Alignment of a view's start: WebGPU binds a buffer range only at a multiple of the adapter's
 * `minStorageBufferOffsetAlignment`, which is at most 256 on every adapter (the spec's default
 * and largest value).
 */
export const STORAGE_VIEW_ALIGNMENT = 256;

/**
 * A storage that is bytes `[byteOffset, byteOffset + byteLength)` of `parent` (its own offset
 * added), holding a reference to `parent` until it is released with {@linkcode releaseStorage}.
 * Backends bind, copy and read a view at its offset.
 *
 * @example Two views of one CPU buffer
 * ```ts
 * import { storageView } from "./backend.ts";
 * import { cpu } from "./device.ts";
 * import { Tensor } from "./tensor.ts";
 * const backend = cpu();
 * const whole = backend.alloc("f32", 128);
 * const second = new Tensor(storageView(whole, 256, 8), [2], "f32", backend);
 * console.log(second.storage.byteOffset, whole.refs); // 256 1
 * ```
 *
 * @param parent The storage to view.
 * @param byteOffset Start within `parent`, a multiple of {@linkcode STORAGE_VIEW_ALIGNMENT}.
 * @param byteLength Bytes of the view.
 */
export function storageView(parent: Storage, byteOffset: number, byteLength: number): Storage {
  if (
    !Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % STORAGE_VIEW_ALIGNMENT !== 0
  ) {
    throw new RangeError(
      `Cannot view storage at byte ${byteOffset}: not a multiple of ${STORAGE_VIEW_ALIGNMENT}`,
    );
  }
  if (!(byteLength >= 0) || byteOffset + byteLength > parent.byteLength) {
    throw new RangeError(
      `Cannot view bytes [${byteOffset}, ${
        byteOffset + byteLength
      }) of a ${parent.byteLength}-byte storage`,
    );
  }
  parent.refs++;
  return { ...parent, byteOffset: parent.byteOffset + byteOffset, byteLength, refs: 0, parent };
}

/**
 * Releases `storage` once nothing holds it (`refs` is 0): a view drops its reference to its
 * parent (releasing the parent when that was the last), other storage returns to `backend`.
 */
export function releaseStorage(backend: Backend, storage: Storage): void {
  const parent = storage.parent;
  if (!parent) backend.release(storage);
  else if (--parent.refs === 0) releaseStorage(backend, parent);
}

/** Time spent in the launches of one kernel label while profiling. */
export interface KernelTime {
  /** The kernel's label (`family.variant`). */
  label: string;
  /** Launches. */
  calls: number;
  /** Total milliseconds (device time on WebGPU, wall time of the CPU twin on the CPU). */
  ms: number;
}

/**
 * Running totals of where a backend's host time goes, since the backend was made: cheap enough to
 * keep always (a few `performance.now()` calls per submit and per wait). A bench takes one
 * snapshot before a step and one after, and {@linkcode encodeMs} turns them into the step's host
 * time.
 */
export interface HostStats {
  /** Milliseconds spent awaiting the device: `read`, `sync` (0 on the host backends). */
  waitMs: number;
  /**
   * `performance.now()` just after the last submit (WebGPU `queue.submit`; on the host backends,
   * the end of the last kernel run or copy); 0 before the first.
   */
  lastSubmitAt: number;
  /** What `waitMs` was at the last submit (waits after it are not part of the work before it). */
  waitMsAtLastSubmit: number;
  /** Kernel launches encoded (WebGPU, which skips launches of 0 workgroups) or run (host). */
  launches: number;
  /** Submits: WebGPU `queue.submit` calls; on the host backends, the same as `launches`. */
  submits: number;
}

/**
 * A backend's {@linkcode HostStats} before any work: every count and time 0.
 *
 * @example
 * ```ts
 * import { emptyHostStats } from "./backend.ts";
 * console.log(emptyHostStats().launches); // 0
 * ```
 */
export function emptyHostStats(): HostStats {
  return { waitMs: 0, lastSubmitAt: 0, waitMsAtLastSubmit: 0, launches: 0, submits: 0 };
}

/** Where tensors live and kernels run. */
export interface Backend {
  /** Which backend this is. */
  readonly name: BackendName;
  /** The adapter, in words (e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`). */
  readonly description: string;
  /**
   * What ops ask about the adapter (kind, loop budget, tiles, which variants pay); computed once
   * when the backend is made. Replace it only through `withProfile` (tensor/device_profile.ts).
   */
  profile: DeviceProfile;
  /** Uninitialised storage for `size` elements of `dtype`. */
  alloc(dtype: DType, size: number): Storage;
  /** Storage holding a copy of `data`. */
  upload(data: TypedArray): Storage;
  /** Copies `size` elements out; the only way numbers reach the CPU. */
  read(storage: Storage, dtype: DType, size: number): Promise<TypedArray>;
  /** Returns storage (not a view: see {@linkcode releaseStorage}) to the pool. */
  release(storage: Storage): void;
  /** Encodes (GPU) or runs (CPU) one kernel launch. */
  run(launch: Launch): void;
  /** Copies `bytes` bytes between storages (offsets from each storage's start). */
  copy(src: Storage, srcOffset: number, dst: Storage, dstOffset: number, bytes: number): void;
  /** Submits pending work without waiting for it. */
  flush(): void;
  /** Submits pending work and waits until the device has finished it. */
  sync(): Promise<void>;
  /** Storages allocated and not returned to the pool. */
  liveBuffers(): number;
  /** A snapshot of the backend's running host-time totals ({@linkcode HostStats}). */
  hostStats(): HostStats;
  /**
   * Starts timing every launch: WebGPU puts each launch in its own pass with timestamp queries
   * (slower; throws where the adapter lacks `timestamp-query`), the CPU times each twin.
   */
  startProfile(): void;
  /** Stops timing and returns the time per kernel label, largest first. */
  stopProfile(): Promise<KernelTime[]>;
}

/**
 * The host time of work that ran between two {@linkcode HostStats} snapshots, in milliseconds:
 * from `startedAt` (a `performance.now()` taken with `before`) to the last submit in `after`,
 * less the time spent waiting on the device in between (waits after that submit do not count). Call `backend.flush()` before taking
 * `after`, so that the work's last launches are submitted.
 *
 * @example
 * ```ts
 * import { encodeMs } from "./backend.ts";
 * import assert from "node:assert/strict";
 *
 * const before = { waitMs: 5, lastSubmitAt: 0, waitMsAtLastSubmit: 5, launches: 0, submits: 0 };
 * const after = { waitMs: 9, lastSubmitAt: 110, waitMsAtLastSubmit: 8, launches: 40, submits: 2 };
 * // 10 ms to the last submit, 3 of them waiting (the 1 ms wait after it does not count)
 * assert.equal(encodeMs(100, before, after), 7);
 * ```
 *
 * @param startedAt `performance.now()` when the work started.
 * @param before The backend's stats when the work started.
 * @param after The backend's stats after the work (and a flush).
 * @returns Milliseconds; 0 when nothing was submitted after `startedAt`.
 */
export function encodeMs(startedAt: number, before: HostStats, after: HostStats): number {
  if (after.lastSubmitAt < startedAt) return 0;
  return after.lastSubmitAt - startedAt - (after.waitMsAtLastSubmit - before.waitMs);
}

/** Adds `ms` to `label`'s entry of a profile. */
export function addKernelTime(times: Map<string, KernelTime>, label: string, ms: number): void {
  const entry = times.get(label) ?? { label, calls: 0, ms: 0 };
  entry.calls++;
  entry.ms += ms;
  times.set(label, entry);
}

/** A profile's entries, largest total first. */
export function sortedKernelTimes(times: Map<string, KernelTime>): KernelTime[] {
  return [...times.values()].sort((a, b) => b.ms - a.ms);
}

/** Rounds a byte count up to its pool bucket: powers of two in quarter steps, 256 B minimum. */
export function poolBucket(bytes: number): number {
  if (bytes <= 256) return 256;
  // Runs on every allocation: the first quarter step of the power of two at or below `bytes`
  // that holds it, without a list of steps.
  const quarter = 2 ** Math.floor(Math.log2(bytes)) / 4;
  return Math.ceil(bytes / quarter) * quarter;
}
