import assert from "node:assert/strict";
import { backward } from "../../tensor/autograd.ts";
import { type Backend, storageView } from "../../tensor/backend.ts";
import { Linear } from "../../tensor/nn/linear.ts";
import { map, mul } from "../../tensor/ops/elementwise.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { Arena, arenaGroups } from "../../tensor/optim/arena.ts";
import { SGD } from "../../tensor/optim/sgd.ts";
import { AdamW } from "../../tensor/optim/adamw.ts";
import type { Optimizer } from "../../tensor/optim/optimizer.ts";
import type { HostTensor } from "../../tensor/safetensors.ts";
import { copyInto, Tensor, tensor } from "../../tensor/tensor.ts";
import { Rng } from "../../tensor/rng.ts";
import {
  assertClose,
  CPU,
  GPU,
  gpuBackend,
  NATIVE,
  nativeBackend,
  randomArray,
} from "./helpers.ts";
import { runScenario, SCENARIO_CASES } from "./optim_scenario.ts";

/** What the per-parameter kernels computed, on the CPU (also the native backend's) and WebGPU. */
const REFERENCE = {
  host: await readReference("reference.json"),
  webgpu: await readReference("reference_webgpu.json"),
};

async function readReference(file: string): Promise<Record<string, Record<string, number[]>>> {
  const url = new URL(`../fixtures/optim_arena/${file}`, import.meta.url);
  return JSON.parse(await Deno.readTextFile(url));
}

async function backends(): Promise<Backend[]> {
  return [CPU, ...(NATIVE ? [nativeBackend()] : []), ...(GPU ? [await gpuBackend()] : [])];
}

Deno.test("arena optimizers match the per-parameter kernels they replace", async (t) => {
  for (const backend of await backends()) {
    for (const [name, make] of SCENARIO_CASES) {
      await t.step(`${name} on ${backend.name}`, async () => {
        const got = await runScenario(backend, make);
        const want = REFERENCE[backend.name === "webgpu" ? "webgpu" : "host"][name];
        assert.deepEqual([...got.keys()].sort(), Object.keys(want).sort());
        for (const [key, values] of got) {
          assertClose(values, want[key], 1e-7, 1e-6, `${name} ${key}`);
        }
      });
    }
  }
});

/** Launches per step by label, from the backend's profile of `run`. */
async function launchesOf(backend: Backend, run: () => void): Promise<Map<string, number>> {
  backend.startProfile();
  run();
  const times = await backend.stopProfile();
  return new Map(times.map((k) => [k.label, k.calls]));
}

Deno.test("one update launch per step, three with clipping", async () => {
  const params = Array.from(
    { length: 30 },
    (_, k) => tensor(randomArray(5 + k, k), [5 + k], { backend: CPU, requiresGrad: true }),
  );
  for (const clip of [undefined, 1]) {
    const opt = new SGD(params, { lr: 0.1, momentum: 0.9, maxGradNorm: clip });
    const launches = await launchesOf(CPU, () => {
      for (let s = 0; s < 2; s++) {
        params.forEach((p, k) => p.grad = tensor(randomArray(p.size, 50 + k), p.shape));
        opt.step();
        opt.zeroGrad();
      }
    });
    const expected = clip
      ? [["optim.norm", 2], ["optim.sgd_momentum", 2], ["optim.sumsq_live", 2]]
      : [["optim.sgd_momentum", 2]];
    assert.deepEqual([...launches].sort(), expected);
    opt.dispose();
  }
  for (const p of params) p.dispose();
});

Deno.test("storage views: kernels, copies and reads at the view's offset", async (t) => {
  for (const backend of await backends()) {
    await t.step(backend.name, async () => {
      const live = backend.liveBuffers();
      const whole = tensor(randomArray(192, 1), [192], { backend });
      const view = new Tensor(storageView(whole.storage, 256, 12), [3], "f32", backend);
      assert.deepEqual(Array.from(await view.data()), Array.from(await whole.data()).slice(64, 67));
      const doubled = map({ label: "double", wgsl: "2.0 * a", cpu: (a) => 2 * a }, [view]);
      copyInto(doubled, view);
      const after = Array.from(await whole.data());
      const before = randomArray(192, 1);
      assertClose(after.slice(64, 67), Array.from(before.slice(64, 67), (v) => 2 * v), 0, 0);
      assert.deepEqual(after.slice(0, 64), Array.from(before.slice(0, 64)));
      assert.deepEqual(after.slice(67), Array.from(before.slice(67)));
      doubled.dispose();
      // The parent lives while its view does, and goes back to the pool after both.
      whole.dispose();
      assert.equal(backend.liveBuffers(), live + 1);
      assertClose(await view.data(), after.slice(64, 67), 0, 0);
      view.dispose();
      assert.equal(backend.liveBuffers(), live);
      assert.throws(
        () => storageView(backend.alloc("f32", 128), 100, 4),
        /Cannot view storage at byte 100: not a multiple of 256/,
      );
    });
  }
});

Deno.test("Arena lays slots out on 256-element blocks; arenaGroups splits by kind and size", () => {
  const f32 = (n: number) => tensor(new Float32Array(n), [n], { backend: CPU });
  const f64 = (n: number) => tensor(new Float64Array(n), [n], { backend: CPU });
  const ts = [f32(300), f64(1), f32(1), f32(2000), f32(1)];
  assert.deepEqual(arenaGroups(ts), [[0, 2, 3, 4], [1]]);
  // 2 KiB + 1 KiB fit 4 KiB; the 8 KiB tensor gets an arena alone.
  assert.deepEqual(arenaGroups(ts, 4096), [[0, 2], [1], [3], [4]]);
  for (const t of ts) t.dispose();
  const arena = new Arena(CPU, "f32", [3, 0, 520, 256]);
  assert.deepEqual(arena.offsets, [0, 256, 256, 1024]);
  assert.equal(arena.length, 1280);
  assert.deepEqual(
    Array.from(arena.blockSegments((k) => k !== 3)),
    [0, 2, 2, 2, 0xffffffff],
  );
  const last = arena.slot(3, [256]);
  assert.equal(last.storage.byteOffset, 4096);
  last.dispose();
  arena.dispose();
});

Deno.test("parameters of two dtypes: two arenas, one clipping norm over both", async () => {
  const run = async (dtypes: ["f32" | "f64", "f32" | "f64"]) => {
    const params = dtypes.map((dtype, k) =>
      tensor(randomArray(300, 60 + k), [300], { backend: CPU, dtype, requiresGrad: true })
    );
    const opt = new SGD(params, { lr: 0.1, momentum: 0.9, weightDecay: 0.01, maxGradNorm: 2 });
    const launches = await launchesOf(CPU, () => {
      for (let s = 0; s < 3; s++) {
        params.forEach((p, k) => {
          p.grad = tensor(randomArray(300, 70 + 10 * s + k), [300], {
            backend: CPU,
            dtype: p.dtype,
          });
        });
        opt.step();
        opt.zeroGrad();
      }
    });
    const out = [...await params[0].data(), ...await params[1].data()];
    opt.dispose();
    return { out, launches };
  };
  const mixed = await run(["f32", "f64"]), plain = await run(["f64", "f64"]);
  assert.equal(mixed.launches.get("optim.sgd_momentum"), 6);
  assert.equal(mixed.launches.get("optim.sumsq_live"), 6);
  assert.equal(mixed.launches.get("optim.norm"), 3);
  assert.equal(plain.launches.get("optim.sgd_momentum"), 3);
  assertClose(mixed.out, plain.out, 1e-6, 1e-6);
});

/** A linear layer, its loss on fixed data, and an optimizer over it. */
function setup(backend: Backend, make: (m: Linear) => Optimizer) {
  const model = new Linear(6, 3, { backend, rng: new Rng(3) });
  const x = tensor(randomArray(12, 4), [2, 6], { backend });
  const loss = () => {
    const y = model.forward(x);
    return sum(mul(y, y));
  };
  return { model, x, loss, opt: make(model) };
}

Deno.test("backward writes gradients into the arena; they accumulate there", async () => {
  const { model, loss, opt } = setup(CPU, (m) => new SGD(m.namedParameters(), { lr: 0.1 }));
  backward(loss()); // first step: the gradients are copied into the arena
  opt.step();
  opt.zeroGrad();
  backward(loss());
  const w = model.weight;
  assert.ok(w.gradSlot && w.grad!.storage === w.gradSlot, "the gradient views its slot");
  const once = Array.from(await w.grad!.data());
  backward(loss());
  assert.ok(w.grad!.storage === w.gradSlot);
  assertClose(await w.grad!.data(), once.map((v) => 2 * v), 1e-6, 1e-6);
  opt.dispose();
  assert.equal(w.gradSlot, null);
  model.dispose();
});

Deno.test("a parameter whose memory was swapped away is copied back into its slot", async () => {
  const w = tensor([1, 2, 3], [3], { backend: CPU, requiresGrad: true });
  const opt = new SGD([w], { lr: 0.5 });
  w.grad = tensor([1, 1, 1], [3], { backend: CPU });
  opt.step();
  const slot = w.storage;
  assert.ok(slot.parent, "the parameter views the arena");
  const fresh = tensor([10, 20, 30], [3], { backend: CPU });
  w.swapStorage(fresh); // as initialisers and old loaders do
  fresh.dispose();
  assert.notEqual(w.storage, slot);
  opt.step();
  assert.equal(w.storage, slot);
  assert.deepEqual(Array.from(await w.data()), [9.5, 19.5, 29.5]);
  assert.throws(
    () => {
      w.grad = tensor([1, 1], [2], { backend: CPU });
      opt.step();
    },
    /Optimizer: gradient \[2\] f32 of "0" does not match \[3\] f32/,
  );
  assert.throws(() => new SGD([w, w], { lr: 1 }), /Optimizer: a parameter is given twice/);
  opt.zeroGrad();
  opt.dispose();
  w.dispose();
});

async function hostState(opt: Optimizer): Promise<Map<string, HostTensor>> {
  const out = new Map<string, HostTensor>();
  for (const [name, t] of opt.stateDict()) {
    out.set(name, { dtype: "f32", shape: [...t.shape], data: (await t.data()) as Float32Array });
  }
  return out;
}

Deno.test("resume from saved model and optimizer state is bit-exact", async (t) => {
  for (const backend of await backends()) {
    for (
      const [name, make] of [
        [
          "SGD",
          (m: Linear) => new SGD(m.namedParameters(), { lr: 0.1, momentum: 0.9, maxGradNorm: 1 }),
        ],
        ["AdamW", (m: Linear) => new AdamW(m.namedParameters(), { lr: 0.01, maxGradNorm: 1 })],
      ] as const
    ) {
      await t.step(`${name} on ${backend.name}`, async () => {
        const a = setup(backend, make), b = setup(backend, make);
        const train = (s: ReturnType<typeof setup>) => {
          s.opt.zeroGrad();
          backward(s.loss());
          s.opt.step();
        };
        train(a);
        train(a);
        const modelState = new Map<string, HostTensor>();
        for (const [n, p] of a.model.stateDict()) {
          modelState.set(n, {
            dtype: "f32",
            shape: [...p.shape],
            data: (await p.data()) as Float32Array,
          });
        }
        b.opt.step(); // makes b's arenas first: loading must copy into their slots
        b.model.loadStateDict(modelState);
        b.opt.loadStateDict(await hostState(a.opt), a.opt.stepCount);
        assert.ok(b.model.weight.storage.parent, "the parameter still views the arena");
        train(a);
        train(b);
        train(a);
        train(b);
        for (const [n, p] of a.model.stateDict()) {
          assert.deepEqual(await b.model.stateDict().get(n)!.data(), await p.data(), n);
        }
        const [sa, sb] = [await hostState(a.opt), await hostState(b.opt)];
        for (const [n, v] of sa) assert.deepEqual(sb.get(n)!.data, v.data, n);
        for (const s of [a, b]) {
          s.opt.zeroGrad();
          s.opt.dispose();
          s.model.dispose();
          s.x.dispose();
        }
      });
    }
  }
});
