import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { integerFlag, parseFlags } from "../../cli/args.ts";

const OPTIONS = { n: { type: "string" }, help: { type: "boolean", short: "h" } } as const;
const parse = (args: string[]) => () => parseArgs({ args, strict: true, options: OPTIONS });

/** Runs `fn` with console.log and console.error captured. */
function captured<T>(fn: () => T): { result: T; out: string; err: string } {
  const { log, error } = console;
  let out = "", err = "";
  console.log = (s: string) => void (out += s);
  console.error = (s: string) => void (err += s);
  try {
    return { result: fn(), out, err };
  } finally {
    Object.assign(console, { log, error });
  }
}

Deno.test("parseFlags() returns flags, 0 on --help and 2 on a bad flag", async (t) => {
  await t.step("flags", () => {
    const { result, out, err } = captured(() => parseFlags(parse(["--n", "3"]), "USAGE"));
    assert.notEqual(typeof result, "number");
    assert.equal((result as { values: { n?: string } }).values.n, "3");
    assert.equal(out + err, "");
  });
  await t.step("--help", () => {
    const { result, out, err } = captured(() => parseFlags(parse(["-h"]), "USAGE"));
    assert.equal(result, 0);
    assert.equal(out, "USAGE");
    assert.equal(err, "");
  });
  await t.step("bad flag", () => {
    const { result, out, err } = captured(() => parseFlags(parse(["--bogus"]), "USAGE"));
    assert.equal(result, 2);
    assert.equal(out, "");
    assert.match(err, /bogus[\s\S]*\n\nUSAGE$/);
  });
});

Deno.test("integerFlag() accepts integers of at least its minimum only", () => {
  assert.equal(integerFlag("seed", "0"), 0);
  assert.equal(integerFlag("iters", "12", 1), 12);
  assert.equal(integerFlag("iters", undefined, 1), undefined);
  for (const bad of ["-1", "1.5", "x", "NaN", "", " ", "0"]) {
    assert.throws(() => integerFlag("iters", bad, 1), {
      name: "RangeError",
      message: `--iters must be an integer >= 1, got "${bad}"`,
    });
  }
  assert.throws(() => integerFlag("seed", "-1"), /--seed must be an integer >= 0, got "-1"/);
});
