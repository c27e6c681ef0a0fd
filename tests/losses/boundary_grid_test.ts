import assert from "node:assert/strict";
import { boundaryGridKernel, GRID_CELLS } from "../../losses/ops/ranking/bin.ts";
import type { Backend } from "../../tensor/backend.ts";
import { launch } from "../../tensor/ops/launch.ts";
import { empty, tensor } from "../../tensor/tensor.ts";
import { CPU, GPU, gpuBackend } from "../tensor/helpers.ts";

/** The grid of descending boundaries `e` above `t`, with `info` saying `P` and whether the run is ok. */
async function grid(
  backend: Backend,
  e: Float32Array,
  t: number,
  { positives = 1, ok = 1 } = {},
): Promise<Float32Array> {
  const info = new Uint32Array(16);
  info[0] = positives, info[1] = e.length, info[4] = ok;
  const out = empty([GRID_CELLS + 1], "f32", backend);
  const input = e.length > 0 ? e : Float32Array.of(t);
  launch(
    boundaryGridKernel("f32"),
    [
      tensor(input, [input.length], { backend }),
      tensor(info, [16], { backend, dtype: "u32" }),
      tensor(Float32Array.of(0, 0, t, 0), [4], { backend }),
    ],
    [out],
    { unused: 0 },
    (GRID_CELLS + 1) / 64,
  );
  return Float32Array.from(await out.data());
}

function descending(n: number, seed: number, lo: number, hi: number): Float32Array {
  let x = seed >>> 0;
  const v = Float32Array.from({ length: n }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return lo + (hi - lo) * (x / 2 ** 32);
  });
  return v.sort().reverse();
}

/** Layouts: spread values, ties and values on the threshold, one boundary, a flat range. */
const CASES: [string, Float32Array, number][] = [
  ["1000 spread boundaries", descending(1000, 7, -2, 3), -2.5],
  ["ties and boundaries equal to t", Float32Array.of(2, 2, 2, 1.5, 1.5, 0.25, -1, -1, -1), -1],
  ["one boundary", Float32Array.of(0.75), -0.25],
  ["a flat range (e[0] = t): one cell", Float32Array.of(1, 1, 1), 1],
  ["70,001 boundaries", descending(70001, 3, -5, 5), -5.5],
];

Deno.test("boundary grid: the CPU twin counts the boundaries of each cell and above", async (t) => {
  for (const [name, e, thr] of CASES) {
    await t.step(name, async () => {
      const g = await grid(CPU, e, thr);
      assert.equal(g.length, GRID_CELLS + 1);
      assert.equal(g[0], e.length, "every boundary is in cell 0 or above");
      assert.equal(g[GRID_CELLS], 0, "no boundary above the last cell");
      for (let c = 1; c <= GRID_CELLS; c++) assert.ok(g[c] <= g[c - 1], `grid rises at ${c}`);
      // The top boundary sits in the last cell unless the range is flat.
      const flat = e[0] === thr;
      assert.equal(g[GRID_CELLS - 1] >= 1, !flat);
    });
  }
  await t.step("no positives, or a run over capacity: an empty grid", async () => {
    const e = Float32Array.of(2, 1, 0);
    assert.ok((await grid(CPU, e, -1, { positives: 0 })).every((v) => v === 0));
    assert.ok((await grid(CPU, e, -1, { ok: 0 })).every((v) => v === 0));
  });
});

Deno.test("boundary grid: the WGSL kernel equals its CPU twin", { ignore: !GPU }, async (t) => {
  const gpu = await gpuBackend();
  for (const [name, e, thr] of CASES) {
    await t.step(name, async () => {
      assert.deepEqual(await grid(gpu, e, thr), await grid(CPU, e, thr));
    });
  }
  await t.step("an empty grid", async () => {
    const e = Float32Array.of(2, 1, 0);
    assert.deepEqual(await grid(gpu, e, -1, { ok: 0 }), await grid(CPU, e, -1, { ok: 0 }));
  });
});
