import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { add, mul, neg } from "../../tensor/ops/elementwise.ts";
import { mean } from "../../tensor/ops/reduce.ts";
import { logSoftmax, softmax } from "../../tensor/ops/softmax.ts";
import { reshape } from "../../tensor/ops/shape.ts";
import { Conv2d, MaxPool2d } from "../../tensor/nn/conv.ts";
import { BatchNorm2d, Flatten, GroupNorm, ReLU, Sequential } from "../../tensor/nn/layers.ts";
import { Linear } from "../../tensor/nn/linear.ts";
import { Module } from "../../tensor/nn/module.ts";
import { AdamW } from "../../tensor/optim/adamw.ts";
import type { Optimizer } from "../../tensor/optim/optimizer.ts";
import { SGD } from "../../tensor/optim/sgd.ts";
import { randn, Rng } from "../../tensor/rng.ts";
import { type Tensor, tidy } from "../../tensor/tensor.ts";
import { CPU, GPU, gpuBackend } from "./helpers.ts";

/** A per-channel affine map, so that the test needs no matmul or conv. */
class ChannelAffine extends Module {
  readonly scale: Tensor;
  readonly shift: Tensor;
  constructor(c: number, backend: Backend, rng: Rng) {
    super();
    this.scale = this.registerParameter("scale", randn([1, c, 1, 1], rng, { backend }));
    this.shift = this.registerParameter("shift", randn([1, c, 1, 1], rng, { backend }));
  }
  forward(x: Tensor): Tensor {
    return add(mul(x, this.scale), this.shift);
  }
}

type Net = "affine" | "conv";

function makeNet(kind: Net, backend: Backend, rng: Rng): Module {
  if (kind === "affine") {
    return new Sequential(
      new ChannelAffine(4, backend, rng),
      new GroupNorm(2, 4, { backend }),
      new ReLU(),
      new BatchNorm2d(4, { backend }),
    );
  }
  return new Sequential(
    new Conv2d(4, 8, 3, { padding: 1, rng, backend }),
    new BatchNorm2d(8, { backend }),
    new ReLU(),
    new MaxPool2d(2, { stride: 1 }),
    new Conv2d(8, 4, 1, { rng, backend }),
    new GroupNorm(2, 4, { backend }),
    new Flatten(),
    new Linear(16, 36, { rng, backend }),
    new Reshape([2, 4, 3, 3]),
  );
}

/** Views its input as a fixed shape. */
class Reshape extends Module {
  constructor(readonly shape: number[]) {
    super();
  }
  forward(x: Tensor): Tensor {
    return reshape(x, this.shape);
  }
}

async function checkFlat(
  backend: Backend,
  kind: Net,
  makeOptimizer: (m: Module) => Optimizer,
): Promise<void> {
  const rng = new Rng(0);
  const net = makeNet(kind, backend, rng);
  const opt = makeOptimizer(net);
  const x = randn([2, 4, 3, 3], rng, { backend });
  const target = tidy(() => softmax(randn([2, 4, 3, 3], rng, { backend }), 1));
  const step = () =>
    tidy(() => {
      opt.zeroGrad();
      const loss = neg(mean(mul(logSoftmax(net.forward(x), 1), target)));
      backward(loss);
      opt.step();
      return loss;
    });
  step().dispose();
  step().dispose();
  const before = backend.liveBuffers();
  let last: Tensor | null = null;
  for (let i = 0; i < 100; i++) {
    last?.dispose();
    last = step();
  }
  last?.dispose();
  await backend.sync();
  assert.equal(backend.liveBuffers(), before, `${backend.name}: buffers leaked over 100 steps`);
  opt.dispose();
  opt.zeroGrad();
  net.dispose();
  x.dispose();
  target.dispose();
}

const CASES: [string, Net, (m: Module) => Optimizer][] = [
  [
    "affine net, AdamW with clipping",
    "affine",
    (m) => new AdamW(m.namedParameters(), { lr: 1e-2, maxGradNorm: 1 }),
  ],
  [
    "conv net, SGD with momentum",
    "conv",
    (m) => new SGD(m.namedParameters(), { lr: 1e-2, momentum: 0.9, weightDecay: 1e-4 }),
  ],
];

for (const [name, kind, make] of CASES) {
  Deno.test(`liveBuffers() is flat over 100 training steps, CPU, ${name}`, async () => {
    const start = CPU.liveBuffers();
    await checkFlat(CPU, kind, make);
    assert.equal(CPU.liveBuffers() - start, 0, "everything released at the end");
  });
  Deno.test(
    `liveBuffers() is flat over 100 training steps, WebGPU, ${name}`,
    { ignore: !GPU },
    async () => {
      const gpu = await gpuBackend();
      const start = gpu.liveBuffers();
      await checkFlat(gpu, kind, make);
      assert.equal(gpu.liveBuffers() - start, 0, "everything released at the end");
    },
  );
}
