/**
 * Arenas: one flat, zero-initialised block of device memory per group of tensors, each tensor in
 * a slot that starts at a multiple of {@linkcode ARENA_BLOCK} elements (1 or 2 KiB, a multiple of
 * `STORAGE_VIEW_ALIGNMENT`, so that a slot is a storage view the WebGPU backend can bind), padding
 * zero (an update leaves zeros zero). The optimizers keep their parameters, gradients and state in
 * arenas and update all of them in one launch; a block table and a segment table tell that launch
 * which slot each block of elements belongs to, and its learning-rate factor, weight decay and
 * whether it is the slot's first update.
 *
 * @module
 */

import { type Backend, storageView } from "../backend.ts";
import { BYTES_PER_ELEMENT, type DType, type TypedArray, viewAs } from "../dtype.ts";
import { keep, Tensor, tensor } from "../tensor.ts";

/**
 * Elements per block: slots start at multiples of it, a block lies in one slot, and the arena
 * kernels run one workgroup per block (padding costs < 256 elements per tensor; on llvmpipe,
 * workgroups of a quarter of the elements each ran the update in ~2/3 the time of workgroups of
 * 64 elements).
 */
export const ARENA_BLOCK = 256;

/**
 * Most bytes of one arena: WebGPU's default `maxStorageBufferBindingSize` (128 MiB), which every
 * adapter offers (llvmpipe offers no more), so that a whole arena can be bound to one kernel.
 */
export const ARENA_MAX_BYTES = 1 << 27;

/**
 * Splits `tensors` into groups that can share an arena: one backend and dtype each, in order,
 * each group's padded slots within `maxBytes` (a tensor larger than that gets a group alone).
 *
 * @example
 * ```ts
 * import { arenaGroups } from "./arena.ts";
 * import { tensor } from "../tensor.ts";
 * const ts = [tensor([1, 2]), tensor([3]), tensor([4])];
 * console.log(arenaGroups(ts)); // [[0, 1, 2]]
 * console.log(arenaGroups(ts, 2048)); // [[0, 1], [2]]: 1 KiB per f32 slot
 * ```
 *
 * @param tensors The tensors to place.
 * @param maxBytes Most bytes of one arena.
 * @returns Indices into `tensors`, one list per arena.
 */
export function arenaGroups(
  tensors: readonly Tensor[],
  maxBytes: number = ARENA_MAX_BYTES,
): number[][] {
  const groups: number[][] = [];
  const open = new Map<Backend, Map<DType, { indices: number[]; bytes: number }>>();
  tensors.forEach((t, k) => {
    const bytes = Math.ceil(t.size / ARENA_BLOCK) * ARENA_BLOCK * BYTES_PER_ELEMENT[t.dtype];
    const byDtype = open.get(t.backend) ?? new Map();
    open.set(t.backend, byDtype);
    let group = byDtype.get(t.dtype);
    if (!group || (group.indices.length > 0 && group.bytes + bytes > maxBytes)) {
      group = { indices: [], bytes: 0 };
      byDtype.set(t.dtype, group);
      groups.push(group.indices);
    }
    group.indices.push(k);
    group.bytes += bytes;
  });
  return groups;
}

/** The segment of a block whose slot takes no update this step (no gradient, or padding). */
export const NO_SEGMENT = 0xffffffff;

/** Numbers per segment in a segment table: lr factor, weight decay, first-update flag. */
export const SEGMENT_FIELDS = 3;

/**
 * One flat tensor holding `sizes.length` tensors in aligned slots.
 *
 * @example Two slots of one arena on the CPU
 * ```ts
 * import { Arena } from "./arena.ts";
 * import { cpu } from "../device.ts";
 * const arena = new Arena(cpu(), "f32", [3, 300]);
 * console.log(arena.offsets, arena.length); // [0, 256] 768
 * const second = arena.slot(1, [3, 100]);
 * console.log(second.storage.byteOffset); // 1024
 * second.dispose();
 * arena.dispose();
 * ```
 */
export class Arena {
  /** Where the arena lives. */
  readonly backend: Backend;
  /** Element type of every slot. */
  readonly dtype: DType;
  /** Elements of each slot's tensor. */
  readonly sizes: readonly number[];
  /** First element of each slot. */
  readonly offsets: readonly number[];
  /** Elements of the whole arena (a multiple of {@linkcode ARENA_BLOCK}). */
  readonly length: number;
  /** The whole arena as a `[length]` tensor (kept; released by {@linkcode dispose}). */
  readonly whole: Tensor;

  /** Allocates a zero-filled arena with slots of `sizes` elements, in order. */
  constructor(backend: Backend, dtype: DType, sizes: readonly number[]) {
    this.backend = backend;
    this.dtype = dtype;
    this.sizes = [...sizes];
    let at = 0;
    this.offsets = sizes.map((n) => {
      const start = at;
      at += Math.ceil(n / ARENA_BLOCK) * ARENA_BLOCK;
      return start;
    });
    this.length = at;
    const zeros = viewAs(new ArrayBuffer(at * BYTES_PER_ELEMENT[dtype]), dtype, at);
    this.whole = keep(tensor(zeros, [at], { backend, dtype }));
  }

  /** A new tensor of shape `shape` (of slot `k`'s size) viewing slot `k`; the caller disposes it. */
  slot(k: number, shape: readonly number[]): Tensor {
    const bytes = BYTES_PER_ELEMENT[this.dtype];
    const storage = storageView(this.whole.storage, this.offsets[k] * bytes, this.sizes[k] * bytes);
    return new Tensor(storage, shape, this.dtype, this.backend);
  }

  /**
   * The segment of each block (`[length / ARENA_BLOCK]`, `u32`): the slot's index where
   * `live(slot)`, else {@linkcode NO_SEGMENT}.
   */
  blockSegments(live: (slot: number) => boolean): Uint32Array<ArrayBuffer> {
    const out = new Uint32Array(this.length / ARENA_BLOCK).fill(NO_SEGMENT);
    this.sizes.forEach((n, k) => {
      if (!live(k)) return;
      const first = this.offsets[k] / ARENA_BLOCK;
      out.fill(k, first, first + Math.ceil(n / ARENA_BLOCK));
    });
    return out;
  }

  /** Releases the arena's own reference (slot views keep it alive until they are released). */
  dispose(): void {
    this.whole.dispose();
  }
}

/** Invocations of an arena kernel's workgroup; each updates `ARENA_BLOCK / ARENA_WG` elements. */
export const ARENA_WG = 64;

/**
 * The WGSL entry point of an arena kernel over `p.n` elements, one block per workgroup: returns
 * for a block past the end or of {@linkcode NO_SEGMENT}, else binds `lr_factor`, `wd` and `first`
 * (a `bool`) from the segment table and runs `body` for each of the invocation's elements `i`
 * (strided by {@linkcode ARENA_WG}, so that neighbouring invocations touch neighbouring
 * elements). Needs the inputs `blocks` (`u32`) and `segments` (the arena's float type). The
 * table is read once per invocation, not per element: on llvmpipe a storage load costs as much
 * as an element's update, and reading the table per element made the update twice as slow.
 *
 * @example
 * ```ts
 * import { arenaEntry } from "./arena.ts";
 * console.log(arenaEntry("param[i] -= p.lr * lr_factor * grad[i];").includes("fn main")); // true
 * ```
 */
export function arenaEntry(body: string): string {
  return `@compute @workgroup_size(${ARENA_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let block = wid.y * nwg.x + wid.x;
  if (block * ${ARENA_BLOCK}u >= p.n) { return; }
  let seg = blocks[block];
  if (seg == ${NO_SEGMENT}u) { return; }
  let lr_factor = segments[${SEGMENT_FIELDS}u * seg];
  let wd = segments[${SEGMENT_FIELDS}u * seg + 1u];
  let first = segments[${SEGMENT_FIELDS}u * seg + 2u] != 0.0;
  for (var r = 0u; r < ${ARENA_BLOCK / ARENA_WG}u; r++) {
    let i = block * ${ARENA_BLOCK}u + r * ${ARENA_WG}u + lid;
    ${body.trim().split("\n").join("\n    ")}
  }
}`;
}

/**
 * The CPU side of {@linkcode arenaEntry}: calls `update` on each run of elements
 * `[start, stop)` of one live block, with its segment's fields.
 */
export function forEachLiveBlock(
  blocks: TypedArray,
  segments: TypedArray,
  n: number,
  update: (start: number, stop: number, lrFactor: number, wd: number, first: boolean) => void,
): void {
  for (let b = 0; b * ARENA_BLOCK < n; b++) {
    const seg = blocks[b];
    if (seg === NO_SEGMENT) continue;
    const at = SEGMENT_FIELDS * seg;
    const start = b * ARENA_BLOCK;
    update(
      start,
      Math.min(n, start + ARENA_BLOCK),
      segments[at],
      segments[at + 1],
      segments[at + 2] !== 0,
    );
  }
}
