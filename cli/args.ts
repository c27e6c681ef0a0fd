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
 * Reads a non-negative integer flag.
 *
 * @example
 * ```ts
 * import { positiveInt } from "./args.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(positiveInt("iters", "20"), 20);
 * assert.equal(positiveInt("iters", undefined), undefined);
 * assert.throws(() => positiveInt("iters", "-1"), RangeError);
 * ```
 *
 * @param name Flag name, without the dashes.
 * @param value The flag's text, if given.
 * @returns The number, or `undefined` when the flag is absent.
 * @throws {RangeError} When the text is not a non-negative integer.
 */
export function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(`--${name} must be a non-negative integer, got "${value}"`);
  }
  return n;
}
