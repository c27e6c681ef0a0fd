/**
 * Wall time of `hungarian()` (detectors/hungarian.ts) at DETR's sizes, 300 queries x 100 targets
 * and 900 x 300, on uniform `[0, 1)` costs and on a Deformable-DETR matching cost `C`
 * (`detrMatchCost` of random boxes and logits, 80 classes), plus the whole `detrMatch` of one
 * image (cost and solve). Where the Python of `--python` (default `/usr/bin/python3`) imports
 * scipy, the same matrices are solved by `scipy.optimize.linear_sum_assignment`
 * (bench/hungarian_scipy.py), with the time ratio and the difference of the two total costs.
 * Median and minimum of `--reps` runs after one warm-up (the minimum is the steadier figure on a
 * shared machine).
 *
 * Run: `deno run -A bench/hungarian_table.ts [--reps 9] [--python /usr/bin/python3]`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { detrMatch, detrMatchCost, type DetrPredictions } from "../detectors/detr_matcher.ts";
import { hungarian } from "../detectors/hungarian.ts";
import { sortedMs, uniform } from "./inputs.ts";

const SCIPY_SCRIPT = fileURLToPath(new URL("./hungarian_scipy.py", import.meta.url));
const CLASSES = 80;

/** What bench/hungarian_scipy.py prints. */
interface ScipyResult {
  median_ms: number;
  min_ms: number;
  total: number;
  scipy_version: string;
}

/** One image of `q` random predictions and `t` random targets, normalised cxcywh. */
function detrImage(q: number, t: number, seed: number) {
  const r = uniform(seed);
  const box = () => [0.1 + 0.8 * r(), 0.1 + 0.8 * r(), 0.02 + 0.3 * r(), 0.02 + 0.3 * r()];
  const pred: DetrPredictions = {
    logits: Float32Array.from({ length: q * CLASSES }, () => -4 + 3 * r()),
    boxes: Float32Array.from(Array.from({ length: q }, box).flat()),
    numQueries: q,
    numClasses: CLASSES,
  };
  const targets = [{
    labels: Int32Array.from({ length: t }, () => Math.floor(r() * CLASSES)),
    boxes: Float64Array.from(Array.from({ length: t }, box).flat()),
  }];
  return { pred, targets };
}

function total(cost: Float64Array, cols: number, m: { rows: Int32Array; cols: Int32Array }) {
  let sum = 0;
  for (let k = 0; k < m.rows.length; k++) sum += cost[m.rows[k] * cols + m.cols[k]];
  return sum;
}

/** scipy's time on `cost`, or why it did not run. */
async function scipyMs(
  python: string,
  cost: Float64Array,
  rows: number,
  cols: number,
  reps: number,
): Promise<ScipyResult | string> {
  const path = await Deno.makeTempFile({ suffix: ".f64" });
  try {
    await Deno.writeFile(path, new Uint8Array(cost.buffer, cost.byteOffset, cost.byteLength));
    const out = await new Deno.Command(python, {
      args: [SCIPY_SCRIPT, path, `${rows}`, `${cols}`, `${reps}`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();
    if (!out.success) return `${python} ${SCIPY_SCRIPT}: ${text(out.stderr).split("\n").pop()}`;
    return JSON.parse(text(out.stdout).split("\n").pop()!) as ScipyResult;
  } catch (error) {
    return `${python}: ${(error as Error).message}`;
  } finally {
    await Deno.remove(path);
  }
}

const USAGE = "Usage: deno run -A bench/hungarian_table.ts [--reps 9] [--python /usr/bin/python3]";

function flags(): { reps: number; python: string } {
  try {
    const { values } = parseArgs({
      args: Deno.args,
      strict: true,
      options: {
        reps: { type: "string", default: "9" },
        python: { type: "string", default: "/usr/bin/python3" },
      },
    });
    const reps = Number(values.reps);
    if (!Number.isInteger(reps) || reps < 1) throw new RangeError(`--reps "${values.reps}"`);
    return { reps, python: values.python };
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    Deno.exit(2);
  }
}

/** `median / min` of sorted times. */
const summary = (ms: number[]) =>
  `${ms[Math.floor(ms.length / 2)].toFixed(2)} / ${ms[0].toFixed(2)}`;

if (import.meta.main) {
  const { reps, python } = flags();
  console.log(
    "| matrix | hungarian, ms | scipy, ms | ratio | total, ours − scipy | detrMatch, ms |",
  );
  console.log("| --- | --- | --- | --- | --- | --- |");
  let version = "";
  for (const [q, t] of [[300, 100], [900, 300]]) {
    const r = uniform(q + t);
    const uniformCost = Float64Array.from({ length: q * t }, r);
    const image = detrImage(q, t, q * t);
    const detrCost = detrMatchCost(image.pred, image.targets).total;
    for (const [name, cost] of [["uniform", uniformCost], ["DETR C", detrCost]] as const) {
      const ms = sortedMs(reps, () => hungarian(cost, q, t));
      const ours = total(cost, t, hungarian(cost, q, t));
      const py = await scipyMs(python, cost, q, t, reps);
      const matchMs = name === "DETR C"
        ? summary(sortedMs(reps, () => detrMatch(image.pred, image.targets)))
        : "";
      let scipy = "–", ratio = "–", diff = "–";
      if (typeof py === "string") console.error(py);
      else {
        version = py.scipy_version;
        scipy = `${py.median_ms.toFixed(2)} / ${py.min_ms.toFixed(2)}`;
        ratio = `${(ms[Math.floor(reps / 2)] / py.median_ms).toFixed(1)}x / ${
          (ms[0] / py.min_ms).toFixed(1)
        }x`;
        diff = (ours - py.total).toExponential(1);
      }
      console.log(
        `| ${q} x ${t} ${name} | ${summary(ms)} | ${scipy} | ${ratio} | ${diff} | ${matchMs} |`,
      );
    }
  }
  console.log("\nTimes: median / min of the runs; ratio: ours over scipy, of medians / of mins.");
  if (version) {
    console.log(`scipy ${version}, ${Deno.build.os}/${Deno.build.arch}, deno ${Deno.version.deno}`);
  }
}
