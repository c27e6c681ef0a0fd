/**
 * Fuzzing `loadConfig` and `applyOverrides` (`engine/config.ts`): config files written to a
 * temporary folder — the built-in ATSS and Faster R-CNN configs with one field changed, broken
 * sources, modules that throw, odd default exports — and overrides of junk values.
 *
 * What must happen (loadConfig errors are TypeError, applyOverrides errors RangeError):
 * - a source cut inside its object literal → `Cannot load config "PATH": <the parser's reason>
 *   (at file://PATH:LINE:COL)`: the message says where.
 * - a module that throws on import → `Cannot load config "PATH": <its message>`; a file or name
 *   that does not exist → `Cannot load config "X": Module not found "URL".`.
 * - no default export, or one that is not an object with `model` and `train` → `Config "PATH"
 *   has no default export of a DetectorConfig`.
 * - one field set to a junk value or removed → `Config "PATH": FIELD is VALUE, expected WHAT`
 *   for the fields every config has (name; model.kind, loss, numClasses, backbone, pretrained;
 *   every train setting; data); a value the field allows (lr 0, flipProb 0, warmup 0, ...) →
 *   accepted, the config as written.
 * - an extra unknown field anywhere → accepted, the config as written.
 * - overrides: iters or batch not an integer >= 1 → `Override K must be an integer >= 1, got V`;
 *   a loss the kind does not train with → `Unknown loss "X" for a KIND detector: expected one of
 *   …`; a pretrained that is not a string → `Override pretrained must be a file name, got V`. The
 *   input config is never changed.
 * Each case must finish within the budget.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import ATSS_TINY_SHAPES from "../../configs/atss_tiny_shapes.ts";
import FASTER_RCNN_TINY_SHAPES from "../../configs/faster_rcnn_tiny_shapes.ts";
import { DETECTOR_LOSSES } from "../../detectors/build.ts";
import { applyOverrides, loadConfig } from "../../engine/config.ts";
import { clone, expectError, expectValue, JUNK, literal, pick, Rng, Tally } from "./mutators.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const tally = new Tally("config");
const BASES = [ATSS_TINY_SHAPES, FASTER_RCNN_TINY_SHAPES] as const;

/** A value as JavaScript source (JSON, plus NaN, ±Infinity and undefined). */
function source(v: unknown): string {
  if (typeof v === "number" && !Number.isFinite(v)) return String(v);
  if (v === undefined) return "undefined";
  if (Array.isArray(v)) return `[${v.map(source).join(", ")}]`;
  if (typeof v === "object" && v !== null) {
    return `{${
      Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${source(x)}`).join(", ")
    }}`;
  }
  return JSON.stringify(v);
}

/** A value as the messages show it. */
function show(v: unknown): string {
  if (v === undefined) return "missing";
  if (typeof v === "number") return String(v);
  return JSON.stringify(v) ?? String(v);
}

const isObj = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
const int = (min: number) => (v: unknown) => Number.isInteger(v) && (v as number) >= min;
const num = (min: number) => (v: unknown) =>
  typeof v === "number" && Number.isFinite(v) && v >= min;

/** The fields every config has, in the order they are checked: [path, valid?, expected]. */
function rules(config: Json): [string, (v: unknown) => boolean, string][] {
  const kinds = Object.keys(DETECTOR_LOSSES);
  const losses = (DETECTOR_LOSSES as Record<string, readonly string[]>)[config.model?.kind] ?? [];
  return [
    ["name", (v) => typeof v === "string" && v !== "", "a non-empty string"],
    ["model", isObj, "an object"],
    ["model.kind", (v) => kinds.includes(v as string), `one of ${kinds.join(", ")}`],
    [
      "model.loss",
      (v) => losses.includes(v as string),
      `one of ${losses.join(", ")} for a ${config.model?.kind} detector`,
    ],
    ["model.numClasses", int(1), "an integer >= 1"],
    ["model.backbone", isObj, "an object"],
    ["model.backbone.pretrained", (v) => v === undefined || typeof v === "string", "a file name"],
    ["train", isObj, "an object"],
    ...["batchSize", "iters", "shortSide", "maxSize", "checkpointEvery", "logEvery"].map((k) =>
      [`train.${k}`, int(1), "an integer >= 1"] as [string, (v: unknown) => boolean, string]
    ),
    ...["lr", "momentum", "weightDecay", "gamma", "flipProb"].map((k) =>
      [`train.${k}`, num(0), "a finite number >= 0"] as [string, (v: unknown) => boolean, string]
    ),
    ["train.flipProb", (v) => (v as number) <= 1, "a probability"],
    ["train.maxGradNorm", (v) => v === undefined || num(0)(v), "a finite number >= 0"],
    ["train.warmup", isObj, "an object"],
    ["train.warmup.iters", int(0), "an integer >= 0"],
    ["train.warmup.factor", num(0), "a finite number >= 0"],
    ["train.milestones", (v) => Array.isArray(v) && v.every(int(0)), "an array of integers >= 0"],
    ["data", isObj, "an object"],
    [
      "data.kind",
      (v) => v === "shapes" || v === "coco" || v === "lvis" || v === "cityscapes",
      `"shapes", "coco", "lvis" or "cityscapes"`,
    ],
    ...(config.data?.kind === "coco" || config.data?.kind === "lvis" ||
        config.data?.kind === "cityscapes"
      ? (config.data.kind === "cityscapes" ? ["root"] : [
        "trainJson",
        "trainImages",
        "valJson",
        "valImages",
      ]).map((k) =>
        [`data.${k}`, (v: unknown) => typeof v === "string" && v !== "", "a non-empty string"] as [
          string,
          (v: unknown) => boolean,
          string,
        ]
      )
      : [
        ...["train", "val", "size"].map((k) =>
          [`data.${k}`, int(1), "an integer >= 1"] as [string, (v: unknown) => boolean, string]
        ),
        ["data.seed", int(0), "an integer >= 0"] as [string, (v: unknown) => boolean, string],
      ]),
    [
      "data.repeatThreshold",
      (v) => v === undefined || (typeof v === "number" && v > 0 && v <= 1),
      "a number in (0, 1]",
    ],
  ];
}

function get(o: Json, path: string): unknown {
  return path.split(".").reduce((x, k) => (x === undefined || x === null ? undefined : x[k]), o);
}

function set(o: Json, path: string, v: unknown): void {
  const keys = path.split(".");
  const parent = keys.slice(0, -1).reduce((x, k) => x[k], o);
  if (v === undefined) delete parent[keys.at(-1)!];
  else parent[keys.at(-1)!] = v;
}

/** The first rule `config` breaks, as loadConfig words it, or null. */
function verdict(config: Json, path: string): string | null {
  if (!config.model || !config.train) {
    return `Config "${path}" has no default export of a DetectorConfig`;
  }
  for (const [field, ok, expected] of rules(config)) {
    const v = get(config, field);
    if (!ok(v)) return `Config "${path}": ${field} is ${show(v)}, expected ${expected}`;
  }
  return null;
}

/** Runs `fn` with a fresh temporary folder and a writer of config files into it. */
async function inTempDir(
  fn: (write: (text: string) => Promise<string>, dir: string) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "brl_fuzz_config_" });
  let files = 0;
  try {
    await fn(async (text) => {
      const path = join(dir, `config${files++}.ts`);
      await Deno.writeTextFile(path, text);
      return path;
    }, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("fuzz config: one field changed, extra fields", () =>
  inTempDir(async (write) => {
    const rng = new Rng(2024);
    for (const base of BASES) {
      const fields = rules(base).map(([f]) => f).filter((f, i, a) => a.indexOf(f) === i);
      for (let i = 0; i < 40; i++) {
        const config: Json = clone(base);
        const field = pick(rng, fields);
        const value = i % 5 === 4
          ? undefined
          : clone(pick(rng, [...JUNK, NaN, "100", 2.5, -3, 1e9]));
        if (
          field.split(".").length > 1 &&
          !isObj(get(config, field.split(".").slice(0, -1).join(".")))
        ) continue;
        set(config, field, value);
        const path = await write(`export default ${source(config)};\n`);
        const why = verdict(config, path);
        const what = `${path}: ${field} = ${show(value)}`;
        if (why === null) {
          assert.deepEqual(await expectValue(what, () => loadConfig(path)), config, what);
          tally.add("a field set to a value it allows (accepted)");
        } else {
          await expectError(what, () => loadConfig(path), TypeError, why);
          tally.add(value === undefined ? "a field removed" : "a field set to a junk value");
        }
      }
      for (let i = 0; i < 6; i++) {
        const config: Json = clone(base);
        const where = pick(rng, ["", "model", "model.backbone", "train", "train.warmup", "data"]);
        const target = where ? get(config, where) as Json : config;
        target[`extra_${i}`] = clone(pick(rng, [...JUNK, "x", { deep: [1] }]));
        const path = await write(`export default ${source(config)};\n`);
        assert.deepEqual(await expectValue(path, () => loadConfig(path)), config, path);
        tally.add("an extra unknown field (accepted)");
      }
      const coco = {
        kind: "coco",
        trainJson: "a.json",
        trainImages: "a",
        valJson: "b.json",
        valImages: "b",
      };
      for (let i = 0; i < 4; i++) {
        const config: Json = { ...clone(base), data: { ...coco } };
        const key = pick(rng, ["trainJson", "trainImages", "valJson", "valImages"]);
        const v = clone(pick(rng, [...JUNK, undefined]));
        if (v === undefined) delete config.data[key];
        else config.data[key] = v;
        const path = await write(`export default ${source(config)};\n`);
        const why = verdict(config, path);
        if (why === null) {
          assert.deepEqual(await expectValue(path, () => loadConfig(path)), config, path);
          tally.add("COCO data paths: a string (accepted)");
        } else {
          await expectError(path, () => loadConfig(path), TypeError, why);
          tally.add("COCO data paths: not a non-empty string");
        }
      }
      for (let i = 0; i < 3; i++) {
        const config: Json = { ...clone(base), data: { kind: "cityscapes", root: "cs" } };
        const v = clone(pick(rng, [...JUNK, undefined, "data/cityscapes"]));
        if (v === undefined) delete config.data.root;
        else config.data.root = v;
        const path = await write(`export default ${source(config)};\n`);
        const why = verdict(config, path);
        if (why === null) {
          assert.deepEqual(await expectValue(path, () => loadConfig(path)), config, path);
          tally.add("Cityscapes root: a string (accepted)");
        } else {
          await expectError(path, () => loadConfig(path), TypeError, why);
          tally.add("Cityscapes root: not a non-empty string");
        }
      }
    }
  }));

Deno.test("fuzz config: broken sources, modules that throw, odd default exports", () =>
  inTempDir(async (write, dir) => {
    const rng = new Rng(7);
    const text = `export default ${source(ATSS_TINY_SHAPES)};\n`;
    const opening = "export default {".length;
    const closing = text.lastIndexOf("}");
    for (let i = 0; i < 10; i++) {
      const path = await write(text.slice(0, opening + 1 + rng.int(closing - opening - 1)));
      const url = new URL(`file://${path}`).href;
      await expectError(
        path,
        () => loadConfig(path),
        TypeError,
        new RegExp(
          `^${literal(`Cannot load config "${path}": `)}.+ \\(at ${literal(url)}:\\d+:\\d+\\)$`,
        ),
      );
      tally.add("source cut inside the object literal (a syntax error, located)");
    }
    for (let i = 0; i < 6; i++) {
      const [body, message] = pick(rng, [
        [`throw new Error("config ${i} is broken");`, `config ${i} is broken`],
        [`throw new RangeError("bad range ${i}");`, `bad range ${i}`],
        [`export default undefinedName${i}.model;`, `undefinedName${i} is not defined`],
        [
          `const x = null; export default x.model${i};`,
          `Cannot read properties of null (reading 'model${i}')`,
        ],
      ]);
      const path = await write(`${body}\n`);
      await expectError(
        path,
        () => loadConfig(path),
        TypeError,
        `Cannot load config "${path}": ${message}`,
      );
      tally.add("a module that throws on import");
    }
    for (let i = 0; i < 4; i++) {
      const name = i % 2 ? join(dir, `missing${i}.ts`) : `no_such_config_${i}`;
      const url = i % 2
        ? new URL(`file://${name}`).href
        : new URL(`../../configs/${name}.ts`, import.meta.url).href;
      await expectError(
        name,
        () => loadConfig(name),
        TypeError,
        `Cannot load config "${name}": Module not found "${url}".`,
      );
      tally.add("a file or name that does not exist");
    }
    const defaults = [
      "export const config = {};",
      "export default 5;",
      'export default "atss_tiny_shapes";',
      "export default null;",
      "export default [];",
      "export default () => ({});",
      "export default {};",
      `export default ${source({ model: ATSS_TINY_SHAPES.model })};`,
      `export default ${source({ train: ATSS_TINY_SHAPES.train })};`,
      `export default ${source({ ...ATSS_TINY_SHAPES, model: null })};`,
    ];
    for (const body of defaults) {
      const path = await write(`${body}\n`);
      await expectError(
        path,
        () => loadConfig(path),
        TypeError,
        `Config "${path}" has no default export of a DetectorConfig`,
      );
      tally.add("no default export of a config");
    }
  }));

Deno.test("fuzz config: overrides", async () => {
  const rng = new Rng(11);
  {
    for (const base of BASES) {
      const snapshot = clone(base);
      for (let i = 0; i < 12; i++) {
        const key = pick(rng, ["iters", "batch"] as const);
        const v = pick(rng, [...JUNK, NaN, 2.5, -4, "3"]);
        await expectError(
          `${key} ${show(v)}`,
          () => applyOverrides(base, { [key]: v as number }),
          RangeError,
          `Override ${key} must be an integer >= 1, got ${show(v)}`,
        );
        tally.add("iters or batch not an integer >= 1");
      }
      const known = DETECTOR_LOSSES[base.model.kind];
      for (let i = 0; i < 8; i++) {
        let loss = pick(rng, [
          "BRS",
          "Rs",
          "focal",
          "ap",
          "bap",
          "",
          " brs",
          "brs ",
          "dice",
          "rank_sort",
          "__proto__",
          "constructor",
        ]);
        if (known.includes(loss)) loss = `${loss}_x`;
        await expectError(
          `loss ${loss}`,
          () => applyOverrides(base, { loss }),
          RangeError,
          `Unknown loss "${loss}" for a ${base.model.kind} detector: expected one of ${
            known.join(", ")
          }`,
        );
        tally.add("a loss the kind does not train with");
      }
      for (let i = 0; i < 4; i++) {
        const v = pick(rng, JUNK.filter((j) => typeof j !== "string"));
        await expectError(
          `pretrained ${show(v)}`,
          () => applyOverrides(base, { pretrained: v as string }),
          RangeError,
          `Override pretrained must be a file name, got ${show(v)}`,
        );
        tally.add("pretrained not a string");
      }
      assert.deepEqual(base, snapshot, "applyOverrides never changes its input");
    }
  }
  tally.report();
});
