/**
 * The optimizer base class and global gradient-norm clipping. Updates run as
 * one fused kernel per parameter, writing the parameter and its state in
 * place (the parameter is a `read_write` binding of the update kernel), with
 * the learning rate passed as a uniform and nothing read back.
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { map } from "../ops/elementwise.ts";
import { launch } from "../ops/launch.ts";
import { sum } from "../ops/reduce.ts";
import type { HostTensor } from "../safetensors.ts";
import { empty, keep, type Tensor, tensor } from "../tensor.ts";

const SUMSQ_CHUNK = 1024;
const WG = 64;
const cached = kernelCache();

function sumsqKernel(dtype: DType): Kernel {
  const key = `sumsq|${dtype}`;
  return cached(key, () => ({
    label: "optim.sumsq",
    inputs: { g: dtype },
    outputs: { part: dtype },
    params: { n: "u32", offset: "u32", chunk: "u32", count: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  if (i >= p.count) { return; }
  let start = i * p.chunk;
  let stop = min(p.n, start + p.chunk);
  var s = 0.0;
  for (var k = start; k < stop; k++) { s += g[k] * g[k]; }
  part[p.offset + i] = s;
}`,
    cpu(ins, outs, p) {
      const { n, offset, chunk, count } = p as Record<string, number>;
      const g = ins.g, part = outs.part;
      for (let i = 0; i < count; i++) {
        let s = 0;
        for (let k = i * chunk; k < Math.min(n, (i + 1) * chunk); k++) s += g[k] * g[k];
        part[offset + i] = s;
      }
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
  const live = grads.filter((g) => g.size > 0);
  if (live.length === 0) {
    throw new TypeError("gradNorm: no non-empty gradients were given");
  }
  const dtype = live[0].dtype, backend = live[0].backend;
  const counts = live.map((g) => Math.ceil(g.size / SUMSQ_CHUNK));
  const total = counts.reduce((a, b) => a + b, 0);
  const part = empty([total], dtype, backend);
  let offset = 0;
  live.forEach((g, k) => {
    if (g.dtype !== dtype) {
      throw new TypeError(`gradNorm: gradient ${k} is ${g.dtype} but gradient 0 is ${dtype}`);
    }
    launch(
      sumsqKernel(dtype),
      [g],
      [part],
      { n: g.size, offset, chunk: SUMSQ_CHUNK, count: counts[k] },
      Math.ceil(counts[k] / WG),
    );
    offset += counts[k];
  });
  const squared = sum(part);
  part.dispose();
  const norm = map({ label: "sqrt", wgsl: "sqrt(a)", cpu: Math.sqrt }, [squared]);
  squared.dispose();
  return norm;
}

/** The clipping factor `min(1, maxNorm / (norm + 1e-6))` as a `[1]` tensor. */
export function clipCoefficient(norm: Tensor, maxNorm: number): Tensor {
  return map(
    {
      label: "clip_coef",
      wgsl: "min(1.0, b / (a + 1e-6))",
      cpu: (a, b) => Math.min(1, b / (a + 1e-6)),
    },
    [norm, maxNorm],
    [1],
  );
}

/**
 * Scales the gradients of `params` in place so that their global L2 norm is
 * at most `maxNorm`, on the device; returns the norm before clipping (a `[]`
 * tensor, read it back only when logging).
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
  const norm = gradNorm(grads);
  const coef = clipCoefficient(norm, maxNorm);
  for (const g of grads) {
    launch(scaleKernel(g.dtype), [coef], [g], { n: g.size }, Math.ceil(g.size / 256));
  }
  coef.dispose();
  return norm;
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
  /** Per-parameter state tensors by parameter index, then state name; kept. */
  protected readonly state: Map<string, Tensor>[];
  readonly #decay: boolean[];
  readonly #lrScale: number[];
  #ones: Tensor | null = null;

  /** Creates an optimizer over `params`. */
  constructor(params: Iterable<Tensor> | Iterable<[string, Tensor]>, options: OptimizerOptions) {
    const list = [...params] as (Tensor | [string, Tensor])[];
    this.names = list.map((p, k) => (Array.isArray(p) ? p[0] : String(k)));
    this.params = list.map((p) => (Array.isArray(p) ? p[1] : p));
    if (new Set(this.names).size !== this.names.length) {
      throw new TypeError("Optimizer: parameter names are not unique");
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
    this.state = this.params.map(() => new Map());
  }

  /** The learning rate of parameter `index` at this step (`lr` times its `lrScale`). */
  protected lrOf(index: number): number {
    return this.lr * this.#lrScale[index];
  }

  /** The weight decay of parameter `index` (0 where `decay` excluded it). */
  protected decayOf(index: number): number {
    return this.#decay[index] ? this.weightDecay : 0;
  }

  /** Updates parameter `index` in place from its gradient, scaled by `coef` (a `[1]` tensor). */
  protected abstract update(index: number, grad: Tensor, coef: Tensor, first: boolean): void;

  /** Names of the state tensors each parameter has (e.g. `exp_avg`). */
  protected abstract stateNames(): readonly string[];

  /** A kept state tensor of parameter `index`, allocated uninitialised on first use. */
  protected stateOf(index: number, name: string): Tensor {
    const states = this.state[index];
    let t = states.get(name);
    if (!t) {
      const p = this.params[index];
      t = keep(empty(p.shape, p.dtype, p.backend));
      states.set(name, t);
    }
    return t;
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
   * Applies one update to every parameter with a gradient, on the device.
   * With `maxGradNorm`, the global norm is computed first and the updates
   * read the clipping factor from device memory.
   */
  step(): void {
    const live = this.params.map((p, k) => [k, p.grad] as const).filter(
      (e): e is readonly [number, Tensor] => e[1] !== null && e[1].size > 0,
    );
    if (live.length === 0) {
      this.stepCount++;
      return;
    }
    let coef: Tensor;
    let owned = false;
    if (this.maxGradNorm !== undefined) {
      const norm = gradNorm(live.map(([, g]) => g));
      coef = clipCoefficient(norm, this.maxGradNorm);
      owned = true;
      this.lastGradNorm?.dispose();
      this.lastGradNorm = keep(norm);
    } else {
      coef = this.#onesOn(live[0][1].backend, live[0][1].dtype);
    }
    this.stepCount++;
    for (const [k, g] of live) {
      if (g.size !== this.params[k].size) {
        throw new TypeError(
          `Optimizer: gradient [${g.shape}] of "${this.names[k]}" does not match [${
            this.params[k].shape
          }]`,
        );
      }
      const first = !this.state[k].has(this.stateNames()[0] ?? "");
      this.update(k, g, coef, first);
    }
    if (owned) coef.dispose();
  }

  /** Disposes every parameter's gradient and sets it to `null`. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** The state tensors, named `<parameter name>.<state name>` (live tensors, not copies). */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    this.state.forEach((states, k) => {
      for (const [name, t] of states) out.set(`${this.names[k]}.${name}`, t);
    });
    return out;
  }

  /**
   * Loads state saved by {@linkcode stateDict} (missing entries start fresh);
   * `stepCount` restores the bias-correction step.
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
    this.dispose();
    for (const [name, host] of state) {
      const [k, s] = known.get(name)!;
      const p = this.params[k];
      this.state[k].set(
        s,
        keep(tensor(host.data, p.shape, { backend: p.backend, dtype: p.dtype })),
      );
    }
    this.stepCount = stepCount;
  }

  /** Releases the state tensors. */
  dispose(): void {
    for (const states of this.state) {
      for (const t of states.values()) t.dispose();
      states.clear();
    }
    this.lastGradNorm?.dispose();
    this.lastGradNorm = null;
    this.#ones?.dispose();
    this.#ones = null;
  }
}
