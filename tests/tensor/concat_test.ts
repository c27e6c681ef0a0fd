import assert from "node:assert/strict";
import type { Backend } from "../../tensor/backend.ts";
import { concat, pad, slice, split, stack } from "../../tensor/ops/concat.ts";
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

/** Reference concat by coordinates. */
function referenceConcat(parts: { data: ArrayLike<number>; shape: number[] }[], axis: number) {
  const shape = [...parts[0].shape];
  shape[axis] = parts.reduce((s, p) => s + p.shape[axis], 0);
  const out = new Float64Array(shapeSize(shape));
  for (let i = 0; i < out.length; i++) {
    const c = coords(i, shape);
    let k = 0, at = c[axis];
    while (at >= parts[k].shape[axis]) at -= parts[k++].shape[axis];
    const inner = [...c];
    inner[axis] = at;
    out[i] = parts[k].data[offset(inner, parts[k].shape)];
  }
  return { out, shape };
}

/** Reference constant pad (negative amounts crop). */
function referencePad(
  x: ArrayLike<number>,
  shape: number[],
  pads: [number, number][],
  value: number,
) {
  const outShape = shape.map((d, k) => d + (pads[k]?.[0] ?? 0) + (pads[k]?.[1] ?? 0));
  const out = new Float64Array(shapeSize(outShape));
  for (let i = 0; i < out.length; i++) {
    const c = coords(i, outShape).map((v, k) => v - (pads[k]?.[0] ?? 0));
    out[i] = c.every((v, k) => v >= 0 && v < shape[k]) ? x[offset(c, shape)] : value;
  }
  return { out, shape: outShape };
}

const CONCAT_CASES: { shapes: number[][]; axis: number }[] = [
  { shapes: [[2, 3], [5, 3], [0, 3]], axis: 0 },
  { shapes: [[2, 3, 4], [2, 1, 4], [2, 7, 4]], axis: 1 },
  { shapes: [[3, 2, 5], [3, 2, 1]], axis: 2 },
  { shapes: [[1, 4, 3], [1, 4, 3]], axis: -1 },
  { shapes: [[4]], axis: 0 },
];

Deno.test("concat() matches a reference by coordinates", async (t) => {
  for (const { shapes, axis } of CONCAT_CASES) {
    await t.step(`${JSON.stringify(shapes)} axis ${axis}`, async () => {
      const parts = shapes.map((shape, k) => ({
        data: randomArray(shapeSize(shape), k + 1),
        shape,
      }));
      const a = axis < 0 ? axis + shapes[0].length : axis;
      const ref = referenceConcat(parts, a);
      const out = concat(parts.map((p) => tensor(p.data, p.shape, { backend: CPU })), axis);
      assert.deepEqual(out.shape, ref.shape);
      assertClose(await out.data(), ref.out, 0, 0);
    });
  }
  await t.step("i32 along axis 1", async () => {
    const a = tensor([[1, 2], [3, 4]], undefined, { backend: CPU, dtype: "i32" });
    const b = tensor([[5], [6]], undefined, { backend: CPU, dtype: "i32" });
    assert.deepEqual(Array.from(await concat([a, b], 1).data()), [1, 2, 5, 3, 4, 6]);
  });
});

Deno.test("slice(), pad(), stack() and split() match references", async (t) => {
  const shape = [3, 4, 5];
  const x = randomArray(60, 9);
  const input = tensor(x, shape, { backend: CPU });
  await t.step("slice", async () => {
    const out = slice(input, [1, -3, 0], [3, 4, 5]);
    assert.deepEqual(out.shape, [2, 3, 5]);
    const ref = referencePad(x, shape, [[-1, 0], [-1, 0], [0, 0]], 0);
    assertClose(await out.data(), ref.out, 0, 0);
    assert.deepEqual(slice(input, [0], [0]).shape, [0, 4, 5]);
  });
  for (
    const pads of [[[1, 2], [0, 0], [3, 1]], [[0, 0], [-1, 2]], [[-3, 0]]] as [number, number][][]
  ) {
    await t.step(`pad ${JSON.stringify(pads)}`, async () => {
      const ref = referencePad(x, shape, pads, -7);
      const out = pad(input, pads, -7);
      assert.deepEqual(out.shape, ref.shape);
      assertClose(await out.data(), ref.out, 0, 0);
    });
  }
  await t.step("stack and split", async () => {
    const a = tensor([1, 2, 3], undefined, { backend: CPU });
    const b = tensor([4, 5, 6], undefined, { backend: CPU });
    const s = stack([a, b], 1);
    assert.deepEqual(s.shape, [3, 2]);
    assert.deepEqual(Array.from(await s.data()), [1, 4, 2, 5, 3, 6]);
    const [p, q] = split(s, [1, 2], 0);
    assert.deepEqual(Array.from(await p.data()), [1, 4]);
    assert.deepEqual(Array.from(await q.data()), [2, 5, 3, 6]);
    const halves = split(input, 5, 2);
    assert.equal(halves.length, 5);
    assertClose(await halves[2].data(), Array.from({ length: 12 }, (_, i) => x[i * 5 + 2]), 0, 0);
  });
});

Deno.test("concat, slice and pad gradients match finite differences", async (t) => {
  await t.step("concat", () =>
    gradcheck(
      (a, b) => concat([a, b], 1),
      [{ data: randomArray(6, 1), shape: [2, 3] }, { data: randomArray(4, 2), shape: [2, 2] }],
    ));
  await t.step(
    "slice",
    () => gradcheck((x) => slice(x, [1, 0], [3, 2]), [{ data: randomArray(12, 3), shape: [4, 3] }]),
  );
  await t.step(
    "pad with cropping",
    () =>
      gradcheck((x) => pad(x, [[1, -1], [2, 0]], 0.5), [{
        data: randomArray(12, 4),
        shape: [4, 3],
      }]),
  );
  await t.step("stack and split", () =>
    gradcheck(
      (a, b) => split(stack([a, b], 0), [1, 2], 1)[1],
      [{ data: randomArray(6, 5), shape: [3, 2] }, { data: randomArray(6, 6), shape: [3, 2] }],
    ));
});

Deno.test("concat, slice and pad reject bad input naming the op", () => {
  const a = tensor([[1, 2]], undefined, { backend: CPU });
  const b = tensor([[1, 2, 3]], undefined, { backend: CPU });
  assert.throws(() => concat([a, b], 0), (e) => e instanceof TypeError && /concat/.test(e.message));
  assert.throws(
    () => concat([a, b], 2),
    (e) => e instanceof RangeError && /concat/.test(e.message),
  );
  const i = tensor([[1, 2]], undefined, { backend: CPU, dtype: "i32" });
  assert.throws(
    () => concat([a, i], 1),
    (e) => e instanceof TypeError && /element types/.test(e.message),
  );
  assert.throws(() => concat([]), TypeError);
  assert.throws(
    () => slice(a, [0, 1], [1, 3]),
    (e) => e instanceof RangeError && /slice/.test(e.message),
  );
  assert.throws(
    () => slice(a, [0], [1, 2]),
    (e) => e instanceof TypeError && /slice/.test(e.message),
  );
  assert.throws(
    () => pad(a, [[0, 0], [-2, -1]]),
    (e) => e instanceof RangeError && /pad/.test(e.message),
  );
  assert.throws(() => stack([a, b]), (e) => e instanceof TypeError && /stack/.test(e.message));
  assert.throws(
    () => split(b, [1, 1], 1),
    (e) => e instanceof RangeError && /split/.test(e.message),
  );
});

Deno.test("concat kernels match their CPU twins", { ignore: !GPU }, async (t) => {
  const gpu = await gpuBackend();
  for (const { shapes, axis } of CONCAT_CASES) {
    await t.step(`concat ${JSON.stringify(shapes)} axis ${axis}`, async () => {
      const data = shapes.map((s, k) => randomArray(shapeSize(s), k + 20));
      const total = shapes.reduce((s, sh) => s + shapeSize(sh), 0);
      poisonPool(gpu, [total]);
      await compareBackends(
        (b: Backend) => concat(shapes.map((s, k) => tensor(data[k], s, { backend: b })), axis),
        0,
        0,
      );
    });
  }
  await t.step("slice and pad with 1.5e6 outputs", async () => {
    const shape = [3, 500, 1001];
    const x = randomArray(shapeSize(shape), 31);
    poisonPool(gpu, [3 * 500 * 1003, 2 * 499 * 1001]);
    await compareBackends(
      (b: Backend) => {
        const input = tensor(x, shape, { backend: b });
        return [pad(input, [[0, 0], [2, -2], [1, 1]], 3), slice(input, [1, 1], [3, 500])];
      },
      0,
      0,
    );
  });
  await t.step("u32 pad and concat along the last axis", async () => {
    const x = Uint32Array.from({ length: 35 }, (_, i) => i * 3);
    await compareBackends(
      (b: Backend) => {
        const input = tensor(x, [5, 7], { backend: b, dtype: "u32" });
        return [pad(input, [[1, 0], [0, 2]], 4000000000), concat([input, input], 1)];
      },
      0,
      0,
    );
  });
});

Deno.test("concat ops release every buffer", async () => {
  for (const backend of await testBackends()) {
    await assertReleases(backend, (x) => [concat([x, x], 1)]);
    await assertReleases(backend, (x) => {
      const part = slice(x, [1, 2], [20, 30]);
      return [pad(part, [[1, 1], [0, -1]]), part];
    });
    await assertReleases(backend, (x) => {
      const both = stack([x, x], 2);
      return [...split(both, [1, 1], 2), both];
    });
  }
});
