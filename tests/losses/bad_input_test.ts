/** Bad inputs give a clear error, never a wrong number. */

import assert from "node:assert/strict";
import {
  alrpLoss,
  apLoss,
  bucketedApLoss,
  bucketedRankSortLoss,
  rankSortLoss,
} from "../../losses/reference/mod.ts";
import { fastBucketedApLoss, fastBucketedRankSortLoss } from "../../losses/fast/mod.ts";
import type { LossFn } from "./helpers.ts";

const LOSSES: [string, LossFn][] = [
  ["rankSortLoss", rankSortLoss],
  ["bucketedRankSortLoss", bucketedRankSortLoss],
  ["apLoss", apLoss],
  ["bucketedApLoss", bucketedApLoss],
  ["alrpLoss", (s, y, o) => alrpLoss(s, y, Array.from(y).filter((v) => v === 1).map(() => 0.5), o)],
  ["fastBucketedRankSortLoss", fastBucketedRankSortLoss],
  ["fastBucketedApLoss", fastBucketedApLoss],
];

function throwsWith(f: () => unknown, type: typeof TypeError, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${e}`);
    assert.match(e.message, /^[A-Z]/);
    assert.doesNotMatch(e.message, /\.$/);
    assert.match(e.message, pattern);
    return true;
  });
}

for (const [name, fn] of LOSSES) {
  Deno.test(`${name}() rejects bad input`, async (t) => {
    const s = [0.5, 0.2, -0.1];
    const y = [1, 0, 0];
    await t.step("different lengths", () => {
      throwsWith(() => fn([0.5, 0.2], y), TypeError, /length 2 .* length 3/);
    });
    await t.step("not array-like", () => {
      throwsWith(() => fn(null as unknown as number[], y), TypeError, /logits/);
      throwsWith(() => fn(s, 3 as unknown as number[]), TypeError, /targets/);
    });
    await t.step("NaN and Inf logits", () => {
      throwsWith(() => fn([0.5, NaN, 0], y), RangeError, /logit 1 is NaN/);
      throwsWith(() => fn([0.5, 0, -Infinity], y), RangeError, /logit 2 is -Infinity/);
      throwsWith(() => fn(new Float32Array([Infinity, 0, 0]), y), RangeError, /logit 0/);
    });
    await t.step("NaN, Inf and above-1 targets", () => {
      throwsWith(() => fn(s, [1, NaN, 0]), RangeError, /target 1 is NaN/);
      throwsWith(() => fn(s, [1, 0, -Infinity]), RangeError, /target 2 is -Infinity/);
      throwsWith(() => fn(s, [1.5, 0, 0]), RangeError, /target 0 is 1.5/);
    });
    await t.step("δ < 0 or not finite", () => {
      throwsWith(() => fn(s, y, { delta: -0.1 }), RangeError, /delta -0.1/);
      throwsWith(() => fn(s, y, { delta: NaN }), RangeError, /delta NaN/);
      throwsWith(() => fn(s, y, { delta: Infinity }), RangeError, /delta Infinity/);
    });
  });
}

Deno.test("alrpLoss() rejects regression errors of the wrong length or value", () => {
  throwsWith(
    () => alrpLoss([0.5, 0.2, 0.1], [1, 0, 1], [0.3]),
    TypeError,
    /regressionErrors has length 1 but there are 2 positives/,
  );
  throwsWith(() => alrpLoss([0.5, 0.2], [1, 0], [NaN]), RangeError, /regression error 0 is NaN/);
});

Deno.test("fast losses reject unknown options", () => {
  throwsWith(
    () => fastBucketedRankSortLoss([1, 0], [1, 0], { bucketing: "radix" as "sort" }),
    RangeError,
    /bucketing "radix"/,
  );
  throwsWith(
    () => fastBucketedApLoss([1, 0], [1, 0], { pairwise: "matrix" as "direct" }),
    RangeError,
    /pairwise "matrix"/,
  );
});
