import assert from "node:assert/strict";
import { overlapHost } from "../../boxes/iou.ts";
import { RpnHead } from "../../detectors/heads/rpn_head.ts";
import { maxIouAssign, RPN_ASSIGN } from "../../detectors/max_iou_assigner.ts";
import { rpnAnchors } from "../../detectors/rpn.ts";
import { decodeUnitHost, RPN_UNIT_CODER, rpnLoss, rpnTargets } from "../../detectors/rpn_loss.ts";
import { backward } from "../../tensor/autograd.ts";
import { SGD } from "../../tensor/optim/sgd.ts";
import { randn, Rng } from "../../tensor/rng.ts";
import { keep, tensor, tidy } from "../../tensor/tensor.ts";
import { CPU } from "../tensor/helpers.ts";

const backend = CPU;
const STRIDES = [4, 8];
const SIZE = 32;
/** Image 0: one box on a ratio-1 anchor of stride 4 and one off-grid; image 1: none. */
const GT = [Float32Array.of(4, 4, 36, 36, 2, 10, 20, 19), new Float32Array(0)];

function features(rng: Rng, n: number, channels: number) {
  return STRIDES.map((s) => keep(randn([n, channels, SIZE / s, SIZE / s], rng, { backend })));
}

Deno.test("RpnHead: mmdetection's RPNHead layout per level", () => {
  const head = new RpnHead(
    { inChannels: 6, featChannels: 5, anchorsPerLocation: 3 },
    new Rng(0),
    backend,
  );
  const feats = features(new Rng(1), 2, 6);
  feats.forEach((f, l) => {
    const { cls, reg } = head.forwardLevel(f);
    const side = SIZE / STRIDES[l];
    assert.deepEqual(cls.shape, [2, 3, side, side]);
    assert.deepEqual(reg.shape, [2, 12, side, side]);
  });
  const out = head.forward(feats);
  const anchors = rpnAnchors(SIZE, SIZE, STRIDES);
  assert.deepEqual(out.perLevel, anchors.perLevel);
  assert.deepEqual(out.cls.shape, [2, 240]);
  assert.deepEqual(out.reg.shape, [2, 240, 4]);
  const names = head.namedParameters().map(([n]) => n).sort();
  assert.deepEqual(names, [
    "rpn_cls.bias",
    "rpn_cls.weight",
    "rpn_conv.bias",
    "rpn_conv.weight",
    "rpn_reg.bias",
    "rpn_reg.weight",
  ]);
  assert.throws(
    () =>
      new RpnHead({ inChannels: 6, featChannels: 0, anchorsPerLocation: 3 }, new Rng(0), backend),
    /featChannels 0/,
  );
});

Deno.test("rpnTargets: positives and ignored anchors come from maxIouAssign", () => {
  const anchors = rpnAnchors(SIZE, SIZE, STRIDES);
  const targets = rpnTargets(anchors, GT);
  const numAnchors = anchors.boxes.length / 4;
  let pos = 0, ign = 0;
  GT.forEach((gt, image) => {
    const { gtIndex } = maxIouAssign(anchors.boxes, gt, RPN_ASSIGN);
    gtIndex.forEach((g, a) => {
      const slot = targets.slots[image * numAnchors + a];
      if (g >= 0) {
        assert.equal(targets.index[slot - 2], image * numAnchors + a);
        pos++;
      } else if (g === -2) {
        assert.equal(slot, 1);
        ign++;
      } else assert.equal(slot, 0);
    });
  });
  // The fixed layout: five positives, all on the first box (the exact anchor
  // and its four shifted neighbours at IoU 0.75 / 0.6); the 18x9 box overlaps
  // no anchor by 0.3, so it gets no low-quality match.
  assert.deepEqual(Array.from(targets.index), [112, 133, 136, 139, 160]);
  assert.equal(ign, 104);
  assert.equal(targets.index.length, pos);
  assert.equal(targets.numIgnored, ign);
  assert.equal(targets.unitBox.length, 4 * pos);
  // The exact anchor [4, 4, 36, 36] (stride 4, location (5, 5), ratio 1) is a
  // positive whose unit-frame target is the unit anchor itself.
  const exact = (5 * 8 + 5) * 3 + 1;
  const p = targets.slots[exact] - 2;
  assert.ok(p >= 0);
  Array.from(targets.unitBox.subarray(4 * p, 4 * p + 4)).forEach((v, k) =>
    assert.ok(Math.abs(v - [-0.5, -0.5, 0.5, 0.5][k]) < 1e-6)
  );
  // docs/departures.md, Q19: with the RPN coder's stds, IoU in the unit frame equals the image IoU.
  const zero = decodeUnitHost(new Float32Array(4 * pos));
  targets.index.forEach((flat, q) => {
    const a = flat % numAnchors;
    const image = Math.floor(flat / numAnchors);
    const g = maxIouAssign(anchors.boxes, GT[image], RPN_ASSIGN).gtIndex[a];
    const best = overlapHost(anchors.boxes, a, GT[image], g, "iou");
    const unit = overlapHost(zero, q, targets.unitBox, q, "iou");
    assert.ok(Math.abs(unit - best) < 1e-5, `anchor ${a}: ${unit} vs ${best}`);
  });
});

Deno.test("Q19: deltas decoded around a unit anchor at the origin, stds (0.1, 0.1, 0.2, 0.2)", async () => {
  // dx 1 -> 0.1, dy -2 -> -0.2, dw 0.5 -> w = e^0.1, dh -1 -> h = e^-0.2.
  const w = Math.exp(0.1), h = Math.exp(-0.2);
  const expected = [0.1 - w / 2, -0.2 - h / 2, 0.1 + w / 2, -0.2 + h / 2];
  // A log-size offset past log(1000 / 16) is clamped as delta2bbox does.
  const clamped = Math.exp(Math.log(1000 / 16)) / 2;
  const deltas = Float32Array.of(1, -2, 0.5, -1, 0, 0, 30, 0);
  const host = decodeUnitHost(deltas);
  const device = await RPN_UNIT_CODER.decode(
    tensor([[-0.5, -0.5, 0.5, 0.5]], undefined, { backend }),
    tensor(deltas, [2, 4], { backend }),
  ).data();
  [...expected, -clamped, -0.5, clamped, 0.5].forEach((v, k) => {
    assert.ok(Math.abs(host[k] - v) < 1e-4, `host ${k}: ${host[k]} vs ${v}`);
    assert.ok(Math.abs(device[k] - v) < 1e-4, `device ${k}: ${device[k]} vs ${v}`);
  });
});

Deno.test("rpnLoss: finite, weighted 0.2, and falls over a few SGD steps", async () => {
  const head = new RpnHead(
    { inChannels: 8, featChannels: 8, anchorsPerLocation: 3 },
    new Rng(2),
    backend,
  );
  const feats = features(new Rng(3), 2, 8);
  const targets = rpnTargets(rpnAnchors(SIZE, SIZE, STRIDES), GT);
  const opt = new SGD(head.parameters(), { lr: 0.05, momentum: 0.9 });
  const totals: number[] = [];
  for (let step = 0; step < 6; step++) {
    const values = await tidy(() => {
      const l = rpnLoss(head.forward(feats), targets);
      assert.equal(l.numPositives, targets.index.length);
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
    // SB: the box term equals the ranking terms; everything carries the 0.2.
    assert.ok(Math.abs(box - (rank + sort)) < 1e-5);
    assert.ok(Math.abs(total - 2 * (rank + sort)) < 1e-5);
    assert.ok(rank <= 0.2 + 1e-6 && sort <= 0.2 + 1e-6);
    totals.push(total);
  }
  assert.ok(totals.at(-1)! < totals[0], `loss did not fall: ${totals.map((v) => v.toFixed(4))}`);
});

Deno.test("rpnLoss: no GT gives a finite loss with no box term", async () => {
  const head = new RpnHead(
    { inChannels: 4, featChannels: 4, anchorsPerLocation: 3 },
    new Rng(4),
    backend,
  );
  const feats = features(new Rng(5), 2, 4);
  const targets = rpnTargets(rpnAnchors(SIZE, SIZE, STRIDES), [
    new Float32Array(0),
    new Float32Array(0),
  ]);
  assert.equal(targets.index.length, 0);
  assert.equal(targets.numIgnored, 0);
  const l = rpnLoss(head.forward(feats), targets);
  assert.equal(l.numPositives, 0);
  assert.equal(l.parts.box, undefined);
  const total = (await l.total.data())[0];
  assert.ok(Number.isFinite(total));
  assert.ok(Math.abs(total - 0.4) < 1e-6);
  backward(l.total);
  for (const p of head.parameters()) {
    if (p.grad) assert.ok((await p.grad.data()).every((v) => v === 0));
  }
  assert.throws(
    () =>
      rpnLoss(
        head.forward(feats),
        rpnTargets(rpnAnchors(SIZE, SIZE, STRIDES), [new Float32Array(0)]),
      ),
    /targets cover 240 anchors, outputs 480/,
  );
});

Deno.test("rpnLoss: ignored anchors get no gradient, positives and negatives do", async () => {
  const targets = rpnTargets(rpnAnchors(SIZE, SIZE, STRIDES), GT);
  const m = targets.slots.length;
  const cls = tensor(new Float32Array(m).map((_, i) => Math.sin(i)), [2, m / 2], {
    backend,
    requiresGrad: true,
  });
  const reg = tensor(new Float32Array(4 * m), [2, m / 2, 4], { backend, requiresGrad: true });
  const l = rpnLoss({ cls, reg, perLevel: [] }, targets, { weight: 1 });
  backward(l.total);
  const g = await cls.grad!.data();
  const gr = await reg.grad!.data();
  let negativesWithGrad = 0;
  targets.slots.forEach((slot, i) => {
    if (slot === 1) assert.equal(g[i], 0, `ignored anchor ${i}`);
    if (slot === 0 && g[i] !== 0) negativesWithGrad++;
    if (slot >= 2) assert.notEqual(g[i], 0, `positive anchor ${i}`);
    // Only positives regress.
    if (slot < 2) { for (let k = 0; k < 4; k++) assert.equal(gr[4 * i + k], 0); }
  });
  assert.ok(negativesWithGrad > 0);
});
