import assert from "node:assert/strict";
import MASK_RCNN_TINY_SHAPES from "../../configs/mask_rcnn_tiny_shapes.ts";
import type { DetectorConfig } from "../../configs/types.ts";
import * as mask from "../../data/mask.ts";
import { buildTwoStage } from "../../detectors/two_stage.ts";
import { sampleMaskRois } from "../../detectors/mask_branch.ts";
import { buildMaskRcnn, type MaskRcnnModelConfig } from "../../detectors/mask_rcnn.ts";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { SGD } from "../../tensor/optim/sgd.ts";
import { tensor, tidyAsync } from "../../tensor/tensor.ts";
import { smallTrainSettings } from "../engine/helpers.ts";
import { assertResumeIsExact, shapesBatch } from "./helpers.ts";
import { CPU, GPU, gpuBackend, NATIVE, nativeBackend } from "../tensor/helpers.ts";

/** Narrow layers and few proposals on 64 px images: what changes from the tiny config. */
const SMALL: DetectorConfig<MaskRcnnModelConfig> = {
  ...MASK_RCNN_TINY_SHAPES,
  name: "mask_rcnn_test_small",
  model: {
    ...MASK_RCNN_TINY_SHAPES.model,
    backbone: { ...MASK_RCNN_TINY_SHAPES.model.backbone, baseWidth: 8 },
    neckChannels: 16,
    rpn: {
      ...MASK_RCNN_TINY_SHAPES.model.rpn,
      featChannels: 16,
      train: { nmsPre: 200, maxPerImage: 32, iouThreshold: 0.7 },
      test: { nmsPre: 200, maxPerImage: 32, iouThreshold: 0.7 },
    },
    roi: { ...MASK_RCNN_TINY_SHAPES.model.roi, fcChannels: 32 },
    mask: { ...MASK_RCNN_TINY_SHAPES.model.mask, convChannels: 16, numConvs: 2 },
  },
  train: smallTrainSettings(4, 3),
  data: { kind: "shapes", train: 8, val: 2, size: 64, seed: 3 },
};

/** WebGPU where there is an adapter (else the CPU), and native. */
const BACKENDS: Backend[] = [GPU ? await gpuBackend() : CPU, ...(NATIVE ? [nativeBackend()] : [])];
/** The fastest backend here, for the tests that train longer. */
const FAST = NATIVE ? nativeBackend() : BACKENDS[0];

/** Two images with objects and their GT masks. */
const BATCH = await shapesBatch(2, 11, undefined, true);

const build = (seed: number, backend: Backend) => buildMaskRcnn(SMALL.model, { seed, backend });

/** `steps` SGD steps on `batch`; each step's parts, read back. */
async function fitParts(model: ReturnType<typeof build>, steps: number, lr: number) {
  const params = model.namedParameters().map(([, p]) => p).filter((p) => p.requiresGrad);
  const opt = new SGD(params, { lr, momentum: 0.9, maxGradNorm: 10 });
  const history: Record<string, number>[] = [];
  for (let step = 0; step < steps; step++) {
    history.push(
      await tidyAsync(async () => {
        const l = await model.loss(BATCH);
        backward(l.total);
        opt.step();
        opt.zeroGrad();
        const out: Record<string, number> = { total: (await l.total.data())[0] };
        for (const [name, t] of Object.entries(l.parts)) out[name] = (await t.data())[0];
        return out;
      }),
    );
  }
  return history;
}

for (const backend of BACKENDS) {
  Deno.test(`mask_rcnn: a few steps lower the total, box and Dice losses (${backend.name})`, async () => {
    const history = await fitParts(build(1, backend), 20, 0.02);
    const first = history[0], last = history.at(-1)!;
    const shown = (k: string) => history.map((h) => h[k].toFixed(3)).join(" ");
    assert.ok(history.every((h) => Object.values(h).every(Number.isFinite)), "non-finite loss");
    assert.ok(last.total < first.total, `total did not fall: ${shown("total")}`);
    assert.ok(last["s0.box"] < first["s0.box"], `box loss did not fall: ${shown("s0.box")}`);
    assert.ok(
      last["mask.dice"] < first["mask.dice"] - 0.05,
      `Dice did not fall: ${shown("mask.dice")}`,
    );
    // Self-balance: the mask term's value is the RoI head's L_rank + L_sort.
    for (const h of history) {
      assert.ok(Math.abs(h.mask - (h["s0.rank"] + h["s0.sort"])) < 1e-5 * (1 + h.mask));
    }
  });
}

Deno.test("mask_rcnn: the loss names the mask parts, and images without objects give zeros", async () => {
  const model = build(0, FAST);
  const names = await tidyAsync(async () => Object.keys((await model.loss(BATCH)).parts));
  assert.deepEqual(names, [
    "rpn.rank",
    "rpn.sort",
    "rpn.box",
    "s0.rank",
    "s0.sort",
    "s0.box",
    "mask",
    "mask.dice",
  ]);
  const empty = await shapesBatch(2, 5, [0, 0], true);
  const values = await tidyAsync(async () => {
    const l = await model.loss(empty);
    backward(l.total);
    return [(await l.parts.mask.data())[0], (await l.parts["mask.dice"].data())[0]];
  });
  assert.deepEqual(values, [0, 0]);
});

Deno.test("mask_rcnn: each detection gets an RLE mask of the original image, inside its box", async () => {
  const model = build(2, FAST);
  await fitParts(model, 10, 0.02);
  model.eval();
  const images = tensor(BATCH.images, [2, 3, 64, 64], { backend: FAST });
  // The first image as if resized from 128x256 (scales 0.5 and 0.25 of an original 128 x 256).
  const [a, b] = await model.predict(images, [[0.25, 0.5], [1, 1]], [[128, 256], [64, 64]]);
  images.dispose();
  for (const [det, [h, w]] of [[a, [128, 256]], [b, [64, 64]]] as const) {
    assert.ok(det.scores.length > 0);
    assert.equal(det.masks?.length, det.scores.length);
    det.masks!.forEach((rle, k) => {
      assert.deepEqual(rle.size, [h, w]);
      // mmdetection's paste window: the box grown by one pixel on each side.
      const [x0, y0, x1, y1] = det.boxes.subarray(4 * k, 4 * k + 4);
      const bits = mask.decode(rle);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          if (!bits[y * w + x]) continue;
          assert.ok(
            x >= Math.floor(x0) - 1 && x < Math.ceil(x1) + 1 && y >= Math.floor(y0) - 1 &&
              y < Math.ceil(y1) + 1,
            `mask pixel (${x}, ${y}) outside box ${[x0, y0, x1, y1]}`,
          );
        }
      }
    });
  }
  // Some detection's mask covers pixels (the masks are not all empty after training).
  assert.ok([...a.masks!, ...b.masks!].some((rle) => mask.area(rle) > 0));
});

Deno.test("mask_rcnn training: resume is bit-exact and the checkpoint predicts the same masks", async () => {
  const dir = await Deno.makeTempDir();
  await assertResumeIsExact(SMALL, FAST, BATCH, dir);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("sampleMaskRois: at most maxRois positives, ascending, the same draw for the same RoIs", () => {
  const labels = Int32Array.from({ length: 600 }, (_, i) => (i % 3 === 0 ? -1 : i % 5));
  const rois = Float32Array.from({ length: 5 * 600 }, (_, i) => (i * 7919) % 101);
  const a = sampleMaskRois(labels, rois, 200), b = sampleMaskRois(labels, rois, 200);
  assert.equal(a.length, 200);
  assert.deepEqual(a, b);
  for (let i = 1; i < a.length; i++) assert.ok(a[i] > a[i - 1]);
  for (const i of a) assert.ok(labels[i] >= 0);
  // Other RoIs, another draw; few positives, all of them.
  rois[0] += 1;
  assert.notDeepEqual(sampleMaskRois(labels, rois, 200), a);
  assert.deepEqual(Array.from(sampleMaskRois(Int32Array.of(-1, 0, -1, 2), rois, 200)), [1, 3]);
});

Deno.test("mask_rcnn: bad inputs and configs give clear errors", async () => {
  const model = build(0, FAST);
  const noMasks = await shapesBatch(2, 11);
  await assert.rejects(() => model.loss(noMasks), /mask_rcnn: the batch carries no GT masks/);
  assert.throws(
    () =>
      buildTwoStage(
        SMALL.model,
        [
          { posIou: 0.5, weight: 1, classAgnostic: true },
          { posIou: 0.6, weight: 1, classAgnostic: true },
        ],
        { seed: 0, backend: FAST },
        SMALL.model.mask,
      ),
    /a mask branch needs one RoI stage, got 2/,
  );
  assert.throws(
    () =>
      buildMaskRcnn({ ...SMALL.model, mask: { ...SMALL.model.mask, convChannels: 0 } }, {
        seed: 0,
        backend: FAST,
      }),
    /FcnMaskHead: convChannels 0 is not an integer >= 1/,
  );
});
