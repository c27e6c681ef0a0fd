/**
 * What releasing bind groups in generations costs a training step: two copies of the default
 * detector, one on a WebGPU backend with plain bind groups and one with the adapter's own
 * quirks (generations on llvmpipe), step in turn (the order alternating) so that both see the
 * same load on a shared machine; prints each one's median and mean seconds per step and the
 * median ratio of the two steps of a pair.
 *
 * Run: `deno run -A bench/mesa25/bind_groups_ab.ts [--pairs 10] [--config atss_tiny_shapes]`.
 * On Mesa 25 (`. bench/mesa25/env.sh` first) the plain copy gains ~2,400 mappings a step and
 * crashes the process beyond ~25 steps, so keep `--pairs` at 10 there.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadConfig } from "../../engine/config.ts";
import type { Backend } from "../../tensor/backend.ts";
import { requestGpuDevice } from "../../tensor/device.ts";
import { adapterProfile } from "../../tensor/device_profile.ts";
import { createWebGpuBackend } from "../../tensor/webgpu_backend.ts";
import { trainSteps } from "../train_steps.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    pairs: { type: "string", default: "10" },
    config: { type: "string", default: "atss_tiny_shapes" },
  },
});
const pairs = Number(values.pairs);
const config = await loadConfig(values.config!);

interface Arm {
  name: string;
  backend: Backend;
  step: (k: number) => Promise<void>;
  seconds: number[];
}

async function arm(name: string, plain: boolean): Promise<Arm> {
  const { device, description } = await requestGpuDevice();
  const adapter = adapterProfile({ description, limits: device.limits });
  const profile = plain ? { ...adapter, bindGroupsPerGeneration: 0 } : adapter;
  const backend = createWebGpuBackend(device, description, profile);
  const step = await trainSteps(backend, { config, batches: 4 });
  await step(0); // compiles every kernel
  await backend.sync();
  return {
    name: `${name} (${profile.bindGroupsPerGeneration} per generation)`,
    backend,
    step,
    seconds: [],
  };
}

const arms = [await arm("plain", true), await arm("adapter quirks", false)];
for (let k = 1; k <= pairs; k++) {
  for (const a of k % 2 === 1 ? arms : [...arms].reverse()) {
    const started = performance.now();
    await a.step(k);
    await a.backend.sync();
    a.seconds.push((performance.now() - started) / 1000);
  }
}
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
console.log(`${config.name}, ${arms[0].backend.description}, ${pairs} steps each`);
for (const a of arms) {
  console.log(
    `${a.name}: median ${median(a.seconds).toFixed(3)} s/step, mean ${mean(a.seconds).toFixed(3)}`,
  );
}
const ratios = arms[1].seconds.map((s, k) => s / arms[0].seconds[k]);
console.log(`median of the paired ratios (quirks / plain): ${median(ratios).toFixed(3)}`);
