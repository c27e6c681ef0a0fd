import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import { type Backend, poolBucket } from "../../tensor/backend.ts";
import { createHostBackend } from "../../tensor/cpu_backend.ts";
import type { DType, TypedArray } from "../../tensor/dtype.ts";
import type { Kernel, Launch } from "../../tensor/kernel.ts";
import { pointwiseKernel } from "../../tensor/native/pointwise_kernels.ts";
import * as ew from "../../tensor/ops/elementwise.ts";
import { batchNorm } from "../../tensor/ops/norm.ts";
import { argmax, max, min, sum } from "../../tensor/ops/reduce.ts";
import { permute } from "../../tensor/ops/shape.ts";
import { logSoftmax, softmax } from "../../tensor/ops/softmax.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import {
  compareBackends,
  CPU,
  NATIVE,
  nativeBackend,
  outputsOf,
  randomArray,
  shapeSize,
} from "./helpers.ts";

/** Kernels `pointwiseKernel` replaced, and every kernel launched on {@linkcode POINTWISE}. */
const replaced = new WeakSet<Kernel>();
const launched: Kernel[] = [];
const host = createHostBackend({
  name: "native",
  description: "pointwise kernels only",
  poolBytes: 1 << 26,
  kernels: (kernel) => {
    const twin = pointwiseKernel(kernel);
    if (twin) replaced.add(kernel);
    return twin;
  },
});
/** A pooled host backend with the pointwise kernels alone (no OpenBLAS needed). */
const POINTWISE: Backend = {
  ...host,
  run(launch: Launch) {
    launched.push(launch.kernel);
    host.run(launch);
  },
};

/** A float32 NaN with the sign bit set (x86's default NaN), which a careless bit trick zeroes. */
const NEGATIVE_NAN_BITS = -4194304; // 0xffc00000
const SPECIALS = [0, -0, NaN, Infinity, -Infinity, 1e-40, -1e-40, 3e38, -3e38, 1, -1];

/** Seeded floats in [-3, 3) with special values (and a negative NaN) every few elements. */
function floats(n: number, seed: number, special = true): Float32Array {
  const out = randomArray(n, seed, -3, 3);
  if (!special) return out;
  const bits = new Int32Array(out.buffer);
  for (let i = seed % 5; i < n; i += 5) {
    const k = (i + seed) % (SPECIALS.length + 1);
    if (k === SPECIALS.length) bits[i] = NEGATIVE_NAN_BITS;
    else out[i] = SPECIALS[k];
  }
  return out;
}

/** Seeded integers, with 0, ±1 and the i32 extremes among them. */
function ints(n: number, seed: number): Int32Array {
  const out = Int32Array.from(randomArray(n, seed, -50, 50), Math.trunc);
  const edges = [0, 1, -1, 2147483647, -2147483648];
  for (let i = seed % 4; i < n; i += 4) out[i] = edges[(i + seed) % edges.length];
  return out;
}

/** A seeded tensor of `shape` and `dtype` on `backend`. */
function make(
  backend: Backend,
  shape: readonly number[],
  dtype: DType,
  seed: number,
  special = true,
): Tensor {
  const n = shapeSize(shape);
  if (dtype === "i32") return tensor(ints(n, seed), shape, { backend });
  if (dtype === "u32") return tensor(Uint32Array.from(ints(n, seed)), shape, { backend });
  const data = floats(n, seed, special);
  return tensor(dtype === "f64" ? Float64Array.from(data) : data, shape, { backend });
}

/** Fills three pooled buffers of every bucket up to `maxBytes` with NaN and releases them. */
function poison(backend: Backend, maxBytes: number): void {
  const held: Tensor[] = [];
  for (let bytes = 256; bytes <= maxBytes; bytes = poolBucket(bytes + 1)) {
    for (let k = 0; k < 3; k++) {
      held.push(tensor(new Float32Array(bytes / 4).fill(NaN), [bytes / 4], { backend }));
    }
  }
  held.forEach((t) => t.dispose());
}

/** Asserts the same element type and the same elements (`-0` is not `0`; NaN matches NaN). */
function assertSame(actual: TypedArray, expected: TypedArray, what: string): void {
  assert.equal(actual.constructor, expected.constructor, `${what}: element type`);
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) {
      assert.fail(`${what}[${i}]: got ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

/**
 * Runs `fn` on the CPU backend and, from a poisoned pool, on {@linkcode POINTWISE}; asserts
 * identical outputs, and that every `map.*` and `reduce.*` kernel launched was replaced except
 * those labelled in `twins`.
 */
async function same(
  what: string,
  fn: (backend: Backend) => Tensor | Tensor[],
  twins: readonly string[] = [],
): Promise<void> {
  const expected = await outputsOf(CPU, fn);
  poison(POINTWISE, Math.max(4096, ...expected.map((e) => 2 * e.byteLength)));
  launched.length = 0;
  const actual = await outputsOf(POINTWISE, fn);
  const pointwise = launched.filter((k) => /^(map|reduce)\./.test(k.label));
  assert.ok(pointwise.length > 0, `${what}: no map or reduce kernel ran`);
  for (const kernel of pointwise) {
    const twin = twins.includes(kernel.label);
    assert.equal(
      replaced.has(kernel),
      !twin,
      `${what}: ${kernel.label} ${twin ? "should run its twin" : "was not replaced"}`,
    );
  }
  expected.forEach((e, k) => assertSame(actual[k], e, `${what}: output ${k}`));
}

/** Operand shape pairs: same, single element both ways, broadcasts up to rank 8, empty. */
const PAIRS: [number[], number[]][] = [
  [[2, 3, 4], [2, 3, 4]],
  [[2, 3, 4], [1]],
  [[1, 1], [3, 5]],
  [[], [7]],
  [[2, 3, 4], [4]],
  [[2, 3, 4], [3, 1]],
  [[2, 1, 4], [1, 3, 1]],
  [[3, 5, 6, 7], [1, 5, 1, 1]],
  [[2, 17, 1], [2, 1, 19]],
  [[2, 2, 1, 3, 2, 1, 2, 3], [1, 2, 2, 3, 1, 2, 1, 3]],
  [[0, 3], [3]],
];

/** Numbers as operands: f32-exact or not, negative zero. */
const PARAMS = [0.1, 2, -0, -1.5];

const UNARY = {
  neg: ew.neg,
  exp: ew.exp,
  log: ew.log,
  sqrt: ew.sqrt,
  abs: ew.abs,
  relu: ew.relu,
  sigmoid: ew.sigmoid,
  tanh: ew.tanh,
} as const;

const BINARY = {
  add: ew.add,
  sub: ew.sub,
  mul: ew.mul,
  div: ew.div,
  maximum: ew.maximum,
  minimum: ew.minimum,
} as const;

const COMPARE = {
  equal: ew.equal,
  notEqual: ew.notEqual,
  less: ew.less,
  lessEqual: ew.lessEqual,
  greater: ew.greater,
  greaterEqual: ew.greaterEqual,
} as const;

/** The relu gradient's expression, as `relu` writes it. */
const RELU_GRAD: ew.MapExpr = {
  label: "relu_grad",
  wgsl: "select(0.0, a, b > 0.0)",
  cpu: (a, b) => b > 0 ? a : 0,
};

Deno.test("native map kernels give their twins' results bit for bit", async (t) => {
  await t.step("unary ops, f32 and f64, rank 0 to 3 and empty", async () => {
    for (const [name, op] of Object.entries(UNARY)) {
      for (const dtype of ["f32", "f64"] as const) {
        for (const shape of [[2, 3, 4], [1], [], [0, 5], [64, 33]]) {
          await same(`${name} ${dtype} [${shape}]`, (b) => op(make(b, shape, dtype, 1)));
        }
      }
    }
  });

  await t.step("binary ops over every access pattern, f32, f64 and i32", async () => {
    for (const [name, op] of Object.entries(BINARY)) {
      for (const dtype of ["f32", "f64", "i32"] as const) {
        for (const [sa, sb] of PAIRS) {
          await same(
            `${name} ${dtype} [${sa}] [${sb}]`,
            (b) => op(make(b, sa, dtype, 2), make(b, sb, dtype, 3)),
          );
        }
        for (const p of PARAMS) {
          await same(`${name} ${dtype} x ${p}`, (b) => op(make(b, [5, 7], dtype, 4), p));
          await same(`${name} ${dtype} ${p} x`, (b) => op(p, make(b, [5, 7], dtype, 5)));
        }
      }
    }
  });

  await t.step("relu and its gradient over every access pattern", async () => {
    for (const [sa, sb] of PAIRS) {
      for (const dtype of ["f32", "f64"] as const) {
        await same(
          `relu_grad ${dtype} [${sa}] [${sb}]`,
          (b) => ew.map(RELU_GRAD, [make(b, sa, dtype, 6), make(b, sb, dtype, 7)]),
        );
      }
    }
    const reluExpr: ew.MapExpr = {
      label: "relu",
      wgsl: "max(a, T(0))",
      cpu: (a) => Math.max(a, 0),
    };
    for (const [from, to] of [[[3, 1], [3, 40]], [[1], [50]], [[2, 1, 20], [2, 3, 20]]]) {
      await same(
        `relu broadcast [${from}] to [${to}]`,
        (b) => ew.map(reluExpr, [make(b, from, "f32", 5)], to),
      );
    }
    for (const p of PARAMS) {
      await same(`relu_grad x ${p}`, (b) => ew.map(RELU_GRAD, [make(b, [9, 4], "f32", 8), p]));
      await same(`relu_grad ${p} x`, (b) => ew.map(RELU_GRAD, [p, make(b, [9, 4], "f32", 9)]));
    }
  });

  await t.step("comparisons, where and clamp", async () => {
    for (const [name, op] of Object.entries(COMPARE)) {
      for (const dtype of ["f32", "f64", "i32"] as const) {
        for (const [sa, sb] of PAIRS) {
          await same(
            `${name} ${dtype} [${sa}] [${sb}]`,
            (b) => op(make(b, sa, dtype, 10), make(b, sb, dtype, 11)),
          );
        }
        await same(`${name} ${dtype} x 0`, (b) => op(make(b, [3, 8], dtype, 12), 0));
      }
    }
    const cond = (b: Backend, shape: number[]) =>
      tensor(Float32Array.from(floats(shapeSize(shape), 13), (v) => v > 0 ? 1 : v), shape, {
        backend: b,
      });
    await same("where same", (b) => ew.where(cond(b, [4, 6]), make(b, [4, 6], "f32", 14), -2));
    await same(
      "where broadcast",
      (b) => ew.where(cond(b, [2, 1, 6]), make(b, [3, 1], "f32", 15), make(b, [1], "f32", 16)),
    );
    await same("where i32", (b) => ew.where(make(b, [40], "i32", 17), make(b, [40], "i32", 18), 7));
    for (const dtype of ["f32", "f64"] as const) {
      await same(`clamp ${dtype}`, (b) => ew.clamp(make(b, [6, 7], dtype, 19), -0.5, 0.25));
    }
  });

  await t.step("casts, broadcasts and permutes", async () => {
    const casts: [DType, DType][] = [
      ["f32", "i32"],
      ["f32", "u32"],
      ["f32", "f64"],
      ["i32", "f32"],
      ["i32", "u32"],
      ["u32", "i32"],
      ["f64", "f32"],
      ["f64", "i32"],
    ];
    for (const [from, to] of casts) {
      await same(`cast ${from} to ${to}`, (b) => ew.cast(make(b, [5, 9], from, 20), to));
    }
    for (const dtype of ["f32", "i32", "f64"] as const) {
      await same(
        `broadcastTo ${dtype}`,
        (b) => ew.broadcastTo(make(b, [3, 1, 5], dtype, 21), [2, 3, 4, 5]),
      );
      await same(
        `broadcastTo ${dtype} of one`,
        (b) => ew.broadcastTo(make(b, [1], dtype, 22), [40]),
      );
    }
    const perms: [number[], number[]][] = [
      [[3, 4], [1, 0]],
      [[2, 3, 4, 5, 6], [0, 3, 4, 1, 2]], // a head's [n, a, k, h, w] to [n, h, w, a, k]
      [[2, 3, 4, 5, 6], [0, 3, 4, 1, 2].map((_, k) => [0, 3, 4, 1, 2].indexOf(k))],
      [[2, 1, 3, 2, 1, 2, 3, 2], [7, 0, 3, 5, 1, 6, 2, 4]],
      [[2, 40, 1], [2, 0, 1]],
      [[0, 4, 5], [2, 1, 0]],
    ];
    for (const [shape, order] of perms) {
      for (const dtype of ["f32", "i32"] as const) {
        await same(
          `permute ${dtype} [${shape}] by [${order}]`,
          (b) => permute(make(b, shape, dtype, 23), order),
        );
      }
    }
  });

  await t.step("gradients of the unary ops, division and clamp", async () => {
    const grads: Record<string, (x: Tensor, y: Tensor) => Tensor> = {
      ...Object.fromEntries(
        Object.entries(UNARY).map(([name, op]) => [name, (x: Tensor) => op(x)]),
      ),
      div: (x, y) => ew.div(x, y),
      clamp: (x) => ew.clamp(x, -1, 0.5),
      broadcast: (x, y) => ew.mul(x, ew.broadcastTo(y, [6, 5])),
    };
    for (const [name, op] of Object.entries(grads)) {
      await same(`${name} gradient`, (b) => {
        const x = make(b, [6, 5], "f32", 24), y = make(b, [1, 5], "f32", 25);
        x.requiresGrad = y.requiresGrad = true;
        backward(sum(ew.mul(op(x, y), make(b, [6, 5], "f32", 26, false))));
        return [x.grad!, y.grad ?? ew.neg(y)];
      });
    }
  });

  await t.step("softmax backward, norm and optimizer expressions", async () => {
    for (const op of [softmax, logSoftmax]) {
      await same(`${op.name} on a long axis`, (b) => {
        const x = make(b, [2, 8200], "f32", 27, false);
        x.requiresGrad = true;
        backward(sum(ew.mul(op(x, 1), make(b, [2, 8200], "f32", 28, false))));
        return x.grad!;
      });
    }
    await same("batchNorm eval", (b) =>
      batchNorm(
        make(b, [2, 3, 4, 4], "f32", 29, false),
        make(b, [3], "f32", 30, false),
        ew.abs(make(b, [3], "f32", 31, false)),
        undefined,
        undefined,
        { training: false },
      ));
  });
});

Deno.test("map kernels with expressions it does not know run their twins", async (t) => {
  await t.step("a known label with another expression", async () => {
    const fakeRelu: ew.MapExpr = {
      label: "relu",
      wgsl: "max(a, T(1))",
      cpu: (a) => Math.max(a, 1),
    };
    await same("relu with T(1)", (b) => ew.map(fakeRelu, [make(b, [4, 5], "f32", 40)]), [
      "map.relu",
    ]);
    const fakeAdd: ew.MapExpr = { label: "add", wgsl: "a + b * 2.0", cpu: (a, b) => a + b * 2 };
    await same(
      "add with a product",
      (b) => ew.map(fakeAdd, [make(b, [4, 5], "f32", 41), make(b, [5], "f32", 42)]),
      ["map.add"],
    );
  });

  await t.step("a known expression under any label", async () => {
    const expr: ew.MapExpr = { label: "my_sum", wgsl: "a + b", cpu: (a, b) => a + b };
    await same("my_sum", (b) => ew.map(expr, [make(b, [4, 5], "f32", 43), 0.5]));
  });

  await t.step("pow, log-sigmoid and a truncation that is not a cast", async () => {
    await same("pow", (b) => ew.pow(ew.abs(make(b, [4, 5], "f32", 44)), 1.5), ["map.pow"]);
    await same("logSigmoid", (b) => ew.logSigmoid(make(b, [4, 5], "f32", 45)), [
      "map.log_sigmoid",
    ]);
    const trunc: ew.MapExpr = { label: "trunc", wgsl: "i32(a)", cpu: Math.trunc, dtype: "f32" };
    await same("trunc to f32", (b) => ew.map(trunc, [make(b, [4, 5], "f32", 46)]), ["map.trunc"]);
  });

  await t.step("kernels of other families", () => {
    const kernels: Kernel[] = [];
    const backend = createHostBackend({
      name: "native",
      description: "recording",
      kernels: (kernel) => void kernels.push(kernel),
    });
    argmax(tensor([1, 3, 2], [3], { backend })).dispose();
    assert.deepEqual(kernels.map((k) => k.label), ["reduce.argmax"]);
    assert.equal(pointwiseKernel(kernels[0]), undefined);
    const odd = { ...kernels[0], label: "map.odd" };
    assert.equal(pointwiseKernel(odd), undefined);
  });
});

Deno.test("native reductions give their twins' results bit for bit", async (t) => {
  const ops = { sum, max, min } as const;
  const cases: [number[], number | number[] | undefined][] = [
    [[3, 5, 7], 0],
    [[3, 5, 7], 1],
    [[3, 5, 7], 2],
    [[3, 5, 7], [0, 2]],
    [[3, 5, 7], undefined],
    [[3, 2500], 1], // several passes of REDUCE_CHUNK
    [[2500, 3], 0],
    [[4, 3, 1500], 1], // inner rows longer than one block of accumulators
    [[5, 1], 0],
    [[1, 1, 1], undefined],
  ];
  for (const [name, op] of Object.entries(ops)) {
    await t.step(name, async () => {
      for (const dtype of ["f32", "f64", "i32"] as const) {
        for (const [shape, axis] of cases) {
          await same(
            `${name} ${dtype} [${shape}] over ${axis}`,
            (b) => op(make(b, shape, dtype, 50), axis),
          );
        }
        await same(`${name} ${dtype} with NaN`, (b) => op(make(b, [6, 11], dtype, 51), 1));
      }
    });
  }
  await t.step("empty axes sum to zero", async () => {
    await same("sum [0, 3] over 0", (b) => sum(make(b, [0, 3], "f32", 52), 0));
    await same("sum [3, 0] over 1", (b) => sum(make(b, [3, 0], "f32", 53), 1));
  });
  await t.step("argmax runs its twin", async () => {
    await same("argmax", (b) => argmax(make(b, [4, 9], "f32", 54), 1), [
      "reduce.argmax",
      "reduce.max",
    ]);
  });
});

Deno.test("the native backend runs the pointwise kernels", { ignore: !NATIVE }, async () => {
  const native = nativeBackend();
  await compareBackends(
    (b) => {
      const x = make(b, [2, 8, 16, 16], "f32", 60, false);
      const bias = make(b, [1, 8, 1, 1], "f32", 61, false);
      x.requiresGrad = bias.requiresGrad = true;
      const y = ew.relu(ew.add(x, bias));
      backward(sum(ew.mul(permute(y, [0, 2, 3, 1]), make(b, [2, 16, 16, 8], "f32", 62, false))));
      return [y, x.grad!, bias.grad!];
    },
    0,
    0,
    native,
  );
});
