import assert from "node:assert/strict";
import type { Backend } from "../../tensor/backend.ts";
import { tensor } from "../../tensor/tensor.ts";
import {
  batchedNms,
  batchedNmsHost,
  NMS_LOOP_BUDGET,
  type NmsOptions,
  suppressRowsPerDispatch,
} from "../../boxes/nms.ts";
import { CPU, GPU, gpuBackend, poisonPool, randomArray } from "../tensor/helpers.ts";

interface Case {
  boxes: Float32Array;
  scores: Float32Array;
  classes: Int32Array;
}

/**
 * Boxes on a quarter-pixel grid (every area and intersection is exact in f32)
 * around a few cluster centres, so that many pairs overlap and some IoUs sit
 * exactly on simple thresholds; scores take 8 values (many ties).
 */
function randomCase(n: number, seed: number, classes = 3, clusters = 6, span = 64): Case {
  const r = randomArray(8 * n + 2 * clusters, seed, 0, 1);
  const q = (v: number) => Math.floor(v * 4) / 4;
  const centres = Array.from({ length: clusters }, (_, k) => [
    q(r[8 * n + 2 * k] * span),
    q(r[8 * n + 2 * k + 1] * span),
  ]);
  const boxes = new Float32Array(4 * n), scores = new Float32Array(n), cls = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const [cx, cy] = centres[Math.floor(r[8 * i] * clusters)];
    const x = cx + q(r[8 * i + 1] * 8), y = cy + q(r[8 * i + 2] * 8);
    boxes.set([x, y, x + 0.25 + q(r[8 * i + 3] * 16), y + 0.25 + q(r[8 * i + 4] * 16)], 4 * i);
    scores[i] = Math.floor(r[8 * i + 5] * 8) / 8;
    cls[i] = Math.floor(r[8 * i + 6] * classes);
  }
  return { boxes, scores, classes: cls };
}

/** Runs batchedNms on `backend` and reads `keep` and `count` back. */
async function runNms(
  backend: Backend,
  c: Case,
  options: NmsOptions,
): Promise<{ keep: Int32Array; count: number }> {
  const n = c.scores.length;
  const boxes = tensor(c.boxes, [n, 4], { backend });
  const scores = tensor(c.scores, [n], { backend });
  const classes = tensor(c.classes, [n], { backend });
  const out = batchedNms(boxes, scores, classes, options);
  const keep = await out.keep.data() as Int32Array;
  const count = (await out.count.data())[0];
  for (const t of [boxes, scores, classes, out.keep, out.count]) t.dispose();
  return { keep, count };
}

/** The host reference padded with -1 to `length`. */
function expected(c: Case, options: NmsOptions): { keep: Int32Array; count: number } {
  const kept = batchedNmsHost(c.boxes, c.scores, c.classes, options);
  const keep = new Int32Array(options.maxOutput ?? c.scores.length).fill(-1);
  keep.set(kept);
  return { keep, count: kept.length };
}

async function checkAgainstHost(backend: Backend, c: Case, options: NmsOptions): Promise<void> {
  const want = expected(c, options);
  poisonPool(backend, [want.keep.length, 1]);
  const got = await runNms(backend, c, options);
  assert.equal(got.count, want.count, "count");
  assert.deepEqual(Array.from(got.keep), Array.from(want.keep));
}

/** Plain float64 greedy NMS written independently (no f32 rounding; fine on grid boxes). */
function naiveNms(c: Case, thr: number): number[] {
  const n = c.scores.length;
  const order = [...Array(n).keys()].sort((a, b) => c.scores[b] - c.scores[a] || a - b);
  const keep: number[] = [];
  const b = c.boxes;
  for (const i of order) {
    const ok = keep.every((j) => {
      if (c.classes[i] !== c.classes[j]) return true;
      const iw = Math.max(0, Math.min(b[4 * i + 2], b[4 * j + 2]) - Math.max(b[4 * i], b[4 * j]));
      const ih = Math.max(
        0,
        Math.min(b[4 * i + 3], b[4 * j + 3]) - Math.max(b[4 * i + 1], b[4 * j + 1]),
      );
      const area = (k: number) => (b[4 * k + 2] - b[4 * k]) * (b[4 * k + 3] - b[4 * k + 1]);
      return iw * ih / (area(i) + area(j) - iw * ih) <= thr;
    });
    if (ok) keep.push(i);
  }
  return keep;
}

Deno.test("batchedNmsHost() matches an independent float64 greedy NMS", () => {
  for (const [n, seed] of [[10, 1], [300, 2]]) {
    const c = randomCase(n, seed);
    for (const thr of [0.3, 0.5, 0.7]) {
      assert.deepEqual(
        Array.from(batchedNmsHost(c.boxes, c.scores, c.classes, { iouThreshold: thr })),
        naiveNms(c, thr),
      );
    }
  }
});

Deno.test("batchedNms() small hand-made cases", async (t) => {
  const backends: [string, () => Promise<Backend>][] = [["cpu", () => Promise.resolve(CPU)]];
  if (GPU) backends.push(["webgpu", gpuBackend]);
  for (const [name, get] of backends) {
    const backend = await get();
    await t.step(`${name}: empty input`, async () => {
      const empty = {
        boxes: new Float32Array(0),
        scores: new Float32Array(0),
        classes: new Int32Array(0),
      };
      assert.deepEqual(await runNms(backend, empty, { iouThreshold: 0.5 }), {
        keep: new Int32Array(0),
        count: 0,
      });
      const padded = await runNms(backend, empty, { iouThreshold: 0.5, maxOutput: 3 });
      assert.deepEqual(Array.from(padded.keep), [-1, -1, -1]);
      assert.equal(padded.count, 0);
    });
    await t.step(`${name}: a single box`, async () => {
      const one = {
        boxes: Float32Array.of(1, 2, 3, 4),
        scores: Float32Array.of(0.3),
        classes: Int32Array.of(7),
      };
      const got = await runNms(backend, one, { iouThreshold: 0.5, maxOutput: 2 });
      assert.deepEqual(Array.from(got.keep), [0, -1]);
      assert.equal(got.count, 1);
    });
    await t.step(`${name}: identical boxes keep the first of the top score`, async () => {
      const n = 40;
      const c = {
        boxes: new Float32Array(4 * n).map((_, k) => [5, 5, 15, 25][k % 4]),
        scores: new Float32Array(n).fill(0.5),
        classes: new Int32Array(n),
      };
      c.scores[17] = 0.75;
      c.scores[30] = 0.75;
      const got = await runNms(backend, c, { iouThreshold: 0.99 });
      assert.equal(got.count, 1);
      assert.equal(got.keep[0], 17);
      assert.ok(got.keep.subarray(1).every((v) => v === -1));
    });
    await t.step(`${name}: IoU equal to the threshold is kept, above it suppressed`, async () => {
      // [0,0,3,1] vs [1,0,4,1]: intersection 2, union 4, IoU exactly 0.5.
      const c = {
        boxes: Float32Array.of(0, 0, 3, 1, 1, 0, 4, 1),
        scores: Float32Array.of(0.9, 0.8),
        classes: Int32Array.of(0, 0),
      };
      assert.deepEqual(Array.from((await runNms(backend, c, { iouThreshold: 0.5 })).keep), [0, 1]);
      assert.deepEqual(
        Array.from((await runNms(backend, c, { iouThreshold: 0.4999 })).keep),
        [0, -1],
      );
    });
    await t.step(
      `${name}: classes never suppress each other; negative classes are padding`,
      async () => {
        const c = {
          boxes: Float32Array.of(0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 10, 10),
          scores: Float32Array.of(0.1, 0.4, 0.3, 0.9),
          classes: Int32Array.of(0, 1, 0, -1),
        };
        const got = await runNms(backend, c, { iouThreshold: 0.5 });
        assert.deepEqual(Array.from(got.keep), [1, 2, -1, -1]);
        assert.equal(got.count, 2);
      },
    );
    await t.step(`${name}: NaN scores rank last`, async () => {
      const c = {
        boxes: Float32Array.of(0, 0, 1, 1, 5, 5, 6, 6, 9, 9, 10, 10),
        scores: Float32Array.of(NaN, 0.2, 0.4),
        classes: Int32Array.of(0, 0, 0),
      };
      assert.deepEqual(Array.from((await runNms(backend, c, { iouThreshold: 0.5 })).keep), [
        2,
        1,
        0,
      ]);
    });
  }
});

Deno.test("batchedNms() on the CPU backend matches the greedy reference", async (t) => {
  for (const [n, seed] of [[10, 3], [500, 4], [3000, 5]]) {
    await t.step(`N = ${n}`, async () => {
      const c = randomCase(n, seed);
      await checkAgainstHost(CPU, c, { iouThreshold: 0.5 });
      await checkAgainstHost(CPU, c, { iouThreshold: 0.3, maxOutput: 7 });
    });
  }
});

Deno.test("batchedNms() on WebGPU matches the greedy reference", { ignore: !GPU }, async (t) => {
  const gpu = await gpuBackend();
  for (const [n, seed] of [[10, 6], [500, 7], [3000, 8]]) {
    const c = randomCase(n, seed);
    for (
      const options of [
        { iouThreshold: 0.5 },
        { iouThreshold: 0.25, maxOutput: 100 },
        { iouThreshold: 0.75, maxOutput: n + 5 },
      ]
    ) {
      await t.step(`N = ${n}, ${JSON.stringify(options)}`, async () => {
        await checkAgainstHost(gpu, c, options);
      });
    }
  }
  await t.step("N = 3000 mostly kept: the suppression spans several dispatches", async () => {
    // Tiny boxes over a wide field hardly overlap: ~3000 kept boxes need
    // ~3000 * 94 / 2 word ORs, past one invocation's loop limit.
    const c = randomCase(3000, 9, 4, 40, 2000);
    const rows = suppressRowsPerDispatch(Math.ceil(3000 / 32), 3000);
    assert.ok(rows < 3000 && rows * (1 + 94) <= NMS_LOOP_BUDGET);
    const want = expected(c, { iouThreshold: 0.5 });
    assert.ok(want.count > 2000, `only ${want.count} kept`);
    await checkAgainstHost(gpu, c, { iouThreshold: 0.5 });
  });
  await t.step("N = 2049 (not a multiple of 32), one class, maxOutput 1", async () => {
    await checkAgainstHost(gpu, randomCase(2049, 10, 1), { iouThreshold: 0.6, maxOutput: 1 });
  });
});

Deno.test("batchedNms() rejects bad input naming the op", () => {
  const boxes = tensor(new Float32Array(8), [2, 4], { backend: CPU });
  const scores = tensor(new Float32Array(2), [2], { backend: CPU });
  const classes = tensor(new Int32Array(2), [2], { backend: CPU });
  const opts = { iouThreshold: 0.5 };
  const bad: [() => unknown, ErrorConstructor, RegExp][] = [
    [
      () =>
        batchedNms(tensor(new Float32Array(6), [2, 3], { backend: CPU }), scores, classes, opts),
      TypeError,
      /batchedNms: boxes/,
    ],
    [
      () => batchedNms(boxes, tensor(new Float32Array(3), [3], { backend: CPU }), classes, opts),
      TypeError,
      /batchedNms: scores/,
    ],
    [
      () => batchedNms(boxes, scores, tensor(new Float32Array(2), [2], { backend: CPU }), opts),
      TypeError,
      /batchedNms: expected i32/,
    ],
    [
      () => batchedNms(boxes, scores, tensor(new Int32Array(1), [1], { backend: CPU }), opts),
      TypeError,
      /batchedNms: classes/,
    ],
    [
      () => batchedNms(boxes, scores, classes, { iouThreshold: NaN }),
      TypeError,
      /batchedNms: iouThreshold/,
    ],
    [
      () => batchedNms(boxes, scores, classes, { iouThreshold: 0.5, maxOutput: -1 }),
      RangeError,
      /batchedNms: maxOutput/,
    ],
    [() => batchedNmsHost([0, 0, 1], [1], [0], opts), TypeError, /batchedNmsHost/],
  ];
  for (const [fn, type, message] of bad) {
    assert.throws(fn, (e: unknown) => e instanceof type && message.test(String(e)));
  }
});
