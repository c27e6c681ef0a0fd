import assert from "node:assert/strict";
import { featureSizes, generateAnchors } from "../../detectors/anchors.ts";
import { atssAssign, nearestAnchors } from "../../detectors/atss_assigner.ts";
import { boxIouHost } from "../../boxes/iou.ts";

const ATSS_RS = {
  strides: [8, 16, 32, 64, 128],
  octaveBaseScale: 4,
  scalesPerOctave: 3,
  ratios: [1],
};

Deno.test("anchors follow mmdetection's layout", () => {
  const a = generateAnchors(64, 48, ATSS_RS);
  assert.deepEqual(a.featureSizes, [[8, 6], [4, 3], [2, 2], [1, 1], [1, 1]]);
  assert.deepEqual(a.perLevel, [144, 36, 12, 3, 3]);
  assert.equal(a.boxes.length, 198 * 4);
  // First location of P3: scales 4, 4*2^(1/3), 4*2^(2/3) times stride 8, centred on (0, 0).
  const sizes = [32, 32 * 2 ** (1 / 3), 32 * 2 ** (2 / 3)];
  sizes.forEach((s, k) => {
    assert.ok(Math.abs(a.boxes[4 * k] + s / 2) < 1e-4);
    assert.ok(Math.abs(a.boxes[4 * k + 2] - s / 2) < 1e-4);
  });
  // Second location is one stride to the right.
  assert.ok(Math.abs(a.boxes[12] - (8 - 16)) < 1e-4);
  assert.deepEqual(featureSizes(100, 100, [8, 128]), [[13, 13], [1, 1]]);
});

Deno.test("IoU on the host", () => {
  const a = [0, 0, 2, 2], b = [1, 1, 3, 3], c = [5, 5, 6, 6];
  assert.equal(boxIouHost(a, 0, b, 0), 1 / 7);
  assert.equal(boxIouHost(a, 0, c, 0), 0);
  assert.equal(boxIouHost(a, 0, a, 0), 1);
});

Deno.test("ATSS assignment", async (t) => {
  const anchors = generateAnchors(128, 128, ATSS_RS);
  await t.step("no ground truth: every anchor is negative", () => {
    const r = atssAssign(anchors.boxes, anchors.perLevel, new Float32Array(0));
    assert.equal(r.numPositives, 0);
    assert.ok(r.gtIndex.every((g) => g === -1));
  });
  await t.step("one box: positives have their centres inside and their IoUs as computed", () => {
    const gt = new Float32Array([30, 40, 90, 100]);
    const r = atssAssign(anchors.boxes, anchors.perLevel, gt);
    assert.ok(r.numPositives > 0 && r.numPositives <= 9 * 5);
    for (let a = 0; a < r.gtIndex.length; a++) {
      if (r.gtIndex[a] !== 0) continue;
      const cx = (anchors.boxes[4 * a] + anchors.boxes[4 * a + 2]) / 2;
      const cy = (anchors.boxes[4 * a + 1] + anchors.boxes[4 * a + 3]) / 2;
      assert.ok(cx > 30 && cx < 90 && cy > 40 && cy < 100, `anchor ${a} centre outside the box`);
      assert.ok(Math.abs(r.iou[a] - boxIouHost(anchors.boxes, a, gt, 0)) < 1e-6);
    }
  });
  await t.step("a box smaller than every anchor still gets its closest anchor", () => {
    const gt = new Float32Array([61, 61, 67, 67]);
    const r = atssAssign(anchors.boxes, anchors.perLevel, gt);
    assert.ok(r.numPositives >= 1);
  });
  await t.step("an anchor positive for two boxes takes the one it overlaps most", () => {
    const gt = new Float32Array([20, 20, 70, 70, 30, 30, 90, 80]);
    const joint = atssAssign(anchors.boxes, anchors.perLevel, gt);
    const alone = [0, 1].map((g) =>
      atssAssign(anchors.boxes, anchors.perLevel, gt.slice(4 * g, 4 * g + 4))
    );
    let shared = 0;
    for (let a = 0; a < joint.gtIndex.length; a++) {
      const in0 = alone[0].gtIndex[a] === 0, in1 = alone[1].gtIndex[a] === 0;
      if (in0 && in1) {
        shared++;
        const i0 = boxIouHost(anchors.boxes, a, gt, 0), i1 = boxIouHost(anchors.boxes, a, gt, 1);
        assert.equal(joint.gtIndex[a], i1 > i0 ? 1 : 0);
      } else if (in0) assert.equal(joint.gtIndex[a], 0);
      else if (in1) assert.equal(joint.gtIndex[a], 1);
      else assert.equal(joint.gtIndex[a], -1);
    }
    assert.ok(shared > 0, "the layout should make some anchor positive for both boxes");
  });
  await t.step("bad per-level counts", () => {
    assert.throws(() => atssAssign(anchors.boxes, [1, 2], new Float32Array(4)), /per-level counts/);
  });
});

/** ATSS candidate selection by a full sort, as written in the paper: nearest centres first. */
function candidatesBySort(anchors: Float32Array, perLevel: number[], gt: number[], topk: number) {
  const gx = (gt[0] + gt[2]) / 2, gy = (gt[1] + gt[3]) / 2;
  const out: number[] = [];
  let start = 0;
  for (const count of perLevel) {
    const dist = (a: number) =>
      Math.hypot(
        (anchors[4 * a] + anchors[4 * a + 2]) / 2 - gx,
        (anchors[4 * a + 1] + anchors[4 * a + 3]) / 2 - gy,
      );
    const order = Array.from({ length: count }, (_, i) => start + i);
    order.sort((p, q) => dist(p) - dist(q) || p - q);
    out.push(...order.slice(0, Math.min(topk, count)));
    start += count;
  }
  return out;
}

Deno.test("the candidates are the top-k nearest centres per level, ties to the lower index", () => {
  // Grid anchors put many centres at equal distances from a box centre on the grid.
  const a = generateAnchors(96, 64, {
    strides: [8, 16, 32],
    octaveBaseScale: 2,
    scalesPerOctave: 3,
    ratios: [1],
  });
  let seed = 5;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let trial = 0; trial < 40; trial++) {
    // Half of the boxes are centred on grid points (exact ties), half anywhere.
    const snap = trial % 2 === 0;
    const cx = snap ? 8 * Math.round(next() * 12) : next() * 96;
    const cy = snap ? 8 * Math.round(next() * 8) : next() * 64;
    const w = 4 + next() * 40, h = 4 + next() * 40;
    const gt = Array.from(new Float32Array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]));
    const want = candidatesBySort(a.boxes, a.perLevel, gt, 9);
    const cxs = new Float64Array(a.boxes.length / 4), cys = new Float64Array(a.boxes.length / 4);
    for (let i = 0; i < cxs.length; i++) {
      cxs[i] = (a.boxes[4 * i] + a.boxes[4 * i + 2]) / 2;
      cys[i] = (a.boxes[4 * i + 1] + a.boxes[4 * i + 3]) / 2;
    }
    const got9: number[] = [];
    let start = 0;
    for (const count of a.perLevel) {
      nearestAnchors(cxs, cys, (gt[0] + gt[2]) / 2, (gt[1] + gt[3]) / 2, start, count, 9, got9);
      start += count;
    }
    assert.deepEqual(got9, want, `candidates, trial ${trial}`);
    // Every positive of the assignment must be among the candidates of the sort.
    const result = atssAssign(a.boxes, a.perLevel, new Float32Array(gt), 9);
    for (let i = 0; i < result.gtIndex.length; i++) {
      if (result.gtIndex[i] === 0) assert.ok(want.includes(i), `anchor ${i} is no candidate`);
    }
    // The positives are the candidates whose IoU reaches mean + std with their centre inside.
    const overlaps = want.map((i) => boxIouHost(a.boxes, i, gt, 0));
    const mean = overlaps.reduce((s, v) => s + v, 0) / overlaps.length;
    const std = Math.sqrt(
      overlaps.reduce((s, v) => s + (v - mean) ** 2, 0) / (overlaps.length - 1),
    );
    const expected = want.filter((i, c) => {
      const acx = (a.boxes[4 * i] + a.boxes[4 * i + 2]) / 2,
        acy = (a.boxes[4 * i + 1] + a.boxes[4 * i + 3]) / 2;
      const inside = Math.min(acx - gt[0], acy - gt[1], gt[2] - acx, gt[3] - acy) > 0.01;
      return overlaps[c] >= mean + std && inside;
    }).sort((p, q) => p - q);
    const got = [...result.gtIndex.keys()].filter((i) => result.gtIndex[i] === 0);
    assert.deepEqual(got, expected, `trial ${trial}`);
  }
});
