/**
 * The Dice mask loss against float64 formulas: values, the analytic gradient, finite differences,
 * and the same on every available backend (CPU twin, native, WebGPU) in float32.
 */

import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { mul } from "../../tensor/ops/elementwise.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { tensor, tidy } from "../../tensor/tensor.ts";
import { DICE_EPS, diceLoss } from "../../losses/baselines/mod.ts";
import { assertClose, CPU, f64, gradcheck, randomArray, testBackends } from "../tensor/helpers.ts";

const sig = (x: number) => 1 / (1 + Math.exp(-x));

/** Float64 loss per row and the analytic gradients of `Σ_k w_k loss_k`. */
function diceRef(x: ArrayLike<number>, t: ArrayLike<number>, k: number, s: number, w: number[]) {
  const loss: number[] = [], gx: number[] = [], gt: number[] = [];
  for (let r = 0; r < k; r++) {
    let a = 0, d = DICE_EPS;
    for (let j = 0; j < s; j++) {
      const p = sig(x[r * s + j]), y = t[r * s + j];
      a += p * y;
      d += p * p + y * y;
    }
    loss.push(1 - 2 * a / d);
    for (let j = 0; j < s; j++) {
      const p = sig(x[r * s + j]), y = t[r * s + j];
      // dL/dp = -2 t / D + 4 A p / D², dL/dt = -2 p / D + 4 A t / D², dp/dx = p (1 - p).
      gx.push(w[r] * (-2 * y / d + 4 * a * p / (d * d)) * p * (1 - p));
      gt.push(w[r] * (-2 * p / d + 4 * a * y / (d * d)));
    }
  }
  return { loss, gx, gt };
}

/** Rows of random logits and targets: binary, soft, all zero and all one. */
function inputs(k: number, s: number, seed: number) {
  const x = randomArray(k * s, seed, -4, 4);
  const u = randomArray(k * s, seed + 1, 0, 1);
  const t = Float32Array.from(u, (v, i) => {
    const row = Math.floor(i / s) % 4;
    return row === 0 ? (v < 0.3 ? 1 : 0) : row === 1 ? v : row === 2 ? 0 : 1;
  });
  const w = Array.from(randomArray(k, seed + 2, 0.5, 1.5));
  return { x, t, w };
}

Deno.test("diceLoss matches the float64 formula and its analytic gradient", async (t) => {
  const k = 6, s = 35;
  const { x, t: y, w } = inputs(k, s, 1);
  const ref = diceRef(x, y, k, s, w);
  await t.step("values", async () => {
    const out = diceLoss(f64(x, [k, s]), f64(y, [k, s]));
    assert.deepEqual(out.shape, [k]);
    assertClose(await out.data(), ref.loss, 1e-12, 1e-12);
  });
  await t.step("hand values: perfect, disjoint and empty rows", async () => {
    const big = 40; // sigmoid(±40) is 1 or 4e-18
    const out = diceLoss(
      f64([big, -big, big, big, big, -big, -big, -big, -big], [3, 3]),
      f64([1, 0, 1, 0, 0, 1, 0, 0, 0], [3, 3]),
    );
    const [perfect, disjoint, empty] = await out.data();
    assertClose([perfect], [1 - 4 / (4 + DICE_EPS)], 1e-15); // 2 * 2 / (2 + 2 + eps)
    assertClose([disjoint], [1], 1e-15);
    assert.equal(empty, 1); // no overlap, whatever the denominator
  });
  await t.step("gradients to logits and targets equal the analytic ones", async () => {
    const lx = f64(x, [k, s], true), ly = f64(y, [k, s], true);
    backward(sum(mul(diceLoss(lx, ly), f64(w, [k]))));
    assertClose(await lx.grad!.data(), ref.gx, 1e-13, 1e-9, "logit gradient");
    assertClose(await ly.grad!.data(), ref.gt, 1e-13, 1e-9, "target gradient");
  });
  await t.step("finite differences", async () => {
    const small = inputs(4, 9, 5);
    await gradcheck((a, b) => diceLoss(a, b), [
      { data: small.x, shape: [4, 9] },
      { data: small.t, shape: [4, 9] },
    ]);
  });
  await t.step("no rows; a NaN stays in its row", async () => {
    assert.deepEqual(diceLoss(f64([], [0, 784]), f64([], [0, 784])).shape, [0]);
    const out = await diceLoss(f64([0, NaN, 1, 2], [2, 2]), f64([1, 0, 1, 1], [2, 2])).data();
    assert.ok(Number.isNaN(out[0]));
    assert.ok(Number.isFinite(out[1]));
  });
});

Deno.test("diceLoss in float32 on every backend (K = 200, S = 784)", async (t) => {
  const k = 200, s = 784;
  const { x, t: y, w } = inputs(k, s, 11);
  const ref = diceRef(x, y, k, s, w);
  for (const backend of await testBackends()) {
    await t.step(backend.name, async () => {
      const [loss, gx, gt] = await tidy(() => {
        const lx = tensor(x, [k, s], { backend, requiresGrad: true });
        const ly = tensor(y, [k, s], { backend, requiresGrad: true });
        const out = diceLoss(lx, ly);
        backward(sum(mul(out, tensor(Float32Array.from(w), [k], { backend }))));
        return [out, lx.grad!, ly.grad!];
      });
      assertClose(await loss.data(), ref.loss, 2e-6, 1e-5, "loss");
      // Gradients are O(1 / Σ) ≈ 1e-3: compare with a tolerance below that scale.
      assertClose(await gx.data(), ref.gx, 1e-8, 1e-3, "logit gradient");
      assertClose(await gt.data(), ref.gt, 1e-8, 1e-3, "target gradient");
      for (const v of [loss, gx, gt]) v.dispose();
    });
  }
});

Deno.test("diceLoss rejects bad input with clear errors", async () => {
  const a = f64([0, 1, 2, 3, 4, 5], [2, 3]);
  assert.throws(() => diceLoss(a, f64([0, 1, 2, 3, 4, 5], [3, 2])), {
    name: "TypeError",
    message: /diceLoss: logits \[2, 3\] and targets \[3, 2\] differ in shape/,
  });
  assert.throws(() => diceLoss(f64([1, 2], [2]), f64([1, 0], [2])), {
    name: "TypeError",
    message: /diceLoss: logits must have shape \[K, S\] but got \[2\]/,
  });
  assert.throws(() => diceLoss(a, tensor(new Float32Array(6), [2, 3], { backend: CPU })), {
    name: "TypeError",
    message: /diceLoss: element types f64 and f32 differ/,
  });
  assert.throws(() => diceLoss(a, tensor(new Int32Array(6), [2, 3], { backend: CPU })), {
    name: "TypeError",
    message: /diceLoss/,
  });
  const others = (await testBackends()).filter((b: Backend) => b !== CPU);
  for (const other of others) {
    const x = tensor(new Float32Array(6), [2, 3], { backend: CPU });
    assert.throws(() => diceLoss(x, tensor(new Float32Array(6), [2, 3], { backend: other })), {
      name: "TypeError",
      message: /diceLoss: inputs live on different backends/,
    });
  }
});
