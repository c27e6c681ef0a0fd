import assert from "node:assert/strict";
import type { Backend } from "../../tensor/backend.ts";
import { cumsum, exclusiveScan } from "../../tensor/ops/scan.ts";
import { tensor } from "../../tensor/tensor.ts";
import {
  assertClose,
  assertReleases,
  compareBackends,
  CPU,
  GPU,
  gpuBackend,
  gradcheck,
  poisonPool,
  randomArray,
  testBackends,
} from "./helpers.ts";

/** Independent reference: float64 running sums along `axis` of a row-major array. */
function referenceScan(
  x: ArrayLike<number>,
  shape: readonly number[],
  axis: number,
  { reverse = false, exclusive = false } = {},
): Float64Array {
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const len = shape[axis];
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const out = new Float64Array(x.length);
  for (let o = 0; o < outer; o++) {
    for (let n = 0; n < inner; n++) {
      let acc = 0;
      for (let s = 0; s < len; s++) {
        const t = reverse ? len - 1 - s : s;
        const at = (o * len + t) * inner + n;
        if (exclusive) {
          out[at] = acc;
          acc += x[at];
        } else {
          acc += x[at];
          out[at] = acc;
        }
      }
    }
  }
  return out;
}

const CASES: { shape: number[]; axis: number }[] = [
  { shape: [0], axis: 0 },
  { shape: [1], axis: 0 },
  { shape: [7], axis: 0 },
  { shape: [1024], axis: 0 },
  { shape: [1025], axis: 0 },
  { shape: [3, 2100], axis: 1 },
  { shape: [2100, 3], axis: 0 },
  { shape: [3, 4, 5], axis: 1 },
  { shape: [4, 0, 2], axis: 1 },
];

Deno.test("cumsum() matches a float64 reference on the CPU", async (t) => {
  for (const { shape, axis } of CASES) {
    for (
      const options of [{}, { reverse: true }, { exclusive: true }, {
        reverse: true,
        exclusive: true,
      }]
    ) {
      await t.step(`[${shape}] axis ${axis} ${JSON.stringify(options)}`, async () => {
        const size = shape.reduce((a, b) => a * b, 1);
        const x = randomArray(size, size + 3);
        const out = cumsum(tensor(x, shape, { backend: CPU }), axis, options);
        assert.deepEqual(out.shape, shape);
        assertClose(await out.data(), referenceScan(x, shape, axis, options), 1e-4, 1e-4);
      });
    }
  }
});

Deno.test("exclusiveScan() of integers is exact and wraps", async (t) => {
  await t.step("u32 counts across levels", async () => {
    const n = 5000;
    const x = Uint32Array.from({ length: n }, (_, i) => (i * 7919) % 13);
    const out = await exclusiveScan(tensor(x, [n], { backend: CPU })).data();
    assert.ok(out instanceof Uint32Array);
    assert.deepEqual(Array.from(out), Array.from(referenceScan(x, [n], 0, { exclusive: true })));
  });
  await t.step("i32 with negatives", async () => {
    const x = Int32Array.from([5, -3, 0, -10, 4]);
    const out = await exclusiveScan(tensor(x, [5], { backend: CPU })).data();
    assert.deepEqual(Array.from(out), [0, 5, 2, 2, -8]);
  });
  await t.step("u32 wraps modulo 2^32", async () => {
    const x = Uint32Array.from([0xffffffff, 2, 3]);
    const out = await cumsum(tensor(x, [3], { backend: CPU })).data();
    assert.deepEqual(Array.from(out), [0xffffffff, 1, 4]);
  });
});

Deno.test("cumsum() gradients match finite differences", async (t) => {
  for (const options of [{}, { reverse: true }, { exclusive: true }]) {
    await t.step(JSON.stringify(options), async () => {
      await gradcheck((x) => cumsum(x, 1, options), [{ data: randomArray(12, 5), shape: [3, 4] }]);
      await gradcheck((x) => cumsum(x, 0, options), [{ data: randomArray(12, 6), shape: [3, 4] }]);
    });
  }
});

Deno.test("cumsum() rejects bad input naming the op", () => {
  const x = tensor([1, 2, 3], undefined, { backend: CPU });
  assert.throws(() => cumsum(x, 1), (e) => e instanceof RangeError && /cumsum/.test(e.message));
  assert.throws(
    () => exclusiveScan(tensor([1], [1], { backend: CPU, dtype: "f64" }), 2),
    (e) => e instanceof RangeError && /exclusiveScan/.test(e.message),
  );
});

Deno.test("scan kernels match their CPU twins", { ignore: !GPU }, async (t) => {
  const gpu = await gpuBackend();
  for (const { shape, axis } of CASES) {
    await t.step(`f32 [${shape}] axis ${axis}`, async () => {
      const size = shape.reduce((a, b) => a * b, 1);
      const x = randomArray(size, size + 11);
      poisonPool(gpu, [size]);
      await compareBackends(
        (b: Backend) => [
          cumsum(tensor(x, shape, { backend: b }), axis),
          cumsum(tensor(x, shape, { backend: b }), axis, { reverse: true, exclusive: true }),
        ],
        1e-5,
        1e-5,
      );
    });
  }
  await t.step("i32 [2, 4.25e6] along axis 0: over 65,535 workgroups", async () => {
    const shape = [2, 4_250_000];
    const x = Int32Array.from({ length: 8_500_000 }, (_, i) => ((i * 2654435761) >>> 20) - 2048);
    poisonPool(gpu, [x.length]);
    await compareBackends((b: Backend) => cumsum(tensor(x, shape, { backend: b }), 0), 0, 0);
  });
  await t.step("u32 exclusive scan of 1e7 ones (three levels)", async () => {
    const n = 10_000_000;
    poisonPool(gpu, [n]);
    const out = exclusiveScan(tensor(new Uint32Array(n).fill(1), [n], { backend: gpu }));
    const data = await out.data();
    out.dispose();
    for (const i of [0, 1, 1023, 1024, 1025, 1_048_575, 1_048_576, 5_000_001, n - 1]) {
      assert.equal(data[i], i);
    }
  });
  await t.step("f32 random 2e6, reverse exclusive", async () => {
    const n = 2_000_001;
    const x = randomArray(n, 99);
    await compareBackends(
      (b: Backend) => exclusiveScan(tensor(x, [n], { backend: b })),
      1e-6,
      1e-6,
    );
    await compareBackends(
      (b: Backend) => cumsum(tensor(x, [n], { backend: b }), 0, { reverse: true }),
      1e-6,
      1e-6,
    );
  });
});

Deno.test("cumsum() releases every buffer", async () => {
  for (const backend of await testBackends()) {
    await assertReleases(backend, (x) => [cumsum(x, 0, { reverse: true })]);
  }
});
