import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import { add, mul } from "../../tensor/ops/elementwise.ts";
import { groupNorm } from "../../tensor/ops/norm.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import {
  constant,
  fans,
  kaimingNormal,
  kaimingUniform,
  normal,
  uniform,
  zeros,
} from "../../tensor/nn/init.ts";
import { AvgPool2d, Conv2d, MaxPool2d } from "../../tensor/nn/conv.ts";
import { BatchNorm2d, Flatten, GroupNorm, ReLU, Sequential } from "../../tensor/nn/layers.ts";
import { Linear } from "../../tensor/nn/linear.ts";
import { Module } from "../../tensor/nn/module.ts";
import { rand, randn, Rng } from "../../tensor/rng.ts";
import { empty, type Tensor, tensor, tidy } from "../../tensor/tensor.ts";
import { assertClose, CPU, randomArray } from "./helpers.ts";

/** Independent PCG32 reference with BigInt arithmetic. */
function pcg32Reference(seed: bigint, stream: bigint, count: number): number[] {
  const mask = (1n << 64n) - 1n;
  const inc = ((stream << 1n) | 1n) & mask;
  let state = 0n;
  const step = () => (state = (state * 6364136223846793005n + inc) & mask);
  step();
  state = (state + seed) & mask;
  step();
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const old = state;
    step();
    const xs = Number((((old >> 18n) ^ old) >> 27n) & 0xffffffffn);
    const rot = Number(old >> 59n);
    out.push(((xs >>> rot) | (xs << ((32 - rot) & 31))) >>> 0);
  }
  return out;
}

function moments(values: ArrayLike<number>): [number, number] {
  let s = 0, s2 = 0;
  for (let i = 0; i < values.length; i++) {
    s += values[i];
    s2 += values[i] * values[i];
  }
  const mean = s / values.length;
  return [mean, s2 / values.length - mean * mean];
}

Deno.test("Rng", async (t) => {
  await t.step("PCG32 reference outputs", () => {
    const r = new Rng(42, 54);
    // The pcg32 reference demo's first outputs for pcg32_srandom(42, 54).
    assert.deepEqual(
      Array.from({ length: 6 }, () => r.nextU32()),
      [0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e],
    );
    for (const [seed, stream] of [[0, 0], [123456789012345, 987654321098], [2 ** 53 - 1, 1]]) {
      const ours = new Rng(seed, stream);
      assert.deepEqual(
        Array.from({ length: 500 }, () => ours.nextU32()),
        pcg32Reference(BigInt(seed), BigInt(stream), 500),
        `seed ${seed} stream ${stream}`,
      );
    }
  });
  await t.step("distributions", () => {
    const r = new Rng(1);
    const u = Array.from({ length: 20000 }, () => r.uniform());
    assert.ok(u.every((v) => v >= 0 && v < 1));
    const [um, uv] = moments(u);
    assert.ok(Math.abs(um - 0.5) < 0.01 && Math.abs(uv - 1 / 12) < 0.005, `uniform ${um} ${uv}`);
    const z = Array.from({ length: 20000 }, () => r.normal(2, 3));
    const [zm, zv] = moments(z);
    assert.ok(Math.abs(zm - 2) < 0.1 && Math.abs(zv - 9) < 0.3, `normal ${zm} ${zv}`);
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) counts[r.int(3)]++;
    assert.ok(counts.every((c) => c > 900 && c < 1100), `int ${counts}`);
    assert.throws(() => r.int(0), /Rng.int: bound 0/);
    assert.throws(() => new Rng(-1), /Rng: seed -1/);
  });
  await t.step("shuffle and fork are deterministic", () => {
    const a = new Rng(5).shuffle(Array.from({ length: 50 }, (_, i) => i));
    const b = new Rng(5).shuffle(Array.from({ length: 50 }, (_, i) => i));
    assert.deepEqual(a, b);
    assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
    assert.notDeepEqual(a, Array.from({ length: 50 }, (_, i) => i));
    const parent = new Rng(9);
    const f1 = parent.fork(), f2 = parent.fork();
    assert.notEqual(f1.nextU32(), f2.nextU32());
    assert.equal(new Rng(9).fork().nextU32(), new Rng(9).fork().nextU32());
  });
  await t.step("randn and rand tensors", async () => {
    const x = randn([100, 50], new Rng(3), { backend: CPU });
    const y = randn([100, 50], new Rng(3), { backend: CPU });
    assert.deepEqual(Array.from(await x.data()), Array.from(await y.data()));
    const [m, v] = moments(await x.data());
    assert.ok(Math.abs(m) < 0.05 && Math.abs(v - 1) < 0.06);
    const u = rand([1000], new Rng(4), { backend: CPU, lo: -2, hi: -1, dtype: "f64" });
    assert.equal(u.dtype, "f64");
    assert.ok(Array.from(await u.data()).every((v) => v >= -2 && v < -1));
    assert.throws(() => rand([2], new Rng(0), { dtype: "i32" }), /rand: element type i32/);
  });
});

Deno.test("init", async () => {
  assert.deepEqual(fans([16, 3, 3, 3]), [27, 144]);
  assert.deepEqual(fans([10, 20]), [20, 10]);
  const w = kaimingNormal(empty([64, 32, 3, 3], "f32", CPU), new Rng(0));
  const [m, v] = moments(await w.data());
  assert.ok(Math.abs(m) < 0.01 && Math.abs(v / (2 / 288) - 1) < 0.05, `kaimingNormal ${m} ${v}`);
  const fanOut = kaimingNormal(empty([64, 32, 3, 3], "f32", CPU), new Rng(0), { mode: "fan_out" });
  const [, vo] = moments(await fanOut.data());
  assert.ok(Math.abs(vo / (2 / 576) - 1) < 0.05);
  const u = kaimingUniform(empty([50, 40], "f32", CPU), new Rng(1), { a: Math.sqrt(5) });
  const bound = Math.sqrt(2 / 6) * Math.sqrt(3 / 40); // = 1 / sqrt(40)
  const ud = await u.data();
  assert.ok(Array.from(ud).every((x) => Math.abs(x) <= bound));
  assert.ok(Math.max(...Array.from(ud, Math.abs)) > 0.95 * bound);
  assert.deepEqual(Array.from(await constant(empty([3], "f32", CPU), 2.5).data()), [2.5, 2.5, 2.5]);
  assert.deepEqual(Array.from(await zeros(empty([2], "f64", CPU)).data()), [0, 0]);
  const n = normal(empty([4000], "f32", CPU), new Rng(2), 1, 0.5);
  const [nm, nv] = moments(await n.data());
  assert.ok(Math.abs(nm - 1) < 0.03 && Math.abs(nv - 0.25) < 0.02);
  const un = uniform(empty([100], "f32", CPU), new Rng(3), 2, 3);
  assert.ok(Array.from(await un.data()).every((x) => x >= 2 && x < 3));
  assert.throws(
    () => kaimingNormal(empty([3], "f32", CPU), new Rng(0)),
    /fans: a weight needs at least 2 dimensions/,
  );
  assert.throws(() => constant(empty([3], "i32", CPU), 1), /init: cannot fill a i32 tensor/);
});

class Affine extends Module {
  readonly scale: Tensor;
  readonly shift: Tensor;
  readonly count: Tensor;
  constructor(c: number) {
    super();
    this.scale = this.registerParameter(
      "scale",
      tensor(new Float32Array(c).fill(2), [1, c, 1, 1], { backend: CPU }),
    );
    this.shift = this.registerParameter(
      "shift",
      tensor(new Float32Array(c), [1, c, 1, 1], { backend: CPU }),
    );
    this.count = this.registerBuffer("count", tensor([0], [1], { backend: CPU, dtype: "i32" }));
  }
  forward(x: Tensor): Tensor {
    return add(mul(x, this.scale), this.shift);
  }
}

Deno.test("Module", async (t) => {
  await t.step("names, modes, state", () => {
    const net = new Sequential(
      new Affine(2),
      new GroupNorm(1, 2, { backend: CPU }),
      new Sequential(new ReLU(), new BatchNorm2d(2, { backend: CPU })),
      new Flatten(),
    );
    assert.deepEqual(net.namedParameters().map(([n]) => n), [
      "0.scale",
      "0.shift",
      "1.weight",
      "1.bias",
      "2.1.weight",
      "2.1.bias",
    ]);
    assert.deepEqual(net.namedBuffers().map(([n]) => n), [
      "0.count",
      "2.1.running_mean",
      "2.1.running_var",
    ]);
    assert.equal(net.parameters().length, 6);
    assert.ok(net.parameters().every((p) => p.requiresGrad));
    assert.deepEqual([...net.stateDict().keys()].length, 9);
    assert.ok(net.namedModules().every(([, m]) => m.training));
    net.eval();
    assert.ok(net.namedModules().every(([, m]) => !m.training));
    net.train();
    const x = tensor(randomArray(2 * 2 * 3 * 3, 1, -1, 1), [2, 2, 3, 3], { backend: CPU });
    const y = net.forward(x);
    assert.deepEqual(y.shape, [2, 18]);
    backward(sum(y));
    assert.ok(net.parameters().every((p) => p.grad !== null));
    net.zeroGrad();
    assert.ok(net.parameters().every((p) => p.grad === null));
  });
  await t.step("loadStateDict copies in place and validates", async () => {
    const a = new Affine(3), b = new Affine(3);
    const scale = b.scale;
    constant(a.scale, 5);
    b.loadStateDict(a.stateDict());
    assert.equal(b.scale, scale);
    assert.deepEqual(Array.from(await b.scale.data()), [5, 5, 5]);
    const c = new Affine(4);
    assert.throws(
      () => b.loadStateDict(c.stateDict()),
      /loadStateDict: "scale" has shape \[1, 4, 1, 1\] in the state but \[1, 3, 1, 1\] in the module/,
    );
    b.loadStateDict(
      new Map([["scale", {
        dtype: "f32",
        shape: [1, 3, 1, 1],
        data: new Float32Array([1, 2, 3]),
      }]]),
      { strict: false },
    );
    assert.deepEqual(Array.from(await b.scale.data()), [1, 2, 3]);
    assert.throws(
      () => b.loadStateDict(new Map()),
      /loadStateDict: "scale" is missing from the state/,
    );
  });
  await t.step("registration errors, tidy and dispose", () => {
    class Bad extends Module {
      constructor() {
        super();
        this.registerParameter("w", tensor([1], [1], { backend: CPU }));
        this.registerBuffer("w", tensor([1], [1], { backend: CPU }));
      }
      forward(x: Tensor) {
        return x;
      }
    }
    assert.throws(() => new Bad(), /Module: "w" is already registered/);
    const before = CPU.liveBuffers();
    const m = tidy(() => new Affine(2));
    assert.ok(m.parameters().every((p) => !p.disposed), "tidy must not release registered tensors");
    m.dispose();
    assert.equal(CPU.liveBuffers(), before);
  });
});

Deno.test("normalisation layers", async (t) => {
  await t.step("GroupNorm equals the op", async () => {
    const x = tensor(randomArray(2 * 4 * 5, 2, -1, 1), [2, 4, 5], { backend: CPU });
    const gn = new GroupNorm(2, 4, { backend: CPU });
    constant(gn.weight!, 3);
    const expected = await mul(groupNorm(x, 2), 3).data();
    assertClose(await gn.forward(x).data(), expected, 1e-6);
    assert.throws(() => new GroupNorm(3, 4), /GroupNorm: 3 groups do not divide 4 channels/);
    assert.equal(new GroupNorm(2, 4, { affine: false, backend: CPU }).parameters().length, 0);
  });
  await t.step("BatchNorm2d training, eval and frozen", async () => {
    const x = tensor(randomArray(3 * 2 * 4, 3, 1, 3), [3, 2, 2, 2], { backend: CPU });
    const bn = new BatchNorm2d(2, { backend: CPU, momentum: 0.5 });
    bn.forward(x);
    const rm = await bn.runningMean.data();
    assert.ok(rm[0] > 0.5 && rm[0] < 1.5, `running mean ${rm[0]} moved halfway to the batch mean`);
    bn.eval();
    const before = Array.from(await bn.runningMean.data());
    bn.forward(x);
    assert.deepEqual(Array.from(await bn.runningMean.data()), before);
    const frozen = new BatchNorm2d(2, { backend: CPU, frozen: true });
    assert.equal(frozen.parameters().length, 0);
    assert.deepEqual(frozen.namedBuffers().map(([n]) => n), [
      "weight",
      "bias",
      "running_mean",
      "running_var",
    ]);
    frozen.train();
    const y = frozen.forward(x);
    assertClose(await y.data(), Array.from(await x.data(), (v) => v / Math.sqrt(1 + 1e-5)), 1e-6);
    assert.deepEqual(Array.from(await frozen.runningMean.data()), [0, 0]);
  });
});

Deno.test("Linear and Conv2d", async (t) => {
  await t.step("Linear: PyTorch-style init, forward against a JS reference", async () => {
    const fc = new Linear(5, 3, { rng: new Rng(1), backend: CPU });
    assert.deepEqual(fc.namedParameters().map(([n, p]) => [n, p.shape]), [["weight", [3, 5]], [
      "bias",
      [3],
    ]]);
    const w = await fc.weight.data(), b = await fc.bias!.data();
    const bound = 1 / Math.sqrt(5);
    assert.ok([...w, ...b].every((v) => Math.abs(v) <= bound));
    const x = randomArray(2 * 4 * 5, 7, -1, 1);
    const y = fc.forward(tensor(x, [2, 4, 5], { backend: CPU }));
    assert.deepEqual(y.shape, [2, 4, 3]);
    const expected = new Float64Array(24);
    for (let r = 0; r < 8; r++) {
      for (let o = 0; o < 3; o++) {
        let s = b[o];
        for (let i = 0; i < 5; i++) s += x[r * 5 + i] * w[o * 5 + i];
        expected[r * 3 + o] = s;
      }
    }
    assertClose(await y.data(), expected, 1e-5);
    const same = new Linear(5, 3, { rng: new Rng(1), backend: CPU });
    assert.deepEqual(Array.from(await same.weight.data()), Array.from(w));
    assert.equal(new Linear(5, 3, { rng: new Rng(1), bias: false, backend: CPU }).bias, undefined);
  });
  await t.step("Conv2d: forward against a JS reference, groups", async () => {
    const conv = new Conv2d(4, 6, [3, 2], {
      rng: new Rng(2),
      padding: [1, 0],
      stride: [2, 1],
      groups: 2,
      backend: CPU,
    });
    assert.deepEqual(conv.weight.shape, [6, 2, 3, 2]);
    const [n, c, h, wd] = [2, 4, 5, 4];
    const x = randomArray(n * c * h * wd, 8, -1, 1);
    const y = conv.forward(tensor(x, [n, c, h, wd], { backend: CPU }));
    const ho = Math.floor((h + 2 - 3) / 2) + 1, wo = wd - 1;
    assert.deepEqual(y.shape, [n, 6, ho, wo]);
    const w = await conv.weight.data(), b = await conv.bias!.data();
    const expected = new Float64Array(n * 6 * ho * wo);
    for (let s = 0; s < n; s++) {
      for (let o = 0; o < 6; o++) {
        const g = Math.floor(o / 3);
        for (let yy = 0; yy < ho; yy++) {
          for (let xx = 0; xx < wo; xx++) {
            let acc = b[o];
            for (let ci = 0; ci < 2; ci++) {
              for (let ky = 0; ky < 3; ky++) {
                for (let kx = 0; kx < 2; kx++) {
                  const iy = yy * 2 - 1 + ky, ix = xx + kx;
                  if (iy < 0 || iy >= h) continue;
                  acc += x[((s * c + g * 2 + ci) * h + iy) * wd + ix] *
                    w[((o * 2 + ci) * 3 + ky) * 2 + kx];
                }
              }
            }
            expected[((s * 6 + o) * ho + yy) * wo + xx] = acc;
          }
        }
      }
    }
    assertClose(await y.data(), expected, 1e-5);
    assert.throws(
      () => new Conv2d(3, 4, 3, { rng: new Rng(0), groups: 2 }),
      /Conv2d: 2 groups do not divide 3 input and 4 output channels/,
    );
  });
  await t.step("pooling layers", async () => {
    const x = tensor([1, 5, 2, 0, 3, 4, 8, 6, 7], [1, 1, 3, 3], { backend: CPU });
    assert.deepEqual(Array.from(await new MaxPool2d(2, { stride: 1 }).forward(x).data()), [
      5,
      5,
      8,
      7,
    ]);
    assert.deepEqual(Array.from(await new AvgPool2d(3).forward(x).data()), [4]);
  });
});
