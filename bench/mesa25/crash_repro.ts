/**
 * The Mesa 25 lavapipe crash without brl: bind groups that wait for the garbage collector each
 * keep a memory mapping; this keeps 65,000 of them alive (as un-collected garbage would be),
 * then submits 2,000 dispatches that bind a dynamic-offset group, which lavapipe copies into a
 * new descriptor set on its execution thread. Near `vm.max_map_count` that copy's `mmap` fails
 * and lavapipe `memset`s the failed mapping: SIGSEGV (exit 139). With Mesa 22 (descriptor sets
 * in malloc'd memory) the mapping count does not grow and the script stops after 70,000 groups.
 *
 * Run: `. bench/mesa25/env.sh && deno run -A bench/mesa25/crash_repro.ts`
 *
 * @module
 */

function mappings(): number {
  return Deno.readTextFileSync("/proc/self/maps").split("\n").length - 1;
}

const limit = Number(Deno.readTextFileSync("/proc/sys/vm/max_map_count"));
const adapter = await navigator.gpu.requestAdapter();
if (!adapter) throw new Error("No WebGPU adapter was found");
const device = await adapter.requestDevice();
const storageLayout = device.createBindGroupLayout({
  entries: [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } }],
});
const paramsLayout = device.createBindGroupLayout({
  entries: [{
    binding: 0,
    visibility: GPUShaderStage.COMPUTE,
    buffer: { type: "uniform", hasDynamicOffset: true, minBindingSize: 256 },
  }],
});
const out = device.createBuffer({ size: 1024, usage: GPUBufferUsage.STORAGE });
const ring = device.createBuffer({ size: 1 << 20, usage: GPUBufferUsage.UNIFORM });
const pipeline = device.createComputePipeline({
  layout: device.createPipelineLayout({ bindGroupLayouts: [storageLayout, paramsLayout] }),
  compute: {
    module: device.createShaderModule({
      code: `@group(0) @binding(0) var<storage, read_write> o: array<u32>;
@group(1) @binding(0) var<uniform> p: vec4<u32>;
@compute @workgroup_size(1) fn main() { o[0] = p.x; }`,
    }),
    entryPoint: "main",
  },
});
const storageGroup = () =>
  device.createBindGroup({
    layout: storageLayout,
    entries: [{ binding: 0, resource: { buffer: out } }],
  });
const paramsGroup = device.createBindGroup({
  layout: paramsLayout,
  entries: [{ binding: 0, resource: { buffer: ring, size: 256 } }],
});

const held: GPUBindGroup[] = [];
while (mappings() < limit - 1000 && held.length < 70000) {
  for (let i = 0; i < 1000; i++) held.push(storageGroup());
}
console.log(`${held.length} bind groups held: ${mappings()} of ${limit} mappings`);
const encoder = device.createCommandEncoder();
const pass = encoder.beginComputePass();
pass.setPipeline(pipeline);
pass.setBindGroup(0, held[0]);
for (let i = 0; i < 2000; i++) {
  pass.setBindGroup(1, paramsGroup, [(i % 4096) * 256]);
  pass.dispatchWorkgroups(1);
}
pass.end();
device.queue.submit([encoder.finish()]);
await device.queue.onSubmittedWorkDone();
console.log(`2,000 dispatches done: ${mappings()} mappings`);
