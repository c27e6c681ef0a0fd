/**
 * Softmax and log-softmax along one axis, numerically stable (the row maximum
 * is subtracted first), with hand-written backward rules.
 *
 * One kernel family, `softmax.*`, views the input as `[outer, c, inner]` and
 * gives each invocation one row of `c` elements (three passes: max, sum of
 * exponentials, write). Rows longer than {@linkcode SOFTMAX_FUSED_MAX} would
 * run into llvmpipe's per-invocation loop limit, so they are composed from the
 * chunked reductions instead.
 *
 * @module
 */

import { noGrad, record } from "../autograd.ts";
import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { sizeOf, type Tensor } from "../tensor.ts";
import { exp, log, map, sub } from "./elementwise.ts";
import { expectDtype, floatOf, launchInto, normalizeAxis } from "./launch.ts";
import { max, sum } from "./reduce.ts";

/** Longest row one invocation handles; longer rows use chunked reductions. */
export const SOFTMAX_FUSED_MAX = 8192;
const WORKGROUP = 64;

type Variant = "softmax" | "log_softmax" | "softmax_grad" | "log_softmax_grad";

const cached = kernelCache();

function softmaxKernel(variant: Variant, dtype: DType): Kernel {
  const key = `${variant}|${dtype}`;
  return cached(key, () => {
    const forward = variant === "softmax" || variant === "log_softmax";
    const inputs: Record<string, DType> = forward ? { x: dtype } : { g: dtype, y: dtype };
    const body = {
      softmax: `var m = -3.4028234663852886e38;
  for (var k = 0u; k < p.c; k++) { m = max(m, x[base + k * p.inner]); }
  var s = 0.0;
  for (var k = 0u; k < p.c; k++) {
    let at = base + k * p.inner;
    let e = exp(x[at] - m);
    out[at] = e;
    s += e;
  }
  let inv = 1.0 / s;
  for (var k = 0u; k < p.c; k++) {
    let at = base + k * p.inner;
    out[at] = out[at] * inv;
  }`,
      log_softmax: `var m = -3.4028234663852886e38;
  for (var k = 0u; k < p.c; k++) { m = max(m, x[base + k * p.inner]); }
  var s = 0.0;
  for (var k = 0u; k < p.c; k++) { s += exp(x[base + k * p.inner] - m); }
  let lse = m + log(s);
  for (var k = 0u; k < p.c; k++) {
    let at = base + k * p.inner;
    out[at] = x[at] - lse;
  }`,
      softmax_grad: `var dot = 0.0;
  for (var k = 0u; k < p.c; k++) {
    let at = base + k * p.inner;
    dot += g[at] * y[at];
  }
  for (var k = 0u; k < p.c; k++) {
    let at = base + k * p.inner;
    out[at] = y[at] * (g[at] - dot);
  }`,
      log_softmax_grad: `var s = 0.0;
  for (var k = 0u; k < p.c; k++) { s += g[base + k * p.inner]; }
  for (var k = 0u; k < p.c; k++) {
    let at = base + k * p.inner;
    out[at] = g[at] - exp(y[at]) * s;
  }`,
    }[variant];
    const code = `${entryPoint(WORKGROUP)}
  if (i >= p.rows) { return; }
  let base = (i / p.inner) * p.c * p.inner + i % p.inner;
  ${body}
}`;
    return {
      label: `softmax.${variant}`,
      inputs,
      outputs: { out: dtype },
      params: { rows: "u32", c: "u32", inner: "u32" },
      workgroupSize: WORKGROUP,
      code,
      cpu(ins, outs, p) {
        const { rows, c, inner } = p as Record<string, number>;
        const out = outs.out;
        for (let i = 0; i < rows; i++) {
          const base = Math.floor(i / inner) * c * inner + (i % inner);
          if (variant === "softmax" || variant === "log_softmax") {
            const x = ins.x;
            let m = -Infinity;
            for (let k = 0; k < c; k++) m = Math.max(m, x[base + k * inner]);
            let s = 0;
            for (let k = 0; k < c; k++) s += Math.exp(x[base + k * inner] - m);
            const lse = m + Math.log(s);
            for (let k = 0; k < c; k++) {
              const at = base + k * inner;
              out[at] = variant === "softmax" ? Math.exp(x[at] - m) / s : x[at] - lse;
            }
          } else {
            const g = ins.g, y = ins.y;
            let acc = 0;
            for (let k = 0; k < c; k++) {
              const at = base + k * inner;
              acc += variant === "softmax_grad" ? g[at] * y[at] : g[at];
            }
            for (let k = 0; k < c; k++) {
              const at = base + k * inner;
              out[at] = variant === "softmax_grad"
                ? y[at] * (g[at] - acc)
                : g[at] - Math.exp(y[at]) * acc;
            }
          }
        }
      },
    };
  });
}

function rowLaunch(variant: Variant, inputs: Tensor[], axis: number): Tensor {
  const x = inputs[0];
  const outer = sizeOf(x.shape.slice(0, axis));
  const c = x.shape[axis];
  const inner = sizeOf(x.shape.slice(axis + 1));
  const rows = outer * inner;
  return launchInto(
    softmaxKernel(variant, floatOf(x)),
    inputs,
    x.shape,
    x.dtype,
    { rows, c, inner },
    Math.ceil(rows / WORKGROUP),
  );
}

/** Forward without a tape: fused per row, or composed for long rows. */
function forwardRaw(log_: boolean, x: Tensor, axis: number): Tensor {
  if (x.shape[axis] <= SOFTMAX_FUSED_MAX || x.size === 0) {
    return rowLaunch(log_ ? "log_softmax" : "softmax", [x], axis);
  }
  return noGrad(() => {
    const m = max(x, axis, true);
    const z = sub(x, m);
    m.dispose();
    const e = exp(z);
    const s = sum(e, axis, true);
    let out: Tensor;
    if (log_) {
      const ls = log(s);
      out = sub(z, ls);
      ls.dispose();
    } else {
      out = map({ label: "softmax_div", wgsl: "a / b", cpu: (a, b) => a / b }, [e, s]);
    }
    for (const t of [z, e, s]) t.dispose();
    return out;
  });
}

function backwardRaw(log_: boolean, g: Tensor, y: Tensor, axis: number): Tensor {
  if (y.shape[axis] <= SOFTMAX_FUSED_MAX || y.size === 0) {
    return rowLaunch(log_ ? "log_softmax_grad" : "softmax_grad", [g, y], axis);
  }
  let reduced: Tensor;
  let out: Tensor;
  if (log_) {
    reduced = sum(g, axis, true);
    out = map({
      label: "log_softmax_grad_long",
      wgsl: "a - exp(c) * b",
      cpu: (a, b, c) => a - Math.exp(c) * b,
    }, [g, reduced, y]);
  } else {
    const gy = map({ label: "softmax_gy", wgsl: "a * b", cpu: (a, b) => a * b }, [g, y]);
    reduced = sum(gy, axis, true);
    gy.dispose();
    out = map({
      label: "softmax_grad_long",
      wgsl: "c * (a - b)",
      cpu: (a, b, c) => c * (a - b),
    }, [g, reduced, y]);
  }
  reduced.dispose();
  return out;
}

function softmaxOp(log_: boolean, x: Tensor, axis: number): Tensor {
  const op = log_ ? "logSoftmax" : "softmax";
  expectDtype(op, x, ["f32", "f64"]);
  if (x.rank === 0) throw new TypeError(`${op}: expected a tensor of rank >= 1 but got a scalar`);
  const a = normalizeAxis(op, axis, x.rank);
  const out = forwardRaw(log_, x, a);
  record(op, [x], [out], ([g]) => [backwardRaw(log_, g!, out, a)]);
  return out;
}

/**
 * `exp(x) / sum(exp(x))` along `axis` (default the last), computed stably.
 *
 * @example
 * ```ts
 * import { softmax } from "./softmax.ts";
 * import { tensor } from "../tensor.ts";
 * const y = softmax(tensor([[0, Math.log(3)], [1000, 1000]]));
 * console.log(await y.data()); // Float32Array [0.25, 0.75, 0.5, 0.5]
 * ```
 *
 * @param x A float tensor of rank >= 1.
 * @param axis The axis the probabilities sum to 1 along; negative counts from the end.
 * @returns A tensor of `x`'s shape.
 */
export function softmax(x: Tensor, axis = -1): Tensor {
  return softmaxOp(false, x, axis);
}

/**
 * `x - log(sum(exp(x)))` along `axis` (default the last), computed stably.
 *
 * @example
 * ```ts
 * import { logSoftmax } from "./softmax.ts";
 * import { tensor } from "../tensor.ts";
 * const y = logSoftmax(tensor([0, 0]));
 * console.log(await y.data()); // Float32Array [-0.6931..., -0.6931...]
 * ```
 *
 * @param x A float tensor of rank >= 1.
 * @param axis The axis normalised over; negative counts from the end.
 * @returns A tensor of `x`'s shape.
 */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return softmaxOp(true, x, axis);
}
