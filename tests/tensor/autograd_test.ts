import assert from "node:assert/strict";
import { backward, customOp, detach, noGrad } from "../../tensor/autograd.ts";
import { add, mul, sigmoid } from "../../tensor/ops/elementwise.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { tensor, tidy } from "../../tensor/tensor.ts";
import { CPU } from "./helpers.ts";

const leaf = (values: number[], shape?: number[]) =>
  tensor(values, shape, { backend: CPU, requiresGrad: true, dtype: "f64" });

Deno.test("a node used twice accumulates both gradients", async () => {
  const x = leaf([1, 2, 3]);
  const y = mul(x, x); // dy/dx = 2x
  const z = add(y, mul(y, 3)); // dz/dx = 4 * 2x
  backward(sum(z));
  assert.deepEqual(Array.from(await x.grad!.data()), [8, 16, 24]);
});

Deno.test("broadcast inputs receive summed gradients", async () => {
  const a = leaf([1, 2, 3, 4, 5, 6], [2, 3]);
  const b = leaf([10, 20, 30], [3]);
  backward(sum(mul(a, b)));
  assert.deepEqual(Array.from(await b.grad!.data()), [5, 7, 9]);
  assert.deepEqual(Array.from(await a.grad!.data()), [10, 20, 30, 10, 20, 30]);
});

Deno.test("gradients accumulate across backward calls", async () => {
  const x = leaf([1, 2]);
  backward(sum(mul(x, 2)));
  backward(sum(mul(x, 3)));
  assert.deepEqual(Array.from(await x.grad!.data()), [5, 5]);
});

Deno.test("noGrad and detach cut the tape", async () => {
  const x = leaf([1, 2]);
  const y = noGrad(() => mul(x, x));
  assert.equal(y.requiresGrad, false);
  const z = add(mul(detach(x), x), 0);
  backward(sum(z));
  assert.deepEqual(Array.from(await x.grad!.data()), [1, 2]);
});

Deno.test("customOp uses the hand-written backward", async () => {
  const op = customOp({
    label: "test.custom",
    forward: ([a]) => ({ outputs: [sum(a)], saved: [mul(a, 10)] }),
    backward: ([g], [saved]) => [mul(saved, g!)],
  });
  const x = leaf([1, 2, 3]);
  const [out] = op(x);
  assert.deepEqual(Array.from(await out.data()), [6]);
  backward(mul(out, 2));
  assert.deepEqual(Array.from(await x.grad!.data()), [20, 40, 60]);
});

Deno.test("backward needs a scalar or an explicit gradient", () => {
  const x = leaf([1, 2]);
  assert.throws(() => backward(mul(x, 2)), /backward: output has shape \[2\]/);
});

Deno.test("tidy disposes what it does not return, and the pool gets it back", () => {
  const before = CPU.liveBuffers();
  const x = leaf([1, 2, 3]);
  for (let step = 0; step < 20; step++) {
    tidy(() => {
      backward(sum(sigmoid(mul(x, x))));
      x.grad!.dispose();
      x.grad = null;
    });
  }
  assert.equal(CPU.liveBuffers(), before + 1);
  const kept = tidy(() => mul(x, 2));
  assert.equal(kept.disposed, false);
  assert.equal(CPU.liveBuffers(), before + 2);
});

Deno.test("tidy releases what it created when the function throws", () => {
  const before = CPU.liveBuffers();
  assert.throws(() =>
    tidy(() => {
      mul(tensor([1, 2, 3], undefined, { backend: CPU }), 2);
      throw new Error("boom");
    }), /boom/);
  assert.equal(CPU.liveBuffers(), before);
});
