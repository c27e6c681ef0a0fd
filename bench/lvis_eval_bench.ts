/**
 * LVIS evaluation speed against lvis-api on the largest LVIS fixture
 * (`random_realistic_seed0`: 30 images, 12 categories, 1,211 detections):
 * times {@linkcode evaluateLvis} (bbox and segm), then, when `--lvis-api DIR`
 * names an lvis-api checkout (with pycocotools importable, e.g. through
 * `PYTHONPATH`), lvis-api's `LVISResults` + `LVISEval.run()` on the same
 * inputs through `bench/lvis_api_time.py`, checks that both give the
 * fixture's 13 numbers, and prints a markdown table with the ratio.
 *
 * Both sides time the same work: loading the results (cap, areas), the
 * federated filters, IoUs, matching, accumulation and the summary; the ground
 * truth is parsed once, untimed. Ours: the first call in the process (cold,
 * before the JIT has compiled anything) and the median of `--reps` calls
 * after 20 warm-up calls; lvis-api: the median of `--reps` runs.
 *
 * Run: `deno run -A bench/lvis_eval_bench.ts [--lvis-api DIR] [--reps 5]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { evaluateLvis, LVIS_STAT_NAMES, type LvisStats } from "../eval/lvis_eval.ts";
import type { IouType } from "../eval/params.ts";
import type { CocoDetection } from "../data/coco_types.ts";
import type { LvisDataset } from "../data/lvis_types.ts";

const FIXTURE = new URL("../tests/fixtures/lvis_eval/random_realistic_seed0.json", import.meta.url);
const SCRIPT = fileURLToPath(new URL("./lvis_api_time.py", import.meta.url));
const PYTHON = "/usr/bin/python3";
const WARMUP = 20;

type Fixture = LvisDataset & {
  detections: CocoDetection[];
  expected: Record<IouType, { results: LvisStats }>;
};

/** What `bench/lvis_api_time.py` prints. */
interface ApiTiming {
  median_ms: number;
  min_ms: number;
  results: LvisStats;
  numpy: string;
  python: string;
}

const { values } = parseArgs({
  args: Deno.args,
  strict: true,
  options: { "lvis-api": { type: "string" }, reps: { type: "string", default: "5" } },
});
const reps = Number(values.reps);
if (!Number.isInteger(reps) || reps < 1) throw new RangeError(`--reps ${values.reps}`);
const fixture = JSON.parse(Deno.readTextFileSync(FIXTURE)) as Fixture;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Throws unless `stats` are the fixture's numbers to 1e-6. */
function check(stats: LvisStats, iouType: IouType, who: string): void {
  for (const name of LVIS_STAT_NAMES) {
    const want = fixture.expected[iouType].results[name];
    if (!(Math.abs(stats[name] - want) <= 1e-6)) {
      throw new Error(`${who} ${iouType} ${name} is ${stats[name]}, the fixture says ${want}`);
    }
  }
}

/** Milliseconds of one call of evaluateLvis on fresh copies of the detections. */
function runOurs(iouType: IouType): number {
  const dets = structuredClone(fixture.detections);
  const t0 = performance.now();
  const r = evaluateLvis(fixture, dets, { iouType });
  const ms = performance.now() - t0;
  check(r.stats, iouType, "evaluateLvis");
  return ms;
}

/** The first call in this process (cold), and the median of `reps` after `WARMUP` more. */
function timeOurs(iouType: IouType): { cold: number; warm: number } {
  const cold = runOurs(iouType);
  for (let i = 0; i < WARMUP; i++) runOurs(iouType);
  return { cold, warm: median(Array.from({ length: reps }, () => runOurs(iouType))) };
}

async function timeLvisApi(iouType: IouType): Promise<ApiTiming> {
  const args = [
    SCRIPT,
    "--lvis-api",
    values["lvis-api"]!,
    "--fixture",
    fileURLToPath(FIXTURE),
    "--iou-type",
    iouType,
    "--reps",
    String(reps),
  ];
  const out = await new Deno.Command(PYTHON, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`lvis-api run failed: ${new TextDecoder().decode(out.stderr).slice(-2000)}`);
  }
  const timing = JSON.parse(new TextDecoder().decode(out.stdout)) as ApiTiming;
  check(timing.results, iouType, "lvis-api");
  return timing;
}

const rows: string[] = [];
let versions = "";
for (const iouType of ["bbox", "segm"] as const) {
  const ours = timeOurs(iouType);
  const api = values["lvis-api"] === undefined ? undefined : await timeLvisApi(iouType);
  if (api) versions = `Python ${api.python}, numpy ${api.numpy}`;
  const cells = api
    ? [api.median_ms, api.median_ms / ours.warm, api.median_ms / ours.cold]
    : [NaN, NaN, NaN];
  const fmt = (v: number, unit = "") => Number.isNaN(v) ? "–" : `${v.toFixed(1)}${unit}`;
  rows.push(
    `| ${iouType} | ${fmt(ours.warm)} | ${fmt(ours.cold)} | ${fmt(cells[0])} | ${
      fmt(cells[1], "x")
    } | ${fmt(cells[2], "x")} |`,
  );
}
console.log(
  `random_realistic_seed0 (30 images, 12 categories, 1,211 detections); ours: median of ${reps} ` +
    `after ${WARMUP} warm-up calls, and the first call (cold); lvis-api: median of ${reps}. ` +
    `Deno ${Deno.version.deno}${versions ? `; lvis-api on ${versions}` : " (no --lvis-api given)"}`,
);
console.log("");
console.log(
  "| iou type | evaluateLvis ms | first call ms | lvis-api ms | lvis-api / ours | / first call |",
);
console.log(
  "| -------- | --------------- | ------------- | ----------- | --------------- | ------------ |",
);
for (const row of rows) console.log(row);
