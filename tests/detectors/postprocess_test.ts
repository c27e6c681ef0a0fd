import assert from "node:assert/strict";
import type { Backend } from "../../tensor/backend.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import {
  denseDetections,
  type DenseLevel,
  type Detections,
  postprocessDetections,
  readDetections,
} from "../../detectors/postprocess.ts";
import { assertClose, CPU, GPU, gpuBackend, poisonPool, randomArray } from "../tensor/helpers.ts";

const sig = (x: number) => 1 / (1 + Math.exp(-x));

/**
 * Two levels, two classes. Level 0: anchors A0 [0,0,10,10], A1 [2,0,12,10]
 * (IoU 2/3 with A0), A2 [30,30,50,50] moved right by 2 px (dx = 1 * 0.1 * 20)
 * and clipped to the 48 x 45 image. Level 1: B0 [0,20,20,40], B1 [20,20,40,40].
 * With nmsPre 3 each level keeps its 3 best pairs above 0.05:
 *   L0: A0c0 sig(3), A1c0 sig(2), A2c1 sig(1.5)   (A1c1 sig(1) and A0c1 cut by nmsPre, A2c0 by thr)
 *   L1: B0c0 sig(2.5), B1c0 sig(2.4), B0c1 sig(2.2)   (B1c1 sig(-3) under thr)
 * NMS 0.6 drops A1c0 (IoU 2/3 with A0c0, same class). Scale [w 2, h 0.5].
 */
function handLevels(backend: Backend): DenseLevel[] {
  const t = (data: number[][]) => tensor(data, undefined, { backend });
  return [
    {
      logits: t([[3, -1], [2, 1], [-4, 1.5]]),
      deltas: t([[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]),
      anchors: t([[0, 0, 10, 10], [2, 0, 12, 10], [30, 30, 50, 50]]),
    },
    {
      logits: t([[2.5, 2.2], [2.4, -3]]),
      deltas: t([[0, 0, 0, 0], [0, 0, 0, 0]]),
      anchors: t([[0, 20, 20, 40], [20, 20, 40, 40]]),
    },
  ];
}

const HAND_EXPECTED = [
  { box: [0, 0, 5, 20], score: sig(3), label: 0 },
  { box: [0, 40, 10, 80], score: sig(2.5), label: 0 },
  { box: [10, 40, 20, 80], score: sig(2.4), label: 0 },
  { box: [0, 40, 10, 80], score: sig(2.2), label: 1 },
  { box: [16, 60, 24, 90], score: sig(1.5), label: 1 },
];

function assertDetections(got: Detections, want: typeof HAND_EXPECTED): void {
  assert.deepEqual(Array.from(got.labels), want.map((d) => d.label));
  assertClose(got.scores, want.map((d) => d.score), 1e-6, 1e-5, "scores");
  assertClose(got.boxes, want.flatMap((d) => d.box), 1e-4, 1e-5, "boxes");
}

function dispose(levels: DenseLevel[]): void {
  for (const l of levels) {
    for (const t of [l.logits, l.deltas, l.anchors, l.scoreFactors]) t?.dispose();
  }
}

const backends: [string, () => Promise<Backend>][] = [["cpu", () => Promise.resolve(CPU)]];
if (GPU) backends.push(["webgpu", gpuBackend]);

Deno.test("denseDetections() on a hand-made case", async (t) => {
  for (const [name, get] of backends) {
    const backend = await get();
    const options = {
      imageShape: [45, 48] as const,
      scaleFactor: [2, 0.5] as const,
      nmsPre: 3,
      maxPerImage: 10,
    };
    await t.step(`${name}: ATSS pipeline`, async () => {
      const levels = handLevels(backend);
      poisonPool(backend, [60, 10]);
      const dets = denseDetections(levels, options);
      assert.deepEqual(dets.shape, [10, 6]);
      const raw = await dets.data();
      // Padding rows are exactly (0, 0, 0, 0, 0, -1).
      assert.deepEqual(Array.from(raw.subarray(30)), Array(5).fill([0, 0, 0, 0, 0, -1]).flat());
      assertDetections((await readDetections(dets))[0], HAND_EXPECTED);
      dets.dispose();
      dispose(levels);
    });
    await t.step(`${name}: maxPerImage cuts the lowest scores`, async () => {
      const levels = handLevels(backend);
      const got = await postprocessDetections(levels, { ...options, maxPerImage: 3 });
      assertDetections(got, HAND_EXPECTED.slice(0, 3));
      dispose(levels);
    });
    await t.step(`${name}: a higher score threshold and a larger nmsPre`, async () => {
      const levels = handLevels(backend);
      // nmsPre 1000 lets A1c1 sig(1) = 0.731 in; it does not overlap a kept class-1 box
      // by more than 0.6 (A0c1 is under 0.75 and A2c1/B0c1 are elsewhere), so it stays.
      const got = await postprocessDetections(levels, { ...options, nmsPre: 1000, scoreThr: 0.7 });
      const a1c1 = { box: [1, 0, 6, 20], score: sig(1), label: 1 };
      assertDetections(got, [...HAND_EXPECTED, a1c1]);
      dispose(levels);
    });
    await t.step(`${name}: score factors multiply the scores after selection`, async () => {
      const levels = handLevels(backend);
      levels[1].scoreFactors = tensor([0.5, 1], undefined, { backend });
      const got = await postprocessDetections(levels, options);
      // B0 scores halve: B1c0 sig(2.4) and A2c1 sig(1.5) move ahead of them.
      const want = [
        HAND_EXPECTED[0],
        HAND_EXPECTED[2],
        HAND_EXPECTED[4],
        { ...HAND_EXPECTED[1], score: sig(2.5) * 0.5 },
        { ...HAND_EXPECTED[3], score: sig(2.2) * 0.5 },
      ];
      assertDetections(got, want);
      dispose(levels);
    });
    await t.step(`${name}: nothing above the threshold, and an empty level`, async () => {
      const levels = handLevels(backend);
      levels.push({
        logits: tensor(new Float32Array(0), [0, 2], { backend }),
        deltas: tensor(new Float32Array(0), [0, 4], { backend }),
        anchors: tensor(new Float32Array(0), [0, 4], { backend }),
      });
      const none = await postprocessDetections(levels, { ...options, scoreThr: 0.99 });
      assert.deepEqual(none, {
        boxes: new Float32Array(0),
        scores: new Float32Array(0),
        labels: new Int32Array(0),
      });
      const only = await postprocessDetections([levels[2]], options);
      assert.equal(only.labels.length, 0);
      dispose(levels);
    });
    await t.step(`${name}: a batch reads back as one`, async () => {
      const levels = handLevels(backend);
      const a = denseDetections(levels, options);
      const b = denseDetections(levels, { ...options, maxPerImage: 2 });
      const [da, db] = await readDetections([a, b]);
      assertDetections(da, HAND_EXPECTED);
      assertDetections(db, HAND_EXPECTED.slice(0, 2));
      for (const x of [a, b]) x.dispose();
      dispose(levels);
    });
  }
});

Deno.test("denseDetections() on WebGPU matches the CPU backend", { ignore: !GPU }, async () => {
  const gpu = await gpuBackend();
  const run = async (backend: Backend): Promise<Float32Array> => {
    const levels: DenseLevel[] = [[400, 1], [100, 2], [25, 3]].map(([a, seed]) => {
      const anchors = new Float32Array(4 * a);
      const r = randomArray(2 * a, seed, 0, 100);
      for (let i = 0; i < a; i++) {
        anchors.set([r[2 * i], r[2 * i + 1], r[2 * i] + 24, r[2 * i + 1] + 16], 4 * i);
      }
      return {
        logits: tensor(randomArray(5 * a, seed + 10, -6, 3), [a, 5], { backend }),
        deltas: tensor(randomArray(4 * a, seed + 20, -1, 1), [a, 4], { backend }),
        anchors: tensor(anchors, [a, 4], { backend }),
      };
    });
    const dets = denseDetections(levels, { imageShape: [110, 120], scaleFactor: 1.5, nmsPre: 300 });
    const out = await dets.data() as Float32Array;
    dets.dispose();
    dispose(levels);
    return out;
  };
  const want = await run(CPU);
  const got = await run(gpu);
  const rows = (d: Float32Array) => Array.from({ length: 100 }, (_, r) => d[6 * r + 5]);
  assert.ok(rows(want).filter((l) => l >= 0).length > 30, "too few detections to compare");
  assert.deepEqual(rows(got), rows(want));
  assertClose(got, want, 1e-4, 1e-5, "dets");
});

Deno.test("denseDetections() rejects bad input naming the op", async () => {
  const t = (data: number[][]) => tensor(data, undefined, { backend: CPU });
  const level = () => ({
    logits: t([[1, 2]]),
    deltas: t([[0, 0, 0, 0]]),
    anchors: t([[0, 0, 1, 1]]),
  });
  const opts = { imageShape: [10, 10] as const };
  const cases: [() => unknown, ErrorConstructor, RegExp][] = [
    [() => denseDetections([], opts), TypeError, /denseDetections: needs at least one level/],
    [
      () => denseDetections([{ ...level(), logits: undefined as unknown as Tensor }], opts),
      TypeError,
      /denseDetections: level 0 has no logits/,
    ],
    [
      () => denseDetections([{ ...level(), deltas: t([[0, 0, 0]]) }], opts),
      TypeError,
      /denseDetections: level 0 deltas/,
    ],
    [
      () => denseDetections([{ ...level(), anchors: t([[0, 0, 1, 1], [0, 0, 1, 1]]) }], opts),
      TypeError,
      /level 0 anchors must have shape \[1, 4\]/,
    ],
    [
      () => denseDetections([level(), { ...level(), logits: t([[1, 2, 3]]) }], opts),
      TypeError,
      /denseDetections: level 1 has 3 classes/,
    ],
    [
      () =>
        denseDetections([{
          ...level(),
          logits: tensor([[1, 2]], undefined, { backend: CPU, dtype: "i32" }),
        }], opts),
      TypeError,
      /denseDetections: level 0 logits: expected f32/,
    ],
    [
      () => denseDetections([{ ...level(), scoreFactors: t([[1]]) }], opts),
      TypeError,
      /level 0 scoreFactors/,
    ],
    [
      () => denseDetections([level()], { imageShape: [-1, 10] }),
      RangeError,
      /denseDetections: imageShape/,
    ],
    [
      () => denseDetections([level()], { ...opts, scaleFactor: 0 }),
      RangeError,
      /denseDetections: scaleFactor/,
    ],
    [
      () => denseDetections([level()], { ...opts, nmsPre: 0 }),
      RangeError,
      /denseDetections: nmsPre/,
    ],
    [
      () => denseDetections([level()], { ...opts, maxPerImage: 1.5 }),
      RangeError,
      /denseDetections: maxPerImage/,
    ],
  ];
  for (const [fn, type, message] of cases) {
    assert.throws(
      fn,
      (e: unknown) => e instanceof type && message.test(String(e)),
      String(message),
    );
  }
  await assert.rejects(() => readDetections(t([[1, 2, 3, 4, 5]])), TypeError);
});
