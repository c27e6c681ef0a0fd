// Shared by the tests of the task entry points.

/** What a task's `main` returned and printed. */
export interface CliRun {
  /** Exit code. */
  code: number;
  /** stdout, one `console.log` call per line. */
  out: string;
  /** stderr, one `console.error` call per line. */
  err: string;
}

/**
 * Runs a task's `main(args)` in this process with `console.log` and
 * `console.error` captured (restored afterwards). `wrap` runs the call, e.g.
 * under a time budget.
 */
export async function runCli(
  main: (args: string[]) => Promise<number>,
  args: string[],
  wrap: (call: () => Promise<number>) => Promise<number> = (call) => call(),
): Promise<CliRun> {
  const out: string[] = [], err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = await wrap(() => main(args));
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}
