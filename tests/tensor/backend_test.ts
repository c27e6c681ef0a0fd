import assert from "node:assert/strict";
import { initBackend } from "../../tensor/device.ts";
import { entryPoint, type Kernel } from "../../tensor/kernel.ts";
import { add } from "../../tensor/ops/elementwise.ts";
import { foldGrid, poolBucket } from "../../tensor/webgpu_backend.ts";
import { tensor } from "../../tensor/tensor.ts";
import { CPU, GPU, gpuBackend } from "./helpers.ts";

Deno.test("initBackend honours its argument and rejects unknown names", async () => {
  assert.equal((await initBackend("cpu")).name, "cpu");
  await assert.rejects(() => initBackend("tpu" as "cpu"), /Unknown backend "tpu"/);
});

Deno.test("BRL_BACKEND=cpu forces the CPU backend in a fresh process", async () => {
  const code = `import { initBackend } from "${
    new URL("../../tensor/device.ts", import.meta.url).href
  }";
console.log((await initBackend()).name);`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    env: { BRL_BACKEND: "cpu" },
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "cpu");
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
