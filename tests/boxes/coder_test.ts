import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { tensor } from "../../tensor/tensor.ts";
import { DEFAULT_MAX_RATIO, DeltaXywhCoder } from "../../boxes/coder.ts";
import {
  assertClose,
  boxRows,
  compareBackends,
  CPU,
  f64,
  GPU,
  gradcheck,
  poisonPool,
  randomArray,
  randomBoxes,
} from "../tensor/helpers.ts";

/** mmdetection's bbox2delta / delta2bbox in plain float64 JS. */
function encodeRef(p: number[], g: number[], means: number[], stds: number[]): number[] {
  const [px, py, pw, ph] = [(p[0] + p[2]) / 2, (p[1] + p[3]) / 2, p[2] - p[0], p[3] - p[1]];
  const [gx, gy, gw, gh] = [(g[0] + g[2]) / 2, (g[1] + g[3]) / 2, g[2] - g[0], g[3] - g[1]];
  const d = [(gx - px) / pw, (gy - py) / ph, Math.log(gw / pw), Math.log(gh / ph)];
  return d.map((v, k) => (v - means[k]) / stds[k]);
}

function decodeRef(
  p: number[],
  delta: number[],
  means: number[],
  stds: number[],
  maxShape?: [number, number],
): number[] {
  const d = delta.map((v, k) => v * stds[k] + means[k]);
  const clampR = (v: number) => Math.min(Math.max(v, -DEFAULT_MAX_RATIO), DEFAULT_MAX_RATIO);
  const [px, py, pw, ph] = [(p[0] + p[2]) / 2, (p[1] + p[3]) / 2, p[2] - p[0], p[3] - p[1]];
  const w = pw * Math.exp(clampR(d[2])), h = ph * Math.exp(clampR(d[3]));
  const cx = px + pw * d[0], cy = py + ph * d[1];
  const box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2];
  if (!maxShape) return box;
  const hi = [maxShape[1], maxShape[0], maxShape[1], maxShape[0]];
  return box.map((v, k) => Math.min(Math.max(v, 0), hi[k]));
}

const MEANS = [0, 0, 0, 0], STDS = [0.1, 0.1, 0.2, 0.2];

Deno.test("DeltaXywhCoder encode/decode match mmdetection's formulas", async (t) => {
  const coder = new DeltaXywhCoder();
  const anchors = randomBoxes(9, 1, 40), gts = randomBoxes(9, 2, 40);
  await t.step("encode", async () => {
    const got = await coder.encode(f64(anchors, [9, 4]), f64(gts, [9, 4])).data();
    const expected = boxRows(anchors).flatMap((a, i) => encodeRef(a, boxRows(gts)[i], MEANS, STDS));
    assertClose(got, expected, 1e-12, 1e-10);
  });
  await t.step("decode, with and without clipping, clamped log-sizes", async () => {
    const deltas = Array.from(randomArray(36, 3, -2, 2));
    deltas[2] = 30; // exp would explode without the clamp
    deltas[7] = -30;
    for (const maxShape of [undefined, [30, 25] as [number, number]]) {
      const got = await coder.decode(f64(anchors, [9, 4]), f64(deltas, [9, 4]), maxShape).data();
      const expected = boxRows(anchors).flatMap((a, i) =>
        decodeRef(a, boxRows(deltas)[i], MEANS, STDS, maxShape)
      );
      assertClose(got, expected, 1e-12, 1e-10);
    }
  });
  await t.step("decodeHost matches the reference on typed arrays", () => {
    const deltas = Array.from(randomArray(36, 4, -2, 2));
    deltas[3] = 30;
    for (const maxShape of [undefined, [30, 25] as [number, number]]) {
      const got = coder.decodeHost(Float64Array.from(anchors), Float64Array.from(deltas), maxShape);
      assert.ok(got instanceof Float32Array);
      const expected = boxRows(anchors).flatMap((a, i) =>
        decodeRef(a, boxRows(deltas)[i], MEANS, STDS, maxShape)
      );
      assertClose(got, expected, 1e-5, 1e-5);
    }
    assert.throws(() => coder.decodeHost([0, 0, 1, 1], [0, 0, 0]), RangeError);
  });
  await t.step("custom means and stds", async () => {
    const means = [0.1, -0.2, 0.05, 0], stds = [1, 0.5, 2, 0.3];
    const c2 = new DeltaXywhCoder({
      means: means as [number, number, number, number],
      stds: stds as [number, number, number, number],
    });
    const got = await c2.encode(f64(anchors, [9, 4]), f64(gts, [9, 4])).data();
    assertClose(
      got,
      boxRows(anchors).flatMap((a, i) => encodeRef(a, boxRows(gts)[i], means, stds)),
      1e-12,
      1e-10,
    );
  });
});

Deno.test("DeltaXywhCoder round trip: decode(encode(gt)) == gt", async (t) => {
  const coder = new DeltaXywhCoder();
  await t.step("float64", async () => {
    const anchors = randomBoxes(11, 4, 40), gts = randomBoxes(11, 5, 40);
    const back = coder.decode(
      f64(anchors, [11, 4]),
      coder.encode(f64(anchors, [11, 4]), f64(gts, [11, 4])),
    );
    assertClose(await back.data(), gts, 1e-9, 1e-9);
  });
  await t.step("anchors repeated over a batch [2, 11, 4]", async () => {
    const anchors = randomBoxes(11, 6, 40), gts = randomBoxes(22, 7, 40);
    const deltas = coder.encode(f64(anchors, [11, 4]), f64(gts, [2, 11, 4]));
    assert.deepEqual(deltas.shape, [2, 11, 4]);
    const second = boxRows(gts).slice(11);
    const expected = boxRows(anchors).flatMap((a, i) => encodeRef(a, second[i], MEANS, STDS));
    assertClose((await deltas.data()).slice(44), expected, 1e-12, 1e-10);
    assertClose(await coder.decode(f64(anchors, [11, 4]), deltas).data(), gts, 1e-9, 1e-9);
  });
  await t.step("empty", () => {
    assert.deepEqual(coder.decode(f64([], [0, 4]), f64([], [0, 4])).shape, [0, 4]);
  });
});

Deno.test("DeltaXywhCoder.decode gradient (float64 finite differences)", async (t) => {
  const anchors = randomBoxes(6, 8, 40);
  const deltas = Array.from(randomArray(24, 9, -1.5, 1.5));
  deltas[3] = 25; // clamped: zero gradient on this entry
  const coder = new DeltaXywhCoder();
  await t.step("no clipping", async () => {
    await gradcheck((d) => coder.decode(f64(anchors, [6, 4]), d), [{
      data: deltas,
      shape: [6, 4],
    }]);
  });
  await t.step("clipping to the image (some coordinates clipped)", async () => {
    await gradcheck((d) => coder.decode(f64(anchors, [6, 4]), d, [20, 18]), [{
      data: deltas,
      shape: [6, 4],
    }]);
  });
  await t.step("clamped entry gets zero gradient", async () => {
    const d = tensor(Float64Array.from(deltas), [6, 4], { backend: CPU, requiresGrad: true });
    backward(sum(coder.decode(f64(anchors, [6, 4]), d)));
    assert.equal((await d.grad!.data())[3], 0);
  });
});

Deno.test("DeltaXywhCoder rejects bad input", () => {
  const coder = new DeltaXywhCoder();
  const ok = f64([0, 0, 1, 1], [1, 4]);
  assert.throws(
    () => coder.encode(ok, f64([0, 0, 1], [1, 3])),
    /^TypeError: DeltaXywhCoder.encode/,
  );
  assert.throws(
    () =>
      coder.decode(
        f64([0, 0, 1, 1, 0, 0, 2, 2], [2, 4]),
        f64([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [3, 4]),
      ),
    /^TypeError: DeltaXywhCoder.decode/,
  );
  assert.throws(
    () => coder.decode(ok, tensor(Int32Array.from([0, 0, 0, 0]), [1, 4], { backend: CPU })),
    /^TypeError: DeltaXywhCoder.decode/,
  );
  assert.throws(
    () => coder.decode(ok, tensor([0, 0, 0, 0], [1, 4], { backend: CPU })),
    /^TypeError: DeltaXywhCoder.decode/,
  );
  assert.throws(() => new DeltaXywhCoder({ stds: [0.1, 0, 0.2, 0.2] }), RangeError);
});

Deno.test("DeltaXywhCoder agrees on CPU and WebGPU", { ignore: !GPU }, async () => {
  const n = 1001;
  const anchors = randomBoxes(n, 10, 200), gts = randomBoxes(n, 11, 200);
  const deltas = randomArray(4 * n, 12, -3, 3);
  const coder = new DeltaXywhCoder();
  await compareBackends(
    (backend: Backend) => {
      poisonPool(backend, [4 * n]);
      const a = tensor(anchors, [n, 4], { backend });
      const d = tensor(deltas, [n, 4], { backend, requiresGrad: true });
      const enc = coder.encode(a, tensor(gts, [n, 4], { backend }));
      const dec = coder.decode(a, d, [300, 250]);
      backward(sum(dec));
      return [enc, dec, d.grad!, coder.decode(a, enc)];
    },
    1e-3,
    1e-4,
  );
});
