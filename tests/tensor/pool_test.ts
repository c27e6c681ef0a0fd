import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import {
  avgPool2d,
  maxPool2d,
  type Pool2dOptions,
  upsampleNearest2d,
} from "../../tensor/ops/pool.ts";
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
  shapeSize,
} from "./helpers.ts";

/** Direct pooling in plain JS; `max` ignores padding, `avg` divides by the window size. */
function naivePool(
  x: ArrayLike<number>,
  [n, c, h, w]: number[],
  kind: "max" | "avg",
  k: number,
  s: number,
  pad: number,
): Float64Array {
  const ho = Math.floor((h + 2 * pad - k) / s) + 1, wo = Math.floor((w + 2 * pad - k) / s) + 1;
  const out = new Float64Array(n * c * ho * wo);
  for (let p = 0; p < n * c; p++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        let acc = kind === "max" ? -Infinity : 0;
        for (let i = 0; i < k; i++) {
          for (let j = 0; j < k; j++) {
            const y = oy * s - pad + i, xx = ox * s - pad + j;
            if (y < 0 || y >= h || xx < 0 || xx >= w) continue;
            const v = x[(p * h + y) * w + xx];
            acc = kind === "max" ? Math.max(acc, v) : acc + v;
          }
        }
        out[(p * ho + oy) * wo + ox] = kind === "max" ? acc : acc / (k * k);
      }
    }
  }
  return out;
}

const POOLS: [string, number[], Pool2dOptions][] = [
  ["2x2", [2, 3, 6, 5], { kernelSize: 2 }],
  ["3x3 stride 2 pad 1", [1, 2, 7, 9], { kernelSize: 3, stride: 2, padding: 1 }],
  ["3x3 stride 1 pad 1", [2, 1, 5, 5], { kernelSize: 3, stride: 1, padding: 1 }],
];

Deno.test("pooling CPU twins match direct computations", async (t) => {
  for (const [name, shape, o] of POOLS) {
    await t.step(name, async () => {
      const data = randomArray(shapeSize(shape), 3);
      const x = tensor(data, shape, { backend: CPU });
      const k = o.kernelSize as number,
        s = (o.stride ?? k) as number,
        p = (o.padding ?? 0) as number;
      assertClose(await maxPool2d(x, o).data(), naivePool(data, shape, "max", k, s, p), 1e-6);
      assertClose(await avgPool2d(x, o).data(), naivePool(data, shape, "avg", k, s, p), 1e-6);
    });
  }
  await t.step("upsampleNearest2d repeats each element", async () => {
    const x = tensor([1, 2, 3, 4, 5, 6], [1, 2, 1, 3], { backend: CPU });
    const y = upsampleNearest2d(x, 2);
    assert.deepEqual(y.shape, [1, 2, 2, 6]);
    assert.deepEqual([...await y.data()], [
      1,
      1,
      2,
      2,
      3,
      3,
      1,
      1,
      2,
      2,
      3,
      3,
      4,
      4,
      5,
      5,
      6,
      6,
      4,
      4,
      5,
      5,
      6,
      6,
    ]);
  });
  await t.step("avgPool2d counts padding in the divisor", async () => {
    const x = tensor(new Float32Array(4).fill(1), [1, 1, 2, 2], { backend: CPU });
    const y = avgPool2d(x, { kernelSize: 3, stride: 1, padding: 1 });
    assertClose(await y.data(), [4 / 9, 4 / 9, 4 / 9, 4 / 9], 1e-6);
  });
});

Deno.test("pooling rejects bad input with a TypeError naming the shapes", () => {
  const x = tensor(randomArray(12, 1), [3, 4], { backend: CPU });
  assert.throws(() => maxPool2d(x, { kernelSize: 2 }), {
    name: "TypeError",
    message: /^maxPool2d: .*\[3, 4\]/,
  });
  assert.throws(() => upsampleNearest2d(x, 2), { name: "TypeError", message: /upsampleNearest2d/ });
  const y = tensor(randomArray(16, 1), [1, 1, 4, 4], { backend: CPU });
  assert.throws(() => avgPool2d(y, { kernelSize: 5 }), { name: "TypeError", message: /avgPool2d/ });
  assert.throws(() => avgPool2d(y, { kernelSize: 2, padding: 2 }), { name: "RangeError" });
  assert.throws(() => upsampleNearest2d(y, 1.5), { name: "RangeError" });
  const i = tensor(new Int32Array(16), [1, 1, 4, 4], { backend: CPU });
  assert.throws(() => maxPool2d(i, { kernelSize: 2 }), { name: "TypeError", message: /i32/ });
});

Deno.test("pooling gradients match finite differences", async (t) => {
  // Distinct values spaced well beyond eps so that max pooling has no ties.
  const distinct = (n: number, seed: number) => {
    const r = randomArray(n, seed);
    const order = [...r.keys()].sort((a, b) => r[a] - r[b]);
    const out = new Float32Array(n);
    order.forEach((i, rank) => (out[i] = rank * 0.1 - n * 0.05));
    return out;
  };
  for (const [name, shape, o] of POOLS) {
    await t.step(`maxPool2d ${name}`, async () => {
      await gradcheck((x) => maxPool2d(x, o), [{ data: distinct(shapeSize(shape), 5), shape }]);
    });
    await t.step(`avgPool2d ${name}`, async () => {
      await gradcheck((x) => avgPool2d(x, o), [{ data: randomArray(shapeSize(shape), 6), shape }]);
    });
  }
  await t.step("upsampleNearest2d", async () => {
    await gradcheck((x) => upsampleNearest2d(x, [2, 3]), [{
      data: randomArray(2 * 2 * 3 * 2, 7),
      shape: [2, 2, 3, 2],
    }]);
  });
});

function input(backend: Backend, shape: number[], seed: number, grad = false) {
  return tensor(randomArray(shapeSize(shape), seed), shape, { backend, requiresGrad: grad });
}

Deno.test("pooling kernels match their CPU twins", { ignore: !GPU }, async (t) => {
  const gpu = GPU ? await gpuBackend() : CPU;
  for (const [k, [name, shape, o]] of POOLS.entries()) {
    for (const op of [maxPool2d, avgPool2d]) {
      await t.step(`${op.name} ${name} forward and backward`, async () => {
        poisonPool(gpu, [
          shapeSize(shape),
          maxPool2d(tensor(new Float32Array(shapeSize(shape)), shape, { backend: CPU }), o).size,
        ]);
        await compareBackends(
          (backend) => {
            const x = input(backend, shape, 30 + k, true);
            const y = op(x, o);
            backward(y, tensor(randomArray(y.size, 40 + k), y.shape, { backend }));
            return [y, x.grad!];
          },
          1e-5,
          1e-5,
        );
      });
    }
  }
  await t.step("upsampleNearest2d forward and backward", async () => {
    poisonPool(gpu, [2 * 3 * 5 * 7, 2 * 3 * 10 * 14]);
    await compareBackends(
      (backend) => {
        const x = input(backend, [2, 3, 5, 7], 50, true);
        const y = upsampleNearest2d(x, 2);
        backward(y, tensor(randomArray(y.size, 51), y.shape, { backend }));
        return [y, x.grad!];
      },
      1e-5,
      1e-5,
    );
  });
  await t.step("upsampleNearest2d with more than 65,535 workgroups", async () => {
    const shape = [1, 1, 1200, 1000];
    poisonPool(gpu, [shapeSize(shape) * 4]);
    await compareBackends((backend) => upsampleNearest2d(input(backend, shape, 60), 2), 0, 0);
  });
  await t.step("empty input", async () => {
    const y = maxPool2d(tensor([], [0, 3, 4, 4], { backend: gpu }), { kernelSize: 2 });
    assert.deepEqual(y.shape, [0, 3, 2, 2]);
    assert.equal((await y.data()).length, 0);
  });
});
