import assert from "node:assert/strict";
import { join } from "node:path";
import type { DetectorConfig } from "../../configs/types.ts";
import PAA_TINY_SHAPES from "../../configs/paa_tiny_shapes.ts";
import { overlapHost } from "../../boxes/iou.ts";
import type { Batch } from "../../data/loader.ts";
import type { Anchors } from "../../detectors/anchors.ts";
import { buildDetector } from "../../detectors/build.ts";
import { buildPaa, type Paa, type PaaModelConfig } from "../../detectors/paa.ts";
import { paaReassign } from "../../detectors/paa_gmm.ts";
import { PAA_LOSSES, type PaaLoss } from "../../detectors/paa_losses.ts";
import { PAA_ASSIGN, paaCandidates, paaReassignBatch } from "../../detectors/paa_targets.ts";
import { scoreVoting } from "../../detectors/score_voting.ts";
import { applyOverrides } from "../../engine/config.ts";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { tensor, tidyAsync } from "../../tensor/tensor.ts";
import { smallTrainSettings } from "../engine/helpers.ts";
import {
  assertBlankDetectsNothing,
  assertResumeIsExact,
  fitSteps,
  shapesBatch,
} from "./helpers.ts";
import { CPU, GPU, gpuBackend, NATIVE, nativeBackend } from "../tensor/helpers.ts";

/** The tiny config cut to 64 px images and narrow layers, as the ATSS tests do. */
const SMALL: DetectorConfig<PaaModelConfig> = {
  ...PAA_TINY_SHAPES,
  name: "paa_test_small",
  model: {
    ...PAA_TINY_SHAPES.model,
    backbone: { ...PAA_TINY_SHAPES.model.backbone, baseWidth: 8 },
    neckChannels: 16,
    head: { ...PAA_TINY_SHAPES.model.head, featChannels: 16, stackedConvs: 1, normGroups: 4 },
  },
  train: smallTrainSettings(4, 3),
  data: { kind: "shapes", train: 8, val: 2, size: 64, seed: 3 },
};

/** WebGPU where there is an adapter (else the CPU), and native. */
const BACKENDS: Backend[] = [GPU ? await gpuBackend() : CPU, ...(NATIVE ? [nativeBackend()] : [])];
/** The fastest backend here, for the tests that train. */
const FAST = NATIVE ? nativeBackend() : BACKENDS[0];

const BATCH = await shapesBatch(2, 11);

function build(loss: PaaLoss, seed: number, backend = FAST, test = SMALL.model.test): Paa {
  return buildPaa({ ...SMALL.model, loss, test }, { seed, backend });
}

/** `steps` SGD steps on `batch` with the configs' clipping; the total loss of each. */
function fit(model: Paa, batch: Batch, steps: number, lr: number) {
  return fitSteps(model, batch, steps, { lr, maxGradNorm: 10 });
}

/** Anchors on one level from a flat list of boxes. */
function anchorsOf(boxes: number[]): Anchors {
  const n = boxes.length / 4;
  return { boxes: Float32Array.from(boxes), perLevel: [n], featureSizes: [[1, n]], perLocation: 1 };
}

Deno.test("PAA first stage: max IoU with thresholds 0.1 / 0.1 and low-quality matches from 0", async (t) => {
  assert.deepEqual({ ...PAA_ASSIGN }, {
    posIou: 0.1,
    negIou: 0.1,
    minPosIou: 0,
    lowQuality: true,
  });
  await t.step("IoU 0.1 is a candidate, just under 0.1 a negative, nothing ignored", () => {
    // GT [0, 0, 10, 10]: anchor 0 overlaps it by 10 / 100 = 0.1, anchor 1 by 0.099, anchor 2
    // by 1 (its best); anchor 3 is far away.
    const anchors = anchorsOf([0, 0, 10, 1, 0, 0, 10, 0.99, 0, 0, 10, 10, 40, 40, 50, 50]);
    const c = paaCandidates(anchors, [Float32Array.of(0, 0, 10, 10)], [Int32Array.of(3)]);
    assert.deepEqual(Array.from(c.anchorIndex), [0, 2]);
    assert.deepEqual(Array.from(c.label), [3, 3]);
    assert.deepEqual(Array.from(c.gtBox), [0, 0, 10, 10, 0, 0, 10, 10]);
  });
  await t.step("each anchor goes to the GT it overlaps most; a tie to the first GT", () => {
    const anchors = anchorsOf([0, 0, 10, 10, 10, 0, 20, 10, 5, 0, 15, 10]);
    const gts = Float32Array.of(0, 0, 10, 10, 10, 0, 20, 10);
    const c = paaCandidates(anchors, [gts], [Int32Array.of(0, 1)]);
    assert.deepEqual(Array.from(c.anchorIndex), [0, 1, 2]);
    // Anchor 2 overlaps both GTs by 50/150 = 1/3: the first wins.
    assert.deepEqual(Array.from(c.gtIndex), [0, 1, 0]);
  });
  await t.step("a GT whose best IoU is under 0.1 still claims the anchors of its best IoU", () => {
    // A 2x2 GT inside 20x20 anchors: IoU 4/400 = 0.01 with the two anchors that contain it.
    const anchors = anchorsOf([0, 0, 20, 20, 0, 0, 20, 20, 30, 0, 50, 20]);
    const c = paaCandidates(anchors, [Float32Array.of(5, 5, 7, 7)], [Int32Array.of(1)]);
    assert.deepEqual(Array.from(c.anchorIndex), [0, 1]);
  });
  await t.step("images are concatenated with flat indices image * A + anchor", () => {
    const anchors = anchorsOf([0, 0, 10, 10, 20, 20, 30, 30]);
    const c = paaCandidates(anchors, [Float32Array.of(20, 20, 30, 30), new Float32Array(0)], [
      Int32Array.of(2),
      new Int32Array(0),
    ]);
    assert.deepEqual(Array.from(c.index), [1]);
    assert.deepEqual(Array.from(c.imageStart), [0, 1, 1]);
    const d = paaCandidates(anchors, [new Float32Array(0), Float32Array.of(0, 0, 10, 10)], [
      new Int32Array(0),
      Int32Array.of(4),
    ]);
    assert.deepEqual(Array.from(d.index), [2]);
    assert.deepEqual(Array.from(d.image), [1]);
    assert.deepEqual(Array.from(d.imageStart), [0, 0, 1]);
  });
});

Deno.test("PAA re-assignment: the device scores and the GMM per image, wired as paaReassign says", async () => {
  for (const loss of ["brs", "focal"] as const) {
    const model = build(loss, 2);
    await tidyAsync(async () => {
      const out = model.forward(model.images(BATCH));
      const a = await model.assign(out, BATCH);
      const { host } = model.anchors(BATCH.height, BATCH.width);
      assert.deepEqual(a.candidates, paaCandidates(host, BATCH.boxes, BATCH.labels));
      const p = a.candidates.index.length;
      assert.ok(p > 10, `${p} candidates`);
      // Scores: focal (γ 2, α 0.25) summed over the classes + w · GIoU, recomputed on the host.
      const [cls, reg] = await Promise.all([out.cls.data(), out.reg.data()]);
      const classes = SMALL.model.numClasses;
      const boxWeight = loss === "focal" ? 1.3 : 1;
      const deltas = new Float32Array(4 * p);
      a.candidates.index.forEach((i, k) => deltas.set(reg.subarray(4 * i, 4 * i + 4), 4 * k));
      const decoded = model.coder.decodeHost(a.candidates.anchor, deltas);
      for (let k = 0; k < p; k++) {
        let focal = 0;
        for (let c = 0; c < classes; c++) {
          const x = cls[a.candidates.index[k] * classes + c];
          const t = c === a.candidates.label[k] ? 1 : 0;
          const prob = 1 / (1 + Math.exp(-x));
          const q = t ? 1 - prob : prob;
          const bce = Math.max(x, 0) - x * t + Math.log1p(Math.exp(-Math.abs(x)));
          focal += (t ? 0.25 : 0.75) * q * q * bce;
        }
        const giou = 1 - overlapHost(decoded, k, a.candidates.gtBox, k, "giou");
        const want = focal + boxWeight * giou;
        assert.ok(Math.abs(a.scores[k] - want) < 1e-4 * Math.max(1, want), `${k}: ${a.scores[k]}`);
      }
      // The survivors are exactly paaReassign's positives on the same scores, image by image.
      const regCovar = loss === "focal" ? 1e-6 : 1e-5;
      const expected: number[] = [];
      for (let i = 0; i < BATCH.batchSize; i++) {
        const from = a.candidates.imageStart[i], to = a.candidates.imageStart[i + 1];
        const r = paaReassign({
          posInds: a.candidates.anchorIndex.slice(from, to),
          posGtInds: a.candidates.gtIndex.slice(from, to),
          posLosses: a.scores.slice(from, to),
          numAnchorsPerLevel: host.perLevel,
        }, { regCovar });
        assert.deepEqual(a.perImage[i].positives, r.positives);
        expected.push(...Array.from(r.positives, (anchor) => i * a.candidates.numAnchors + anchor));
      }
      expected.sort((x, y) => x - y);
      assert.deepEqual(Array.from(a.targets.index), expected);
      assert.ok(expected.length > 0 && expected.length < p, `${expected.length} of ${p} survive`);
      // Survivors keep their first-stage class and GT box.
      a.targets.index.forEach((flat, j) => {
        const k = a.candidates.index.indexOf(flat);
        assert.equal(a.targets.label[j], a.candidates.label[k]);
        assert.deepEqual(
          a.targets.gtBox.subarray(4 * j, 4 * j + 4),
          a.candidates.gtBox.subarray(4 * k, 4 * k + 4),
        );
      });
      const l = await model.loss(BATCH);
      assert.equal(l.numPositives, expected.length);
      assert.equal(l.numCandidates, p);
      assert.ok(l.gmmMs >= 0 && Number.isFinite(l.gmmMs));
    });
  }
});

Deno.test("scoreVoting: hand-made boxes", async (t) => {
  const w = (iou: number, score: number) => Math.exp(-((1 - iou) ** 2) / 0.025) * score;
  await t.step(
    "a kept box moves to the weighted mean of its class's overlapping candidates",
    () => {
      const kept = {
        boxes: Float32Array.of(0, 0, 10, 10),
        scores: Float32Array.of(0.8),
        labels: Int32Array.of(2),
      };
      const candidates = {
        boxes: Float32Array.of(
          0,
          0,
          10,
          10, // the kept box itself: IoU 1
          2,
          0,
          12,
          10, // IoU 80 / 120 = 2/3
          0,
          0,
          10,
          10, // same box, other class: no vote
          10.05,
          0,
          20,
          10, // disjoint: no vote
          9.95,
          0,
          19.95,
          10, // IoU 0.5 / 199.5 < 0.01: no vote
        ),
        scores: Float32Array.of(0.8, 0.5, 0.9, 0.9, 0.9),
        labels: Int32Array.of(2, 2, 1, 2, 2),
      };
      const v = scoreVoting(kept, candidates);
      const w0 = w(1, 0.8), w1 = w(2 / 3, 0.5);
      const x1 = (w1 * 2) / (w0 + w1), x2 = (w0 * 10 + w1 * 12) / (w0 + w1);
      // The IoUs are float32 (mmdetection's bbox_overlaps), the expected values float64.
      [x1, 0, x2, 10].forEach((want, k) => assert.ok(Math.abs(v.boxes[k] - want) < 1e-6, `${k}`));
      assert.deepEqual(v.scores, kept.scores);
      assert.deepEqual(v.labels, kept.labels);
    },
  );
  await t.step("a candidate just above IoU 0.01 votes", () => {
    const kept = {
      boxes: Float32Array.of(0, 0, 10, 10),
      scores: Float32Array.of(1),
      labels: Int32Array.of(0),
    };
    // IoU 2 / 198 ≈ 0.0101.
    const candidates = {
      boxes: Float32Array.of(0, 0, 10, 10, 9.8, 0, 19.8, 10),
      scores: Float32Array.of(1, 1),
      labels: Int32Array.of(0, 0),
    };
    const v = scoreVoting(kept, candidates);
    const iou = 2 / 198, w1 = w(iou, 1), w0 = w(1, 1);
    assert.ok(Math.abs(v.boxes[0] - (w1 * 9.8) / (w0 + w1)) < 1e-6);
  });
  await t.step(
    "the result is sorted by descending score; each box votes with its own class",
    () => {
      const kept = {
        boxes: Float32Array.of(0, 0, 10, 10, 20, 20, 30, 30),
        scores: Float32Array.of(0.3, 0.7),
        labels: Int32Array.of(0, 1),
      };
      const v = scoreVoting(kept, kept);
      assert.deepEqual(Array.from(v.scores), [0.7, 0.3].map(Math.fround));
      assert.deepEqual(Array.from(v.labels), [1, 0]);
      assert.deepEqual(Array.from(v.boxes), [20, 20, 30, 30, 0, 0, 10, 10]);
    },
  );
  await t.step("no detections, and mismatched arrays", () => {
    const none = {
      boxes: new Float32Array(0),
      scores: new Float32Array(0),
      labels: new Int32Array(0),
    };
    assert.deepEqual(scoreVoting(none, none), none);
    assert.throws(
      () => scoreVoting({ ...none, scores: Float32Array.of(1) }, none),
      /kept has 0 coordinates and 0 labels for 1 scores/,
    );
  });
});

Deno.test("PAA: a few steps on one batch lower each loss", async (t) => {
  for (const loss of PAA_LOSSES) {
    await t.step(loss, async () => {
      const totals = await fit(build(loss, 1), BATCH, 10, 0.01);
      assert.ok(totals.every(Number.isFinite), `non-finite loss: ${totals}`);
      assert.ok(
        totals.at(-1)! < totals[0],
        `${loss} loss did not fall: ${totals.map((v) => v.toFixed(4))}`,
      );
    });
  }
});

for (const backend of BACKENDS) {
  Deno.test(`PAA: the losses and detections on ${backend.name}`, async () => {
    for (const loss of ["brs", "focal"] as const) {
      const model = build(loss, 4, backend);
      const parts = await tidyAsync(async () => {
        const l = await model.loss(BATCH);
        backward(l.total);
        const out: Record<string, number> = {};
        for (const [name, v] of Object.entries(l.parts)) out[name] = (await v.data())[0];
        return out;
      });
      const names = loss === "brs" ? ["rank", "sort", "box"] : ["cls", "box", "iou"];
      assert.deepEqual(Object.keys(parts), names);
      for (const v of Object.values(parts)) assert.ok(Number.isFinite(v) && v > 0, `${loss}: ${v}`);
      // Self-balance: the box term equals rank + sort.
      if (loss === "brs") assert.ok(Math.abs(parts.box - parts.rank - parts.sort) < 1e-5);
      model.eval();
      const images = tensor(BATCH.images, [2, 3, 64, 64], { backend });
      const dets = await model.predict(images, [[1, 1], [1, 1]]);
      for (const d of dets) {
        assert.equal(d.scores.length, SMALL.model.test.maxPerImage);
        for (let k = 1; k < d.scores.length; k++) assert.ok(d.scores[k] <= d.scores[k - 1]);
        for (const v of d.boxes) assert.ok(v >= 0 && v <= 64);
      }
    }
  });
}

Deno.test("PAA: detections are capped, sorted, voted and in original pixels", async () => {
  const model = build("brs", 2);
  await fit(model, BATCH, 5, 0.01);
  model.eval();
  const images = tensor(BATCH.images, [2, 3, 64, 64], { backend: FAST });
  const [a] = await model.predict(images, [[1, 1], [1, 1]]);
  // The first image resized by (0.5, 0.25): its boxes divided by the scales.
  const [scaled] = await model.predict(images, [[0.5, 0.25], [1, 1]]);
  assert.deepEqual(scaled.scores, a.scores);
  assert.deepEqual(scaled.labels, a.labels);
  for (let k = 0; k < a.boxes.length; k++) {
    const s = k % 2 === 0 ? 0.5 : 0.25;
    assert.ok(Math.abs(scaled.boxes[k] - a.boxes[k] / s) < 1e-4 * (1 + a.boxes[k] / s));
  }
  // Without voting: the same scores and classes, the NMS boxes.
  const plain = build("brs", 2, FAST, { ...SMALL.model.test, scoreVoting: false });
  plain.loadStateDict(model.stateDict());
  plain.eval();
  const [b] = await plain.predict(images, [[1, 1], [1, 1]]);
  assert.deepEqual(b.scores, a.scores);
  assert.deepEqual(b.labels, a.labels);
  assert.notDeepEqual(b.boxes, a.boxes);
  // A threshold above every score leaves nothing.
  const strict = build("brs", 2, FAST, { ...SMALL.model.test, scoreThr: 0.999 });
  strict.eval();
  const [none] = await strict.predict(images, [[1, 1], [1, 1]]);
  assert.equal(none.scores.length, 0);
});

Deno.test("PAA: images without objects, NaN scores and bad input", async (t) => {
  await t.step(
    "a batch without objects: zeros (ranking), the focal loss of all negatives (focal)",
    async () => {
      const empty = await shapesBatch(2, 5, [0, 0]);
      assert.ok(empty.boxes.every((b) => b.length === 0));
      for (const loss of PAA_LOSSES) {
        const model = build(loss, 0);
        const parts = await tidyAsync(async () => {
          const l = await model.loss(empty);
          assert.equal(l.numPositives, 0);
          assert.equal(l.numCandidates, 0);
          backward(l.total);
          const out: Record<string, number> = {};
          for (const [name, v] of Object.entries(l.parts)) out[name] = (await v.data())[0];
          return out;
        });
        for (const [name, v] of Object.entries(parts)) {
          if (loss === "focal" && name === "cls") assert.ok(v > 0 && Number.isFinite(v));
          else assert.ok(v === 0, `${loss} ${name}: ${v}`);
        }
      }
    },
  );
  await t.step("one image without objects in a batch trains as usual", async () => {
    const mixed: Batch = {
      ...BATCH,
      boxes: [BATCH.boxes[0], new Float32Array(0)],
      labels: [BATCH.labels[0], new Int32Array(0)],
    };
    const totals = await fit(build("brs", 3), mixed, 2, 0.01);
    assert.ok(totals.every(Number.isFinite), `${totals}`);
  });
  await t.step("a NaN score stops the re-assignment with a clear error", async () => {
    const model = build("brs", 0);
    const { host } = model.anchors(64, 64);
    const candidates = paaCandidates(host, BATCH.boxes, BATCH.labels);
    const scores = new Float32Array(candidates.index.length).fill(0.5);
    scores[3] = NaN;
    assert.throws(
      () => paaReassignBatch(candidates, scores, host.perLevel, { topk: 9 }),
      new RegExp(
        `the score of candidate 3 \\(image 0, anchor ${
          candidates.anchorIndex[3]
        }\\) is NaN; the head's outputs are not finite`,
      ),
    );
    assert.throws(
      () => paaReassignBatch(candidates, scores.subarray(1), host.perLevel, { topk: 9 }),
      /scores for \d+ candidates/,
    );
    // Head outputs with a NaN logit, through the detector.
    const [n, a, c] = [2, host.boxes.length / 4, SMALL.model.numClasses];
    const cls = new Float32Array(n * a * c);
    cls[candidates.index[0] * c] = NaN;
    await assert.rejects(
      () =>
        tidyAsync(() =>
          model.assign({
            cls: tensor(cls, [n, a, c], { backend: FAST }),
            reg: tensor(new Float32Array(n * a * 4), [n, a, 4], { backend: FAST }),
          }, BATCH)
        ),
      /the score of candidate 0 \(image 0, anchor \d+\) is NaN/,
    );
  });
  await t.step("predict on blank images gives typed results", async () => {
    const model = build("brs", 0, FAST, { ...SMALL.model.test, scoreThr: 0.05 });
    model.eval();
    // An untrained head scores everything at its 0.01 prior: nothing above 0.05.
    await assertBlankDetectsNothing(model);
  });
  await t.step("bad configs, images and loss names", () => {
    assert.throws(
      () => build("hinge" as PaaLoss, 0),
      /Paa: unknown loss "hinge" \(expected brs, rs, bap, ap, focal\)/,
    );
    const model = build("brs", 0);
    assert.throws(
      () => model.forward(tensor(new Float32Array(3 * 40 * 40), [1, 3, 40, 40], { backend: FAST })),
      /Paa: image size 40x40 is not a multiple of 32/,
    );
    assert.throws(
      () => model.forward(tensor(new Float32Array(2 * 64 * 32), [2, 1, 64, 32], { backend: FAST })),
      /Paa: expected f32 images \[N, 3, H, W\]/,
    );
    assert.equal(buildDetector(SMALL.model, { seed: 0, backend: FAST }).config.kind, "paa");
  });
  await t.step("--loss is validated for paa", () => {
    for (const loss of PAA_LOSSES) {
      assert.equal(applyOverrides(PAA_TINY_SHAPES, { loss }).model.loss, loss);
    }
    assert.throws(
      () => applyOverrides(PAA_TINY_SHAPES, { loss: "alrp" }),
      /Unknown loss "alrp" for a paa detector: expected one of brs, rs, bap, ap, focal/,
    );
  });
});

Deno.test("PAA training: resume is bit-exact and the checkpoint predicts the same", async () => {
  const dir = await Deno.makeTempDir();
  for (const loss of ["brs", "focal"] as const) {
    const config = applyOverrides(SMALL, { loss });
    await assertResumeIsExact(config, FAST, BATCH, join(dir, loss));
  }
  await Deno.remove(dir, { recursive: true });
});
