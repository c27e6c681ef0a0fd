import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import type { DType } from "../../tensor/dtype.ts";
import { concat, pad, slice, split } from "../../tensor/ops/concat.ts";
import { mul } from "../../tensor/ops/elementwise.ts";
import { gather, indexSelect, scatterAdd } from "../../tensor/ops/index.ts";
import { batchNorm, groupNorm } from "../../tensor/ops/norm.ts";
import {
  avgPool2d,
  maxPool2d,
  type Pool2dOptions,
  upsampleNearest2d,
} from "../../tensor/ops/pool.ts";
import { AdamW } from "../../tensor/optim/adamw.ts";
import type { Optimizer } from "../../tensor/optim/optimizer.ts";
import { SGD } from "../../tensor/optim/sgd.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import {
  compareBackends,
  CPU,
  NATIVE,
  nativeBackend,
  poisonPool,
  randomArray,
  shapeSize,
} from "./helpers.ts";

const native = NATIVE ? nativeBackend() : CPU;

/** Tight enough that a misplaced or unwritten element (NaN from the poisoned pool) fails. */
const TOL = 1e-5;

/** Poisons two pooled buffers of each size, then compares `fn` on the CPU and native backends. */
async function parity(
  sizes: readonly number[],
  fn: (backend: Backend) => Tensor | Tensor[],
  tol = TOL,
): Promise<void> {
  poisonPool(native, [...sizes, ...sizes]);
  await compareBackends(fn, tol, tol, native);
}

function input(shape: readonly number[], seed: number, backend: Backend, grad = true): Tensor {
  return tensor(randomArray(shapeSize(shape), seed), shape, { backend, requiresGrad: grad });
}

/** Integers in `[0, limit)` as an index tensor. */
function indices(shape: readonly number[], seed: number, limit: number, dtype: DType, b: Backend) {
  const values = randomArray(shapeSize(shape), seed, 0, limit).map(Math.floor);
  return tensor(dtype === "i32" ? Int32Array.from(values) : Uint32Array.from(values), shape, {
    backend: b,
    dtype,
  });
}

/** Backward of `y` with a seeded random upstream gradient. */
function backwardRandom(y: Tensor, seed: number): void {
  backward(y, tensor(randomArray(y.size, seed), y.shape, { backend: y.backend }));
}

const POOLS: [string, number[], Pool2dOptions][] = [
  ["2x2", [2, 3, 6, 5], { kernelSize: 2 }],
  ["3x3 stride 2 pad 1, odd sizes", [2, 3, 11, 9], { kernelSize: 3, stride: 2, padding: 1 }],
  ["3x3 stride 1 pad 1", [1, 2, 7, 6], { kernelSize: 3, stride: 1, padding: 1 }],
  ["2x3 stride [1, 2] pad [1, 1]", [1, 2, 6, 9], {
    kernelSize: [2, 3],
    stride: [1, 2],
    padding: 1,
  }],
  ["2x2 stride 3 (gaps)", [1, 2, 8, 10], { kernelSize: 2, stride: 3 }],
];

/** Element counts of a pooling's input and output (the buffers to poison). */
function poolSizes([n, c, h, w]: number[], o: Pool2dOptions): number[] {
  const pair = (v: number | readonly number[] | undefined, fallback: readonly number[]) =>
    v === undefined ? fallback : typeof v === "number" ? [v, v] : v;
  const k = pair(o.kernelSize, []), s = pair(o.stride, k), p = pair(o.padding, [0, 0]);
  const ho = Math.floor((h + 2 * p[0] - k[0]) / s[0]) + 1;
  const wo = Math.floor((w + 2 * p[1] - k[1]) / s[1]) + 1;
  return [n * c * h * w, n * c * ho * wo];
}

Deno.test("native pooling matches the CPU twins", { ignore: !NATIVE }, async (t) => {
  for (const [k, [name, shape, o]] of POOLS.entries()) {
    await t.step(`maxPool2d ${name}, forward and backward`, async () => {
      await parity(poolSizes(shape, o), (backend) => {
        const x = input(shape, 10 + k, backend);
        const y = maxPool2d(x, o);
        backwardRandom(y, 20 + k);
        return [y, x.grad!];
      });
    });
    await t.step(`maxPool2d ${name} with ties: the first maximum gets the gradient`, async () => {
      await parity(poolSizes(shape, o), (backend) => {
        const values = randomArray(shapeSize(shape), 30 + k, 0, 3).map(Math.floor);
        const x = tensor(values, shape, { backend, requiresGrad: true });
        const y = maxPool2d(x, o);
        backwardRandom(y, 40 + k);
        return [y, x.grad!];
      });
    });
    await t.step(`avgPool2d ${name}, forward and backward`, async () => {
      await parity(poolSizes(shape, o), (backend) => {
        const x = input(shape, 50 + k, backend);
        const y = avgPool2d(x, o);
        backwardRandom(y, 60 + k);
        return [y, x.grad!];
      });
    });
  }
  await t.step("maxPool2d gradient on a 1x1 plane padded to a 3x3 window", async () => {
    await parity([4], (backend) => {
      const x = input([2, 2, 1, 1], 70, backend);
      const y = maxPool2d(x, { kernelSize: 3, stride: 1, padding: 1 });
      backwardRandom(y, 71);
      return [y, x.grad!];
    });
  });
  for (const scale of [2, [3, 2] as [number, number], 1]) {
    await t.step(`upsampleNearest2d x${scale}, forward and backward`, async () => {
      const shape = [2, 3, 5, 4];
      await parity([shapeSize(shape), shapeSize(shape) * 6], (backend) => {
        const x = input(shape, 80, backend);
        const y = upsampleNearest2d(x, scale);
        backwardRandom(y, 81);
        return [y, x.grad!];
      });
    });
  }
});

const NORMS: [string, number[], number][] = [
  ["[2, 8, 5, 7], 4 groups", [2, 8, 5, 7], 4],
  ["[2, 4, 20, 30], 2 groups (several chunks per plane)", [2, 4, 20, 30], 2],
  ["[3, 6, 1, 1], 3 groups", [3, 6, 1, 1], 3],
];

Deno.test("native normalisation matches the CPU twins", { ignore: !NATIVE }, async (t) => {
  for (const [k, [name, shape, groups]] of NORMS.entries()) {
    const c = shape[1];
    for (const affine of [true, false]) {
      await t.step(`groupNorm ${name}${affine ? ", affine" : ""}`, async () => {
        await parity([shapeSize(shape)], (backend) => {
          const x = input(shape, 100 + k, backend);
          const w = affine ? input([c], 110 + k, backend) : undefined;
          const b = affine ? input([c], 120 + k, backend) : undefined;
          const y = groupNorm(x, groups, w, b);
          backwardRandom(y, 130 + k);
          return [y, x.grad!, ...(affine ? [w!.grad!, b!.grad!] : [])];
        }, 1e-4);
      });
    }
    for (const training of [true, false]) {
      await t.step(`batchNorm ${name}, ${training ? "training" : "evaluation"}`, async () => {
        await parity([shapeSize(shape)], (backend) => {
          const x = input(shape, 140 + k, backend);
          const w = input([c], 150 + k, backend), b = input([c], 160 + k, backend);
          const rm = tensor(randomArray(c, 170 + k), [c], { backend });
          const rv = tensor(randomArray(c, 180 + k, 0.5, 2), [c], { backend });
          const y = batchNorm(x, rm, rv, w, b, { training, momentum: 0.3 });
          backwardRandom(y, 190 + k);
          return [y, x.grad!, w.grad!, b.grad!, rm, rv];
        }, 1e-4);
      });
    }
  }
});

Deno.test("native indexing matches the CPU twins", { ignore: !NATIVE }, async (t) => {
  const scatters: [string, number[], number, number[], number[]][] = [
    ["axis 0, repeated indices", [5, 6], 0, [7, 6], [8, 6]],
    ["axis 1, index narrower than target and src", [4, 7], 1, [3, 5], [3, 6]],
    ["middle axis of 3", [3, 4, 5], 1, [2, 6, 4], [3, 6, 5]],
    ["1-D, more entries than one pass", [10], 0, [9000], [9000]],
  ];
  for (const [k, [name, shape, axis, ishape, sshape]] of scatters.entries()) {
    await t.step(`scatterAdd ${name}, forward and backward`, async () => {
      await parity([shapeSize(shape), shapeSize(sshape)], (backend) => {
        const target = input(shape, 200 + k, backend);
        const src = input(sshape, 210 + k, backend);
        const index = indices(ishape, 220 + k, shape[axis], k % 2 ? "u32" : "i32", backend);
        const y = scatterAdd(target, axis, index, src);
        backwardRandom(y, 230 + k);
        return [y, target.grad!, src.grad!];
      });
    });
  }
  await t.step("scatterAdd on i32 values", async () => {
    await parity([12], (backend) => {
      const target = tensor(Int32Array.from({ length: 12 }, (_, i) => i), [3, 4], {
        backend,
        dtype: "i32",
      });
      const src = tensor(Int32Array.from({ length: 20 }, (_, i) => 7 * i - 50), [5, 4], {
        backend,
        dtype: "i32",
      });
      return scatterAdd(target, 0, indices([5, 4], 240, 3, "i32", backend), src);
    });
  });
  const selects: [string, number[], number, number][] = [
    ["axis 1 of [6, 5, 4]", [6, 5, 4], 1, 7],
    ["last axis", [3, 4, 5], 2, 6],
    ["axis 0 with long rows", [5, 80], 0, 9],
  ];
  for (const [k, [name, shape, axis, count]] of selects.entries()) {
    await t.step(`indexSelect ${name}, repeats, forward and backward`, async () => {
      const outSize = shapeSize(shape) / shape[axis] * count;
      await parity([shapeSize(shape), outSize], (backend) => {
        const x = input(shape, 250 + k, backend);
        const y = indexSelect(x, axis, indices([count], 260 + k, shape[axis], "u32", backend));
        backwardRandom(y, 270 + k);
        return [y, x.grad!];
      });
    });
  }
  const gathers: [string, number[], number, number[]][] = [
    ["axis 1 of [4, 6, 3]", [4, 6, 3], 1, [4, 5, 3]],
    ["axis 0", [5, 7], 0, [9, 7]],
    ["last axis, index narrower off the axis", [5, 7], 1, [3, 4]],
    ["class axis [N, 1]", [40, 9], 1, [40, 1]],
  ];
  for (const [k, [name, shape, axis, ishape]] of gathers.entries()) {
    await t.step(`gather ${name}, forward and backward`, async () => {
      await parity([shapeSize(shape), shapeSize(ishape)], (backend) => {
        const x = input(shape, 280 + k, backend);
        const y = gather(x, axis, indices(ishape, 290 + k, shape[axis], "i32", backend));
        backwardRandom(y, 300 + k);
        return [y, x.grad!];
      });
    });
  }
});

Deno.test(
  "native concat, split, slice and pad match the CPU twins",
  { ignore: !NATIVE },
  async (t) => {
    await t.step("concat along axis 1 (short and long blocks), forward and backward", async () => {
      await parity([5 * 2 * 70, 3 * 2 * 70, 2 * 2 * 70, 2 * 70], (backend) => {
        const a = input([2, 3, 70], 400, backend), b = input([2, 2, 70], 401, backend);
        const c = input([2, 1, 70], 402, backend);
        const y = concat([a, b, c], 1);
        backwardRandom(y, 403);
        return [y, a.grad!, b.grad!, c.grad!];
      });
    });
    await t.step("concat along the last axis", async () => {
      await parity([3 * 4 * 9], (backend) => {
        const a = input([3, 4, 4], 410, backend), b = input([3, 4, 5], 411, backend);
        const y = concat([a, b], 2);
        backwardRandom(y, 412);
        return [y, a.grad!, b.grad!];
      });
    });
    await t.step("split along axis 1, backward through every piece", async () => {
      await parity([2 * 9 * 5], (backend) => {
        const x = input([2, 9, 5], 420, backend);
        const pieces = split(x, [2, 4, 3], 1);
        const weights = pieces.map((p, j) =>
          tensor(randomArray(p.size, 421 + j), p.shape, {
            backend,
          })
        );
        const total = concat(pieces.map((p, j) => mul(p, weights[j])), 1);
        backwardRandom(total, 425);
        return [...pieces, x.grad!];
      });
    });
    await t.step("slice with negative bounds, pad with a value and cropping", async () => {
      await parity([4 * 6 * 7], (backend) => {
        const x = input([4, 6, 7], 430, backend);
        const s = slice(x, [1, -4, 2], [-1, 6, 7]);
        const p = pad(x, [[1, 0], [2, -1], [-2, 3]], 2.5);
        backwardRandom(s, 431);
        backwardRandom(p, 432);
        return [s, p, x.grad!];
      });
    });
    await t.step(
      "windows: merged axes, axes of size 1 inside and outside, one element",
      async () => {
        await parity([3 * 10 * 4, 3 * 6 * 4, 2 * 3 * 4], (backend) => {
          const x = input([3, 10, 4], 440, backend);
          const merged = slice(x, [0, 2], [3, 8]); // [3, 6, 4]: rows of 24
          const inner = slice(x, [1, 3, 1], [3, 9, 3]);
          const single = slice(x, [0, 4], [3, 5]); // [3, 1, 4]
          const corner = slice(x, [2, 9, 3], [3, 10, 4]); // [1, 1, 1]
          const outside = pad(x, [[0, 0], [-10, 1], [0, 0]], 7); // [3, 1, 4], all fill
          const grown = pad(single, [[1, 1], [2, 0], [0, 3]], -1);
          const parts = [merged, inner, single, corner, outside, grown];
          parts.forEach((p, j) => backwardRandom(p, 441 + j));
          return [...parts, x.grad!];
        });
      },
    );
  },
);

/** Runs `steps` optimizer steps on two parameters with seeded gradients; returns the parameters. */
function optimize(
  backend: Backend,
  make: (params: Tensor[]) => Optimizer,
  steps: number,
): Tensor[] {
  const params = [input([3, 70], 500, backend), input([9], 501, backend)];
  const opt = make(params);
  for (let s = 0; s < steps; s++) {
    params.forEach((p, j) =>
      p.grad = tensor(randomArray(p.size, 510 + 10 * s + j), p.shape, {
        backend,
      })
    );
    opt.step();
    opt.zeroGrad();
  }
  opt.dispose();
  return params;
}

Deno.test("native optimizer steps match the CPU twins", { ignore: !NATIVE }, async (t) => {
  const cases: [string, (params: Tensor[]) => Optimizer][] = [
    ["SGD", (p) => new SGD(p, { lr: 0.1, weightDecay: 0.01 })],
    [
      "SGD, momentum, weight decay, clipping",
      (p) =>
        new SGD(p, { lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.05, maxGradNorm: 1 }),
    ],
    ["SGD, Nesterov", (p) => new SGD(p, { lr: 0.05, momentum: 0.8, nesterov: true })],
    ["AdamW, clipping", (p) => new AdamW(p, { lr: 0.01, weightDecay: 0.1, maxGradNorm: 2 })],
  ];
  for (const [name, make] of cases) {
    await t.step(`${name}: four steps`, async () => {
      await parity([3 * 70, 9], (backend) => optimize(backend, make, 4));
    });
  }
  await t.step("the clipped norm is reported alike", async () => {
    const norms = await Promise.all([CPU, native].map(async (backend) => {
      const params = [input([3, 70], 520, backend)];
      const opt = new SGD(params, { lr: 0.1, maxGradNorm: 0.5 });
      params[0].grad = input([3, 70], 521, backend, false);
      opt.step();
      const norm = (await opt.lastGradNorm!.data())[0];
      opt.dispose();
      params[0].dispose();
      return norm;
    }));
    assert.ok(Math.abs(norms[0] - norms[1]) <= 1e-5 * norms[0], `${norms}`);
  });
});

Deno.test("native layer kernels keep float64 tensors in float64", { ignore: !NATIVE }, async () => {
  const f64 = (shape: number[], seed: number, backend: Backend) =>
    tensor(Float64Array.from(randomArray(shapeSize(shape), seed)), shape, {
      backend,
      requiresGrad: true,
    });
  await parity([2 * 2 * 3 * 9 * 7], (backend) => {
    const x = f64([2, 3, 9, 7], 600, backend);
    const w = f64([3], 601, backend), b = f64([3], 602, backend);
    const pooled = maxPool2d(x, { kernelSize: 3, stride: 2, padding: 1 });
    const normed = groupNorm(x, 3, w, b);
    const picked = slice(x, [0, 1], [2, 3]);
    const target = f64([4, 5], 603, backend), src = f64([6, 5], 604, backend);
    const scattered = scatterAdd(target, 0, indices([6, 5], 605, 4, "i32", backend), src);
    const outs = [pooled, normed, picked, scattered];
    outs.forEach((y, j) =>
      backward(y, tensor(Float64Array.from(randomArray(y.size, 610 + j)), y.shape, { backend }))
    );
    return [...outs, x.grad!, w.grad!, b.grad!, target.grad!, src.grad!];
  }, 1e-12);
});
