import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { ConvTranspose2d } from "../../tensor/nn/conv.ts";
import { fans } from "../../tensor/nn/init.ts";
import { type DeviceProfile, withProfile } from "../../tensor/device_profile.ts";
import { convTranspose2d, type ConvTranspose2dOptions } from "../../tensor/ops/conv_transpose.ts";
import { Rng } from "../../tensor/rng.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import { assertClose, CPU, f64, gradcheck, randomArray, testBackends } from "./helpers.ts";

/** One case of `tests/fixtures/tensor/conv_transpose.json` (PyTorch, see the script beside it). */
interface Fixture {
  name: string;
  covers: string;
  stride: [number, number];
  padding: [number, number];
  output_padding: [number, number];
  dilation: [number, number];
  x_shape: number[];
  x: number[];
  weight_shape: number[];
  weight: number[];
  bias: number[] | null;
  out_shape: number[];
  out: number[];
  loss_weights: number[];
  grad_x: number[];
  grad_weight: number[];
  grad_bias: number[] | null;
}

const FIXTURES: Fixture[] = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/tensor/conv_transpose.json", import.meta.url)),
).cases;

function optionsOf(c: Fixture, bias?: Tensor): ConvTranspose2dOptions {
  return {
    stride: c.stride,
    padding: c.padding,
    outputPadding: c.output_padding,
    dilation: c.dilation,
    bias,
  };
}

/** Runs case `c` forward and backward (loss `sum(out * loss_weights)`) on `backend`. */
async function run(c: Fixture, backend: Backend, dtype: "f32" | "f64" = "f32") {
  const make = (data: number[], shape: number[]) =>
    tensor(dtype === "f64" ? Float64Array.from(data) : Float32Array.from(data), shape, {
      backend,
      requiresGrad: true,
    });
  const x = make(c.x, c.x_shape), w = make(c.weight, c.weight_shape);
  const b = c.bias ? make(c.bias, [c.bias.length]) : undefined;
  const before = backend.liveBuffers();
  const y = convTranspose2d(x, w, optionsOf(c, b));
  const lw = tensor(
    dtype === "f64" ? Float64Array.from(c.loss_weights) : Float32Array.from(c.loss_weights),
    y.shape,
    { backend },
  );
  backward(y, lw);
  const result = {
    shape: y.shape,
    out: await y.data(),
    gx: await x.grad!.data(),
    gw: await w.grad!.data(),
    gb: b ? await b.grad!.data() : null,
  };
  for (const t of [y, lw, x.grad!, w.grad!, ...(b ? [b.grad!] : [])]) t.dispose();
  // Everything the op and its backward allocated is released once the results are.
  assert.equal(backend.liveBuffers(), before, `${c.name}: buffers left behind`);
  for (const t of [x, w, ...(b ? [b] : [])]) t.dispose();
  return result;
}

async function assertMatchesTorch(c: Fixture, backend: Backend, tol: number, dtype?: "f64") {
  const r = await run(c, backend, dtype);
  assert.deepEqual(r.shape, c.out_shape);
  assertClose(r.out, c.out, tol, tol, "output");
  assertClose(r.gx, c.grad_x, tol, tol, "grad x");
  assertClose(r.gw, c.grad_weight, tol, tol, "grad weight");
  if (c.grad_bias) assertClose(r.gb!, c.grad_bias, tol, tol, "grad bias");
}

/** The paths of `conv.ts` the op reuses: each backend's default, and each path forced. */
const PATHS: { name: string; profile: Partial<DeviceProfile> }[] = [
  { name: "default path", profile: {} },
  { name: "direct window kernels", profile: { convDirect: "on" } },
  { name: "packed uniform-window products", profile: { convDirect: "off", convUniform: "on" } },
  { name: "im2col + matmul", profile: { convDirect: "off", convUniform: "off" } },
  {
    name: "implicit GEMM",
    profile: { convDirect: "off", convUniform: "off", conv: "implicit" },
  },
];

Deno.test("convTranspose2d() matches PyTorch, forward and gradients, on every backend", async (t) => {
  for (const backend of await testBackends()) {
    for (const path of PATHS) {
      for (const c of FIXTURES) {
        await t.step(`${backend.name}, ${path.name}: ${c.name}`, async () => {
          await withProfile(backend, path.profile, () => assertMatchesTorch(c, backend, 2e-5));
        });
      }
    }
    await t.step(`${backend.name}: images in chunks`, async () => {
      await withProfile(backend, { convColLimit: 60 }, async () => {
        for (const c of FIXTURES.filter((c) => c.x_shape[0] > 1)) {
          await assertMatchesTorch(c, backend, 2e-5);
        }
      });
    });
  }
  await t.step("cpu, f64: equal to PyTorch's float64 numbers", async () => {
    for (const c of FIXTURES) await assertMatchesTorch(c, CPU, 1e-12, "f64");
  });
});

Deno.test("convTranspose2d() gradients match finite differences (CPU, f64)", async (t) => {
  const cases: { name: string; x: number[]; w: number[]; o: ConvTranspose2dOptions }[] = [
    { name: "k2 s2, bias", x: [2, 3, 2, 3], w: [3, 2, 2, 2], o: { stride: 2 } },
    {
      name: "k3 s2 p1 op1, bias",
      x: [1, 2, 3, 2],
      w: [2, 3, 3, 3],
      o: { stride: 2, padding: 1, outputPadding: 1 },
    },
    {
      name: "non-square, dilation, op below dilation",
      x: [1, 2, 3, 2],
      w: [2, 2, 2, 3],
      o: { stride: [1, 2], padding: [1, 0], dilation: [2, 1], outputPadding: [1, 1] },
    },
  ];
  for (const [k, c] of cases.entries()) {
    await t.step(c.name, async () => {
      const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
      await gradcheck(
        (x, w, b) => convTranspose2d(x, w, { ...c.o, bias: b }),
        [
          { data: randomArray(size(c.x), 40 + k), shape: c.x },
          { data: randomArray(size(c.w), 50 + k), shape: c.w },
          { data: randomArray(c.w[1], 60 + k), shape: [c.w[1]] },
        ],
      );
    });
  }
});

Deno.test("convTranspose2d() rejects bad input with errors naming the problem", () => {
  const x = f64(randomArray(2 * 3 * 4 * 4, 1), [2, 3, 4, 4]);
  const w = f64(randomArray(3 * 2 * 3 * 3, 2), [3, 2, 3, 3]);
  assert.throws(() => convTranspose2d(x, f64([1, 2, 3], [3])), {
    name: "TypeError",
    message:
      /^convTranspose2d: expected input \[N, Cin, H, W\] and weight \[Cin, Cout, kh, kw\], got \[2, 3, 4, 4\] and \[3\]$/,
  });
  assert.throws(() => convTranspose2d(f64([1, 2], [2]), w), {
    name: "TypeError",
    message: /got \[2\] and \[3, 2, 3, 3\]/,
  });
  assert.throws(() => convTranspose2d(x, f64(randomArray(2 * 3 * 9, 3), [2, 3, 3, 3])), {
    name: "TypeError",
    message:
      /^convTranspose2d: input \[2, 3, 4, 4\] has 3 channels but weight \[2, 3, 3, 3\] expects 2$/,
  });
  assert.throws(() => convTranspose2d(x, tensor(randomArray(54, 3), [3, 2, 3, 3])), {
    name: "TypeError",
    message: /expected f32 input and weight, got f64 \[2, 3, 4, 4\] and f32 \[3, 2, 3, 3\]/,
  });
  assert.throws(() => convTranspose2d(x, w, { padding: 4 }), {
    name: "TypeError",
    message: /padding 4, 4.* gives an output of -2 x -2$/,
  });
  assert.throws(() => convTranspose2d(x, w, { stride: 2, outputPadding: 2 }), {
    name: "RangeError",
    message: /^convTranspose2d: outputPadding \[2, 2\] must be smaller than stride \[2, 2\] or/,
  });
  assert.throws(() => convTranspose2d(x, w, { outputPadding: [0, 1] }), {
    name: "RangeError",
    message: /outputPadding \[0, 1\] must be smaller than stride \[1, 1\] or dilation \[1, 1\]/,
  });
  for (const [name, value] of [["stride", NaN], ["padding", -1], ["dilation", Infinity]] as const) {
    assert.throws(() => convTranspose2d(x, w, { [name]: value }), {
      name: "RangeError",
      message: new RegExp(`^convTranspose2d: ${name} ${value} must be integers >= `),
    });
  }
  assert.throws(() => convTranspose2d(x, w, { outputPadding: [0, 0.5] }), {
    name: "RangeError",
    message: /^convTranspose2d: outputPadding \[0, 0.5\] must be integers >= 0$/,
  });
  assert.throws(() => convTranspose2d(x, w, { bias: f64([1, 2, 3], [3]) }), {
    name: "TypeError",
    message: /^convTranspose2d: bias f64 \[3\] does not match 2 output channels$/,
  });
  assert.throws(
    () => convTranspose2d(x, w, { groups: 3 } as ConvTranspose2dOptions),
    { name: "RangeError", message: /groups 3 is not supported/ },
  );
  assert.throws(() => convTranspose2d(f64([], [1, 3, 0, 4]), w), {
    name: "TypeError",
    message: /need non-empty planes and kernels/,
  });
});

Deno.test("convTranspose2d() of an empty batch is an empty output", async () => {
  for (const backend of await testBackends()) {
    const x = tensor([], [0, 3, 4, 4], { backend });
    const w = tensor(randomArray(3 * 2 * 4, 1), [3, 2, 2, 2], { backend });
    const y = convTranspose2d(x, w, { stride: 2 });
    assert.deepEqual(y.shape, [0, 2, 8, 8]);
    assert.equal((await y.data()).length, 0);
  }
});

Deno.test("ConvTranspose2d layer: PyTorch names, shapes, default init and forward", async (t) => {
  await t.step("parameters are weight [in, out, kh, kw] and bias [out]", () => {
    const layer = new ConvTranspose2d(6, 4, [2, 3], { rng: new Rng(1), backend: CPU });
    assert.deepEqual(
      layer.namedParameters().map(([n, p]) => [n, p.shape]),
      [["weight", [6, 4, 2, 3]], ["bias", [4]]],
    );
    const noBias = new ConvTranspose2d(6, 4, 2, { rng: new Rng(1), backend: CPU, bias: false });
    assert.deepEqual(noBias.namedParameters().map(([n]) => n), ["weight"]);
  });
  await t.step("default init draws within PyTorch's bounds over fan out * kh * kw", async () => {
    const layer = new ConvTranspose2d(16, 8, 2, { rng: new Rng(2), backend: CPU });
    const fan = fans(layer.weight.shape)[0];
    assert.equal(fan, 8 * 2 * 2);
    const bound = 1 / Math.sqrt(fan); // kaiming_uniform(a = sqrt(5)): sqrt(6 / 6 / fan)
    const wv = await layer.weight.data(), bv = await layer.bias!.data();
    const maxW = Math.max(...wv.map(Math.abs)), maxB = Math.max(...bv.map(Math.abs));
    assert.ok(maxW <= bound && maxW > 0.9 * bound, `max |w| ${maxW}, bound ${bound}`);
    assert.ok(maxB <= bound && maxB > 0, `max |b| ${maxB}, bound ${bound}`);
  });
  await t.step("a PyTorch state dict loads and the forward pass matches PyTorch", async () => {
    const c = FIXTURES.find((c) => c.name === "k2_s2_p0")!;
    const [cin, cout, kh] = c.weight_shape;
    const layer = new ConvTranspose2d(cin, cout, kh, { rng: new Rng(3), stride: 2, backend: CPU });
    layer.loadStateDict(
      new Map([
        ["weight", tensor(c.weight, c.weight_shape, { backend: CPU })],
        ["bias", tensor(c.bias!, [cout], { backend: CPU })],
      ]),
    );
    const y = layer.forward(tensor(c.x, c.x_shape, { backend: CPU }));
    assertClose(await y.data(), c.out, 2e-5, 2e-5);
  });
});
