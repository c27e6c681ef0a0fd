import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import { erf, gelu } from "../../tensor/ops/activation.ts";
import { dropout } from "../../tensor/ops/dropout.ts";
import { mul } from "../../tensor/ops/elementwise.ts";
import { linear } from "../../tensor/ops/linear.ts";
import { sinePositionEncoding } from "../../tensor/ops/position_encoding.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { Linear } from "../../tensor/nn/linear.ts";
import { Dropout, Embedding, GELU } from "../../tensor/nn/transformer.ts";
import { Rng } from "../../tensor/rng.ts";
import { tensor } from "../../tensor/tensor.ts";
import {
  assertClose,
  compareBackends,
  CPU,
  f64,
  GPU,
  gpuBackend,
  gradcheck,
  NATIVE,
  nativeBackend,
  outputsOf,
  poisonPool,
  randomArray,
  testBackends,
} from "./helpers.ts";

interface ActivationCase {
  x: number[];
  loss_weight: number[];
  gelu: number[];
  grad_gelu: number[];
  erf: number[];
  grad_erf: number[];
}

interface PositionCase {
  name: string;
  mask_shape: [number, number, number];
  mask: number[];
  num_feats: number;
  temperature: number;
  normalize: boolean;
  scale: number;
  offset: number;
  eps: number;
  pos: number[];
}

const FIXTURE: { activation: ActivationCase; sine_position: PositionCase[] } = JSON.parse(
  await Deno.readTextFile(
    new URL("../fixtures/tensor/transformer_reference.json", import.meta.url),
  ),
);

// ---------------------------------------------------------------------------------------------
// erf and GELU

Deno.test("erf and gelu match PyTorch (values and gradients)", async (t) => {
  const c = FIXTURE.activation;
  const ops = [["gelu", gelu, c.gelu, c.grad_gelu], ["erf", erf, c.erf, c.grad_erf]] as const;
  for (const [name, op, values, grads] of ops) {
    await t.step(`${name}, float64 on the CPU`, async () => {
      const x = f64(c.x, [c.x.length], true);
      const y = op(x);
      backward(sum(mul(y, f64(c.loss_weight, [c.x.length]))));
      // The approximation: below 1e-9 relative (fit) and 1e-10 (series), in doubles.
      assertClose(await y.data(), values, 1e-12, 2e-9, `${name} values`);
      assertClose(await x.grad!.data(), grads, 1e-12, 2e-9, `${name} gradients`);
    });
    for (const backend of await testBackends()) {
      await t.step(`${name}, float32 on ${backend.name}`, async () => {
        const x = tensor(c.x, [c.x.length], { backend, requiresGrad: true });
        const y = op(x);
        backward(sum(mul(y, tensor(c.loss_weight, [c.x.length], { backend }))));
        // A few f32 ulps of the value (|x| up to 37 for gelu).
        assertClose(await y.data(), values, 2e-7, 1e-6, `${name} values`);
        assertClose(await x.grad!.data(), grads, 3e-7, 2e-6, `${name} gradients`);
      });
    }
  }
  await t.step("gelu keeps its negative tail to relative precision", async () => {
    // x Phi(x) at -6 and -9 (Phi from mpmath): 1 + erf(x / sqrt 2) would round to 0 or worse.
    const y = await gelu(tensor([-6, -9], [2], { backend: CPU })).data();
    assertClose(y, [-6 * 9.865876450376946e-10, -9 * 1.1285884059538324e-19], 0, 1e-5);
  });
});

Deno.test("erf and gelu gradients match finite differences (float64)", async () => {
  const x = Array.from(randomArray(40, 51, -4, 4));
  await gradcheck((a) => gelu(a), [{ data: x, shape: [5, 8] }]);
  await gradcheck((a) => erf(a), [{ data: x, shape: [40] }]);
});

Deno.test("GELU module applies gelu; erf and gelu reject integer tensors", async () => {
  const x = tensor([-1.5, 0.25, 2], [3], { backend: CPU });
  assert.deepEqual(await new GELU().forward(x).data(), await gelu(x).data());
  const ints = tensor([1, 2], [2], { backend: CPU, dtype: "i32" });
  assert.throws(() => gelu(ints), /gelu: expected f32 or f64 but got i32/);
  assert.throws(() => erf(ints), /erf: expected f32 or f64 but got i32/);
});

// ---------------------------------------------------------------------------------------------
// Dropout

Deno.test("dropout: inverted scaling, the drop rate, a mask fixed by the seed", async (t) => {
  const n = 100_000;
  const x = randomArray(n, 61, 0.5, 2);
  for (const p of [0.1, 0.3, 0.75]) {
    await t.step(`p = ${p}`, async () => {
      const y = await dropout(tensor(x, [n], { backend: CPU }), p, new Rng(5)).data();
      let zeros = 0;
      for (let i = 0; i < n; i++) {
        if (y[i] === 0) zeros++;
        else assert.equal(y[i], Math.fround(x[i] * Math.fround(1 / (1 - p))), `element ${i}`);
      }
      // Binomial: the rate is within 5 standard deviations of p.
      assert.ok(Math.abs(zeros / n - p) < 5 * Math.sqrt(p * (1 - p) / n), `rate ${zeros / n}`);
      const again = await dropout(tensor(x, [n], { backend: CPU }), p, new Rng(5)).data();
      assert.deepEqual(again, y);
      const other = await dropout(tensor(x, [n], { backend: CPU }), p, new Rng(6)).data();
      assert.notDeepEqual(other, y);
    });
  }
  await t.step("consecutive calls draw new masks", async () => {
    const rng = new Rng(1);
    const ones = tensor(new Float32Array(256).fill(1), [256], { backend: CPU });
    const a = await dropout(ones, 0.5, rng).data(), b = await dropout(ones, 0.5, rng).data();
    assert.notDeepEqual(a, b);
  });
  await t.step("masks of neighbouring elements are not correlated", async () => {
    const y = await dropout(
      tensor(new Float32Array(n).fill(1), [n], { backend: CPU }),
      0.5,
      new Rng(9),
    )
      .data();
    let same = 0;
    for (let i = 1; i < n; i++) if ((y[i] === 0) === (y[i - 1] === 0)) same++;
    assert.ok(Math.abs(same / (n - 1) - 0.5) < 5 * Math.sqrt(0.25 / n), `agreement ${same / n}`);
  });
  await t.step("p = 0 is the identity on the tape, p = 1 gives zeros", async () => {
    const a = tensor([1, -2, 3], [3], { backend: CPU, requiresGrad: true });
    const rng = new Rng(0), before = new Rng(0);
    const same = dropout(a, 0, rng);
    assert.notEqual(same, a);
    assert.deepEqual(await same.data(), await a.data());
    assert.equal(rng.nextU32(), before.nextU32(), "p = 0 draws nothing");
    backward(sum(same));
    assert.deepEqual(Array.from(await a.grad!.data()), [1, 1, 1]);
    assert.deepEqual(Array.from(await dropout(a, 1, rng).data()), [0, 0, 0]);
  });
  await t.step("the gradient uses the forward mask and scale", async () => {
    const a = tensor(x.subarray(0, 1000), [10, 100], { backend: CPU, requiresGrad: true });
    const y = dropout(a, 0.4, new Rng(3));
    const g = randomArray(1000, 4);
    backward(y, tensor(g, [10, 100], { backend: CPU }));
    const yv = await y.data(), gv = await a.grad!.data();
    for (let i = 0; i < 1000; i++) {
      const expected = yv[i] === 0 ? 0 : Math.fround(g[i] * Math.fround(1 / 0.6));
      assert.equal(gv[i], expected, `gradient ${i}`);
    }
  });
  await t.step("bad probabilities are refused", () => {
    const a = tensor([1], [1], { backend: CPU });
    assert.throws(
      () => dropout(a, 1.5, new Rng(0)),
      /dropout: probability 1.5 is outside \[0, 1\]/,
    );
    assert.throws(() => dropout(a, NaN, new Rng(0)), RangeError);
    assert.throws(() => new Dropout(-0.1, { rng: new Rng(0) }), RangeError);
  });
});

Deno.test("Dropout module: training drops with its own generator, eval() is the identity", async () => {
  const x = tensor(randomArray(512, 7, 1, 2), [8, 64], { backend: CPU, requiresGrad: true });
  const run = async (seed: number) => {
    const drop = new Dropout(0.5, { rng: new Rng(seed) });
    return [await drop.forward(x).data(), await drop.forward(x).data()];
  };
  const [a1, a2] = await run(11), [b1, b2] = await run(11);
  assert.deepEqual([a1, a2], [b1, b2]);
  assert.notDeepEqual(a1, a2);
  assert.ok(a1.some((v) => v === 0));
  const drop = new Dropout(0.5, { rng: new Rng(11) }).eval();
  const y = drop.forward(x);
  assert.notEqual(y, x);
  assert.deepEqual(await y.data(), await x.data());
  backward(sum(y));
  assert.ok((await x.grad!.data()).every((v) => v === 1));
  assert.equal(drop.train().training, true);
});

async function dropoutParity(target: Backend) {
  const shape = [3, 70_001];
  const x = randomArray(3 * 70_001, 12, -1, 1), g = randomArray(3 * 70_001, 13);
  poisonPool(target, [x.length]);
  await compareBackends(
    (backend) => {
      const tx = tensor(x, shape, { backend, requiresGrad: true });
      const y = dropout(tx, 0.3, new Rng(2));
      backward(y, tensor(g, shape, { backend }));
      return [y, tx.grad!];
    },
    0,
    0,
    target,
  );
}

Deno.test("dropout on WebGPU draws the CPU twin's mask bit for bit", { ignore: !GPU }, async () => {
  await dropoutParity(await gpuBackend());
});

Deno.test("dropout on the native backend equals the CPU", { ignore: !NATIVE }, async () => {
  await dropoutParity(nativeBackend());
});

// ---------------------------------------------------------------------------------------------
// linear over N-D inputs

/** `x W^T + b` row by row, in doubles. */
function naiveLinear(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number> | null,
  out: number,
  inF: number,
) {
  const rows = x.length / inF;
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let s = b ? b[o] : 0;
      for (let k = 0; k < inF; k++) s += x[r * inF + k] * w[o * inF + k];
      y[r * out + o] = s;
    }
  }
  return y;
}

Deno.test("linear over the last axis of 1-D to 4-D inputs", async (t) => {
  const w = randomArray(15, 1), b = randomArray(3, 2);
  for (const shape of [[5], [4, 5], [2, 3, 5], [2, 1, 3, 5]]) {
    await t.step(`[${shape}]`, async () => {
      const size = shape.reduce((a, d) => a * d, 1);
      const x = randomArray(size, size);
      for (const backend of await testBackends()) {
        const y = linear(
          tensor(x, shape, { backend }),
          tensor(w, [3, 5], { backend }),
          tensor(b, [3], { backend }),
        );
        assert.deepEqual(y.shape, [...shape.slice(0, -1), 3]);
        assertClose(await y.data(), naiveLinear(x, w, b, 3, 5), 1e-6, 1e-5, backend.name);
      }
    });
  }
  await t.step("gradients (finite differences, float64)", async () => {
    await gradcheck((x, ww, bb) => linear(x, ww, bb), [
      { data: randomArray(30, 3), shape: [2, 3, 5] },
      { data: w, shape: [3, 5] },
      { data: b, shape: [3] },
    ]);
    await gradcheck((x, ww) => linear(x, ww), [
      { data: randomArray(5, 4), shape: [5] },
      { data: w, shape: [3, 5] },
    ]);
  });
  await t.step("Linear on [N, L, in] equals Linear on its rows", async () => {
    const fc = new Linear(5, 3, { rng: new Rng(0), backend: CPU });
    const x = randomArray(40, 5);
    const y3 = await fc.forward(tensor(x, [2, 4, 5], { backend: CPU })).data();
    const y2 = await fc.forward(tensor(x, [8, 5], { backend: CPU })).data();
    assert.deepEqual(y3, y2);
  });
  await t.step("bad shapes", () => {
    const ww = tensor(w, [3, 5], { backend: CPU });
    assert.throws(
      () => linear(tensor(new Float32Array(8), [2, 4], { backend: CPU }), ww),
      /linear: input \[2, 4\] does not end in the weight's 5 input features/,
    );
    assert.throws(
      () =>
        linear(
          tensor(new Float32Array(5), [5], { backend: CPU }),
          ww,
          tensor([1, 2], [2], { backend: CPU }),
        ),
      /linear: bias has shape \[2\] but the weight has 3 outputs/,
    );
    assert.throws(
      () => linear(tensor([1], [1], { backend: CPU }), tensor([1], [1], { backend: CPU })),
      /weight must be \[out, in\]/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Sine positional encoding

/** Whether pixel `i` of `[N, H, W]` has at least one unpadded pixel in its row and its column. */
function openLines(mask: ArrayLike<number>, [n, h, w]: readonly number[]): boolean[] {
  const keep: boolean[] = [];
  for (let img = 0; img < n; img++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let row = false, col = false;
        for (let k = 0; k < w; k++) row ||= mask[(img * h + y) * w + k] === 0;
        for (let k = 0; k < h; k++) col ||= mask[(img * h + k) * w + x] === 0;
        keep.push(row && col);
      }
    }
  }
  return keep;
}

Deno.test("sinePositionEncoding matches mmdetection's SinePositionalEncoding", async (t) => {
  for (const c of FIXTURE.sine_position) {
    for (const backend of await testBackends()) {
      await t.step(`${c.name} on ${backend.name}`, async () => {
        const [n, h, w] = c.mask_shape;
        const mask = tensor(Uint32Array.from(c.mask), c.mask_shape, { backend });
        const pos = sinePositionEncoding(mask, {
          numFeats: c.num_feats,
          temperature: c.temperature,
          normalize: c.normalize,
          scale: c.scale,
          offset: c.offset,
          eps: c.eps,
        });
        assert.deepEqual(pos.shape, [n, 2 * c.num_feats, h, w]);
        const got = await pos.data();
        const plane = h * w, channels = 2 * c.num_feats;
        const keep = openLines(c.mask, c.mask_shape);
        const a: number[] = [], e: number[] = [];
        for (let i = 0; i < got.length; i++) {
          const img = Math.floor(i / (channels * plane)), pixel = i % plane;
          if (!c.normalize || keep[img * plane + pixel]) {
            a.push(got[i]);
            e.push(c.pos[i]);
          }
        }
        assert.ok(a.length >= got.length / 2);
        assertClose(a, e, 2e-6, 1e-5);
      });
    }
  }
  await t.step("bad input", () => {
    const mask = tensor(new Uint32Array(6), [1, 2, 3], { backend: CPU });
    assert.throws(
      () => sinePositionEncoding(tensor(new Uint32Array(6), [2, 3], { backend: CPU })),
      /sinePositionEncoding: mask must be \[N, H, W\] but has shape \[2, 3\]/,
    );
    assert.throws(() => sinePositionEncoding(mask, { numFeats: 7 }), /numFeats 7/);
    assert.throws(() => sinePositionEncoding(mask, { temperature: 0 }), /temperature 0/);
  });
});

/** The elements of `pos` `[N, C, H, W]` at pixels marked in `keep` (`[N, H, W]`). */
function atPixels(
  pos: ArrayLike<number>,
  keep: readonly boolean[],
  channels: number,
  plane: number,
) {
  const out: number[] = [];
  for (let i = 0; i < pos.length; i++) {
    const img = Math.floor(i / (channels * plane));
    if (keep[img * plane + (i % plane)]) out.push(pos[i]);
  }
  return out;
}

async function positionParity(target: Backend) {
  // Image 0 padded below and to the right, as in a batch canvas; image 1 unpadded. Pixels of
  // fully padded rows or columns are normalised by an empty extent (angles near -3e6, whose sine
  // depends on the backend's range reduction): they are compared in the unnormalised encoding.
  const [n, h, w] = [2, 9, 13];
  const mask = new Uint32Array(n * h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) mask[y * w + x] = y >= 7 || x >= 10 ? 1 : 0;
  }
  const keep = openLines(mask, [n, h, w]);
  poisonPool(target, [n * 2 * 16 * h * w]);
  const run = (backend: Backend) => {
    const m = tensor(mask, [n, h, w], { backend });
    const f = tensor(Float32Array.from(mask), [n, h, w], { backend });
    return [
      sinePositionEncoding(m, { numFeats: 16, offset: -0.5 }),
      sinePositionEncoding(f, { numFeats: 16, normalize: false, temperature: 20 }),
    ];
  };
  const [expected, plain] = await outputsOf(CPU, run);
  const [actual, plainActual] = await outputsOf(target, run);
  const plane = h * w;
  assertClose(atPixels(actual, keep, 32, plane), atPixels(expected, keep, 32, plane), 2e-5, 1e-4);
  assertClose(plainActual, plain, 2e-5, 1e-4, "unnormalised");
}

Deno.test("position.sine on WebGPU matches its CPU twin", { ignore: !GPU }, async () => {
  await positionParity(await gpuBackend());
});

Deno.test("position.sine on the native backend equals the CPU", { ignore: !NATIVE }, async () => {
  await positionParity(nativeBackend());
});

// ---------------------------------------------------------------------------------------------
// Embedding

Deno.test("Embedding: PyTorch's weight and N(0, 1) start; lookups and their gradient", async () => {
  const table = new Embedding(300, 64, { rng: new Rng(3), backend: CPU });
  assert.deepEqual(table.namedParameters().map(([n, p]) => [n, p.shape]), [["weight", [300, 64]]]);
  const w = Array.from(await table.weight.data());
  const mean = w.reduce((a, v) => a + v, 0) / w.length;
  const variance = w.reduce((a, v) => a + (v - mean) ** 2, 0) / w.length;
  assert.ok(Math.abs(mean) < 0.02 && Math.abs(variance - 1) < 0.03, `${mean} ${variance}`);
  const small = new Embedding(4, 3, { rng: new Rng(0), backend: CPU });
  const ws = await small.weight.data();
  const idx = tensor(Int32Array.from([3, 0, 3, 1]), [2, 2], { backend: CPU });
  const rows = small.forward(idx);
  assert.deepEqual(rows.shape, [2, 2, 3]);
  const expected = [3, 0, 3, 1].flatMap((r) => Array.from(ws.subarray(3 * r, 3 * r + 3)));
  assert.deepEqual(Array.from(await rows.data()), expected);
  backward(sum(rows));
  assert.deepEqual(Array.from(await small.weight.grad!.data()), [
    1,
    1,
    1,
    1,
    1,
    1,
    0,
    0,
    0,
    2,
    2,
    2,
  ]);
  assert.throws(() => new Embedding(0, 3, { rng: new Rng(0) }), /Embedding: num 0/);
});
