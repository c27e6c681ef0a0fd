import assert from "node:assert/strict";
import { argmax, max, mean, min, sum, sumTo } from "../../tensor/ops/reduce.ts";
import { permute, reshape, transpose } from "../../tensor/ops/shape.ts";
import { tensor } from "../../tensor/tensor.ts";
import type { Backend } from "../../tensor/backend.ts";
import {
  compareBackends,
  CPU,
  GPU,
  gpuBackend,
  gradcheck,
  poisonPool,
  randomArray,
} from "./helpers.ts";

Deno.test("reductions on small hand-checked inputs", async () => {
  const x = tensor([[1, 5, 3], [4, 2, 6]], undefined, { backend: CPU });
  assert.deepEqual(Array.from(await sum(x, 0).data()), [5, 7, 9]);
  assert.deepEqual(Array.from(await sum(x, -1).data()), [9, 12]);
  assert.deepEqual(sum(x, 1, true).shape, [2, 1]);
  assert.deepEqual(sum(x).shape, []);
  assert.deepEqual(Array.from(await mean(x).data()), [3.5]);
  assert.deepEqual(Array.from(await max(x, 1).data()), [5, 6]);
  assert.deepEqual(Array.from(await min(x, 0).data()), [1, 2, 3]);
  assert.deepEqual(Array.from(await argmax(x, 1).data()), [1, 2]);
  assert.deepEqual(Array.from(await argmax(x).data()), [5]);
  assert.deepEqual(
    Array.from(await argmax(tensor([3, 7, 7, 1], undefined, { backend: CPU })).data()),
    [1],
  );
  assert.throws(() => sum(x, 2), /sum: axis 2 is out of range for rank 2/);
  assert.deepEqual(Array.from(await sumTo(x, [1, 3]).data()), [5, 7, 9]);
  assert.deepEqual(Array.from(await sum(tensor([], [0, 3], { backend: CPU }), 0).data()), [
    0,
    0,
    0,
  ]);
});

Deno.test("shape ops", async () => {
  const x = tensor([[1, 2, 3], [4, 5, 6]], undefined, { backend: CPU });
  assert.deepEqual(reshape(x, [3, -1]).shape, [3, 2]);
  assert.throws(() => reshape(x, [4, -1]), /reshape: cannot view \[2, 3\] as \[4, -1\]/);
  assert.deepEqual(Array.from(await transpose(x).data()), [1, 4, 2, 5, 3, 6]);
  const y = tensor(Float32Array.from({ length: 24 }, (_, i) => i), [2, 3, 4], { backend: CPU });
  const p = permute(y, [2, 0, 1]);
  assert.deepEqual(p.shape, [4, 2, 3]);
  const data = await p.data();
  // p[k, i, j] = y[i, j, k] = i*12 + j*4 + k
  assert.equal(data[(3 * 2 + 1) * 3 + 2], 1 * 12 + 2 * 4 + 3);
  assert.throws(() => permute(y, [0, 0, 1]), TypeError);
});

Deno.test("reduce kernels match their CPU twins", { ignore: !GPU }, async (t) => {
  const gpu = await gpuBackend();
  const cases: [number[], number | number[] | undefined][] = [
    [[7, 13], 0],
    [[7, 13], 1],
    [[3, 4, 5], [0, 2]],
    [[5, 3000], 1],
    [[300_001], undefined],
    [[2, 70_000, 3], 1],
  ];
  for (const [shape, axis] of cases) {
    const n = shape.reduce((a, b) => a * b, 1);
    const x = randomArray(n, n, -1, 1);
    await t.step(`sum/max/min/argmax [${shape}] axis ${axis}`, async () => {
      poisonPool(gpu, [n, Math.ceil(n / 1024)]);
      await compareBackends(
        (backend: Backend) => {
          const tx = tensor(x, shape, { backend });
          const outs = [sum(tx, axis), max(tx, axis), min(tx, axis)];
          if (typeof axis !== "object") outs.push(argmax(tx, axis));
          return outs;
        },
        2e-3,
        1e-4,
      );
    });
  }
  await t.step("permute [3, 50, 7] -> [2, 0, 1]", async () => {
    const x = randomArray(1050, 3);
    await compareBackends((backend: Backend) =>
      permute(tensor(x, [3, 50, 7], { backend }), [2, 0, 1])
    );
  });
});

Deno.test("reduction and shape gradients match finite differences (float64)", async () => {
  const x = { data: randomArray(24, 21, -1, 1), shape: [2, 3, 4] };
  await gradcheck((a) => sum(a, 1), [x]);
  await gradcheck((a) => sum(a, [0, 2], true), [x]);
  await gradcheck((a) => mean(a, -1), [x]);
  await gradcheck((a) => max(a, 2), [x]);
  await gradcheck((a) => min(a, 0), [x]);
  await gradcheck((a) => permute(a, [2, 0, 1]), [x]);
  await gradcheck((a) => transpose(reshape(a, [6, 4])), [x]);
});
