/**
 * AdamW (Adam with decoupled weight decay), as one fused kernel over the parameter arena.
 *
 * @module
 */

import type { DType } from "../dtype.ts";
import { type Kernel, kernelCache } from "../kernel.ts";
import { launch } from "../ops/launch.ts";
import type { Tensor } from "../tensor.ts";
import { ARENA_BLOCK, ARENA_WG, arenaEntry, forEachLiveBlock } from "./arena.ts";
import { type ArenaUpdate, Optimizer, type OptimizerOptions } from "./optimizer.ts";

const cached = kernelCache();

function adamwKernel(dtype: DType): Kernel {
  return cached(dtype, () => ({
    label: "optim.adamw",
    inputs: { grad: dtype, coef: dtype, blocks: "u32", segments: dtype },
    outputs: { param: dtype, m: dtype, v: dtype },
    params: {
      n: "u32",
      lr: "f32",
      beta1: "f32",
      beta2: "f32",
      eps: "f32",
      step_size: "f32",
      sqrt_bc2: "f32",
    },
    workgroupSize: ARENA_WG,
    code: arenaEntry(`
let g = grad[i] * coef[0];
var mo = 0.0;
var vo = 0.0;
if (!first) {
  mo = m[i];
  vo = v[i];
}
let mn = p.beta1 * mo + (1.0 - p.beta1) * g;
let vn = p.beta2 * vo + (1.0 - p.beta2) * g * g;
m[i] = mn;
v[i] = vn;
let decayed = param[i] * (1.0 - p.lr * lr_factor * wd);
param[i] = decayed - p.step_size * lr_factor * mn / (sqrt(vn) / p.sqrt_bc2 + p.eps);`),
    cpu(ins, outs, params) {
      const p = params as Record<string, number>;
      const { grad, coef, blocks, segments } = ins, { param, m, v } = outs;
      const c = coef[0];
      forEachLiveBlock(blocks, segments, p.n, (start, stop, lrFactor, wd, first) => {
        const shrink = 1 - p.lr * lrFactor * wd, stepSize = p.step_size * lrFactor;
        for (let i = start; i < stop; i++) {
          const g = grad[i] * c;
          const mo = first ? 0 : m[i], vo = first ? 0 : v[i];
          const mn = p.beta1 * mo + (1 - p.beta1) * g;
          const vn = p.beta2 * vo + (1 - p.beta2) * g * g;
          m[i] = mn;
          v[i] = vn;
          param[i] = param[i] * shrink - stepSize * mn / (Math.sqrt(vn) / p.sqrt_bc2 + p.eps);
        }
      });
    },
  }));
}

/** Options of {@linkcode AdamW}. */
export interface AdamWOptions extends OptimizerOptions {
  /** Decay rates of the first and second moment estimates; default `[0.9, 0.999]`. */
  betas?: [number, number];
  /** Added to the denominator; default 1e-8. */
  eps?: number;
}

/**
 * AdamW as in PyTorch: `p *= 1 - lr * wd`; `m = b1 m + (1 - b1) g`;
 * `v = b2 v + (1 - b2) g^2`; `p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
 * The default weight decay is 0.01.
 *
 * @example
 * ```ts
 * import { AdamW } from "./adamw.ts";
 * import { tensor } from "../tensor.ts";
 * const w = tensor([1], undefined, { requiresGrad: true });
 * const opt = new AdamW([w], { lr: 0.1, weightDecay: 0 });
 * w.grad = tensor([0.5]);
 * opt.step();
 * console.log(await w.data()); // ~[0.9]: the first step moves each weight by ~lr
 * ```
 */
export class AdamW extends Optimizer {
  /** Moment decay rates. */
  betas: [number, number];
  /** Denominator epsilon. */
  eps: number;

  /** Creates AdamW over `params`. */
  constructor(params: Iterable<Tensor> | Iterable<[string, Tensor]>, options: AdamWOptions) {
    super(params, { ...options, weightDecay: options.weightDecay ?? 0.01 });
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    for (const b of this.betas) {
      if (!(b >= 0 && b < 1)) throw new RangeError(`AdamW: beta ${b} is outside [0, 1)`);
    }
  }

  /** The state kept per parameter. */
  protected stateNames(): readonly string[] {
    return ["exp_avg", "exp_avg_sq"];
  }

  /** One fused update of every parameter of an arena group, in place. */
  protected update({ param, grad, coef, blocks, segments, state }: ArenaUpdate): void {
    const [b1, b2] = this.betas;
    const t = this.stepCount;
    launch(adamwKernel(param.dtype), [grad, coef, blocks, segments], [
      param,
      state("exp_avg"),
      state("exp_avg_sq"),
    ], {
      n: param.size,
      lr: this.lr,
      beta1: b1,
      beta2: b2,
      eps: this.eps,
      step_size: this.lr / (1 - b1 ** t),
      sqrt_bc2: Math.sqrt(1 - b2 ** t),
    }, param.size / ARENA_BLOCK);
  }
}
