/**
 * Arenas: one flat, zero-initialised block of device memory per group of tensors, each tensor in
 * a slot that starts at a multiple of {@linkcode ARENA_BLOCK} elements (1 or 2 KiB, a multiple of
 * `STORAGE_VIEW_ALIGNMENT`, so that a slot is a storage view the WebGPU backend can bind), padding
 * zero. The optimizers keep
 * their parameters, gradients and state in arenas and update all of them in one launch; the
 * segment table below tells that launch which slot each block of elements belongs to.
 *
 * @module
 */

import { type Backend, storageView } from "../backend.ts";
import { BYTES_PER_ELEMENT, type DType, type TypedArray, viewAs } from "../dtype.ts";
import { keep, Tensor, tensor } from "../tensor.ts";

/**
 * Elements per block: slots start at multiples of it, a block lies in one slot, and the arena
 * kernels run one workgroup per block (on llvmpipe 256-invocation workgroups take ~2/3 the time
 * of 64-invocation ones for the same update; padding costs < 256 elements per tensor).
 */
export const ARENA_BLOCK = 256;

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

/**
 * WGSL that opens an arena kernel over `p.n` elements, one block per workgroup (its workgroup
 * size must be {@linkcode ARENA_BLOCK}): returns for elements past the end or in a block of
 * {@linkcode NO_SEGMENT}, else binds `lr_factor`, `wd` and `first` (a `bool`) from the segment
 * table. Needs the inputs `blocks` (`u32`) and `segments` (the arena's float type). The table
 * loads depend on the workgroup alone, so a compiler with divergence analysis (llvmpipe's) makes
 * them scalar loads, not one per invocation.
 */
export const SEGMENT_WGSL = `
  if (i >= p.n) { return; }
  let seg = blocks[wid.y * nwg.x + wid.x];
  if (seg == ${NO_SEGMENT}u) { return; }
  let lr_factor = segments[${SEGMENT_FIELDS}u * seg];
  let wd = segments[${SEGMENT_FIELDS}u * seg + 1u];
  let first = segments[${SEGMENT_FIELDS}u * seg + 2u] != 0.0;`;

/**
 * The CPU side of {@linkcode SEGMENT_WGSL}: calls `update` on each run of elements
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
