import assert from "node:assert/strict";
import { mapRoiLevels } from "../../boxes/roi_levels.ts";
import { multiRoiAlign, Shared2FcBBoxHead } from "../../detectors/heads/roi_head.ts";
import { backward } from "../../tensor/autograd.ts";
import { roiAlign } from "../../tensor/ops/roi_align.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { randn, Rng } from "../../tensor/rng.ts";
import { tensor } from "../../tensor/tensor.ts";
import { CPU } from "../tensor/helpers.ts";

const backend = CPU;
const STRIDES = [4, 8, 16, 32];
const SIZE = 256;

function pyramid(rng: Rng, n: number, c: number, requiresGrad = false) {
  return STRIDES.map((s) => randn([n, c, SIZE / s, SIZE / s], rng, { backend, requiresGrad }));
}

/** Boxes of scales 40, 150, 300, 600 (levels 0..3 by mmdetection's rule) and another level-0 one, shuffled over two images. */
const ROIS = Float32Array.of(
  1,
  10,
  10,
  160,
  160, // 150: level 1
  0,
  0,
  0,
  40,
  40, //     40: level 0
  1,
  0,
  0,
  255,
  255, //  255 (scale 255): level 2
  0,
  0,
  0,
  600,
  600, //  600: level 3
  0,
  30,
  20,
  60,
  50, //  30: level 0
);

Deno.test("multiRoiAlign: each RoI is pooled from the level mapRoiLevels gives it, in RoI order", async () => {
  const feats = pyramid(new Rng(0), 2, 3);
  const out = multiRoiAlign(feats, ROIS, STRIDES);
  assert.deepEqual(out.shape, [5, 3, 7, 7]);
  const boxes = Array.from(
    { length: 5 },
    (_, i) => Array.from(ROIS.subarray(5 * i + 1, 5 * i + 5)),
  );
  const levels = mapRoiLevels(boxes.flat(), 4);
  assert.deepEqual(Array.from(levels), [1, 0, 2, 3, 0]);
  const got = await out.data() as Float32Array;
  for (let i = 0; i < 5; i++) {
    const one = tensor(ROIS.slice(5 * i, 5 * i + 5), [1, 5], { backend });
    const want = await roiAlign(feats[levels[i]], one, {
      outputSize: 7,
      spatialScale: 1 / STRIDES[levels[i]],
      samplingRatio: 0,
      aligned: true,
    }).data() as Float32Array;
    assert.deepEqual(
      Array.from(got.subarray(147 * i, 147 * (i + 1))),
      Array.from(want),
      `RoI ${i}`,
    );
    // Pooling from any other level gives something else.
    const other = (levels[i] + 1) % 4;
    const wrong = await roiAlign(feats[other], one, {
      outputSize: 7,
      spatialScale: 1 / STRIDES[other],
      aligned: true,
    }).data() as Float32Array;
    assert.notDeepEqual(Array.from(got.subarray(147 * i, 147 * (i + 1))), Array.from(wrong));
  }
  assert.deepEqual(multiRoiAlign(feats, new Float32Array(0), STRIDES).shape, [0, 3, 7, 7]);
  assert.throws(() => multiRoiAlign(feats, ROIS, [4, 8]), RangeError);
});

Deno.test("Shared2FcBBoxHead: shapes, mmdetection's names and init", async () => {
  const config = { inChannels: 3, roiSize: 7, fcChannels: 32, numClasses: 5 };
  const head = new Shared2FcBBoxHead(config, new Rng(1), backend);
  assert.deepEqual(head.namedParameters().map(([n, t]) => [n, t.shape]), [
    ["shared_fcs.0.weight", [32, 147]],
    ["shared_fcs.0.bias", [32]],
    ["shared_fcs.1.weight", [32, 32]],
    ["shared_fcs.1.bias", [32]],
    ["fc_cls.weight", [5, 32]],
    ["fc_cls.bias", [5]],
    ["fc_reg.weight", [20, 32]],
    ["fc_reg.bias", [20]],
  ]);
  const params = Object.fromEntries(head.namedParameters());
  for (const name of ["shared_fcs.0.bias", "shared_fcs.1.bias", "fc_cls.bias", "fc_reg.bias"]) {
    assert.ok((await params[name].data()).every((v) => v === 0), name);
  }
  const bound = Math.sqrt(6 / (147 + 32));
  const w0 = await params["shared_fcs.0.weight"].data();
  assert.ok(w0.every((v) => Math.abs(v) <= bound) && w0.some((v) => Math.abs(v) > bound / 2));
  const std = async (name: string) => {
    const v = Array.from(await params[name].data());
    return Math.sqrt(v.reduce((a, b) => a + b * b, 0) / v.length);
  };
  assert.ok(Math.abs(await std("fc_cls.weight") - 0.01) < 0.003);
  assert.ok(Math.abs(await std("fc_reg.weight") - 0.001) < 0.0003);

  const out = head.forward(randn([4, 3, 7, 7], new Rng(2), { backend }));
  assert.deepEqual(out.cls.shape, [4, 5]);
  assert.deepEqual(out.reg.shape, [4, 20]);
  const agnostic = new Shared2FcBBoxHead({ ...config, classAgnostic: true }, new Rng(1), backend);
  assert.deepEqual(agnostic.forward(randn([4, 3, 7, 7], new Rng(2), { backend })).reg.shape, [
    4,
    4,
  ]);
  assert.throws(() => head.forward(randn([4, 3, 5, 5], new Rng(2), { backend })), TypeError);
});

Deno.test("Shared2FcBBoxHead + multiRoiAlign: the gradient reaches every level that holds a RoI", async () => {
  const feats = pyramid(new Rng(3), 2, 3, true);
  const head = new Shared2FcBBoxHead(
    { inChannels: 3, roiSize: 7, fcChannels: 16, numClasses: 2 },
    new Rng(4),
    backend,
  );
  const out = head.forward(multiRoiAlign(feats, ROIS, STRIDES));
  backward(sum(out.cls));
  for (const [l, f] of feats.entries()) {
    const g = await f.grad!.data();
    assert.ok(g.some((v) => v !== 0), `level ${l}`);
  }
  // Only image 0's RoIs sit on level 3 (the 600-pixel box): image 1's slice gets nothing.
  const g3 = await feats[3].grad!.data();
  const half = g3.length / 2;
  assert.ok(g3.subarray(half).every((v) => v === 0));
  // The classification loss alone trains everything but the regressor.
  const trained = head.namedParameters().filter(([, p]) => p.grad != null).map(([n]) => n);
  assert.deepEqual(trained, [
    "shared_fcs.0.weight",
    "shared_fcs.0.bias",
    "shared_fcs.1.weight",
    "shared_fcs.1.bias",
    "fc_cls.weight",
    "fc_cls.bias",
  ]);
});
