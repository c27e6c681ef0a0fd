import assert from "node:assert/strict";
import { bucketedRankSort } from "../../losses/ops/ranking_ops.ts";
import type { Backend } from "../../tensor/backend.ts";
import { conv2d } from "../../tensor/ops/conv.ts";
import { indexSelect } from "../../tensor/ops/index.ts";
import { matmul } from "../../tensor/ops/matmul.ts";
import { groupNorm } from "../../tensor/ops/norm.ts";
import { maxPool2d } from "../../tensor/ops/pool.ts";
import { tensor } from "../../tensor/tensor.ts";
import { CPU, NATIVE, nativeBackend } from "./helpers.ts";

/** Bad calls of ops with native kernels, each expected to throw before any kernel runs. */
const BAD_CALLS: [string, (backend: Backend) => unknown][] = [
  [
    "matmul, inner dimensions differ",
    (b) =>
      matmul(
        tensor(new Float32Array(6), [2, 3], { backend: b }),
        tensor(new Float32Array(8), [4, 2], { backend: b }),
      ),
  ],
  [
    "matmul, f32 with i32",
    (b) =>
      matmul(
        tensor(new Float32Array(4), [2, 2], { backend: b }),
        tensor(new Int32Array(4), [2, 2], { backend: b }),
      ),
  ],
  [
    "conv2d, channels differ",
    (b) =>
      conv2d(
        tensor(new Float32Array(2 * 16), [1, 2, 4, 4], { backend: b }),
        tensor(new Float32Array(27), [1, 3, 3, 3], { backend: b }),
      ),
  ],
  [
    "conv2d, a 3-D input",
    (b) =>
      conv2d(
        tensor(new Float32Array(16), [1, 4, 4], { backend: b }),
        tensor(new Float32Array(9), [1, 1, 3, 3], { backend: b }),
      ),
  ],
  [
    "maxPool2d, window larger than the padded input",
    (b) => maxPool2d(tensor(new Float32Array(4), [1, 1, 2, 2], { backend: b }), { kernelSize: 5 }),
  ],
  [
    "groupNorm, channels not divisible by groups",
    (b) => groupNorm(tensor(new Float32Array(3 * 4), [1, 3, 2, 2], { backend: b }), 2),
  ],
  [
    "indexSelect, index out of range",
    (b) =>
      indexSelect(
        tensor(new Float32Array(6), [3, 2], { backend: b }),
        0,
        tensor(new Int32Array([0, 3]), [2], { backend: b }),
      ),
  ],
  [
    "bucketedRankSort, lengths differ",
    (b) =>
      bucketedRankSort(
        tensor(new Float32Array(5), [5], { backend: b }),
        tensor(new Float32Array(4), [4], { backend: b }),
      ),
  ],
];

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  assert.fail("expected an error");
}

Deno.test("bad input on the native backend gives the CPU backend's named errors", {
  ignore: !NATIVE,
}, async (t) => {
  const native = NATIVE ? nativeBackend() : CPU;
  for (const [name, call] of BAD_CALLS) {
    await t.step(name, () => {
      const want = errorOf(() => call(CPU));
      const got = errorOf(() => call(native));
      assert.equal(got.constructor, want.constructor, `${name}: ${got.message}`);
      assert.equal(got.message, want.message);
      assert.ok(want.message.length > 10, want.message);
    });
  }
});
