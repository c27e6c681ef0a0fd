import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { mul, neg } from "../../tensor/ops/elementwise.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { logSoftmax } from "../../tensor/ops/softmax.ts";
import { Conv2d, MaxPool2d } from "../../tensor/nn/conv.ts";
import { BatchNorm2d, Flatten, GroupNorm, ReLU, Sequential } from "../../tensor/nn/layers.ts";
import { Linear } from "../../tensor/nn/linear.ts";
import type { Module } from "../../tensor/nn/module.ts";
import { AdamW } from "../../tensor/optim/adamw.ts";
import type { Optimizer } from "../../tensor/optim/optimizer.ts";
import { composeSchedules, cosineSchedule, linearWarmup } from "../../tensor/optim/schedules.ts";
import { SGD } from "../../tensor/optim/sgd.ts";
import { Rng } from "../../tensor/rng.ts";
import { type Tensor, tensor, tidy } from "../../tensor/tensor.ts";
import { CPU, GPU, gpuBackend, NATIVE, nativeBackend } from "./helpers.ts";

const SIZE = 8;
const CLASSES = 4;

/**
 * A toy task: an 8x8 image holds one bright 3x3 square on noise; the label is
 * the quadrant the square lies in.
 */
function toyData(count: number, rng: Rng): { images: Float32Array; onehot: Float32Array } {
  const images = new Float32Array(count * SIZE * SIZE);
  const onehot = new Float32Array(count * CLASSES);
  for (let s = 0; s < count; s++) {
    const label = s % CLASSES;
    for (let i = 0; i < SIZE * SIZE; i++) images[s * SIZE * SIZE + i] = rng.normal(0, 0.3);
    const y0 = (label >> 1) * 4 + rng.int(2), x0 = (label & 1) * 4 + rng.int(2);
    for (let dy = 0; dy < 3; dy++) {
      for (let dx = 0; dx < 3; dx++) images[s * SIZE * SIZE + (y0 + dy) * SIZE + x0 + dx] += 2;
    }
    onehot[s * CLASSES + label] = 1;
  }
  return { images, onehot };
}

function convNet(backend: Backend, rng: Rng, norm: "group" | "batch"): Module {
  return new Sequential(
    new Conv2d(1, 8, 3, { padding: 1, rng, backend }),
    norm === "group" ? new GroupNorm(2, 8, { backend }) : new BatchNorm2d(8, { backend }),
    new ReLU(),
    new MaxPool2d(2),
    new Flatten(),
    new Linear(8 * (SIZE / 2) * (SIZE / 2), CLASSES, { rng, backend }),
  );
}

/** Cross-entropy of `logits` [N, K] against one-hot targets. */
function crossEntropy(logits: Tensor, onehot: Tensor): Tensor {
  return neg(mul(sum(mul(logSoftmax(logits, 1), onehot)), 1 / logits.shape[0]));
}

async function train(
  backend: Backend,
  norm: "group" | "batch",
  makeOptimizer: (m: Module) => Optimizer,
  steps: number,
  baseLr: number,
): Promise<[number, number]> {
  const rng = new Rng(2024);
  const data = toyData(32, rng.fork());
  const net = convNet(backend, rng.fork(), norm);
  const opt = makeOptimizer(net);
  const x = tensor(data.images, [32, 1, SIZE, SIZE], { backend });
  const y = tensor(data.onehot, [32, CLASSES], { backend });
  const schedule = composeSchedules(linearWarmup(5, 0.1), cosineSchedule(steps, 0.1));
  const losses: Tensor[] = [];
  for (let step = 0; step < steps; step++) {
    const loss = tidy(() => {
      opt.zeroGrad();
      opt.lr = baseLr * schedule(step);
      const l = crossEntropy(net.forward(x), y);
      backward(l);
      opt.step();
      return l;
    });
    // Keep only the first and the last loss: no readback inside the loop.
    if (step === 0 || step === steps - 1) losses.push(loss);
    else loss.dispose();
  }
  const [first, last] = await Promise.all(losses.map(async (l) => (await l.data())[0]));
  losses.forEach((l) => l.dispose());
  opt.dispose();
  net.zeroGrad();
  net.dispose();
  x.dispose();
  y.dispose();
  return [first, last];
}

const adamw = (m: Module) => new AdamW(m.namedParameters(), { lr: 0.02, weightDecay: 1e-4 });
const sgd = (m: Module) => new SGD(m.namedParameters(), { lr: 0.1, momentum: 0.9, maxGradNorm: 5 });

Deno.test("a small conv net learns a toy task on the CPU", async (t) => {
  await t.step("GroupNorm + AdamW", async () => {
    const [first, last] = await train(CPU, "group", adamw, 60, 0.02);
    assert.ok(last < first / 10, `loss fell from ${first} to ${last}`);
  });
  await t.step("BatchNorm2d + SGD with momentum and clipping", async () => {
    const [first, last] = await train(CPU, "batch", sgd, 60, 0.1);
    assert.ok(last < first / 10, `loss fell from ${first} to ${last}`);
  });
});

Deno.test("a small conv net learns a toy task on WebGPU", { ignore: !GPU }, async (t) => {
  const gpu = await gpuBackend();
  await t.step("GroupNorm + AdamW", async () => {
    const [first, last] = await train(gpu, "group", adamw, 60, 0.02);
    assert.ok(last < first / 10, `loss fell from ${first} to ${last}`);
  });
  await t.step("BatchNorm2d + SGD with momentum and clipping", async () => {
    const [first, last] = await train(gpu, "batch", sgd, 60, 0.1);
    assert.ok(last < first / 10, `loss fell from ${first} to ${last}`);
  });
});

Deno.test(
  "a small conv net learns a toy task on the native backend",
  { ignore: !NATIVE },
  async (t) => {
    const native = NATIVE ? nativeBackend() : CPU;
    await t.step("GroupNorm + AdamW", async () => {
      const [first, last] = await train(native, "group", adamw, 60, 0.02);
      assert.ok(last < first / 10, `loss fell from ${first} to ${last}`);
    });
    await t.step("BatchNorm2d + SGD with momentum and clipping", async () => {
      const [first, last] = await train(native, "batch", sgd, 60, 0.1);
      assert.ok(last < first / 10, `loss fell from ${first} to ${last}`);
    });
  },
);
