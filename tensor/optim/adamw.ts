/**
 * AdamW (Adam with decoupled weight decay), as one fused kernel per parameter.
 *
 * @module
 */

import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { launch } from "../ops/launch.ts";
import type { Tensor } from "../tensor.ts";
import { Optimizer, type OptimizerOptions } from "./optimizer.ts";

const WG = 256;
const cached = kernelCache();

function adamwKernel(dtype: DType): Kernel {
  return cached(dtype, () => ({
    label: "optim.adamw",
    inputs: { grad: dtype, coef: dtype },
    outputs: { param: dtype, m: dtype, v: dtype },
    params: {
      n: "u32",
      lr: "f32",
      wd: "f32",
      beta1: "f32",
      beta2: "f32",
      eps: "f32",
      step_size: "f32",
      sqrt_bc2: "f32",
      first: "u32",
    },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  if (i >= p.n) { return; }
  let g = grad[i] * coef[0];
  var mo = 0.0;
  var vo = 0.0;
  if (p.first == 0u) {
    mo = m[i];
    vo = v[i];
  }
  let mn = p.beta1 * mo + (1.0 - p.beta1) * g;
  let vn = p.beta2 * vo + (1.0 - p.beta2) * g * g;
  m[i] = mn;
  v[i] = vn;
  let decayed = param[i] * (1.0 - p.lr * p.wd);
  param[i] = decayed - p.step_size * mn / (sqrt(vn) / p.sqrt_bc2 + p.eps);
}`,
    cpu(ins, outs, params) {
      const p = params as Record<string, number>;
      const { grad, coef } = ins, { param, m, v } = outs;
      const c = coef[0];
      for (let i = 0; i < p.n; i++) {
        const g = grad[i] * c;
        const mo = p.first ? 0 : m[i], vo = p.first ? 0 : v[i];
        const mn = p.beta1 * mo + (1 - p.beta1) * g;
        const vn = p.beta2 * vo + (1 - p.beta2) * g * g;
        m[i] = mn;
        v[i] = vn;
        param[i] = param[i] * (1 - p.lr * p.wd) -
          p.step_size * mn / (Math.sqrt(vn) / p.sqrt_bc2 + p.eps);
      }
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

  /** One fused update of parameter `index`, in place. */
  protected update(index: number, grad: Tensor, coef: Tensor, first: boolean): void {
    const param = this.params[index];
    const [b1, b2] = this.betas;
    const t = this.stepCount;
    const m = this.stateOf(index, "exp_avg"), v = this.stateOf(index, "exp_avg_sq");
    launch(adamwKernel(param.dtype), [grad, coef], [param, m, v], {
      n: param.size,
      lr: this.lrOf(index),
      wd: this.decayOf(index),
      beta1: b1,
      beta2: b2,
      eps: this.eps,
      step_size: this.lrOf(index) / (1 - b1 ** t),
      sqrt_bc2: Math.sqrt(1 - b2 ** t),
      first: first ? 1 : 0,
    }, Math.ceil(param.size / WG));
  }
}
