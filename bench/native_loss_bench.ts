/**
 * The bucketed ranking ops on the native backend (`bucketedRankSort`, `bucketedAp`), forward +
 * backward as training calls them: one `[N]` logits tensor reused, outputs and `logits.grad`
 * released after each call, so the pool hands the same buffers back and only the first call
 * page-faults. Each configuration runs in a fresh process, so its first call is cold (JIT and
 * first touch of the pooled buffers); then `--reps` repeated calls, their median and min. The
 * last column times the fast array function as it was called before (`fastBucketedRankSortLoss`
 * / `fastBucketedApLoss`, a fresh float64 gradient per call) in the same process.
 *
 * Run: `deno run -A bench/native_loss_bench.ts [--n 1e7] [--p 100,1000,1e5] [--losses brs,bap]
 * [--reps 5]`. Prints a markdown table.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fastBucketedApLoss, fastBucketedRankSortLoss } from "../losses/fast/mod.ts";
import { bucketedAp, bucketedRankSort } from "../losses/ops/mod.ts";
import { backward } from "../tensor/autograd.ts";
import { native } from "../tensor/device.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import { detectorLikeInputs } from "./inputs.ts";

type Loss = "brs" | "bap";

/** Timings of one configuration, in ms. */
interface Row {
  loss: Loss;
  n: number;
  p: number;
  first: number;
  repeated: number[];
  array: number[];
}

/** One forward + backward of `loss` on `logits`; releases everything but the inputs. */
function step(loss: Loss, logits: Tensor, targets: Tensor): number {
  const t0 = performance.now();
  let out: Tensor;
  if (loss === "brs") {
    const r = bucketedRankSort(logits, targets);
    r.sortingLoss.dispose();
    out = r.rankingLoss;
  } else {
    out = bucketedAp(logits, targets).loss;
  }
  backward(out);
  const ms = performance.now() - t0;
  out.dispose();
  logits.grad!.dispose();
  logits.grad = null;
  return ms;
}

/** Runs one configuration in this process. */
function measure(loss: Loss, n: number, p: number, reps: number): Row {
  const { logits, targets } = detectorLikeInputs(n, p, { binary: loss === "bap" });
  const backend = native();
  const s = tensor(logits, [n], { backend, requiresGrad: true });
  const y = tensor(targets, [n], { backend });
  const first = step(loss, s, y);
  const repeated = Array.from({ length: reps }, () => step(loss, s, y));
  const fn = loss === "brs" ? fastBucketedRankSortLoss : fastBucketedApLoss;
  const array = Array.from({ length: reps }, () => {
    const t0 = performance.now();
    fn(logits, targets);
    return performance.now() - t0;
  });
  s.dispose();
  y.dispose();
  return { loss, n, p, first, repeated, array };
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Runs one configuration in a fresh process (a cold first call) and parses its row. */
async function measureFresh(loss: Loss, n: number, p: number, reps: number): Promise<Row> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--child",
      `${loss}:${n}:${p}`,
      "--reps",
      String(reps),
    ],
    stderr: "inherit",
  });
  const { code, stdout } = await child.output();
  if (code !== 0) throw new Error(`Benchmark of ${loss} N=${n} P=${p} exited with code ${code}`);
  return JSON.parse(new TextDecoder().decode(stdout)) as Row;
}

if (import.meta.main) {
  const usage = "Usage: deno run -A bench/native_loss_bench.ts [--n 1e7] [--p 100,1000,1e5] " +
    "[--losses brs,bap] [--reps 5]";
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        n: { type: "string", default: "1e7" },
        p: { type: "string", default: "100,1000,1e5" },
        losses: { type: "string", default: "brs,bap" },
        reps: { type: "string", default: "5" },
        child: { type: "string" },
      },
      strict: true,
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${usage}`);
    Deno.exit(2);
  }
  const reps = Number(values.reps);
  if (values.child) {
    const [loss, n, p] = values.child.split(":");
    console.log(JSON.stringify(measure(loss as Loss, Number(n), Number(p), reps)));
  } else {
    const n = Number(values.n);
    const losses = values.losses.split(",") as Loss[];
    const ps = values.p.split(",").map(Number);
    if (losses.some((l) => l !== "brs" && l !== "bap") || !(n > 0) || ps.some((p) => !(p >= 0))) {
      console.error(usage);
      Deno.exit(2);
    }
    console.log(`native backend: ${native().description}; ${reps} repeated calls per row`);
    console.log("");
    console.log(
      "| loss | N | P | first call ms | repeated ms (median) | repeated ms (min) | " +
        "array function ms (median) |",
    );
    console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (const loss of losses) {
      for (const p of ps) {
        const r = await measureFresh(loss, n, p, reps);
        console.log(
          `| ${loss.toUpperCase()} | ${n.toExponential(0).replace("e+", "e")} | ${p} | ${
            r.first.toFixed(0)
          } | ${median(r.repeated).toFixed(0)} | ${Math.min(...r.repeated).toFixed(0)} | ${
            median(r.array).toFixed(0)
          } |`,
        );
      }
    }
  }
}
