/**
 * Time of the ranking-loss ops (forward + backward, on the tensors' backend) against the number
 * of entries `N`, for `P` = 10, 100, 1000 positives: RS vs BRS and AP vs BAP, on WebGPU and on
 * the CPU backend, plus the fast CPU bucketed losses on plain arrays (`losses/fast`) as a
 * baseline. Prints a markdown table and writes one SVG line chart (log–log) per `P`.
 *
 * Run: `deno run -A bench/loss_complexity.ts [--max-n 1e7] [--reps 3] [--losses rs,brs,ap,bap]
 * [--backends webgpu,cpu] [--out bench/results/loss_complexity]`. GPU times include
 * `await backend.sync()`; inputs are uploaded before timing. Medians of `--reps` runs after one
 * warm-up run per configuration (kernel compilation).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type ChartSeries, lineChartSvg } from "../engine/svg_chart.ts";
import { writeFileAtomic } from "../engine/files.ts";
import { fastBucketedApLoss, fastBucketedRankSortLoss } from "../losses/fast/mod.ts";
import { apLoss, bucketedAp, bucketedRankSort, rankSort } from "../losses/ops/mod.ts";
import { backward } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { cpu, webgpu } from "../tensor/device.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import { detectorLikeInputs } from "./inputs.ts";

type Loss = "rs" | "brs" | "ap" | "bap";

function runOp(loss: Loss, s: Tensor, y: Tensor): Tensor {
  switch (loss) {
    case "rs":
    case "brs": {
      const out = (loss === "rs" ? rankSort : bucketedRankSort)(s, y);
      out.sortingLoss.dispose();
      return out.rankingLoss;
    }
    default:
      return (loss === "ap" ? apLoss : bucketedAp)(s, y).loss;
  }
}

/** Median milliseconds of forward + backward of `loss` on `backend`. */
async function timeOp(
  backend: Backend,
  loss: Loss,
  data: { logits: Float32Array; targets: Float32Array },
  reps: number,
): Promise<number> {
  const n = data.logits.length;
  const s = tensor(data.logits, [n], { backend, requiresGrad: true });
  const y = tensor(data.targets, [n], { backend });
  const once = async () => {
    await backend.sync();
    const t0 = performance.now();
    const out = runOp(loss, s, y);
    backward(out);
    await backend.sync();
    const ms = performance.now() - t0;
    out.dispose();
    s.grad?.dispose();
    s.grad = null;
    return ms;
  };
  await once();
  const times: number[] = [];
  for (let r = 0; r < reps; r++) times.push(await once());
  s.dispose();
  y.dispose();
  return median(times);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function timeFast(loss: Loss, data: { logits: Float32Array; targets: Float32Array }, reps: number) {
  const fn = loss === "brs" ? fastBucketedRankSortLoss : fastBucketedApLoss;
  const times: number[] = [];
  for (let r = 0; r <= reps; r++) {
    const t0 = performance.now();
    fn(data.logits, data.targets);
    if (r > 0) times.push(performance.now() - t0);
  }
  return median(times);
}

const NAMES: Record<Loss, string> = { rs: "RS", brs: "BRS", ap: "AP", bap: "BAP" };

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "max-n": { type: "string", default: "1e7" },
      reps: { type: "string", default: "3" },
      losses: { type: "string", default: "rs,brs,ap,bap" },
      backends: { type: "string", default: "webgpu,cpu" },
      positives: { type: "string", default: "10,100,1000" },
      out: { type: "string", default: "bench/results/loss_complexity" },
    },
    strict: true,
  });
  const maxN = Number(values["max-n"]);
  const reps = Number(values.reps);
  const losses = values.losses.split(",") as Loss[];
  const positives = values.positives.split(",").map(Number);
  const backends: Backend[] = [];
  for (const name of values.backends.split(",")) {
    if (name === "cpu") backends.push(cpu());
    else backends.push(await webgpu());
  }
  const sizes: number[] = [];
  for (let n = 1e3; n <= maxN; n *= 10) sizes.push(n);
  const rows: string[] = [];
  const header = ["P", "N"];
  for (const b of backends) for (const l of losses) header.push(`${NAMES[l]} ${b.name}`);
  const fastLosses = losses.filter((l) => l === "brs" || l === "bap");
  for (const l of fastLosses) header.push(`${NAMES[l]} fast CPU arrays`);
  rows.push(`| ${header.join(" | ")} |`, `|${header.map(() => " ---").join(" |")} |`);
  for (const p of positives) {
    const series = new Map<string, [number, number][]>();
    const add = (name: string, n: number, ms: number) => {
      if (!series.has(name)) series.set(name, []);
      series.get(name)!.push([n, ms]);
    };
    for (const n of sizes) {
      if (p > n) continue;
      const cells = [String(p), n.toExponential(0)];
      for (const b of backends) {
        for (const l of losses) {
          const data = detectorLikeInputs(n, p, { binary: l === "ap" || l === "bap" });
          const ms = await timeOp(b, l, data, n >= 1e6 ? Math.min(reps, 1) : reps);
          add(`${NAMES[l]} ${b.name}`, n, ms);
          cells.push(ms.toFixed(1));
          console.error(`P=${p} N=${n} ${NAMES[l]} ${b.name}: ${ms.toFixed(1)} ms`);
        }
      }
      for (const l of fastLosses) {
        const data = detectorLikeInputs(n, p, { binary: l === "bap" });
        const ms = timeFast(l, data, reps);
        add(`${NAMES[l]} fast CPU arrays`, n, ms);
        cells.push(ms.toFixed(1));
      }
      rows.push(`| ${cells.join(" | ")} |`);
    }
    const chart: ChartSeries[] = [...series].map(([name, points]) => ({
      name,
      points,
      dash: name.includes("cpu") ? "4 3" : undefined,
    }));
    const svg = lineChartSvg(chart, {
      title: `Ranking losses, forward + backward, P = ${p} (${
        backends.map((b) => b.description).join(", ")
      })`,
      xLabel: "N (entries)",
      yLabel: "ms",
      xScale: "log",
      yScale: "log",
      markers: true,
      width: 760,
      height: 460,
    });
    await Deno.mkdir(values.out, { recursive: true });
    await writeFileAtomic(`${values.out}/p${p}.svg`, svg);
  }
  console.log(`Time in ms, forward + backward (median). Charts: ${values.out}/p*.svg\n`);
  console.log(rows.join("\n"));
}

if (import.meta.main) await main();
