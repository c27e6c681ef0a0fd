/**
 * The optimizer base class and global gradient-norm clipping. The optimizer keeps its parameters,
 * their gradients and its state in arenas (`./arena.ts`): one flat block per element type, each
 * tensor a view of its slot, so that an update is one fused kernel over all parameters, writing
 * the parameters and state in place, with the learning rate passed as a uniform and nothing read
 * back. Clipping adds two launches: the sum of squares over the gradient arena, and its norm and
 * clipping factor, which the update reads from device memory.
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { launch } from "../ops/launch.ts";
import type { HostTensor } from "../safetensors.ts";
import { copyInto, empty, keep, type Tensor, tensor, viewOf } from "../tensor.ts";
import { Arena, ARENA_BLOCK, arenaGroups, NO_SEGMENT, SEGMENT_FIELDS } from "./arena.ts";

const SUMSQ_CHUNK = 1024;
const WG = 64;
const NORM_WG = 256;
const cached = kernelCache();

/**
 * Partial sums of squares of `g`, one per chunk; with `live`, elements in blocks of
 * `NO_SEGMENT` (an arena's slots that take no update) count as zero (the chunk is a whole number
 * of blocks, and each block's segment is read once).
 */
function sumsqKernel(dtype: DType, live: boolean): Kernel {
  const inputs: Record<string, DType> = live ? { g: dtype, blocks: "u32" } : { g: dtype };
  return cached(`sumsq|${dtype}|${live}`, () => ({
    label: live ? "optim.sumsq_live" : "optim.sumsq",
    inputs,
    outputs: { part: dtype },
    params: { n: "u32", offset: "u32", chunk: "u32", count: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  if (i >= p.count) { return; }
  let start = i * p.chunk;
  let stop = min(p.n, start + p.chunk);
  var s = 0.0;
  ${
      live
        ? `for (var b = start; b < stop; b += ${ARENA_BLOCK}u) {
    if (blocks[b / ${ARENA_BLOCK}u] == ${NO_SEGMENT}u) { continue; }
    for (var k = b; k < min(stop, b + ${ARENA_BLOCK}u); k++) { s += g[k] * g[k]; }
  }`
        : `for (var k = start; k < stop; k++) { s += g[k] * g[k]; }`
    }
  part[p.offset + i] = s;
}`,
    cpu(ins, outs, p) {
      const { n, offset, chunk, count } = p as Record<string, number>;
      const g = ins.g, blocks = ins.blocks, part = outs.part;
      for (let i = 0; i < count; i++) {
        let s = 0;
        for (let k = i * chunk; k < Math.min(n, (i + 1) * chunk); k++) {
          if (live && blocks[Math.floor(k / ARENA_BLOCK)] === NO_SEGMENT) continue;
          s += g[k] * g[k];
        }
        part[offset + i] = s;
      }
    },
  }));
}

/** The norm `sqrt(sum part)` and the clipping factor `min(1, max_norm / (norm + 1e-6))`. */
function normKernel(dtype: DType): Kernel {
  return cached(`norm|${dtype}`, () => ({
    label: "optim.norm",
    inputs: { part: dtype },
    outputs: { norm: dtype, coef: dtype },
    params: { count: "u32", max_norm: "f32" },
    workgroupSize: NORM_WG,
    code: `var<workgroup> acc: array<f32, ${NORM_WG}>;
${entryPoint(NORM_WG)}
  var s = 0.0;
  for (var k = lid; k < p.count; k += ${NORM_WG}u) { s += part[k]; }
  acc[lid] = s;
  workgroupBarrier();
  for (var w = ${NORM_WG / 2}u; w > 0u; w = w / 2u) {
    if (lid < w) { acc[lid] += acc[lid + w]; }
    workgroupBarrier();
  }
  if (i == 0u) {
    let n = sqrt(acc[0]);
    norm[0] = n;
    coef[0] = min(1.0, p.max_norm / (n + 1e-6));
  }
}`,
    cpu(ins, outs, p) {
      const { count, max_norm } = p as Record<string, number>;
      let s = 0;
      for (let k = 0; k < count; k++) s += ins.part[k];
      const n = Math.sqrt(s);
      outs.norm[0] = n;
      outs.coef[0] = Math.min(1, max_norm / (n + 1e-6));
    },
  }));
}

function scaleKernel(dtype: DType): Kernel {
  const key = `scale|${dtype}`;
  return cached(key, () => ({
    label: "optim.scale_in_place",
    inputs: { coef: dtype },
    outputs: { g: dtype },
    params: { n: "u32" },
    workgroupSize: 256,
    code: `${entryPoint(256)}
  if (i >= p.n) { return; }
  g[i] = g[i] * coef[0];
}`,
    cpu(ins, outs, p) {
      const n = p.n as number, c = ins.coef[0], g = outs.g;
      for (let i = 0; i < n; i++) g[i] *= c;
    },
  }));
}

/** A tensor whose squares count toward a norm, and (for an arena) its block segments. */
interface SumsqSource {
  readonly g: Tensor;
  readonly blocks?: Tensor;
}

/**
 * The global L2 norm of `sources` (`[]`) and the clipping factor for `maxNorm` (`[1]`), on the
 * device: one partial-sum launch per source, one for the norm and factor.
 */
function normAndCoefficient(
  sources: readonly SumsqSource[],
  maxNorm: number,
): { norm: Tensor; coef: Tensor } {
  const { dtype, backend } = sources[0].g;
  const counts = sources.map(({ g }) => Math.ceil(g.size / SUMSQ_CHUNK));
  const total = counts.reduce((a, b) => a + b, 0);
  using part = empty([total], dtype, backend);
  let offset = 0;
  sources.forEach(({ g, blocks }, k) => {
    launch(
      sumsqKernel(dtype, blocks !== undefined),
      blocks ? [g, blocks] : [g],
      [part],
      { n: g.size, offset, chunk: SUMSQ_CHUNK, count: counts[k] },
      Math.ceil(counts[k] / WG),
    );
    offset += counts[k];
  });
  const norm = empty([], dtype, backend), coef = empty([1], dtype, backend);
  launch(normKernel(dtype), [part], [norm, coef], { count: total, max_norm: maxNorm }, 1);
  return { norm, coef };
}

/**
 * The global L2 norm of `grads` (a `[]` tensor), computed on the device
 * without a readback: one partial-sum kernel per tensor, one reduction.
 *
 * @example
 * ```ts
 * import { gradNorm } from "./optimizer.ts";
 * import { tensor } from "../tensor.ts";
 * const n = gradNorm([tensor([3]), tensor([0, 4])]);
 * console.log(await n.data()); // Float32Array [5]
 * ```
 */
export function gradNorm(grads: readonly Tensor[]): Tensor {
  const { norm, coef } = normAndCoefficient(liveGradients(grads), 1);
  coef.dispose();
  return norm;
}

/** The non-empty tensors of `grads` as norm sources; throws on none or on mixed dtypes. */
function liveGradients(grads: readonly Tensor[]): SumsqSource[] {
  const live = grads.filter((g) => g.size > 0);
  if (live.length === 0) {
    throw new TypeError("gradNorm: no non-empty gradients were given");
  }
  live.forEach((g, k) => {
    if (g.dtype !== live[0].dtype) {
      throw new TypeError(
        `gradNorm: gradient ${k} is ${g.dtype} but gradient 0 is ${live[0].dtype}`,
      );
    }
  });
  return live.map((g) => ({ g }));
}

/**
 * Scales the gradients of `params` in place so that their global L2 norm is
 * at most `maxNorm`, on the device; returns the norm before clipping (a `[]`
 * tensor, read it back only when logging). The optimizers clip with their own
 * `maxGradNorm` without scaling the gradients.
 *
 * @example
 * ```ts
 * import { clipGradNorm } from "./optimizer.ts";
 * import { tensor } from "../tensor.ts";
 * const w = tensor([3, 4], undefined, { requiresGrad: true });
 * w.grad = tensor([3, 4]);
 * const norm = clipGradNorm([w], 1);
 * console.log(await norm.data(), await w.grad.data()); // [5] [0.6, 0.8]
 * ```
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): Tensor {
  if (!(maxNorm > 0)) throw new RangeError(`clipGradNorm: maxNorm ${maxNorm} is not positive`);
  const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null && g.size > 0);
  const { norm, coef } = normAndCoefficient(liveGradients(grads), maxNorm);
  for (const g of grads) {
    launch(scaleKernel(g.dtype), [coef], [g], { n: g.size }, Math.ceil(g.size / 256));
  }
  coef.dispose();
  return norm;
}

/**
 * What an optimizer's update launch reads and writes: one arena group's whole tensors, all
 * `[n]` but `coef` (`[1]`), `blocks` (`[n / ARENA_BLOCK]`, `u32`) and `segments`
 * (`[slots * SEGMENT_FIELDS]`, see `./arena.ts`).
 */
export interface ArenaUpdate {
  /** The parameters, updated in place. */
  readonly param: Tensor;
  /** Their gradients. */
  readonly grad: Tensor;
  /** The clipping factor (1 without clipping). */
  readonly coef: Tensor;
  /** The segment of each block, `NO_SEGMENT` where no update is due. */
  readonly blocks: Tensor;
  /** Per slot: lr factor, weight decay, 1 on the slot's first update. */
  readonly segments: Tensor;
  /** The state arena `name` (e.g. `exp_avg`), updated in place. */
  state(name: string): Tensor;
}

/** An arena with a kept view of each slot. */
interface SlottedArena {
  readonly arena: Arena;
  readonly slots: readonly Tensor[];
}

/** The parameters of one backend and dtype, in arenas. */
interface ArenaGroup {
  /** The parameter in each slot. */
  readonly indices: readonly number[];
  readonly params: SlottedArena;
  readonly grads: SlottedArena;
  readonly states: Map<string, SlottedArena>;
  /** The block and segment tables, and the flags they were made from. */
  tables: { blocks: Tensor; segments: Tensor; liveKey: string; segmentKey: string } | null;
}

function slotted(backend: Backend, dtype: DType, members: readonly Tensor[]): SlottedArena {
  const arena = new Arena(backend, dtype, members.map((p) => p.size));
  return { arena, slots: members.map((p, j) => keep(arena.slot(j, p.shape))) };
}

function disposeSlotted({ arena, slots }: SlottedArena): void {
  for (const s of slots) s.dispose();
  arena.dispose();
}

/** Options shared by the optimizers. */
export interface OptimizerOptions {
  /** Base learning rate. */
  lr: number;
  /** Decoupled (AdamW) or L2 (SGD) weight decay; default 0. */
  weightDecay?: number;
  /** Clip gradients to this global L2 norm before the update (on the device). */
  maxGradNorm?: number;
  /** Which named parameters get weight decay; default all. */
  decay?: (name: string, param: Tensor) => boolean;
  /**
   * A factor on the learning rate of each named parameter (Deformable-DETR trains its backbone
   * and sampling offsets at 0.1x); default 1 for all.
   */
  lrScale?: (name: string, param: Tensor) => number;
}

/**
 * Base class of the optimizers. Parameters are given as a list or as
 * `[name, tensor]` pairs (e.g. `module.namedParameters()`); the names key
 * the optimizer state in checkpoints.
 *
 * On its first step (or `stateDict`/`loadStateDict`) the optimizer moves its parameters into
 * arenas: each parameter keeps its `Tensor` object but views a slot of the arena from then on,
 * and `backward` writes its gradient into a slot of the gradient arena (`Tensor.gradSlot`).
 * A parameter whose memory was swapped away later (`swapStorage`) is copied back in at the next
 * step; gradients set by hand are copied into their slots.
 */
export abstract class Optimizer {
  /** The parameters, updated in place. */
  readonly params: readonly Tensor[];
  /** Their names (`"0"`, `"1"`, ... when none were given). */
  readonly names: readonly string[];
  /** The learning rate of the next step; set it from a schedule before each step. */
  lr: number;
  /** Weight decay. */
  weightDecay: number;
  /** Global gradient-norm clipping threshold, if any. */
  maxGradNorm: number | undefined;
  /** Steps taken. */
  stepCount = 0;
  /** The gradient norm of the last step (before clipping) when clipping is on; kept. */
  lastGradNorm: Tensor | null = null;
  readonly #decay: boolean[];
  readonly #lrScale: number[];
  /** Whether each parameter has state (it was updated, or its state was loaded). */
  readonly #started: boolean[];
  #groups: ArenaGroup[] | null = null;
  #ones: Tensor | null = null;

  /** Creates an optimizer over `params`. */
  constructor(params: Iterable<Tensor> | Iterable<[string, Tensor]>, options: OptimizerOptions) {
    const list = [...params] as (Tensor | [string, Tensor])[];
    this.names = list.map((p, k) => (Array.isArray(p) ? p[0] : String(k)));
    this.params = list.map((p) => (Array.isArray(p) ? p[1] : p));
    if (new Set(this.names).size !== this.names.length) {
      throw new TypeError("Optimizer: parameter names are not unique");
    }
    if (new Set(this.params).size !== this.params.length) {
      throw new TypeError("Optimizer: a parameter is given twice");
    }
    this.params.forEach((p, k) => {
      if (p.dtype !== "f32" && p.dtype !== "f64") {
        throw new TypeError(`Optimizer: parameter "${this.names[k]}" is ${p.dtype}, not a float`);
      }
    });
    if (!(options.lr >= 0)) {
      throw new RangeError(`Optimizer: learning rate ${options.lr} is negative`);
    }
    this.lr = options.lr;
    this.weightDecay = options.weightDecay ?? 0;
    this.maxGradNorm = options.maxGradNorm;
    if (this.maxGradNorm !== undefined && !(this.maxGradNorm > 0)) {
      throw new RangeError(`Optimizer: maxGradNorm ${this.maxGradNorm} is not positive`);
    }
    const decay = options.decay ?? (() => true);
    this.#decay = this.params.map((p, k) => decay(this.names[k], p));
    const lrScale = options.lrScale ?? (() => 1);
    this.#lrScale = this.params.map((p, k) => {
      const f = lrScale(this.names[k], p);
      if (!(f >= 0 && Number.isFinite(f))) {
        throw new RangeError(
          `Optimizer: lr factor ${f} of "${this.names[k]}" is not finite and >= 0`,
        );
      }
      return f;
    });
    this.#started = this.params.map(() => false);
  }

  /** Launches the update of one arena group (every parameter of one backend and dtype). */
  protected abstract update(arenas: ArenaUpdate): void;

  /** Names of the state tensors each parameter has (e.g. `exp_avg`). */
  protected abstract stateNames(): readonly string[];

  /**
   * The arena groups (one per backend and dtype, split at `ARENA_MAX_BYTES`), made (and the
   * parameters moved in) on first use.
   */
  #arenas(): ArenaGroup[] {
    if (this.#groups) return this.#groups;
    this.#groups = arenaGroups(this.params).map((indices) => {
      const members = indices.map((k) => this.params[k]);
      const { backend, dtype } = members[0];
      const group: ArenaGroup = {
        indices,
        params: slotted(backend, dtype, members),
        grads: slotted(backend, dtype, members),
        states: new Map(),
        tables: null,
      };
      this.#claim(group);
      return group;
    });
    return this.#groups;
  }

  /**
   * Makes each parameter of `group` view its slot again (copying it in where its memory was
   * replaced since) and write its gradients into its gradient slot.
   */
  #claim(group: ArenaGroup): void {
    group.indices.forEach((k, j) => {
      const p = this.params[k], slot = group.params.slots[j];
      if (p.storage !== slot.storage) {
        copyInto(p, slot);
        const moved = viewOf(slot, p.shape);
        p.swapStorage(moved);
        moved.dispose();
      }
      p.gradSlot = group.grads.slots[j].storage;
    });
  }

  /** State arena `name` of `group`, made zero-filled on first use. */
  #state(group: ArenaGroup, name: string): SlottedArena {
    let state = group.states.get(name);
    if (!state) {
      const { backend, dtype } = group.params.arena;
      state = slotted(backend, dtype, group.indices.map((k) => this.params[k]));
      group.states.set(name, state);
    }
    return state;
  }

  /** The block and segment tables of `group` for this step's `live` parameters, made on change. */
  #tables(group: ArenaGroup, live: readonly boolean[]): { blocks: Tensor; segments: Tensor } {
    const liveKey = group.indices.map((k) => (live[k] ? 1 : 0)).join("");
    const segmentKey = `${
      group.indices.map((k) => (this.#started[k] ? 0 : 1)).join("")
    }|${this.weightDecay}`;
    const known = group.tables;
    if (known && known.liveKey === liveKey && known.segmentKey === segmentKey) return known;
    const { arena } = group.params;
    const fields = new Float64Array(group.indices.length * SEGMENT_FIELDS);
    group.indices.forEach((k, j) => {
      fields[SEGMENT_FIELDS * j] = this.#lrScale[k];
      fields[SEGMENT_FIELDS * j + 1] = this.#decay[k] ? this.weightDecay : 0;
      fields[SEGMENT_FIELDS * j + 2] = this.#started[k] ? 0 : 1;
    });
    const { backend, dtype } = arena;
    const blocks = known?.liveKey === liveKey
      ? known.blocks
      : keep(tensor(arena.blockSegments((j) => live[group.indices[j]]), undefined, { backend }));
    if (known && known.blocks !== blocks) known.blocks.dispose();
    known?.segments.dispose();
    const segments = keep(tensor(fields, undefined, { backend, dtype }));
    group.tables = { blocks, segments, liveKey, segmentKey };
    return group.tables;
  }

  /**
   * Moves this step's gradients into their slots (those set by hand or swapped), checking
   * their shapes.
   */
  #gather(group: ArenaGroup, live: readonly boolean[]): void {
    group.indices.forEach((k, j) => {
      const grad = this.params[k].grad, slot = group.grads.slots[j];
      if (!live[k] || !grad || grad.storage === slot.storage) return;
      const p = this.params[k];
      if (grad.size !== p.size || grad.dtype !== p.dtype || grad.backend !== p.backend) {
        throw new TypeError(
          `Optimizer: gradient [${grad.shape}] ${grad.dtype} of "${
            this.names[k]
          }" does not match [${p.shape}] ${p.dtype}`,
        );
      }
      copyInto(grad, slot);
    });
  }

  #onesOn(backend: Backend, dtype: DType): Tensor {
    if (!this.#ones || this.#ones.backend !== backend || this.#ones.dtype !== dtype) {
      this.#ones?.dispose();
      this.#ones = keep(
        tensor(dtype === "f64" ? new Float64Array([1]) : new Float32Array([1]), [1], {
          backend,
        }),
      );
    }
    return this.#ones;
  }

  /**
   * Applies one update to every parameter with a gradient, on the device: one launch per arena
   * (one in all unless parameters differ in backend or dtype or pass 128 MiB). Parameters without a
   * gradient are left alone (no weight decay, no momentum). With `maxGradNorm`, the global norm
   * is computed first (two launches) and the update reads the clipping factor from device memory.
   */
  step(): void {
    const live = this.params.map((p) => p.grad !== null && p.grad.size > 0);
    this.stepCount++;
    if (!live.includes(true)) return;
    const groups = this.#arenas().filter((g) => g.indices.some((k) => live[k]));
    const tables = groups.map((g) => {
      this.#claim(g);
      this.#gather(g, live);
      return this.#tables(g, live);
    });
    let coef: Tensor;
    let owned = false;
    if (this.maxGradNorm !== undefined) {
      const sources = groups.map((g, n) => ({ g: g.grads.arena.whole, blocks: tables[n].blocks }));
      const clipped = normAndCoefficient(sources, this.maxGradNorm);
      coef = clipped.coef;
      owned = true;
      this.lastGradNorm?.dispose();
      this.lastGradNorm = keep(clipped.norm);
    } else {
      const { backend, dtype } = groups[0].params.arena;
      coef = this.#onesOn(backend, dtype);
    }
    groups.forEach((g, n) => {
      this.update({
        param: g.params.arena.whole,
        grad: g.grads.arena.whole,
        coef,
        blocks: tables[n].blocks,
        segments: tables[n].segments,
        state: (name) => this.#state(g, name).arena.whole,
      });
    });
    live.forEach((l, k) => {
      if (l) this.#started[k] = true;
    });
    if (owned) coef.dispose();
  }

  /** Disposes every parameter's gradient and sets it to `null`. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Each parameter's slot in the arenas: its group and slot index. */
  #slotsOf(): [ArenaGroup, number][] {
    const where: [ArenaGroup, number][] = [];
    for (const group of this.#arenas()) group.indices.forEach((k, j) => where[k] = [group, j]);
    return where;
  }

  /**
   * The state tensors of the parameters that have state, named `<parameter name>.<state name>`
   * (live views of the state arenas, not copies).
   */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    const where = this.#slotsOf();
    this.params.forEach((_, k) => {
      if (!this.#started[k]) return;
      const [group, j] = where[k];
      for (const s of this.stateNames()) {
        out.set(`${this.names[k]}.${s}`, this.#state(group, s).slots[j]);
      }
    });
    return out;
  }

  /**
   * Loads state saved by {@linkcode stateDict} into the state arenas (a parameter missing any
   * of its entries starts fresh); `stepCount` restores the bias-correction step.
   */
  loadStateDict(state: ReadonlyMap<string, HostTensor>, stepCount: number): void {
    const known = new Map<string, [number, string]>();
    this.names.forEach((n, k) => {
      for (const s of this.stateNames()) known.set(`${n}.${s}`, [k, s]);
    });
    for (const [name, host] of state) {
      const where = known.get(name);
      if (!where) throw new TypeError(`Optimizer state "${name}" matches no parameter`);
      const p = this.params[where[0]];
      if (host.shape.join() !== p.shape.join()) {
        throw new TypeError(
          `Optimizer state "${name}" has shape [${host.shape.join(", ")}] but the parameter has [${
            p.shape.join(", ")
          }]`,
        );
      }
      if (host.dtype !== p.dtype) {
        throw new TypeError(
          `Optimizer state "${name}" is ${host.dtype} but the parameter is ${p.dtype}`,
        );
      }
    }
    const where = this.#slotsOf();
    const loaded = this.params.map(() => new Set<string>());
    for (const [name, host] of state) {
      const [k, s] = known.get(name)!;
      const p = this.params[k], [group, j] = where[k];
      using fresh = tensor(host.data, p.shape, { backend: p.backend, dtype: p.dtype });
      copyInto(fresh, this.#state(group, s).slots[j]);
      loaded[k].add(s);
    }
    const names = this.stateNames();
    loaded.forEach((got, k) => {
      this.#started[k] = names.length > 0 && names.every((s) => got.has(s));
    });
    this.stepCount = stepCount;
  }

  /**
   * Releases the arenas and state (the parameters keep their memory; the next step or state
   * access makes new arenas, the state starting fresh).
   */
  dispose(): void {
    for (const group of this.#groups ?? []) {
      group.indices.forEach((k, j) => {
        const p = this.params[k];
        if (p.gradSlot === group.grads.slots[j].storage) p.gradSlot = null;
      });
      for (const arena of [group.params, group.grads, ...group.states.values()]) {
        disposeSlotted(arena);
      }
      group.tables?.blocks.dispose();
      group.tables?.segments.dispose();
    }
    this.#groups = null;
    this.#started.fill(false);
    this.lastGradNorm?.dispose();
    this.lastGradNorm = null;
    this.#ones?.dispose();
    this.#ones = null;
  }
}
