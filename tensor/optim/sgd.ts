/**
 * Stochastic gradient descent with momentum, Nesterov momentum and L2 weight
 * decay, as one fused kernel over the parameter arena.
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

function sgdKernel(dtype: DType, withMomentum: boolean): Kernel {
  const key = `${dtype}|${withMomentum}`;
  return cached(key, () => {
    const outputs: Record<string, DType> = withMomentum
      ? { param: dtype, buf: dtype }
      : { param: dtype };
    return {
      label: withMomentum ? "optim.sgd_momentum" : "optim.sgd",
      inputs: { grad: dtype, coef: dtype, blocks: "u32", segments: dtype },
      outputs,
      params: { n: "u32", lr: "f32", momentum: "f32", dampening: "f32", nesterov: "u32" },
      workgroupSize: ARENA_WG,
      code: arenaEntry(`
var d = grad[i] * coef[0] + wd * param[i];
${
        withMomentum
          ? `var v = d;
if (!first) { v = p.momentum * buf[i] + (1.0 - p.dampening) * d; }
buf[i] = v;
if (p.nesterov != 0u) { d = d + p.momentum * v; } else { d = v; }`
          : ""
      }
param[i] = param[i] - p.lr * lr_factor * d;`),
      cpu(ins, outs, params) {
        const { n, lr, momentum, dampening, nesterov } = params as Record<string, number>;
        const { grad, coef, blocks, segments } = ins, { param, buf } = outs;
        const c = coef[0], keep = 1 - dampening;
        forEachLiveBlock(blocks, segments, n, (start, stop, lrFactor, wd, first) => {
          const rate = lr * lrFactor;
          for (let i = start; i < stop; i++) {
            let d = grad[i] * c + wd * param[i];
            if (withMomentum) {
              const v = first ? d : momentum * buf[i] + keep * d;
              buf[i] = v;
              d = nesterov ? d + momentum * v : v;
            }
            param[i] = param[i] - rate * d;
          }
        });
      },
    };
  });
}

/** Options of {@linkcode SGD}. */
export interface SgdOptions extends OptimizerOptions {
  /** Momentum factor; default 0 (plain SGD). */
  momentum?: number;
  /** Dampening of the momentum; default 0. */
  dampening?: number;
  /** Nesterov momentum; default false. */
  nesterov?: boolean;
}

/**
 * SGD as in PyTorch: `d = g + wd * p`; with momentum `buf = momentum * buf +
 * (1 - dampening) * d` (`buf = d` on the first step) and `d = buf` (or
 * `d + momentum * buf` for Nesterov); `p -= lr * d`.
 *
 * @example
 * ```ts
 * import { SGD } from "./sgd.ts";
 * import { tensor } from "../tensor.ts";
 * const w = tensor([1, 2], undefined, { requiresGrad: true });
 * const opt = new SGD([w], { lr: 0.1, momentum: 0.9 });
 * w.grad = tensor([1, 1]);
 * opt.step();
 * console.log(await w.data()); // Float32Array [0.9, 1.9]
 * ```
 */
export class SGD extends Optimizer {
  /** Momentum factor. */
  momentum: number;
  /** Dampening. */
  dampening: number;
  /** Nesterov momentum. */
  nesterov: boolean;

  /** Creates SGD over `params`. */
  constructor(params: Iterable<Tensor> | Iterable<[string, Tensor]>, options: SgdOptions) {
    super(params, options);
    this.momentum = options.momentum ?? 0;
    this.dampening = options.dampening ?? 0;
    this.nesterov = options.nesterov ?? false;
    if (!(this.momentum >= 0)) throw new RangeError(`SGD: momentum ${this.momentum} is negative`);
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new RangeError("SGD: Nesterov momentum needs momentum > 0 and no dampening");
    }
  }

  /** The state kept per parameter. */
  protected stateNames(): readonly string[] {
    return this.momentum > 0 ? ["momentum_buffer"] : [];
  }

  /** One fused update of every parameter of an arena group, in place. */
  protected update({ param, grad, coef, blocks, segments, state }: ArenaUpdate): void {
    const withMomentum = this.momentum > 0;
    const outputs = withMomentum ? [param, state("momentum_buffer")] : [param];
    launch(sgdKernel(param.dtype, withMomentum), [grad, coef, blocks, segments], outputs, {
      n: param.size,
      lr: this.lr,
      momentum: this.momentum,
      dampening: this.dampening,
      nesterov: this.nesterov ? 1 : 0,
    }, param.size / ARENA_BLOCK);
  }
}
