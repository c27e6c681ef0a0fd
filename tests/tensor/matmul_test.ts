import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { matmul, type MatmulOptions } from "../../tensor/ops/matmul.ts";
import { packedShape, packMatmulOperand } from "../../tensor/ops/software/matmul_uniform.ts";
import { tensor } from "../../tensor/tensor.ts";
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

/** Plain-JS product of row-major `[m, k]` and `[k, n]`. */
function naive(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number) {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) s += a[i * k + q] * b[q * n + j];
      out[i * n + j] = s;
    }
  }
  return out;
}

function transpose2d(x: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c];
  return out;
}

Deno.test("matmul() CPU twin matches a naive product", async (t) => {
  await t.step("2-D, odd sizes", async () => {
    const a = randomArray(5 * 7, 1), b = randomArray(7 * 3, 2);
    const c = matmul(tensor(a, [5, 7], { backend: CPU }), tensor(b, [7, 3], { backend: CPU }));
    assert.deepEqual(c.shape, [5, 3]);
    assertClose(await c.data(), naive(a, b, 5, 7, 3), 1e-5);
  });
  await t.step("transposed operands read in place", async () => {
    const a = randomArray(4 * 6, 3), b = randomArray(6 * 5, 4);
    const at = tensor(transpose2d(a, 4, 6), [6, 4], { backend: CPU });
    const bt = tensor(transpose2d(b, 6, 5), [5, 6], { backend: CPU });
    const expected = naive(a, b, 4, 6, 5);
    const opts: [MatmulOptions, typeof at, typeof bt][] = [
      [{ transposeA: true }, at, tensor(b, [6, 5], { backend: CPU })],
      [{ transposeB: true }, tensor(a, [4, 6], { backend: CPU }), bt],
      [{ transposeA: true, transposeB: true }, at, bt],
    ];
    for (const [o, x, y] of opts) assertClose(await matmul(x, y, o).data(), expected, 1e-5);
  });
  await t.step("batch axes broadcast", async () => {
    const a = randomArray(2 * 1 * 3 * 4, 5), b = randomArray(3 * 4 * 2, 6);
    const c = matmul(
      tensor(a, [2, 1, 3, 4], { backend: CPU }),
      tensor(b, [3, 4, 2], { backend: CPU }),
    );
    assert.deepEqual(c.shape, [2, 3, 3, 2]);
    const data = await c.data();
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 3; j++) {
        const expected = naive(
          a.subarray(i * 12, i * 12 + 12),
          b.subarray(j * 8, j * 8 + 8),
          3,
          4,
          2,
        );
        assertClose(data.subarray((i * 3 + j) * 6, (i * 3 + j) * 6 + 6), expected, 1e-5);
      }
    }
  });
  await t.step("inner axis split into chunks", async () => {
    const a = randomArray(3 * 50, 7), b = randomArray(50 * 2, 8);
    const c = matmul(tensor(a, [3, 50], { backend: CPU }), tensor(b, [50, 2], { backend: CPU }), {
      kChunk: 7,
    });
    assertClose(await c.data(), naive(a, b, 3, 50, 2), 1e-5);
  });
  await t.step("empty inner axis gives zeros, empty outer axis an empty result", async () => {
    const c = matmul(tensor([], [2, 0], { backend: CPU }), tensor([], [0, 3], { backend: CPU }));
    assert.deepEqual([...await c.data()], [0, 0, 0, 0, 0, 0]);
    const e = matmul(
      tensor([], [0, 3], { backend: CPU }),
      tensor(randomArray(12, 1), [3, 4], { backend: CPU }),
    );
    assert.deepEqual(e.shape, [0, 4]);
  });
});

Deno.test("matmul() packed uniform-window path (CPU twins) matches a naive product", async (t) => {
  const cases: [string, number, number, number, MatmulOptions][] = [
    ["odd 5x7 * 7x3", 5, 7, 3, {}],
    ["70x33 * 33x130 (panel tails)", 70, 33, 130, {}],
    ["3x1100 * 1100x2 (inner axis over 4 windows)", 3, 1100, 2, {}],
    ["40x600 * 600x50 (operands read through uniform windows)", 40, 600, 50, {}],
  ];
  for (const [name, m, k, n] of cases) {
    await t.step(name, async () => {
      const a = randomArray(m * k, m), b = randomArray(k * n, n);
      const c = matmul(tensor(a, [m, k], { backend: CPU }), tensor(b, [k, n], { backend: CPU }), {
        uniformPath: true,
      });
      assertClose(await c.data(), naive(a, b, m, k, n), 1e-4, 1e-4);
    });
  }
  await t.step("transposed and batched", async () => {
    const a = randomArray(2 * 6 * 4, 3), b = randomArray(5 * 6, 4);
    const at = tensor(a, [2, 6, 4], { backend: CPU }), bt = tensor(b, [5, 6], { backend: CPU });
    const got = await matmul(at, bt, { transposeA: true, transposeB: true, uniformPath: true })
      .data();
    const want = await matmul(at, bt, { transposeA: true, transposeB: true, uniformPath: false })
      .data();
    assertClose(got, want, 1e-5, 1e-5);
  });
});

Deno.test("matmul() rejects bad operands with a TypeError naming the shapes", () => {
  const a = tensor(randomArray(6, 1), [2, 3], { backend: CPU });
  const b = tensor(randomArray(20, 2), [4, 5], { backend: CPU });
  assert.throws(() => matmul(a, b), {
    name: "TypeError",
    message: /^matmul: inner dimensions of \[2, 3\] and \[4, 5\] differ/,
  });
  assert.throws(() => matmul(tensor([1, 2, 3], [3], { backend: CPU }), a), {
    name: "TypeError",
    message: /matmul: .*\[3\]/,
  });
  const i = tensor(new Int32Array(6), [3, 2], { backend: CPU });
  assert.throws(() => matmul(a, i), { name: "TypeError", message: /matmul: .*i32 \[3, 2\]/ });
  const c = tensor(randomArray(2 * 3 * 4, 3), [2, 3, 4], { backend: CPU });
  const d = tensor(randomArray(3 * 4 * 2, 4), [3, 4, 2], { backend: CPU });
  assert.throws(() => matmul(c, d), { name: "TypeError", message: /batch dimensions/ });
});

Deno.test("matmul() gradients match finite differences", async (t) => {
  const cases: [string, number[], number[], MatmulOptions][] = [
    ["2-D", [3, 4], [4, 2], {}],
    ["transposeA", [4, 3], [4, 2], { transposeA: true }],
    ["transposeB", [3, 4], [2, 4], { transposeB: true }],
    ["both transposed", [4, 3], [2, 4], { transposeA: true, transposeB: true }],
    ["broadcast batch", [2, 1, 3, 4], [3, 4, 2], {}],
    ["broadcast transposed", [3, 4, 2], [3, 4], { transposeA: true, transposeB: true }],
  ];
  for (const [name, sa, sb, o] of cases) {
    await t.step(name, async () => {
      const size = (s: number[]) => s.reduce((x, y) => x * y, 1);
      await gradcheck((a, b) => matmul(a, b, o), [
        { data: randomArray(size(sa), 11), shape: sa },
        { data: randomArray(size(sb), 12), shape: sb },
      ]);
    });
  }
});

function randomPair(backend: Backend, sa: number[], sb: number[], seed: number) {
  const size = (s: number[]) => s.reduce((x, y) => x * y, 1);
  return [
    tensor(randomArray(size(sa), seed), sa, { backend }),
    tensor(randomArray(size(sb), seed + 1), sb, { backend }),
  ];
}

Deno.test("matmul() kernel matches its CPU twin", { ignore: !GPU }, async (t) => {
  const gpu = GPU ? await gpuBackend() : CPU;
  const cases: [string, number[], number[], MatmulOptions][] = [
    ["odd 5x7 * 7x3", [5, 7], [7, 3], {}],
    ["70x33 * 33x65 (edges of 16x16 blocks)", [70, 33], [33, 65], {}],
    ["129x17 * 17x64 transposeA", [17, 129], [17, 64], { transposeA: true }],
    ["65x40 * 40x67 transposeB", [65, 40], [67, 40], { transposeB: true }],
    ["batched broadcast", [2, 1, 9, 6], [3, 6, 11], {}],
    ["4x4 block forced", [13, 9], [9, 10], { tile: { tm: 4, tn: 4, workgroupSize: 8 } }],
    ["chunked inner axis", [6, 100], [100, 5], { kChunk: 30 }],
  ];
  let seed = 20;
  for (const [name, sa, sb, o] of cases) {
    await t.step(name, async () => {
      const s = seed += 2;
      const outSize = sa.at(-2)! * sb.at(-1)! * 6;
      poisonPool(gpu, [outSize, sa.at(-1)! * sb.at(-1)!]);
      await compareBackends(
        (backend) => {
          const [a, b] = randomPair(backend, sa, sb, s);
          return matmul(a, b, o);
        },
        1e-4,
        1e-4,
      );
    });
  }
  const packedCases: [string, number[], number[], MatmulOptions][] = [
    ["packed: odd 5x7 * 7x3", [5, 7], [7, 3], {}],
    ["packed: 70x33 * 33x130 (panel tails)", [70, 33], [33, 130], {}],
    ["packed: 129x17 * 17x64 transposeA", [17, 129], [17, 64], { transposeA: true }],
    ["packed: 65x40 * 40x67 transposeB", [65, 40], [67, 40], { transposeB: true }],
    ["packed: batched broadcast", [2, 1, 9, 6], [3, 6, 11], {}],
    ["packed: inner axis 1100 (two dispatch chunks)", [67, 1100], [1100, 70], {}],
    ["packed: 256^3", [256, 256], [256, 256], {}],
  ];
  for (const [name, sa, sb, o] of packedCases) {
    await t.step(name, async () => {
      const s = seed += 2;
      poisonPool(gpu, [sa.at(-2)! * sb.at(-1)! * 6, sa.at(-2)! * sb.at(-1)!]);
      await compareBackends(
        (backend) => {
          const [a, b] = randomPair(backend, sa, sb, s);
          return matmul(a, b, { ...o, uniformPath: backend !== CPU });
        },
        1e-4,
        1e-4,
      );
    });
  }
  await t.step("packed: 70,000 rows (many windows, storage tail)", async () => {
    await compareBackends(
      (backend) => {
        const [a, b] = randomPair(backend, [70000, 16], [16, 16], 42);
        return matmul(a, b, { uniformPath: backend !== CPU });
      },
      1e-4,
      1e-4,
    );
  });
  await t.step("generic strided pack over 65,535 workgroups, split inner axis", async () => {
    // Element (r, q) at 5 + 2 r + (q / 1000) * 3000 + (q % 1000) * 2200 * 2: neither axis contiguous.
    const rows = 1100, k = 4000, { groups, kp } = packedShape(rows, k);
    const data = randomArray(4 * 3000 + 1000 * 4400 + 16, 43);
    poisonPool(gpu, [packedShape(rows, k).size]);
    const run = async (backend: Backend) => {
      const src = tensor(data, [data.length], { backend });
      const packed = packMatmulOperand(src, rows, k, 2, 4400, 5, 1000, 3000);
      const out = (await packed.data()).subarray(0, groups * kp * 64);
      src.dispose();
      packed.dispose();
      return out;
    };
    const want = await run(CPU);
    assert.equal(want[64 * 3 + 2], data[5 + 2 * 2 + 3 * 4400]);
    assertClose(await run(gpu), want, 0, 0);
  });
  await t.step("inner axis of 70,000 (past llvmpipe's loop limit)", async () => {
    await compareBackends(
      (backend) => {
        const [a, b] = randomPair(backend, [2, 70000], [70000, 3], 40);
        return matmul(a, b);
      },
      1e-3,
      1e-3,
    );
  });
  await t.step("more than 65,535 workgroups", async () => {
    const n = 600000;
    poisonPool(gpu, [n]);
    await compareBackends((backend) => {
      const [a, b] = randomPair(backend, [n, 1, 1], [n, 1, 1], 41);
      return matmul(a, b);
    });
  });
  await t.step("empty inner axis writes zeros", async () => {
    poisonPool(gpu, [6]);
    const c = matmul(tensor([], [2, 0], { backend: gpu }), tensor([], [0, 3], { backend: gpu }));
    assert.deepEqual([...await c.data()], [0, 0, 0, 0, 0, 0]);
    c.dispose();
  });
  await t.step("gradients (packed path from 64x64 up)", async () => {
    await compareBackends(
      (backend) => {
        const [a, b] = randomPair(backend, [2, 70, 150], [150, 100], 52);
        a.requiresGrad = true;
        b.requiresGrad = true;
        const c = matmul(a, b, {});
        backward(c, tensor(randomArray(c.size, 53), c.shape, { backend }));
        return [c, a.grad!, b.grad!];
      },
      1e-4,
      1e-4,
    );
  });
  await t.step("gradients", async () => {
    await compareBackends((backend) => {
      const [a, b] = randomPair(backend, [3, 19, 7], [7, 21], 50);
      a.requiresGrad = true;
      b.requiresGrad = true;
      const c = matmul(a, b, {});
      backward(c, tensor(randomArray(c.size, 51), c.shape, { backend }));
      return [a.grad!, b.grad!];
    });
  });
});

Deno.test(
  "matmul() on the native backend (OpenBLAS) matches the CPU",
  { ignore: !NATIVE },
  async (t) => {
    const native = NATIVE ? nativeBackend() : CPU;
    const cases: [string, number[], number[], MatmulOptions][] = [
      ["odd 5x7 * 7x3", [5, 7], [7, 3], {}],
      ["1x9 * 9x4 (one row)", [1, 9], [9, 4], {}],
      ["6x1 * 1x5 (inner axis 1)", [6, 1], [1, 5], {}],
      ["7x9 * 9x1 (one column)", [7, 9], [9, 1], {}],
      ["129x17 * 17x64 transposeA", [17, 129], [17, 64], { transposeA: true }],
      ["65x40 * 40x67 transposeB", [65, 40], [67, 40], { transposeB: true }],
      ["both transposed, one row", [9, 1], [4, 9], { transposeA: true, transposeB: true }],
      ["batched broadcast", [2, 1, 9, 6], [3, 6, 11], {}],
      ["batched, A broadcast, transposeB", [1, 8, 5], [4, 3, 5], { transposeB: true }],
      ["chunked inner axis", [6, 100], [100, 5], { kChunk: 30 }],
    ];
    let seed = 300;
    for (const [name, sa, sb, o] of cases) {
      await t.step(name, async () => {
        const s = seed += 2;
        poisonPool(native, [sa.at(-2)! * sb.at(-1)! * 12]);
        await compareBackends(
          (backend) => {
            const [a, b] = randomPair(backend, sa, sb, s);
            a.requiresGrad = true;
            b.requiresGrad = true;
            const c = matmul(a, b, o);
            backward(c, tensor(randomArray(c.size, s + 1), c.shape, { backend }));
            return [c, a.grad!, b.grad!];
          },
          1e-5,
          1e-5,
          native,
        );
      });
    }
    await t.step("empty inner axis writes zeros over a poisoned buffer", async () => {
      poisonPool(native, [6]);
      const c = matmul(
        tensor([], [2, 0], { backend: native }),
        tensor([], [0, 3], { backend: native }),
      );
      assert.deepEqual([...await c.data()], [0, 0, 0, 0, 0, 0]);
      c.dispose();
    });
    await t.step("threaded products (over 4M multiply-adds) repeat bit for bit", async () => {
      const [a, b] = randomPair(native, [300, 200], [200, 260], 77);
      const first = await matmul(a, b).data();
      for (let r = 0; r < 3; r++) assert.deepEqual(await matmul(a, b).data(), first);
      const [ca, cb] = randomPair(CPU, [300, 200], [200, 260], 77);
      const want = await matmul(ca, cb).data();
      assertClose(first, want, 1e-4, 1e-4);
    });
    await t.step("f64 operands keep the CPU twin", async () => {
      const a = tensor(new Float64Array([1, 2, 3, 4]), [2, 2], { backend: native });
      const c = matmul(a, a);
      assert.equal(c.dtype, "f64");
      assert.deepEqual([...await c.data()], [7, 10, 15, 22]);
    });
  },
);
