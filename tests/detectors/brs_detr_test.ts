import assert from "node:assert/strict";
import BRS_DETR_TINY_SHAPES from "../../configs/brs_detr_tiny_shapes.ts";
import type { DetectorConfig } from "../../configs/types.ts";
import type { Batch } from "../../data/loader.ts";
import { generateAnchors } from "../../detectors/anchors.ts";
import { assignBatch } from "../../detectors/atss_targets.ts";
import { buildDetector } from "../../detectors/build.ts";
import { buildCoDetr, type CoDetrModelConfig } from "../../detectors/co_detr.ts";
import { auxiliaryQueries } from "../../detectors/deformable_detr/aux_queries.ts";
import {
  DeformableAttention,
  levelLayout,
} from "../../detectors/deformable_detr/deformable_attention.ts";
import { detrSetLoss } from "../../detectors/deformable_detr/detr_losses.ts";
import { buildOptimizer } from "../../engine/optimizer.ts";
import { checkConfig } from "../../engine/config.ts";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { Rng } from "../../tensor/rng.ts";
import { tensor, tidyAsync } from "../../tensor/tensor.ts";
import { smallTrainSettings } from "../engine/helpers.ts";
import { assertResumeIsExact, optimizerSteps, shapesBatch } from "./helpers.ts";
import { CPU, NATIVE, nativeBackend, randomArray } from "../tensor/helpers.ts";
import { bucketedRankSortLoss, rankSortLoss } from "../../losses/reference/mod.ts";

/** The fastest backend here. */
const FAST: Backend = NATIVE ? nativeBackend() : CPU;

/** Narrow layers and few queries on 64 px images: what changes from the tiny config. */
const SMALL_MODEL: CoDetrModelConfig = {
  ...BRS_DETR_TINY_SHAPES.model,
  backbone: { ...BRS_DETR_TINY_SHAPES.model.backbone, baseWidth: 8 },
  transformer: {
    embedDim: 32,
    numHeads: 4,
    numLevels: 4,
    numPoints: 2,
    ffnDim: 64,
    encoderLayers: 1,
    decoderLayers: 2,
  },
  numQueries: 20,
  auxAtss: { ...BRS_DETR_TINY_SHAPES.model.auxAtss!, featChannels: 32 },
  auxQueries: { maxPerImage: 20, weight: 1 },
};

/** The auxiliary Faster R-CNN branch, narrow, with BRS-DETR's weights (RPN 1, RoI 5). */
const SMALL_RCNN: NonNullable<CoDetrModelConfig["auxRcnn"]> = {
  anchors: {
    strides: [8, 16, 32, 64, 128],
    octaveBaseScale: 2,
    scalesPerOctave: 3,
    ratios: [0.5, 1, 2],
  },
  featChannels: 32,
  rpnWeight: 1,
  proposals: { nmsPre: 200, iouThreshold: 0.7, maxPerImage: 32 },
  roi: { roiSize: 7, samplingRatio: 0, finestScale: 28 },
  fcChannels: 32,
  posIou: 0.5,
  roiWeight: 5,
};

/** The tiny config's optimiser and schedule shape (AdamW, no warm-up), 4 steps of 2 images. */
const SMALL_TRAIN = {
  ...BRS_DETR_TINY_SHAPES.train,
  ...smallTrainSettings(4, 3),
  warmup: BRS_DETR_TINY_SHAPES.train.warmup,
  gamma: BRS_DETR_TINY_SHAPES.train.gamma,
  lr: 1e-3,
};

const SMALL: Record<"brs" | "focal", DetectorConfig<CoDetrModelConfig>> = {
  brs: {
    ...BRS_DETR_TINY_SHAPES,
    name: "brs_detr_test_small",
    model: { ...SMALL_MODEL, auxRcnn: SMALL_RCNN },
    train: SMALL_TRAIN,
    data: { kind: "shapes", train: 8, val: 2, size: 64, seed: 3 },
  },
  focal: {
    ...BRS_DETR_TINY_SHAPES,
    name: "co_detr_test_small",
    model: {
      ...SMALL_MODEL,
      loss: "focal",
      auxAtss: { ...SMALL_MODEL.auxAtss!, weight: 12 },
      auxRcnn: { ...SMALL_RCNN, rpnWeight: 12, roiWeight: 12 },
    },
    train: SMALL_TRAIN,
    data: { kind: "shapes", train: 8, val: 2, size: 64, seed: 3 },
  },
};

/** Two images with objects, the batch most tests use. */
const BATCH: Batch = await shapesBatch(2, 11);

/** `steps` steps of the config's optimiser (AdamW, clip 0.1, lr factors) on `batch`. */
async function fit(config: DetectorConfig<CoDetrModelConfig>, batch: Batch, steps: number) {
  const model = buildCoDetr(config.model, { seed: 0, backend: FAST });
  const params = model.namedParameters().filter(([, p]) => p.requiresGrad);
  const totals = await optimizerSteps(model, batch, steps, buildOptimizer(params, config.train));
  return { model, totals };
}

for (const loss of ["brs", "focal"] as const) {
  Deno.test(`co_detr (${loss}): a few AdamW steps on one batch lower the loss`, async () => {
    const { totals } = await fit(SMALL[loss], BATCH, 8);
    assert.ok(totals.every(Number.isFinite), `non-finite loss: ${totals}`);
    assert.ok(
      totals.at(-1)! < 0.85 * totals[0],
      `${loss}: the loss did not fall by 15% in 8 steps: ${totals.map((v) => v.toFixed(3))}`,
    );
  });

  Deno.test(`co_detr (${loss}): resume is bit-exact and the checkpoint predicts the same`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      await assertResumeIsExact(SMALL[loss], FAST, BATCH, dir);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("co_detr: the parts of the loss follow the recipe of each loss", async (t) => {
  await t.step(
    "brs: L1 and GIoU are self-balanced to 2 (L_rank + L_sort) in every branch",
    async () => {
      const model = buildCoDetr(SMALL.brs.model, { seed: 1, backend: FAST });
      const { parts } = await model.loss(BATCH);
      const v = async (k: string) => (await parts[k].data())[0];
      for (const prefix of ["", "enc.", "aux_atss.", "aux_rcnn."]) {
        const ranking = await v(`${prefix}rank`) + await v(`${prefix}sort`);
        assert.ok(ranking > 0, `${prefix}: no ranking loss`);
        for (const box of ["l1", "giou"]) {
          assert.ok(Math.abs(await v(prefix + box) - ranking) < 1e-4 * ranking, `${prefix}${box}`);
        }
      }
      // The auxiliary heads: SB GIoU equals the ranking part (each times its weight).
      for (const head of ["atss.", "rpn.", "roi."]) {
        const ranking = await v(`${head}rank`) + await v(`${head}sort`);
        assert.ok(ranking > 0, `${head}: no ranking loss`);
        assert.ok(Math.abs(await v(`${head}box`) - ranking) < 1e-4 * ranking, `${head}box`);
      }
    },
  );

  await t.step(
    "focal: cls, L1 and GIoU parts as Co-DETR weighs them, atss with centerness",
    async () => {
      const model = buildCoDetr(SMALL.focal.model, { seed: 1, backend: FAST });
      const { parts } = await model.loss(BATCH);
      assert.deepEqual(
        Object.keys(parts).sort(),
        [
          "atss.box",
          "atss.centerness",
          "atss.cls",
          "aux_atss.cls",
          "aux_atss.giou",
          "aux_atss.l1",
          "aux_rcnn.cls",
          "aux_rcnn.giou",
          "aux_rcnn.l1",
          "cls",
          "enc.cls",
          "enc.giou",
          "enc.l1",
          "giou",
          "l1",
          "roi.box",
          "roi.cls",
          "rpn.box",
          "rpn.cls",
        ].sort(),
      );
    },
  );

  await t.step(
    "focal: the Faster R-CNN branch's stock losses scale with rpnWeight and roiWeight",
    async () => {
      const at = async (rpnWeight: number, roiWeight: number) => {
        const config = { ...SMALL.focal.model.auxRcnn!, rpnWeight, roiWeight };
        const model = buildCoDetr({ ...SMALL.focal.model, auxRcnn: config }, {
          seed: 1,
          backend: FAST,
        });
        return await tidyAsync(async () => {
          const { parts } = await model.loss(BATCH);
          const out: Record<string, number> = {};
          for (const k of ["rpn.cls", "rpn.box", "roi.cls", "roi.box"]) {
            out[k] = (await parts[k].data())[0];
          }
          return out;
        });
      };
      const one = await at(1, 1), twelve = await at(12, 12);
      for (const [k, v] of Object.entries(one)) {
        assert.ok(v > 0, `${k} is ${v}`);
        assert.ok(
          Math.abs(twelve[k] - 12 * v) < 1e-4 * twelve[k],
          `${k}: ${twelve[k]} vs 12 x ${v}`,
        );
      }
      // The RoI head is a softmax classifier over the classes and background.
      const model = buildCoDetr(SMALL.focal.model, { seed: 1, backend: CPU });
      const fcCls = model.namedParameters().find(([n]) =>
        n === "query_head_rcnn.roi_head.fc_cls.weight"
      )!;
      assert.equal(fcCls[1].shape[0], SMALL.focal.model.numClasses + 1);
    },
  );
});

Deno.test("detrSetLoss (focal) equals a host computation of Co-DETR's weighted losses", async () => {
  const backend = CPU;
  const logits = [0.3, -1.2, 2.0, -0.5, 0.1, -2.2]; // [1, 3, 2]
  const boxes = [0.5, 0.5, 0.2, 0.3, 0.3, 0.6, 0.1, 0.2, 0.7, 0.2, 0.3, 0.3];
  const targets = {
    index: Int32Array.of(0, 2),
    label: Int32Array.of(1, 0),
    box: Float32Array.of(0.45, 0.55, 0.25, 0.3, 0.6, 0.25, 0.2, 0.35),
  };
  const { parts } = detrSetLoss(
    tensor(logits, [1, 3, 2], { backend }),
    tensor(boxes, [1, 3, 4], { backend }),
    targets,
    { loss: "focal" },
  );
  // Host reference: sigmoid focal (alpha 0.25, gamma 2) summed / P, L1 summed / P, 1 - GIoU / P.
  let cls = 0;
  logits.forEach((x, i) => {
    const [q, c] = [Math.floor(i / 2), i % 2];
    const pos = targets.index.indexOf(q);
    const t = pos >= 0 && targets.label[pos] === c ? 1 : 0;
    const p = 1 / (1 + Math.exp(-x));
    const pt = t ? p : 1 - p;
    cls += -(t ? 0.25 : 0.75) * (1 - pt) ** 2 * Math.log(pt);
  });
  let l1 = 0, giou = 0;
  const xyxy = (b: ArrayLike<number>, o: number) => [
    b[o] - b[o + 2] / 2,
    b[o + 1] - b[o + 3] / 2,
    b[o] + b[o + 2] / 2,
    b[o + 1] + b[o + 3] / 2,
  ];
  targets.index.forEach((q, j) => {
    for (let c = 0; c < 4; c++) l1 += Math.abs(boxes[4 * q + c] - targets.box[4 * j + c]);
    const [a, b] = [xyxy(boxes, 4 * q), xyxy(targets.box, 4 * j)];
    const area = (r: number[]) => (r[2] - r[0]) * (r[3] - r[1]);
    const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
    const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
    const union = area(a) + area(b) - iw * ih;
    const hull = (Math.max(a[2], b[2]) - Math.min(a[0], b[0])) *
      (Math.max(a[3], b[3]) - Math.min(a[1], b[1]));
    giou += 1 - ((iw * ih) / union - (hull - union) / hull);
  });
  const close = async (t: typeof parts.cls, want: number) =>
    assert.ok(Math.abs((await t.data())[0] - want) < 1e-5 * Math.max(1, want), `${want}`);
  await close(parts.cls, (2 * cls) / 2);
  await close(parts.l1, (5 * l1) / 2);
  await close(parts.giou, (2 * giou) / 2);
});

Deno.test("detrSetLoss (brs, rs) equals the float64 reference losses on host IoU targets", async () => {
  const backend = CPU;
  const [n, q, k] = [2, 4, 3];
  const logits = randomArray(n * q * k, 5, -2, 2);
  const boxes = randomArray(n * q * 4, 6, 0.2, 0.5);
  const targets = {
    index: Int32Array.of(1, 2, 6),
    label: Int32Array.of(0, 2, 1),
    box: Float32Array.of(0.3, 0.35, 0.3, 0.4, 0.45, 0.4, 0.3, 0.35, 0.3, 0.3, 0.35, 0.45),
  };
  const xyxy = (b: ArrayLike<number>, o: number) => [
    b[o] - b[o + 2] / 2,
    b[o + 1] - b[o + 3] / 2,
    b[o] + b[o + 2] / 2,
    b[o + 1] + b[o + 3] / 2,
  ];
  const flatTargets = new Float64Array(n * q * k);
  targets.index.forEach((i, j) => {
    const [a, b] = [xyxy(boxes, 4 * i), xyxy(targets.box, 4 * j)];
    const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
    const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
    const area = (r: number[]) => (r[2] - r[0]) * (r[3] - r[1]);
    flatTargets[i * k + targets.label[j]] = (iw * ih) / (area(a) + area(b) - iw * ih);
  });
  for (const [loss, reference] of [["brs", bucketedRankSortLoss], ["rs", rankSortLoss]] as const) {
    const { parts } = detrSetLoss(
      tensor(logits, [n, q, k], { backend }),
      tensor(boxes, [n, q, 4], { backend }),
      targets,
      { loss },
    );
    const want = reference(logits, flatTargets, { delta: 0.5 });
    const got = async (key: string) => (await parts[key].data())[0];
    assert.ok(Math.abs(await got("rank") - 2 * want.rankingLoss) < 1e-5, `${loss} rank`);
    assert.ok(Math.abs(await got("sort") - 2 * want.sortingLoss) < 1e-5, `${loss} sort`);
    const ranking = 2 * (want.rankingLoss + want.sortingLoss);
    assert.ok(
      Math.abs(await got("l1") - ranking) < 1e-5 && Math.abs(await got("giou") - ranking) < 1e-5,
    );
  }
});

Deno.test("auxiliary positive queries reach the decoder: one per ATSS positive up to the cap", async () => {
  for (const cap of [20, 3]) {
    const config = { ...SMALL.brs.model, auxQueries: { maxPerImage: cap, weight: 1 } };
    const model = buildCoDetr(config, { seed: 2, backend: FAST });
    await tidyAsync(() => model.loss(BATCH));
    // Independent count: the ATSS assignment of the same anchors, per image.
    const anchors = generateAnchors(BATCH.height, BATCH.width, config.auxAtss!.anchors);
    const positives = assignBatch(anchors, BATCH.boxes, BATCH.labels, config.auxAtss!.topk);
    const perImage = [0, 0];
    for (const i of positives.index) perImage[Math.floor(i / positives.numAnchors)]++;
    assert.ok(perImage.every((n) => n > 0));
    assert.deepEqual(
      Array.from(model.lastAuxQueries.atss!),
      perImage.map((n) => Math.min(n, cap)),
    );
    // Each kept query's target is the GT box its anchor was assigned (normalised cxcywh).
    const q = auxiliaryQueries(positives, 2, BATCH.width, BATCH.height, cap);
    q.targets.index.forEach((flat, k) => {
      const image = Math.floor(flat / q.numQueries);
      const [cx, cy, w, h] = q.targets.box.subarray(4 * k, 4 * k + 4);
      const box = [(cx - w / 2) * 64, (cy - h / 2) * 64, (cx + w / 2) * 64, (cy + h / 2) * 64];
      const gts = BATCH.boxes[image];
      const hit = Array.from({ length: gts.length / 4 }, (_, g) => g).some((g) =>
        box.every((v, c) => Math.abs(v - gts[4 * g + c]) < 1e-3) &&
        BATCH.labels[image][g] === q.targets.label[k]
      );
      assert.ok(hit, `aux query ${k} of image ${image} has no matching GT`);
    });
  }
});

Deno.test("auxiliary Faster R-CNN queries: every GT box's own RoI at least, up to the cap", async () => {
  for (const [loss, cap] of [["brs", 20], ["brs", 1], ["focal", 20]] as const) {
    const config = { ...SMALL[loss].model, auxQueries: { maxPerImage: cap, weight: 1 } };
    const model = buildCoDetr(config, { seed: 2, backend: FAST });
    const { parts } = await tidyAsync(() => model.loss(BATCH));
    const part = loss === "brs" ? "aux_rcnn.rank" : "aux_rcnn.cls";
    assert.ok(Number.isFinite((await parts[part].data())[0]));
    // The RoI head adds each GT box as a proposal, a positive of its own class.
    const counts = Array.from(model.lastAuxQueries.rcnn!);
    BATCH.labels.forEach((labels, i) => {
      assert.ok(counts[i] >= Math.min(cap, labels.length), `image ${i}: ${counts[i]} queries`);
      assert.ok(counts[i] <= cap);
    });
  }
});

Deno.test("co_detr: a batch without objects gives a finite loss and gradients", async () => {
  const empty = await shapesBatch(2, 1, [0, 0]);
  assert.deepEqual(empty.labels.map((l) => l.length), [0, 0]);
  for (const loss of ["brs", "focal"] as const) {
    const model = buildCoDetr(SMALL[loss].model, { seed: 0, backend: FAST });
    await tidyAsync(async () => {
      const l = await model.loss(empty);
      for (const [name, t] of Object.entries(l.parts)) {
        assert.ok(Number.isFinite((await t.data())[0]), `${loss}: ${name} is not finite`);
      }
      backward(l.total);
      for (const [name, p] of model.namedParameters()) {
        if (p.grad) assert.ok((await p.grad.data()).every(Number.isFinite), `${loss}: ${name}`);
      }
      model.zeroGrad();
      return l.total;
    });
  }
});

Deno.test("co_detr: predict gives the query head's top maxPerImage, sorted, in original pixels", async () => {
  const model = buildCoDetr({ ...SMALL.brs.model, test: { maxPerImage: 7 } }, {
    seed: 0,
    backend: FAST,
  });
  const images = model.images(BATCH);
  const [a, b] = await model.eval().predict(images, [[1, 1], [0.5, 0.25]]);
  const [a2] = await model.predict(images, [[1, 1], [1, 1]]);
  images.dispose();
  assert.equal(a.scores.length, 7);
  assert.ok(a.scores.every((s, i) => i === 0 || s <= a.scores[i - 1]));
  assert.ok(a.labels.every((l) => l >= 0 && l < SMALL_MODEL.numClasses));
  assert.deepEqual(a, a2);
  // The second image at scale (0.5, 0.25): x doubles, y quadruples relative to its scale-1 boxes.
  const [b1] = (await model.predict(model.images(BATCH), [[1, 1], [1, 1]])).slice(1);
  b.boxes.forEach((v, i) => assert.ok(Math.abs(v - b1.boxes[i] * (i % 2 === 0 ? 2 : 4)) < 1e-3));
});

Deno.test("co_detr: bad input gives clear errors", async (t) => {
  await t.step("more objects than queries", async () => {
    const crowded = await shapesBatch(2, 4, [5, 6]);
    const model = buildCoDetr({ ...SMALL.brs.model, numQueries: 4 }, { seed: 0, backend: CPU });
    await assert.rejects(
      () => model.loss(crowded),
      /CoDetr: image 0 has [56] objects but the decoder has only 4 queries/,
    );
  });
  await t.step("more queries than encoder positions", async () => {
    const model = buildCoDetr({ ...SMALL.brs.model, numQueries: 90 }, { seed: 0, backend: CPU });
    await assert.rejects(
      () => model.loss(BATCH),
      /CoDetr: 90 queries but only 85 encoder positions/,
    );
  });
  await t.step("images not a multiple of 32", () => {
    const model = buildCoDetr(SMALL.brs.model, { seed: 0, backend: CPU });
    assert.throws(
      () => model.forward(tensor(new Float32Array(3 * 48 * 48), [1, 3, 48, 48], { backend: CPU })),
      /image size 48x48 is not a multiple of 32/,
    );
  });
  await t.step("config: unknown loss, auxiliary strides that do not fit the levels", () => {
    assert.throws(
      () =>
        buildDetector({ ...SMALL.brs.model, loss: "hinge" as "brs" }, { seed: 0, backend: CPU }),
      /CoDetr: unknown loss "hinge" \(expected brs, rs, focal\)/,
    );
    const aux = {
      ...SMALL_MODEL.auxAtss!,
      anchors: { ...SMALL_MODEL.auxAtss!.anchors, strides: [8] },
    };
    assert.throws(
      () => buildCoDetr({ ...SMALL.brs.model, auxAtss: aux }, { seed: 0, backend: CPU }),
      /needs 5 anchor strides \(the levels plus one\), got 1/,
    );
  });
  await t.step("training settings: unknown optimizer, bad lr factors", () => {
    const bad = (train: object) => ({
      ...BRS_DETR_TINY_SHAPES,
      train: { ...SMALL_TRAIN, ...train },
    });
    assert.throws(
      () => checkConfig(bad({ optimizer: "adam" }), "x"),
      /train\.optimizer is "adam", expected "sgd" or "adamw"/,
    );
    assert.throws(
      () => checkConfig(bad({ lrFactors: [{ match: "backbone.", factor: -1 }] }), "x"),
      /train\.lrFactors\[0\]\.factor is -1, expected a finite number >= 0/,
    );
    checkConfig(BRS_DETR_TINY_SHAPES, "brs_detr_tiny_shapes");
  });
  await t.step("deformable attention: reference points of the wrong shape", () => {
    const attn = new DeformableAttention(
      { embedDim: 8, numHeads: 2, numLevels: 1, numPoints: 1 },
      new Rng(0),
      CPU,
    );
    const query = tensor(new Float32Array(2 * 8), [1, 2, 8], { backend: CPU });
    const input = tensor(new Float32Array(4 * 8), [1, 4, 8], { backend: CPU });
    assert.throws(
      () =>
        attn.forward({
          query,
          referencePoints: tensor(new Float32Array(6), [1, 2, 3], { backend: CPU }),
          input,
          layout: levelLayout([[2, 2]]),
        }),
      /referencePoints must be \[1, 2, 2 or 4\], got \[1, 2, 3\]/,
    );
  });
  await t.step("auxiliary queries: a positive outside the batch", () => {
    const positives = {
      index: Int32Array.of(12),
      label: Int32Array.of(0),
      numAnchors: 4,
      gtBox: new Float32Array(4),
      anchor: new Float32Array(4),
    };
    assert.throws(
      () => auxiliaryQueries(positives, 2, 64, 64, 10),
      /positive 0 is in image 3 of a batch of 2/,
    );
  });
});
