import assert from "node:assert/strict";
import { prCurvesSvg } from "../../engine/eval_results.ts";
import { evaluateCoco } from "../../eval/coco_eval.ts";

Deno.test("prCurvesSvg() rejects a category index out of range", () => {
  const r = evaluateCoco({
    images: [{ id: 1, width: 10, height: 10, file_name: "x" }],
    categories: [{ id: 1, name: "a<b" }],
    annotations: [],
  }, []);
  assert.match(prCurvesSvg(r, 0), /a&lt;b/);
  assert.match(prCurvesSvg(r), /no data/);
  assert.throws(() => prCurvesSvg(r, 1), RangeError);
});
