/**
 * The WebGPU backend: buffers from a size-bucketed pool (`buffer_pool.ts`), kernels compiled once
 * and cached by source, launches encoded eagerly into one command encoder and
 * submitted only when a result is read, a copy needs it, or the batch is large.
 *
 * Uniform parameters of all launches in a batch live in one ring buffer bound
 * with a dynamic offset, written once per submit. Uploads made while launches are pending go
 * through a second ring, written at the same time, and a copy encoded in order, so that they do
 * not force a submit (on llvmpipe a submit waits for the one before it to finish). Bind groups come from
 * `bind_groups.ts`: on llvmpipe, released in generations (the profile's `bindGroupsPerGeneration`,
 * `device_profile.ts`).
 *
 * @module
 */

import {
  addKernelTime,
  type Backend,
  emptyHostStats,
  type KernelTime,
  poolBucket,
  sortedKernelTimes,
  type Storage,
} from "./backend.ts";
import {
  type BindGroups,
  bindGroupsInGenerations,
  type BufferRange,
  plainBindGroups,
} from "./bind_groups.ts";
import { BufferPool } from "./buffer_pool.ts";
import { BYTES_PER_ELEMENT, type DType, type TypedArray, viewAs } from "./dtype.ts";
import { adapterProfile, type DeviceProfile } from "./device_profile.ts";
import { GpuError, ShaderCompileError } from "./errors.ts";
import {
  type BufferBinding,
  type Kernel,
  type Launch,
  packParams,
  paramLayout,
  UNIFORM_WINDOW_BYTES,
  wgslPrelude,
} from "./kernel.ts";

/** WebGPU storage: a pooled `GPUBuffer`, or a range of one (a view, at `byteOffset`). */
export interface GpuStorage extends Storage {
  readonly buffer: GPUBuffer;
  /** The buffer's size in bytes (its pool bucket), kept here: `GPUBuffer.size` is a native call. */
  readonly bucket: number;
}

const PARAM_SLOT = 256;
const RING_BYTES = 1 << 20;
/** Uploads staged while launches are pending, written once per submit (see `upload`). */
const UPLOAD_RING_BYTES = 4 << 20;
const MAX_LAUNCHES_PER_SUBMIT = 2048;
const MAX_GRID = 65535;
/** Launches whose labels a device error names. */
const RECENT_LABELS = 4;

/** Folds a workgroup count into a grid of at most 65,535 per dimension. */
export function foldGrid(workgroups: number): [number, number] {
  const y = Math.ceil(workgroups / MAX_GRID);
  return [Math.ceil(workgroups / y), y];
}

interface CompiledKernel {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  /** Layout of group 2 (uniform windows), for kernels that declare them. */
  uniformLayout: GPUBindGroupLayout | null;
}

/**
 * Creates the WebGPU backend on `device` with `deviceProfile` (by default the one its description
 * and limits imply), which also carries the adapter's workarounds (`bindGroupsPerGeneration`).
 */
export function createWebGpuBackend(
  device: GPUDevice,
  description: string,
  deviceProfile: DeviceProfile = adapterProfile({ description, limits: device.limits }),
): Backend {
  const pool = new BufferPool<GPUBuffer>();
  const pipelines = new Map<string, CompiledKernel>();
  // Kernel objects are long-lived: look them up without rebuilding their source.
  const byKernel = new WeakMap<Kernel, CompiledKernel>();
  const storageLayouts = new Map<string, GPUBindGroupLayout>();
  const pending: Promise<void>[] = [];
  /** The labels of the last launches, `stats.launches % RECENT_LABELS` being the next slot. */
  const recentLabels: string[] = [];
  /** The last launches' labels, oldest first (for error messages). */
  const recentKernels = () => {
    const next = stats.launches % RECENT_LABELS;
    return [...recentLabels.slice(next), ...recentLabels.slice(0, next)];
  };
  let live = 0;
  let failure: Error | null = null;
  const maxBinding = device.limits.maxStorageBufferBindingSize;
  const paramAlign = Math.max(device.limits.minUniformBufferOffsetAlignment, PARAM_SLOT);
  const { bindGroupsPerGeneration } = deviceProfile;
  const bindGroups: BindGroups = bindGroupsPerGeneration > 0
    ? bindGroupsInGenerations(device, bindGroupsPerGeneration)
    : plainBindGroups(device);

  device.lost.then((info) => {
    failure ??= new GpuError(`GPU device lost (${info.reason}): ${info.message}`);
  });
  device.addEventListener("uncapturederror", (event) => {
    const error = (event as GPUUncapturedErrorEvent).error;
    failure ??= new GpuError(
      `GPU error after kernels [${recentKernels().join(", ")}]: ${error.message}`,
    );
  });

  const paramsLayout = device.createBindGroupLayout({
    label: "params",
    entries: [{
      binding: 0,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: "uniform", hasDynamicOffset: true, minBindingSize: PARAM_SLOT },
    }],
  });
  const ring = device.createBuffer({
    label: "params.ring",
    size: RING_BYTES,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  const ringHost = new ArrayBuffer(RING_BYTES);
  const ringView = new DataView(ringHost);
  const uploadRing = device.createBuffer({
    label: "upload.ring",
    size: UPLOAD_RING_BYTES,
    usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  const uploadHost = new Uint8Array(UPLOAD_RING_BYTES);
  const paramsGroup = device.createBindGroup({
    layout: paramsLayout,
    entries: [{ binding: 0, resource: { buffer: ring, size: PARAM_SLOT } }],
  });

  let encoder: GPUCommandEncoder | null = null;
  let pass: GPUComputePassEncoder | null = null;
  /** Created on the first profile and kept. */
  let timestampQueries: { querySet: GPUQuerySet; resolved: GPUBuffer } | null = null;
  /** While profiling: two timestamps per launch of the current submit, and the totals. */
  let profile: {
    querySet: GPUQuerySet;
    resolved: GPUBuffer;
    labels: string[];
    times: Map<string, KernelTime>;
    reads: Promise<void>[];
  } | null = null;
  let ringUsed = 0;
  /** Bytes of `uploadHost` staged for this submit's upload copies. */
  let uploadUsed = 0;
  let launches = 0;
  const stats = emptyHostStats();

  /** Awaits `work` (device work), adding the time to `stats.waitMs`. */
  async function waitFor<T>(work: Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work;
    } finally {
      stats.waitMs += performance.now() - started;
    }
  }

  function throwIfFailed(): void {
    if (failure) throw failure;
  }

  function storageLayout(inputs: number, outputs: number): GPUBindGroupLayout {
    const key = `${inputs}:${outputs}`;
    let layout = storageLayouts.get(key);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = [];
      for (let b = 0; b < inputs + outputs; b++) {
        entries.push({
          binding: b,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: b < inputs ? "read-only-storage" : "storage" },
        });
      }
      entries.push(...bindGroups.trailingEntries(inputs + outputs));
      layout = device.createBindGroupLayout({ label: `storage.${key}`, entries });
      storageLayouts.set(key, layout);
    }
    return layout;
  }

  function compile(kernel: Kernel): CompiledKernel {
    const known = byKernel.get(kernel);
    if (known) return known;
    const code = wgslPrelude(kernel) + kernel.code;
    let compiled = pipelines.get(code);
    if (compiled) {
      byKernel.set(kernel, compiled);
      return compiled;
    }
    if (paramLayout(kernel.params).size > PARAM_SLOT) {
      throw new RangeError(`Kernel "${kernel.label}" has more than ${PARAM_SLOT} bytes of params`);
    }
    const layout = storageLayout(
      Object.keys(kernel.inputs).length,
      Object.keys(kernel.outputs).length,
    );
    const uniformCount = kernel.uniforms?.length ?? 0;
    const uniformLayout = uniformCount === 0 ? null : device.createBindGroupLayout({
      label: `uniforms.${uniformCount}`,
      entries: [
        ...Array.from({ length: uniformCount }, (_, b) => ({
          binding: b,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: "uniform" as const, minBindingSize: UNIFORM_WINDOW_BYTES },
        })),
        ...bindGroups.trailingEntries(uniformCount),
      ],
    });
    const groupLayouts = uniformLayout
      ? [layout, paramsLayout, uniformLayout]
      : [layout, paramsLayout];
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ label: kernel.label, code });
    const pipeline = device.createComputePipeline({
      label: kernel.label,
      layout: device.createPipelineLayout({ bindGroupLayouts: groupLayouts }),
      compute: { module, entryPoint: "main" },
    });
    pending.push(
      Promise.all([device.popErrorScope(), module.getCompilationInfo()]).then(
        ([error, info]) => {
          const messages = info.messages.filter((m) => m.type === "error");
          if (messages.length > 0) {
            const lines = code.split("\n");
            const text = messages.map((m) =>
              `${m.lineNum}:${m.linePos}: ${m.message}\n  ${lines[m.lineNum - 1] ?? ""}`
            ).join("\n");
            failure ??= new ShaderCompileError(
              `Kernel "${kernel.label}" failed to compile:\n${text}`,
            );
          } else if (error) {
            failure ??= new ShaderCompileError(`Kernel "${kernel.label}": ${error.message}`);
          }
        },
      ),
    );
    compiled = { pipeline, layout, uniformLayout };
    pipelines.set(code, compiled);
    byKernel.set(kernel, compiled);
    return compiled;
  }

  function currentEncoder(): GPUCommandEncoder {
    encoder ??= device.createCommandEncoder();
    return encoder;
  }

  function endPass(): void {
    pass?.end();
    pass = null;
  }

  /** What the open pass has bound, so that a launch skips what the one before it set. */
  let bound: {
    pipeline: GPUComputePipeline | null;
    storage: GPUBindGroup | null;
    uniforms: GPUBindGroup | null;
  } = { pipeline: null, storage: null, uniforms: null };

  function openPass(descriptor?: GPUComputePassDescriptor): GPUComputePassEncoder {
    bound = { pipeline: null, storage: null, uniforms: null };
    return currentEncoder().beginComputePass(descriptor);
  }

  /** Encodes the copy-out of this submit's timestamps; the returned function starts the read. */
  function resolveTimestamps(enc: GPUCommandEncoder): () => void {
    const { querySet, resolved, labels, times, reads } = profile!;
    const count = labels.length * 2;
    const out = device.createBuffer({
      size: count * 8,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    enc.resolveQuerySet(querySet, 0, count, resolved, 0);
    enc.copyBufferToBuffer(resolved, 0, out, 0, count * 8);
    const names = labels.splice(0);
    return () =>
      void reads.push(
        out.mapAsync(GPUMapMode.READ).then(() => {
          const stamps = new BigUint64Array(out.getMappedRange());
          names.forEach((label, k) => {
            addKernelTime(times, label, Number(stamps[2 * k + 1] - stamps[2 * k]) / 1e6);
          });
          out.unmap();
          out.destroy();
        }),
      );
  }

  function flush(): void {
    throwIfFailed();
    if (!encoder) return;
    endPass();
    if (ringUsed > 0) device.queue.writeBuffer(ring, 0, ringHost, 0, ringUsed);
    if (uploadUsed > 0) device.queue.writeBuffer(uploadRing, 0, uploadHost, 0, uploadUsed);
    const timed = profile && profile.labels.length > 0 ? resolveTimestamps(encoder) : null;
    device.queue.submit([encoder.finish()]);
    stats.lastSubmitAt = performance.now();
    stats.waitMsAtLastSubmit = stats.waitMs;
    stats.submits++;
    timed?.();
    encoder = null;
    bindGroups.submitted();
    ringUsed = 0;
    uploadUsed = 0;
    launches = 0;
  }

  function alloc(dtype: DType, size: number): GpuStorage {
    throwIfFailed();
    const byteLength = size * BYTES_PER_ELEMENT[dtype];
    const bucket = poolBucket(byteLength);
    const buffer = pool.take(bucket) ?? device.createBuffer({
      size: bucket,
      // UNIFORM as well, so that kernels can read 64 KiB windows of any tensor
      // through uniform bindings (see `Kernel.uniforms`) without a copy; INDIRECT so that a
      // kernel can size a later dispatch (`Launch.indirect`).
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST |
        GPUBufferUsage.UNIFORM | GPUBufferUsage.INDIRECT,
    });
    live++;
    return { buffer, bucket, byteLength, byteOffset: 0, refs: 0 };
  }

  /** The range that binds `binding`'s storage to `kernel`. */
  function rangeOf(binding: BufferBinding, kernel: Kernel): BufferRange {
    const storage = binding.storage as GpuStorage;
    const size = Math.max(4, Math.ceil(storage.byteLength / 4) * 4);
    if (size > maxBinding) {
      throw new RangeError(
        `Cannot bind a ${size}-byte buffer to "${kernel.label}": it exceeds the ${maxBinding}-byte limit`,
      );
    }
    return { buffer: storage.buffer, offset: storage.byteOffset, size };
  }

  return {
    name: "webgpu",
    description,
    profile: deviceProfile,
    alloc,
    upload(data: TypedArray): GpuStorage {
      if (data instanceof Float64Array) {
        throw new TypeError(`Element type "f64" is not supported on WebGPU`);
      }
      const storage = alloc(data instanceof Float32Array ? "f32" : "u32", data.length);
      const bytes = data.byteLength;
      if (bytes === 0) return storage;
      // A pooled buffer may still be read by launches not yet submitted, and a queue write would
      // land before them: with launches pending, the data goes through the upload ring and a
      // copy encoded after them; where it does not fit, they are submitted first.
      if (encoder && uploadUsed + bytes <= UPLOAD_RING_BYTES) {
        uploadHost.set(new Uint8Array(data.buffer, data.byteOffset, bytes), uploadUsed);
        endPass();
        encoder.copyBufferToBuffer(uploadRing, uploadUsed, storage.buffer, 0, bytes);
        uploadUsed += bytes;
        return storage;
      }
      if (encoder) flush();
      device.queue.writeBuffer(
        storage.buffer,
        0,
        data.buffer as ArrayBuffer,
        data.byteOffset,
        bytes,
      );
      return storage;
    },
    async read(storage: Storage, dtype: DType, size: number): Promise<TypedArray> {
      const bytes = size * BYTES_PER_ELEMENT[dtype];
      if (bytes === 0) {
        flush();
        return viewAs(new ArrayBuffer(0), dtype, 0);
      }
      const staging = device.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      endPass();
      const { buffer, byteOffset } = storage as GpuStorage;
      currentEncoder().copyBufferToBuffer(buffer, byteOffset, staging, 0, bytes);
      flush();
      await waitFor(Promise.all(pending.splice(0)));
      try {
        await waitFor(staging.mapAsync(GPUMapMode.READ));
      } catch (error) {
        throwIfFailed();
        throw error;
      }
      throwIfFailed();
      const out = viewAs(staging.getMappedRange().slice(0), dtype, size);
      staging.unmap();
      staging.destroy();
      return out;
    },
    release(storage: Storage) {
      const { buffer, bucket } = storage as GpuStorage;
      pool.put(bucket, buffer);
      live--;
    },
    run(launch: Launch) {
      throwIfFailed();
      if (launch.workgroups === 0) return;
      const { kernel } = launch;
      const compiled = compile(kernel);
      const ranges: BufferRange[] = [];
      for (const binding of launch.inputs) ranges.push(rangeOf(binding, kernel));
      for (const binding of launch.outputs) ranges.push(rangeOf(binding, kernel));
      if (ringUsed + paramAlign > RING_BYTES || launches >= MAX_LAUNCHES_PER_SUBMIT) flush();
      const offset = ringUsed;
      packParams(kernel, launch.params, ringView, offset);
      ringUsed += paramAlign;
      launches++;
      recentLabels[stats.launches % RECENT_LABELS] = kernel.label;
      stats.launches++;
      let uniformGroup: GPUBindGroup | null = null;
      if (compiled.uniformLayout) {
        const windows = launch.uniformInputs ?? [];
        const count = kernel.uniforms!.length;
        if (windows.length !== count) {
          throw new TypeError(
            `Kernel "${kernel.label}" expects ${count} uniform windows, got ${windows.length}`,
          );
        }
        uniformGroup = bindGroups.group(
          compiled.uniformLayout,
          windows.map((w, b) => {
            const { buffer, byteOffset, bucket } = w.storage as GpuStorage;
            const at = byteOffset + w.byteOffset;
            if (at % 256 !== 0 || at + UNIFORM_WINDOW_BYTES > bucket) {
              throw new RangeError(
                `Uniform window ${b} of "${kernel.label}" at byte ${at} does not fit a ${bucket}-byte buffer`,
              );
            }
            return { buffer, offset: at, size: UNIFORM_WINDOW_BYTES };
          }),
        );
      }
      const group = bindGroups.group(compiled.layout, ranges);
      if (profile) {
        endPass();
        const at = profile.labels.push(kernel.label) * 2 - 2;
        pass = openPass({
          timestampWrites: {
            querySet: profile.querySet,
            beginningOfPassWriteIndex: at,
            endOfPassWriteIndex: at + 1,
          },
        });
      }
      pass ??= openPass();
      if (bound.pipeline !== compiled.pipeline) {
        pass.setPipeline(compiled.pipeline);
        bound.pipeline = compiled.pipeline;
      }
      if (bound.storage !== group) {
        pass.setBindGroup(0, group);
        bound.storage = group;
      }
      pass.setBindGroup(1, paramsGroup, [offset]);
      if (uniformGroup && bound.uniforms !== uniformGroup) {
        pass.setBindGroup(2, uniformGroup);
        bound.uniforms = uniformGroup;
      }
      if (launch.indirect) {
        const args = launch.indirect.storage as GpuStorage;
        pass.dispatchWorkgroupsIndirect(args.buffer, args.byteOffset + launch.indirect.byteOffset);
        return;
      }
      const [x, y] = foldGrid(launch.workgroups);
      pass.dispatchWorkgroups(x, y);
    },
    copy(src: Storage, srcOffset: number, dst: Storage, dstOffset: number, bytes: number) {
      if (bytes === 0) return;
      endPass();
      const from = src as GpuStorage, to = dst as GpuStorage;
      currentEncoder().copyBufferToBuffer(
        from.buffer,
        from.byteOffset + srcOffset,
        to.buffer,
        to.byteOffset + dstOffset,
        bytes,
      );
    },
    flush,
    async sync() {
      flush();
      await waitFor(Promise.all(pending.splice(0)));
      await waitFor(device.queue.onSubmittedWorkDone());
      throwIfFailed();
    },
    liveBuffers: () => live,
    hostStats: () => ({ ...stats }),
    startProfile() {
      if (!device.features.has("timestamp-query")) {
        throw new Error(
          `Profiling needs the "timestamp-query" feature, which ${description} lacks`,
        );
      }
      flush();
      // One query set and resolve buffer for the backend's life (never destroyed: a destroyed
      // query set is a teardown hazard we do not need).
      const count = MAX_LAUNCHES_PER_SUBMIT * 2;
      timestampQueries ??= {
        querySet: device.createQuerySet({ type: "timestamp", count }),
        resolved: device.createBuffer({
          size: count * 8,
          usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
        }),
      };
      profile = { ...timestampQueries, labels: [], times: new Map(), reads: [] };
    },
    async stopProfile() {
      if (!profile) return [];
      flush();
      const { times, reads } = profile;
      profile = null;
      await waitFor(Promise.all(reads));
      return sortedKernelTimes(times);
    },
  };
}
