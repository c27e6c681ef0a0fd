/**
 * Where a training step's time goes: runs steps of a config (default: the tiny ATSS on
 * synthetic shapes) and prints the wall time per step, the host time per step (`encode`: from
 * the step's start to its last submit, less the waits on the device, `Backend.hostStats`; mean,
 * median and fastest step) with the launches per step, both from a plain run (each step flushed
 * and synced on its own, so that no device work shares the CPU with the encoding on a software
 * adapter), then the device time per kernel family and per kernel from a profiled run
 * (`Backend.startProfile`: WebGPU timestamp queries, one pass per launch, so the profiled run
 * itself is slower than the plain one).
 *
 * The first `--warmup` steps are not timed: the first compiles every kernel, and the next ones
 * settle the buffer pool, so that later steps reuse their bind groups (`tensor/buffer_pool.ts`).
 *
 * Run: `deno run -A bench/train_step_profile.ts [--config atss_tiny_shapes] [--steps 3]
 * [--warmup 3] [--batch 4] [--top 25] [--conv-direct auto|off] [--hardware]` (`off`: conv2d
 * without its direct kernels, for comparison; `--hardware`: the profile forced to the hardware
 * adapters' kernels, the shared-memory matmul and implicit-GEMM convolution, see
 * docs/device_profile.md)
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadConfig } from "../engine/config.ts";
import { encodeMs, type KernelTime } from "../tensor/backend.ts";
import { initBackend } from "../tensor/device.ts";
import {
  type DeviceProfile,
  HARDWARE_PATHS,
  type PathMode,
  withProfile,
} from "../tensor/device_profile.ts";
import { trainSteps } from "./train_steps.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    config: { type: "string", default: "atss_tiny_shapes" },
    steps: { type: "string", default: "3" },
    warmup: { type: "string", default: "3" },
    batch: { type: "string" },
    top: { type: "string", default: "25" },
    "conv-direct": { type: "string", default: "auto" },
    hardware: { type: "boolean", default: false },
  },
});
const backend = await initBackend();
const directMode = values["conv-direct"] as PathMode;
const overrides: Partial<DeviceProfile> = {
  ...(values.hardware ? HARDWARE_PATHS : {}),
  ...(directMode === "auto" ? {} : { convDirect: directMode }),
};
const config = await loadConfig(values.config!);
const batchSize = Number(values.batch ?? config.train.batchSize);
const steps = Number(values.steps);
const warmup = Math.max(1, Number(values.warmup));
const trained = await trainSteps(backend, { config, batches: warmup + steps, batchSize });
const step = (k: number) => withProfile(backend, overrides, () => trained(k));

for (let k = 0; k < warmup; k++) await step(k);
await backend.sync();
let started = performance.now();
const hostMs: number[] = [];
let plainLaunches = 0;
for (let k = warmup; k < warmup + steps; k++) {
  const before = backend.hostStats();
  const stepStarted = performance.now();
  await step(k);
  backend.flush();
  const after = backend.hostStats();
  hostMs.push(encodeMs(stepStarted, before, after));
  plainLaunches += after.launches - before.launches;
  await backend.sync();
}
const wallMs = (performance.now() - started) / steps;

backend.startProfile();
started = performance.now();
for (let k = warmup; k < warmup + steps; k++) await step(k);
const times = await backend.stopProfile();
const profiledMs = (performance.now() - started) / steps;

const per = (x: number) => (x / steps).toFixed(1);
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const deviceMs = times.reduce((sum, t) => sum + t.ms, 0);
const launches = times.reduce((sum, t) => sum + t.calls, 0);
const families = new Map<string, KernelTime>();
for (const t of times) {
  const family = t.label.split(".")[0];
  const entry = families.get(family) ?? { label: family, calls: 0, ms: 0 };
  entry.calls += t.calls;
  entry.ms += t.ms;
  families.set(family, entry);
}
const table = (title: string, rows: KernelTime[]) => {
  console.log(`\n| ${title} | launches / step | ms / step | share |`);
  console.log("| --- | --- | --- | --- |");
  for (const t of rows) {
    const share = (100 * t.ms / deviceMs).toFixed(1);
    console.log(`| ${t.label} | ${per(t.calls)} | ${per(t.ms)} | ${share}% |`);
  }
};
console.log(
  `${config.name} (${config.model.loss}), batch ${batchSize}, ${backend.description}, ${
    new Date().toISOString().slice(0, 10)
  }`,
);
console.log(
  `wall ${wallMs.toFixed(0)} ms/step; encode ${per(sum(hostMs))} ms/step (median ${
    median(hostMs).toFixed(1)
  }, fastest ${Math.min(...hostMs).toFixed(1)}) with ${per(plainLaunches)} launches/step`,
);
console.log(
  `profiled run ${profiledMs.toFixed(0)} ms/step with ` +
    `${per(launches)} launches/step and ${per(deviceMs)} ms/step of device time`,
);
table("kernel family", [...families.values()].sort((a, b) => b.ms - a.ms));
table("kernel", times.slice(0, Number(values.top)));
