import assert from "node:assert/strict";
import * as ew from "../../tensor/ops/elementwise.ts";
import { tensor } from "../../tensor/tensor.ts";
import {
  assertClose,
  compareBackends,
  CPU,
  GPU,
  gpuBackend,
  gradcheck,
  poisonPool,
  randomArray,
} from "./helpers.ts";
import type { Backend } from "../../tensor/backend.ts";

const UNARY = {
  neg: ew.neg,
  exp: ew.exp,
  abs: ew.abs,
  relu: ew.relu,
  sigmoid: ew.sigmoid,
  logSigmoid: ew.logSigmoid,
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

const SHAPES: [number[], number[]][] = [
  [[7], [7]],
  [[3, 5], [5]],
  [[4, 1, 3], [1, 6, 1]],
  [[2, 3], []],
  [[0, 3], [3]],
];

Deno.test("unary ops match plain JS on the CPU backend", () => {
  const x = randomArray(11, 1, -3, 3);
  const t = tensor(x, [11], { backend: CPU });
  const expect = {
    neg: (v: number) => -v,
    exp: Math.exp,
    abs: Math.abs,
    relu: (v: number) => Math.max(v, 0),
    sigmoid: (v: number) => 1 / (1 + Math.exp(-v)),
    logSigmoid: (v: number) => -Math.log1p(Math.exp(-v)),
    tanh: Math.tanh,
  };
  for (const [name, fn] of Object.entries(UNARY)) {
    const got = new Float32Array(
      (fn(t).storage as unknown as { buffer: ArrayBuffer }).buffer,
      0,
      11,
    );
    assertClose(got, Array.from(x, expect[name as keyof typeof expect]), 1e-6, 1e-5, name);
  }
});

Deno.test("broadcasting follows NumPy rules", async () => {
  const a = tensor([[1, 2, 3], [4, 5, 6]], undefined, { backend: CPU });
  const b = tensor([[10], [20]], undefined, { backend: CPU });
  const c = ew.add(a, b);
  assert.deepEqual(c.shape, [2, 3]);
  assert.deepEqual(Array.from(await c.data()), [11, 12, 13, 24, 25, 26]);
  assert.throws(
    () => ew.add(a, tensor([1, 2], undefined, { backend: CPU })),
    /add: shapes \[2, 3\] and \[2\] do not broadcast/,
  );
  assert.deepEqual(Array.from(await ew.sub(1, a).data()), [0, -1, -2, -3, -4, -5]);
});

Deno.test("where, clamp, comparisons and cast", async () => {
  const x = tensor([-2, -0.5, 0, 0.5, 2], undefined, { backend: CPU });
  assert.deepEqual(Array.from(await ew.clamp(x, -1, 1).data()), [-1, -0.5, 0, 0.5, 1]);
  assert.deepEqual(Array.from(await ew.greater(x, 0).data()), [0, 0, 0, 1, 1]);
  assert.deepEqual(Array.from(await ew.where(ew.less(x, 0), x, 7).data()), [-2, -0.5, 7, 7, 7]);
  assert.deepEqual(Array.from(await ew.cast(x, "i32").data()), [-2, 0, 0, 0, 2]);
  assert.throws(() => ew.clamp(x, 1, -1), RangeError);
  assert.throws(
    () => ew.add(x, tensor([1, 2, 3, 4, 5], undefined, { backend: CPU, dtype: "i32" })),
    TypeError,
  );
});

Deno.test("elementwise kernels match their CPU twins", { ignore: !GPU }, async (t) => {
  const gpu = await gpuBackend();
  for (const [sa, sb] of SHAPES) {
    const na = sa.reduce((p, d) => p * d, 1), nb = sb.reduce((p, d) => p * d, 1);
    const xa = randomArray(na, 3, -2, 2), xb = randomArray(nb, 4, 0.5, 2);
    for (const [name, fn] of Object.entries(BINARY)) {
      await t.step(`${name} [${sa}] [${sb}]`, async () => {
        poisonPool(gpu, [Math.max(na, nb) * 8]);
        await compareBackends((backend: Backend) =>
          fn(tensor(xa, sa, { backend }), tensor(xb, sb, { backend }))
        );
      });
    }
  }
  for (const [name, fn] of Object.entries(UNARY)) {
    await t.step(`${name} [1000]`, async () => {
      const x = randomArray(1000, 9, -5, 5);
      await compareBackends((backend: Backend) => fn(tensor(x, [1000], { backend })));
    });
  }
  await t.step("pow, sqrt, log on positive inputs", async () => {
    const x = randomArray(257, 5, 0.1, 3), y = randomArray(257, 6, -2, 2);
    await compareBackends((backend: Backend) => {
      const a = tensor(x, [257], { backend }), b = tensor(y, [257], { backend });
      return [ew.pow(a, b), ew.sqrt(a), ew.log(a)];
    });
  });
  await t.step("more than 65,535 workgroups (17M elements)", async () => {
    const n = 65_536 * 256 + 3;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = i % 1000;
    const gpuOut = await ew.add(tensor(x, [n], { backend: gpu }), 1).data();
    assert.equal(gpuOut[0], 1);
    assert.equal(gpuOut[n - 1], ((n - 1) % 1000) + 1);
    assert.equal(gpuOut[n - 2], ((n - 2) % 1000) + 1);
    let bad = 0;
    for (let i = 0; i < n; i += 997) if (gpuOut[i] !== (i % 1000) + 1) bad++;
    assert.equal(bad, 0);
  });
});

Deno.test("elementwise gradients match finite differences (float64)", async (t) => {
  const x = { data: randomArray(6, 11, -2, 2), shape: [2, 3] };
  const y = { data: randomArray(3, 12, 0.5, 2), shape: [3] };
  const pos = { data: randomArray(6, 13, 0.5, 2), shape: [2, 3] };
  for (const [name, fn] of Object.entries(BINARY)) {
    await t.step(name, () => gradcheck(fn, [x, y]));
  }
  for (const [name, fn] of Object.entries(UNARY)) {
    if (name === "abs" || name === "relu") continue;
    await t.step(name, () => gradcheck(fn, [x]));
  }
  await t.step("abs and relu away from 0", async () => {
    await gradcheck(ew.abs, [pos]);
    await gradcheck(ew.relu, [pos]);
  });
  await t.step("pow, log, sqrt", async () => {
    await gradcheck(ew.pow, [pos, y]);
    await gradcheck(ew.log, [pos]);
    await gradcheck(ew.sqrt, [pos]);
  });
  await t.step("clamp, where, broadcastTo", async () => {
    await gradcheck((a) => ew.clamp(a, -1, 1), [{ data: [-2, -0.5, 0.3, 1.5], shape: [4] }]);
    const cond = tensor([1, 0, 1], [3], { backend: CPU, dtype: "f64" });
    await gradcheck((a, b) => ew.where(cond, a, b), [x, y]);
    await gradcheck((a) => ew.broadcastTo(a, [4, 3]), [y]);
  });
});
