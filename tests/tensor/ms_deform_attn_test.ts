import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { LOOP_BUDGET } from "../../tensor/kernel.ts";
import { slice } from "../../tensor/ops/concat.ts";
import { add, mul, sub } from "../../tensor/ops/elementwise.ts";
import { gridSample } from "../../tensor/ops/grid_sample.ts";
import { msDeformAttn } from "../../tensor/ops/ms_deform_attn.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { permute, reshape } from "../../tensor/ops/shape.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import {
  assertClose,
  CPU,
  gradcheck,
  poisonPool,
  randomArray,
  shapeSize,
  testBackends,
} from "./helpers.ts";

type Levels = [number, number][];

interface Case {
  name: string;
  dims: { N: number; S: number; M: number; D: number; L: number; Lq: number; P: number };
  spatial_shapes: Levels;
  level_start_index: number[];
  value: unknown[];
  sampling_locations: unknown[];
  attention_weights: unknown[];
  output_weight: unknown[];
  expected: {
    output: unknown[];
    loss: number;
    grad_value: unknown[];
    grad_sampling_locations: unknown[];
    grad_attention_weights: unknown[];
  };
}

const FIXTURE: { cases: Case[] } = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/detr/msda.json", import.meta.url)),
);

function flat(nested: unknown[]): number[] {
  return nested.flat(Infinity) as number[];
}

/** `|actual - expected| <= tolerance * max |expected|` elementwise. */
function assertRelMax(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number,
  what: string,
): void {
  const scale = Math.max(...Array.from(expected, Math.abs), 1e-30);
  assertClose(actual, expected, tolerance * scale, 0, what);
}

/** Inputs of one attention call: values, locations, weights and the output gradient. */
interface Problem {
  levels: Levels;
  value: Input;
  loc: Input;
  aw: Input;
  weight: ArrayLike<number>;
}

/** Row-major data and shape of one input. */
interface Input {
  data: ArrayLike<number>;
  shape: number[];
}

type Attention = (value: Tensor, levels: Levels, loc: Tensor, aw: Tensor) => Tensor;

function starts(levels: Levels): number[] {
  let at = 0;
  return levels.map(([h, w]) => (at += h * w) - h * w);
}

const direct: Attention = (value, levels, loc, aw) =>
  msDeformAttn(value, levels, starts(levels), loc, aw);

/**
 * The naive composition `ms_deform_attn_core_pytorch` writes, from tested ops: per level, the
 * head planes `[N*M, D, H, W]` sampled by `gridSample` at `2 * loc - 1` (align corners false),
 * weighted and summed over the points, summed over the levels.
 */
const viaGridSample: Attention = (value, levels, loc, aw) => {
  const [n, , m, d] = value.shape;
  const [, lq, , , np] = loc.shape;
  let total: Tensor | null = null;
  let start = 0;
  levels.forEach(([h, w], l) => {
    const vl = slice(value, [0, start, 0, 0], [n, start + h * w, m, d]);
    const planes = reshape(permute(vl, [0, 2, 3, 1]), [n * m, d, h, w]);
    const ll = reshape(slice(loc, [0, 0, 0, l, 0, 0], [n, lq, m, l + 1, np, 2]), [n, lq, m, np, 2]);
    const grid = sub(mul(reshape(permute(ll, [0, 2, 1, 3, 4]), [n * m, lq, np, 2]), 2), 1);
    const al = reshape(slice(aw, [0, 0, 0, l, 0], [n, lq, m, l + 1, np]), [n, lq, m, np]);
    const weights = reshape(permute(al, [0, 2, 1, 3]), [n * m, 1, lq, np]);
    const term = sum(mul(gridSample(planes, grid), weights), 3);
    total = total ? add(total, term) : term;
    start += h * w;
  });
  return reshape(permute(reshape(total!, [n, m, d, lq]), [0, 3, 1, 2]), [n, lq, m * d]);
};

/** Output and gradients (value, locations, weights) of `sum(attention(...) * W)` on `backend`. */
async function run(backend: Backend, attention: Attention, pr: Problem): Promise<Float32Array[]> {
  const leaf = (x: Input) =>
    tensor(Float32Array.from(x.data), x.shape, { backend, requiresGrad: true });
  const value = leaf(pr.value), loc = leaf(pr.loc), aw = leaf(pr.aw);
  const out = attention(value, pr.levels, loc, aw);
  const [n, lq, m, , np] = pr.aw.shape;
  assert.deepEqual(out.shape, [n, lq, m * pr.value.shape[3]]);
  assert.equal(np, pr.loc.shape[4]);
  backward(out, tensor(Float32Array.from(pr.weight), out.shape, { backend }));
  const result = [await out.data()];
  for (const t of [value, loc, aw]) {
    result.push(await t.grad!.data());
    t.grad!.dispose();
    t.dispose();
  }
  out.dispose();
  return result as Float32Array[];
}

Deno.test("msDeformAttn() matches Deformable-DETR's reference on every backend", async (t) => {
  for (const backend of await testBackends()) {
    for (const c of FIXTURE.cases) {
      await t.step(`${backend.name}: ${c.name}`, async () => {
        const { N, S, M, D, L, Lq, P } = c.dims;
        const e = c.expected;
        poisonPool(backend, [N * Lq * M * D, N * S * M * D, N * Lq * M * L * P]);
        const [out, dvalue, dloc, daw] = await run(backend, direct, {
          levels: c.spatial_shapes,
          value: { data: flat(c.value), shape: [N, S, M, D] },
          loc: { data: flat(c.sampling_locations), shape: [N, Lq, M, L, P, 2] },
          aw: { data: flat(c.attention_weights), shape: [N, Lq, M, L, P] },
          weight: flat(c.output_weight),
        });
        assertRelMax(out, flat(e.output), 1e-5, `${c.name} output`);
        const w = flat(c.output_weight);
        const loss = Array.from(out).reduce((acc, v, i) => acc + v * w[i], 0);
        assertClose([loss], [e.loss], 0, 1e-5, `${c.name} loss`);
        assertRelMax(dvalue, flat(e.grad_value), 1e-4, `${c.name} grad_value`);
        assertRelMax(dloc, flat(e.grad_sampling_locations), 1e-4, `${c.name} grad_locations`);
        assertRelMax(daw, flat(e.grad_attention_weights), 1e-4, `${c.name} grad_weights`);
      });
    }
  }
});

/** A seeded random problem; locations in [-0.1, 1.1] (some taps outside), signed weights. */
function randomProblem(
  levels: Levels,
  [n, lq, m, d, np]: number[],
  seed: number,
): Problem {
  const s = levels.reduce((acc, [h, w]) => acc + h * w, 0), nl = levels.length;
  const shape = (dims: number[]) => ({ data: randomArray(shapeSize(dims), seed++), shape: dims });
  return {
    levels,
    value: shape([n, s, m, d]),
    loc: {
      data: randomArray(n * lq * m * nl * np * 2, seed++, -0.1, 1.1),
      shape: [n, lq, m, nl, np, 2],
    },
    aw: shape([n, lq, m, nl, np]),
    weight: randomArray(n * lq * m * d, seed++),
  };
}

Deno.test("msDeformAttn() meets its gridSample composition on random shapes", async (t) => {
  const problems: [string, Problem][] = [
    ["3 levels", randomProblem([[6, 7], [3, 4], [1, 2]], [2, 5, 3, 4, 2], 1)],
    ["1 level, 1 point", randomProblem([[5, 3]], [1, 7, 2, 3, 1], 2)],
    ["4 levels, 4 points", randomProblem([[8, 8], [4, 4], [2, 2], [1, 1]], [1, 9, 2, 5, 4], 3)],
    ["blocks of 4 channels", randomProblem([[5, 6], [3, 3]], [2, 7, 3, 12, 3], 6)],
    // Passes: more samples per query and head, and more channels, than one loop may run.
    ["many points", randomProblem([[3, 2]], [1, 2, 1, 2, LOOP_BUDGET + 3], 4)],
    ["many channels", randomProblem([[2, 3]], [1, 2, 1, LOOP_BUDGET + 5, 2], 5)],
  ];
  for (const backend of await testBackends()) {
    for (const [name, problem] of problems) {
      await t.step(`${backend.name}: ${name}`, async () => {
        const actual = await run(backend, direct, problem);
        const expected = await run(backend, viaGridSample, problem);
        ["output", "value gradient", "location gradient", "weight gradient"].forEach((what, k) =>
          assertRelMax(actual[k], expected[k], k === 0 ? 1e-5 : 1e-4, `${name} ${what}`)
        );
      });
    }
  }
});

Deno.test("msDeformAttn() float64 gradients meet finite differences", async () => {
  const p = randomProblem([[4, 5], [2, 3]], [2, 3, 2, 3, 2], 9);
  await gradcheck(
    (value, loc, aw) => direct(value, p.levels, loc, aw),
    [p.value, p.loc, p.aw],
  );
});

Deno.test("msDeformAttn() rejects inconsistent shapes, naming them", () => {
  const p = randomProblem([[4, 5], [2, 3]], [2, 3, 2, 3, 2], 1);
  const [value, loc, aw] = [p.value, p.loc, p.aw].map((x) =>
    tensor(Float32Array.from(x.data), x.shape)
  );
  const levels = p.levels;
  const zerosOf = (shape: number[]) => tensor(new Float32Array(shapeSize(shape)), shape);
  assert.throws(
    () => msDeformAttn(value, levels, [0, 20], zerosOf([2, 3, 2, 3, 2, 2]), aw),
    /samplingLocations must be \[N, Lq, M, L, P, 2\] = \[2, Lq, 2, 2, P, 2\], got \[2, 3, 2, 3, 2/,
  );
  assert.throws(
    () => msDeformAttn(value, levels, [0, 20], zerosOf([2, 3, 2, 2, 2, 3]), aw),
    /samplingLocations .* got \[2, 3, 2, 2, 2, 3\]/,
  );
  assert.throws(
    () => msDeformAttn(value, levels, [0, 20], zerosOf([2, 3, 2, 2, 2]), aw),
    /samplingLocations .* got \[2, 3, 2, 2, 2\]/,
  );
  assert.throws(
    () => msDeformAttn(value, levels, [0, 20], loc, zerosOf([2, 3, 2, 2, 3])),
    /attentionWeights must be \[N, Lq, M, L, P\] = \[2, 3, 2, 2, 2\].*got \[2, 3, 2, 2, 3\]/,
  );
  assert.throws(
    () => msDeformAttn(value, levels, [0, 19], loc, aw),
    /levelStartIndex\[1\] is 19 but level 1 starts at 20/,
  );
  assert.throws(() => msDeformAttn(value, levels, [0], loc, aw), /levelStartIndex has 1 entries/);
  assert.throws(
    () => msDeformAttn(value, [[4, 5], [2, 4]], [0, 20], loc, aw),
    /value \[2, 26, 2, 3\] has S = 26 positions but spatialShapes \[\[4,5\],\[2,4\]\] hold 28/,
  );
  assert.throws(
    () => msDeformAttn(value, [[4, 5], [0, 6]], [0, 20], loc, aw),
    /spatialShapes\[1\] is \[0,6\]/,
  );
  assert.throws(() => msDeformAttn(value, [], [], loc, aw), /non-empty list/);
  assert.throws(
    () => msDeformAttn(zerosOf([2, 26, 6]), levels, [0, 20], loc, aw),
    /expected value \[N, S, M, D\], got \[2, 26, 6\]/,
  );
  assert.throws(
    () =>
      msDeformAttn(
        value,
        levels,
        [0, 20],
        tensor(Float64Array.from(p.loc.data), p.loc.shape, { backend: CPU }),
        aw,
      ),
    /samplingLocations are f64 but the values are f32/,
  );
  const nan = Float32Array.from(p.loc.data);
  nan[7] = NaN;
  assert.throws(
    () => msDeformAttn(value, levels, [0, 20], tensor(nan, p.loc.shape), aw),
    /samplingLocations has a NaN coordinate at \[0, 0, 0, 1, 1, 1\]/,
  );
});

Deno.test("msDeformAttn() with no queries gives an empty output and zero gradients", async () => {
  for (const backend of await testBackends()) {
    const value = tensor(randomArray(2 * 6 * 1 * 4, 1), [2, 6, 1, 4], {
      backend,
      requiresGrad: true,
    });
    const loc = tensor(new Float32Array(0), [2, 0, 1, 2, 3, 2], { backend, requiresGrad: true });
    const aw = tensor(new Float32Array(0), [2, 0, 1, 2, 3], { backend, requiresGrad: true });
    const out = msDeformAttn(value, [[2, 2], [1, 2]], [0, 4], loc, aw);
    assert.deepEqual(out.shape, [2, 0, 4]);
    backward(out, tensor(new Float32Array(0), [2, 0, 4], { backend }));
    assert.deepEqual(Array.from(await value.grad!.data()), new Array(48).fill(0));
    assert.equal((await loc.grad!.data()).length, 0);
  }
});

Deno.test("msDeformAttn() releases what it allocates", async () => {
  const p = randomProblem([[4, 5], [2, 3]], [2, 3, 2, 3, 2], 1);
  for (const backend of await testBackends()) {
    const leaf = (x: Input) =>
      tensor(Float32Array.from(x.data), x.shape, { backend, requiresGrad: true });
    const value = leaf(p.value), loc = leaf(p.loc), aw = leaf(p.aw);
    const before = backend.liveBuffers();
    const out = direct(value, p.levels, loc, aw);
    const ones = tensor(new Float32Array(out.size).fill(1), out.shape, { backend });
    backward(out, ones);
    await value.grad!.data();
    for (const t of [out, ones, value.grad!, loc.grad!, aw.grad!]) t.dispose();
    value.grad = loc.grad = aw.grad = null;
    assert.equal(backend.liveBuffers(), before, backend.name);
    for (const t of [value, loc, aw]) t.dispose();
  }
});
