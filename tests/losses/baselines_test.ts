import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import {
  binaryCrossEntropyWithLogits,
  crossEntropy,
  giouLoss,
  iouLoss,
  l1Loss,
  oneHot,
  scoreWeightedMean,
  scoreWeights,
  selfBalance,
  sigmoidFocalLoss,
  smoothL1Loss,
} from "../../losses/baselines/mod.ts";
import {
  assertClose,
  compareBackends,
  CPU,
  f64,
  GPU,
  gradcheck,
  poisonPool,
  randomArray,
  randomBoxes,
} from "../tensor/helpers.ts";

// ---------------------------------------------------------------------------
// Plain-JS float64 references, written from the PyTorch / mmdetection formulas.

const sig = (x: number) => 1 / (1 + Math.exp(-x));
const bce = (x: number, t: number) => -(t * Math.log(sig(x)) + (1 - t) * Math.log(1 - sig(x)));

function focalRef(x: number, t: number, alpha: number | null, gamma: number): number {
  const p = sig(x);
  const pt = p * t + (1 - p) * (1 - t); // torchvision's p_t
  const at = alpha === null ? 1 : alpha * t + (1 - alpha) * (1 - t);
  return at * (1 - pt) ** gamma * bce(x, t);
}

function reduceRef(values: number[], reduction: string, avg?: number): number[] {
  if (reduction === "none") return values;
  const s = values.reduce((a, b) => a + b, 0);
  return [reduction === "sum" ? s : s / (avg ?? values.length)];
}

function boxRef(p: number[], t: number[], mode: "iou" | "giou", eps = 1e-6): number {
  const area = (b: number[]) => (b[2] - b[0]) * (b[3] - b[1]);
  const iw = Math.max(0, Math.min(p[2], t[2]) - Math.max(p[0], t[0]));
  const ih = Math.max(0, Math.min(p[3], t[3]) - Math.max(p[1], t[1]));
  const inter = iw * ih;
  const union = Math.max(area(p) + area(t) - inter, eps);
  if (mode === "iou") return inter / union;
  const enclose = Math.max(
    (Math.max(p[2], t[2]) - Math.min(p[0], t[0])) * (Math.max(p[3], t[3]) - Math.min(p[1], t[1])),
    eps,
  );
  return inter / union - (enclose - union) / enclose;
}

/** Pred boxes near `gt`: overlapping, with distinct coordinates (no kinks at the test point). */
function jitterBoxes(gt: Float32Array, seed: number, scale = 1.5): Float32Array {
  const r = randomArray(gt.length, seed, -scale, scale);
  return gt.map((v, i) => v + r[i]);
}

const i32 = (data: number[], backend: Backend = CPU) =>
  tensor(Int32Array.from(data), [data.length], { backend });

async function values(t: Tensor): Promise<number[]> {
  return Array.from(await t.data());
}

async function assertThrowsType(fn: () => unknown, op: string): Promise<void> {
  await assert.rejects(async () => await fn(), (e: unknown) => {
    assert.ok(e instanceof TypeError, `expected TypeError, got ${e}`);
    assert.match((e as Error).message, new RegExp(`^${op}`));
    return true;
  });
}

// ---------------------------------------------------------------------------

Deno.test("sigmoidFocalLoss matches the torchvision formula", async (t) => {
  const n = 5, c = 7;
  const x = Array.from(randomArray(n * c, 1, -4, 4));
  const labels = [0, 6, 7, 3, 3]; // 7 = background
  const onehot = Array.from(
    { length: n * c },
    (_, i) => labels[Math.floor(i / c)] === i % c ? 1 : 0,
  );
  const soft = Array.from(randomArray(n * c, 2, 0, 1));
  for (const [alpha, gamma] of [[0.25, 2], [null, 1.5], [0.5, 0], [0.25, 1], [0.75, 3]] as const) {
    await t.step(`alpha ${alpha}, gamma ${gamma}`, async () => {
      for (const targets of [onehot, soft]) {
        const ref = x.map((v, i) => focalRef(v, targets[i], alpha, gamma));
        for (const reduction of ["none", "sum", "mean"] as const) {
          const out = sigmoidFocalLoss(f64(x, [n, c]), f64(targets, [n, c]), {
            alpha,
            gamma,
            reduction,
          });
          assertClose(await values(out), reduceRef(ref, reduction), 1e-12, 1e-10);
        }
      }
    });
  }
  await t.step("i32 labels equal one-hot targets (out-of-range label = background)", async () => {
    const a = sigmoidFocalLoss(f64(x, [n, c]), i32(labels), { reduction: "none" });
    const b = sigmoidFocalLoss(f64(x, [n, c]), f64(onehot, [n, c]), { reduction: "none" });
    assertClose(await values(a), await values(b), 0, 0);
  });
  await t.step("weight [N, 1] and avgFactor", async () => {
    const w = [1, 0, 2, 0.5, 3];
    const ref = x.map((v, i) => w[Math.floor(i / c)] * focalRef(v, onehot[i], 0.25, 2));
    const out = sigmoidFocalLoss(f64(x, [n, c]), f64(onehot, [n, c]), {
      weight: f64(w, [n, 1]),
      avgFactor: 3,
    });
    assertClose(await values(out), reduceRef(ref, "mean", 3), 1e-12, 1e-10);
    const byTensor = sigmoidFocalLoss(f64(x, [n, c]), f64(onehot, [n, c]), {
      weight: f64(w, [n, 1]),
      avgFactor: f64([3], []),
    });
    assertClose(await values(byTensor), reduceRef(ref, "mean", 3), 1e-12, 1e-10);
  });
  await t.step("extreme logits stay finite", async () => {
    const out = sigmoidFocalLoss(f64([-100, 100, 100, -100], [2, 2]), f64([1, 0, 1, 0], [2, 2]), {
      reduction: "none",
    });
    const v = await values(out);
    assert.ok(v.every(Number.isFinite), `${v}`);
    assertClose(v, [0.25 * 100, 0.75 * 100, 0, 0], 1e-9, 1e-9);
  });
});

Deno.test("sigmoidFocalLoss gradients (float64 finite differences)", async (t) => {
  const n = 4, c = 3;
  const x = randomArray(n * c, 3, -3, 3);
  const soft = Array.from(randomArray(n * c, 4, 0, 1));
  const w = f64([0.5, 1, 2, 0], [n, 1]);
  const cases = [
    { alpha: 0.25, gamma: 2, reduction: "mean" as const, weight: w },
    { alpha: null, gamma: 1.5, reduction: "none" as const },
    { alpha: 0.25, gamma: 0, reduction: "sum" as const },
    { alpha: 0.4, gamma: 3, reduction: "mean" as const, avgFactor: 2.5 },
  ];
  for (const options of cases) {
    await t.step(JSON.stringify({ ...options, weight: undefined }), async () => {
      await gradcheck(
        (logits) => sigmoidFocalLoss(logits, f64(soft, [n, c]), options),
        [{ data: x, shape: [n, c] }],
      );
    });
  }
  await t.step("i32 labels", async () => {
    await gradcheck(
      (logits) => sigmoidFocalLoss(logits, i32([2, 0, 3, 1])),
      [{ data: x, shape: [n, c] }],
    );
  });
});

Deno.test("binaryCrossEntropyWithLogits matches PyTorch's formula and gradient", async (t) => {
  const x = Array.from(randomArray(9, 5, -5, 5));
  const y = Array.from(randomArray(9, 6, 0, 1));
  await t.step("values", async () => {
    for (const reduction of ["none", "sum", "mean"] as const) {
      const out = binaryCrossEntropyWithLogits(f64(x, [3, 3]), f64(y, [3, 3]), { reduction });
      assertClose(
        await values(out),
        reduceRef(x.map((v, i) => bce(v, y[i])), reduction),
        1e-12,
        1e-10,
      );
    }
  });
  await t.step("weight [3] broadcast over rows, gradcheck", async () => {
    const w = f64([1, 2, 0.5], [3]);
    const out = binaryCrossEntropyWithLogits(f64(x, [3, 3]), f64(y, [3, 3]), {
      weight: w,
      reduction: "sum",
    });
    const ref = x.reduce((s, v, i) => s + [1, 2, 0.5][i % 3] * bce(v, y[i]), 0);
    assertClose(await values(out), [ref], 1e-12, 1e-10);
    await gradcheck(
      (l) => binaryCrossEntropyWithLogits(l, f64(y, [3, 3]), { weight: w }),
      [{ data: x, shape: [3, 3] }],
    );
  });
});

Deno.test("crossEntropy matches log-softmax NLL with ignoreIndex", async (t) => {
  const n = 6, c = 4;
  const x = Array.from(randomArray(n * c, 7, -3, 3));
  const labels = [0, 3, -100, 2, 1, 3];
  const ref = labels.map((label, r) => {
    if (label < 0) return 0;
    const row = x.slice(r * c, r * c + c);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    return lse - row[label];
  });
  await t.step("values", async () => {
    assertClose(
      await values(crossEntropy(f64(x, [n, c]), i32(labels), { reduction: "none" })),
      ref,
      1e-12,
      1e-10,
    );
    assertClose(
      await values(crossEntropy(f64(x, [n, c]), i32(labels), { reduction: "sum" })),
      reduceRef(ref, "sum"),
      1e-12,
      1e-10,
    );
    assertClose(
      await values(crossEntropy(f64(x, [n, c]), i32(labels))),
      reduceRef(ref, "mean", 5),
      1e-12,
      1e-10,
    );
  });
  await t.step("ignoreIndex inside the class range", async () => {
    const out = crossEntropy(f64(x, [n, c]), i32([0, 3, 3, 2, 1, 3]), {
      ignoreIndex: 3,
      reduction: "sum",
    });
    assertClose(await values(out), [ref[0] + ref[3] + ref[4]], 1e-12, 1e-10);
  });
  await t.step("all rows ignored: mean is NaN as in PyTorch", async () => {
    const out = crossEntropy(f64(x.slice(0, 8), [2, c]), i32([-100, -100]));
    assert.ok(Number.isNaN((await values(out))[0]));
  });
  for (const reduction of ["none", "sum", "mean"] as const) {
    await t.step(`gradcheck ${reduction}`, async () => {
      await gradcheck(
        (l) => crossEntropy(l, i32(labels), { reduction }),
        [{ data: x, shape: [n, c] }],
      );
    });
  }
});

Deno.test("oneHot writes every element and zero rows for out-of-range labels", async () => {
  poisonPool(CPU, [12]);
  const y = oneHot(i32([1, -1, 3, 0]), 3);
  assert.deepEqual(await values(y), [0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
  assert.deepEqual(oneHot(i32([]), 3).shape, [0, 3]);
});

Deno.test("l1Loss and smoothL1Loss match PyTorch and give gradients to both inputs", async (t) => {
  const a = Array.from(randomArray(10, 8, -2, 2));
  const b = Array.from(randomArray(10, 9, -2, 2));
  const smooth = (d: number, beta: number) =>
    Math.abs(d) < beta ? 0.5 * d * d / beta : Math.abs(d) - 0.5 * beta;
  await t.step("values", async () => {
    for (const reduction of ["none", "sum", "mean"] as const) {
      assertClose(
        await values(l1Loss(f64(a, [2, 5]), f64(b, [2, 5]), { reduction })),
        reduceRef(a.map((v, i) => Math.abs(v - b[i])), reduction),
        1e-12,
      );
      for (const beta of [1, 0.5, 0]) {
        assertClose(
          await values(smoothL1Loss(f64(a, [2, 5]), f64(b, [2, 5]), { reduction, beta })),
          reduceRef(a.map((v, i) => smooth(v - b[i], beta)), reduction),
          1e-12,
        );
      }
    }
  });
  await t.step("gradcheck (pred and target)", async () => {
    const w = f64(Array.from(randomArray(5, 10, 0, 2)), [5]);
    await gradcheck((p, q) => l1Loss(p, q, { weight: w }), [
      { data: a, shape: [2, 5] },
      { data: b, shape: [2, 5] },
    ]);
    for (const beta of [1, 0.5]) {
      await gradcheck((p, q) => smoothL1Loss(p, q, { beta, reduction: "none" }), [
        { data: a, shape: [2, 5] },
        { data: b, shape: [2, 5] },
      ]);
    }
  });
});

Deno.test("iouLoss and giouLoss match mmdetection's formulas", async (t) => {
  const n = 7;
  const gt = randomBoxes(n, 11, 10);
  const pred = jitterBoxes(gt, 12);
  // Add a disjoint pair and an identical pair.
  const p = Array.from(pred).concat([0, 0, 1, 1, 2, 2, 5, 6]);
  const g = Array.from(gt).concat([3, 0, 4, 1, 2, 2, 5, 6]);
  const rows = n + 2;
  const row = (arr: number[], i: number) => arr.slice(4 * i, 4 * i + 4);
  const ious = Array.from({ length: rows }, (_, i) => boxRef(row(p, i), row(g, i), "iou"));
  const gious = Array.from({ length: rows }, (_, i) => boxRef(row(p, i), row(g, i), "giou"));
  await t.step("known values: identical 0, disjoint GIoU loss > 1", () => {
    assert.equal(ious[n + 1], 1);
    assert.equal(ious[n], 0);
    assertClose([gious[n]], [-1 / 2], 1e-12); // enclose 4 x 1, union 2
  });
  await t.step("values", async () => {
    for (const reduction of ["none", "sum", "mean"] as const) {
      const P = f64(p, [rows, 4]), G = f64(g, [rows, 4]);
      assertClose(
        await values(giouLoss(P, G, { reduction })),
        reduceRef(gious.map((v) => 1 - v), reduction),
        1e-12,
        1e-10,
      );
      assertClose(
        await values(iouLoss(P, G, { reduction, mode: "linear" })),
        reduceRef(ious.map((v) => 1 - Math.max(v, 1e-6)), reduction),
        1e-12,
        1e-10,
      );
      assertClose(
        await values(iouLoss(P, G, { reduction })),
        reduceRef(ious.map((v) => -Math.log(Math.max(v, 1e-6))), reduction),
        1e-12,
        1e-10,
      );
    }
  });
  await t.step("weight and avgFactor", async () => {
    const w = Array.from(randomArray(rows, 13, 0, 1));
    const out = giouLoss(f64(p, [rows, 4]), f64(g, [rows, 4]), {
      weight: f64(w, [rows]),
      avgFactor: 4,
    });
    assertClose(
      await values(out),
      reduceRef(gious.map((v, i) => w[i] * (1 - v)), "mean", 4),
      1e-12,
      1e-10,
    );
  });
  await t.step("batched [B, N, 4] boxes", async () => {
    const out = giouLoss(f64(p.slice(0, 32), [2, 4, 4]), f64(g.slice(0, 32), [2, 4, 4]), {
      reduction: "none",
    });
    assert.deepEqual(out.shape, [2, 4]);
    assertClose(await values(out), gious.slice(0, 8).map((v) => 1 - v), 1e-12, 1e-10);
  });
  await t.step("gradcheck (pred and target, overlapping boxes)", async () => {
    const data = [{ data: pred, shape: [n, 4] }, { data: gt, shape: [n, 4] }];
    await gradcheck((a, b) => giouLoss(a, b), data);
    await gradcheck((a, b) => giouLoss(a, b, { reduction: "none" }), data);
    await gradcheck((a, b) => iouLoss(a, b, { reduction: "sum" }), data);
    await gradcheck(
      (a, b) => iouLoss(a, b, { mode: "linear", weight: f64([1, 2, 3, 0, 1, 1, 2], [n]) }),
      data,
    );
  });
  await t.step("gradcheck on disjoint boxes (GIoU keeps a gradient)", async () => {
    const a = [0, 0, 1, 1.5, 5, 5, 6, 7];
    const b = [3, 0.5, 4, 2, 1, 2, 2.5, 3];
    await gradcheck((x, y) => giouLoss(x, y, { reduction: "none" }), [
      { data: a, shape: [2, 4] },
      { data: b, shape: [2, 4] },
    ]);
  });
  await t.step("gradient of a single pair matches hand-derived value", async () => {
    // pred [0,0,2,2], target [1,1,3,3]: I = 1, U = 7, C = 9; d(1 - GIoU)/d x2 of pred:
    // dI/dx2 = 1, dU/dx2 = 2 - 1 = 1, dC/dx2 = 0 (target x2 = 3 is the max).
    // GIoU = I/U - 1 + U/C  =>  d = 1/7 - 1/49 + 1/9.
    const x = f64([0, 0, 2, 2], [1, 4], true);
    backward(giouLoss(x, f64([1, 1, 3, 3], [1, 4])));
    const grad = await values(x.grad!);
    assertClose([grad[2]], [-(1 / 7 - 1 / 49 + 1 / 9)], 1e-12);
  });
  await t.step("empty input: sum 0, none []", async () => {
    assert.deepEqual(
      await values(giouLoss(f64([], [0, 4]), f64([], [0, 4]), { reduction: "sum" })),
      [0],
    );
    assert.deepEqual(giouLoss(f64([], [0, 4]), f64([], [0, 4]), { reduction: "none" }).shape, [0]);
  });
});

Deno.test("RS recipe helpers: score weights, weighted mean, self-balance", async (t) => {
  const logits = [0.5, -2, 3, -1, -0.5, 0.2];
  await t.step("scoreWeights = max_c sigmoid, or the target class's score", async () => {
    const w = scoreWeights(f64(logits, [3, 2]));
    assertClose(await values(w), [sig(0.5), sig(3), sig(0.2)], 1e-12);
    const byLabel = scoreWeights(f64(logits, [3, 2]), i32([1, 1, 0]));
    assertClose(await values(byLabel), [sig(-2), sig(-1), sig(-0.5)], 1e-12);
    const leaf = f64(logits, [3, 2], true);
    assert.equal(scoreWeights(leaf).requiresGrad, false);
  });
  await t.step("scoreWeightedMean = sum(w l) / sum(w), gradient to losses only", async () => {
    const l = f64([1, 2, 4], [3], true);
    const w = f64([0.5, 0.25, 0.25], [3], true);
    const out = scoreWeightedMean(l, w);
    assertClose(await values(out), [(0.5 + 0.5 + 1) / 1], 1e-12);
    backward(out);
    assertClose(await values(l.grad!), [0.5, 0.25, 0.25], 1e-12);
    assert.equal(w.grad, null);
  });
  await t.step("scoreWeightedMean falls back to 1 when sum(w) < eps", async () => {
    const out = scoreWeightedMean(f64([3, 5], [2]), f64([1e-13, 0], [2]));
    assertClose(await values(out), [3e-13], 1e-20);
    await gradcheck((l) => scoreWeightedMean(l, f64([0.3, 0.9], [2])), [{
      data: [1, 2],
      shape: [2],
    }]);
  });
  await t.step("selfBalance: value = reference, gradient scaled by reference / loss", async () => {
    const x = f64([1, 2], [2], true);
    const box = scoreWeightedMean(x, f64([1, 1], [2])); // 1.5
    const ref = f64([0.6], [1]);
    const out = selfBalance(box, ref);
    assertClose(await values(out), [0.6], 1e-12);
    backward(out);
    assertClose(await values(x.grad!), [0.6 / 1.5 * 0.5, 0.6 / 1.5 * 0.5], 1e-12);
  });
  await t.step(
    "selfBalance of a zero loss: NaN (official), loss itself with zeroGuard",
    async () => {
      assert.ok(Number.isNaN((await values(selfBalance(f64([0], [1]), 0.7)))[0]));
      assert.deepEqual(await values(selfBalance(f64([0], [1]), 0.7, { zeroGuard: true })), [0]);
    },
  );
});

Deno.test("bad inputs throw errors naming the op", async (t) => {
  const x = f64([1, 2, 3, 4], [2, 2]);
  await t.step("shape mismatch", async () => {
    await assertThrowsType(() => sigmoidFocalLoss(x, f64([1, 0], [2])), "sigmoidFocalLoss");
    await assertThrowsType(
      () => binaryCrossEntropyWithLogits(x, f64([1, 0], [1, 2])),
      "binaryCrossEntropyWithLogits",
    );
    await assertThrowsType(() => l1Loss(x, f64([1], [1])), "l1Loss");
    await assertThrowsType(() => smoothL1Loss(x, f64([1], [1])), "smoothL1Loss");
    await assertThrowsType(() => crossEntropy(x, i32([0, 1, 1])), "crossEntropy");
    await assertThrowsType(() => giouLoss(x, x), "giouLoss");
    await assertThrowsType(
      () => iouLoss(f64([0, 0, 1, 1], [1, 4]), f64([0, 0, 1, 1, 0, 0, 1, 1], [2, 4])),
      "iouLoss",
    );
    await assertThrowsType(
      () => sigmoidFocalLoss(x, x, { weight: f64([1, 2, 3], [3]) }),
      "sigmoidFocalLoss",
    );
    await assertThrowsType(
      () => scoreWeightedMean(f64([1, 2], [2]), f64([1], [1])),
      "scoreWeightedMean",
    );
    await assertThrowsType(() => selfBalance(f64([1, 2], [2]), 1), "selfBalance");
  });
  await t.step("wrong element type", async () => {
    const labels = i32([0, 1]);
    await assertThrowsType(() => crossEntropy(x, f64([0, 1], [2])), "crossEntropy");
    await assertThrowsType(
      () => crossEntropy(tensor(Int32Array.from([1, 2, 3, 4]), [2, 2], { backend: CPU }), labels),
      "crossEntropy",
    );
    await assertThrowsType(
      () => l1Loss(x, tensor([1, 2, 3, 4], [2, 2], { backend: CPU })),
      "l1Loss",
    );
    await assertThrowsType(
      () =>
        giouLoss(
          tensor(Int32Array.from([0, 0, 1, 1]), [1, 4], { backend: CPU }),
          f64([0, 0, 1, 1], [1, 4]),
        ),
      "giouLoss",
    );
  });
  await t.step("bad options", () => {
    assert.throws(() => sigmoidFocalLoss(x, x, { gamma: -1 }), RangeError);
    assert.throws(() => smoothL1Loss(x, x, { beta: -1 }), RangeError);
    // deno-lint-ignore no-explicit-any
    assert.throws(() => l1Loss(x, x, { reduction: "avg" as any }), RangeError);
    assert.throws(() => l1Loss(x, x, { reduction: "sum", avgFactor: 2 }), TypeError);
  });
});

Deno.test("baseline losses agree on CPU and WebGPU", { ignore: !GPU }, async (t) => {
  const n = 300, c = 7; // 2,100 elements: several workgroups, not a multiple of 256
  const x = randomArray(n * c, 21, -6, 6);
  const labels = Int32Array.from({ length: n }, (_, i) => (i * 5) % (c + 1));
  const soft = randomArray(n * c, 22, 0, 1);
  const gt = randomBoxes(n, 23, 50);
  const pred = jitterBoxes(gt, 24, 4);
  const w = randomArray(n, 25, 0, 1);
  const run = (fn: (b: Backend) => Tensor[]) => compareBackends(fn, 1e-4, 1e-3);
  const leaf = (data: Float32Array, shape: number[], backend: Backend) =>
    tensor(data, shape, { backend, requiresGrad: true });
  await t.step("sigmoidFocalLoss forward and backward", async () => {
    for (const gamma of [2, 1.5]) {
      await run((backend) => {
        poisonPool(backend, [n * c]);
        const l = leaf(x, [n, c], backend);
        const none = sigmoidFocalLoss(l, tensor(soft, [n, c], { backend }), {
          reduction: "none",
          gamma,
        });
        const loss = sigmoidFocalLoss(l, tensor(labels, [n], { backend }), {
          gamma,
          weight: tensor(w, [n, 1], { backend }),
          avgFactor: 17,
        });
        backward(loss);
        return [none, loss, l.grad!];
      });
    }
  });
  await t.step("binaryCrossEntropyWithLogits and crossEntropy", async () => {
    await run((backend) => {
      const l = leaf(x, [n, c], backend);
      const loss = binaryCrossEntropyWithLogits(l, tensor(soft, [n, c], { backend }), {
        reduction: "sum",
      });
      backward(loss);
      const l2 = leaf(x, [n, c], backend);
      const ce = crossEntropy(l2, tensor(labels.map((v) => v === c ? -100 : v), [n], { backend }));
      backward(ce);
      return [loss, l.grad!, ce, l2.grad!];
    });
  });
  await t.step("l1Loss, smoothL1Loss", async () => {
    await run((backend) => {
      const p = leaf(x, [n, c], backend);
      const loss = smoothL1Loss(p, tensor(soft, [n, c], { backend }), { beta: 0.3 });
      const l1 = l1Loss(p, tensor(soft, [n, c], { backend }), { reduction: "none" });
      backward(loss);
      return [loss, l1, p.grad!];
    });
  });
  await t.step("iouLoss, giouLoss, RS helpers", async () => {
    await run((backend) => {
      const p = leaf(pred, [n, 4], backend);
      const g = leaf(gt, [n, 4], backend);
      const scores = scoreWeights(tensor(x, [n, c], { backend }));
      const perBox = giouLoss(p, g, { reduction: "none" });
      const box = scoreWeightedMean(perBox, scores);
      const balanced = selfBalance(box, tensor([0.8], [1], { backend }));
      const iou = iouLoss(p, g, { reduction: "none" });
      backward(balanced);
      return [scores, perBox, box, balanced, iou, p.grad!, g.grad!];
    });
  });
});
