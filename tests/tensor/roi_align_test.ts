import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { roiAlign, type RoiAlignOptions } from "../../tensor/ops/roi_align.ts";
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
  testBackends,
} from "./helpers.ts";

interface FixtureTensor {
  shape: number[];
  dtype: string;
  data: (number | null)[];
}

interface Case {
  name: string;
  params: {
    output_size: [number, number];
    spatial_scale: number;
    sampling_ratio: number;
    aligned: boolean;
  };
  input: FixtureTensor;
  boxes: FixtureTensor;
  output: FixtureTensor;
  grad_weight: FixtureTensor;
  grad_input: FixtureTensor;
}

const FIXTURE: { cases: Case[] } = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/tensor/roi_align.json", import.meta.url)),
);

/** float32 fixture data, rounded to float32 (NaN for `null`). */
function f32(t: FixtureTensor): Float32Array {
  return Float32Array.from(t.data, (v) => v ?? NaN);
}

function optionsOf(c: Case): RoiAlignOptions {
  return {
    outputSize: c.params.output_size,
    spatialScale: c.params.spatial_scale,
    samplingRatio: c.params.sampling_ratio,
    aligned: c.params.aligned,
  };
}

/** Forward and input gradient of `sum(roiAlign(x, boxes) * W)` for one fixture case on `backend`. */
async function run(c: Case, backend: Backend): Promise<[Float32Array, Float32Array]> {
  const x = tensor(f32(c.input), c.input.shape, { backend, requiresGrad: true });
  const boxes = tensor(f32(c.boxes), c.boxes.shape, { backend });
  const weight = tensor(f32(c.grad_weight), c.grad_weight.shape, { backend });
  const out = roiAlign(x, boxes, optionsOf(c));
  assert.deepEqual(out.shape, c.output.shape);
  backward(out, weight);
  const result: [Float32Array, Float32Array] = [
    await out.data() as Float32Array,
    await x.grad!.data() as Float32Array,
  ];
  for (const t of [x, boxes, weight, out, x.grad!]) t.dispose();
  return result;
}

async function checkFixture(backend: Backend, t: Deno.TestContext): Promise<void> {
  for (const c of FIXTURE.cases) {
    await t.step(c.name, async () => {
      // Unwritten outputs of these sizes would start as NaN and fail.
      poisonPool(backend, [c.output.data.length, c.input.data.length]);
      const [out, grad] = await run(c, backend);
      assertClose(out, f32(c.output), 1e-5, 1e-5, `${c.name} output`);
      assertClose(grad, c.grad_input.data as number[], 1e-4, 1e-4, `${c.name} gradient`);
    });
  }
}

Deno.test("roiAlign() matches torchvision on the CPU backend", (t) => checkFixture(CPU, t));

Deno.test(
  "roiAlign() matches torchvision on the native backend",
  { ignore: !NATIVE },
  (t) => checkFixture(nativeBackend(), t),
);

Deno.test(
  "roiAlign() matches torchvision on WebGPU",
  { ignore: !GPU },
  async (t) => checkFixture(await gpuBackend(), t),
);

Deno.test("roiAlign() float64 gradient meets finite differences", async (t) => {
  const boxes = [0, 0.75, 0.5, 4.25, 3.5, 1, 1.5, 0.25, 5.5, 2.75, 0, -1.5, 2, 3, 6];
  const input = Array.from({ length: 2 * 2 * 5 * 6 }, (_, i) => Math.sin(i * 0.7));
  for (
    const options of [
      { outputSize: [2, 3], samplingRatio: 2, aligned: true },
      { outputSize: 3, samplingRatio: 0, aligned: false, spatialScale: 0.75 },
    ] as RoiAlignOptions[]
  ) {
    await t.step(JSON.stringify(options), async () => {
      const rois = tensor(Float64Array.from(boxes), [3, 5], { backend: CPU });
      await gradcheck(
        (x) => roiAlign(x, rois, options),
        [{ data: input, shape: [2, 2, 5, 6] }],
      );
      rois.dispose();
    });
  }
});

Deno.test("roiAlign() rejects bad inputs", () => {
  const x = tensor(new Float32Array(2 * 1 * 4 * 4), [2, 1, 4, 4]);
  const box = (row: number[]) => tensor(row, [1, 5]);
  const o = { outputSize: 2 };
  assert.throws(() => roiAlign(x, tensor([0, 0, 0, 1], [1, 4]), o), TypeError);
  assert.throws(() => roiAlign(x, tensor(new Float32Array(5), [5]), o), TypeError);
  assert.throws(() => roiAlign(tensor([1, 2], [1, 2]), box([0, 0, 0, 1, 1]), o), TypeError);
  assert.throws(() => roiAlign(x, box([2, 0, 0, 1, 1]), o), /box 0 has batch index 2/);
  assert.throws(() => roiAlign(x, box([-1, 0, 0, 1, 1]), o), RangeError);
  assert.throws(() => roiAlign(x, box([0.5, 0, 0, 1, 1]), o), RangeError);
  assert.throws(() => roiAlign(x, box([0, 0, NaN, 1, 1]), o), /non-finite/);
  assert.throws(() => roiAlign(x, box([0, 0, 0, Infinity, 1]), o), /non-finite/);
  for (const outputSize of [0, 1.5, [2], [2, 0], [2, 2, 2]]) {
    assert.throws(
      () => roiAlign(x, box([0, 0, 0, 1, 1]), { outputSize } as unknown as RoiAlignOptions),
      /outputSize/,
    );
  }
  assert.throws(() => roiAlign(x, box([0, 0, 0, 1, 1]), { ...o, spatialScale: 0 }), RangeError);
  assert.throws(() => roiAlign(x, box([0, 0, 0, 1, 1]), { ...o, samplingRatio: 1.5 }), RangeError);
});

Deno.test("roiAlign() with no boxes gives an empty output", async () => {
  const x = tensor(new Float32Array(16).fill(1), [1, 1, 4, 4]);
  const out = roiAlign(x, tensor(new Float32Array(0), [0, 5]), { outputSize: 2 });
  assert.deepEqual(out.shape, [0, 1, 2, 2]);
  assert.equal((await out.data()).length, 0);
});

/**
 * Seeded boxes `[k, 5]` over a `size`-pixel image with batch items `n`: ordinary, sub-pixel,
 * huge, inverted and partly or wholly outside boxes.
 */
function randomRois(k: number, n: number, size: number, seed: number): Float32Array {
  const r = randomArray(6 * k, seed, 0, 1);
  const out = new Float32Array(5 * k);
  for (let i = 0; i < k; i++) {
    const kind = i % 5;
    const x = (r[6 * i] * 1.4 - 0.2) * size, y = (r[6 * i + 1] * 1.4 - 0.2) * size;
    const spread = [size / 2, 0.3, 2 * size, -size / 4, size / 8][kind];
    const w = r[6 * i + 2] * spread, h = r[6 * i + 3] * spread;
    out.set([Math.floor(r[6 * i + 4] * n), x, y, x + w, y + h].map(Math.fround), 5 * i);
  }
  return out;
}

Deno.test(
  "roiAlign() on WebGPU meets its CPU twin on random boxes",
  { ignore: !GPU },
  async (t) => {
    const shape = [2, 3, 19, 23];
    const x = randomArray(2 * 3 * 19 * 23, 5);
    const g = randomArray(40 * 3 * 7 * 7, 6);
    for (
      const options of [
        { outputSize: 7, spatialScale: 0.25, samplingRatio: 0, aligned: true },
        { outputSize: [7, 5], spatialScale: 0.125, samplingRatio: 2, aligned: false },
        { outputSize: 7, spatialScale: 0.25, samplingRatio: 0, aligned: false },
        { outputSize: [3, 7], spatialScale: 0.25, samplingRatio: 3, aligned: true },
      ] as RoiAlignOptions[]
    ) {
      await t.step(JSON.stringify(options), async () => {
        const rois = randomRois(40, 2, 100, 9);
        await compareBackends(
          (backend) => {
            const xt = tensor(x, shape, { backend, requiresGrad: true });
            const out = roiAlign(xt, tensor(rois, [40, 5], { backend }), options);
            backward(out, tensor(g.subarray(0, out.size), out.shape, { backend }));
            return [out, xt.grad!];
          },
          1e-5,
          1e-4,
          await gpuBackend(),
        );
      });
    }
  },
);

Deno.test("roiAlign() releases what it allocates", async () => {
  for (const backend of await testBackends()) {
    const x = tensor(randomArray(2 * 2 * 8 * 8, 3), [2, 2, 8, 8], { backend, requiresGrad: true });
    const rois = tensor(randomRois(6, 2, 8, 4), [6, 5], { backend });
    const before = backend.liveBuffers();
    const out = roiAlign(x, rois, { outputSize: 3, samplingRatio: 2, aligned: true });
    const ones = tensor(new Float32Array(out.size).fill(1), out.shape, { backend });
    backward(out, ones);
    await x.grad!.data();
    for (const t of [out, ones, x.grad!]) t.dispose();
    x.grad = null;
    assert.equal(backend.liveBuffers(), before, backend.name);
    x.dispose();
    rois.dispose();
  }
});

Deno.test(
  "roiAlign() on WebGPU pools zeros for a box of a missing batch item",
  { ignore: !GPU },
  async () => {
    const backend = await gpuBackend();
    const x = tensor(new Float32Array(16).fill(1), [1, 1, 4, 4], { backend, requiresGrad: true });
    const rois = tensor([3, 0, 0, 2, 2, 0, 0, 0, 2, 2], [2, 5], { backend });
    const out = roiAlign(x, rois, { outputSize: 1, aligned: true });
    backward(out, tensor([1, 1], [2, 1, 1, 1], { backend }));
    assert.deepEqual(Array.from(await out.data()), [0, 1]);
    assertClose(await x.grad!.data(), [0.25, 0.25, 0, 0, 0.25, 0.25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  },
);
