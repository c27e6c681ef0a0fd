import assert from "node:assert/strict";
import { initBackend, isSoftwareAdapter } from "../../tensor/device.ts";
import { entryPoint, type Kernel } from "../../tensor/kernel.ts";
import { add } from "../../tensor/ops/elementwise.ts";
import { launch } from "../../tensor/ops/launch.ts";
import { poolBucket } from "../../tensor/backend.ts";
import { foldGrid } from "../../tensor/webgpu_backend.ts";
import { tensor } from "../../tensor/tensor.ts";
import { CPU, GPU, gpuBackend, NATIVE } from "./helpers.ts";

Deno.test("initBackend honours its argument and rejects unknown names", async () => {
  assert.equal((await initBackend("cpu")).name, "cpu");
  await assert.rejects(() => initBackend("tpu" as "cpu"), /Unknown backend "tpu"/);
});

/** Runs `code` in a fresh Deno with `flags` and `env`; returns its exit code, stdout and stderr. */
async function runFresh(code: string, flags: string[], env: Record<string, string> = {}) {
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(file, code);
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", ...flags, file],
      env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", ...env },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
    return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
  } finally {
    await Deno.remove(file);
  }
}

const DEVICE_URL = new URL("../../tensor/device.ts", import.meta.url).href;
const CHOOSE = `import { initBackend } from "${DEVICE_URL}";
console.log((await initBackend()).name);`;

Deno.test("BRL_BACKEND forces a backend in a fresh process", async (t) => {
  await t.step("cpu", async () => {
    const run = await runFresh(CHOOSE, ["--allow-env"], { BRL_BACKEND: "cpu" });
    assert.equal(run.stdout, "cpu");
    assert.match(run.stderr, /brl: backend cpu: CPU \(TypeScript\) \(BRL_BACKEND\)/);
  });
  await t.step({
    name: "native",
    ignore: !NATIVE,
    fn: async () => {
      const run = await runFresh(CHOOSE, ["--allow-env", "--allow-ffi"], { BRL_BACKEND: "native" });
      assert.equal(run.stdout, "native");
      assert.match(run.stderr, /brl: backend native: native \(OpenBLAS [\d.]+, \d+ threads?\)/);
    },
  });
  await t.step("native with BRL_BLAS naming a missing file is a clear error", async () => {
    const missing = "/nonexistent/libopenblas.so.0";
    const run = await runFresh(CHOOSE, ["--allow-env", "--allow-ffi"], {
      BRL_BACKEND: "native",
      BRL_BLAS: missing,
    });
    assert.notEqual(run.code, 0);
    assert.match(
      run.stderr,
      /NativeUnavailableError: BRL_BLAS=\/nonexistent\/libopenblas.so.0 did not load/,
    );
    assert.match(run.stderr, /apt-get install libopenblas0-pthread/);
  });
  await t.step("native without FFI permission says to pass --allow-ffi", async () => {
    const run = await runFresh(CHOOSE, ["--allow-env"], { BRL_BACKEND: "native" });
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /FFI is not permitted \(run with --allow-ffi/);
  });
});

Deno.test("the automatic choice falls back, with one line saying why", async (t) => {
  await t.step("no FFI permission: never native, never a crash", async () => {
    const run = await runFresh(CHOOSE, ["--allow-env"]);
    assert.equal(run.code, 0, run.stderr);
    assert.notEqual(run.stdout, "native");
    const lines = run.stderr.split("\n").filter((l) => l.startsWith("brl: "));
    assert.equal(lines.length, 1, run.stderr);
    assert.match(lines[0], /FFI is not permitted|hardware WebGPU adapter/);
  });
  await t.step("no WebGPU and no OpenBLAS: the CPU", async () => {
    const code = `Object.defineProperty(navigator, "gpu", { value: undefined });\n${CHOOSE}`;
    const run = await runFresh(code, ["--allow-env", "--allow-ffi"], {
      BRL_BLAS: "/nonexistent.so",
    });
    assert.equal(run.stdout, "cpu");
    assert.match(
      run.stderr,
      /brl: backend cpu: .*no WebGPU adapter.*native unavailable: BRL_BLAS=/,
    );
  });
  await t.step({
    name: "a software adapter and OpenBLAS: native",
    ignore: !NATIVE || !GPU,
    fn: async () => {
      const run = await runFresh(CHOOSE, ["--allow-env", "--allow-ffi"]);
      const gpu = await gpuBackend();
      assert.equal(
        run.stdout,
        isSoftwareAdapter({ description: gpu.description }) ? "native" : "webgpu",
      );
    },
  });
});

Deno.test("isSoftwareAdapter() knows the software rasterisers", () => {
  assert.ok(isSoftwareAdapter({ description: "llvmpipe (LLVM 15.0.6, 256 bits)" }));
  assert.ok(isSoftwareAdapter({ description: "SwiftShader Device (Subzero)" }));
  assert.ok(isSoftwareAdapter({ description: "NVIDIA H100", isFallbackAdapter: true }));
  assert.ok(!isSoftwareAdapter({ description: "NVIDIA H100 80GB HBM3" }));
  assert.ok(!isSoftwareAdapter({ description: "Apple M2" }));
});

Deno.test("pool buckets and grid folding", () => {
  assert.equal(poolBucket(1), 256);
  assert.equal(poolBucket(1000), 1024);
  assert.equal(poolBucket(1025), 1280);
  assert.deepEqual(foldGrid(10), [10, 1]);
  const [x, y] = foldGrid(200_000);
  assert.ok(x <= 65535 && x * y >= 200_000);
});

Deno.test("a disposed tensor cannot be used", () => {
  const t = tensor([1, 2], undefined, { backend: CPU });
  t.dispose();
  assert.throws(() => add(t, 1), /was disposed/);
});

Deno.test("tensor() checks its data against the shape", () => {
  assert.throws(
    () => tensor([1, 2, 3], [2, 2], { backend: CPU }),
    /3 values do not fill shape \[2, 2\]/,
  );
  assert.throws(() => tensor([[1, 2], [3]], undefined, { backend: CPU }), /ragged/);
});

Deno.test("WebGPU: a kernel that does not compile fails on readback with its label", {
  ignore: !GPU,
}, async () => {
  const broken: Kernel = {
    label: "test.broken",
    inputs: { x: "f32" },
    outputs: { out: "f32" },
    params: { n: "u32" },
    workgroupSize: 64,
    code: `${entryPoint(64)}\n  out[i] = x[i] + undefined_name;\n}`,
    cpu: () => {},
  };
  // A new device-level failure poisons the device, so check it in a fresh process.
  const code = `
import { webgpu } from "${new URL("../../tensor/device.ts", import.meta.url).href}";
import { tensor } from "${new URL("../../tensor/tensor.ts", import.meta.url).href}";
import { launchInto } from "${new URL("../../tensor/ops/launch.ts", import.meta.url).href}";
const gpu = await webgpu();
const kernel = ${JSON.stringify(broken)};
kernel.cpu = () => {};
try {
  await launchInto(kernel, [tensor([1, 2, 3], undefined, { backend: gpu })], [3], "f32", { n: 3 }, 1).data();
  console.log("no error");
} catch (e) { console.log(e.name + ": " + e.message.split("\\n")[0]); }`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
    stderr: "null",
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.match(text, /ShaderCompileError: Kernel "test.broken" failed to compile/);
});

Deno.test("WebGPU: reading an empty tensor and a large one", { ignore: !GPU }, async () => {
  const gpu = await gpuBackend();
  assert.equal((await tensor([], [0], { backend: gpu }).data()).length, 0);
  const big = new Float32Array(5_000_000).map((_, i) => i);
  const back = await tensor(big, undefined, { backend: gpu }).data();
  assert.equal(back[4_999_999], 4_999_999);
});

Deno.test("profiling counts every launch per kernel label", async (t) => {
  const backends = [CPU];
  if (GPU) backends.push(await gpuBackend());
  for (const backend of backends) {
    await t.step(backend.name, async () => {
      const a = tensor(new Float32Array(1000).fill(1), [1000], { backend });
      backend.startProfile();
      const outs = [add(a, a), add(a, a), add(a, 1)];
      const times = await backend.stopProfile();
      const byLabel = new Map(times.map((e) => [e.label, e]));
      const launches = times.reduce((n, e) => n + e.calls, 0);
      assert.equal(launches, 3, JSON.stringify(times));
      for (const e of times) assert.ok(e.ms >= 0 && Number.isFinite(e.ms));
      assert.ok([...byLabel.values()].some((e) => e.calls === 2 || e.calls === 3));
      assert.deepEqual(await backend.stopProfile(), []);
      // Launches after the profile are not timed, and results are unaffected.
      assert.equal((await outs[2].data())[0], 2);
      for (const o of [a, ...outs]) o.dispose();
    });
  }
});

Deno.test("WebGPU: an indirect launch takes its workgroup count from the device", {
  ignore: !GPU,
}, async () => {
  const backend = await gpuBackend();
  const writeArgs: Kernel = {
    label: "test.write_args",
    inputs: {},
    outputs: { args: "u32" },
    params: { groups: "u32" },
    workgroupSize: 1,
    code: `${entryPoint(1)}
  if (i == 0u) { args[0] = p.groups; args[1] = 1u; args[2] = 1u; }
}`,
    cpu(_ins, outs, p) {
      outs.args.set([p.groups as number, 1, 1]);
    },
  };
  const mark: Kernel = {
    label: "test.mark",
    inputs: {},
    outputs: { out: "u32" },
    params: { n: "u32" },
    workgroupSize: 64,
    code: `${entryPoint(64)}
  if (i < p.n) { out[i] = 1u; }
}`,
    cpu(_ins, outs) {
      outs.out.fill(1);
    },
  };
  const args = tensor(new Uint32Array(3), [3], { backend });
  const out = tensor(new Uint32Array(640), [640], { backend });
  launch(writeArgs, [], [args], { groups: 3 }, 1);
  launch(mark, [], [out], { n: 640 }, 10, { args, index: 0 });
  const marked = await out.data();
  assert.equal(Array.from(marked).reduce((s, v) => s + v, 0), 3 * 64);
  assert.equal(marked[191], 1);
  assert.equal(marked[192], 0);
  args.dispose();
  out.dispose();
});
