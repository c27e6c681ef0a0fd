import assert from "node:assert/strict";
import { backward, noGrad } from "../../tensor/autograd.ts";
import type { Backend } from "../../tensor/backend.ts";
import type { DType } from "../../tensor/dtype.ts";
import { scaledDotProductAttention } from "../../tensor/ops/attention.ts";
import { mul } from "../../tensor/ops/elementwise.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { type AttentionMasks, MultiheadAttention } from "../../tensor/nn/attention.ts";
import { Rng } from "../../tensor/rng.ts";
import type { HostTensor } from "../../tensor/safetensors.ts";
import { type Tensor, tensor, tidy } from "../../tensor/tensor.ts";
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
  poisonPool,
  randomArray,
  testBackends,
} from "./helpers.ts";

interface MhaCase {
  name: string;
  embed_dim: number;
  num_heads: number;
  bias: boolean;
  self_attention: boolean;
  n: number;
  lq: number;
  lk: number;
  query: number[];
  key?: number[];
  value?: number[];
  loss_weight: number[];
  out: number[];
  grad_query: number[];
  grad_key?: number[];
  grad_value?: number[];
  params: Record<string, number[]>;
  grads: Record<string, number[]>;
  key_padding_mask?: number[];
  attn_mask_shape?: number[];
  attn_mask_bool?: number[];
  attn_mask_float?: number[];
}

const FIXTURE: { multihead_attention: MhaCase[] } = JSON.parse(
  await Deno.readTextFile(
    new URL("../fixtures/tensor/transformer_reference.json", import.meta.url),
  ),
);

function floats(values: ArrayLike<number>, dtype: DType) {
  return dtype === "f64" ? Float64Array.from(values) : Float32Array.from(values);
}

/** A module loaded with a fixture case's parameters. */
function moduleOf(c: MhaCase, backend: Backend, dtype: DType): MultiheadAttention {
  const mha = new MultiheadAttention(c.embed_dim, c.num_heads, {
    rng: new Rng(0),
    bias: c.bias,
    backend,
    dtype,
  });
  const e = c.embed_dim;
  const shapes: Record<string, number[]> = {
    in_proj_weight: [3 * e, e],
    in_proj_bias: [3 * e],
    "out_proj.weight": [e, e],
    "out_proj.bias": [e],
  };
  const state = new Map<string, HostTensor>();
  for (const [name, values] of Object.entries(c.params)) {
    state.set(name, { dtype, shape: shapes[name], data: floats(values, dtype) });
  }
  mha.loadStateDict(state);
  return mha;
}

function masksOf(c: MhaCase, backend: Backend, dtype: DType): AttentionMasks {
  const masks: AttentionMasks = {};
  if (c.key_padding_mask) {
    masks.keyPaddingMask = tensor(Uint32Array.from(c.key_padding_mask), [c.n, c.lk], { backend });
  }
  if (c.attn_mask_bool) {
    masks.attnMask = tensor(Int32Array.from(c.attn_mask_bool), c.attn_mask_shape!, { backend });
  }
  if (c.attn_mask_float) {
    masks.attnMask = tensor(floats(c.attn_mask_float, dtype), c.attn_mask_shape!, { backend });
  }
  return masks;
}

/** Output and gradients of `sum(mha(q, k, v) * lossWeight)` for one fixture case. */
async function runCase(c: MhaCase, backend: Backend, dtype: DType) {
  const mha = moduleOf(c, backend, dtype);
  const e = c.embed_dim;
  const leaf = (v: number[], len: number) =>
    tensor(floats(v, dtype), [c.n, len, e], { backend, requiresGrad: true });
  const query = leaf(c.query, c.lq);
  const key = c.self_attention ? query : leaf(c.key!, c.lk);
  const value = c.self_attention ? query : leaf(c.value!, c.lk);
  const out = mha.forward(query, key, value, masksOf(c, backend, dtype));
  backward(sum(mul(out, tensor(floats(c.loss_weight, dtype), out.shape, { backend }))));
  const grads: Record<string, ArrayLike<number>> = {};
  for (const [name, p] of mha.namedParameters()) grads[name] = await p.grad!.data();
  return {
    out: await out.data(),
    gq: await query.grad!.data(),
    gk: c.self_attention ? null : await key.grad!.data(),
    gv: c.self_attention ? null : await value.grad!.data(),
    grads,
  };
}

Deno.test("MultiheadAttention matches PyTorch's nn.MultiheadAttention(batch_first=True)", async (t) => {
  const check = async (c: MhaCase, backend: Backend, dtype: DType, tol: number) => {
    const got = await runCase(c, backend, dtype);
    assertClose(got.out, c.out, tol, tol, "output");
    assertClose(got.gq, c.grad_query, tol, 10 * tol, "grad query");
    if (got.gk) assertClose(got.gk, c.grad_key!, tol, 10 * tol, "grad key");
    if (got.gv) assertClose(got.gv, c.grad_value!, tol, 10 * tol, "grad value");
    assert.deepEqual(Object.keys(got.grads).sort(), Object.keys(c.grads).sort());
    for (const [name, g] of Object.entries(c.grads)) {
      assertClose(got.grads[name], g, tol, 10 * tol, `grad ${name}`);
    }
  };
  for (const c of FIXTURE.multihead_attention) {
    await t.step(`${c.name}, float64 on the CPU`, () => check(c, CPU, "f64", 1e-11));
    for (const backend of await testBackends()) {
      await t.step(`${c.name}, float32 on ${backend.name}`, () => check(c, backend, "f32", 2e-6));
    }
  }
});

/**
 * Naive float64 attention over `[B, Lq, d]`, `[B, Lk, d]`, `[B, Lk, dv]` with a mask given per
 * (b, i, j) as `blocked` (boolean) or `bias` (additive); rows with every key blocked give zeros.
 */
function naiveAttention(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  [b, lq, lk, d, dv]: number[],
  bias: (batch: number, i: number, j: number) => number,
): Float64Array {
  const out = new Float64Array(b * lq * dv);
  for (let s = 0; s < b; s++) {
    for (let i = 0; i < lq; i++) {
      const scores: number[] = [];
      for (let j = 0; j < lk; j++) {
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[(s * lq + i) * d + c] * k[(s * lk + j) * d + c];
        scores.push(dot / Math.sqrt(d) + bias(s, i, j));
      }
      const m = Math.max(...scores);
      if (m === -Infinity) continue; // every key blocked: zero weights
      const e = scores.map((x) => Math.exp(x - m));
      const total = e.reduce((a, x) => a + x, 0);
      for (let j = 0; j < lk; j++) {
        for (let c = 0; c < dv; c++) {
          out[(s * lq + i) * dv + c] += (e[j] / total) * v[(s * lk + j) * dv + c];
        }
      }
    }
  }
  return out;
}

Deno.test("scaledDotProductAttention matches a naive reference", async (t) => {
  const [b, h, lq, lk, d, dv] = [2, 3, 4, 5, 6, 3];
  const q = randomArray(b * h * lq * d, 1, -2, 2), k = randomArray(b * h * lk * d, 2, -2, 2);
  const v = randomArray(b * h * lk * dv, 3);
  const dims = [b * h, lq, lk, d, dv];
  // A boolean [Lq, Lk] mask that blocks every key of query 2.
  const blocked = Array.from(
    { length: lq * lk },
    (_, i) => (i % 3 === 0 || Math.floor(i / lk) === 2 ? 1 : 0),
  );
  const additive = Array.from(
    randomArray(lq * lk, 4, -3, 1),
    (x, i) => (i % 4 === 1 ? -Infinity : x),
  );
  const padding = [0, 0, 0, 1, 1, 0, 1, 0, 0, 0]; // [B, 1, 1, Lk]
  const cases: [string, Tensor | undefined, (s: number, i: number, j: number) => number][] = [
    ["no mask", undefined, () => 0],
    [
      "boolean [Lq, Lk] with a fully blocked query",
      tensor(Uint32Array.from(blocked), [lq, lk], { backend: CPU }),
      (_, i, j) => (blocked[i * lk + j] ? -Infinity : 0),
    ],
    [
      "additive [Lq, Lk] with -Infinity",
      tensor(Float32Array.from(additive), [lq, lk], { backend: CPU }),
      (_, i, j) => Math.fround(additive[i * lk + j]),
    ],
    [
      "key padding [B, 1, 1, Lk] (i32)",
      tensor(Int32Array.from(padding), [b, 1, 1, lk], { backend: CPU }),
      (s, _, j) => (padding[Math.floor(s / h) * lk + j] ? -Infinity : 0),
    ],
  ];
  for (const [name, mask, bias] of cases) {
    await t.step(name, async () => {
      const expected = naiveAttention(q, k, v, dims, bias);
      for (const backend of await testBackends()) {
        const m = mask && tensor(await mask.data(), mask.shape, { backend });
        const out = scaledDotProductAttention(
          tensor(q, [b, h, lq, d], { backend }),
          tensor(k, [b, h, lk, d], { backend }),
          tensor(v, [b, h, lk, dv], { backend }),
          m,
        );
        assert.deepEqual(out.shape, [b, h, lq, dv]);
        assertClose(await out.data(), expected, 1e-5, 1e-5, backend.name);
      }
    });
  }
  await t.step("2-D operands, no batch", async () => {
    const out = scaledDotProductAttention(
      tensor(q.subarray(0, lq * d), [lq, d], { backend: CPU }),
      tensor(k.subarray(0, lk * d), [lk, d], { backend: CPU }),
      tensor(v.subarray(0, lk * dv), [lk, dv], { backend: CPU }),
    );
    const expected = naiveAttention(q, k, v, [1, lq, lk, d, dv], () => 0);
    assertClose(await out.data(), expected, 1e-5, 1e-5);
  });
});

Deno.test("scaledDotProductAttention gradients match finite differences (float64)", async () => {
  const [lq, lk, d] = [3, 4, 2];
  const inputs = [
    { data: randomArray(2 * lq * d, 5, -1, 1), shape: [2, lq, d] },
    { data: randomArray(2 * lk * d, 6, -1, 1), shape: [2, lk, d] },
    { data: randomArray(2 * lk * 3, 7, -1, 1), shape: [2, lk, 3] },
  ];
  // Query 1 may attend to no key: its output and gradients are zero.
  const blocked = tensor(Uint32Array.from([0, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 0]), [lq, lk], {
    backend: CPU,
  });
  const bias = f64([0, -1, 0.5, -Infinity, 0.2, 0, 0, 0, -Infinity, 1, 0, 0], [lq, lk]);
  await gradcheck((q, k, v) => scaledDotProductAttention(q, k, v), inputs);
  await gradcheck((q, k, v) => scaledDotProductAttention(q, k, v, blocked), inputs);
  await gradcheck((q, k, v) => scaledDotProductAttention(q, k, v, bias), inputs);
});

Deno.test("MultiheadAttention: a query with every key masked outputs out_proj.bias", async () => {
  const e = 4;
  const mha = new MultiheadAttention(e, 2, { rng: new Rng(1), backend: CPU });
  const bias = randomArray(e, 2);
  mha.loadStateDict(new Map([["out_proj.bias", { dtype: "f32", shape: [e], data: bias }]]), {
    strict: false,
  });
  const query = tensor(randomArray(2 * 3 * e, 3), [2, 3, e], { backend: CPU, requiresGrad: true });
  const key = tensor(randomArray(2 * 2 * e, 4), [2, 2, e], { backend: CPU, requiresGrad: true });
  const keyPaddingMask = tensor(Uint32Array.from([1, 1, 0, 1]), [2, 2], { backend: CPU });
  const out = mha.forward(query, key, key, { keyPaddingMask });
  const y = await out.data();
  for (let i = 0; i < 3; i++) {
    assertClose(y.subarray(i * e, i * e + e), bias, 1e-7, 0, `query ${i}`);
  }
  backward(sum(out));
  for (const t of [query.grad!, key.grad!, ...mha.parameters().map((p) => p.grad!)]) {
    assert.ok((await t.data()).every(Number.isFinite));
  }
  // Image 0's keys get no gradient (nothing attends to them); image 1's do.
  const gk = await key.grad!.data();
  assert.ok(gk.subarray(0, 2 * e).every((g) => g === 0));
  assert.ok(gk.subarray(2 * e).some((g) => g !== 0));
});

Deno.test("MultiheadAttention: PyTorch's names and initial values", async () => {
  const mha = new MultiheadAttention(16, 4, { rng: new Rng(2), backend: CPU });
  assert.deepEqual(mha.namedParameters().map(([n, p]) => [n, p.shape]), [
    ["in_proj_weight", [48, 16]],
    ["in_proj_bias", [48]],
    ["out_proj.weight", [16, 16]],
    ["out_proj.bias", [16]],
  ]);
  const w = await mha.inProjWeight.data();
  const bound = Math.sqrt(6 / (16 + 48));
  assert.ok(w.every((x) => Math.abs(x) <= bound) && w.some((x) => Math.abs(x) > 0.9 * bound));
  assert.ok((await mha.inProjBias!.data()).every((x) => x === 0));
  assert.ok((await mha.outProj.bias!.data()).every((x) => x === 0));
  const plain = new MultiheadAttention(16, 4, { rng: new Rng(2), bias: false, backend: CPU });
  assert.deepEqual(plain.namedParameters().map(([n]) => n), ["in_proj_weight", "out_proj.weight"]);
});

Deno.test("MultiheadAttention dropout: fixed by the seed in training, off in eval()", async () => {
  const x = tensor(randomArray(2 * 5 * 8, 9), [2, 5, 8], { backend: CPU });
  const make = (p: number) =>
    new MultiheadAttention(8, 2, { rng: new Rng(4), dropout: p, backend: CPU });
  const [a, b, plain] = [make(0.5), make(0.5), make(0)];
  const ya = await a.forward(x).data(), yb = await b.forward(x).data();
  assert.deepEqual(ya, yb);
  const y0 = await plain.forward(x).data();
  assert.notDeepEqual(ya, y0);
  assert.notDeepEqual(await a.forward(x).data(), ya, "a new mask per call");
  assert.deepEqual(await a.eval().forward(x).data(), y0);
});

async function parity(target: Backend) {
  const [n, lq, lk, e] = [2, 7, 9, 12];
  const q = randomArray(n * lq * e, 1), kv = randomArray(n * lk * e, 2);
  const g = randomArray(n * lq * e, 3);
  const padding = Uint32Array.from({ length: n * lk }, (_, i) => (i % lk >= 7 && i < lk ? 1 : 0));
  const attn = Int32Array.from({ length: lq * lk }, (_, i) => (i % 5 === 2 ? 1 : 0));
  poisonPool(target, [n * lq * e, n * 3 * lq * lk]);
  await compareBackends(
    (backend) => {
      const mha = new MultiheadAttention(e, 3, { rng: new Rng(5), dropout: 0.2, backend });
      const query = tensor(q, [n, lq, e], { backend, requiresGrad: true });
      const key = tensor(kv, [n, lk, e], { backend, requiresGrad: true });
      const out = mha.forward(query, key, key, {
        keyPaddingMask: tensor(padding, [n, lk], { backend }),
        attnMask: tensor(attn, [lq, lk], { backend }),
      });
      backward(out, tensor(g, out.shape, { backend }));
      return [out, query.grad!, key.grad!, ...mha.parameters().map((p) => p.grad!)];
    },
    1e-5,
    1e-4,
    target,
  );
}

Deno.test(
  "MultiheadAttention on WebGPU matches the CPU twin (masks, dropout)",
  { ignore: !GPU },
  async () => {
    await parity(await gpuBackend());
  },
);

Deno.test(
  "MultiheadAttention on the native backend matches the CPU",
  { ignore: !NATIVE },
  async () => {
    await parity(nativeBackend());
  },
);

Deno.test("MultiheadAttention releases its scratch tensors", async () => {
  for (const backend of await testBackends()) {
    const mha = new MultiheadAttention(8, 2, { rng: new Rng(0), backend });
    const x = tensor(randomArray(48, 1), [2, 3, 8], { backend });
    const mask = tensor(Uint32Array.from([0, 0, 1, 0, 0, 0]), [2, 3], { backend });
    const before = backend.liveBuffers();
    // Without a tape only the output stays.
    const y = noGrad(() => mha.forward(x, x, x, { keyPaddingMask: mask }));
    assert.equal(backend.liveBuffers(), before + 1, `${backend.name}: no tape`);
    y.dispose();
    // With one, a tidy scope around the step releases everything but the gradients.
    tidy(() => backward(sum(mha.forward(x, x, x, { keyPaddingMask: mask }))));
    assert.equal(backend.liveBuffers(), before + 4, `${backend.name}: tape`);
    mha.dispose();
  }
});

Deno.test("MultiheadAttention and scaledDotProductAttention reject bad input", () => {
  const rng = new Rng(0);
  assert.throws(
    () => new MultiheadAttention(10, 3, { rng }),
    /MultiheadAttention: embedDim 10 is not divisible by numHeads 3/,
  );
  assert.throws(() => new MultiheadAttention(8, 2, { rng, dropout: 2 }), /dropout 2 is outside/);
  const mha = new MultiheadAttention(8, 2, { rng, backend: CPU });
  const x = tensor(new Float32Array(48), [2, 3, 8], { backend: CPU });
  const k = tensor(new Float32Array(64), [2, 4, 8], { backend: CPU });
  assert.throws(
    () => mha.forward(tensor(new Float32Array(24), [3, 8], { backend: CPU })),
    /MultiheadAttention: query \[3, 8\], key \[3, 8\] and value \[3, 8\] must be \[N, L, 8\]/,
  );
  assert.throws(
    () => mha.forward(x, k, tensor(new Float32Array(48), [2, 3, 8], { backend: CPU })),
    /disagree in N or in the key length/,
  );
  assert.throws(
    () =>
      mha.forward(x, k, k, {
        keyPaddingMask: tensor(new Uint32Array(6), [2, 3], { backend: CPU }),
      }),
    /keyPaddingMask has shape \[2, 3\] but \[N, Lk\] is \[2, 4\]/,
  );
  assert.throws(
    () => mha.forward(x, k, k, { attnMask: tensor(new Uint32Array(12), [4, 3], { backend: CPU }) }),
    /attnMask has shape \[4, 3\] but must be \[Lq, Lk\] = \[3, 4\] or \[N \* numHeads, Lq, Lk\] = \[4, 3, 4\]/,
  );
  assert.throws(
    () =>
      mha.forward(x, k, k, {
        attnMask: tensor(new Float64Array(12), [3, 4], { backend: CPU }),
      }),
    /Attention mask is f64 but the scores are f32/,
  );
  const q = tensor(new Float32Array(6), [3, 2], { backend: CPU });
  assert.throws(
    () => scaledDotProductAttention(q, tensor(new Float32Array(6), [2, 3], { backend: CPU }), q),
    /scaledDotProductAttention: query \[3, 2\] and key \[2, 3\] differ in the last axis/,
  );
  assert.throws(
    () => scaledDotProductAttention(q, q, tensor(new Float32Array(4), [2, 2], { backend: CPU })),
    /key \[3, 2\] and value \[2, 2\] have different lengths/,
  );
  assert.throws(
    () => scaledDotProductAttention(q, q, q, tensor(new Uint32Array(6), [2, 3], { backend: CPU })),
    /scaledDotProductAttention: mask \[2, 3\] does not broadcast to the scores \[3, 3\]/,
  );
  assert.throws(
    () => scaledDotProductAttention(tensor([1, 2], [2], { backend: CPU }), q, q),
    TypeError,
  );
});
