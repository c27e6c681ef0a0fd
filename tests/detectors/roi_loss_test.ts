import assert from "node:assert/strict";
import { multiRoiAlign, Shared2FcBBoxHead } from "../../detectors/heads/roi_head.ts";
import { roiLoss } from "../../detectors/roi_loss.ts";
import { roiTargets } from "../../detectors/roi_targets.ts";
import { backward } from "../../tensor/autograd.ts";
import { SGD } from "../../tensor/optim/sgd.ts";
import { randn, Rng } from "../../tensor/rng.ts";
import { keep, tensor, tidy } from "../../tensor/tensor.ts";
import { CPU } from "../tensor/helpers.ts";

const backend = CPU;
const STRIDES = [4, 8];
const SIZE = 64;
const GT = [Float32Array.of(4, 4, 36, 36, 30, 10, 60, 30), new Float32Array(0)];
const LABELS = [Int32Array.of(0, 2), new Int32Array(0)];
const PROPOSALS = [
  Float32Array.of(6, 2, 34, 38, 0, 0, 20, 20, 28, 12, 58, 34, 40, 40, 60, 60),
  Float32Array.of(0, 0, 30, 30, 10, 10, 50, 50),
];

Deno.test("roiLoss: finite, self-balanced, and falls over a few SGD steps", async () => {
  const feats = STRIDES.map((s, l) =>
    keep(randn([2, 4, SIZE / s, SIZE / s], new Rng(10 + l), { backend }))
  );
  const head = new Shared2FcBBoxHead(
    { inChannels: 4, roiSize: 7, fcChannels: 16, numClasses: 3 },
    new Rng(1),
    backend,
  );
  const targets = roiTargets(PROPOSALS, GT, LABELS, { posIou: 0.5 });
  assert.deepEqual(targets.positivesPerImage, [4, 0]);
  const opt = new SGD(head.parameters(), { lr: 0.05, momentum: 0.9 });
  const totals: number[] = [];
  for (let step = 0; step < 6; step++) {
    const values = tidy(() => {
      const l = roiLoss(head.forward(multiRoiAlign(feats, targets.rois, STRIDES)), targets);
      assert.equal(l.numPositives, 4);
      backward(l.total);
      opt.step();
      opt.zeroGrad();
      return [l.total, l.parts.rank, l.parts.sort, l.parts.box].map((t) => keep(t));
    });
    const [total, rank, sort, box] = await Promise.all(
      values.map(async (t) => (await t.data())[0]),
    );
    values.forEach((t) => t.dispose());
    assert.ok([total, rank, sort, box].every(Number.isFinite), `step ${step}: ${total}`);
    assert.ok(Math.abs(box - (rank + sort)) < 1e-5);
    assert.ok(Math.abs(total - 2 * (rank + sort)) < 1e-5);
    totals.push(total);
  }
  assert.ok(totals.at(-1)! < totals[0], `loss did not fall: ${totals.map((v) => v.toFixed(4))}`);
});

Deno.test("roiLoss: only a positive's own class regresses, and its logit moves", async () => {
  const targets = roiTargets(PROPOSALS, GT, LABELS, { posIou: 0.5 });
  const k = targets.labels.length, c = 3;
  const cls = tensor(new Float32Array(k * c).map((_, i) => Math.sin(i)), [k, c], {
    backend,
    requiresGrad: true,
  });
  const reg = tensor(new Float32Array(4 * k * c).map((_, i) => 0.1 * Math.cos(i)), [k, 4 * c], {
    backend,
    requiresGrad: true,
  });
  const l = roiLoss({ cls, reg }, targets);
  backward(l.total);
  const gr = await reg.grad!.data();
  const gc = await cls.grad!.data();
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < c; j++) {
      const own = targets.labels[i] === j;
      const g = Array.from(gr.subarray(4 * (i * c + j), 4 * (i * c + j + 1)));
      assert.equal(g.some((v) => v !== 0), own, `RoI ${i} class ${j}`);
    }
    // A positive's own class logit is pushed.
    if (targets.labels[i] >= 0) assert.notEqual(gc[i * c + targets.labels[i]], 0);
  }
  // Class-agnostic deltas: every positive's row regresses.
  // (non-zero deltas: an added GT box decoded with zero deltas sits at GIoU's minimum, with zero gradient)
  const reg4 = tensor(new Float32Array(4 * k).map((_, i) => 0.1 * Math.cos(i)), [k, 4], {
    backend,
    requiresGrad: true,
  });
  backward(roiLoss({ cls, reg: reg4 }, targets, { weight: 1 }).total);
  const g4 = await reg4.grad!.data();
  for (let i = 0; i < k; i++) {
    assert.equal(
      Array.from(g4.subarray(4 * i, 4 * i + 4)).some((v) => v !== 0),
      targets.labels[i] >= 0,
    );
  }
  assert.throws(
    () => roiLoss({ cls, reg: tensor(new Float32Array(8 * k), [k, 8], { backend }) }, targets),
    RangeError,
  );
});

Deno.test("roiLoss: no GT gives the official constants (rank, sort and box 1) with zero gradient", async () => {
  const targets = roiTargets([PROPOSALS[1]], [new Float32Array(0)], [new Int32Array(0)], {
    posIou: 0.5,
  });
  const cls = tensor(new Float32Array(6), [2, 3], { backend, requiresGrad: true });
  const reg = tensor(new Float32Array(24), [2, 12], { backend, requiresGrad: true });
  const l = roiLoss({ cls, reg }, targets);
  assert.equal(l.numPositives, 0);
  assert.equal((await l.parts.box.data())[0], 1);
  assert.equal((await l.total.data())[0], 3);
  backward(l.total);
  assert.ok((await cls.grad!.data()).every((v) => v === 0));
});
