import assert from "node:assert/strict";
import type { Backend } from "../../tensor/backend.ts";
import { bindGroupsInGenerations, plainBindGroups } from "../../tensor/bind_groups.ts";
import { requestGpuDevice } from "../../tensor/device.ts";
import { adapterProfile } from "../../tensor/device_profile.ts";
import { matmul } from "../../tensor/ops/matmul.ts";
import { conv2d } from "../../tensor/ops/conv.ts";
import { add, mul } from "../../tensor/ops/elementwise.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { tensor } from "../../tensor/tensor.ts";
import { createWebGpuBackend } from "../../tensor/webgpu_backend.ts";
import { compareBackends, GPU, randomArray } from "./helpers.ts";

Deno.test("adapterProfile(): llvmpipe and lavapipe release bind groups in generations, others not", () => {
  for (
    const llvmpipe of [
      "llvmpipe (LLVM 15.0.6, 256 bits)",
      "llvmpipe (LLVM 19.1.7, 256 bits)",
      "Lavapipe",
    ]
  ) assert.ok(adapterProfile({ description: llvmpipe }).bindGroupsPerGeneration > 0, llvmpipe);
  for (const hardware of ["NVIDIA H100 80GB HBM3", "AMD Radeon RX 7900 XTX", "Apple M2", ""]) {
    assert.equal(adapterProfile({ description: hardware }).bindGroupsPerGeneration, 0, hardware);
  }
});

Deno.test("bindGroupsInGenerations() rejects a generation size that is not a positive integer", () => {
  for (const bad of [0, -1, 1.5, NaN]) {
    assert.throws(
      () => bindGroupsInGenerations({} as GPUDevice, bad),
      new RangeError(`Bind groups per generation must be a positive integer, got ${bad}`),
    );
  }
});

/** A one-binding storage kernel, its layout ending with `groups`' trailing entries. */
function counterKernel(device: GPUDevice, trailing: GPUBindGroupLayoutEntry[]) {
  const layout = device.createBindGroupLayout({
    entries: [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
      ...trailing,
    ],
  });
  const pipeline = device.createComputePipeline({
    layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
    compute: {
      module: device.createShaderModule({
        code: `@group(0) @binding(0) var<storage, read_write> o: array<u32>;
@compute @workgroup_size(1) fn main() { o[0] += 1u; }`,
      }),
      entryPoint: "main",
    },
  });
  return { layout, pipeline };
}

/** Dispatches `pipeline` with `group` in its own submit; the validation error's message, if any. */
async function dispatch(
  device: GPUDevice,
  pipeline: GPUComputePipeline,
  group: GPUBindGroup,
  submitted: () => void,
): Promise<string | null> {
  device.pushErrorScope("validation");
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(1);
  pass.end();
  device.queue.submit([encoder.finish()]);
  submitted();
  return (await device.popErrorScope())?.message ?? null;
}

Deno.test("bind groups in generations", { ignore: !GPU }, async (t) => {
  const { device } = await requestGpuDevice();
  const buffer = device.createBuffer({ size: 4096, usage: GPUBufferUsage.STORAGE });
  const range = (k: number) => [{ buffer, offset: 256 * k, size: 256 }];

  await t.step(
    "a group is reused for the same ranges until its generation is released",
    async () => {
      const groups = bindGroupsInGenerations(device, 3);
      const { layout, pipeline } = counterKernel(device, groups.trailingEntries(1));
      const submit = (group: GPUBindGroup) => dispatch(device, pipeline, group, groups.submitted);
      // One group per submit, so that the generation spans three tags.
      const first = [groups.group(layout, range(0))];
      assert.equal(await submit(first[0]), null);
      first.push(groups.group(layout, range(1)));
      assert.equal(groups.group(layout, range(0)), first[0]);
      assert.equal(await submit(first[1]), null);
      assert.equal(await submit(first[0]), null);
      assert.equal(groups.created, 2);
      first.push(groups.group(layout, range(2)));
      assert.equal(await submit(first[2]), null);
      // Three groups made: the generation was released at the last submit.
      await device.queue.onSubmittedWorkDone();
      for (const [k, group] of first.entries()) {
        assert.match(
          (await dispatch(device, pipeline, group, () => {})) ?? "no error",
          /bind_groups\.tag.*destroyed/,
          `group ${k} of the released generation`,
        );
      }
      const again = groups.group(layout, range(1));
      assert.notEqual(again, first[1]);
      assert.equal(groups.created, 4);
      assert.equal(await dispatch(device, pipeline, again, () => groups.submitted()), null);
    },
  );

  await t.step("a group is found by what it binds, not by the objects that describe it", () => {
    const groups = bindGroupsInGenerations(device, 100);
    const { layout } = counterKernel(device, groups.trailingEntries(1));
    const other = device.createBuffer({ size: 4096, usage: GPUBufferUsage.STORAGE });
    const first = groups.group(layout, [{ buffer, offset: 256, size: 512 }]);
    assert.equal(groups.group(layout, [{ buffer, offset: 256, size: 512 }]), first);
    const distinct = [
      groups.group(layout, [{ buffer, offset: 0, size: 512 }]),
      groups.group(layout, [{ buffer, offset: 256, size: 256 }]),
      groups.group(layout, [{ buffer: other, offset: 256, size: 512 }]),
    ];
    assert.equal(new Set([first, ...distinct]).size, 4);
    assert.equal(groups.created, 4);
    other.destroy();
  });

  await t.step("plain groups are new every time and have no trailing entries", () => {
    const groups = plainBindGroups(device);
    assert.deepEqual(groups.trailingEntries(1), []);
    const { layout } = counterKernel(device, []);
    assert.notEqual(groups.group(layout, range(0)), groups.group(layout, range(0)));
    assert.equal(groups.created, 2);
  });
});

/** Ops that bind storage buffers (elementwise, reduce, matmul) and uniform windows (direct conv). */
function mixedOps(backend: Backend) {
  const x = tensor(randomArray(2 * 8 * 12 * 12, 1), [2, 8, 12, 12], { backend });
  const w = tensor(randomArray(8 * 8 * 3 * 3, 2), [8, 8, 3, 3], { backend });
  const a = tensor(randomArray(40 * 24, 3), [40, 24], { backend });
  const b = tensor(randomArray(24 * 16, 4), [24, 16], { backend });
  const y = conv2d(x, w, { padding: 1 });
  const z = matmul(add(mul(a, 2), 1), b);
  return [y, z, sum(mul(y, y)), sum(z)];
}

Deno.test(
  "the WebGPU backend in generations of 3 bind groups agrees with the CPU",
  { ignore: !GPU },
  async () => {
    const { device, description } = await requestGpuDevice();
    // The direct convolutions on: their uniform-window bind groups in generations too.
    const profile = adapterProfile({ description, limits: device.limits });
    const backend = createWebGpuBackend(device, description, {
      ...profile,
      bindGroupsPerGeneration: 3,
      convDirect: "on",
    });
    // Twice: the second run reuses pooled buffers, and groups of released generations.
    await compareBackends(mixedOps, 1e-4, 1e-4, backend);
    await compareBackends(mixedOps, 1e-4, 1e-4, backend);
    await backend.sync();
  },
);
