import assert from "node:assert/strict";
import type { Backend } from "../../tensor/backend.ts";
import { AdamW } from "../../tensor/optim/adamw.ts";
import { clipGradNorm, gradNorm } from "../../tensor/optim/optimizer.ts";
import {
  composeSchedules,
  constantSchedule,
  cosineSchedule,
  linearWarmup,
  multiStepSchedule,
  stepSchedule,
} from "../../tensor/optim/schedules.ts";
import { SGD } from "../../tensor/optim/sgd.ts";
import { type Tensor, tensor, tidy } from "../../tensor/tensor.ts";
import { assertClose, CPU, GPU, gpuBackend, randomArray } from "./helpers.ts";

const param = (v: number[], backend: Backend = CPU) =>
  tensor(v, undefined, { backend, requiresGrad: true });

Deno.test("SGD matches hand-computed steps", async (t) => {
  await t.step("momentum 0.9, weight decay 0.1, lr 0.5", async () => {
    const w = param([1, -2]);
    const opt = new SGD([w], { lr: 0.5, momentum: 0.9, weightDecay: 0.1 });
    // step 1: d = g + 0.1 w = [0.5 + 0.1, 1 - 0.2] = [0.6, 0.8]; buf = d; w -= 0.5 d -> [0.7, -2.4]
    w.grad = tensor([0.5, 1]);
    opt.step();
    assertClose(await w.data(), [0.7, -2.4], 1e-6);
    // step 2: d = [0.5 + 0.07, 1 - 0.24] = [0.57, 0.76]; buf = 0.9 [0.6, 0.8] + d = [1.11, 1.48]
    // w -= 0.5 buf -> [0.7 - 0.555, -2.4 - 0.74] = [0.145, -3.14]
    opt.zeroGrad();
    assert.equal(w.grad, null);
    w.grad = tensor([0.5, 1]);
    opt.step();
    assertClose(await w.data(), [0.145, -3.14], 1e-6);
    assertClose(await opt.stateDict().get("0.momentum_buffer")!.data(), [1.11, 1.48], 1e-6);
  });
  await t.step("plain, Nesterov, decay filter", async () => {
    const a = param([1]), b = param([1]);
    const opt = new SGD([["a", a], ["b", b]], {
      lr: 1,
      momentum: 0.5,
      nesterov: true,
      weightDecay: 1,
      decay: (name) => name === "a",
    });
    a.grad = tensor([1]);
    b.grad = tensor([1]);
    opt.step();
    // a: d = 1 + 1 = 2, buf = 2, d = 2 + 0.5 * 2 = 3 -> -2; b: d = 1, buf = 1, d = 1.5 -> -0.5
    assertClose(await a.data(), [-2], 1e-6);
    assertClose(await b.data(), [-0.5], 1e-6);
    const c = param([2]);
    const plain = new SGD([c], { lr: 0.1 });
    c.grad = tensor([3]);
    plain.step();
    assertClose(await c.data(), [1.7], 1e-6);
    assert.equal(plain.stateDict().size, 0);
    assert.throws(() => new SGD([c], { lr: 0.1, nesterov: true }), /Nesterov/);
  });
});

/** Independent JS reference of PyTorch's AdamW. */
function adamwReference(
  p: number[],
  grads: number[][],
  lr: number,
  [b1, b2]: [number, number],
  eps: number,
  wd: number,
): number[] {
  const m = p.map(() => 0), v = p.map(() => 0);
  const w = [...p];
  grads.forEach((g, s) => {
    const t = s + 1;
    for (let i = 0; i < w.length; i++) {
      w[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const mhat = m[i] / (1 - b1 ** t), vhat = v[i] / (1 - b2 ** t);
      w[i] -= lr * mhat / (Math.sqrt(vhat) + eps);
    }
  });
  return w;
}

Deno.test("AdamW matches a reference over several steps", async () => {
  const start = [0.5, -1, 2, 0];
  const grads = [[0.1, -0.2, 0.3, 0], [0.2, 0.1, -0.5, 1e-3], [-0.3, 0.4, 0.1, 2]];
  const w = tensor(Float64Array.from(start), [4], { backend: CPU, requiresGrad: true });
  const opt = new AdamW([w], { lr: 0.01, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.1 });
  for (const g of grads) {
    opt.zeroGrad();
    w.grad = tensor(Float64Array.from(g), [4], { backend: CPU });
    opt.step();
  }
  assertClose(
    await w.data(),
    adamwReference(start, grads, 0.01, [0.8, 0.99], 1e-6, 0.1),
    1e-12,
    1e-12,
  );
  assert.equal(opt.stepCount, 3);
});

Deno.test("lrScale: a parameter at factor f steps as with lr * f; bad factors throw", async () => {
  const start = [0.5, -1, 2, 0];
  const grads = [[0.1, -0.2, 0.3, 0], [0.2, 0.1, -0.5, 1e-3]];
  const a = tensor(Float64Array.from(start), [4], { backend: CPU, requiresGrad: true });
  const b = tensor(Float64Array.from(start), [4], { backend: CPU, requiresGrad: true });
  const opt = new AdamW([["backbone.w", a], ["head.w", b]], {
    lr: 0.01,
    weightDecay: 0.1,
    lrScale: (name) => name.startsWith("backbone.") ? 0.1 : 1,
  });
  for (const g of grads) {
    opt.zeroGrad();
    a.grad = tensor(Float64Array.from(g), [4], { backend: CPU });
    b.grad = tensor(Float64Array.from(g), [4], { backend: CPU });
    opt.step();
  }
  const ref = (lr: number) => adamwReference(start, grads, lr, [0.9, 0.999], 1e-8, 0.1);
  assertClose(await a.data(), ref(0.001), 1e-12, 1e-12);
  assertClose(await b.data(), ref(0.01), 1e-12, 1e-12);
  assert.throws(
    () => new SGD([["w", a]], { lr: 0.1, lrScale: () => NaN }),
    /lr factor NaN of "w"/,
  );
});

Deno.test("gradient norm and clipping on the device", async (t) => {
  await t.step("gradNorm and clipGradNorm", async () => {
    const a = param([3, 0]), b = param([0, 0, 4]);
    a.grad = tensor([3, 0]);
    b.grad = tensor([0, 0, 4]);
    assertClose(await gradNorm([a.grad, b.grad]).data(), [5], 1e-6);
    const norm = clipGradNorm([a, b], 2.5);
    assertClose(await norm.data(), [5], 1e-6);
    assertClose(await a.grad.data(), [1.5, 0], 1e-5);
    assertClose(await b.grad.data(), [0, 0, 2], 1e-5);
    // Below the threshold nothing changes.
    clipGradNorm([a, b], 10);
    assertClose(await b.grad.data(), [0, 0, 2], 1e-5);
    assert.throws(() => clipGradNorm([a], 0), RangeError);
  });
  await t.step("norm over many chunks", async () => {
    const x = randomArray(5000, 3, -1, 1);
    let s = 0;
    for (const v of x) s += v * v;
    assertClose(
      await gradNorm([tensor(x, [5000], { backend: CPU })]).data(),
      [Math.sqrt(s)],
      1e-4,
      1e-5,
    );
  });
  await t.step("SGD with maxGradNorm clips before the update", async () => {
    const w = param([0, 0]);
    const opt = new SGD([w], { lr: 1, maxGradNorm: 1 });
    w.grad = tensor([6, 8]);
    opt.step();
    assertClose(await w.data(), [-0.6, -0.8], 1e-5);
    assertClose(await opt.lastGradNorm!.data(), [10], 1e-5);
  });
});

Deno.test("optimizer state round trip", async () => {
  const w = param([1, 2, 3]);
  const opt = new AdamW([["w", w]], { lr: 0.1 });
  w.grad = tensor([0.1, 0.2, 0.3]);
  opt.step();
  const saved = new Map<string, { dtype: "f32"; shape: number[]; data: Float32Array }>();
  for (const [name, t] of opt.stateDict()) {
    saved.set(name, { dtype: "f32", shape: [...t.shape], data: (await t.data()) as Float32Array });
  }
  assert.deepEqual([...saved.keys()], ["w.exp_avg", "w.exp_avg_sq"]);
  const w2 = param(Array.from(await w.data()));
  const opt2 = new AdamW([["w", w2]], { lr: 0.1 });
  opt2.loadStateDict(saved, opt.stepCount);
  for (const [o, p] of [[opt, w], [opt2, w2]] as const) {
    p.grad = tensor([-0.3, 0.1, 0.2]);
    o.step();
  }
  assertClose(await w2.data(), await w.data(), 0, 0);
  assert.throws(
    () => opt2.loadStateDict(new Map([["v.exp_avg", saved.get("w.exp_avg")!]]), 1),
    /Optimizer state "v.exp_avg" matches no parameter/,
  );
  assert.throws(
    () =>
      opt2.loadStateDict(
        new Map([["w.exp_avg", { dtype: "f32", shape: [2], data: new Float32Array(2) }]]),
        1,
      ),
    /Optimizer state "w.exp_avg" has shape \[2\] but the parameter has \[3\]/,
  );
});

Deno.test("schedules", () => {
  assert.equal(constantSchedule()(7), 1);
  assert.equal(stepSchedule(10, 0.5)(9), 1);
  assert.equal(stepSchedule(10, 0.5)(25), 0.25);
  assert.ok(Math.abs(multiStepSchedule([8, 11])(11) - 0.01) < 1e-15);
  assert.equal(multiStepSchedule([8, 11])(7), 1);
  assert.equal(cosineSchedule(100)(0), 1);
  assert.ok(Math.abs(cosineSchedule(100)(50) - 0.5) < 1e-12);
  assert.ok(Math.abs(cosineSchedule(100, 0.1)(100) - 0.1) < 1e-12);
  assert.ok(Math.abs(cosineSchedule(100, 0.1)(500) - 0.1) < 1e-12);
  assert.equal(linearWarmup(10, 0)(5), 0.5);
  assert.equal(linearWarmup(10, 0.1)(0), 0.1);
  assert.equal(linearWarmup(10)(10), 1);
  const s = composeSchedules(linearWarmup(10, 0), cosineSchedule(100));
  assert.ok(Math.abs(s(5) - 0.5 * (0.5 * (1 + Math.cos(Math.PI * 0.05)))) < 1e-12);
  assert.throws(() => stepSchedule(0), /stepSchedule: stepSize 0 is not a positive integer/);
});

Deno.test("optimizer kernels match their CPU twins", { ignore: !GPU }, async () => {
  const gpu = await gpuBackend();
  const n = 70_001;
  const p0 = randomArray(n, 1, -1, 1);
  const grads = [randomArray(n, 2, -1, 1), randomArray(n, 3, -1, 1)];
  const run = async (backend: Backend) => {
    const a = tensor(p0, [n], { backend, requiresGrad: true });
    const b = tensor(p0, [n], { backend, requiresGrad: true });
    const sgd = new SGD([a], { lr: 0.1, momentum: 0.9, weightDecay: 1e-2, maxGradNorm: 50 });
    const adam = new AdamW([b], { lr: 0.01 });
    for (const g of grads) {
      tidy(() => {
        for (const [p, o] of [[a, sgd], [b, adam]] as [Tensor, SGD | AdamW][]) {
          o.zeroGrad();
          p.grad = tensor(g, [n], { backend });
          o.step();
        }
      });
    }
    return [await a.data(), await b.data(), await sgd.lastGradNorm!.data()];
  };
  const [ec, gc] = [await run(CPU), await run(gpu)];
  ec.forEach((e, k) => assertClose(gc[k], e, 1e-5, 1e-4, `output ${k}`));
});
