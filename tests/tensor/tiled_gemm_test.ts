import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { type GemmTiles, HARDWARE_PATHS, withProfile } from "../../tensor/device_profile.ts";
import { conv2d } from "../../tensor/ops/conv.ts";
import { convTranspose2d } from "../../tensor/ops/conv_transpose.ts";
import { matmul, type MatmulOptions } from "../../tensor/ops/matmul.ts";
import { reshape } from "../../tensor/ops/shape.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import { compareBackends, CPU, GPU, gpuBackend, poisonPool, randomArray } from "./helpers.ts";

/** The hardware adapters' kernels on `backend` (llvmpipe, or the CPU running their twins). */
function hardware<T>(backend: Backend, run: () => T, tiles?: GemmTiles): T {
  return withProfile(backend, tiles ? { ...HARDWARE_PATHS, tiles } : HARDWARE_PATHS, run);
}

/** Runs `fn` on the CPU's default paths (the reference) and on `backend` with the hardware kernels. */
async function againstCpu(
  backend: Backend,
  fn: (backend: Backend) => Tensor | Tensor[],
  tol: number,
  tiles?: GemmTiles,
): Promise<void> {
  await compareBackends(
    (b) => b === CPU ? fn(b) : hardware(b, () => fn(b), tiles),
    tol,
    tol,
    backend,
  );
}

interface Product {
  name: string;
  a: number[];
  b: number[];
  o?: MatmulOptions;
}

const PRODUCTS: Product[] = [
  { name: "odd 7x5x3", a: [7, 5], b: [5, 3] },
  { name: "K = 1", a: [65, 1], b: [1, 67] },
  { name: "K = 0 (zeros)", a: [4, 0], b: [0, 5] },
  { name: "130x70x129 (past a 64 tile)", a: [130, 70], b: [70, 129] },
  { name: "Aᵀ", a: [300, 100], b: [300, 90], o: { transposeA: true } },
  { name: "Bᵀ", a: [64, 64], b: [48, 64], o: { transposeB: true } },
  {
    name: "large K, both transposed",
    a: [20000, 33],
    b: [17, 20000],
    o: { transposeA: true, transposeB: true },
  },
  { name: "broadcast batch", a: [2, 1, 13, 9], b: [3, 9, 10] },
  // Rows of a multiple of 4 floats: A and B read as vec4.
  { name: "vec4 reads 67x32x36", a: [67, 32], b: [32, 36] },
  { name: "vec4 reads, broadcast batch", a: [2, 1, 13, 8], b: [3, 8, 20] },
  { name: "vec4 reads, K = 4", a: [5, 4], b: [4, 132] },
];

const TILE_SETS: { name: string; tiles?: GemmTiles }[] = [
  { name: "profile tiles" },
  { name: "32x32x8 tiles", tiles: { bm: 32, bn: 32, bk: 8, tm: 4, tn: 4 } },
  { name: "16x64x4 tiles, 2-row blocks", tiles: { bm: 16, bn: 64, bk: 4, tm: 2, tn: 4 } },
];

Deno.test("tiled matmul (forced on llvmpipe) matches the CPU", { ignore: !GPU }, async (t) => {
  const gpu = await gpuBackend();
  for (const { name: tileName, tiles } of TILE_SETS) {
    for (const [k, p] of PRODUCTS.entries()) {
      // The large inner axis once, with the profile's tiles (it is slow on llvmpipe).
      if (tiles && p.name.startsWith("large K")) continue;
      await t.step(`${tileName}: ${p.name}`, async () => {
        poisonPool(gpu, [p.a.reduce((x, y) => x * y, 1)]);
        await againstCpu(
          gpu,
          (backend) => {
            const size = (s: number[]) => s.reduce((x, y) => x * y, 1);
            const a = tensor(randomArray(size(p.a), 10 + k), p.a, { backend, requiresGrad: true });
            const b = tensor(randomArray(size(p.b), 20 + k), p.b, { backend, requiresGrad: true });
            const c = matmul(a, b, p.o);
            if (c.size === 0) return [c];
            backward(c, tensor(randomArray(c.size, 30 + k), c.shape, { backend }));
            return [c, a.grad!, b.grad!];
          },
          p.name.startsWith("large K") ? 1e-3 : 1e-4,
          tiles,
        );
      });
    }
  }
  await t.step("the tiled kernels run, vec4 where rows are aligned (labels)", async () => {
    const a = tensor(randomArray(40 * 30, 1), [40, 30], { backend: gpu });
    const b = tensor(randomArray(40 * 32, 2), [40, 32], { backend: gpu });
    gpu.startProfile();
    hardware(gpu, () => {
      matmul(a, a, { transposeB: true }).dispose(); // rows of 30: scalar loads
      matmul(b, b, { transposeB: true }).dispose(); // A's rows of 32: vec4; Bᵀ: scalar
      matmul(b, b, { transposeA: true }).dispose(); // Aᵀ: scalar; B's rows of 32: vec4
      const c = reshape(b, [32, 40]);
      matmul(b, c).dispose(); // both vec4
      c.dispose();
    });
    const labels = (await gpu.stopProfile()).map((k) => k.label).sort();
    assert.deepEqual(labels, [
      "matmul.tiled4a_64x64x16",
      "matmul.tiled4ab_64x64x16",
      "matmul.tiled4b_64x64x16",
      "matmul.tiled_64x64x16",
    ]);
    a.dispose();
    b.dispose();
  });
});

interface ConvCase {
  name: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  o: { stride?: number; padding?: number; dilation?: number; groups?: number; bias?: boolean };
}

const CONVS: ConvCase[] = [
  { name: "3x3 pad 1", x: [2, 3, 7, 6], w: [4, 3, 3, 3], o: { padding: 1, bias: true } },
  { name: "stride 2", x: [1, 2, 9, 8], w: [3, 2, 3, 3], o: { stride: 2, padding: 1 } },
  { name: "dilation 2", x: [1, 2, 8, 9], w: [2, 2, 3, 2], o: { dilation: 2, padding: 2 } },
  { name: "groups 2", x: [2, 4, 5, 5], w: [6, 2, 3, 3], o: { groups: 2, padding: 1, bias: true } },
  { name: "depthwise stride 2", x: [2, 6, 9, 9], w: [6, 1, 3, 3], o: { groups: 6, stride: 2 } },
  { name: "1x1", x: [3, 5, 4, 3], w: [7, 5, 1, 1], o: {} },
  { name: "7x7 stride 3", x: [1, 1, 11, 10], w: [2, 1, 7, 7], o: { stride: 3, padding: 3 } },
  {
    name: "70 filters, 33x40 (several tiles)",
    x: [2, 5, 33, 40],
    w: [70, 5, 3, 3],
    o: { padding: 1 },
  },
  { name: "K = 576", x: [1, 64, 6, 6], w: [9, 64, 3, 3], o: { padding: 1, bias: true } },
];

function convOnce(backend: Backend, c: ConvCase, seed: number): Tensor[] {
  const size = (s: number[]) => s.reduce((x, y) => x * y, 1);
  const x = tensor(randomArray(size(c.x), seed), c.x, { backend, requiresGrad: true });
  const w = tensor(randomArray(size(c.w), seed + 1), c.w, { backend, requiresGrad: true });
  const bias = c.o.bias
    ? tensor(randomArray(c.w[0], seed + 2), [c.w[0]], { backend, requiresGrad: true })
    : undefined;
  const { bias: _, ...rest } = c.o;
  const y = conv2d(x, w, { ...rest, bias });
  backward(y, tensor(randomArray(y.size, seed + 3), y.shape, { backend }));
  return bias ? [y, x.grad!, w.grad!, bias.grad!] : [y, x.grad!, w.grad!];
}

Deno.test("implicit-GEMM conv2d twins (CPU) match the im2col path", async (t) => {
  for (const [k, c] of CONVS.entries()) {
    await t.step(c.name, async () => {
      const reference = convOnce(CPU, c, 100 + 10 * k);
      const implicit = hardware(CPU, () => convOnce(CPU, c, 100 + 10 * k));
      for (let i = 0; i < reference.length; i++) {
        const want = await reference[i].data(), got = await implicit[i].data();
        assert.equal(got.length, want.length);
        for (let j = 0; j < want.length; j++) {
          assert.ok(
            Math.abs(got[j] - want[j]) <= 1e-4 * (1 + Math.abs(want[j])),
            `output ${i}[${j}]`,
          );
        }
      }
    });
  }
});

Deno.test("implicit-GEMM conv2d adds the bias in its forward launch, once", async (t) => {
  const c = CONVS.find((c) => c.name === "K = 576")!;
  const reference = await Promise.all(convOnce(CPU, c, 300).map((o) => o.data()));
  // A loop budget of 64 inner steps: the 576 of each output take 9 dispatches that accumulate.
  for (const loopBudget of [65_536, 64]) {
    await t.step(`loop budget ${loopBudget}`, async () => {
      CPU.startProfile();
      const outs = withProfile(CPU, { ...HARDWARE_PATHS, loopBudget }, () => convOnce(CPU, c, 300));
      const got = await Promise.all(outs.map((o) => o.data()));
      const launches = Object.fromEntries(
        (await CPU.stopProfile()).map((k) => [k.label, k.calls]),
      );
      assert.equal(launches["map.conv2d_bias"], undefined, "no separate bias launch");
      assert.equal(launches["conv.gemm_forward_bias_64x64x16"], loopBudget === 64 ? 9 : 1);
      assert.equal(launches["conv.gemm_forward_64x64x16"], undefined);
      got.forEach((g, i) => {
        for (let j = 0; j < g.length; j++) {
          const want = reference[i][j];
          assert.ok(Math.abs(g[j] - want) <= 1e-4 * (1 + Math.abs(want)), `output ${i}[${j}]`);
        }
      });
    });
  }
});

Deno.test(
  "implicit-GEMM conv2d (forced on llvmpipe) matches the CPU",
  { ignore: !GPU },
  async (t) => {
    const gpu = await gpuBackend();
    for (const { name: tileName, tiles } of TILE_SETS.slice(0, 2)) {
      for (const [k, c] of CONVS.entries()) {
        await t.step(`${tileName}: ${c.name}`, async () => {
          poisonPool(gpu, [c.x.reduce((a, b) => a * b, 1), c.w.reduce((a, b) => a * b, 1)]);
          await againstCpu(gpu, (backend) => convOnce(backend, c, 200 + 10 * k), 1e-4, tiles);
        });
      }
    }
    await t.step("transposed convolution (stride 2) through the same passes", async () => {
      await againstCpu(gpu, (backend) => {
        const x = tensor(randomArray(2 * 4 * 5 * 5, 7), [2, 4, 5, 5], {
          backend,
          requiresGrad: true,
        });
        const w = tensor(randomArray(4 * 3 * 2 * 2, 8), [4, 3, 2, 2], {
          backend,
          requiresGrad: true,
        });
        const y = convTranspose2d(x, w, { stride: 2 });
        backward(y, tensor(randomArray(y.size, 9), y.shape, { backend }));
        return [y, x.grad!, w.grad!];
      }, 1e-4);
    });
    await t.step("the implicit kernels run (labels)", async () => {
      gpu.startProfile();
      hardware(gpu, () => convOnce(gpu, CONVS[0], 1)).forEach((t) => t.dispose());
      const labels = new Set((await gpu.stopProfile()).map((k) => k.label));
      // CONVS[0] has a bias, which the forward pass adds in its own launch.
      for (const pass of ["forward_bias", "grad_input", "grad_weight"]) {
        assert.ok(labels.has(`conv.gemm_${pass}_64x64x16`), `conv.gemm_${pass} in ${[...labels]}`);
      }
      assert.ok(!labels.has("map.conv2d_bias"));
    });
    await t.step("no more buffers left behind than on the default paths", async () => {
      // The inputs and the gradients' seeds stay alive in both runs: compare what is left.
      const leftBy = async (run: <T>(f: () => T) => T) => {
        const before = gpu.liveBuffers();
        const outputs = run(() => [
          ...convOnce(gpu, CONVS[3], 5),
          ...convOnce(gpu, CONVS[1], 6),
          ...PRODUCTS.slice(4, 5).flatMap((p) => {
            const a = tensor(randomArray(300 * 100, 1), p.a, { backend: gpu, requiresGrad: true });
            const b = tensor(randomArray(300 * 90, 2), p.b, { backend: gpu, requiresGrad: true });
            const c = matmul(a, b, p.o);
            backward(c, tensor(new Float32Array(c.size).fill(1), c.shape, { backend: gpu }));
            return [c, a.grad!, b.grad!];
          }),
        ]);
        for (const t of outputs) await t.data();
        for (const t of outputs) t.dispose();
        return gpu.liveBuffers() - before;
      };
      const portable = await leftBy((f) => withProfile(gpu, { uniformWindows: false }, f));
      assert.equal(await leftBy((f) => hardware(gpu, f)), portable);
    });
  },
);
