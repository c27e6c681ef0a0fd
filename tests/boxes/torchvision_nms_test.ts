/**
 * NMS, box IoU and GIoU against torchvision 0.14 (`tests/fixtures/torchvision/nms.json`,
 * copied from `shared/fixtures/torchvision/`): the host functions in float32 and float64,
 * the device op, and the device and host overlap matrices.
 */
import assert from "node:assert/strict";
import type { Backend } from "../../tensor/backend.ts";
import { tensor } from "../../tensor/tensor.ts";
import { boxIou } from "../../boxes/box_ops.ts";
import { NO_FLOOR, overlapHost, type OverlapMode } from "../../boxes/iou.ts";
import { batchedNms, batchedNmsIndices, f32AtOrBelow, nmsIndices } from "../../boxes/nms.ts";
import { assertClose, CPU, GPU, gpuBackend } from "../tensor/helpers.ts";

interface Json {
  shape: number[];
  dtype: string;
  data: (number | null)[];
}
interface Run {
  iou_threshold: number;
  keep: number[];
  keep_float64: number[];
}
interface NmsCase {
  name: string;
  boxes: Json;
  scores: Json;
  idxs?: Json;
  runs: Run[];
}
interface IouCase {
  name: string;
  boxes1: Json;
  boxes2: Json;
  box_iou: Json;
  generalized_box_iou: Json;
  box_iou_float64: Json;
  generalized_box_iou_float64: Json;
}

const fixture = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/torchvision/nms.json", import.meta.url)),
) as { nms: NmsCase[]; batched_nms: NmsCase[]; iou: IouCase[] };

const values = (t: Json) => t.data.map((v) => v ?? NaN);
const f32 = (t: Json) => Float32Array.from(values(t));

Deno.test("nmsIndices and batchedNmsIndices match torchvision on every fixture case", async (t) => {
  for (const batched of [false, true]) {
    for (const c of batched ? fixture.batched_nms : fixture.nms) {
      await t.step(`${batched ? "batched_nms" : "nms"} ${c.name}`, () => {
        const boxes = f32(c.boxes), scores = f32(c.scores);
        const classes = c.idxs ? values(c.idxs) : [];
        for (const run of c.runs) {
          const thr = run.iou_threshold;
          for (
            const [b, s, want] of [[boxes, scores, run.keep], [
              Float64Array.from(boxes),
              Float64Array.from(scores),
              run.keep_float64,
            ]] as const
          ) {
            const got = batched ? batchedNmsIndices(b, s, classes, thr) : nmsIndices(b, s, thr);
            assert.ok(got instanceof Int32Array);
            assert.deepEqual([...got], want, `${c.name} at ${thr}, ${b.constructor.name}`);
          }
        }
      });
    }
  }
});

Deno.test("the exact 0.3 edge is suppressed in float32 and kept in float64", () => {
  const c = fixture.nms.find((x) => x.name === "exact_iou_edges")!;
  const run = c.runs.find((r) => r.iou_threshold === 0.3)!;
  assert.notDeepEqual(run.keep, run.keep_float64);
  assert.equal(f32AtOrBelow(0.3) < 0.3 && Math.fround(0.3) > 0.3, true);
  assert.equal(f32AtOrBelow(0.5), 0.5);
  assert.equal(f32AtOrBelow(-0.3), -Math.fround(0.3) < -0.3 ? -Math.fround(0.3) : NaN);
});

async function deviceKeep(
  backend: Backend,
  boxes: Float32Array,
  scores: Float32Array,
  classes: number[],
  iouThreshold: number,
): Promise<number[]> {
  const n = scores.length;
  const b = tensor(boxes, [n, 4], { backend });
  const s = tensor(scores, [n], { backend });
  const k = tensor(Int32Array.from(classes), [n], { backend, dtype: "i32" });
  const out = batchedNms(b, s, k, { iouThreshold });
  const keep = [...(await out.keep.data() as Int32Array)];
  const count = (await out.count.data())[0];
  for (const x of [b, s, k, out.keep, out.count]) x.dispose();
  assert.deepEqual(keep.slice(count), new Array(n - count).fill(-1));
  return keep.slice(0, count);
}

for (const [name, ignore] of [["CPU", false], ["WebGPU", !GPU]] as const) {
  Deno.test({
    name: `batchedNms (${name}) matches torchvision's float32 keep on every fixture case`,
    ignore,
    async fn(t) {
      const backend = name === "CPU" ? CPU : await gpuBackend();
      // Same semantics here: no NaN scores and no negative classes in the fixture (the device
      // op ranks NaN scores last and treats negative classes as padding; torchvision does not).
      for (const batched of [false, true]) {
        for (const c of batched ? fixture.batched_nms : fixture.nms) {
          await t.step(`${batched ? "batched_nms" : "nms"} ${c.name}`, async () => {
            const boxes = f32(c.boxes), scores = f32(c.scores), n = scores.length;
            const classes = c.idxs ? values(c.idxs) : new Array(n).fill(0);
            for (const run of c.runs) {
              const got = await deviceKeep(backend, boxes, scores, classes, run.iou_threshold);
              assert.deepEqual(got, run.keep, `${c.name} at ${run.iou_threshold}`);
            }
          });
        }
      }
    },
  });
}

/** The `[N, M]` overlap matrix of the host formula, in float32 steps or float64. */
function hostMatrix(a: ArrayLike<number>, b: ArrayLike<number>, mode: OverlapMode, f32: boolean) {
  const n = a.length / 4, m = b.length / 4, out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      out[i * m + j] = overlapHost(a, i, b, j, mode, NO_FLOOR, f32 ? Math.fround : undefined);
    }
  }
  return out;
}

Deno.test("the host overlap formula gives torchvision's box_iou and generalized_box_iou", async (t) => {
  for (const c of fixture.iou) {
    await t.step(c.name, () => {
      const a = f32(c.boxes1), b = f32(c.boxes2);
      // float32 steps: bit for bit; float64: to the last bits (torchvision computes the same
      // formula, maybe in another order).
      assert.deepEqual([...hostMatrix(a, b, "iou", true)], [...f32(c.box_iou)]);
      assert.deepEqual([...hostMatrix(a, b, "giou", true)], [...f32(c.generalized_box_iou)]);
      assertClose(hostMatrix(a, b, "iou", false), values(c.box_iou_float64), 1e-15, 1e-14);
      assertClose(
        hostMatrix(a, b, "giou", false),
        values(c.generalized_box_iou_float64),
        1e-15,
        1e-14,
      );
    });
  }
});

for (const [name, ignore] of [["CPU", false], ["WebGPU", !GPU]] as const) {
  Deno.test({
    name: `boxIou (${name}) gives torchvision's IoU and GIoU matrices`,
    ignore,
    async fn(t) {
      const backend = name === "CPU" ? CPU : await gpuBackend();
      for (const c of fixture.iou) {
        await t.step(c.name, async () => {
          const n = c.boxes1.shape[0], m = c.boxes2.shape[0];
          const a = tensor(f32(c.boxes1), [n, 4], { backend });
          const b = tensor(f32(c.boxes2), [m, 4], { backend });
          for (
            const [mode, want] of [["iou", c.box_iou], ["giou", c.generalized_box_iou]] as const
          ) {
            const out = boxIou(a, b, { mode, eps: NO_FLOOR });
            const got = await out.data();
            out.dispose();
            // float32 rounding of values of order 1 (GIoU near 0 needs the absolute part).
            assertClose(got, f32(want), 1e-6, 1e-6, `${c.name} ${mode}`);
          }
          a.dispose();
          b.dispose();
        });
      }
    },
  });
}

Deno.test("host NMS rejects bad input and ranks NaN scores first", () => {
  const boxes = Float32Array.of(0, 0, 10, 10, 1, 1, 10, 10, 20, 20, 30, 30);
  assert.throws(() => nmsIndices(boxes.subarray(0, 7), [1, 2], 0.5), RangeError);
  assert.throws(() => nmsIndices(boxes, [1, 2], 0.5), RangeError);
  assert.throws(() => batchedNmsIndices(boxes, [1, 2, 3], [0, 0], 0.5), RangeError);
  assert.throws(() => nmsIndices(boxes, [1, 2, 3], NaN), TypeError);
  assert.throws(
    () => nmsIndices([0, 0, 1, 1] as unknown as Float32Array, [1], 0.5),
    TypeError,
  );
  // torch.sort puts NaN above every number: the NaN box is kept and suppresses box 1.
  assert.deepEqual([...nmsIndices(boxes, Float32Array.of(0.5, NaN, 0.9), 0.5)], [1, 2]);
  assert.deepEqual([...nmsIndices(boxes, [NaN, NaN, 0.1], 0.5)], [0, 2]);
  assert.deepEqual([...nmsIndices(new Float32Array(0), [], 0.5)], []);
});
