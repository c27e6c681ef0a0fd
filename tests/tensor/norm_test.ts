import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { mul } from "../../tensor/ops/elementwise.ts";
import { batchNorm, groupNorm, NORM_CHUNK } from "../../tensor/ops/norm.ts";
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

/**
 * Independent float64 reference: normalises the elements of `x` ([N, C, HW])
 * sharing a key `key(n, c)` by their mean and biased variance, then applies
 * the per-channel affine transform.
 */
function normReference(
  x: ArrayLike<number>,
  [n, c, hw]: number[],
  key: (n: number, c: number) => number,
  w: ArrayLike<number> | null,
  b: ArrayLike<number> | null,
  eps: number,
): { out: Float64Array; mean: Map<number, number>; variance: Map<number, number> } {
  const sums = new Map<number, [number, number]>();
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < c; j++) {
      for (let s = 0; s < hw; s++) {
        const v = x[(i * c + j) * hw + s];
        const e = sums.get(key(i, j)) ?? [0, 0];
        e[0] += v;
        e[1]++;
        sums.set(key(i, j), e);
      }
    }
  }
  const mean = new Map([...sums].map(([k, [s, cnt]]) => [k, s / cnt]));
  const sq = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < c; j++) {
      for (let s = 0; s < hw; s++) {
        const d = x[(i * c + j) * hw + s] - mean.get(key(i, j))!;
        sq.set(key(i, j), (sq.get(key(i, j)) ?? 0) + d * d);
      }
    }
  }
  const variance = new Map([...sq].map(([k, v]) => [k, v / sums.get(k)![1]]));
  const out = new Float64Array(x.length);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < c; j++) {
      for (let s = 0; s < hw; s++) {
        const at = (i * c + j) * hw + s;
        const k = key(i, j);
        const y = (x[at] - mean.get(k)!) / Math.sqrt(variance.get(k)! + eps);
        out[at] = w && b ? y * w[j] + b[j] : y;
      }
    }
  }
  return { out, mean, variance };
}

Deno.test("groupNorm matches a float64 reference (CPU)", async (t) => {
  const cases: [number[], number][] = [[[2, 6, 3, 5], 3], [[1, 4, 7], 1], [[3, 4, 2, 2], 4], [
    [2, 2, 80, 40],
    2,
  ]];
  for (const [shape, groups] of cases) {
    await t.step(`[${shape}] groups ${groups}`, async () => {
      const [n, c] = shape;
      const hw = shape.slice(2).reduce((a, b) => a * b, 1);
      const x = randomArray(n * c * hw, 3, -2, 5);
      const w = randomArray(c, 4, 0.5, 1.5), b = randomArray(c, 5, -1, 1);
      const ref = normReference(
        x,
        [n, c, hw],
        (i, j) => i * groups + Math.floor(j / (c / groups)),
        w,
        b,
        1e-5,
      );
      const y = groupNorm(
        tensor(x, shape, { backend: CPU }),
        groups,
        tensor(w, [c], { backend: CPU }),
        tensor(b, [c], { backend: CPU }),
      );
      assert.deepEqual(y.shape, shape);
      assertClose(await y.data(), ref.out, 1e-4, 1e-4);
      const plain = normReference(
        x,
        [n, c, hw],
        (i, j) => i * groups + Math.floor(j / (c / groups)),
        null,
        null,
        1e-3,
      );
      assertClose(
        await groupNorm(tensor(x, shape, { backend: CPU }), groups, undefined, undefined, 1e-3)
          .data(),
        plain.out,
        1e-4,
        1e-4,
      );
    });
  }
  await t.step("errors", () => {
    const x = tensor(new Float32Array(24), [2, 6, 2], { backend: CPU });
    assert.throws(() => groupNorm(x, 4), /groupNorm: 4 groups do not divide 6 channels/);
    assert.throws(
      () =>
        groupNorm(
          x,
          2,
          tensor([1, 1], undefined, { backend: CPU }),
          tensor([0, 0], undefined, { backend: CPU }),
        ),
      /groupNorm: weight has shape \[2\] but the input \[2, 6, 2\] has 6 channels/,
    );
    assert.throws(() => groupNorm(tensor([1, 2], [2], { backend: CPU }), 1), TypeError);
  });
});

Deno.test("batchNorm: batch statistics, running update, evaluation mode (CPU)", async () => {
  const shape = [3, 4, 5, 2];
  const [n, c, hw] = [3, 4, 10];
  const x = randomArray(n * c * hw, 8, -3, 3);
  const w = randomArray(c, 9, 0.5, 1.5), b = randomArray(c, 10, -1, 1);
  const ref = normReference(x, [n, c, hw], (_, j) => j, w, b, 1e-5);
  const rm0 = randomArray(c, 11, -1, 1), rv0 = randomArray(c, 12, 0.5, 2);
  const rm = tensor(rm0, [c], { backend: CPU }), rv = tensor(rv0, [c], { backend: CPU });
  const tw = tensor(w, [c], { backend: CPU }), tb = tensor(b, [c], { backend: CPU });
  const y = batchNorm(tensor(x, shape, { backend: CPU }), rm, rv, tw, tb, {
    training: true,
    momentum: 0.25,
  });
  assertClose(await y.data(), ref.out, 1e-4, 1e-4);
  const m = n * hw;
  assertClose(
    await rm.data(),
    Array.from(rm0, (v, j) => 0.75 * v + 0.25 * ref.mean.get(j)!),
    1e-5,
    1e-5,
  );
  assertClose(
    await rv.data(),
    Array.from(rv0, (v, j) => 0.75 * v + 0.25 * ref.variance.get(j)! * m / (m - 1)),
    1e-5,
    1e-5,
  );
  // Evaluation uses the running statistics.
  const rmNow = await rm.data(), rvNow = await rv.data();
  const e = batchNorm(tensor(x, shape, { backend: CPU }), rm, rv, tw, tb, { training: false });
  const expected = Array.from(x, (v, i) => {
    const j = Math.floor(i / hw) % c;
    return (v - rmNow[j]) / Math.sqrt(rvNow[j] + 1e-5) * w[j] + b[j];
  });
  assertClose(await e.data(), expected, 1e-5, 1e-5);
  assertClose(await rm.data(), rmNow, 0, 0, "running mean unchanged in eval");
  assert.throws(
    () =>
      batchNorm(tensor(x, shape, { backend: CPU }), rm, rv, tw, tb, {
        training: true,
        momentum: 2,
      }),
    RangeError,
  );
});

Deno.test("norm gradients match finite differences (float64)", async (t) => {
  const shape = [2, 4, 3];
  const x = Array.from(randomArray(24, 21, -2, 2));
  const w = Array.from(randomArray(4, 22, 0.5, 1.5)), b = Array.from(randomArray(4, 23, -1, 1));
  const f64 = (v: ArrayLike<number>, s: number[]) =>
    tensor(Float64Array.from(v), s, { backend: CPU });
  await t.step("groupNorm with affine", async () => {
    await gradcheck((a, ww, bb) => groupNorm(a, 2, ww, bb), [
      { data: x, shape },
      { data: w, shape: [4] },
      { data: b, shape: [4] },
    ], { atol: 1e-5, rtol: 1e-4 });
  });
  await t.step("groupNorm without affine, one group per channel", async () => {
    await gradcheck((a) => groupNorm(a, 4), [{ data: x, shape }], { atol: 1e-5, rtol: 1e-4 });
  });
  await t.step("batchNorm training", async () => {
    await gradcheck(
      (a, ww, bb) =>
        batchNorm(a, f64([0, 0, 0, 0], [4]), f64([1, 1, 1, 1], [4]), ww, bb, { training: true }),
      [
        { data: x, shape },
        { data: w, shape: [4] },
        { data: b, shape: [4] },
      ],
      { atol: 1e-5, rtol: 1e-4 },
    );
  });
  await t.step("batchNorm evaluation", async () => {
    const rm = randomArray(4, 24, -1, 1), rv = randomArray(4, 25, 0.5, 2);
    await gradcheck(
      (a, ww, bb) => batchNorm(a, f64(rm, [4]), f64(rv, [4]), ww, bb, { training: false }),
      [
        { data: x, shape },
        { data: w, shape: [4] },
        { data: b, shape: [4] },
      ],
      { atol: 1e-6, rtol: 1e-5 },
    );
  });
  await t.step("frozen affine parameters get no gradient", () => {
    const xt = tensor(Float64Array.from(x), shape, { backend: CPU, requiresGrad: true });
    const wt = f64(w, [4]), bt = f64(b, [4]);
    const y = batchNorm(xt, f64([0, 0, 0, 0], [4]), f64([1, 1, 1, 1], [4]), wt, bt, {
      training: false,
    });
    backward(y, f64(new Float64Array(24).fill(1), shape));
    assert.ok(xt.grad !== null);
    assert.equal(wt.grad, null);
    assert.equal(bt.grad, null);
  });
});

Deno.test("norm kernels match their CPU twins", { ignore: !GPU }, async (t) => {
  const gpu = await gpuBackend();
  const cases: [number[], number][] = [
    [[2, 6, 3, 5], 3],
    [[3, 5, 1], 5],
    // One group of 2 * 70,001 elements: many chunks and a merge pass, and past the
    // loop-iteration limit of one invocation.
    [[1, 2, 70_001], 1],
    // More chunks per row than one merge invocation takes: two merge passes.
    [[1, 1, NORM_CHUNK * 1100 + 3], 1],
  ];
  for (const [shape, groups] of cases) {
    const size = shape.reduce((a, b) => a * b, 1);
    const c = shape[1];
    const x = randomArray(size, size, -1, 3);
    const g = randomArray(size, size + 1, -1, 1);
    const w = randomArray(c, 31, 0.5, 1.5), b = randomArray(c, 32, -1, 1);
    await t.step(`[${shape}] groups ${groups}`, async () => {
      poisonPool(gpu, [size, c, 3 * c]);
      await compareBackends(
        (backend: Backend) => {
          const tx = tensor(x, shape, { backend, requiresGrad: true });
          const tw = tensor(w, [c], { backend, requiresGrad: true });
          const tb = tensor(b, [c], { backend, requiresGrad: true });
          const rm = tensor(new Float32Array(c), [c], { backend });
          const rv = tensor(new Float32Array(c).fill(1), [c], { backend });
          const y1 = groupNorm(tx, groups, tw, tb);
          const y2 = batchNorm(tx, rm, rv, tw, tb, { training: true });
          const tg = tensor(g, shape, { backend });
          backward(mul(y1, tg), tensor(new Float32Array(size).fill(1), shape, { backend }));
          backward(mul(y2, tg), tensor(new Float32Array(size).fill(1), shape, { backend }));
          return [y1, y2, rm, rv, tx.grad!, tw.grad!, tb.grad!];
        },
        2e-4,
        2e-3,
      );
    });
  }
});
