/**
 * Elementwise (`map.*`) and reduction (`reduce.*`) kernels on the native backend.
 *
 * A `map.*` twin calls its expression's closure once per element and recomputes strided offsets
 * per element. Here a kernel is recognised by the WGSL expression in its code (never by its label
 * alone: `map` takes any label), and runs as one literal loop per expression over the rows of a
 * strided walk: dimensions of size 1 are dropped, adjacent dimensions that every operand walks
 * contiguously are merged, and each operand's offset advances by its stride (0 for a broadcast,
 * so a bias `[1, C, 1, 1]` over `[N, C, H, W]` is a run of one constant per row). Every loop
 * computes in doubles what the twin computes and stores into the same typed array, so the
 * results are the twin's, bit for bit. An expression not in these tables runs its twin.
 *
 * Reductions keep the twin's order of accumulation (axis index ascending, in a double per
 * output) but read the input row by row instead of column by column.
 *
 * @module
 */

import type { DType, TypedArray } from "../dtype.ts";
import type { CpuTwin, Kernel, ParamValues } from "../kernel.ts";

/**
 * One row of an elementwise op: for `j < n`, `o[io + j * so] = f(a[ia + j * sa], b[…], c[…])`.
 * Unused operands are ignored.
 */
type Row = (
  n: number,
  o: TypedArray,
  io: number,
  so: number,
  a: TypedArray,
  ia: number,
  sa: number,
  b: TypedArray,
  ib: number,
  sb: number,
  c: TypedArray,
  ic: number,
  sc: number,
) => void;

/** Rows shorter than this are walked along a longer dimension instead, if there is one. */
const SHORT_ROW = 16;

/** A copy (`broadcast_to`, `permute`, `restride`, casts): block copies and fills where it can. */
const copyRow: Row = (n, o, io, so, a, ia, sa) => {
  if (so === 1 && sa === 1 && n >= SHORT_ROW) o.set(a.subarray(ia, ia + n), io);
  else if (so === 1 && sa === 0) o.fill(a[ia], io, io + n);
  else for (let j = 0; j < n; j++, io += so, ia += sa) o[io] = a[ia];
};

/** `compare(...)` in elementwise.ts: `select(0.0, 1.0, COND)`. */
const compareKey = (cond: string) => `select(0.0, 1.0, ${cond})`;

/**
 * Literal loops by WGSL expression, each computing what the expression's twin in
 * `tensor/ops/elementwise.ts` (and the norm and softmax ops) computes.
 */
const ROWS: Readonly<Record<string, Row>> = {
  "a": copyRow,
  "a + b": (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) o[io] = a[ia] + b[ib];
  },
  "a - b": (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) o[io] = a[ia] - b[ib];
  },
  "a * b": (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) o[io] = a[ia] * b[ib];
  },
  "a / b": (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) o[io] = a[ia] / b[ib];
  },
  "-a": (n, o, io, so, a, ia, sa) => {
    for (let j = 0; j < n; j++, io += so, ia += sa) o[io] = -a[ia];
  },
  "max(a, T(0))": (n, o, io, so, a, ia, sa) => {
    for (let j = 0; j < n; j++, io += so, ia += sa) o[io] = Math.max(a[ia], 0);
  },
  "select(0.0, a, b > 0.0)": (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) o[io] = b[ib] > 0 ? a[ia] : 0;
  },
  "max(a, b)": (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) o[io] = Math.max(a[ia], b[ib]);
  },
  "min(a, b)": (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) o[io] = Math.min(a[ia], b[ib]);
  },
  "clamp(a, b, c)": (n, o, io, so, a, ia, sa, b, ib, sb, c, ic, sc) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb, ic += sc) {
      o[io] = Math.min(Math.max(a[ia], b[ib]), c[ic]);
    }
  },
  "select(T(0), a, b == c)": (n, o, io, so, a, ia, sa, b, ib, sb, c, ic, sc) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb, ic += sc) {
      o[io] = b[ib] === c[ic] ? a[ia] : 0;
    }
  },
  "select(c, b, a != T(0))": (n, o, io, so, a, ia, sa, b, ib, sb, c, ic, sc) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb, ic += sc) {
      o[io] = a[ia] !== 0 ? b[ib] : c[ic];
    }
  },
  [compareKey("a == b")]: (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) o[io] = a[ia] === b[ib] ? 1 : 0;
  },
  [compareKey("a != b")]: (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) o[io] = a[ia] !== b[ib] ? 1 : 0;
  },
  [compareKey("a < b")]: (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) o[io] = a[ia] < b[ib] ? 1 : 0;
  },
  [compareKey("a <= b")]: (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) o[io] = a[ia] <= b[ib] ? 1 : 0;
  },
  [compareKey("a > b")]: (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) o[io] = a[ia] > b[ib] ? 1 : 0;
  },
  [compareKey("a >= b")]: (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) o[io] = a[ia] >= b[ib] ? 1 : 0;
  },
  "exp(a)": (n, o, io, so, a, ia, sa) => {
    for (let j = 0; j < n; j++, io += so, ia += sa) o[io] = Math.exp(a[ia]);
  },
  "log(a)": (n, o, io, so, a, ia, sa) => {
    for (let j = 0; j < n; j++, io += so, ia += sa) o[io] = Math.log(a[ia]);
  },
  "sqrt(a)": (n, o, io, so, a, ia, sa) => {
    for (let j = 0; j < n; j++, io += so, ia += sa) o[io] = Math.sqrt(a[ia]);
  },
  "abs(a)": (n, o, io, so, a, ia, sa) => {
    for (let j = 0; j < n; j++, io += so, ia += sa) o[io] = Math.abs(a[ia]);
  },
  "tanh(a)": (n, o, io, so, a, ia, sa) => {
    for (let j = 0; j < n; j++, io += so, ia += sa) o[io] = Math.tanh(a[ia]);
  },
  "select(exp(a) / (1.0 + exp(a)), 1.0 / (1.0 + exp(-a)), a >= 0.0)": (n, o, io, so, a, ia, sa) => {
    for (let j = 0; j < n; j++, io += so, ia += sa) {
      const x = a[ia];
      if (x >= 0) o[io] = 1 / (1 + Math.exp(-x));
      else {
        const e = Math.exp(x);
        o[io] = e / (1 + e);
      }
    }
  },
  "a * b * (1.0 - b)": (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) {
      const y = b[ib];
      o[io] = a[ia] * y * (1 - y);
    }
  },
  "a * (1.0 - b * b)": (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) {
      const y = b[ib];
      o[io] = a[ia] * (1 - y * y);
    }
  },
  "a * sign(b)": (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) o[io] = a[ia] * Math.sign(b[ib]);
  },
  "-a * b / c": (n, o, io, so, a, ia, sa, b, ib, sb, c, ic, sc) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb, ic += sc) {
      o[io] = -a[ia] * b[ib] / c[ic];
    }
  },
  "0.5 * a / b": (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) o[io] = 0.5 * a[ia] / b[ib];
  },
  "inverseSqrt(a + b)": (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) {
      o[io] = 1 / Math.sqrt(a[ia] + b[ib]);
    }
  },
  "a - exp(c) * b": (n, o, io, so, a, ia, sa, b, ib, sb, c, ic, sc) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb, ic += sc) {
      o[io] = a[ia] - Math.exp(c[ic]) * b[ib];
    }
  },
  "c * (a - b)": (n, o, io, so, a, ia, sa, b, ib, sb, c, ic, sc) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb, ic += sc) {
      o[io] = c[ic] * (a[ia] - b[ib]);
    }
  },
};

/**
 * Rows over the raw bits (`Int32Array` views) of `f32` tensors, for expressions whose double
 * loop branches unpredictably on signs. Each gives the twin's `f32` result bit for bit (a NaN
 * keeps its payload where the twin's may be canonicalised).
 */
const F32_BIT_ROWS: Readonly<Record<string, Row>> = {
  // max(x, 0): +0 for every negative float, -0 and -Infinity (bits -2^31 ..= -2^23 as an i32);
  // x itself otherwise, NaNs with the sign bit (-2^23 + 1 ..= -1) included.
  "max(a, T(0))": (n, o, io, so, a, ia, sa) => {
    for (let j = 0; j < n; j++, io += so, ia += sa) {
      const x = a[ia];
      o[io] = x & -(x > -8388608);
    }
  },
  // b > 0 ? a : 0: b is a positive float (not NaN) when its bits are 1 ..= 0x7f800000.
  "select(0.0, a, b > 0.0)": (n, o, io, so, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++, io += so, ia += sa, ib += sb) {
      o[io] = a[ia] & -((b[ib] - 1) >>> 0 < 0x7f800000);
    }
  },
};

/** One loop over `n` elements at the same index of the output and of every operand. */
type Flat = (n: number, o: TypedArray, a: TypedArray, b: TypedArray) => void;

/**
 * Loops for the hottest expressions when every operand has the output's shape: one index for
 * every array lets V8 drop most bounds checks (about twice as fast as a {@linkcode Row}).
 */
const FLAT: Readonly<Record<string, Flat>> = {
  "a + b": (n, o, a, b) => {
    for (let i = 0; i < n; i++) o[i] = a[i] + b[i];
  },
  "a - b": (n, o, a, b) => {
    for (let i = 0; i < n; i++) o[i] = a[i] - b[i];
  },
  "a * b": (n, o, a, b) => {
    for (let i = 0; i < n; i++) o[i] = a[i] * b[i];
  },
};

/** {@linkcode FLAT} loops over the raw bits of `f32` tensors, as in {@linkcode F32_BIT_ROWS}. */
const F32_BIT_FLAT: Readonly<Record<string, Flat>> = {
  "max(a, T(0))": (n, o, a) => {
    for (let i = 0; i < n; i++) {
      const x = a[i];
      o[i] = x & -(x > -8388608);
    }
  },
  "select(0.0, a, b > 0.0)": (n, o, a, b) => {
    for (let i = 0; i < n; i++) o[i] = a[i] & -((b[i] - 1) >>> 0 < 0x7f800000);
  },
};

/** Expressions that `cast` generates: the twin is the identity, the store converts. */
const CASTS: Readonly<Record<string, DType[]>> = {
  "f32(a)": ["f32", "f64"],
  "i32(a)": ["i32"],
  "u32(a)": ["u32"],
};

type Access = "param" | "same" | "scalar" | "strided";

const NAMES = ["a", "b", "c"] as const;
const OUT_LINE = /^ {2}out\[i\] = (?:f32|i32|u32)\((.*)\);$/m;
const LOAD_LINE = /^ {2}let ([abc]) = (.*);$/gm;

/** The access of each operand of a `map.*` kernel, read from its loads, or `undefined`. */
function accessOf(kernel: Kernel): Access[] | undefined {
  const access: Access[] = [];
  for (const [, name, load] of kernel.code.matchAll(LOAD_LINE)) {
    if (name !== NAMES[access.length]) return undefined;
    if (load === `p.s_${name}` && `s_${name}` in kernel.params) access.push("param");
    else if (!(`in_${name}` in kernel.inputs)) return undefined;
    else if (load === `in_${name}[i]`) access.push("same");
    else if (load === `in_${name}[0]`) access.push("scalar");
    else if (load.startsWith(`in_${name}[`) && `st_${name}` in kernel.params) {
      access.push("strided");
    } else return undefined;
  }
  return access.length > 0 ? access : undefined;
}

/** Row-major strides of `shape`. */
function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  for (let d = shape.length - 1, s = 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

/** A one-element array holding `value` exactly, of `dtype`'s array type where that is exact. */
function holder(value: number, dtype: DType): TypedArray {
  if (dtype === "f32" && Object.is(Math.fround(value), value)) return Float32Array.of(value);
  if (dtype === "i32" && Object.is(value | 0, value)) return Int32Array.of(value);
  if (dtype === "u32" && Object.is(value >>> 0, value)) return Uint32Array.of(value);
  return Float64Array.of(value);
}

/** A view of the same `f32` elements as raw bits. */
function bitsOf(x: TypedArray): Int32Array {
  return new Int32Array(x.buffer, x.byteOffset, x.length);
}

/**
 * Runs `row` over an output of `shape` and its operands: `strides[k]` walks `arrays[k]`, with
 * the output (contiguous) first.
 */
function walk(
  row: Row,
  shape: readonly number[],
  arrays: readonly TypedArray[],
  strides: readonly (readonly number[])[],
): void {
  const count = arrays.length;
  // Coalesce, innermost first: drop size-1 dimensions, merge walks that continue each other.
  const dims: number[] = [];
  const st: number[][] = arrays.map(() => []);
  for (let d = shape.length - 1; d >= 0; d--) {
    const size = shape[d];
    if (size === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && strides.every((s, k) => s[d] === st[k][last] * dims[last])) {
      dims[last] *= size;
      continue;
    }
    dims.push(size);
    for (let k = 0; k < count; k++) st[k].push(strides[k][d]);
  }
  if (dims.length === 0) {
    dims.push(1);
    for (let k = 0; k < count; k++) st[k].push(0);
  }
  // A short innermost dimension (a permute to [..., 4]) swaps with the longest one.
  let longest = 0;
  for (let d = 1; d < dims.length; d++) if (dims[d] > dims[longest]) longest = d;
  if (dims[0] < SHORT_ROW && longest !== 0) {
    [dims[0], dims[longest]] = [dims[longest], dims[0]];
    for (const s of st) [s[0], s[longest]] = [s[longest], s[0]];
  }
  while (st.length < 4) st.push(dims.map(() => 0));
  const [o, a = o, b = o, c = o] = arrays;
  const [so, sa, sb, sc] = st.map((s) => s[0]);
  const [sto, sta, stb, stc] = st;
  const inner = dims[0], rank = dims.length;
  const rows = dims.reduce((p, d) => p * d, 1) / inner;
  const at = new Array<number>(rank).fill(0);
  let io = 0, ia = 0, ib = 0, ic = 0;
  for (let r = 0; r < rows; r++) {
    row(inner, o, io, so, a, ia, sa, b, ib, sb, c, ic, sc);
    for (let d = 1; d < rank; d++) {
      io += sto[d], ia += sta[d], ib += stb[d], ic += stc[d];
      if (++at[d] < dims[d]) break;
      at[d] = 0;
      const size = dims[d];
      io -= sto[d] * size, ia -= sta[d] * size, ib -= stb[d] * size, ic -= stc[d] * size;
    }
  }
}

/** How a `map.*` kernel runs natively: its loops and its operands' access. */
interface MapPlan {
  readonly access: readonly Access[];
  /** The input element type (that of `T`). */
  readonly dtype: DType;
  readonly row: Row;
  /** A loop for operands that all have the output's shape. */
  readonly flat?: Flat;
  /** Whether `row` and `flat` take the raw bits of `f32` operands. */
  readonly bits: boolean;
}

/** The twin of a `map.*` kernel run as `plan` says. */
function mapTwin({ access, dtype, row, flat, bits }: MapPlan): CpuTwin {
  const allSame = access.every((mode) => mode === "same");
  return (ins, outs, p: ParamValues) => {
    const n = p.n as number;
    if (n === 0) return;
    const shape = p.shape as readonly number[];
    const same = contiguousStrides(shape);
    const none = shape.map(() => 0);
    const arrays: TypedArray[] = [outs.out];
    const strides: (readonly number[])[] = [same];
    access.forEach((mode, k) => {
      const name = NAMES[k];
      if (mode === "param") arrays.push(holder(p[`s_${name}`] as number, dtype));
      else arrays.push(ins[`in_${name}`]);
      if (mode === "same") strides.push(same);
      else if (mode === "strided") strides.push(p[`st_${name}`] as readonly number[]);
      else strides.push(none);
    });
    const views = bits ? arrays.map(bitsOf) : arrays;
    if (flat && allSame) flat(n, views[0], views[1], views[2] ?? views[0]);
    else walk(row, shape, views, strides);
  };
}

/** The native twin of a `map.*` kernel whose expression is known, or `undefined`. */
function mapKernelTwin(kernel: Kernel): CpuTwin | undefined {
  const expr = OUT_LINE.exec(kernel.code)?.[1];
  const access = accessOf(kernel);
  if (expr === undefined || access === undefined) return undefined;
  const dtype = Object.values(kernel.inputs)[0];
  const outDtype = kernel.outputs.out;
  if (dtype === undefined || outDtype === undefined) return undefined;
  if (Object.hasOwn(CASTS, expr)) {
    return CASTS[expr].includes(outDtype)
      ? mapTwin({ access, dtype, row: copyRow, bits: false })
      : undefined;
  }
  if (!Object.hasOwn(ROWS, expr)) return undefined;
  const row = ROWS[expr];
  const bitRow = F32_BIT_ROWS[expr];
  if (bitRow && dtype === "f32" && outDtype === "f32" && !access.includes("param")) {
    return mapTwin({ access, dtype, row: bitRow, flat: F32_BIT_FLAT[expr], bits: true });
  }
  return mapTwin({ access, dtype, row, flat: FLAT[expr], bits: false });
}

/** The shape of a `reduce.*` launch: `x` as `[outer, r, inner]`, `r` in chunks of `chunk`. */
interface ReduceShape {
  readonly outer: number;
  readonly r: number;
  readonly inner: number;
  readonly chunk: number;
  /** Chunks per reduced axis, `ceil(r / chunk)` (at least 1). */
  readonly outR: number;
}

/**
 * Reduces every chunk of every column in the twin's order, one accumulator at a time: for short
 * rows (`inner` small), where the strided reads stay in cache.
 */
type ReduceColumns = (out: TypedArray, x: TypedArray, shape: ReduceShape, initial: number) => void;

/**
 * Accumulates `count` adjacent elements of each row of `x` starting at `from`, `from +
 * stride`, … below `to`, into `acc`: for long rows, read in order.
 */
type ReduceRows = (
  acc: Float64Array,
  x: TypedArray,
  from: number,
  to: number,
  stride: number,
  count: number,
) => void;

interface Reducer {
  /** The twin's `step` line in the WGSL. */
  readonly step: string;
  readonly columns: ReduceColumns;
  readonly rows: ReduceRows;
}

/** Rows from this long are reduced row by row, in blocks of {@linkcode REDUCE_BLOCK}. */
const LONG_ROW = 64;
/** Accumulators of one pass over long rows (8 KiB: they stay in the L1 cache). */
const REDUCE_BLOCK = 1024;

const REDUCERS: Readonly<Record<string, Reducer>> = {
  "reduce.sum": {
    step: "acc = acc + v;",
    columns(out, x, { outer, r, inner, chunk, outR }, initial) {
      for (let o = 0, i = 0; o < outer; o++) {
        for (let c = 0; c < outR; c++) {
          const from = (o * r + c * chunk) * inner,
            to = (o * r + Math.min(r, (c + 1) * chunk)) * inner;
          for (let n = 0; n < inner; n++, i++) {
            let acc = initial;
            for (let at = from + n; at < to; at += inner) acc += x[at];
            out[i] = acc;
          }
        }
      }
    },
    rows(acc, x, from, to, stride, count) {
      for (let at = from; at < to; at += stride) {
        for (let n = 0; n < count; n++) acc[n] += x[at + n];
      }
    },
  },
  "reduce.max": {
    step: "acc = max(acc, v);",
    columns(out, x, { outer, r, inner, chunk, outR }, initial) {
      for (let o = 0, i = 0; o < outer; o++) {
        for (let c = 0; c < outR; c++) {
          const from = (o * r + c * chunk) * inner,
            to = (o * r + Math.min(r, (c + 1) * chunk)) * inner;
          for (let n = 0; n < inner; n++, i++) {
            let acc = initial;
            for (let at = from + n; at < to; at += inner) acc = Math.max(acc, x[at]);
            out[i] = acc;
          }
        }
      }
    },
    rows(acc, x, from, to, stride, count) {
      for (let at = from; at < to; at += stride) {
        for (let n = 0; n < count; n++) acc[n] = Math.max(acc[n], x[at + n]);
      }
    },
  },
  "reduce.min": {
    step: "acc = min(acc, v);",
    columns(out, x, { outer, r, inner, chunk, outR }, initial) {
      for (let o = 0, i = 0; o < outer; o++) {
        for (let c = 0; c < outR; c++) {
          const from = (o * r + c * chunk) * inner,
            to = (o * r + Math.min(r, (c + 1) * chunk)) * inner;
          for (let n = 0; n < inner; n++, i++) {
            let acc = initial;
            for (let at = from + n; at < to; at += inner) acc = Math.min(acc, x[at]);
            out[i] = acc;
          }
        }
      }
    },
    rows(acc, x, from, to, stride, count) {
      for (let at = from; at < to; at += stride) {
        for (let n = 0; n < count; n++) acc[n] = Math.min(acc[n], x[at + n]);
      }
    },
  },
};

/** The twin's starting value for `label` over elements of `dtype`. */
function reduceInit(label: string, dtype: DType): number {
  const isInt = dtype === "i32" || dtype === "u32";
  if (label === "reduce.max") return isInt ? -2147483647 : -Infinity;
  if (label === "reduce.min") return isInt ? 2147483647 : Infinity;
  return 0;
}

/** The native twin of a `reduce.{sum,max,min}` kernel, or `undefined`. */
function reduceKernelTwin(kernel: Kernel): CpuTwin | undefined {
  const reducer = Object.hasOwn(REDUCERS, kernel.label) ? REDUCERS[kernel.label] : undefined;
  const dtype = kernel.inputs.x;
  const plain = Object.keys(kernel.inputs).join() === "x" &&
    Object.keys(kernel.outputs).join() === "out";
  if (!reducer || dtype === undefined || !plain || !kernel.code.includes(reducer.step)) {
    return undefined;
  }
  const initial = reduceInit(kernel.label, dtype);
  const { columns, rows } = reducer;
  return (ins, outs, p) => {
    const { outer, r, inner, chunk, out_r: outR } = p as Record<string, number>;
    const x = ins.x, out = outs.out;
    if (inner < LONG_ROW) {
      columns(out, x, { outer, r, inner, chunk, outR }, initial);
      return;
    }
    const acc = new Float64Array(Math.min(inner, REDUCE_BLOCK));
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < outR; c++) {
        const from = (o * r + c * chunk) * inner;
        const to = (o * r + Math.min(r, (c + 1) * chunk)) * inner;
        const at = (o * outR + c) * inner;
        for (let n = 0; n < inner; n += REDUCE_BLOCK) {
          const count = Math.min(REDUCE_BLOCK, inner - n);
          const block = count === acc.length ? acc : acc.subarray(0, count);
          block.fill(initial);
          rows(block, x, from + n, to, inner, count);
          out.set(block, at + n);
        }
      }
    }
  };
}

/**
 * A native replacement of an elementwise (`map.*`) or reduction (`reduce.sum`, `max`, `min`)
 * kernel's twin with the same results, or `undefined` where the twin should run.
 *
 * @example An elementwise kernel is replaced, a reduction with indices is not
 * ```ts
 * import { pointwiseKernel } from "./pointwise_kernels.ts";
 * import { createHostBackend } from "../cpu_backend.ts";
 * import { add } from "../ops/elementwise.ts";
 * import { argmax } from "../ops/reduce.ts";
 * import { tensor } from "../tensor.ts";
 * import assert from "node:assert/strict";
 *
 * const replaced: string[] = [];
 * const backend = createHostBackend({
 *   name: "native",
 *   description: "pointwise kernels only",
 *   kernels: (kernel) => {
 *     const twin = pointwiseKernel(kernel);
 *     if (twin) replaced.push(kernel.label);
 *     return twin;
 *   },
 * });
 * const x = tensor([1, 5, 2], [3], { backend });
 * assert.deepEqual(await add(x, 1).data(), new Float32Array([2, 6, 3]));
 * assert.deepEqual(await argmax(x).data(), new Int32Array([1]));
 * assert.deepEqual(replaced, ["map.add"]);
 * ```
 */
export function pointwiseKernel(kernel: Kernel): CpuTwin | undefined {
  if (kernel.label.startsWith("map.")) return mapKernelTwin(kernel);
  if (kernel.label.startsWith("reduce.")) return reduceKernelTwin(kernel);
  return undefined;
}
