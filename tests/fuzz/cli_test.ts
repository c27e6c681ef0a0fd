/**
 * Fuzzing the command lines' flag handling: `main(args)` of `cli/train.ts`, `cli/eval.ts`
 * (and its `parseEvalArgs`) and `cli/detect.ts`, on flag lists that hold valid flags in random
 * order plus exactly one bad flag. Every list fails before any training, evaluation or
 * detection starts (and as a net under that, `--out` names a path below a regular file, which
 * no run could create).
 *
 * What must happen:
 * - an unknown long or short option, a string option without its value, a boolean option with
 *   one, a positional argument (train, eval) → exit code 2; stderr is the parser's message
 *   (`Unknown option '--x'`, `Option '--iters <value>' argument missing`, `Option '--resume'
 *   does not take an argument`, `Unexpected argument 'x'. …`), a blank line and the usage.
 * - train: `--iters`/`--batch`/`--log-every` not an integer >= 1, `--seed` not >= 0 → exit 1,
 *   `brl train: --K must be an integer >= N, got "V"`; an unknown `--loss`, `--config` or
 *   `--backend` → exit 1 with the library's error naming it.
 * - eval: flags that exclude each other, flags that need `--checkpoint`, a missing `--gt` or
 *   `--dets`, an unknown `--iou-type` (with or without `--checkpoint`) → `parseEvalArgs` throws
 *   UsageError naming them; `main` exits 2 with that message, a blank line and the usage.
 * - detect: no `--checkpoint`, no image or an unknown `--format` → exit 2 with the usage; a
 *   `--score-thr` outside [0, 1] (or empty), `--top` not >= 1, `--min-size` not >= 0 → exit 1,
 *   `brl detect: --K must be …, got "V"`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { main as trainMain, TRAIN_USAGE } from "../../cli/train.ts";
import { EVAL_USAGE, main as evalMain, parseEvalArgs, UsageError } from "../../cli/eval.ts";
import { DETECT_USAGE, main as detectMain } from "../../cli/detect.ts";
import { expectError, pick, Rng, Tally, withinBudget } from "./mutators.ts";
import { runCli } from "../cli/helpers.ts";

const tally = new Tally("cli");

/** Runs a CLI's `main` with console output captured, within the time budget. */
const run = (main: (args: string[]) => Promise<number>, args: string[]) =>
  runCli(main, args, (call) => withinBudget(args.join(" "), call));

/** `extras` (flag groups) in a random order with `bad` at a random place (`last`: at the end). */
function arrange(rng: Rng, extras: string[][], bad: string[], last = false): string[] {
  const groups = extras.filter(() => rng.int(2) === 1);
  for (let i = groups.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [groups[i], groups[j]] = [groups[j], groups[i]];
  }
  groups.splice(last ? groups.length : rng.int(groups.length + 1), 0, bad);
  return groups.flat();
}

const flagName = (group: string[]) => group[0]?.split("=")[0];
const without = (pool: string[][], ...names: string[]) =>
  pool.filter((g) => !names.includes(flagName(g)));

/** A random option name that none of the CLIs has. */
function unknownOption(rng: Rng, known: string[]): string {
  for (;;) {
    const name = Array.from(
      { length: 3 + rng.int(8) },
      () => "abcdefghijklmnopqrstuvwxyz-"[rng.int(26 + (rng.int(4) ? 0 : 1))],
    ).join("");
    if (!known.includes(name) && /^[a-z]/.test(name)) return name;
  }
}

/** The parser's errors: [class, bad flag group, message, must be last]. */
function parseErrors(
  rng: Rng,
  strings: string[],
  booleans: string[],
  positionals: boolean,
): [string, string[], string, boolean][] {
  const known = [...strings, ...booleans];
  const long = unknownOption(rng, known);
  let short = "abcdefgijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[rng.int(51)];
  if (short === "h") short = "x";
  const s = pick(rng, strings), b = pick(rng, booleans);
  // With positionals allowed, the parser adds how to pass one that starts with "-".
  const unknown = (opt: string) =>
    `Unknown option '${opt}'` +
    (positionals
      ? `. To specify a positional argument starting with a '-', place it at the end of the command after '--', as in '-- "${opt}"`
      : "");
  const out: [string, string[], string, boolean][] = [
    ["an unknown long option", [`--${long}`], unknown(`--${long}`), false],
    ["an unknown short option", [`-${short}`], unknown(`-${short}`), false],
    [
      "a string option without its value",
      [`--${s}`],
      `Option '--${s} <value>' argument missing`,
      true,
    ],
    [
      "a boolean option with a value",
      [`--${b}=${pick(rng, ["yes", "1", "", "false"])}`],
      `Option '${b === "help" ? "-h, --help" : `--${b}`}' does not take an argument`,
      false,
    ],
  ];
  if (!positionals) {
    const word = pick(rng, ["train", "x.png", "5", "atss_tiny_shapes"]);
    out.push([
      "a positional argument",
      [word],
      `Unexpected argument '${word}'. This command does not take positional arguments`,
      false,
    ]);
  }
  return out;
}

const safeDir = await Deno.makeTempDir({ prefix: "brl_fuzz_cli_" });
const blocker = join(safeDir, "a-file");
await Deno.writeTextFile(blocker, "");
/** An output folder no run can create (its parent is a file). */
const SAFE_OUT = join(blocker, "out");

const BAD_INTEGERS = ["0", "x", "", " ", "1.5", "1e400", "NaN", "Infinity", "0x", "=-3", "2 3"];

Deno.test("fuzz cli: deno task train", async () => {
  const rng = new Rng(51);
  const strings = [
    "config",
    "loss",
    "data",
    "iters",
    "batch",
    "seed",
    "out",
    "pretrained",
    "backend",
    "log-every",
  ];
  const booleans = ["resume", "no-eval", "help"];
  const pool = [
    ["--seed", "3"],
    ["--no-eval"],
    ["--resume"],
    ["--out", SAFE_OUT],
    ["--data", join(safeDir, "no-data")],
    ["--pretrained", join(safeDir, "no-weights.pth")],
    ["--iters", "5"],
    ["--batch", "2"],
    ["--log-every", "3"],
    ["--loss", "rs"],
    ["--config", "atss_tiny_shapes"],
  ];
  for (let i = 0; i < 4; i++) {
    for (const [cls, bad, message, last] of parseErrors(rng, strings, booleans, false)) {
      const args = arrange(rng, without(pool, flagName(bad)), bad, last);
      const r = await run(trainMain, args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
      assert.equal(r.err, `${message}\n\n${TRAIN_USAGE}`, args.join(" "));
      tally.add(`train: ${cls}`);
    }
  }
  const failures: [string, () => [string[], string]][] = [
    ["an integer flag out of range", () => {
      const flag = pick(rng, ["iters", "batch", "log-every", "seed"]);
      const v = pick(rng, flag === "seed" ? BAD_INTEGERS.filter((x) => x !== "0") : BAD_INTEGERS);
      const bad = v.startsWith("=") ? [`--${flag}${v}`] : [`--${flag}`, v];
      const shown = v.startsWith("=") ? v.slice(1) : v;
      return [bad, `--${flag} must be an integer >= ${flag === "seed" ? 0 : 1}, got "${shown}"`];
    }],
    ["an unknown loss", () => {
      const loss = pick(rng, ["BRS", "focal_loss", "dice", "", "ap2", "constructor"]);
      return [
        ["--loss", loss],
        `Unknown loss "${loss}" for a atss detector: expected one of brs, rs, bap, ap, focal`,
      ];
    }],
    ["a config that does not exist", () => {
      const name = pick(rng, ["no_such_config", join(safeDir, "missing.ts"), "atss_tiny"]);
      const url = name.startsWith("/")
        ? new URL(`file://${name}`).href
        : new URL(`../../configs/${name}.ts`, import.meta.url).href;
      return [["--config", name], `Cannot load config "${name}": Module not found "${url}".`];
    }],
    ["an unknown backend", () => {
      const backend = pick(rng, ["gpu", "CPU", "cuda", "", "webgl"]);
      return [
        ["--backend", backend],
        `Unknown backend "${backend}": expected "cpu", "native", "webgpu"`,
      ];
    }],
  ];
  for (let i = 0; i < 40; i++) {
    const [cls, make] = failures[i % failures.length];
    const [bad, message] = make();
    const args = arrange(rng, without(pool, flagName(bad)), bad);
    if (!args.includes("--out")) args.push("--out", SAFE_OUT);
    const r = await run(trainMain, args);
    assert.equal(r.code, 1, `${args.join(" ")}: ${r.err}`);
    assert.equal(r.err, `brl train: ${message}`, args.join(" "));
    tally.add(`train: ${cls}`);
  }
});

Deno.test("fuzz cli: deno task eval", async () => {
  const rng = new Rng(52);
  const strings = ["gt", "dets", "checkpoint", "data", "config", "backend", "iou-type", "out"];
  const booleans = ["lrp", "no-out", "per-category", "store-thresholds", "help"];
  const gtPool = [["--lrp"], ["--per-category"], ["--iou-type", "segm"], ["--out", SAFE_OUT]];
  const ckptPool = [
    ["--data", "d"],
    ["--config", "atss_tiny_shapes"],
    ["--backend", "cpu"],
    ["--store-thresholds"],
    ["--per-category"],
    ["--no-out"],
  ];
  const check = async (cls: string, args: string[], message: string) => {
    await expectError(args.join(" "), () => parseEvalArgs(args), UsageError, message);
    const r = await run(evalMain, args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.equal(r.err, `${message}\n\n${EVAL_USAGE}`, args.join(" "));
    tally.add(`eval: ${cls}`);
  };
  for (let i = 0; i < 3; i++) {
    for (const [cls, bad, message, last] of parseErrors(rng, strings, booleans, false)) {
      const base = i % 2
        ? [["--checkpoint", "c.safetensors"], ...ckptPool]
        : [["--gt", "g.json"], ["--dets", "d.json"], ...gtPool];
      await check(cls, arrange(rng, without(base, flagName(bad)), bad, last), message);
    }
  }
  for (let i = 0; i < 7; i++) {
    const args = arrange(rng, ckptPool, [
      "--checkpoint",
      "c.safetensors",
      pick(rng, ["--gt", "--dets"]),
      "x.json",
    ]);
    await check("--checkpoint with --gt or --dets", args, "--checkpoint excludes --gt and --dets");
    const needy = pick(rng, [["--data", "d"], ["--config", "c"], ["--backend", "cpu"], [
      "--store-thresholds",
    ]]);
    await check(
      "a flag that needs --checkpoint",
      arrange(rng, [["--gt", "g.json"], ["--dets", "d.json"], ...gtPool], needy),
      "--data, --config, --backend and --store-thresholds go with --checkpoint",
    );
    const gt = rng.int(2) === 0;
    const present = gt ? ["--dets", "d.json"] : ["--gt", "g.json"];
    const empty = rng.int(2) ? [] : [gt ? "--gt" : "--dets", ""];
    await check(
      "--gt or --dets missing (or empty)",
      arrange(rng, gtPool, [...present, ...empty]),
      gt ? "Missing --gt FILE" : "Missing --dets FILE",
    );
    const type = pick(rng, ["BBOX", "keypoints", "", "segm ", "mask"]);
    const mode = rng.int(2)
      ? [["--checkpoint", "c.safetensors"], ...ckptPool]
      : [["--gt", "g.json"], ["--dets", "d.json"], ...gtPool];
    await check(
      "an unknown --iou-type",
      arrange(rng, without(mode, "--iou-type"), ["--iou-type", type]),
      `Unknown --iou-type "${type}", expected bbox or segm`,
    );
    const both = rng.int(2)
      ? [["--checkpoint", "c.safetensors"], ...ckptPool]
      : [["--gt", "g.json"], ["--dets", "d.json"], ...gtPool];
    await check(
      "--out with --no-out",
      arrange(rng, without(both, "--out", "--no-out"), ["--out", "o", "--no-out"]),
      "--out and --no-out exclude each other",
    );
  }
});

Deno.test("fuzz cli: deno task detect", async () => {
  const rng = new Rng(53);
  const strings = [
    "checkpoint",
    "config",
    "out",
    "format",
    "score-thr",
    "top",
    "min-size",
    "backend",
  ];
  const pool = [
    ["--checkpoint", join(safeDir, "none.safetensors")],
    ["--config", "atss_tiny_shapes"],
    ["--out", SAFE_OUT],
    ["--format", "svg"],
    ["--score-thr", "0.5"],
    ["--top", "3"],
    ["--min-size", "0"],
    [join(safeDir, "a.png")],
  ];
  const required = [pool[0], pool[7]];
  const optional = pool.filter((g) => !required.includes(g));
  for (let i = 0; i < 4; i++) {
    for (const [cls, bad, message, last] of parseErrors(rng, strings, ["help"], true)) {
      const args = arrange(rng, without(pool, flagName(bad)), bad, last);
      const r = await run(detectMain, args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
      assert.equal(r.err, `${message}\n\n${DETECT_USAGE}`, args.join(" "));
      tally.add(`detect: ${cls}`);
    }
  }
  const usage =
    `brl detect: give --checkpoint, --format png|svg and at least one image\n\n${DETECT_USAGE}`;
  for (let i = 0; i < 12; i++) {
    const kind = i % 3;
    const args = kind === 0
      ? arrange(rng, [pool[7], ...optional], [])
      : kind === 1
      ? arrange(rng, [pool[0], ...optional], [])
      : arrange(rng, without(pool, "--format"), [
        "--format",
        pick(rng, ["jpg", "PNG", "", "svg ", "pdf"]),
      ]);
    const r = await run(detectMain, args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.equal(r.err, usage, args.join(" "));
    tally.add(`detect: ${["no --checkpoint", "no image", "an unknown --format"][kind]}`);
  }
  const numbers: [string, string[], string][] = [
    ["score-thr", ["", " ", "x", "1.5", "=-0.1", "NaN", "2", "Infinity"], "must be in [0, 1]"],
    ["top", BAD_INTEGERS, "must be an integer >= 1"],
    ["min-size", BAD_INTEGERS.filter((x) => x !== "0"), "must be an integer >= 0"],
  ];
  for (let i = 0; i < 24; i++) {
    const [flag, values, rule] = numbers[i % 3];
    const v = values[Math.floor(i / 3) % values.length]; // each value in turn
    const bad = v.startsWith("=") ? [`--${flag}${v}`] : [`--${flag}`, v];
    const args = arrange(
      rng,
      [...required, ...without(optional, `--${flag}`)].filter((g) =>
        required.includes(g) || rng.int(2)
      ),
      bad,
    );
    for (const g of required) if (!args.includes(g[0])) args.push(...g);
    const r = await run(detectMain, args);
    assert.equal(r.code, 1, `${args.join(" ")}: ${r.err}`);
    assert.equal(
      r.err,
      `brl detect: --${flag} ${rule}, got "${v.startsWith("=") ? v.slice(1) : v}"`,
      args.join(" "),
    );
    tally.add(`detect: --${flag} out of range`);
  }
  await Deno.remove(safeDir, { recursive: true });
  tally.report();
});
