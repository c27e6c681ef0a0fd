/**
 * The optimizer kernels on the native backend (`optim.sgd`, `optim.sgd_momentum`, `optim.sumsq`):
 * their twins' arithmetic in the same order (the sums of squares in partial sums, `./sums.ts`),
 * with the uniform parameters read once into locals instead of from the parameter record at every
 * element. `optim.adamw` keeps its twin: its square root and division per element cost the same
 * either way.
 *
 * @module
 */

import type { CpuTwin } from "../kernel.ts";
import { sumSquaredDeviations } from "./sums.ts";

type Params = Record<string, number>;

/** `optim.sgd`: `param -= lr * (grad * coef + wd * param)`. */
const sgd: CpuTwin = (ins, outs, params) => {
  const { n, lr, wd } = params as Params;
  const grad = ins.grad, c = ins.coef[0], param = outs.param;
  for (let i = 0; i < n; i++) {
    const pv = param[i];
    param[i] = pv - lr * (grad[i] * c + wd * pv);
  }
};

/**
 * `optim.sgd_momentum`: the momentum buffer set (first step) or updated, then `param`. The first
 * step has its own loop: a conditional read of the buffer inside the loop costs V8 ~1.7x.
 */
const sgdMomentum: CpuTwin = (ins, outs, params) => {
  const { n, lr, wd, momentum, dampening, nesterov, first } = params as Params;
  const grad = ins.grad, c = ins.coef[0], param = outs.param, buf = outs.buf;
  const keep = 1 - dampening, ahead = nesterov !== 0;
  if (first) {
    for (let i = 0; i < n; i++) {
      const pv = param[i];
      const d = grad[i] * c + wd * pv;
      buf[i] = d;
      param[i] = pv - lr * (ahead ? d + momentum * d : d);
    }
    return;
  }
  for (let i = 0; i < n; i++) {
    const pv = param[i];
    const d = grad[i] * c + wd * pv;
    const v = momentum * buf[i] + keep * d;
    buf[i] = v;
    param[i] = pv - lr * (ahead ? d + momentum * v : v);
  }
};

/** `optim.sumsq`: the sum of squares of each `chunk` of `g`, written from `part[offset]` on. */
const sumsq: CpuTwin = (ins, outs, params) => {
  const { n, offset, chunk, count } = params as Params;
  const g = ins.g, part = outs.part;
  for (let i = 0; i < count; i++) {
    part[offset + i] = sumSquaredDeviations(g, i * chunk, Math.min(n, (i + 1) * chunk), 0);
  }
};

/** Native replacements of the optimizer twins, by kernel label. */
export const OPTIM_KERNELS: Readonly<Record<string, CpuTwin>> = {
  "optim.sgd": sgd,
  "optim.sgd_momentum": sgdMomentum,
  "optim.sumsq": sumsq,
};
