import assert from "node:assert/strict";
import type { Backend } from "../../tensor/backend.ts";
import { backward } from "../../tensor/autograd.ts";
import { add, mul } from "../../tensor/ops/elementwise.ts";
import { logSoftmax, softmax, SOFTMAX_FUSED_MAX } from "../../tensor/ops/softmax.ts";
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

/** Independent reference: softmax of `x` ([outer, c, inner]) along the middle axis, in float64. */
function reference(
  x: ArrayLike<number>,
  shape: number[],
  axis: number,
  log: boolean,
): Float64Array {
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const c = shape[axis];
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const out = new Float64Array(x.length);
  for (let o = 0; o < outer; o++) {
    for (let n = 0; n < inner; n++) {
      const idx = (k: number) => (o * c + k) * inner + n;
      let m = -Infinity;
      for (let k = 0; k < c; k++) m = Math.max(m, x[idx(k)]);
      let s = 0;
      for (let k = 0; k < c; k++) s += Math.exp(x[idx(k)] - m);
      for (let k = 0; k < c; k++) {
        out[idx(k)] = log ? x[idx(k)] - m - Math.log(s) : Math.exp(x[idx(k)] - m) / s;
      }
    }
  }
  return out;
}

Deno.test("softmax and logSoftmax on hand-checked inputs (CPU)", async (t) => {
  await t.step("values", async () => {
    const x = tensor([[0, Math.log(3)], [1000, 1000], [-1000, 0]], undefined, { backend: CPU });
    assertClose(await softmax(x).data(), [0.25, 0.75, 0.5, 0.5, 0, 1], 1e-6);
    assertClose(
      await logSoftmax(x).data(),
      [Math.log(0.25), Math.log(0.75), -Math.LN2, -Math.LN2, -1000, 0],
      1e-4,
    );
  });
  await t.step("axes and shapes", async () => {
    const shape = [2, 3, 4];
    const x = randomArray(24, 1, -3, 3);
    for (const axis of [0, 1, 2, -1]) {
      const a = axis < 0 ? axis + 3 : axis;
      const tx = tensor(x, shape, { backend: CPU });
      assertClose(await softmax(tx, axis).data(), reference(x, shape, a, false), 1e-6);
      assertClose(await logSoftmax(tx, axis).data(), reference(x, shape, a, true), 1e-5);
    }
  });
  await t.step("errors and empty tensors", async () => {
    const x = tensor([1, 2, 3], undefined, { backend: CPU });
    assert.throws(() => softmax(x, 1), /softmax: axis 1 is out of range for rank 1/);
    assert.throws(() => softmax(tensor(1, [], { backend: CPU })), TypeError);
    assert.throws(() => softmax(tensor([1], [1], { backend: CPU, dtype: "i32" })), TypeError);
    const e = softmax(tensor([], [0, 5], { backend: CPU }));
    assert.deepEqual(e.shape, [0, 5]);
    assert.equal((await e.data()).length, 0);
  });
  await t.step("long rows use the composed path and agree", async () => {
    const c = SOFTMAX_FUSED_MAX + 5;
    const x = randomArray(2 * c, 3, -5, 5);
    const tx = tensor(x, [2, c], { backend: CPU });
    assertClose(await softmax(tx).data(), reference(x, [2, c], 1, false), 1e-7, 1e-4);
    assertClose(await logSoftmax(tx).data(), reference(x, [2, c], 1, true), 1e-4, 1e-5);
  });
});

Deno.test("softmax gradients match finite differences (float64)", async (t) => {
  const x = Array.from(randomArray(30, 5, -2, 2));
  for (const axis of [-1, 1, 0]) {
    await t.step(`softmax axis ${axis}`, async () => {
      await gradcheck((a) => softmax(a, axis), [{ data: x, shape: [2, 3, 5] }]);
    });
    await t.step(`logSoftmax axis ${axis}`, async () => {
      await gradcheck((a) => logSoftmax(a, axis), [{ data: x, shape: [2, 3, 5] }]);
    });
  }
  await t.step("long rows (composed backward) vs the analytic gradient", async () => {
    const c = SOFTMAX_FUSED_MAX + 3;
    const x = randomArray(c, 9, -2, 2);
    const w = randomArray(c, 4, 0.5, 1.5);
    for (const log of [false, true]) {
      const tx = tensor(Float64Array.from(x), [1, c], { backend: CPU, requiresGrad: true });
      const y = log ? logSoftmax(tx) : softmax(tx);
      backward(y, tensor(Float64Array.from(w), [1, c], { backend: CPU }));
      const p = reference(x, [1, c], 1, false);
      const expected = new Float64Array(c);
      let dot = 0, total = 0;
      for (let i = 0; i < c; i++) {
        dot += w[i] * p[i];
        total += w[i];
      }
      for (let i = 0; i < c; i++) expected[i] = log ? w[i] - p[i] * total : p[i] * (w[i] - dot);
      assertClose(await tx.grad!.data(), expected, 1e-12, 1e-9);
    }
  });
});

Deno.test("softmax kernels match their CPU twins", { ignore: !GPU }, async (t) => {
  const gpu = await gpuBackend();
  const cases: [number[], number][] = [
    [[7, 13], -1],
    [[3, 5, 7], 1],
    [[5, 3], 0],
    [[2, SOFTMAX_FUSED_MAX + 7], 1],
    [[33, 1], 1],
    [[0, 4], 1],
  ];
  for (const [shape, axis] of cases) {
    const n = shape.reduce((a, b) => a * b, 1);
    const x = randomArray(n, n + 1, -4, 4);
    const g = randomArray(n, n + 2, -1, 1);
    await t.step(`[${shape}] axis ${axis}`, async () => {
      poisonPool(gpu, [n]);
      await compareBackends(
        (backend: Backend) => {
          const tx = tensor(x, shape, { backend, requiresGrad: true });
          const y1 = softmax(tx, axis), y2 = logSoftmax(tx, axis);
          const tg = tensor(g, shape, { backend });
          backward(
            add(mul(y1, tg), mul(y2, tg)),
            tensor(new Float32Array(n).fill(1), shape, { backend }),
          );
          return [y1, y2, tx.grad!];
        },
        1e-5,
        1e-4,
      );
    });
  }
  await t.step("over 65,535 workgroups", async () => {
    const rows = 65_536 * 64 + 3;
    const x = randomArray(rows * 2, 11, -3, 3);
    poisonPool(gpu, [rows * 2]);
    const y = softmax(tensor(x, [rows, 2], { backend: gpu }));
    const data = await y.data();
    y.dispose();
    const ref = reference(x, [rows, 2], 1, false);
    for (const i of [0, 1, 1000, rows * 2 - 2, rows * 2 - 1]) {
      assert.ok(Math.abs(data[i] - ref[i]) < 1e-6, `element ${i}: ${data[i]} vs ${ref[i]}`);
    }
  });
});
