import assert from "node:assert/strict";
import { join } from "node:path";
import CASCADE_RCNN_TINY_SHAPES from "../../configs/cascade_rcnn_tiny_shapes.ts";
import FASTER_RCNN_TINY_SHAPES from "../../configs/faster_rcnn_tiny_shapes.ts";
import type { DetectorConfig } from "../../configs/types.ts";
import { boxIouHost } from "../../boxes/iou.ts";
import type { Batch } from "../../data/loader.ts";
import { buildDetector } from "../../detectors/build.ts";
import { buildCascadeRcnn, type CascadeRcnnModelConfig } from "../../detectors/cascade_rcnn.ts";
import { buildFasterRcnn, type FasterRcnnModelConfig } from "../../detectors/faster_rcnn.ts";
import { buildTwoStage, type TwoStageDetector } from "../../detectors/two_stage.ts";
import { loadModel } from "../../engine/model_io.ts";
import { train } from "../../engine/train.ts";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { tensor, tidyAsync } from "../../tensor/tensor.ts";
import { smallTrainSettings } from "../engine/helpers.ts";
import {
  assertBlankDetectsNothing,
  assertResumeIsExact,
  fitSteps,
  shapesBatch,
  smallTwoStageParts,
} from "./helpers.ts";
import { CPU, GPU, gpuBackend, NATIVE, nativeBackend } from "../tensor/helpers.ts";

/** Narrow layers and few proposals on 64 px images: what changes from the tiny configs. */
const SMALL_PARTS = smallTwoStageParts(FASTER_RCNN_TINY_SHAPES.model);

const FASTER: DetectorConfig<FasterRcnnModelConfig> = {
  ...FASTER_RCNN_TINY_SHAPES,
  name: "faster_rcnn_test_small",
  model: { ...FASTER_RCNN_TINY_SHAPES.model, ...SMALL_PARTS },
  train: smallTrainSettings(4, 3),
  data: { kind: "shapes", train: 8, val: 2, size: 64, seed: 3 },
};

const CASCADE: DetectorConfig<CascadeRcnnModelConfig> = {
  ...CASCADE_RCNN_TINY_SHAPES,
  name: "cascade_rcnn_test_small",
  model: { ...CASCADE_RCNN_TINY_SHAPES.model, ...SMALL_PARTS },
  train: smallTrainSettings(4, 3),
  data: FASTER.data,
};

/** WebGPU where there is an adapter (else the CPU), and native. */
const BACKENDS: Backend[] = [GPU ? await gpuBackend() : CPU, ...(NATIVE ? [nativeBackend()] : [])];
/** The fastest backend here, for the tests that train longer. */
const FAST = NATIVE ? nativeBackend() : BACKENDS[0];

/** Two images with objects, the batch most tests use. */
const BATCH = await shapesBatch(2, 11);

/**
 * `steps` SGD steps of `model` on `batch`, gradients clipped at norm 10 as
 * the configs do (self-balance can scale a later cascade stage's box
 * gradient by hundreds when its only positives are the GT boxes themselves);
 * the total loss of each.
 */
function fit(model: TwoStageDetector, batch: Batch, steps: number, lr: number) {
  return fitSteps(model, batch, steps, { lr, maxGradNorm: 10 });
}

const BUILDERS = {
  faster_rcnn: (seed: number, backend: Backend) => buildFasterRcnn(FASTER.model, { seed, backend }),
  cascade_rcnn: (seed: number, backend: Backend) =>
    buildCascadeRcnn(CASCADE.model, { seed, backend }),
};

for (const backend of BACKENDS) {
  for (const [kind, build] of Object.entries(BUILDERS)) {
    Deno.test(`${kind}: a few steps on one batch lower the loss (${backend.name})`, async () => {
      const totals = await fit(build(1, backend), BATCH, 20, 0.02);
      assert.ok(totals.every(Number.isFinite), `non-finite loss: ${totals}`);
      assert.ok(
        totals.at(-1)! < totals[0],
        `loss did not fall: ${totals.map((v) => v.toFixed(4))}`,
      );
    });
  }
}

Deno.test("two-stage: the loss names the RPN's and each stage's parts", async () => {
  for (
    const [model, stages] of [[BUILDERS.faster_rcnn(0, FAST), 1], [
      BUILDERS.cascade_rcnn(0, FAST),
      3,
    ]] as const
  ) {
    const names = await tidyAsync(async () => Object.keys((await model.loss(BATCH)).parts));
    const want = ["rpn.rank", "rpn.sort", "rpn.box"];
    for (let s = 0; s < stages; s++) want.push(`s${s}.rank`, `s${s}.sort`, `s${s}.box`);
    assert.deepEqual(names, want);
  }
});

Deno.test("two-stage: images without objects train, and predict gives typed, empty results", async () => {
  const empty = await shapesBatch(2, 5, [0, 0]);
  assert.ok(empty.boxes.every((b) => b.length === 0));
  for (const model of [BUILDERS.faster_rcnn(0, FAST), BUILDERS.cascade_rcnn(0, FAST)]) {
    const parts = await tidyAsync(async () => {
      const l = await model.loss(empty);
      backward(l.total);
      const out: Record<string, number> = {};
      for (const [name, t] of Object.entries(l.parts)) out[name] = (await t.data())[0];
      return out;
    });
    // Without positives the official heads' losses are constants: 1 per part (x weight), RPN without a box term.
    for (const [name, v] of Object.entries(parts)) {
      assert.equal(
        v,
        name.startsWith("rpn.") ? Math.fround(0.2) : 1,
        `${model.config.kind} ${name}`,
      );
    }
    assert.equal("rpn.box" in parts, false);
    // Untrained, every class scores about 0.5; above 0.6 nothing is left.
    const strict = { ...model.config.test, scoreThr: 0.6 };
    const quiet = model.config.kind === "faster_rcnn"
      ? buildFasterRcnn({ ...FASTER.model, test: strict }, { seed: 0, backend: FAST })
      : buildCascadeRcnn({ ...CASCADE.model, test: strict }, { seed: 0, backend: FAST });
    quiet.eval();
    await assertBlankDetectsNothing(quiet);
  }
});

Deno.test("two-stage: detections are capped, sorted, in original pixels and inside the image", async () => {
  const model = BUILDERS.cascade_rcnn(2, FAST);
  model.eval();
  const batch = BATCH;
  const images = tensor(batch.images, [2, 3, 64, 64], { backend: FAST });
  const [a, b] = await model.predict(images, [[1, 1], [1, 1]]);
  for (const d of [a, b]) {
    assert.ok(d.scores.length > 0 && d.scores.length <= CASCADE.model.test.maxPerImage);
    for (let k = 1; k < d.scores.length; k++) assert.ok(d.scores[k] <= d.scores[k - 1]);
    for (const v of d.boxes) assert.ok(v >= 0 && v <= 64);
  }
  // The first image resized by (0.5, 0.25): its boxes divided by the scales, the same detections.
  const [scaled] = await model.predict(images, [[0.5, 0.25], [1, 1]]);
  assert.deepEqual(scaled.scores, a.scores);
  assert.deepEqual(scaled.labels, a.labels);
  assert.deepEqual(
    scaled.boxes,
    a.boxes.map((v, k) => v / (k % 2 === 0 ? 0.5 : 0.25)),
  );
});

Deno.test("cascade_rcnn: trained stages refine the proposals towards the objects", async () => {
  const model = BUILDERS.cascade_rcnn(3, FAST);
  await fit(model, BATCH, 80, 0.02);
  model.eval();
  const rounds = await model.refinements(tensor(BATCH.images, [2, 3, 64, 64], { backend: FAST }));
  assert.equal(rounds.length, 4, "proposals, after stage 0, after stage 1, final");
  // Follow the proposals that start on an object (IoU >= 0.5): their mean best IoU by round.
  const bestIou = (boxes: Float32Array, r: number, gt: Float32Array) => {
    let best = 0;
    for (let g = 0; g < gt.length / 4; g++) best = Math.max(best, boxIouHost(boxes, r, gt, g));
    return best;
  };
  const meanIou = rounds.map((perImage) => {
    let sum = 0, count = 0;
    perImage.forEach((boxes, i) => {
      for (let r = 0; r < boxes.length / 4; r++) {
        if (bestIou(rounds[0][i], r, BATCH.boxes[i]) < 0.5) continue;
        sum += bestIou(boxes, r, BATCH.boxes[i]);
        count++;
      }
    });
    return sum / count;
  });
  const shown = meanIou.map((v) => v.toFixed(4)).join(", ");
  assert.ok(Number.isFinite(meanIou[0]), "some proposals start on an object");
  // The first stage moves the boxes most; the later ones (trained on few positives
  // besides the GT boxes in two images) must not undo it.
  assert.ok(meanIou[1] > meanIou[0] + 0.02, `stage 0 did not refine: ${shown}`);
  for (let s = 2; s < meanIou.length; s++) {
    assert.ok(meanIou[s] > meanIou[s - 1] - 0.005, `round ${s} lost IoU: ${shown}`);
  }
  assert.ok(meanIou[3] > meanIou[0] + 0.02, `no net refinement: ${shown}`);
});

for (const config of [FASTER, CASCADE]) {
  Deno.test(`${config.model.kind} training: resume is bit-exact and the checkpoint predicts the same`, async () => {
    const dir = await Deno.makeTempDir();
    await assertResumeIsExact(config, FAST, BATCH, dir);
    await Deno.remove(dir, { recursive: true });
  });
}

Deno.test("two-stage: bad configs and inputs give clear errors", async () => {
  assert.throws(
    () =>
      buildDetector(
        { ...FASTER.model, backbone: { ...FASTER.model.backbone, layers: [1, 1, 1] } },
        { seed: 0, backend: FAST },
      ),
    /faster_rcnn: the backbone needs 4 stages \(C2–C5\), got 3/,
  );
  assert.throws(
    () =>
      buildDetector({ ...FASTER.model, roi: { ...FASTER.model.roi, poolLevels: 5 } }, {
        seed: 0,
        backend: FAST,
      }),
    /roi.poolLevels 5 is not within the RPN's 4 levels/,
  );
  assert.throws(
    () => buildCascadeRcnn({ ...CASCADE.model, stages: [] }, { seed: 0, backend: FAST }),
    /stages must list at least one stage/,
  );
  // Only the last stage may regress per class (the others hand on one box per RoI).
  assert.throws(
    () =>
      buildTwoStage(CASCADE.model, [
        { posIou: 0.5, weight: 1, classAgnostic: false },
        { posIou: 0.6, weight: 1, classAgnostic: true },
      ], { seed: 0, backend: FAST }),
    /stage 0 regresses per class, but only the last stage may/,
  );
  // Anchor strides the neck does not produce.
  const misfit = buildFasterRcnn({
    ...FASTER.model,
    rpn: { ...FASTER.model.rpn, anchors: { ...FASTER.model.rpn.anchors, strides: [4, 8, 16, 64] } },
  }, { seed: 0, backend: FAST });
  await assert.rejects(
    () => misfit.loss(BATCH),
    /rpn.anchors.strides must match the neck's levels/,
  );
  const model = BUILDERS.faster_rcnn(0, FAST);
  assert.throws(
    () => model.forward(tensor(new Float32Array(3 * 40 * 40), [1, 3, 40, 40], { backend: FAST })),
    /faster_rcnn: image size 40x40 is not a multiple of 32/,
  );
  // A checkpoint of another detector kind.
  const dir = await Deno.makeTempDir();
  const out = join(dir, "faster");
  await train({
    config: FASTER,
    seed: 0,
    backend: FAST,
    evaluate: false,
    stopAfter: 1,
    out,
    write: () => {},
  });
  await assert.rejects(
    () => loadModel(join(out, "checkpoint.safetensors"), FAST, CASCADE_RCNN_TINY_SHAPES.name),
    /holds a "faster_rcnn" detector/,
  );
  await Deno.remove(dir, { recursive: true });
});
