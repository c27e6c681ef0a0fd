// The stock Faster R-CNN losses (loss "ce"): the random sampler, the sampled RPN and RoI
// losses against hand computations, and the two-stage detectors trained with them.
import assert from "node:assert/strict";
import FASTER_RCNN_CE_TINY_SHAPES from "../../configs/faster_rcnn_ce_tiny_shapes.ts";
import CASCADE_RCNN_TINY_SHAPES from "../../configs/cascade_rcnn_tiny_shapes.ts";
import MASK_RCNN_TINY_SHAPES from "../../configs/mask_rcnn_tiny_shapes.ts";
import type { DetectorConfig } from "../../configs/types.ts";
import { overlapHost } from "../../boxes/iou.ts";
import { generateAnchors } from "../../detectors/anchors.ts";
import { buildDetector } from "../../detectors/build.ts";
import { buildCascadeRcnn, type CascadeRcnnModelConfig } from "../../detectors/cascade_rcnn.ts";
import { buildFasterRcnn, type FasterRcnnModelConfig } from "../../detectors/faster_rcnn.ts";
import { buildMaskRcnn } from "../../detectors/mask_rcnn.ts";
import { maxIouAssign, RPN_ASSIGN } from "../../detectors/max_iou_assigner.ts";
import {
  drawSorted,
  ROI_SAMPLER,
  RPN_SAMPLER,
  sampleCandidates,
  samplerSeed,
} from "../../detectors/random_sampler.ts";
import { roiBaselineLoss, sampleRoiTargets } from "../../detectors/roi_baseline_loss.ts";
import { roiTargets } from "../../detectors/roi_targets.ts";
import {
  rpnBaselineLoss,
  rpnSampledTargets,
  STOCK_RPN_CODER,
} from "../../detectors/rpn_baseline_loss.ts";
import {
  softmaxWithoutBackground,
  TWO_STAGE_LOSS_TABLE,
} from "../../detectors/two_stage_losses.ts";
import { applyOverrides } from "../../engine/config.ts";
import { backward } from "../../tensor/autograd.ts";
import { add } from "../../tensor/ops/elementwise.ts";
import { Rng } from "../../tensor/rng.ts";
import { type Tensor, tensor, tidyAsync } from "../../tensor/tensor.ts";
import { smallTrainSettings } from "../engine/helpers.ts";
import { assertResumeIsExact, fitSteps, shapesBatch, smallTwoStageParts } from "./helpers.ts";
import {
  assertClose,
  CPU,
  GPU,
  gpuBackend,
  NATIVE,
  nativeBackend,
  randomArray,
} from "../tensor/helpers.ts";
import type { Backend } from "../../tensor/backend.ts";

/** The fastest backend here (native where it loads). */
const FAST = NATIVE ? nativeBackend() : CPU;

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

Deno.test("random sampler: quotas, fractions, determinism", async (t) => {
  const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
  await t.step(
    "more of both than the quotas: num drawn, floor(num * posFraction) positives",
    () => {
      for (const settings of [RPN_SAMPLER, ROI_SAMPLER, { num: 7, posFraction: 0.3 }]) {
        const pos = range(0, 1000), neg = range(1000, 5000);
        const s = sampleCandidates(pos, neg, settings, new Rng(3));
        const quota = Math.floor(settings.num * settings.posFraction);
        assert.equal(s.positives.length, quota);
        assert.equal(s.negatives.length, settings.num - quota);
        for (const [drawn, from] of [[s.positives, pos], [s.negatives, neg]] as const) {
          assert.equal(new Set(drawn).size, drawn.length, "no index twice");
          assert.ok(drawn.every((v, i) => from.includes(v) && (i === 0 || v > drawn[i - 1])));
        }
      }
    },
  );
  await t.step("fewer positives than the quota: all of them, negatives fill up to num", () => {
    const s = sampleCandidates([5, 9, 2], range(100, 900), RPN_SAMPLER, new Rng(1));
    assert.deepEqual(Array.from(s.positives), [2, 5, 9]);
    assert.equal(s.negatives.length, 256 - 3);
    const none = sampleCandidates([], range(0, 300), ROI_SAMPLER, new Rng(1));
    assert.equal(none.positives.length, 0);
    assert.equal(none.negatives.length, 300, "fewer negatives than num: all of them");
  });
  await t.step("the same seed draws the same, another seed draws differently", () => {
    const draw = (seed: number) =>
      Array.from(drawSorted(range(0, 500), 20, new Rng(samplerSeed(Float32Array.of(seed)))));
    assert.deepEqual(draw(1), draw(1));
    assert.notDeepEqual(draw(1), draw(2));
  });
  await t.step("every candidate is drawn about equally often", () => {
    const counts = new Array(10).fill(0), rng = new Rng(7);
    for (let i = 0; i < 4000; i++) for (const v of drawSorted(range(0, 10), 3, rng)) counts[v]++;
    // 1200 draws expected each; 5 standard deviations (about 145) either way.
    for (const c of counts) assert.ok(Math.abs(c - 1200) < 150, `counts ${counts}`);
  });
  await t.step("bad settings are refused", () => {
    assert.throws(
      () => sampleCandidates([], [], { num: 0, posFraction: 0.5 }, new Rng(0)),
      /sampler num 0 is not a positive integer/,
    );
    assert.throws(
      () => sampleCandidates([], [], { num: 4, posFraction: 1.5 }, new Rng(0)),
      /sampler posFraction 1.5 is not within \[0, 1\]/,
    );
  });
});

/** Two 64 px images: two boxes in the first, none in the second; anchors of one 8-stride level. */
const GT = [Float32Array.of(8, 8, 40, 36, 30, 30, 60, 60), new Float32Array(0)];
const LABELS = [Int32Array.of(1, 0), new Int32Array(0)];
const ANCHORS = generateAnchors(64, 64, {
  strides: [8, 16],
  octaveBaseScale: 4,
  scalesPerOctave: 1,
  ratios: [0.5, 1, 2],
});

Deno.test("rpnSampledTargets: drawn anchors follow the assignment and the quotas", () => {
  const numAnchors = ANCHORS.boxes.length / 4;
  const small = { num: 16, posFraction: 0.5 };
  const t = rpnSampledTargets(ANCHORS, GT, new Rng(4), { sampler: small });
  const assigned = GT.map((g) => maxIouAssign(ANCHORS.boxes, g, RPN_ASSIGN).gtIndex);
  const perImage = [0, 0], positives = [0, 0];
  t.sampled.forEach((flat, i) => {
    const image = Math.floor(flat / numAnchors), a = flat % numAnchors;
    const g = assigned[image][a];
    assert.notEqual(g, -2, "an ignored anchor was drawn");
    assert.equal(t.labels[i], g >= 0 ? 1 : 0);
    perImage[image]++;
    if (g >= 0) positives[image]++;
  });
  const available = assigned[0].filter((g) => g >= 0).length;
  assert.ok(available > 0);
  assert.deepEqual(perImage, [16, 16]);
  assert.deepEqual(positives, [Math.min(8, available), 0]);
  assert.deepEqual(Array.from(t.positives), Array.from(t.sampled.filter((_, i) => t.labels[i])));
  // mmdetection's num_total_samples: max(pos, 1) + max(neg, 1) per image.
  assert.equal(t.avgFactor, positives[0] + (16 - positives[0]) + 1 + 16);
  // Targets: the GT box encoded from the anchor with stds 1 (by hand).
  t.positives.forEach((flat, p) => {
    const a = flat % numAnchors, g = assigned[0][a];
    const [ax1, ay1, ax2, ay2] = ANCHORS.boxes.subarray(4 * a, 4 * a + 4);
    const [gx1, gy1, gx2, gy2] = GT[0].subarray(4 * g, 4 * g + 4);
    const aw = ax2 - ax1, ah = ay2 - ay1;
    const want = [
      ((gx1 + gx2) / 2 - (ax1 + ax2) / 2) / aw,
      ((gy1 + gy2) / 2 - (ay1 + ay2) / 2) / ah,
      Math.log((gx2 - gx1) / aw),
      Math.log((gy2 - gy1) / ah),
    ];
    assertClose(t.deltas.subarray(4 * p, 4 * p + 4), want, 1e-6, 1e-5, `deltas of ${p}`);
  });
  // The stock sampler (256 per image) keeps every anchor that is not ignored: 240 anchors here.
  const full = rpnSampledTargets(ANCHORS, GT, new Rng(4));
  assert.equal(numAnchors, 240);
  assert.equal(
    full.sampled.length,
    assigned.flatMap((a) => Array.from(a)).filter((g) => g !== -2).length,
  );
});

/** Leaf tensors with gradients on the CPU backend. */
function leaf(values: Float32Array, shape: number[]): Tensor {
  return tensor(values, shape, { backend: CPU, requiresGrad: true });
}

Deno.test("rpnBaselineLoss equals the hand-computed BCE and L1, and so do its gradients", async () => {
  const numAnchors = ANCHORS.boxes.length / 4;
  const targets = rpnSampledTargets(ANCHORS, GT, new Rng(9), {
    sampler: { num: 24, posFraction: 0.5 },
  });
  const clsHost = randomArray(2 * numAnchors, 1, -2, 2);
  const regHost = randomArray(2 * numAnchors * 4, 2, -1, 1);
  const cls = leaf(clsHost, [2, numAnchors]), reg = leaf(regHost, [2, numAnchors, 4]);
  const weight = 3;
  const l = rpnBaselineLoss({ cls, reg, perLevel: ANCHORS.perLevel }, targets, { weight });
  backward(l.total);
  const f = targets.avgFactor;
  let bce = 0;
  const gCls = new Float64Array(clsHost.length);
  targets.sampled.forEach((i, s) => {
    const x = clsHost[i], y = targets.labels[s];
    bce += Math.max(x, 0) - x * y + Math.log1p(Math.exp(-Math.abs(x)));
    gCls[i] += weight * (sigmoid(x) - y) / f;
  });
  let l1 = 0;
  const gReg = new Float64Array(regHost.length);
  targets.positives.forEach((i, p) => {
    for (let c = 0; c < 4; c++) {
      const d = regHost[4 * i + c] - targets.deltas[4 * p + c];
      l1 += Math.abs(d);
      gReg[4 * i + c] += weight * Math.sign(d) / f;
    }
  });
  assert.ok(targets.positives.length > 0);
  assertClose(await l.parts.cls.data(), [weight * bce / f], 1e-6, 1e-5, "cls");
  assertClose(await l.parts.box.data(), [weight * l1 / f], 1e-6, 1e-5, "box");
  assertClose(await l.total.data(), [weight * (bce + l1) / f], 1e-6, 1e-5, "total");
  assertClose(await cls.grad!.data(), gCls, 1e-7, 1e-5, "d/dcls");
  assertClose(await reg.grad!.data(), gReg, 1e-7, 1e-5, "d/dreg");
  // Without GT anywhere: negatives only, a box term of 0.
  const none = rpnSampledTargets(ANCHORS, [new Float32Array(0)], new Rng(0));
  const one = rpnBaselineLoss(
    {
      cls: leaf(clsHost.subarray(0, numAnchors), [1, numAnchors]),
      reg: leaf(regHost.subarray(0, 4 * numAnchors), [1, numAnchors, 4]),
      perLevel: ANCHORS.perLevel,
    },
    none,
  );
  assert.equal((await one.parts.box.data())[0], 0);
  assert.equal(none.avgFactor, 1 + Math.min(256, numAnchors));
  assert.throws(
    () =>
      rpnBaselineLoss({ cls, reg, perLevel: ANCHORS.perLevel }, {
        ...targets,
        sampled: Int32Array.of(0, 2 * numAnchors),
      }),
    /drawn anchor 1 has index \d+, outside the 2 x \d+ outputs/,
  );
});

/** RoIs of the two images: proposals around the first image's boxes and elsewhere. */
const PROPOSALS = [
  Float32Array.of(6, 6, 40, 38, 10, 8, 42, 34, 28, 32, 62, 58, 0, 40, 20, 60, 44, 0, 64, 20),
  Float32Array.of(0, 0, 30, 30, 10, 10, 50, 50),
];

Deno.test("sampleRoiTargets: per image at most num RoIs, a quarter positives, fields kept together", () => {
  const all = roiTargets(PROPOSALS, GT, LABELS, { posIou: 0.5 });
  const settings = { num: 4, posFraction: 0.25 };
  const t = sampleRoiTargets(all, new Rng(5), settings);
  // Image 0: 5 positives (2 GT boxes, 3 proposals) and 2 negatives; image 1: 2 negatives.
  assert.deepEqual(all.positivesPerImage, [5, 0]);
  assert.deepEqual(all.perImage, [7, 2]);
  assert.deepEqual(t.positivesPerImage, [1, 0]);
  assert.deepEqual(t.perImage, [3, 2]);
  const big = sampleRoiTargets(all, new Rng(5), { num: 8, posFraction: 0.5 });
  assert.deepEqual(big.positivesPerImage, [4, 0]);
  assert.deepEqual(big.perImage, [6, 2]);
  // Every drawn row is one of the assigned rows, with its label, box, index and flag.
  for (let k = 0; k < t.labels.length; k++) {
    const row = Array.from(t.rois.subarray(5 * k, 5 * k + 5));
    const j = Array.from({ length: all.labels.length }, (_, i) => i).find((i) =>
      Array.from(all.rois.subarray(5 * i, 5 * i + 5)).every((v, c) => v === row[c])
    )!;
    assert.ok(j !== undefined);
    assert.equal(t.labels[k], all.labels[j]);
    assert.equal(t.gtIndex[k], all.gtIndex[j]);
    assert.equal(t.fromGt[k], all.fromGt[j]);
    assert.equal(t.maxIou[k], all.maxIou[j]);
    assert.deepEqual(t.gtBoxes.subarray(4 * k, 4 * k + 4), all.gtBoxes.subarray(4 * j, 4 * j + 4));
  }
  // The stock quota keeps everything here: few RoIs.
  assert.deepEqual(sampleRoiTargets(all, new Rng(5)).labels, all.labels);
  assert.deepEqual(Array.from(all.fromGt.subarray(0, 2)), [1, 1], "the GT boxes come first");
});

Deno.test("roiBaselineLoss equals the hand-computed softmax CE with L1 or GIoU, and its gradients", async () => {
  const targets = roiTargets(PROPOSALS, GT, LABELS, { posIou: 0.5 });
  const k = targets.labels.length, c = 2, w = c + 1;
  const clsHost = randomArray(k * w, 3, -2, 2), regHost = randomArray(k * 4 * c, 4, -0.5, 0.5);
  const positives = Array.from({ length: k }, (_, i) => i).filter((i) => targets.labels[i] >= 0);
  assert.ok(positives.length >= 3 && positives.length < k);
  // Softmax cross entropy with the background label C, and its gradient, by hand.
  let ce = 0;
  const gCe = new Float64Array(k * w);
  for (let i = 0; i < k; i++) {
    const row = Array.from(clsHost.subarray(i * w, (i + 1) * w));
    const top = Math.max(...row), z = row.reduce((s, v) => s + Math.exp(v - top), 0);
    const label = targets.labels[i] >= 0 ? targets.labels[i] : c;
    ce += -(row[label] - top - Math.log(z));
    row.forEach((v, j) => gCe[i * w + j] = (Math.exp(v - top) / z - (j === label ? 1 : 0)) / k);
  }
  const deltasOf = (i: number) => {
    const o = 4 * (i * c + targets.labels[i]);
    return Array.from(regHost.subarray(o, o + 4));
  };
  const roiOf = (i: number) => Array.from(targets.rois.subarray(5 * i + 1, 5 * i + 5));
  const gtOf = (i: number) => Array.from(targets.gtBoxes.subarray(4 * i, 4 * i + 4));

  async function t_l1() {
    const cls = leaf(clsHost, [k, w]), reg = leaf(regHost, [k, 4 * c]);
    const l = roiBaselineLoss({ cls, reg }, targets, { weight: 2 });
    backward(l.total);
    let l1 = 0;
    const gReg = new Float64Array(regHost.length);
    for (const i of positives) {
      const [rx1, ry1, rx2, ry2] = roiOf(i), [gx1, gy1, gx2, gy2] = gtOf(i);
      const rw = rx2 - rx1, rh = ry2 - ry1;
      const target = [
        ((gx1 + gx2) / 2 - (rx1 + rx2) / 2) / rw / 0.1,
        ((gy1 + gy2) / 2 - (ry1 + ry2) / 2) / rh / 0.1,
        Math.log((gx2 - gx1) / rw) / 0.2,
        Math.log((gy2 - gy1) / rh) / 0.2,
      ];
      deltasOf(i).forEach((d, j) => {
        l1 += Math.abs(d - target[j]);
        gReg[4 * (i * c + targets.labels[i]) + j] = 2 * Math.sign(d - target[j]) / k;
      });
    }
    assertClose(await l.parts.cls.data(), [2 * ce / k], 1e-6, 1e-5, "cls");
    assertClose(await l.parts.box.data(), [2 * l1 / k], 1e-6, 1e-5, "l1");
    assertClose(await cls.grad!.data(), gCe.map((g) => 2 * g), 1e-7, 1e-5, "d/dcls");
    assertClose(await reg.grad!.data(), gReg, 1e-7, 1e-5, "d/dreg (l1)");
    assert.equal(l.numPositives, positives.length);
  }

  /** The coder's decoding (stds 0.1, 0.1, 0.2, 0.2) in float64, for finite differences. */
  const decode64 = ([x1, y1, x2, y2]: number[], [dx, dy, dw, dh]: number[]) => {
    const w = x2 - x1, h = y2 - y1, cx = x1 + w / 2 + w * 0.1 * dx, cy = y1 + h / 2 + h * 0.1 * dy;
    const bw = w * Math.exp(0.2 * dw), bh = h * Math.exp(0.2 * dh);
    return [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2];
  };

  async function t_giou() {
    const cls = leaf(clsHost, [k, w]), reg = leaf(regHost, [k, 4 * c]);
    const l = roiBaselineLoss({ cls, reg }, targets, { weight: 2, box: "giou", boxWeight: 10 });
    backward(l.total);
    let giou = 0;
    for (const i of positives) {
      giou += 1 - overlapHost(decode64(roiOf(i), deltasOf(i)), 0, gtOf(i), 0, "giou");
    }
    assertClose(await l.parts.box.data(), [20 * giou / k], 1e-5, 1e-4, "giou");
    // Float64 finite differences of the GIoU term on every positive's own deltas.
    const g = await reg.grad!.data();
    for (const i of positives) {
      for (let j = 0; j < 4; j++) {
        const at = (h: number) => {
          const d = deltasOf(i);
          d[j] += h;
          return 20 * (1 - overlapHost(decode64(roiOf(i), d), 0, gtOf(i), 0, "giou")) / k;
        };
        const fd = (at(1e-5) - at(-1e-5)) / 2e-5;
        const got = g[4 * (i * c + targets.labels[i]) + j];
        assertClose([got], [fd], 2e-5, 2e-3, `d/ddelta ${j} of RoI ${i}`);
      }
    }
  }

  await t_l1();
  await t_giou();
});

/** The device backends here: WebGPU where an adapter exists, native where it loads. */
const DEVICES: Backend[] = [
  ...(GPU ? [await gpuBackend()] : []),
  ...(NATIVE ? [nativeBackend()] : []),
];

Deno.test("rpnBaselineLoss and roiBaselineLoss: the device backends agree with the CPU", {
  ignore: DEVICES.length === 0,
}, async () => {
  const numAnchors = ANCHORS.boxes.length / 4;
  const rpnT = rpnSampledTargets(ANCHORS, GT, new Rng(2), {
    sampler: { num: 32, posFraction: 0.5 },
  });
  const roiT = roiTargets(PROPOSALS, GT, LABELS, { posIou: 0.5 });
  const k = roiT.labels.length;
  const host = {
    rpnCls: randomArray(2 * numAnchors, 5, -2, 2),
    rpnReg: randomArray(8 * numAnchors, 6, -1, 1),
    roiCls: randomArray(3 * k, 7, -2, 2),
    roiReg: randomArray(8 * k, 8, -0.5, 0.5),
  };
  const run = async (backend: Backend) => {
    const t = (v: Float32Array, shape: number[]) =>
      tensor(v, shape, { backend, requiresGrad: true });
    const rc = t(host.rpnCls, [2, numAnchors]), rr = t(host.rpnReg, [2, numAnchors, 4]);
    const oc = t(host.roiCls, [k, 3]), or = t(host.roiReg, [k, 8]);
    const rpn = rpnBaselineLoss({ cls: rc, reg: rr, perLevel: ANCHORS.perLevel }, rpnT, {
      weight: 12,
    });
    const l1 = roiBaselineLoss({ cls: oc, reg: or }, roiT, { weight: 2 });
    const giou = roiBaselineLoss({ cls: oc, reg: or }, roiT, { box: "giou", boxWeight: 10 });
    const parts = [rpn.parts.cls, rpn.parts.box, l1.parts.cls, l1.parts.box, giou.parts.box];
    backward(add(add(rpn.total, l1.total), giou.total));
    return {
      values: await Promise.all(parts.map(async (p) => (await p.data())[0])),
      grads: await Promise.all([rc, rr, oc, or].map(async (x) => Array.from(await x.grad!.data()))),
    };
  };
  const want = await run(CPU);
  for (const backend of DEVICES) {
    const got = await run(backend);
    assertClose(got.values, want.values, 1e-5, 1e-4, `${backend.name} values`);
    got.grads.forEach((g, i) =>
      assertClose(g, want.grads[i], 1e-6, 1e-4, `${backend.name} grad ${i}`)
    );
  }
});

Deno.test("roiBaselineLoss and the loss table: bad input gives clear errors", () => {
  const targets = roiTargets(PROPOSALS, GT, LABELS, { posIou: 0.5 });
  const k = targets.labels.length;
  const out = {
    cls: tensor(new Float32Array(k * 3), [k, 3], { backend: CPU }),
    reg: tensor(new Float32Array(k * 8), [k, 8], { backend: CPU }),
  };
  assert.throws(
    () => roiBaselineLoss(out, targets, { box: "smooth" as "l1" }),
    /unknown box loss "smooth" \(expected l1, giou\)/,
  );
  assert.throws(
    () => roiBaselineLoss({ ...out, reg: tensor(new Float32Array(k * 12), [k, 12]) }, targets),
    /3 logits \(classes and background\) and 12 deltas per RoI/,
  );
  const oneClass = {
    cls: tensor(new Float32Array(k * 2), [k, 2], { backend: CPU }),
    reg: tensor(new Float32Array(k * 4), [k, 4], { backend: CPU }),
  };
  assert.throws(() => roiBaselineLoss(oneClass, targets), /RoI 0 has label 1 with 1 classes/);
});

Deno.test("softmaxWithoutBackground: the mean of the stages' logits, background dropped", () => {
  const logits = Float32Array.of(2, 0, 4, 0, 0, 0);
  const p = softmaxWithoutBackground(logits, 2, 2);
  const z = Math.exp(1) + 1 + Math.exp(2);
  assertClose(p, [Math.exp(1) / z, 1 / z, 1 / 3, 1 / 3], 1e-7);
  assertClose(TWO_STAGE_LOSS_TABLE.brs.probabilities(Float32Array.of(2, -4), 2, 2), [
    sigmoid(1),
    sigmoid(-2),
  ], 1e-7);
});

/** Narrow layers and few proposals on 64 px images (as two_stage_test.ts), with the stock losses. */
const SMALL_PARTS = smallTwoStageParts(FASTER_RCNN_CE_TINY_SHAPES.model);

const FASTER_CE: DetectorConfig<FasterRcnnModelConfig> = {
  ...FASTER_RCNN_CE_TINY_SHAPES,
  name: "faster_rcnn_ce_test_small",
  model: { ...FASTER_RCNN_CE_TINY_SHAPES.model, ...SMALL_PARTS },
  train: smallTrainSettings(4, 3),
  data: { kind: "shapes", train: 8, val: 2, size: 64, seed: 3 },
};

const CASCADE_CE: CascadeRcnnModelConfig = {
  ...CASCADE_RCNN_TINY_SHAPES.model,
  ...SMALL_PARTS,
  loss: "ce",
};

const BATCH = await shapesBatch(2, 11);

for (
  const [kind, build] of [
    ["faster_rcnn", () => buildFasterRcnn(FASTER_CE.model, { seed: 1, backend: FAST })],
    ["cascade_rcnn", () => buildCascadeRcnn(CASCADE_CE, { seed: 1, backend: FAST })],
  ] as const
) {
  Deno.test(`${kind} (ce): a few steps on one batch lower the loss; parts cls and box`, async () => {
    const model = build();
    const names = await tidyAsync(async () => Object.keys((await model.loss(BATCH)).parts));
    const want = ["rpn.cls", "rpn.box"];
    for (let s = 0; s < model.stages.length; s++) want.push(`s${s}.cls`, `s${s}.box`);
    assert.deepEqual(names, want);
    const totals = await fitSteps(model, BATCH, 15, { lr: 0.02, maxGradNorm: 10 });
    assert.ok(totals.every(Number.isFinite), `non-finite loss: ${totals}`);
    assert.ok(
      totals.at(-1)! < 0.7 * totals[0],
      `loss did not fall by 30%: ${totals.map((v) => v.toFixed(4))}`,
    );
    // Softmax scores in (0, 1), sorted, at most the cap.
    model.eval();
    const [d] = await model.predict(tensor(BATCH.images, [2, 3, 64, 64], { backend: FAST }), [
      [1, 1],
      [1, 1],
    ]);
    assert.ok(d.scores.length > 0 && d.scores.length <= model.config.test.maxPerImage);
    for (let i = 0; i < d.scores.length; i++) {
      assert.ok(d.scores[i] > 0 && d.scores[i] < 1);
      if (i > 0) assert.ok(d.scores[i] <= d.scores[i - 1]);
    }
  });
}

Deno.test("faster_rcnn (ce): a batch without objects gives cls parts and a zero box term", async () => {
  const empty = await shapesBatch(2, 5, [0, 0]);
  const model = buildFasterRcnn(FASTER_CE.model, { seed: 0, backend: FAST });
  const parts = await tidyAsync(async () => {
    const l = await model.loss(empty);
    backward(l.total);
    const out: Record<string, number> = {};
    for (const [name, t] of Object.entries(l.parts)) out[name] = (await t.data())[0];
    return out;
  });
  assert.equal(Math.abs(parts["rpn.box"]), 0);
  assert.equal(Math.abs(parts["s0.box"]), 0);
  // Untrained: BCE near log 2 over the drawn negatives, CE near log(C + 1).
  assert.ok(Math.abs(parts["rpn.cls"] - Math.log(2)) < 0.05, `rpn.cls ${parts["rpn.cls"]}`);
  const c = FASTER_CE.model.numClasses;
  assert.ok(Math.abs(parts["s0.cls"] - Math.log(c + 1)) < 0.1, `s0.cls ${parts["s0.cls"]}`);
});

Deno.test("faster_rcnn (ce) training: resume is bit-exact and the checkpoint predicts the same", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assertResumeIsExact(FASTER_CE, FAST, BATCH, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("two-stage losses: unknown names and unsupported pairings give clear errors", () => {
  assert.throws(
    () => buildDetector({ ...FASTER_CE.model, loss: "hinge" as "ce" }, { seed: 0, backend: CPU }),
    /faster_rcnn: unknown loss "hinge" \(expected brs, rs, ce\)/,
  );
  assert.throws(
    () => applyOverrides(FASTER_RCNN_CE_TINY_SHAPES, { loss: "focal" }),
    /Unknown loss "focal" for a faster_rcnn detector: expected one of brs, rs, ce/,
  );
  assert.throws(
    () => applyOverrides(MASK_RCNN_TINY_SHAPES, { loss: "ce" }),
    /Unknown loss "ce" for a mask_rcnn detector: expected one of brs, rs$/,
  );
  assert.throws(
    () => buildMaskRcnn({ ...MASK_RCNN_TINY_SHAPES.model, loss: "ce" }, { seed: 0, backend: CPU }),
    /the mask branch trains with "brs" or "rs" only/,
  );
  assert.equal(STOCK_RPN_CODER.stds.join(), "1,1,1,1");
});
