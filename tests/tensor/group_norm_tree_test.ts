import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { type DeviceProfile, HARDWARE_PATHS, withProfile } from "../../tensor/device_profile.ts";
import { groupNormTreeFits } from "../../tensor/ops/group_norm_tree.ts";
import { groupNorm } from "../../tensor/ops/norm.ts";
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

/** Runs `run` on `backend` with the hardware paths, and `extra` profile fields, forced. */
function onHardwarePaths<T>(backend: Backend, run: () => T, extra: Partial<DeviceProfile> = {}): T {
  return withProfile(backend, { ...HARDWARE_PATHS, ...extra }, run);
}

/**
 * Float64 reference of group norm with its gradients for the upstream gradient `g`: `y`, and
 * `dx`, `dw`, `db` from the textbook formulas (`dx = rstd (gw - mean(gw) - xhat mean(gw xhat))`
 * per group, with `gw = g * w`).
 */
function reference(
  x: ArrayLike<number>,
  g: ArrayLike<number>,
  [n, c, hw]: number[],
  groups: number,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  eps = 1e-5,
) {
  const y = new Float64Array(x.length), dx = new Float64Array(x.length);
  const dw = new Float64Array(c), db = new Float64Array(c);
  const cpg = c / groups, m = cpg * hw;
  for (let s = 0; s < n; s++) {
    for (let q = 0; q < groups; q++) {
      const base = (s * c + q * cpg) * hw;
      let mu = 0;
      for (let k = 0; k < m; k++) mu += x[base + k] / m;
      let v = 0;
      for (let k = 0; k < m; k++) v += (x[base + k] - mu) ** 2 / m;
      const rstd = 1 / Math.sqrt(v + eps);
      let a = 0, bx = 0;
      for (let k = 0; k < m; k++) {
        const ch = q * cpg + Math.floor(k / hw), xhat = (x[base + k] - mu) * rstd;
        y[base + k] = xhat * w[ch] + b[ch];
        dw[ch] += g[base + k] * xhat;
        db[ch] += g[base + k];
        a += g[base + k] * w[ch] / m;
        bx += g[base + k] * w[ch] * xhat / m;
      }
      for (let k = 0; k < m; k++) {
        const ch = q * cpg + Math.floor(k / hw), xhat = (x[base + k] - mu) * rstd;
        dx[base + k] = rstd * (g[base + k] * w[ch] - a - xhat * bx);
      }
    }
  }
  return { y, dx, dw, db };
}

/**
 * Group norm of `x` with weight and bias (followed by a fused ReLU with `relu`), and its three
 * gradients for upstream `g`.
 */
function forwardBackward(
  backend: Backend,
  x: Float32Array,
  g: Float32Array,
  shape: number[],
  groups: number,
  w: Float32Array,
  b: Float32Array,
  relu = false,
): Tensor[] {
  const c = shape[1];
  const tx = tensor(x, shape, { backend, requiresGrad: true });
  const tw = tensor(w, [c], { backend, requiresGrad: true });
  const tb = tensor(b, [c], { backend, requiresGrad: true });
  const y = groupNorm(tx, groups, tw, tb, 1e-5, { relu });
  backward(y, tensor(g, shape, { backend }));
  return [y, tx.grad!, tw.grad!, tb.grad!];
}

/** Kernel labels launched by `run` on the CPU backend, with their counts. */
async function launchesOf(run: () => Tensor[]): Promise<Record<string, number>> {
  CPU.startProfile();
  const outs = run();
  await Promise.all(outs.map((t) => t.data()));
  const times = await CPU.stopProfile();
  return Object.fromEntries(times.map((t) => [t.label, t.calls]));
}

// Rows (sample, group) of 1, 3, 255, 257 and 70,000 elements.
const CASES: [number[], number][] = [
  [[2, 2, 1], 2],
  [[1, 3, 1], 1],
  [[2, 6, 85], 2],
  [[3, 1, 257], 1],
  [[1, 2, 35_000], 1],
  [[2, 6, 3, 5], 3],
  // Layer norm's view: 600 planes of one element per row.
  [[3, 600], 1],
];

Deno.test("workgroup group norm matches a float64 reference on every backend", async (t) => {
  for (const backend of await testBackends()) {
    for (const [shape, groups] of CASES) {
      const size = shapeSize(shape), c = shape[1];
      const hw = shapeSize(shape.slice(2));
      const x = randomArray(size, size, -2, 5), g = randomArray(size, size + 1);
      const w = randomArray(c, 3, 0.5, 1.5), b = randomArray(c, 4);
      await t.step(`${backend.name} [${shape}] groups ${groups}`, async () => {
        const outs = onHardwarePaths(
          backend,
          () => forwardBackward(backend, x, g, shape, groups, w, b),
        );
        const ref = reference(x, g, [shape[0], c, hw], groups, w, b);
        const [y, dx, dw, db] = await Promise.all(outs.map((o) => o.data()));
        assertClose(y, ref.y, 1e-4, 1e-4, "y");
        assertClose(dx, ref.dx, 1e-4, 1e-3, "dx");
        assertClose(dw, ref.dw, 2e-3, 1e-4, "dw");
        assertClose(db, ref.db, 2e-3, 1e-4, "db");
      });
    }
  }
});

Deno.test("workgroup group norm: one launch forward, two backward", async (t) => {
  const shape = [2, 6, 4, 5];
  const x = randomArray(240, 1), g = randomArray(240, 2);
  const w = randomArray(6, 3, 0.5, 1.5), b = randomArray(6, 4);
  const w12 = randomArray(12, 5, 0.5, 1.5), b12 = randomArray(12, 6);
  await t.step("forward", async () => {
    const launches = await launchesOf(() =>
      onHardwarePaths(CPU, () => [groupNorm(tensor(x, shape, { backend: CPU }), 3)])
    );
    assert.deepEqual(launches, { "norm.tree_forward": 1 });
  });
  await t.step("forward and backward: narrow planes, one invocation each", async () => {
    const launches = await launchesOf(() =>
      onHardwarePaths(CPU, () => forwardBackward(CPU, x, g, [2, 12, 10], 3, w12, b12))
    );
    assert.deepEqual(launches, {
      "norm.tree_forward": 1,
      "norm.tree_grad_sums_planes": 1,
      "norm.tree_grad_input": 1,
    });
  });
  await t.step("forward and backward: wide planes, a tree each", async () => {
    const launches = await launchesOf(() =>
      onHardwarePaths(
        CPU,
        () => forwardBackward(CPU, x, g, [1, 2, 120], 1, w.slice(0, 2), b.slice(0, 2)),
      )
    );
    assert.deepEqual(launches, {
      "norm.tree_forward": 1,
      "norm.tree_grad_sums": 1,
      "norm.tree_grad_input": 1,
    });
  });
  await t.step(
    "rows past the loop budget keep the chunked kernels, with the same results",
    async () => {
      const layout = { batch: 2, c: 6, hw: 20, gn: 3, cpg: 2 };
      assert.ok(groupNormTreeFits(layout, 2));
      assert.ok(!groupNormTreeFits({ ...layout, hw: 257 }, 2));
      assert.ok(!groupNormTreeFits({ ...layout, batch: 3 }, 2));
      const big = [1, 2, 35_000], xs = randomArray(70_000, 5), gs = randomArray(70_000, 6);
      const ws = randomArray(2, 7, 0.5, 1.5), bs = randomArray(2, 8);
      const run = () => forwardBackward(CPU, xs, gs, big, 1, ws, bs);
      const launches = await launchesOf(() => onHardwarePaths(CPU, run, { loopBudget: 64 }));
      assert.equal(launches["norm.tree_forward"], undefined);
      assert.equal(launches["norm.moments"], 1);
      const chunked = await Promise.all(
        onHardwarePaths(CPU, run, { loopBudget: 64 }).map((o) => o.data()),
      );
      const tree = await Promise.all(onHardwarePaths(CPU, run).map((o) => o.data()));
      chunked.forEach((e, k) => assertClose(tree[k], e, 1e-4, 1e-4, `output ${k}`));
    },
  );
});

Deno.test("workgroup group norm gradients match finite differences (float64)", async (t) => {
  const shape = [2, 4, 3];
  const x = { data: randomArray(24, 21, -2, 2), shape };
  const w = { data: randomArray(4, 22, 0.5, 1.5), shape: [4] };
  const b = { data: randomArray(4, 23, -1, 1), shape: [4] };
  await onHardwarePaths(CPU, async () => {
    await t.step("with affine", async () => {
      await gradcheck((a, ww, bb) => groupNorm(a, 2, ww, bb), [x, w, b], {
        atol: 1e-5,
        rtol: 1e-4,
      });
    });
    await t.step("with affine, wide planes (a tree per plane)", async () => {
      const wide = { data: randomArray(60, 24, -2, 2), shape: [1, 2, 30] };
      const w2 = { data: randomArray(2, 25, 0.5, 1.5), shape: [2] };
      const b2 = { data: randomArray(2, 26), shape: [2] };
      await gradcheck((a, ww, bb) => groupNorm(a, 1, ww, bb), [wide, w2, b2], {
        atol: 1e-5,
        rtol: 1e-4,
      });
    });
    await t.step("without affine, one group per channel", async () => {
      await gradcheck((a) => groupNorm(a, 4), [x], { atol: 1e-5, rtol: 1e-4 });
    });
    await t.step("weight and bias only (the input needs no gradient)", async () => {
      const xt = tensor(Float64Array.from(x.data), shape, { backend: CPU });
      await gradcheck((ww, bb) => groupNorm(xt, 1, ww, bb), [w, b], { atol: 1e-5, rtol: 1e-4 });
    });
  });
});

Deno.test("workgroup group norm releases every buffer", async () => {
  for (const backend of await testBackends()) {
    await onHardwarePaths(backend, async () => {
      await assertReleases(backend, (x) => [groupNorm(x, 5)]);
      // Frozen affine parameters: their gradients are computed and dropped.
      const w = tensor(randomArray(35, 1), [35], { backend });
      const b = tensor(randomArray(35, 2), [35], { backend });
      await assertReleases(backend, (x) => [groupNorm(x, 7, w, b)]);
      w.dispose();
      b.dispose();
    });
  }
});

Deno.test("workgroup group norm: errors as on the chunked path", () => {
  onHardwarePaths(CPU, () => {
    const x = tensor(new Float32Array(24), [2, 6, 2], { backend: CPU });
    assert.throws(() => groupNorm(x, 4), /groupNorm: 4 groups do not divide 6 channels/);
    assert.throws(
      () => groupNorm(x, 2, tensor([1, 1], undefined, { backend: CPU }), undefined),
      /groupNorm: pass both weight and bias or neither/,
    );
  });
});

Deno.test("workgroup group norm kernels match their CPU twins", { ignore: !GPU }, async (t) => {
  const gpu = await gpuBackend();
  for (const [shape, groups] of CASES) {
    for (const relu of [false, true]) {
      const size = shapeSize(shape), c = shape[1];
      const x = randomArray(size, size, -1, 3), g = randomArray(size, size + 1);
      const w = randomArray(c, 31, 0.5, 1.5), b = randomArray(c, 32);
      await t.step(`[${shape}] groups ${groups}${relu ? ", fused ReLU" : ""}`, async () => {
        poisonPool(gpu, [size, c, 2 * shape[0] * groups]);
        await compareBackends(
          (backend: Backend) =>
            onHardwarePaths(
              backend,
              () => forwardBackward(backend, x, g, shape, groups, w, b, relu),
            ),
          2e-4,
          2e-3,
          gpu,
        );
      });
    }
  }
  await t.step("without affine", async () => {
    const x = randomArray(2 * 8 * 30, 3), g = randomArray(2 * 8 * 30, 4);
    await compareBackends(
      (backend: Backend) =>
        onHardwarePaths(backend, () => {
          const tx = tensor(x, [2, 8, 30], { backend, requiresGrad: true });
          const y = groupNorm(tx, 4);
          backward(y, tensor(g, [2, 8, 30], { backend }));
          return [y, tx.grad!];
        }),
      2e-4,
      2e-3,
      gpu,
    );
  });
});

Deno.test("group norm with a fused ReLU matches the float64 reference, fused or not", async (t) => {
  const paths: [string, <T>(backend: Backend, run: () => T) => T][] = [
    ["workgroup (fused)", (backend, run) => onHardwarePaths(backend, run)],
    ["chunked", (_backend, run) => run()],
  ];
  for (const backend of await testBackends()) {
    for (const [path, on] of paths) {
      for (const [shape, groups] of CASES) {
        const size = shapeSize(shape), c = shape[1];
        const hw = shapeSize(shape.slice(2));
        const x = randomArray(size, size + 7, -2, 5), g = randomArray(size, size + 8);
        const w = randomArray(c, 13, 0.5, 1.5), b = randomArray(c, 14);
        await t.step(`${backend.name}, ${path}: [${shape}] groups ${groups}`, async () => {
          const outs = on(backend, () => forwardBackward(backend, x, g, shape, groups, w, b, true));
          const plain = reference(x, g, [shape[0], c, hw], groups, w, b);
          // The ReLU passes the gradient where the output is positive.
          const masked = g.map((v, k) => (plain.y[k] > 0 ? v : 0));
          const ref = reference(x, masked, [shape[0], c, hw], groups, w, b);
          const [y, dx, dw, db] = await Promise.all(outs.map((o) => o.data()));
          assertClose(y, ref.y.map((v) => Math.max(v, 0)), 1e-4, 1e-4, "y");
          assertClose(dx, ref.dx, 1e-4, 1e-3, "dx");
          assertClose(dw, ref.dw, 2e-3, 1e-4, "dw");
          assertClose(db, ref.db, 2e-3, 1e-4, "db");
        });
      }
    }
  }
});

Deno.test("group norm with a fused ReLU: still one launch forward, two backward", async () => {
  const x = randomArray(240, 1), g = randomArray(240, 2);
  const w = randomArray(12, 5, 0.5, 1.5), b = randomArray(12, 6);
  const narrow = await launchesOf(() =>
    onHardwarePaths(CPU, () => forwardBackward(CPU, x, g, [2, 12, 10], 3, w, b, true))
  );
  assert.deepEqual(narrow, {
    "norm.tree_forward_relu": 1,
    "norm.tree_grad_sums_planes_relu": 1,
    "norm.tree_grad_input": 1,
  });
  const wide = await launchesOf(() =>
    onHardwarePaths(
      CPU,
      () => forwardBackward(CPU, x, g, [1, 2, 120], 1, w.slice(0, 2), b.slice(0, 2), true),
    )
  );
  assert.deepEqual(wide, {
    "norm.tree_forward_relu": 1,
    "norm.tree_grad_sums_relu": 1,
    "norm.tree_grad_input": 1,
  });
  // The chunked kernels apply it in norm.apply and mask the gradient in one more launch.
  const chunked = await launchesOf(() => forwardBackward(CPU, x, g, [2, 12, 10], 3, w, b, true));
  assert.equal(chunked["norm.apply"], 1);
  assert.equal(chunked["map.relu"], undefined);
  assert.equal(chunked["map.relu_grad"], 1);
});

Deno.test("group norm with a fused ReLU releases every buffer", async () => {
  for (const backend of await testBackends()) {
    await onHardwarePaths(backend, async () => {
      const w = tensor(randomArray(35, 1), [35], { backend });
      const b = tensor(randomArray(35, 2), [35], { backend });
      await assertReleases(backend, (x) => [groupNorm(x, 7, w, b, 1e-5, { relu: true })]);
      w.dispose();
      b.dispose();
    });
    await assertReleases(
      backend,
      (x) => [groupNorm(x, 5, undefined, undefined, 1e-5, { relu: true })],
    );
  }
});
