import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import {
  bboxOverlaps,
  boxIou,
  cxcywhToXyxy,
  cxcywhToXyxyHost,
  xywhToXyxy,
  xyxyToCxcywh,
  xyxyToXywh,
} from "../../boxes/box_ops.ts";
import {
  assertClose,
  boxRows,
  compareBackends,
  CPU,
  f64,
  GPU,
  gradcheck,
  poisonPool,
  randomBoxes,
} from "../tensor/helpers.ts";

/** Independent float64 overlap of two xyxy boxes. */
function overlapRef(a: number[], b: number[], mode: "iou" | "iof" | "giou"): number {
  const area = (x: number[]) => (x[2] - x[0]) * (x[3] - x[1]);
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  const union = Math.max(mode === "iof" ? area(a) : area(a) + area(b) - inter, 1e-6);
  if (mode !== "giou") return inter / union;
  const c = (Math.max(a[2], b[2]) - Math.min(a[0], b[0])) *
    (Math.max(a[3], b[3]) - Math.min(a[1], b[1]));
  return inter / union - (c - union) / Math.max(c, 1e-6);
}

Deno.test("boxIou of known boxes", async (t) => {
  const a = f64([0, 0, 2, 2], [1, 4]);
  const b = f64([0, 0, 2, 2, 3, 3, 4, 4, 0.5, 0.5, 1.5, 1.5, 1, 0, 3, 2, 2, 0, 3, 2], [5, 4]);
  await t.step("iou: identical 1, disjoint 0, contained 1/4, half 1/3, touching 0", async () => {
    assertClose(await boxIou(a, b).data(), [1, 0, 0.25, 1 / 3, 0], 1e-12);
  });
  await t.step("iof: contained box covers a quarter of a", async () => {
    assertClose(await boxIou(a, b, { mode: "iof" }).data(), [1, 0, 0.25, 0.5, 0], 1e-12);
  });
  await t.step("giou: disjoint is negative", async () => {
    // a vs [3,3,4,4]: enclose 16, union 5 -> -11/16
    assertClose(await boxIou(a, b, { mode: "giou" }).data(), [1, -11 / 16, 0.25, 1 / 3, 0], 1e-12);
  });
  await t.step("empty inputs", () => {
    assert.deepEqual(boxIou(f64([], [0, 4]), b).shape, [0, 5]);
    assert.deepEqual(boxIou(a, f64([], [0, 4])).shape, [1, 0]);
  });
});

Deno.test("boxIou matches a float64 reference on random boxes", async () => {
  const a = randomBoxes(13, 1, 20, 0.5), b = randomBoxes(9, 2, 20, 0.5);
  for (const mode of ["iou", "iof", "giou"] as const) {
    const expected = boxRows(a).flatMap((x) => boxRows(b).map((y) => overlapRef(x, y, mode)));
    const got = await boxIou(f64(a, [13, 4]), f64(b, [9, 4]), { mode }).data();
    assertClose(got, expected, 1e-12, 1e-10, mode);
  }
});

Deno.test("bboxOverlaps aligned: values and gradients", async (t) => {
  const a = randomBoxes(6, 3, 5, 0.5), b = randomBoxes(6, 4, 5, 0.5);
  for (const mode of ["iou", "giou"] as const) {
    await t.step(mode, async () => {
      const expected = boxRows(a).map((x, i) => overlapRef(x, boxRows(b)[i], mode));
      const got = await bboxOverlaps(f64(a, [6, 4]), f64(b, [6, 4]), { isAligned: true, mode })
        .data();
      assertClose(got, expected, 1e-12, 1e-10);
      const pa = randomBoxes(5, 5, 3, 0.5),
        pb = Float32Array.from(pa, (v, i) => v + [0.3, -0.2, 0.4, 0.1][i % 4]);
      await gradcheck((x, y) => bboxOverlaps(x, y, { isAligned: true, mode }), [
        { data: pa, shape: [5, 4] },
        { data: pb, shape: [5, 4] },
      ]);
    });
  }
  await t.step("pairwise mode equals the diagonal", async () => {
    const full = await boxIou(f64(a, [6, 4]), f64(b, [6, 4])).data();
    const diag = await bboxOverlaps(f64(a, [6, 4]), f64(b, [6, 4]), { isAligned: true }).data();
    assertClose(diag, Array.from({ length: 6 }, (_, i) => full[7 * i]), 1e-12);
  });
});

Deno.test("format conversions round-trip and have gradients", async (t) => {
  const boxes = randomBoxes(7, 6, 20, 0.5);
  await t.step("known values", async () => {
    const b = f64([1, 2, 5, 8], [1, 4]);
    assert.deepEqual(Array.from(await xyxyToXywh(b).data()), [1, 2, 4, 6]);
    assert.deepEqual(Array.from(await xyxyToCxcywh(b).data()), [3, 5, 4, 6]);
    assert.deepEqual(Array.from(await xywhToXyxy(f64([1, 2, 4, 6], [1, 4])).data()), [1, 2, 5, 8]);
    assert.deepEqual(Array.from(await cxcywhToXyxy(f64([3, 5, 4, 6], [1, 4])).data()), [
      1,
      2,
      5,
      8,
    ]);
  });
  await t.step("round trips on [2, 7, 4]", async () => {
    const data = Float64Array.from([...boxes, ...boxes].map((v) => v * 1.5));
    const x = f64(data, [2, 7, 4]);
    assertClose(await xywhToXyxy(xyxyToXywh(x)).data(), data, 1e-12);
    assertClose(await cxcywhToXyxy(xyxyToCxcywh(x)).data(), data, 1e-12);
  });
  await t.step("cxcywhToXyxyHost: known values, equal to the op on [7, 4]", async () => {
    assert.deepEqual(Array.from(cxcywhToXyxyHost([3, 5, 4, 6])), [1, 2, 5, 8]);
    const want = await cxcywhToXyxy(f64(boxes, [7, 4])).data();
    assert.deepEqual(cxcywhToXyxyHost(boxes), Float64Array.from(want));
    assert.throws(() => cxcywhToXyxyHost([1, 2, 3]), /^TypeError: cxcywhToXyxyHost: 3 coordinates/);
  });
  await t.step("gradcheck", async () => {
    for (const fn of [xyxyToXywh, xywhToXyxy, xyxyToCxcywh, cxcywhToXyxy]) {
      await gradcheck(fn, [{ data: boxes, shape: [7, 4] }]);
    }
  });
});

Deno.test("box ops reject bad input with a TypeError naming the op", () => {
  const ok = f64([0, 0, 1, 1], [1, 4]);
  assert.throws(() => boxIou(f64([0, 0, 1], [1, 3]), ok), /^TypeError: boxIou/);
  assert.throws(() => boxIou(f64([0, 0, 1, 1], [4]), ok), /^TypeError: boxIou/);
  assert.throws(
    () => boxIou(tensor(Int32Array.from([0, 0, 1, 1]), [1, 4], { backend: CPU }), ok),
    /^TypeError: boxIou/,
  );
  assert.throws(
    () => boxIou(ok, tensor([0, 0, 1, 1], [1, 4], { backend: CPU })),
    /^TypeError: boxIou/,
  );
  assert.throws(
    () => bboxOverlaps(ok, f64([0, 0, 1, 1, 0, 0, 1, 1], [2, 4]), { isAligned: true }),
    /^TypeError: bboxOverlaps/,
  );
  assert.throws(() => xyxyToXywh(f64([1, 2], [2])), /^TypeError: xyxyToXywh/);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => boxIou(ok, ok, { mode: "dice" as any }), RangeError);
});

Deno.test("box ops agree on CPU and WebGPU", { ignore: !GPU }, async (t) => {
  const a = randomBoxes(301, 7, 50, 0.5), b = randomBoxes(37, 8, 50, 0.5);
  await t.step("pairwise, all modes", async () => {
    await compareBackends(
      (backend: Backend) => {
        poisonPool(backend, [301 * 37]);
        const x = tensor(a, [301, 4], { backend }), y = tensor(b, [37, 4], { backend });
        return (["iou", "iof", "giou"] as const).map((mode) => boxIou(x, y, { mode }));
      },
      1e-5,
      1e-4,
    );
  });
  await t.step("pairwise with more than 65,535 workgroups", async () => {
    const n = 2100, m = 2000; // 4.2M pairs / 64 per workgroup = 65,625 workgroups
    const big = randomBoxes(n, 9, 100, 0.5), gts = randomBoxes(m, 10, 100, 0.5);
    await compareBackends(
      (backend: Backend) => {
        poisonPool(backend, [n * m]);
        return boxIou(tensor(big, [n, 4], { backend }), tensor(gts, [m, 4], { backend }));
      },
      1e-5,
      1e-4,
    );
  });
  await t.step("aligned forward and backward, conversions", async () => {
    await compareBackends(
      (backend: Backend) => {
        const x = tensor(a.slice(0, 148), [37, 4], { backend, requiresGrad: true });
        const y = tensor(b, [37, 4], { backend, requiresGrad: true });
        const outs: Tensor[] = [];
        for (const mode of ["iou", "giou"] as const) {
          outs.push(bboxOverlaps(x, y, { isAligned: true, mode }));
        }
        const c = xyxyToCxcywh(x);
        outs.push(c, xywhToXyxy(y));
        backward(sum(outs[1]));
        return [...outs, x.grad!, y.grad!];
      },
      1e-5,
      1e-4,
    );
  });
});
