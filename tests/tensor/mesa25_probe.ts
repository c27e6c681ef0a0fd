/**
 * Run by `mesa25_test.ts` in a child process on Mesa 25's lavapipe: makes 3,000 distinct bind
 * groups, 100 per submit, waiting for the GPU after every 10 submits (as a training step waits
 * for its loss), once in generations of 1,000 and once plainly, and prints (JSON) the lavapipe
 * library this process loaded and its memory-mapping counts.
 *
 * Run: `VK_ICD_FILENAMES=... LD_LIBRARY_PATH=... deno run -A tests/tensor/mesa25_probe.ts`
 *
 * @module
 */

import {
  type BindGroups,
  bindGroupsInGenerations,
  plainBindGroups,
} from "../../tensor/bind_groups.ts";

const GROUPS = 3000;
const PER_SUBMIT = 100;
const SUBMITS_PER_WAIT = 10;

function mapLines(): string[] {
  return Deno.readTextFileSync("/proc/self/maps").split("\n").filter((line) => line.length > 0);
}

const adapter = await navigator.gpu.requestAdapter();
if (!adapter) throw new Error("No WebGPU adapter was found");
const device = await adapter.requestDevice();
const buffer = device.createBuffer({ size: GROUPS * 256, usage: GPUBufferUsage.STORAGE });

/** Makes the groups; returns the mapping counts before, at the peak and after the GPU is done. */
async function mappingsWhileMaking(groups: BindGroups) {
  const layout = device.createBindGroupLayout({
    entries: [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
      ...groups.trailingEntries(1),
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
  await device.queue.onSubmittedWorkDone();
  const before = mapLines().length;
  let peak = before;
  for (let start = 0; start < GROUPS; start += PER_SUBMIT) {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    for (let k = start; k < start + PER_SUBMIT; k++) {
      pass.setBindGroup(0, groups.group(layout, [{ buffer, offset: 256 * k, size: 256 }]));
      pass.dispatchWorkgroups(1);
    }
    pass.end();
    device.queue.submit([encoder.finish()]);
    groups.submitted();
    peak = Math.max(peak, mapLines().length);
    if ((start / PER_SUBMIT + 1) % SUBMITS_PER_WAIT === 0) await device.queue.onSubmittedWorkDone();
  }
  await device.queue.onSubmittedWorkDone();
  return { before, peak, after: mapLines().length, created: groups.created };
}

const generations = await mappingsWhileMaking(bindGroupsInGenerations(device, 1000));
const plain = await mappingsWhileMaking(plainBindGroups(device));
const lavapipe = mapLines().map((line) => line.split(/\s+/).at(-1)!)
  .find((path) => path.endsWith("libvulkan_lvp.so")) ?? null;
console.log(JSON.stringify({ lavapipe, generations, plain }));
