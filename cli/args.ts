/**
 * Flag handling shared by the task entry points: a strict `parseArgs` call
 * that answers `--help` and bad flags with the usage text, and number flags.
 *
 * @module
 */

/**
 * Runs `parse` (a strict `parseArgs` call with a boolean `help` option). A
 * bad flag prints its message and `usage` to stderr and gives exit code 2;
 * `--help` prints `usage` and gives 0; otherwise the parsed flags come back.
 *
 * @example
 * ```ts
 * import { parseArgs } from "node:util";
 * import { parseFlags } from "./args.ts";
 * import assert from "node:assert/strict";
 *
 * const options = { n: { type: "string" }, help: { type: "boolean" } } as const;
 * const parse = (args: string[]) => () => parseArgs({ args, strict: true, options });
 * const parsed = parseFlags(parse(["--n", "3"]), "Usage: task --n N");
 * assert.equal(typeof parsed === "number" ? parsed : parsed.values.n, "3");
 * ```
 *
 * @param parse The `parseArgs` call.
 * @param usage Usage text.
 * @returns The parsed flags, or the exit code to return.
 */
export function parseFlags<T extends { values: { help?: boolean } }>(
  parse: () => T,
  usage: string,
): T | number {
  let parsed: T;
  try {
    parsed = parse();
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  if (parsed.values.help) {
    console.log(usage);
    return 0;
  }
  return parsed;
}

/**
 * Reads an integer flag of at least `min`.
 *
 * @example
 * ```ts
 * import { integerFlag } from "./args.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(integerFlag("iters", "20", 1), 20);
 * assert.equal(integerFlag("iters", undefined, 1), undefined);
 * assert.equal(integerFlag("seed", "0"), 0);
 * assert.throws(() => integerFlag("iters", "0", 1), /--iters must be an integer >= 1, got "0"/);
 * ```
 *
 * @param name Flag name, without the dashes.
 * @param value The flag's text, if given.
 * @param min The smallest value allowed; default 0.
 * @returns The number, or `undefined` when the flag is absent.
 * @throws {RangeError} When the text is not an integer of at least `min`.
 */
export function integerFlag(
  name: string,
  value: string | undefined,
  min = 0,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < min) {
    throw new RangeError(`--${name} must be an integer >= ${min}, got "${value}"`);
  }
  return n;
}
