import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { withProfile } from "../../tensor/device_profile.ts";
import { conv2d, type Conv2dOptions } from "../../tensor/ops/conv.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import {
  assertClose,
  compareBackends,
  CPU,
  GPU,
  gpuBackend,
  gradcheck,
  NATIVE,
  nativeBackend,
  poisonPool,
  randomArray,
} from "./helpers.ts";

interface Case {
  name: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  o: { stride?: number; padding?: number; dilation?: number; groups?: number; bias?: boolean };
}

const CASES: Case[] = [
  { name: "3x3 pad 1", x: [2, 3, 7, 6], w: [4, 3, 3, 3], o: { padding: 1 } },
  {
    name: "stride 2, bias",
    x: [1, 2, 9, 8],
    w: [3, 2, 3, 3],
    o: { stride: 2, padding: 1, bias: true },
  },
  { name: "dilation 2", x: [1, 2, 8, 9], w: [2, 2, 3, 2], o: { dilation: 2, padding: 2 } },
  { name: "groups 2", x: [2, 4, 5, 5], w: [6, 2, 3, 3], o: { groups: 2, padding: 1, bias: true } },
  { name: "1x1", x: [3, 5, 4, 3], w: [7, 5, 1, 1], o: {} },
  { name: "7x7 stride 3", x: [1, 1, 11, 10], w: [2, 1, 7, 7], o: { stride: 3, padding: 3 } },
];

/** Direct convolution in plain JS (the definition). */
function naiveConv(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  bias: ArrayLike<number> | null,
  [n, c, h, wd]: number[],
  [co, cg, kh, kw]: number[],
  { stride = 1, padding = 0, dilation = 1, groups = 1 },
): { data: Float64Array; shape: number[] } {
  const ho = Math.floor((h + 2 * padding - dilation * (kh - 1) - 1) / stride) + 1;
  const wo = Math.floor((wd + 2 * padding - dilation * (kw - 1) - 1) / stride) + 1;
  const out = new Float64Array(n * co * ho * wo);
  const og = co / groups;
  for (let b = 0; b < n; b++) {
    for (let o = 0; o < co; o++) {
      const g = Math.floor(o / og);
      for (let oy = 0; oy < ho; oy++) {
        for (let ox = 0; ox < wo; ox++) {
          let s = bias ? bias[o] : 0;
          for (let ci = 0; ci < cg; ci++) {
            for (let ki = 0; ki < kh; ki++) {
              for (let kj = 0; kj < kw; kj++) {
                const y = oy * stride - padding + ki * dilation;
                const xx = ox * stride - padding + kj * dilation;
                if (y < 0 || y >= h || xx < 0 || xx >= wd) continue;
                s += x[((b * c + g * cg + ci) * h + y) * wd + xx] *
                  w[((o * cg + ci) * kh + ki) * kw + kj];
              }
            }
          }
          out[((b * co + o) * ho + oy) * wo + ox] = s;
        }
      }
    }
  }
  return { data: out, shape: [n, co, ho, wo] };
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function inputs(backend: Backend, c: Case, seed: number, grad = false) {
  const x = tensor(randomArray(size(c.x), seed), c.x, { backend, requiresGrad: grad });
  const w = tensor(randomArray(size(c.w), seed + 1), c.w, { backend, requiresGrad: grad });
  const bias = c.o.bias
    ? tensor(randomArray(c.w[0], seed + 2), [c.w[0]], { backend, requiresGrad: grad })
    : undefined;
  return { x, w, bias };
}

function options(c: Case, bias?: Tensor): Conv2dOptions {
  const { bias: _, ...rest } = c.o;
  return { ...rest, bias };
}

Deno.test("conv2d() CPU implementation matches a direct convolution", async (t) => {
  for (const [k, c] of CASES.entries()) {
    await t.step(c.name, async () => {
      const { x, w, bias } = inputs(CPU, c, 100 + k);
      const y = conv2d(x, w, options(c, bias));
      const ref = naiveConv(
        await x.data(),
        await w.data(),
        bias ? await bias.data() : null,
        c.x,
        c.w,
        c.o,
      );
      assert.deepEqual(y.shape, ref.shape);
      assertClose(await y.data(), ref.data, 1e-5, 1e-5);
    });
  }
  await t.step("images split into chunks", async () => {
    const c = CASES[1];
    await withProfile(CPU, { convColLimit: 200 }, async () => {
      const { x, w, bias } = inputs(CPU, { ...c, x: [3, 2, 9, 8] }, 7);
      const y = conv2d(x, w, options(c, bias));
      const ref = naiveConv(
        await x.data(),
        await w.data(),
        await bias!.data(),
        [3, 2, 9, 8],
        c.w,
        c.o,
      );
      assertClose(await y.data(), ref.data, 1e-5, 1e-5);
    });
  });
});

Deno.test("conv2d() packed uniform-window path (CPU twins) matches a direct convolution", async (t) => {
  // 40 x 40 images: x is read through uniform windows of 10 channels.
  const wide: Case = { name: "40x40", x: [2, 8, 40, 40], w: [9, 8, 3, 3], o: { padding: 1 } };
  for (const [k, c] of [...CASES, wide].entries()) {
    if ((c.o.groups ?? 1) !== 1) continue;
    await t.step(c.name, async () => {
      const { x, w, bias } = inputs(CPU, c, 150 + k, true);
      const { y, gy } = withProfile(CPU, { convUniform: "on" }, () => {
        const y = conv2d(x, w, options(c, bias));
        const gy = tensor(randomArray(y.size, 160 + k), y.shape, { backend: CPU });
        backward(y, gy);
        return { y, gy };
      });
      const ref = naiveConv(
        await x.data(),
        await w.data(),
        bias ? await bias.data() : null,
        c.x,
        c.w,
        c.o,
      );
      assertClose(await y.data(), ref.data, 1e-5, 1e-5);
      // Gradients against the default (im2col + matmul) path.
      const { x: x2, w: w2, bias: b2 } = inputs(CPU, c, 150 + k, true);
      backward(conv2d(x2, w2, options(c, b2)), gy);
      assertClose(await x.grad!.data(), await x2.grad!.data(), 1e-5, 1e-5);
      assertClose(await w.grad!.data(), await w2.grad!.data(), 1e-5, 1e-5);
    });
  }
});

Deno.test("conv2d() rejects bad input with a TypeError naming the shapes", () => {
  const x = tensor(randomArray(2 * 3 * 5 * 5, 1), [2, 3, 5, 5], { backend: CPU });
  const w = tensor(randomArray(4 * 2 * 3 * 3, 2), [4, 2, 3, 3], { backend: CPU });
  assert.throws(() => conv2d(x, w), {
    name: "TypeError",
    message: /^conv2d: input \[2, 3, 5, 5\] and weight \[4, 2, 3, 3\]/,
  });
  assert.throws(() => conv2d(tensor([1, 2, 3], [3], { backend: CPU }), w), {
    name: "TypeError",
    message: /conv2d: .*\[3\]/,
  });
  const w3 = tensor(randomArray(4 * 3 * 7 * 7, 2), [4, 3, 7, 7], { backend: CPU });
  assert.throws(() => conv2d(x, w3), { name: "TypeError", message: /does not fit/ });
  const wi = tensor(new Int32Array(4 * 3 * 9), [4, 3, 3, 3], { backend: CPU });
  assert.throws(() => conv2d(x, wi), { name: "TypeError", message: /conv2d: .*i32/ });
  const w4 = tensor(randomArray(4 * 3 * 9, 3), [4, 3, 3, 3], { backend: CPU });
  assert.throws(() => conv2d(x, w4, { bias: tensor([1, 2], [2], { backend: CPU }) }), {
    name: "TypeError",
    message: /conv2d: bias f32 \[2\]/,
  });
  assert.throws(() => conv2d(x, w4, { stride: 0 }), { name: "RangeError" });
});

Deno.test("conv2d() gradients match finite differences", async (t) => {
  const small: Case[] = [
    { name: "pad 1, bias", x: [2, 2, 4, 3], w: [3, 2, 3, 3], o: { padding: 1, bias: true } },
    {
      name: "stride 2, dilation 2",
      x: [1, 2, 6, 7],
      w: [2, 2, 2, 3],
      o: { stride: 2, dilation: 2, padding: 1 },
    },
    { name: "groups 2", x: [1, 4, 4, 4], w: [4, 2, 3, 3], o: { groups: 2, bias: true } },
  ];
  for (const [k, c] of small.entries()) {
    await t.step(c.name, async () => {
      const data: { data: Float32Array; shape: number[] }[] = [
        { data: randomArray(size(c.x), 200 + k), shape: c.x },
        { data: randomArray(size(c.w), 300 + k), shape: c.w },
      ];
      if (c.o.bias) data.push({ data: randomArray(c.w[0], 400 + k), shape: [c.w[0]] });
      await gradcheck((x, w, b) => conv2d(x, w, options(c, b)), data);
    });
  }
});

Deno.test("conv2d() kernels match their CPU twins", { ignore: !GPU }, async (t) => {
  const gpu = GPU ? await gpuBackend() : CPU;
  for (const [k, c] of CASES.entries()) {
    await t.step(`forward ${c.name}`, async () => {
      const out = naiveConv(
        new Float32Array(size(c.x)),
        new Float32Array(size(c.w)),
        null,
        c.x,
        c.w,
        c.o,
      );
      poisonPool(gpu, [out.data.length, size(c.x)]);
      await compareBackends(
        (backend) => {
          const { x, w, bias } = inputs(backend, c, 500 + k);
          return conv2d(x, w, options(c, bias));
        },
        1e-4,
        1e-4,
      );
    });
    await t.step(`backward ${c.name}`, async () => {
      poisonPool(gpu, [size(c.x), size(c.w)]);
      await compareBackends(
        (backend) => {
          const { x, w, bias } = inputs(backend, c, 600 + k, true);
          const y = conv2d(x, w, options(c, bias));
          backward(y, tensor(randomArray(y.size, 700 + k), y.shape, { backend }));
          return bias ? [x.grad!, w.grad!, bias.grad!] : [x.grad!, w.grad!];
        },
        1e-4,
        1e-4,
      );
    });
  }
  await t.step("chunked images, forward and backward", async () => {
    const c: Case = {
      name: "chunks",
      x: [3, 3, 6, 5],
      w: [2, 3, 3, 3],
      o: { padding: 1, bias: true },
    };
    await compareBackends(
      (backend) =>
        withProfile(backend, { convColLimit: 500 }, () => {
          const { x, w, bias } = inputs(backend, c, 800, true);
          const y = conv2d(x, w, options(c, bias));
          backward(y, tensor(randomArray(y.size, 801), y.shape, { backend }));
          return [y, x.grad!, w.grad!, bias!.grad!];
        }),
      1e-4,
      1e-4,
    );
  });
  const packedCases: Case[] = [
    ...CASES.filter((c) => (c.o.groups ?? 1) === 1),
    // 1600 pixels: x read through uniform windows of 10 channels, except past the buffer end.
    { name: "40x40, 8 channels", x: [2, 8, 40, 40], w: [9, 8, 3, 3], o: { padding: 1 } },
    // 16,900 pixels: one channel does not fit a window, so x is read from storage.
    { name: "130x130", x: [1, 1, 130, 130], w: [3, 1, 3, 3], o: { padding: 1, bias: true } },
    { name: "70 filters, 33x40", x: [2, 5, 33, 40], w: [70, 5, 3, 3], o: { padding: 1 } },
  ];
  for (const [k, c] of packedCases.entries()) {
    await t.step(`packed path, forward and backward: ${c.name}`, async () => {
      poisonPool(gpu, [size(c.x), size(c.w), size(c.x) * 9]);
      await compareBackends(
        (backend) =>
          withProfile(backend, { convUniform: backend === CPU ? "off" : "on" }, () => {
            const { x, w, bias } = inputs(backend, c, 900 + k, true);
            const y = conv2d(x, w, options(c, bias));
            backward(y, tensor(randomArray(y.size, 950 + k), y.shape, { backend }));
            return bias ? [y, x.grad!, w.grad!, bias.grad!] : [y, x.grad!, w.grad!];
          }),
        1e-4,
        1e-4,
      );
    });
  }
  await t.step("packed path with chunked images (weight gradient accumulates)", async () => {
    const c: Case = { name: "chunks", x: [3, 3, 6, 5], w: [2, 3, 3, 3], o: { padding: 1 } };
    await compareBackends(
      (backend) =>
        withProfile(backend, {
          convColLimit: 500,
          convUniform: backend === CPU ? "off" : "on",
        }, () => {
          const { x, w } = inputs(backend, c, 990, true);
          const y = conv2d(x, w, options(c));
          backward(y, tensor(randomArray(y.size, 991), y.shape, { backend }));
          return [y, x.grad!, w.grad!];
        }),
      1e-4,
      1e-4,
    );
  });
  await t.step("empty batch", async () => {
    const x = tensor([], [0, 2, 4, 4], { backend: gpu });
    const w = tensor(randomArray(18, 1), [1, 2, 3, 3], { backend: gpu });
    const y = conv2d(x, w, { padding: 1 });
    assert.deepEqual(y.shape, [0, 1, 4, 4]);
    assert.equal((await y.data()).length, 0);
  });
});

/** Cases for the direct and window kernels (groups 1): odd sizes, strides, Cout not a multiple of 8. */
const DIRECT_CASES: Case[] = [
  { name: "3x3 pad 1, Cout 12", x: [3, 5, 9, 7], w: [12, 5, 3, 3], o: { padding: 1, bias: true } },
  {
    name: "3x3 stride 2, Cout 15",
    x: [2, 6, 11, 10],
    w: [15, 6, 3, 3],
    o: { stride: 2, padding: 1 },
  },
  { name: "1x1 stride 2", x: [4, 7, 8, 9], w: [9, 7, 1, 1], o: { stride: 2 } },
  { name: "1x1", x: [2, 3, 5, 4], w: [33, 3, 1, 1], o: {} },
  { name: "dilation 2, no padding", x: [1, 2, 9, 9], w: [4, 2, 3, 2], o: { dilation: 2 } },
  { name: "7x7 stride 3 pad 3", x: [1, 1, 11, 10], w: [2, 1, 7, 7], o: { stride: 3, padding: 3 } },
  // 40 channels of 22 x 22 padded planes: x split into channel chunks; 130 filters: weights in 2 windows.
  { name: "channel chunks", x: [2, 40, 20, 20], w: [10, 40, 3, 3], o: { padding: 1 } },
  { name: "weight windows", x: [2, 20, 6, 6], w: [130, 20, 3, 3], o: { padding: 1 } },
];

Deno.test("conv2d() direct kernels (CPU twins) match the im2col path", async (t) => {
  for (const [k, c] of DIRECT_CASES.entries()) {
    await t.step(c.name, async () => {
      const run = (mode: "on" | "off") =>
        withProfile(CPU, { convDirect: mode }, () => {
          const { x, w, bias } = inputs(CPU, c, 1100 + k, true);
          const y = conv2d(x, w, options(c, bias));
          backward(y, tensor(randomArray(y.size, 1150 + k), y.shape, { backend: CPU }));
          return [y, x.grad!, w.grad!];
        });
      const direct = run("on"), reference = run("off");
      for (let i = 0; i < 3; i++) {
        assertClose(await direct[i].data(), await reference[i].data(), 1e-4, 1e-4, `output ${i}`);
      }
    });
  }
});

Deno.test("conv2d() direct kernels match the CPU", { ignore: !GPU }, async (t) => {
  const gpu = GPU ? await gpuBackend() : CPU;
  for (const [k, c] of DIRECT_CASES.entries()) {
    await t.step(c.name, async () => {
      poisonPool(gpu, [size(c.x), size(c.w), size(c.x) * 2]);
      await compareBackends(
        (backend) =>
          withProfile(backend, { convDirect: backend === CPU ? "off" : "on" }, () => {
            const { x, w, bias } = inputs(backend, c, 1500 + k, true);
            const y = conv2d(x, w, options(c, bias));
            backward(y, tensor(randomArray(y.size, 1550 + k), y.shape, { backend }));
            return bias ? [y, x.grad!, w.grad!, bias.grad!] : [y, x.grad!, w.grad!];
          }),
        2e-4,
        2e-4,
      );
    });
  }
});

Deno.test(
  "conv2d() on the native backend (OpenBLAS) matches the CPU",
  { ignore: !NATIVE },
  async (t) => {
    const native = NATIVE ? nativeBackend() : CPU;
    const cases: Case[] = [
      ...CASES,
      { name: "stride 2 without padding", x: [2, 3, 9, 10], w: [4, 3, 3, 3], o: { stride: 2 } },
      { name: "padding past the kernel", x: [1, 2, 3, 3], w: [2, 2, 3, 3], o: { padding: 3 } },
      {
        name: "wide rows (64 px)",
        x: [2, 3, 20, 70],
        w: [5, 3, 3, 3],
        o: { padding: 1, bias: true },
      },
      {
        name: "depthwise, stride 2",
        x: [2, 6, 9, 9],
        w: [6, 1, 3, 3],
        o: { groups: 6, stride: 2 },
      },
    ];
    for (const [k, c] of cases.entries()) {
      await t.step(`forward and backward: ${c.name}`, async () => {
        poisonPool(native, [size(c.x), size(c.w), size(c.x) * 9]);
        await compareBackends(
          (backend) => {
            const { x, w, bias } = inputs(backend, c, 1100 + k, true);
            const y = conv2d(x, w, options(c, bias));
            backward(y, tensor(randomArray(y.size, 1150 + k), y.shape, { backend }));
            return bias ? [y, x.grad!, w.grad!, bias.grad!] : [y, x.grad!, w.grad!];
          },
          1e-4,
          1e-4,
          native,
        );
      });
    }
    await t.step("chunked images, forward and backward", async () => {
      const c: Case = { name: "chunks", x: [3, 3, 6, 5], w: [2, 3, 3, 3], o: { padding: 1 } };
      await compareBackends(
        (backend) =>
          withProfile(backend, { convColLimit: 500 }, () => {
            const { x, w } = inputs(backend, c, 1200, true);
            const y = conv2d(x, w, options(c));
            backward(y, tensor(randomArray(y.size, 1201), y.shape, { backend }));
            return [y, x.grad!, w.grad!];
          }),
        1e-4,
        1e-4,
        native,
      );
    });
  },
);
