import assert from "node:assert/strict";
import type { Backend } from "../../tensor/backend.ts";
import { gather, indexSelect, SCATTER_CHUNK, scatterAdd } from "../../tensor/ops/index.ts";
import { tensor } from "../../tensor/tensor.ts";
import {
  assertClose,
  assertReleases,
  compareBackends,
  coords,
  CPU,
  GPU,
  gpuBackend,
  gradcheck,
  offset,
  poisonPool,
  randomArray,
  shapeSize,
  testBackends,
} from "./helpers.ts";

/** Seeded indices in `[0, limit)`. */
function randomIndex(length: number, limit: number, seed: number): Int32Array {
  return Int32Array.from(randomArray(length, seed, 0, limit), Math.floor);
}

function referenceGather(
  x: ArrayLike<number>,
  shape: number[],
  axis: number,
  index: ArrayLike<number>,
  ishape: number[],
) {
  return Float64Array.from({ length: index.length }, (_, i) => {
    const c = coords(i, ishape);
    c[axis] = index[i];
    return x[offset(c, shape)];
  });
}

function referenceScatterAdd(
  target: ArrayLike<number>,
  shape: number[],
  axis: number,
  index: ArrayLike<number>,
  ishape: number[],
  src: ArrayLike<number>,
  sshape: number[],
) {
  const out = Float64Array.from(target);
  for (let i = 0; i < index.length; i++) {
    const c = coords(i, ishape);
    const s = src[offset(c, sshape)];
    c[axis] = index[i];
    out[offset(c, shape)] += s;
  }
  return out;
}

const GATHER_CASES = [
  { shape: [4, 5, 6], axis: 1, ishape: [4, 3, 6] },
  { shape: [4, 5, 6], axis: 0, ishape: [7, 5, 2] },
  { shape: [4, 5, 6], axis: 2, ishape: [2, 2, 9] },
  { shape: [9], axis: 0, ishape: [20] },
  { shape: [3, 4], axis: 1, ishape: [3, 0] },
];

Deno.test("gather() matches a reference on the CPU", async (t) => {
  for (const { shape, axis, ishape } of GATHER_CASES) {
    for (const dtype of ["i32", "u32"] as const) {
      await t.step(`[${shape}] axis ${axis} index [${ishape}] ${dtype}`, async () => {
        const x = randomArray(shapeSize(shape), 1);
        const index = randomIndex(shapeSize(ishape), shape[axis], 2);
        const out = gather(
          tensor(x, shape, { backend: CPU }),
          axis,
          tensor(index, ishape, { backend: CPU, dtype }),
        );
        assert.deepEqual(out.shape, ishape);
        assertClose(await out.data(), referenceGather(x, shape, axis, index, ishape), 0, 0);
      });
    }
  }
});

Deno.test("indexSelect() picks slices, with repeats", async () => {
  const x = randomArray(60, 3);
  const index = [4, 0, 4, 2];
  const out = indexSelect(
    tensor(x, [3, 5, 4], { backend: CPU }),
    1,
    tensor(index, [4], { backend: CPU, dtype: "i32" }),
  );
  assert.deepEqual(out.shape, [3, 4, 4]);
  const expected = Float64Array.from({ length: 48 }, (_, i) => {
    const [a, k, c] = coords(i, [3, 4, 4]);
    return x[offset([a, index[k], c], [3, 5, 4])];
  });
  assertClose(await out.data(), expected, 0, 0);
});

const SCATTER_CASES = [
  { shape: [4, 5], axis: 1, ishape: [3, 7], sshape: [4, 8] },
  { shape: [4, 5], axis: 0, ishape: [9, 5], sshape: [9, 5] },
  { shape: [2, 3, 4], axis: 2, ishape: [2, 2, 6], sshape: [2, 3, 6] },
  { shape: [7], axis: 0, ishape: [SCATTER_CHUNK * 2 + 5], sshape: [SCATTER_CHUNK * 2 + 5] },
  { shape: [3], axis: 0, ishape: [0], sshape: [2] },
];

Deno.test("scatterAdd() matches a reference on the CPU", async (t) => {
  for (const { shape, axis, ishape, sshape } of SCATTER_CASES) {
    await t.step(`[${shape}] axis ${axis} index [${ishape}] src [${sshape}]`, async () => {
      const target = randomArray(shapeSize(shape), 4);
      const src = randomArray(shapeSize(sshape), 5);
      const index = randomIndex(shapeSize(ishape), shape[axis], 6);
      const out = scatterAdd(
        tensor(target, shape, { backend: CPU }),
        axis,
        tensor(index, ishape, { backend: CPU, dtype: "i32" }),
        tensor(src, sshape, { backend: CPU }),
      );
      const expected = referenceScatterAdd(target, shape, axis, index, ishape, src, sshape);
      assertClose(await out.data(), expected, 1e-3, 1e-5);
    });
  }
});

Deno.test("gather, indexSelect and scatterAdd gradients match finite differences", async (t) => {
  const index = tensor([2, 0, 1, 2, 2, 0], [2, 3], { backend: CPU, dtype: "i32" });
  await t.step(
    "gather (repeated indices accumulate)",
    () => gradcheck((x) => gather(x, 1, index), [{ data: randomArray(8, 1), shape: [2, 4] }]),
  );
  await t.step("indexSelect", () =>
    gradcheck(
      (x) => indexSelect(x, 0, tensor([1, 1, 0, 2], [4], { backend: CPU, dtype: "u32" })),
      [{ data: randomArray(9, 2), shape: [3, 3] }],
    ));
  await t.step("scatterAdd into target and from a larger src", () =>
    gradcheck(
      (target, src) => scatterAdd(target, 1, index, src),
      [{ data: randomArray(6, 3), shape: [2, 3] }, { data: randomArray(10, 4), shape: [2, 5] }],
    ));
});

Deno.test("index ops reject bad input naming the op", () => {
  const x = tensor([[1, 2, 3], [4, 5, 6]], undefined, { backend: CPU });
  const bad = tensor([[0, 3]], undefined, { backend: CPU, dtype: "i32" });
  assert.throws(
    () => gather(x, 1, bad),
    (e) => e instanceof RangeError && /gather: index 3 at position 1/.test(e.message),
  );
  assert.throws(
    () => gather(x, 1, tensor([[-1]], undefined, { backend: CPU, dtype: "i32" })),
    (e) => e instanceof RangeError && /gather/.test(e.message),
  );
  assert.throws(
    () => gather(x, 1, tensor([[0]], undefined, { backend: CPU })),
    (e) => e instanceof TypeError && /gather/.test(e.message),
  );
  assert.throws(
    () => gather(x, 1, tensor([0, 1], undefined, { backend: CPU, dtype: "i32" })),
    (e) => e instanceof TypeError && /gather: index/.test(e.message),
  );
  assert.throws(
    () => indexSelect(x, 0, tensor([2], undefined, { backend: CPU, dtype: "u32" })),
    (e) => e instanceof RangeError && /indexSelect/.test(e.message),
  );
  assert.throws(
    () => indexSelect(x, 0, tensor([[0]], undefined, { backend: CPU, dtype: "u32" })),
    (e) => e instanceof TypeError && /indexSelect/.test(e.message),
  );
  const zeros = tensor([0, 0], undefined, { backend: CPU });
  const ok = tensor([1, 1, 0], undefined, { backend: CPU, dtype: "i32" });
  assert.throws(
    () => scatterAdd(zeros, 0, tensor([5], undefined, { backend: CPU, dtype: "i32" }), zeros),
    (e) => e instanceof RangeError && /scatterAdd/.test(e.message),
  );
  assert.throws(
    () => scatterAdd(zeros, 0, ok, zeros),
    (e) => e instanceof TypeError && /scatterAdd: index \[3\] does not fit src/.test(e.message),
  );
  assert.throws(
    () => scatterAdd(zeros, 0, ok, tensor([1, 2, 3], undefined, { backend: CPU, dtype: "i32" })),
    (e) => e instanceof TypeError && /scatterAdd/.test(e.message),
  );
});

Deno.test("index kernels match their CPU twins", { ignore: !GPU }, async (t) => {
  const gpu = await gpuBackend();
  for (const { shape, axis, ishape } of GATHER_CASES) {
    await t.step(`gather [${shape}] axis ${axis}`, async () => {
      const x = randomArray(shapeSize(shape), 7);
      const index = randomIndex(shapeSize(ishape), shape[axis], 8);
      poisonPool(gpu, [shapeSize(ishape)]);
      await compareBackends(
        (b: Backend) =>
          gather(
            tensor(x, shape, { backend: b }),
            axis,
            tensor(index, ishape, { backend: b, dtype: "u32" }),
          ),
        0,
        0,
      );
    });
  }
  for (const { shape, axis, ishape, sshape } of SCATTER_CASES) {
    await t.step(`scatterAdd [${shape}] axis ${axis} index [${ishape}]`, async () => {
      const target = randomArray(shapeSize(shape), 9);
      const src = randomArray(shapeSize(sshape), 10);
      const index = randomIndex(shapeSize(ishape), shape[axis], 11);
      poisonPool(gpu, [shapeSize(shape)]);
      await compareBackends(
        (b: Backend) =>
          scatterAdd(
            tensor(target, shape, { backend: b }),
            axis,
            tensor(index, ishape, { backend: b, dtype: "i32" }),
            tensor(src, sshape, { backend: b }),
          ),
        0,
        0,
      );
    });
  }
  await t.step("indexSelect of 70,000 rows (over 65,535 workgroups)", async () => {
    const x = randomArray(300 * 64, 12);
    const index = randomIndex(70_000, 300, 13);
    poisonPool(gpu, [70_000 * 64]);
    await compareBackends(
      (b: Backend) =>
        indexSelect(
          tensor(x, [300, 64], { backend: b }),
          0,
          tensor(index, [70_000], { backend: b, dtype: "i32" }),
        ),
      0,
      0,
    );
  });
  await t.step("out-of-range GPU indices read 0 and are dropped by scatterAdd", async () => {
    const x = tensor([1, 2, 3], undefined, { backend: gpu });
    const index = tensor([2, 3, -1, 0], undefined, { backend: gpu, dtype: "i32" });
    assert.deepEqual(Array.from(await gather(x, 0, index).data()), [3, 0, 0, 1]);
    const out = scatterAdd(x, 0, index, tensor([10, 20, 30, 40], undefined, { backend: gpu }));
    assert.deepEqual(Array.from(await out.data()), [41, 2, 13]);
  });
});

Deno.test("index ops release every buffer", async () => {
  for (const backend of await testBackends()) {
    const index = tensor(randomIndex(24 * 3, 35, 1), [24, 3], { backend, dtype: "i32" });
    const rows = tensor([3, 3, 0], undefined, { backend, dtype: "u32" });
    await assertReleases(backend, (x) => [gather(x, 1, index)]);
    await assertReleases(backend, (x) => [indexSelect(x, 0, rows)]);
    await assertReleases(backend, (x) => [scatterAdd(x, 1, index, x)]);
    index.dispose();
    rows.dispose();
  }
});
