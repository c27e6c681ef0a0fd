import assert from "node:assert/strict";
import type { Backend } from "../../tensor/backend.ts";
import { type DeviceProfile, HARDWARE_PATHS, withProfile } from "../../tensor/device_profile.ts";
import { max, mean, min, sum } from "../../tensor/ops/reduce.ts";
import { reducePlan } from "../../tensor/ops/reduce_tree.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
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
  shapeSize,
  testBackends,
} from "./helpers.ts";

type Op = "sum" | "mean" | "max" | "min";
const OPS = { sum, mean, max, min } as const;

/** Float64 reference: `op` over `axes` of `x` (row-major `shape`), kept axes in order. */
function reference(op: Op, x: ArrayLike<number>, shape: number[], axes: number[]): Float64Array {
  const kept = shape.map((d, k) => (axes.includes(k) ? 1 : d));
  const keptStrides = kept.map((_, d) => shapeSize(kept.slice(d + 1)));
  const out = new Float64Array(shapeSize(kept)).fill(
    op === "max" ? -Infinity : op === "min" ? Infinity : 0,
  );
  const c = new Array<number>(shape.length).fill(0); // coordinates of element i
  for (let i = 0; i < x.length; i++) {
    let o = 0;
    for (let d = 0; d < shape.length; d++) if (!axes.includes(d)) o += c[d] * keptStrides[d];
    const v = x[i];
    out[o] = op === "max" ? Math.max(out[o], v) : op === "min" ? Math.min(out[o], v) : out[o] + v;
    for (let d = shape.length - 1; d >= 0 && ++c[d] === shape[d]; d--) c[d] = 0;
  }
  const count = axes.reduce((n, a) => n * shape[a], 1);
  return op === "mean" ? out.map((v) => v / count) : out;
}

/** Runs `run` on `backend` with the hardware paths, and `extra` profile fields, forced. */
function onHardwarePaths<T>(backend: Backend, run: () => T, extra: Partial<DeviceProfile> = {}): T {
  return withProfile(backend, { ...HARDWARE_PATHS, ...extra }, run);
}

/** Kernel labels launched by `run` on the CPU backend, with their counts. */
async function launchesOf(run: () => Tensor): Promise<Record<string, number>> {
  CPU.startProfile();
  const out = run();
  await out.data();
  const times = await CPU.stopProfile();
  return Object.fromEntries(times.map((t) => [t.label, t.calls]));
}

// Rows of 1, 3, 255, 257 and 70,000 elements; several axes at once; many short rows.
const CASES: [number[], number[]][] = [
  [[4, 1], [1]],
  [[5, 3], [1]],
  [[3, 255], [1]],
  [[257, 6], [0]],
  [[70_000], [0]],
  [[2, 35_000, 3], [0, 1]],
  [[3, 4, 5], [0, 2]],
  [[2, 3, 4, 5], [1, 3]],
  [[20_000, 3], [1]],
  [[257, 16_384], [0]],
];

Deno.test("reducePlan() merges neighbouring axes and drops axes of size 1", () => {
  const bias = reducePlan([4, 8, 5, 6], [0, 2, 3])!;
  assert.deepEqual([bias.keptShape, bias.keptStrides], [[8], [30]]);
  assert.deepEqual([bias.rowShape, bias.rowStrides], [[4, 30], [240, 1]]);
  assert.deepEqual([bias.outputs, bias.n], [8, 120]);
  const all = reducePlan([2, 1, 3], [0, 1, 2])!;
  assert.deepEqual([all.keptShape, all.rowShape, all.rowStrides, all.outputs], [[], [6], [1], 1]);
  const unit = reducePlan([3, 1], [1])!;
  assert.deepEqual([unit.rowShape, unit.n, unit.outputs], [[], 1, 3]);
  // 17 axes alternating kept and reduced: 9 kept dimensions do not fit a u32x8 parameter.
  const shape = Array.from({ length: 17 }, () => 2);
  assert.equal(reducePlan(shape, shape.map((_, d) => d).filter((d) => d % 2 === 1)), null);
});

Deno.test("workgroup reductions match a float64 reference on every backend", async (t) => {
  for (const backend of await testBackends()) {
    for (const [shape, axes] of CASES) {
      const x = randomArray(shapeSize(shape), shapeSize(shape) + 5, -2, 3);
      await t.step(`${backend.name} [${shape}] axes [${axes}]`, async () => {
        for (const op of Object.keys(OPS) as Op[]) {
          const got = await onHardwarePaths(backend, () => {
            const out = OPS[op](tensor(x, shape, { backend }), axes, true);
            assert.deepEqual(out.shape, shape.map((d, k) => (axes.includes(k) ? 1 : d)));
            return out.data();
          });
          const tol = op === "sum" ? 2e-5 * Math.sqrt(shapeSize(shape)) : 1e-5;
          assertClose(got, reference(op, x, shape, axes), tol, 1e-5, `${op}`);
        }
      });
    }
  }
});

Deno.test("workgroup reductions take one launch, or one pass per loop budget", async (t) => {
  const x = randomArray(2 * 70_000, 3);
  const input = () => tensor(x, [2, 70_000], { backend: CPU });
  await t.step("sum, mean, max, min over any axes: one launch", async () => {
    const y = randomArray(120, 4);
    const small = () => tensor(y, [2, 3, 4, 5], { backend: CPU });
    assert.deepEqual(
      await launchesOf(() => onHardwarePaths(CPU, () => sum(small(), [0, 2, 3]))),
      { "reduce.rows_sum": 1 },
    );
    assert.deepEqual(
      await launchesOf(() => onHardwarePaths(CPU, () => mean(input()))),
      { "reduce.tree_sum": 1 },
    );
    assert.deepEqual(
      await launchesOf(() => onHardwarePaths(CPU, () => max(input(), 1))),
      { "reduce.tree_max": 1 },
    );
    // The chunked kernels take a pass per factor of 1,024 elements, for each axis.
    assert.deepEqual(await launchesOf(() => sum(input())), { "reduce.sum": 3 });
  });
  await t.step("rows past 256 x loopBudget: a second pass", async () => {
    const budget = { loopBudget: 16 }; // 4,096 elements per workgroup: 18 chunks per row
    for (const op of ["sum", "min"] as const) {
      const launches = await launchesOf(() =>
        onHardwarePaths(CPU, () => OPS[op](input(), 1), budget)
      );
      assert.deepEqual(launches, { [`reduce.tree_${op}`]: 1, [`reduce.rows_${op}`]: 1 });
      const got = await onHardwarePaths(CPU, () => OPS[op](input(), 1).data(), budget);
      assertClose(got, reference(op, x, [2, 70_000], [1]), 1e-3, 1e-5, op);
    }
    const tiny = { loopBudget: 1 }; // 256 per workgroup: 547 chunks, then 3, then 1
    const launches = await launchesOf(() => onHardwarePaths(CPU, () => mean(input()), tiny));
    assert.deepEqual(launches, { "reduce.tree_sum": 2, "reduce.rows_sum": 1 });
    const got = await onHardwarePaths(CPU, () => mean(input()).data(), tiny);
    assertClose(got, reference("mean", x, [2, 70_000], [0, 1]), 1e-6, 1e-5);
  });
});

Deno.test("workgroup reductions release every buffer", async () => {
  for (const backend of await testBackends()) {
    await onHardwarePaths(backend, async () => {
      await assertReleases(backend, (x) => [sum(x, [0, 1]), mean(x, 0), max(x, 1), min(x)]);
      // Two passes: 840 elements in chunks of 256.
      await assertReleases(backend, (x) => [mean(x)]);
    }, { loopBudget: 1 });
  }
});

Deno.test("workgroup reductions: integers, empty axes, errors", async () => {
  await onHardwarePaths(CPU, async () => {
    const ints = tensor(Int32Array.from([5, -7, 3, 9, 2, -1]), [2, 3], { backend: CPU });
    assert.deepEqual(Array.from(await sum(ints, 1).data()), [1, 10]);
    assert.deepEqual(Array.from(await max(ints, 0).data()), [9, 2, 3]);
    assert.deepEqual(Array.from(await min(ints).data()), [-7]);
    const none = tensor(new Float32Array(0), [0, 3], { backend: CPU });
    assert.deepEqual(Array.from(await sum(none, 0).data()), [0, 0, 0]);
    assert.deepEqual(sum(none, 1).shape, [0]);
    assert.throws(() => max(none, 0), /max: cannot reduce an empty axis 0/);
    assert.throws(() => sum(none, 3), /sum: axis 3 is out of range for rank 2/);
  });
});

Deno.test("workgroup reduction gradients match finite differences (float64)", async () => {
  const x = { data: randomArray(60, 21, -1, 1), shape: [3, 4, 5] };
  await onHardwarePaths(CPU, async () => {
    await gradcheck((a) => sum(a, [0, 2]), [x]);
    await gradcheck((a) => mean(a, [1], true), [x]);
    await gradcheck((a) => mean(a), [x]);
    await gradcheck((a) => max(a, [0, 1]), [x]);
    await gradcheck((a) => min(a, 2), [x]);
  });
});

Deno.test("workgroup reduce kernels match their CPU twins", { ignore: !GPU }, async (t) => {
  const gpu = await gpuBackend();
  const cases: [number[], number[], Partial<DeviceProfile>][] = [
    ...CASES.map(([shape, axes]): [number[], number[], Partial<DeviceProfile>] => [
      shape,
      axes,
      {},
    ]),
    [[2, 70_000], [1], { loopBudget: 16 }],
  ];
  for (const [shape, axes, extra] of cases) {
    const n = shapeSize(shape);
    const x = randomArray(n, n, -1, 1);
    await t.step(`[${shape}] axes [${axes}] ${JSON.stringify(extra)}`, async () => {
      poisonPool(gpu, [reducePlan(shape, axes)!.outputs]);
      await compareBackends(
        (backend: Backend) =>
          onHardwarePaths(backend, () => {
            const tx = tensor(x, shape, { backend });
            return [sum(tx, axes), mean(tx, axes), max(tx, axes), min(tx, axes)];
          }, extra),
        2e-4,
        1e-4,
        gpu,
      );
    });
  }
  await t.step("i32 sum and max", async () => {
    const ints = Int32Array.from(randomArray(3 * 500, 9, -1000, 1000), Math.round);
    await compareBackends(
      (backend: Backend) =>
        onHardwarePaths(backend, () => {
          const tx = tensor(ints, [3, 500], { backend });
          return [sum(tx, 1), max(tx, 1), min(tx, 0)];
        }),
      0,
      0,
      gpu,
    );
  });
});
