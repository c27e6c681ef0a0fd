import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import type { DType } from "../../tensor/dtype.ts";
import { mul } from "../../tensor/ops/elementwise.ts";
import {
  LAYER_NORM_FUSED_MAX,
  LAYER_NORM_ROW_CHUNK,
  layerNorm,
} from "../../tensor/ops/layer_norm.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { LayerNorm } from "../../tensor/nn/transformer.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import {
  assertClose,
  assertReleases,
  compareBackends,
  CPU,
  GPU,
  gpuBackend,
  gradcheck,
  NATIVE,
  nativeBackend,
  poisonPool,
  randomArray,
  shapeSize,
  testBackends,
} from "./helpers.ts";

interface LayerNormCase {
  name: string;
  shape: number[];
  normalized_shape: number[];
  eps: number;
  x: number[];
  loss_weight: number[];
  y: number[];
  grad_x: number[];
  weight?: number[];
  grad_weight?: number[];
  bias?: number[];
  grad_bias?: number[];
}

const FIXTURE: { layer_norm: LayerNormCase[] } = JSON.parse(
  await Deno.readTextFile(
    new URL("../fixtures/tensor/transformer_reference.json", import.meta.url),
  ),
);

/** Forward and gradients of `sum(layerNorm(x) * lossWeight)` for one fixture case. */
async function runCase(c: LayerNormCase, backend: Backend, dtype: DType) {
  const make = (v: number[], shape: number[]) =>
    tensor(dtype === "f64" ? Float64Array.from(v) : Float32Array.from(v), shape, {
      backend,
      requiresGrad: true,
    });
  const x = make(c.x, c.shape);
  const w = c.weight ? make(c.weight, c.normalized_shape) : undefined;
  const b = c.bias ? make(c.bias, c.normalized_shape) : undefined;
  const y = layerNorm(x, c.normalized_shape, { weight: w, bias: b, eps: c.eps });
  const lw = tensor(
    dtype === "f64" ? Float64Array.from(c.loss_weight) : Float32Array.from(c.loss_weight),
    c.shape,
    { backend },
  );
  backward(sum(mul(y, lw)));
  return {
    y: await y.data(),
    gx: await x.grad!.data(),
    gw: w && await w.grad!.data(),
    gb: b && await b.grad!.data(),
  };
}

/**
 * Independent float64 reference of layer norm over `[rows, d]` and of the gradients of
 * `sum(y * g)`, written from the definitions (per-row mean and biased variance).
 */
function reference(
  x: ArrayLike<number>,
  rows: number,
  d: number,
  w: ArrayLike<number> | null,
  b: ArrayLike<number> | null,
  g: ArrayLike<number>,
  eps: number,
) {
  const y = new Float64Array(rows * d), gx = new Float64Array(rows * d);
  const gw = new Float64Array(d), gb = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    const row = Array.from({ length: d }, (_, k) => x[r * d + k]);
    const mu = row.reduce((a, v) => a + v, 0) / d;
    const variance = row.reduce((a, v) => a + (v - mu) ** 2, 0) / d;
    const s = Math.sqrt(variance + eps);
    const xhat = row.map((v) => (v - mu) / s);
    // dL/dxhat, then the standard layer-norm input gradient.
    const dxhat = xhat.map((_, k) => g[r * d + k] * (w ? w[k] : 1));
    const meanD = dxhat.reduce((a, v) => a + v, 0) / d;
    const meanDx = dxhat.reduce((a, v, k) => a + v * xhat[k], 0) / d;
    for (let k = 0; k < d; k++) {
      y[r * d + k] = xhat[k] * (w ? w[k] : 1) + (b ? b[k] : 0);
      gx[r * d + k] = (dxhat[k] - meanD - xhat[k] * meanDx) / s;
      gw[k] += g[r * d + k] * xhat[k];
      gb[k] += g[r * d + k];
    }
  }
  return { y, gx, gw, gb };
}

Deno.test("layerNorm matches PyTorch's F.layer_norm and its gradients", async (t) => {
  for (const c of FIXTURE.layer_norm) {
    await t.step(`${c.name}, float64 on the CPU`, async () => {
      const got = await runCase(c, CPU, "f64");
      assertClose(got.y, c.y, 1e-12, 1e-10, "y");
      assertClose(got.gx, c.grad_x, 1e-12, 1e-9, "grad x");
      if (c.grad_weight) assertClose(got.gw!, c.grad_weight, 1e-12, 1e-10, "grad weight");
      if (c.grad_bias) assertClose(got.gb!, c.grad_bias, 1e-12, 1e-10, "grad bias");
      assert.equal(got.gw === undefined, c.weight === undefined);
    });
    for (const backend of await testBackends()) {
      await t.step(`${c.name}, float32 on ${backend.name}`, async () => {
        const got = await runCase(c, backend, "f32");
        assertClose(got.y, c.y, 2e-6, 2e-6, "y");
        assertClose(got.gx, c.grad_x, 2e-5, 2e-5, "grad x");
        if (c.grad_weight) assertClose(got.gw!, c.grad_weight, 2e-5, 2e-5, "grad weight");
        if (c.grad_bias) assertClose(got.gb!, c.grad_bias, 2e-5, 2e-5, "grad bias");
      });
    }
  }
});

Deno.test("layerNorm gradients match finite differences (float64)", async (t) => {
  const shape = [3, 2, 5];
  const x = Array.from(randomArray(30, 41, -2, 3));
  const w = Array.from(randomArray(10, 42, 0.5, 1.5)), b = Array.from(randomArray(10, 43, -1, 1));
  await t.step("over the last two axes, with weight and bias", async () => {
    await gradcheck((a, ww, bb) => layerNorm(a, [2, 5], { weight: ww, bias: bb }), [
      { data: x, shape },
      { data: w, shape: [2, 5] },
      { data: b, shape: [2, 5] },
    ], { atol: 1e-6, rtol: 1e-5 });
  });
  await t.step("over the last axis, no affine, eps 0.1", async () => {
    await gradcheck((a) => layerNorm(a, 5, { eps: 0.1 }), [{ data: x, shape }], {
      atol: 1e-6,
      rtol: 1e-5,
    });
  });
  await t.step("bias only", async () => {
    await gradcheck((a, bb) => layerNorm(a, [5], { bias: bb }), [
      { data: x, shape },
      { data: b.slice(0, 5), shape: [5] },
    ], { atol: 1e-6, rtol: 1e-5 });
  });
});

Deno.test("layerNorm over more rows than one gradient chunk and over long rows", async (t) => {
  const cases: [string, number, number][] = [
    ["rows past one chunk", 2 * LAYER_NORM_ROW_CHUNK + 37, 6],
    ["rows longer than the fused kernel (groupNorm path)", 3, LAYER_NORM_FUSED_MAX + 9],
  ];
  for (const [name, rows, d] of cases) {
    await t.step(name, async () => {
      const x = randomArray(rows * d, rows + d, -2, 5);
      const w = randomArray(d, 5, 0.5, 1.5), b = randomArray(d, 6, -1, 1);
      const g = randomArray(rows * d, 7, -1, 1);
      const ref = reference(x, rows, d, w, b, g, 1e-5);
      const tx = tensor(Float64Array.from(x), [rows, d], { backend: CPU, requiresGrad: true });
      const tw = tensor(Float64Array.from(w), [d], { backend: CPU, requiresGrad: true });
      const tb = tensor(Float64Array.from(b), [d], { backend: CPU, requiresGrad: true });
      const y = layerNorm(tx, d, { weight: tw, bias: tb });
      backward(y, tensor(Float64Array.from(g), [rows, d], { backend: CPU }));
      assertClose(await y.data(), ref.y, 1e-10, 1e-9, "y");
      assertClose(await tx.grad!.data(), ref.gx, 1e-10, 1e-8, "grad x");
      assertClose(await tw.grad!.data(), ref.gw, 1e-10, 1e-9, "grad weight");
      assertClose(await tb.grad!.data(), ref.gb, 1e-10, 1e-9, "grad bias");
    });
  }
  await t.step("weight only on long rows", async () => {
    const d = LAYER_NORM_FUSED_MAX + 1;
    const x = randomArray(2 * d, 8, -1, 1), w = randomArray(d, 9, 0.5, 1.5);
    const g = randomArray(2 * d, 10, -1, 1);
    const ref = reference(x, 2, d, w, null, g, 1e-5);
    const tx = tensor(Float64Array.from(x), [2, d], { backend: CPU, requiresGrad: true });
    const tw = tensor(Float64Array.from(w), [d], { backend: CPU, requiresGrad: true });
    const y = layerNorm(tx, [d], { weight: tw });
    backward(y, tensor(Float64Array.from(g), [2, d], { backend: CPU }));
    assertClose(await y.data(), ref.y, 1e-10, 1e-9, "y");
    assertClose(await tx.grad!.data(), ref.gx, 1e-10, 1e-8, "grad x");
    assertClose(await tw.grad!.data(), ref.gw, 1e-10, 1e-9, "grad weight");
  });
});

const PARITY: [string, number[], number[]][] = [
  ["[2, 3, 5] over [5]", [2, 3, 5], [5]],
  ["[4, 3, 4] over [3, 4]", [4, 3, 4], [3, 4]],
  ["rows of one element", [9, 1], [1]],
  ["rows past one gradient chunk", [LAYER_NORM_ROW_CHUNK * 2 + 5, 12], [12]],
  ["long rows (groupNorm path)", [2, LAYER_NORM_FUSED_MAX + 3], [LAYER_NORM_FUSED_MAX + 3]],
  ["no rows", [0, 4], [4]],
];

async function parity(target: Backend) {
  for (const [name, shape, normalized] of PARITY) {
    const size = shapeSize(shape), d = shapeSize(normalized);
    const x = randomArray(size, size + 1, -2, 3), g = randomArray(size, size + 2, -1, 1);
    const w = randomArray(d, 3, 0.5, 1.5), b = randomArray(d, 4, -1, 1);
    poisonPool(target, [size, d, size / Math.max(d, 1)]);
    await compareBackends(
      (backend: Backend) => {
        const tx = tensor(x, shape, { backend, requiresGrad: true });
        const tw = tensor(w, normalized, { backend, requiresGrad: true });
        const tb = tensor(b, normalized, { backend, requiresGrad: true });
        const y = layerNorm(tx, normalized, { weight: tw, bias: tb });
        backward(y, tensor(g, shape, { backend }));
        const plain = tensor(x, shape, { backend, requiresGrad: true });
        const z = layerNorm(plain, normalized, { eps: 1e-3 });
        backward(z, tensor(g, shape, { backend }));
        return [y, tx.grad!, tw.grad!, tb.grad!, z, plain.grad!];
      },
      1e-5,
      1e-4,
      target,
    ).catch((error) => {
      throw new Error(`${name}: ${error.message}`);
    });
  }
}

Deno.test("layer_norm kernels on WebGPU match their CPU twins", { ignore: !GPU }, async () => {
  await parity(await gpuBackend());
});

Deno.test("layer_norm on the native backend matches the CPU", { ignore: !NATIVE }, async () => {
  await parity(nativeBackend());
});

Deno.test("layerNorm releases what it allocates, forward and backward", async () => {
  for (const backend of await testBackends()) {
    const w = tensor(randomArray(35, 1, 0.5, 1.5), [35], { backend, requiresGrad: true });
    const b = tensor(randomArray(35, 2), [35], { backend, requiresGrad: true });
    const before = backend.liveBuffers();
    const x = tensor(randomArray(24 * 35, 3), [24, 35], { backend, requiresGrad: true });
    const y = layerNorm(x, 35, { weight: w, bias: b });
    const seed = tensor(randomArray(24 * 35, 4), [24, 35], { backend });
    backward(y, seed);
    await x.grad!.data();
    for (const t of [seed, y, x, x.grad!, w.grad!, b.grad!]) t.dispose();
    assert.equal(backend.liveBuffers(), before, `${backend.name}: with a tape`);
    // Without a tape the statistics are released at once.
    await assertReleases(backend, (input) => [layerNorm(input, 35)]);
    const z = tensor(randomArray(70, 5), [2, 35], { backend });
    w.requiresGrad = false;
    layerNorm(z, 35, { weight: w }).dispose();
    z.dispose();
    assert.equal(backend.liveBuffers(), before, `${backend.name}: without a tape`);
    w.dispose();
    b.dispose();
  }
});

Deno.test("layerNorm rejects bad input with clear errors", () => {
  const x = tensor(new Float32Array(24), [2, 3, 4], { backend: CPU });
  assert.throws(
    () => layerNorm(x, [3]),
    /layerNorm: normalized shape \[3\] does not match the last dimensions of \[2, 3, 4\]/,
  );
  assert.throws(() => layerNorm(x, [2, 3, 4, 1]), TypeError);
  assert.throws(() => layerNorm(x, []), TypeError);
  assert.throws(
    () => layerNorm(x, [4], { weight: tensor([1, 1, 1], undefined, { backend: CPU }) }),
    /layerNorm: weight has shape \[3\] but the normalized shape is \[4\]/,
  );
  assert.throws(
    () =>
      layerNorm(x, [4], {
        bias: tensor(new Float64Array(4), [4], { backend: CPU }),
      }),
    /layerNorm: bias is f64 but the input is f32/,
  );
  assert.throws(
    () => layerNorm(tensor([1, 2], [2], { backend: CPU, dtype: "i32" }), 2),
    /layerNorm: expected f32 or f64 but got i32/,
  );
  assert.throws(() => layerNorm(x, 4, { eps: -1 }), RangeError);
});

Deno.test("LayerNorm module: PyTorch names, initial values, evaluation equals training", async () => {
  const ln = new LayerNorm([2, 3], { backend: CPU, eps: 1e-6 });
  assert.deepEqual(
    ln.namedParameters().map(([n, p]) => [n, p.shape]),
    [["weight", [2, 3]], ["bias", [2, 3]]],
  );
  assert.deepEqual(Array.from(await ln.weight!.data()), [1, 1, 1, 1, 1, 1]);
  assert.deepEqual(Array.from(await ln.bias!.data()), [0, 0, 0, 0, 0, 0]);
  const w = randomArray(6, 1, 0.5, 1.5), b = randomArray(6, 2);
  ln.loadStateDict(
    new Map([["weight", { dtype: "f32", shape: [2, 3], data: w }], ["bias", {
      dtype: "f32",
      shape: [2, 3],
      data: b,
    }]]),
  );
  const x = randomArray(24, 3, -2, 2);
  const input = (): Tensor => tensor(x, [4, 2, 3], { backend: CPU });
  const ref = reference(x, 4, 6, w, b, new Float64Array(24), 1e-6);
  assertClose(await ln.forward(input()).data(), ref.y, 1e-5, 1e-5);
  assertClose(await ln.eval().forward(input()).data(), ref.y, 1e-5, 1e-5);
  const plain = new LayerNorm(6, { elementwiseAffine: false, backend: CPU });
  assert.equal(plain.parameters().length, 0);
  assert.throws(() => new LayerNorm([0]), /LayerNorm: invalid normalized shape \[0\]/);
});
