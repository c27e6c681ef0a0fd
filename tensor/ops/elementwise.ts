/**
 * Elementwise ops with NumPy-style broadcasting, and their gradients.
 *
 * Every op is an instance of one generated kernel family, `map.*`: up to three
 * operands, each a tensor (contiguous, broadcast or a single element) or a
 * number passed as a uniform, combined by a WGSL expression and its JS twin.
 * {@linkcode map} is exported so that chains (e.g. a gradient rule) fuse into
 * one dispatch.
 *
 * @module
 */

import { record } from "../autograd.ts";
import { type DType, isFloat, wgslType } from "../dtype.ts";
import { entryPoint, kernelCache, type ParamType } from "../kernel.ts";
import { sizeOf, type Tensor, viewOf } from "../tensor.ts";
import { backendOf, launchInto, stridesOf } from "./launch.ts";
import { sumTo } from "./reduce.ts";

/** An operand: a tensor, or a number broadcast everywhere. */
export type Operand = Tensor | number;

/** A fused elementwise expression over operands `a`, `b`, `c`. */
export interface MapExpr {
  /** Names the kernel, `map.<label>`. */
  label: string;
  /** WGSL expression in `a`, `b`, `c` (of the compute type `T`). */
  wgsl: string;
  /** Its JS twin. */
  cpu: (a: number, b: number, c: number) => number;
  /** Output element type; default the first tensor operand's. */
  dtype?: DType;
}

const WORKGROUP = 256;
const MAX_RANK = 8;
const NAMES = ["a", "b", "c"] as const;

/** The broadcast shape of `shapes`, or a `TypeError` naming `op`. */
export function broadcastShapes(op: string, shapes: readonly (readonly number[])[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const shape of shapes) {
    for (let k = 0; k < shape.length; k++) {
      const d = rank - shape.length + k;
      const size = shape[k];
      if (out[d] === 1) out[d] = size;
      else if (size !== 1 && size !== out[d]) {
        throw new TypeError(
          `${op}: shapes ${shapes.map((s) => `[${s.join(", ")}]`).join(" and ")} do not broadcast`,
        );
      }
    }
  }
  return out;
}

type Access = "param" | "same" | "scalar" | "strided";

const cached = kernelCache();

function mapKernel(expr: MapExpr, access: Access[], inDtype: DType, outDtype: DType, rank: number) {
  const key = `${expr.label}|${expr.wgsl}|${access.join()}|${inDtype}|${outDtype}|${rank}`;
  return cached(key, () => {
    const scalarType = isFloat(inDtype) ? "f32" : wgslType(inDtype);
    const inputs: Record<string, DType> = {};
    const params: Record<string, ParamType> = { n: "u32", shape: "u32x8" };
    const loads: string[] = [];
    access.forEach((mode, k) => {
      const name = NAMES[k];
      if (mode === "param") {
        params[`s_${name}`] = scalarType as ParamType;
        loads.push(`  let ${name} = p.s_${name};`);
        return;
      }
      inputs[`in_${name}`] = inDtype;
      if (mode === "same") loads.push(`  let ${name} = in_${name}[i];`);
      else if (mode === "scalar") loads.push(`  let ${name} = in_${name}[0];`);
      else {
        params[`st_${name}`] = "u32x8";
        const terms = Array.from(
          { length: rank },
          (_, d) => `c${d} * u32x8_at(p.st_${name}, ${d}u)`,
        );
        loads.push(`  let ${name} = in_${name}[${terms.join(" + ")}];`);
      }
    });
    const coords: string[] = [];
    if (access.includes("strided")) {
      coords.push("  var rem = i;");
      for (let d = rank - 1; d >= 0; d--) {
        coords.push(`  let c${d} = rem % u32x8_at(p.shape, ${d}u);`);
        if (d > 0) coords.push(`  rem = rem / u32x8_at(p.shape, ${d}u);`);
      }
    }
    const outType = wgslType(outDtype === "f64" ? "f32" : outDtype);
    const label = `map.${expr.label}`;
    const code = `alias T = ${scalarType};
${entryPoint(WORKGROUP)}
  if (i >= p.n) { return; }
${coords.join("\n")}
${loads.join("\n")}
  out[i] = ${outType}(${expr.wgsl});
}`;
    const cpu = expr.cpu;
    return {
      label,
      inputs,
      outputs: { out: outDtype },
      params,
      workgroupSize: WORKGROUP,
      code,
      cpu(ins, outs, p) {
        const out = outs.out;
        const n = p.n as number;
        const shape = p.shape as number[];
        const arrays = access.map((mode, k) => mode === "param" ? null : ins[`in_${NAMES[k]}`]);
        const values = [0, 0, 0];
        const strides = access.map((mode, k) =>
          mode === "strided" ? p[`st_${NAMES[k]}`] as number[] : null
        );
        for (let i = 0; i < n; i++) {
          for (let k = 0; k < access.length; k++) {
            const mode = access[k];
            if (mode === "param") values[k] = p[`s_${NAMES[k]}`] as number;
            else if (mode === "same") values[k] = arrays[k]![i];
            else if (mode === "scalar") values[k] = arrays[k]![0];
            else {
              let rem = i, offset = 0;
              const st = strides[k]!;
              for (let d = rank - 1; d >= 0; d--) {
                offset += (rem % shape[d]) * st[d];
                rem = Math.floor(rem / shape[d]);
              }
              values[k] = arrays[k]![offset];
            }
          }
          out[i] = cpu(values[0], values[1], values[2]);
        }
      },
    };
  });
}

/**
 * Applies a fused elementwise expression to broadcast operands. No gradient
 * is recorded: ops built on it add their own rule.
 *
 * @example a * b + 1 in one dispatch
 * ```ts
 * import { map } from "./elementwise.ts";
 * import { tensor } from "../tensor.ts";
 * const y = map(
 *   { label: "fma1", wgsl: "a * b + 1.0", cpu: (a, b) => a * b + 1 },
 *   [tensor([1, 2, 3]), 2],
 * );
 * console.log(await y.data()); // Float32Array [3, 5, 7]
 * ```
 */
export function map(
  expr: MapExpr,
  operands: readonly Operand[],
  outShape?: readonly number[],
): Tensor {
  const tensors = operands.filter((o): o is Tensor => typeof o !== "number");
  if (tensors.length === 0) throw new TypeError(`${expr.label}: needs at least one tensor operand`);
  backendOf(expr.label, tensors);
  const inDtype = tensors[0].dtype;
  for (const t of tensors) {
    if (t.dtype !== inDtype) {
      throw new TypeError(`${expr.label}: element types ${inDtype} and ${t.dtype} differ`);
    }
  }
  const shape = broadcastShapes(expr.label, [
    ...tensors.map((t) => t.shape),
    ...(outShape ? [outShape] : []),
  ]);
  if (outShape && shape.join() !== outShape.join()) {
    throw new TypeError(
      `${expr.label}: cannot broadcast to [${outShape.join(", ")}] (got [${shape.join(", ")}])`,
    );
  }
  if (shape.length > MAX_RANK) {
    throw new RangeError(`${expr.label}: rank ${shape.length} exceeds ${MAX_RANK}`);
  }
  const n = sizeOf(shape);
  const outDtype = expr.dtype ?? inDtype;
  const access: Access[] = [];
  const params: Record<string, number | number[]> = { n, shape: [...shape] };
  const inputs: Tensor[] = [];
  operands.forEach((o, k) => {
    const name = NAMES[k];
    if (typeof o === "number") {
      access.push("param");
      params[`s_${name}`] = o;
      return;
    }
    inputs.push(o);
    if (o.size === n && o.shape.length <= shape.length) access.push("same");
    else if (o.size === 1) access.push("scalar");
    else {
      access.push("strided");
      const own = stridesOf(o.shape);
      const offset = shape.length - o.shape.length;
      params[`st_${name}`] = shape.map((_, d) => {
        const k2 = d - offset;
        return k2 < 0 || o.shape[k2] === 1 ? 0 : own[k2];
      });
    }
  });
  const kernel = mapKernel(expr, access, inDtype, outDtype, shape.length);
  return launchInto(kernel, inputs, shape, outDtype, params, Math.ceil(n / WORKGROUP));
}

/**
 * A copy of `x` laid out as `shape`, where output coordinate `c` reads input
 * element `sum(c[d] * strides[d])`: permutations, transposes and broadcasts.
 * No gradient is recorded.
 */
export function restride(
  label: string,
  x: Tensor,
  shape: readonly number[],
  strides: readonly number[],
): Tensor {
  if (shape.length > MAX_RANK) {
    throw new RangeError(`${label}: rank ${shape.length} exceeds ${MAX_RANK}`);
  }
  const n = sizeOf(shape);
  const kernel = mapKernel(
    { label, wgsl: "a", cpu: (a) => a },
    ["strided"],
    x.dtype,
    x.dtype,
    shape.length,
  );
  return launchInto(
    kernel,
    [x],
    shape,
    x.dtype,
    { n, shape: [...shape], st_a: [...strides] },
    Math.ceil(n / WORKGROUP),
  );
}

function tensorsOf(operands: readonly Operand[]): Tensor[] {
  return operands.filter((o): o is Tensor => typeof o !== "number");
}

/** Gradient `g` summed down to operand `o`'s shape, or `null` for numbers. */
function reduceGrad(g: Tensor, o: Operand): Tensor | null {
  if (typeof o === "number" || !o.requiresGrad) return null;
  return sumTo(g, o.shape);
}

function gradsFor(operands: readonly Operand[], grads: (Tensor | null)[]): (Tensor | null)[] {
  const out: (Tensor | null)[] = [];
  operands.forEach((o, k) => {
    if (typeof o !== "number") out.push(grads[k]);
  });
  return out;
}

function binary(
  expr: MapExpr,
  a: Operand,
  b: Operand,
  rule: (g: Tensor, out: Tensor) => [Tensor | null, Tensor | null],
): Tensor {
  const out = map(expr, [a, b]);
  record(expr.label, tensorsOf([a, b]), [out], ([g]) => {
    const [ga, gb] = rule(g!, out);
    const reduced = [ga && reduceGrad(ga, a), gb && reduceGrad(gb, b)];
    if (ga && reduced[0] !== ga) ga.dispose();
    if (gb && reduced[1] !== gb) gb.dispose();
    return gradsFor([a, b], reduced);
  });
  return out;
}

function unary(expr: MapExpr, x: Tensor, rule: (g: Tensor, out: Tensor) => Tensor): Tensor {
  const out = map(expr, [x]);
  record(expr.label, [x], [out], ([g]) => [rule(g!, out)]);
  return out;
}

const needs = (o: Operand) => typeof o !== "number" && o.requiresGrad;

/** Elementwise `a + b`, broadcasting. */
export function add(a: Operand, b: Operand): Tensor {
  return binary(
    { label: "add", wgsl: "a + b", cpu: (a, b) => a + b },
    a,
    b,
    (g) => [needs(a) ? viewOf(g, g.shape) : null, needs(b) ? viewOf(g, g.shape) : null],
  );
}

/** Elementwise `a - b`, broadcasting. */
export function sub(a: Operand, b: Operand): Tensor {
  return binary(
    { label: "sub", wgsl: "a - b", cpu: (a, b) => a - b },
    a,
    b,
    (g) => [needs(a) ? viewOf(g, g.shape) : null, needs(b) ? neg(g) : null],
  );
}

/** Elementwise `a * b`, broadcasting. */
export function mul(a: Operand, b: Operand): Tensor {
  return binary(
    { label: "mul", wgsl: "a * b", cpu: (a, b) => a * b },
    a,
    b,
    (g) => [needs(a) ? mul(g, b) : null, needs(b) ? mul(g, a) : null],
  );
}

/** Elementwise `a / b`, broadcasting. */
export function div(a: Operand, b: Operand): Tensor {
  return binary(
    { label: "div", wgsl: "a / b", cpu: (a, b) => a / b },
    a,
    b,
    (g, out) => [
      needs(a) ? div(g, b) : null,
      needs(b)
        ? map({ label: "div_grad_b", wgsl: "-a * b / c", cpu: (a, b, c) => -a * b / c }, [
          g,
          out,
          b,
        ])
        : null,
    ],
  );
}

/** Elementwise `a ** b`, broadcasting. */
export function pow(a: Operand, b: Operand): Tensor {
  return binary(
    { label: "pow", wgsl: "pow(a, b)", cpu: (a, b) => a ** b },
    a,
    b,
    (g, out) => [
      needs(a)
        ? map({
          label: "pow_grad_a",
          wgsl: "a * b * pow(c, b - 1.0)",
          cpu: (a, b, c) => a * b * c ** (b - 1),
        }, [g, b, a])
        : null,
      needs(b)
        ? map({
          label: "pow_grad_b",
          wgsl: "a * b * log(c)",
          cpu: (a, b, c) => a * b * Math.log(c),
        }, [
          g,
          out,
          a,
        ])
        : null,
    ],
  );
}

/** Elementwise maximum of `a` and `b`; the gradient goes to `a` on ties. */
export function maximum(a: Operand, b: Operand): Tensor {
  return binary(
    { label: "maximum", wgsl: "max(a, b)", cpu: (a, b) => Math.max(a, b) },
    a,
    b,
    (g) => [
      needs(a) ? where(greaterEqual(a, b), g, 0) : null,
      needs(b) ? where(greaterEqual(a, b), 0, g) : null,
    ],
  );
}

/** Elementwise minimum of `a` and `b`; the gradient goes to `a` on ties. */
export function minimum(a: Operand, b: Operand): Tensor {
  return binary(
    { label: "minimum", wgsl: "min(a, b)", cpu: (a, b) => Math.min(a, b) },
    a,
    b,
    (g) => [
      needs(a) ? where(lessEqual(a, b), g, 0) : null,
      needs(b) ? where(lessEqual(a, b), 0, g) : null,
    ],
  );
}

/** Elementwise `-x`. */
export function neg(x: Tensor): Tensor {
  return unary({ label: "neg", wgsl: "-a", cpu: (a) => -a }, x, (g) => neg(g));
}

/** Elementwise `e ** x`. */
export function exp(x: Tensor): Tensor {
  return unary({ label: "exp", wgsl: "exp(a)", cpu: Math.exp }, x, (g, out) => mul(g, out));
}

/** Elementwise natural logarithm. */
export function log(x: Tensor): Tensor {
  return unary({ label: "log", wgsl: "log(a)", cpu: Math.log }, x, (g) => div(g, x));
}

/** Elementwise square root. */
export function sqrt(x: Tensor): Tensor {
  return unary(
    { label: "sqrt", wgsl: "sqrt(a)", cpu: Math.sqrt },
    x,
    (g, out) =>
      map({ label: "sqrt_grad", wgsl: "0.5 * a / b", cpu: (a, b) => 0.5 * a / b }, [g, out]),
  );
}

/** Elementwise absolute value; gradient `sign(x)` (0 at 0). */
export function abs(x: Tensor): Tensor {
  return unary(
    { label: "abs", wgsl: "abs(a)", cpu: Math.abs },
    x,
    (g) => map({ label: "abs_grad", wgsl: "a * sign(b)", cpu: (a, b) => a * Math.sign(b) }, [g, x]),
  );
}

/** Elementwise `max(x, 0)`. */
export function relu(x: Tensor): Tensor {
  return unary(
    { label: "relu", wgsl: "max(a, T(0))", cpu: (a) => Math.max(a, 0) },
    x,
    (g) => reluGrad(g, x),
  );
}

/**
 * The gradient through a ReLU: `g` where `x` (the ReLU's input or output) is positive, else 0.
 *
 * @example
 * ```ts
 * import { reluGrad } from "./elementwise.ts";
 * import { tensor } from "../tensor.ts";
 * console.log(await reluGrad(tensor([5, 6]), tensor([-1, 2])).data()); // [0, 6]
 * ```
 */
export function reluGrad(g: Tensor, x: Tensor): Tensor {
  return map(
    { label: "relu_grad", wgsl: "select(0.0, a, b > 0.0)", cpu: (a, b) => b > 0 ? a : 0 },
    [g, x],
  );
}

/** Elementwise logistic function `1 / (1 + e^-x)`. */
export function sigmoid(x: Tensor): Tensor {
  return unary(
    {
      label: "sigmoid",
      wgsl: "select(exp(a) / (1.0 + exp(a)), 1.0 / (1.0 + exp(-a)), a >= 0.0)",
      cpu: (a) => a >= 0 ? 1 / (1 + Math.exp(-a)) : Math.exp(a) / (1 + Math.exp(a)),
    },
    x,
    (g, out) =>
      map({ label: "sigmoid_grad", wgsl: "a * b * (1.0 - b)", cpu: (a, b) => a * b * (1 - b) }, [
        g,
        out,
      ]),
  );
}

/** Elementwise `log(sigmoid(x))`, computed stably. */
export function logSigmoid(x: Tensor): Tensor {
  return unary(
    {
      label: "log_sigmoid",
      wgsl: "min(a, 0.0) - log(1.0 + exp(-abs(a)))",
      cpu: (a) => Math.min(a, 0) - Math.log1p(Math.exp(-Math.abs(a))),
    },
    x,
    (g) =>
      map({
        label: "log_sigmoid_grad",
        wgsl: "a * select(1.0 / (1.0 + exp(b)), exp(-b) / (1.0 + exp(-b)), b >= 0.0)",
        cpu: (a, b) => a * (b >= 0 ? Math.exp(-b) / (1 + Math.exp(-b)) : 1 / (1 + Math.exp(b))),
      }, [g, x]),
  );
}

/** Elementwise hyperbolic tangent. */
export function tanh(x: Tensor): Tensor {
  return unary(
    { label: "tanh", wgsl: "tanh(a)", cpu: Math.tanh },
    x,
    (g, out) =>
      map({ label: "tanh_grad", wgsl: "a * (1.0 - b * b)", cpu: (a, b) => a * (1 - b * b) }, [
        g,
        out,
      ]),
  );
}

/** Elementwise `min(max(x, lo), hi)`; the gradient passes where `lo <= x <= hi`. */
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  if (!(lo <= hi)) throw new RangeError(`clamp: lower bound ${lo} exceeds upper bound ${hi}`);
  const out = map({
    label: "clamp",
    wgsl: "clamp(a, b, c)",
    cpu: (a, b, c) => Math.min(Math.max(a, b), c),
  }, [
    x,
    lo,
    hi,
  ]);
  record("clamp", [x], [out], ([g]) => [
    map(
      { label: "clamp_grad", wgsl: "select(T(0), a, b == c)", cpu: (a, b, c) => b === c ? a : 0 },
      [
        g!,
        x,
        out,
      ],
    ),
  ]);
  return out;
}

function compare(label: string, wgsl: string, cpu: (a: number, b: number) => boolean) {
  return (a: Operand, b: Operand): Tensor => {
    const first = typeof a === "number" ? b as Tensor : a;
    return map({
      label,
      wgsl: `select(0.0, 1.0, ${wgsl})`,
      cpu: (x, y) => cpu(x, y) ? 1 : 0,
      dtype: first.dtype === "f64" ? "f64" : "f32",
    }, [a, b]);
  };
}

/** `1` where `a == b`, else `0` (as `f32`); no gradient. */
export const equal: (a: Operand, b: Operand) => Tensor = compare(
  "equal",
  "a == b",
  (a, b) => a === b,
);
/** `1` where `a != b`, else `0`; no gradient. */
export const notEqual: (a: Operand, b: Operand) => Tensor = compare(
  "not_equal",
  "a != b",
  (a, b) => a !== b,
);
/** `1` where `a < b`, else `0`; no gradient. */
export const less: (a: Operand, b: Operand) => Tensor = compare("less", "a < b", (a, b) => a < b);
/** `1` where `a <= b`, else `0`; no gradient. */
export const lessEqual: (a: Operand, b: Operand) => Tensor = compare(
  "less_equal",
  "a <= b",
  (a, b) => a <= b,
);
/** `1` where `a > b`, else `0`; no gradient. */
export const greater: (a: Operand, b: Operand) => Tensor = compare(
  "greater",
  "a > b",
  (a, b) => a > b,
);
/** `1` where `a >= b`, else `0`; no gradient. */
export const greaterEqual: (a: Operand, b: Operand) => Tensor = compare(
  "greater_equal",
  "a >= b",
  (a, b) => a >= b,
);

/** Picks `a` where `condition` is non-zero and `b` elsewhere, broadcasting. */
export function where(condition: Tensor, a: Operand, b: Operand): Tensor {
  const valueType = [a, b].find((o): o is Tensor => typeof o !== "number")?.dtype ??
    condition.dtype;
  const cond = condition.dtype === valueType ? condition : cast(condition, valueType);
  const out = map(
    { label: "where", wgsl: "select(c, b, a != T(0))", cpu: (a, b, c) => a !== 0 ? b : c },
    [cond, a, b],
  );
  if (cond !== condition) cond.dispose();
  record("where", tensorsOf([a, b]), [out], ([g]) => {
    const ga = needs(a) ? reduceGrad(where(condition, g!, 0), a) : null;
    const gb = needs(b) ? reduceGrad(where(condition, 0, g!), b) : null;
    return gradsFor([a, b], [ga, gb]);
  });
  return out;
}

/** `x` repeated along dimensions of size 1 (or missing) to `shape`; the gradient sums back. */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  const out = map({ label: "broadcast_to", wgsl: "a", cpu: (a) => a }, [x], shape);
  record("broadcast_to", [x], [out], ([g]) => [sumTo(g!, x.shape)]);
  return out;
}

/** Converts elements to `dtype` (floats to integers truncate toward zero); no gradient. */
export function cast(x: Tensor, dtype: DType): Tensor {
  const target = dtype === "f64" ? "f64" : wgslType(dtype);
  return map({
    label: `cast_${dtype}`,
    wgsl: `${target === "f64" ? "f32" : target}(a)`,
    cpu: (a) => a,
    dtype,
  }, [x]);
}
