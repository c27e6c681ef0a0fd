import assert from "node:assert/strict";
import { DetectionLoader, type LoaderSource } from "../../data/loader.ts";
import { LVIS_REPEAT_THRESHOLD, repeatFactors, repeatIndices } from "../../data/repeat_factors.ts";

Deno.test("repeatFactors() on a hand-made dataset", async (t) => {
  // 8 images: A = 0 on images 0-6 (f 7/8), B = 1 on images 0 and 1 (f 1/4, twice on image 0),
  // C = 2 on image 2 only (f 1/8), image 7 without annotations.
  const labels = [[0, 1, 1], [1, 0], [0, 2], [0], [0], [0], [0], []];
  await t.step("threshold 0.5: factors by hand", () => {
    const r = repeatFactors(labels, 0.5);
    const rB = Math.sqrt(0.5 / 0.25), rC = Math.sqrt(0.5 / 0.125); // rA = max(1, sqrt(4/7)) = 1
    assert.deepEqual([...r], [rB, rB, rC, 1, 1, 1, 1, 1]);
    assert.deepEqual(repeatIndices(r), [0, 0, 1, 1, 2, 2, 3, 4, 5, 6, 7]);
  });
  await t.step("threshold 1: every category below frequency 1 is oversampled", () => {
    const r = repeatFactors(labels, 1);
    assert.equal(r[3], Math.sqrt(8 / 7));
    assert.equal(r[7], 1);
  });
  await t.step("LVIS' threshold on 2,000 images: one image holding a rare category", () => {
    const many = Array.from({ length: 2000 }, (_, i) => (i === 5 ? [0, 1] : [0]));
    const r = repeatFactors(many, LVIS_REPEAT_THRESHOLD);
    assert.equal(r[5], Math.sqrt(1e-3 / (1 / 2000))); // sqrt(2)
    assert.equal(r.filter((v) => v !== 1).length, 1);
    assert.equal(repeatIndices(r).length, 2001);
  });
  await t.step("bad input", () => {
    assert.throws(() => repeatFactors(labels, 0), /threshold must be in \(0, 1\], got 0/);
    assert.throws(() => repeatFactors(labels, 1.5), RangeError);
    assert.throws(() => repeatIndices([1, 0.5]), /Repeat factor of image 1 is 0.5/);
    assert.throws(() => repeatIndices([NaN]), RangeError);
  });
});

Deno.test("DetectionLoader samples by repeat factor", async () => {
  const image = { width: 8, height: 8, channels: 3, data: new Uint8Array(8 * 8 * 3) };
  const labels = [[0, 1], [0], [0], [0]];
  const source: LoaderSource = {
    items: labels.map((l, i) => ({
      imageId: i + 1,
      width: 8,
      height: 8,
      boxes: new Float32Array(l.flatMap(() => [1, 1, 6, 5])),
      labels: Int32Array.from(l),
    })),
    images: labels.map(() => image),
    categoryIds: [1, 2],
  };
  const options = { batchSize: 2, seed: 3, transform: { flipProb: 0.5 } };
  // Category 1 is on 1 of 4 images: r = sqrt(1 / 0.25) = 2 at threshold 1, so image 1 twice.
  using loader = new DetectionLoader(source, { ...options, repeatThreshold: 1 });
  assert.deepEqual(loader.slots, [0, 0, 1, 2, 3]);
  assert.equal(loader.length, 3);
  const seen: number[] = [];
  const flips: boolean[] = [];
  for (let epoch = 0; epoch < 8; epoch++) {
    for await (const batch of loader.epoch(epoch)) {
      for (const m of batch.meta) {
        seen.push(m.imageId);
        if (m.imageId === 1) flips.push(m.flipped);
      }
    }
  }
  assert.equal(seen.length, 8 * 5);
  assert.equal(seen.filter((id) => id === 1).length, 16);
  assert.equal(seen.filter((id) => id === 3).length, 8);
  // The two copies are augmented independently: some epoch flips one and not the other.
  assert.ok(flips.some((f, k) => k % 2 === 0 && f !== flips[k + 1]), `flips ${flips}`);
  using plain = new DetectionLoader(source, options);
  assert.deepEqual(plain.slots, [0, 1, 2, 3]);
  assert.equal(plain.length, 2);
});
