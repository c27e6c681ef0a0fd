/**
 * mmdetection's RoI-to-level rule against `tests/fixtures/torchvision/level_mapping.json`
 * (copied from `shared/fixtures/torchvision/`).
 */
import assert from "node:assert/strict";
import { mapRoiLevels } from "../../boxes/roi_levels.ts";

const fixture = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/torchvision/level_mapping.json", import.meta.url)),
) as {
  boxes: { data: number[] };
  mmdet_level_float32: { data: number[] };
  mmdet_level_float64: { data: number[] };
  torchvision_level_float32: { data: number[] };
  disagreements: Record<string, number[]>;
};

Deno.test("mapRoiLevels gives mmdetection's level for all 200 fixture boxes", () => {
  const boxes = Float32Array.from(fixture.boxes.data);
  assert.equal(boxes.length, 800);
  const levels = mapRoiLevels(boxes, 4);
  assert.deepEqual([...levels], fixture.mmdet_level_float64.data);
  // mmdetection on float32 tensors differs only where the fixture says float32 and float64 do.
  const f32 = fixture.mmdet_level_float32.data;
  const differ = f32.flatMap((v, i) => (v !== levels[i] ? [i] : []));
  assert.deepEqual(differ, fixture.disagreements.mmdet_float32_vs_float64);
  // And it is not torchvision's LevelMapper.
  assert.notDeepEqual([...levels], fixture.torchvision_level_float32.data);
});

Deno.test("mapRoiLevels: other level counts and scales, degenerate boxes, bad input", () => {
  const boxes = [0, 0, 100, 100, 0, 0, 200, 200, 0, 0, 1000, 1000, 5, 5, 5, 5, 10, 0, 0, 10];
  assert.deepEqual([...mapRoiLevels(boxes, 4)], [0, 1, 3, 0, 0]);
  assert.deepEqual([...mapRoiLevels(boxes, 2)], [0, 1, 1, 0, 0]);
  assert.deepEqual([...mapRoiLevels(boxes, 5, 25)], [2, 3, 4, 0, 0]);
  assert.deepEqual([...mapRoiLevels([0, 0, NaN, 1], 4)], [0]);
  assert.deepEqual([...mapRoiLevels([], 4)], []);
  assert.throws(() => mapRoiLevels([0, 0, 1], 4), RangeError);
  assert.throws(() => mapRoiLevels(boxes, 0), RangeError);
  assert.throws(() => mapRoiLevels(boxes, 4, 0), RangeError);
});
