/**
 * Our full default training step against PyTorch's step of the same network: times the default
 * config's step (tiny ATSS on synthetic shapes, batch 4, 128 px: forward, the ATSS assigner on
 * the host, the config's ranking loss, backward, SGD with momentum, weight decay and gradient
 * clipping) on the chosen backend, then, where `/usr/bin/python3` imports torch (Debian
 * `python3-torch`), the same network in PyTorch (`bench/torch_step.py`) on as many threads, and
 * prints both with their ratio as a markdown table.
 *
 * The PyTorch side has the same layers and parameter count but a stand-in loss (sigmoid focal
 * loss over every anchor plus L1 on random positives' deltas, no assigner, no ranking loss), so
 * the ratio compares our whole step with PyTorch's network step.
 *
 * Run: `BRL_BACKEND=native deno run -A bench/step_vs_torch.ts [--steps 10] [--warmup 2]
 * [--threads 2] [--backend native|webgpu|cpu]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { ATSS_TINY_SHAPES } from "../configs/atss_tiny_shapes.ts";
import { type Batch, DetectionLoader, memorySource } from "../data/loader.ts";
import { generateShapes } from "../data/shapes.ts";
import { buildAtss } from "../detectors/atss.ts";
import { backward } from "../tensor/autograd.ts";
import type { BackendName } from "../tensor/backend.ts";
import { initBackend } from "../tensor/device.ts";
import { SGD } from "../tensor/optim/sgd.ts";
import { tidyAsync } from "../tensor/tensor.ts";

const USAGE = `Usage: deno run -A bench/step_vs_torch.ts [options]

Times the default training step (${ATSS_TINY_SHAPES.name}) on our backend and the same network's
step in PyTorch (/usr/bin/python3 with torch), and prints the ratio.

Options:
  --steps N          timed steps on each side (default 10)
  --warmup N         untimed steps first (default 2)
  --threads N        OpenBLAS threads (BRL_THREADS) and torch threads (default BRL_THREADS, else 2)
  --backend NAME     native | webgpu | cpu (default BRL_BACKEND, else chosen by the machine)
  -h, --help         this text
`;

const PYTHON = "/usr/bin/python3";
const TORCH_SCRIPT = fileURLToPath(new URL("./torch_step.py", import.meta.url));

/** What `bench/torch_step.py` prints. */
interface TorchResult {
  median_ms: number;
  min_ms: number;
  params: number;
  anchors_per_image: number;
  torch_version: string;
  threads: number;
  mkldnn: boolean;
  loss: string;
}

function flags(): { steps: number; warmup: number; threads: number; backend?: BackendName } {
  let values;
  try {
    values = parseArgs({
      args: Deno.args,
      strict: true,
      options: {
        steps: { type: "string", default: "10" },
        warmup: { type: "string", default: "2" },
        threads: { type: "string" },
        backend: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    }).values;
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    Deno.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const int = (name: string, text: string | undefined, min: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) {
      console.error(`--${name} must be an integer >= ${min}, got "${text}"\n\n${USAGE}`);
      Deno.exit(2);
    }
    return n;
  };
  return {
    steps: int("steps", values.steps, 1),
    warmup: int("warmup", values.warmup, 0),
    threads: int("threads", values.threads ?? Deno.env.get("BRL_THREADS") ?? "2", 1),
    backend: values.backend as BackendName | undefined,
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

/** Runs the PyTorch reference, or says why it did not run. */
async function runTorch(
  steps: number,
  warmup: number,
  threads: number,
  batch: number,
  size: number,
): Promise<TorchResult | string> {
  const run = async (args: string[]) => {
    try {
      const out = await new Deno.Command(PYTHON, { args, stdout: "piped", stderr: "piped" })
        .output();
      const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();
      return { ok: out.success, stdout: text(out.stdout), stderr: text(out.stderr) };
    } catch (error) {
      return { ok: false, stdout: "", stderr: (error as Error).message };
    }
  };
  const probe = await run(["-c", "import torch"]);
  if (!probe.ok) {
    const why = probe.stderr.split("\n").pop() ?? "";
    return `${PYTHON} cannot import torch (${why}); install Debian's python3-torch`;
  }
  const result = await run([
    TORCH_SCRIPT,
    ...["--steps", `${steps}`, "--warmup", `${warmup}`, "--threads", `${threads}`],
    ...["--batch", `${batch}`, "--size", `${size}`],
  ]);
  if (!result.ok) return `${TORCH_SCRIPT} failed: ${result.stderr.split("\n").pop()}`;
  return JSON.parse(result.stdout.split("\n").pop()!) as TorchResult;
}

const options = flags();
Deno.env.set("BRL_THREADS", `${options.threads}`); // read when the native backend loads OpenBLAS
const backend = await initBackend(options.backend);
const config = ATSS_TINY_SHAPES;
const batchSize = config.train.batchSize;
const size = 128; // the shapes data and the config's train size (shortSide = maxSize = 128)
const model = buildAtss(config.model, { seed: 0, backend });
const params = model.namedParameters();
const paramCount = params.reduce((sum, [, p]) => sum + p.size, 0);
const optimizer = new SGD(params.filter(([, p]) => p.requiresGrad), {
  lr: 1e-3,
  momentum: config.train.momentum,
  weightDecay: config.train.weightDecay,
  maxGradNorm: config.train.maxGradNorm,
});
const split = generateShapes({ numImages: batchSize * 4, seed: 1, size });
const loader = new DetectionLoader(memorySource(split), { batchSize, seed: 0, shuffle: false });
const batches: Batch[] = [];
for await (const batch of loader.epoch(0)) batches.push(batch);
loader.close();
if (batches[0].height !== size || batches[0].width !== size) {
  throw new RangeError(
    `Expected ${size}x${size} batches, got ${batches[0].height}x${batches[0].width}`,
  );
}
const anchorsPerImage = model.anchors(size, size).host.boxes.length / 4;

async function step(k: number): Promise<void> {
  await tidyAsync(async () => {
    backward((await model.loss(batches[k % batches.length])).total);
    optimizer.step();
    optimizer.zeroGrad();
  });
}

console.error(
  `brl: ${config.name} (${config.model.loss}), batch ${batchSize}, ${size} px, ` +
    `${paramCount} parameters, ${backend.description}: ${options.warmup} + ${options.steps} steps`,
);
for (let k = 0; k < options.warmup; k++) await step(k);
await backend.sync();
const ours: number[] = [];
for (let k = 0; k < options.steps; k++) {
  const started = performance.now();
  await step(options.warmup + k);
  await backend.sync();
  ours.push(performance.now() - started);
}
const oursMedian = median(ours), oursMin = Math.min(...ours);

console.error(`brl: PyTorch reference (${PYTHON} ${TORCH_SCRIPT}), ${options.threads} threads`);
const torch = await runTorch(options.steps, options.warmup, options.threads, batchSize, size);

// OpenBLAS threads on the native backend; the CPU backend runs on one; WebGPU on the adapter.
const ourThreads = backend.name === "native"
  ? `${options.threads}`
  : backend.name === "cpu"
  ? "1"
  : "–";
const ms = (median: number, min: number) => `${median.toFixed(1)} (min ${min.toFixed(1)})`;
const date = new Date().toISOString().slice(0, 10);
console.log(
  "\n| backend | ours ms/step | PyTorch ms/step | ratio (ours/PyTorch) | threads | params (ours / PyTorch) | date | description |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
if (typeof torch === "string") {
  console.log(
    `| ${backend.name} | ${ms(oursMedian, oursMin)} | not run | – | ${ourThreads} | ` +
      `${paramCount} / – | ${date} | ${backend.description} |`,
  );
  console.log(`\nThe PyTorch reference was not run: ${torch}`);
} else {
  const ratio = oursMedian / torch.median_ms;
  console.log(
    `| ${backend.name} | ${ms(oursMedian, oursMin)} | ${ms(torch.median_ms, torch.min_ms)} | ` +
      `${ratio.toFixed(2)}x (min/min ${(oursMin / torch.min_ms).toFixed(2)}x) | ` +
      `${ourThreads} / ${torch.threads} | ${paramCount} / ${torch.params} | ${date} | ` +
      `${backend.description}; torch ${torch.torch_version}, mkldnn ${torch.mkldnn} |`,
  );
  console.log(
    `\nMedian over ${options.steps} steps after ${options.warmup} warm-up steps. Ours: ` +
      `${config.model.loss} loss with the ATSS assigner, batch ${batchSize}, ${size} px, ` +
      `${anchorsPerImage} anchors per image. PyTorch: the same network with a ${torch.loss}.`,
  );
  if (paramCount !== torch.params || anchorsPerImage !== torch.anchors_per_image) {
    console.log(
      `\nWARNING: the networks differ: ${paramCount} vs ${torch.params} parameters, ` +
        `${anchorsPerImage} vs ${torch.anchors_per_image} anchors per image`,
    );
  }
}
