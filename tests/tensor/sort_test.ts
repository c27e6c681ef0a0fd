import assert from "node:assert/strict";
import type { Backend } from "../../tensor/backend.ts";
import { argsort, sort, topk } from "../../tensor/ops/sort.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import {
  assertReleases,
  CPU,
  GPU,
  gpuBackend,
  gradcheck,
  poisonPool,
  randomArray,
  testBackends,
} from "./helpers.ts";

/** Independent reference: a stable comparator sort of each row, NaN last. */
function referenceSort(x: ArrayLike<number>, rows: number, n: number, descending: boolean) {
  const values = new Float64Array(rows * n), indices = new Uint32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    const order = Array.from({ length: n }, (_, i) => i);
    const v = (i: number) => x[r * n + i];
    order.sort((a, b) => {
      const na = Number.isNaN(v(a)), nb = Number.isNaN(v(b));
      if (na || nb) return na === nb ? a - b : na ? 1 : -1;
      const d = descending ? v(b) - v(a) : v(a) - v(b);
      return d !== 0 ? d : a - b;
    });
    order.forEach((i, k) => {
      values[r * n + k] = v(i);
      indices[r * n + k] = i;
    });
  }
  return { values, indices };
}

/** Keys with many ties, NaNs, infinities and signed zeros. */
function nastyKeys(size: number, seed: number): Float32Array {
  const x = randomArray(size, seed, -50, 50).map((v) => Math.round(v) / 4);
  const specials = [NaN, Infinity, -Infinity, 0, -0, 3.4e38, -3.4e38, 1e-45, -1e-45];
  for (let i = 0; i < size; i += 7) x[i] = specials[(i / 7) % specials.length];
  return x;
}

function sameValues(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string) {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    if (!(Object.is(a, e) || (a === 0 && e === 0) || (Number.isNaN(a) && Number.isNaN(e)))) {
      assert.fail(`${what}[${i}]: got ${a}, expected ${e}`);
    }
  }
}

async function checkSort(
  backend: Backend,
  x: Float32Array,
  shape: number[],
  descending: boolean,
): Promise<void> {
  const n = shape.at(-1)!, rows = x.length / Math.max(n, 1) || 0;
  const { values, indices } = sort(tensor(x, shape, { backend }), { descending });
  assert.deepEqual(values.shape, shape);
  assert.deepEqual(indices.shape, shape);
  assert.equal(indices.dtype, "u32");
  const expected = referenceSort(x, rows, n, descending);
  sameValues(await values.data(), expected.values, "values");
  assert.deepEqual(Array.from(await indices.data()), Array.from(expected.indices));
  values.dispose();
  indices.dispose();
}

const SHAPES = [[0], [1], [5], [4097], [20_001], [7, 333], [300, 5], [3, 0]];

Deno.test("sort() matches a stable comparator sort on the CPU", async (t) => {
  for (const shape of SHAPES) {
    for (const descending of [false, true]) {
      await t.step(`[${shape}] ${descending ? "descending" : "ascending"}`, async () => {
        const size = shape.reduce((a, b) => a * b, 1);
        await checkSort(CPU, nastyKeys(size, size + 1), shape, descending);
      });
    }
  }
});

Deno.test("sort() permutes a payload and argsort() returns indices", async () => {
  const x = tensor([2, 1, 2, 0, 1, 1], [2, 3], { backend: CPU });
  const payload = tensor([10, 11, 12, 13, 14, 15], [2, 3], { backend: CPU, dtype: "u32" });
  const { values, indices } = sort(x, { payload, descending: true });
  assert.deepEqual(Array.from(await values.data()), [2, 2, 1, 1, 1, 0]);
  assert.deepEqual(Array.from(await indices.data()), [10, 12, 11, 14, 15, 13]);
  assert.deepEqual(Array.from(await argsort(x).data()), [1, 0, 2, 0, 1, 2]);
});

/** Reference top-k along the last axis of `[rows, n]` via the reference sort. */
function referenceTopk(x: ArrayLike<number>, rows: number, n: number, k: number, largest: boolean) {
  const { values, indices } = referenceSort(x, rows, n, largest);
  const v = new Float64Array(rows * k), i = new Uint32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < k; j++) {
      v[r * k + j] = values[r * n + j];
      i[r * k + j] = indices[r * n + j];
    }
  }
  return { values: v, indices: i };
}

async function checkTopk(backend: Backend, k: number, largest: boolean, axis: 0 | 1) {
  const [a, b] = [37, 53];
  const x = nastyKeys(a * b, 17).map((v) => (Number.isNaN(v) ? 1 : v));
  const input = tensor(x, [a, b], { backend });
  const out = topk(input, k, { axis, largest });
  // Along axis 0: compare on the transpose.
  const xt = axis === 1
    ? x
    : Float32Array.from({ length: a * b }, (_, i) => x[(i % a) * b + Math.floor(i / a)]);
  const rows = axis === 1 ? a : b, n = axis === 1 ? b : a;
  const ref = referenceTopk(xt, rows, n, k, largest);
  const values = await out.values.data(), indices = await out.indices.data();
  assert.deepEqual(out.values.shape, axis === 1 ? [a, k] : [k, b]);
  const get = (arr: ArrayLike<number>, r: number, j: number) =>
    axis === 1 ? arr[r * k + j] : arr[j * b + r];
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < k; j++) {
      assert.equal(get(values, r, j), ref.values[r * k + j]);
      assert.equal(get(indices, r, j), ref.indices[r * k + j]);
    }
  }
}

Deno.test("topk() matches the reference on the CPU", async (t) => {
  for (
    const [k, largest, axis] of [[5, true, 1], [0, true, 1], [53, false, 1], [4, false, 0], [
      37,
      true,
      0,
    ]] as const
  ) {
    await t.step(`k ${k} largest ${largest} axis ${axis}`, () => checkTopk(CPU, k, largest, axis));
  }
});

Deno.test("sort() and topk() gradients match finite differences", async (t) => {
  // Distinct values so that small perturbations keep the order.
  const data = Array.from({ length: 12 }, (_, i) => ((i * 7) % 12) * 0.37 - 2);
  await t.step(
    "sort values, rows",
    () => gradcheck((x) => sort(x, { descending: true }).values, [{ data, shape: [3, 4] }]),
  );
  await t.step(
    "topk along axis 0",
    () => gradcheck((x) => topk(x, 2, { axis: 0 }).values, [{ data, shape: [4, 3] }]),
  );
  await t.step(
    "topk smallest along the last axis",
    () => gradcheck((x) => topk(x, 3, { largest: false }).values, [{ data, shape: [2, 6] }]),
  );
});

Deno.test("sort() and topk() reject bad input naming the op", () => {
  const ints = tensor([3, 1, 2], undefined, { backend: CPU, dtype: "i32" });
  assert.throws(() => sort(ints), (e) => e instanceof TypeError && /sort/.test(e.message));
  const x = tensor([3, 1, 2], undefined, { backend: CPU });
  const payload = tensor([1, 2], undefined, { backend: CPU, dtype: "u32" });
  assert.throws(
    () => sort(x, { payload }),
    (e) => e instanceof TypeError && /sort: payload/.test(e.message),
  );
  const floatPayload = tensor([1, 2, 3], undefined, { backend: CPU });
  assert.throws(() => sort(x, { payload: floatPayload }), TypeError);
  assert.throws(() => topk(x, 4), (e) => e instanceof RangeError && /topk/.test(e.message));
  assert.throws(
    () => topk(x, 1, { axis: 1 }),
    (e) => e instanceof RangeError && /topk/.test(e.message),
  );
});

/** Linear-time check of a sorted result: order, stability, and that it permutes `x`. */
function checkSorted(x: Float32Array, values: ArrayLike<number>, indices: ArrayLike<number>) {
  const seen = new Uint8Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const j = indices[i];
    assert.ok(j < x.length && !seen[j], `index ${j} at ${i} repeats or is out of range`);
    seen[j] = 1;
    sameValues([values[i]], [x[j]], `values at ${i}`);
    if (i === 0) continue;
    const a = values[i - 1], b = values[i];
    if (Number.isNaN(b)) {
      if (Number.isNaN(a)) assert.ok(indices[i - 1] < j, `NaN order at ${i}`);
      continue;
    }
    assert.ok(!Number.isNaN(a), `NaN before a number at ${i}`);
    assert.ok(a <= b, `order at ${i}: ${a} > ${b}`);
    if (a === b) assert.ok(indices[i - 1] < j, `stability at ${i}`);
  }
}

Deno.test("sort kernels match the reference on WebGPU", { ignore: !GPU }, async (t) => {
  const gpu = await gpuBackend();
  for (const shape of SHAPES) {
    for (const descending of [false, true]) {
      await t.step(`[${shape}] ${descending ? "descending" : "ascending"}`, async () => {
        const size = shape.reduce((a, b) => a * b, 1);
        poisonPool(gpu, [size]);
        await checkSort(gpu, nastyKeys(size, size + 1), shape, descending);
      });
    }
  }
  await t.step("1,100,003 keys with ties and NaNs", async () => {
    const n = 1_100_003;
    const x = nastyKeys(n, 5);
    poisonPool(gpu, [n]);
    const { values, indices } = sort(tensor(x, [n], { backend: gpu }));
    checkSorted(x, await values.data(), await indices.data());
    values.dispose();
    indices.dispose();
  });
  await t.step("payload, argsort, topk and the backward scatter", async () => {
    const x = tensor([2, 1, 2, 0, 1, 1], [2, 3], { backend: gpu });
    const payload = tensor([10, 11, 12, 13, 14, 15], [2, 3], { backend: gpu, dtype: "u32" });
    const { indices } = sort(x, { payload, descending: true });
    assert.deepEqual(Array.from(await indices.data()), [10, 12, 11, 14, 15, 13]);
    assert.deepEqual(Array.from(await argsort(x).data()), [1, 0, 2, 0, 1, 2]);
    for (const [k, largest, axis] of [[5, true, 1], [0, true, 1], [4, false, 0]] as const) {
      await checkTopk(gpu, k, largest, axis);
    }
  });
  await t.step("gradient flows through the permutation", async () => {
    const { backward } = await import("../../tensor/autograd.ts");
    const { mul } = await import("../../tensor/ops/elementwise.ts");
    const { sum } = await import("../../tensor/ops/reduce.ts");
    const grads: ArrayLike<number>[] = [];
    for (const backend of [CPU, gpu]) {
      const x = tensor(randomArray(70_000, 3), [7, 10_000], { backend, requiresGrad: true });
      const w = tensor(randomArray(7 * 500, 4), [7, 500], { backend });
      const y: Tensor = topk(x, 500).values;
      backward(sum(mul(y, w)));
      grads.push(await x.grad!.data());
    }
    assert.deepEqual(Array.from(grads[1]), Array.from(grads[0]));
  });
});

Deno.test("sort() and topk() release every buffer", async () => {
  for (const backend of await testBackends()) {
    await assertReleases(backend, (x) => Object.values(sort(x, { descending: true })));
    await assertReleases(backend, (x) => Object.values(topk(x, 3, { axis: 0 })));
  }
});
