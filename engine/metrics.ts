/**
 * `metrics.jsonl`: one JSON object per line, each with an integer `step` and
 * the values logged at that step (losses, learning rate, AP, timings). The
 * writer appends; the reader tolerates a torn last line (a crash mid-write);
 * {@linkcode truncateMetricsAfter} drops the lines after a checkpoint's step
 * when a run resumes. Non-finite numbers, which JSON cannot hold, are written
 * as the strings `"NaN"`, `"Infinity"` and `"-Infinity"` and read back as numbers.
 *
 * @module
 */

import { ensureDir, writeFileAtomic } from "./files.ts";

/** One line of `metrics.jsonl`. */
export interface MetricRecord {
  /** Training step (or epoch, for per-epoch logs). */
  step: number;
  /** Logged values. */
  [field: string]: number | string | boolean | null;
}

const NONFINITE: Record<string, number> = {
  NaN: NaN,
  Infinity: Infinity,
  "-Infinity": -Infinity,
};

function checkStep(step: unknown, where: string): asserts step is number {
  if (typeof step !== "number" || !Number.isInteger(step) || step < 0) {
    throw new RangeError(`${where}: step ${JSON.stringify(step)} is not a non-negative integer`);
  }
}

/**
 * One record as a JSON line (with the newline), `step` first.
 *
 * @example
 * ```ts
 * import { formatMetricLine } from "./metrics.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatMetricLine(3, { loss: 0.5, lr: NaN }), '{"step":3,"loss":0.5,"lr":"NaN"}\n');
 * ```
 *
 * @param step Non-negative integer step.
 * @param fields Values; a `step` key in them is ignored.
 * @returns The line.
 * @throws {RangeError} When `step` is not a non-negative integer.
 * @throws {TypeError} When a value is not a number, string, boolean or null.
 */
export function formatMetricLine(
  step: number,
  fields: Readonly<Record<string, number | string | boolean | null>>,
): string {
  checkStep(step, "Cannot write metrics");
  const rec: Record<string, number | string | boolean | null> = { step };
  for (const [k, v] of Object.entries(fields)) {
    if (k === "step") continue;
    if (typeof v === "number") rec[k] = Number.isFinite(v) ? v : String(v);
    else if (v === null || typeof v === "string" || typeof v === "boolean") rec[k] = v;
    else throw new TypeError(`Cannot write metric "${k}" at step ${step}: ${typeof v} value`);
  }
  return JSON.stringify(rec) + "\n";
}

/**
 * Parse `metrics.jsonl` text. Blank lines are skipped, and so is an
 * unparsable last line without a newline (a write cut short by a crash).
 *
 * @example
 * ```ts
 * import { parseMetrics } from "./metrics.ts";
 * import assert from "node:assert/strict";
 *
 * const recs = parseMetrics('{"step":1,"loss":2}\n{"step":2,"loss":"NaN"}\n{"step":3,"lo');
 * assert.equal(recs.length, 2);
 * assert.ok(Number.isNaN(recs[1].loss));
 * ```
 *
 * @param text File contents.
 * @param name File name for error messages.
 * @returns The records in file order.
 * @throws {SyntaxError} Naming the line when one is not a JSON object with an integer `step`.
 */
export function parseMetrics(text: string, name = "<memory>"): MetricRecord[] {
  return parseLines(text, name).map((l) => l.record);
}

function parseLines(text: string, name: string): { line: string; record: MetricRecord }[] {
  const lines = text.split("\n");
  const out: { line: string; record: MetricRecord }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      if (i === lines.length - 1) break; // torn tail
      throw new SyntaxError(`Cannot parse "${name}" line ${i + 1}: ${(e as Error).message}`);
    }
    if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
      throw new SyntaxError(`Cannot parse "${name}" line ${i + 1}: not a JSON object`);
    }
    const rec = obj as Record<string, unknown>;
    const step = rec.step;
    if (typeof step !== "number" || !Number.isInteger(step) || step < 0) {
      throw new SyntaxError(
        `Cannot parse "${name}" line ${i + 1}: step ${JSON.stringify(step)} is not an integer`,
      );
    }
    for (const [k, v] of Object.entries(rec)) {
      if (typeof v === "string" && v in NONFINITE) rec[k] = NONFINITE[v];
    }
    out.push({ line, record: rec as MetricRecord });
  }
  return out;
}

/**
 * Read a `metrics.jsonl` file; a missing file reads as no records.
 *
 * @example
 * ```ts ignore
 * const recs = await readMetrics("runs/atss_tiny/metrics.jsonl");
 * ```
 *
 * @param path File path.
 * @returns The records in file order.
 * @throws {SyntaxError} When a line does not parse.
 */
export async function readMetrics(path: string | URL): Promise<MetricRecord[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return parseMetrics(text, String(path));
}

/**
 * Keep only the records with `step <= step` (for resuming from a checkpoint
 * saved at `step`), rewriting the file atomically. Kept lines are copied as
 * they were; a torn last line is dropped. A missing file stays missing.
 *
 * @example
 * ```ts
 * import { readMetrics, truncateMetricsAfter } from "./metrics.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/metrics.jsonl`;
 * await Deno.writeTextFile(path, '{"step":10}\n{"step":20}\n{"step":30}\n');
 * assert.equal(await truncateMetricsAfter(path, 20), 2);
 * assert.deepEqual((await readMetrics(path)).map((r) => r.step), [10, 20]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param path File path.
 * @param step Last step to keep.
 * @returns The number of records kept.
 * @throws {RangeError} When `step` is not a non-negative integer.
 */
export async function truncateMetricsAfter(path: string, step: number): Promise<number> {
  checkStep(step, `Cannot truncate "${path}"`);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
  const kept = parseLines(text, path).filter((l) => l.record.step <= step).map((l) => l.line);
  await writeFileAtomic(path, kept.map((l) => l + "\n").join(""));
  return kept.length;
}

/**
 * Appends records to a `metrics.jsonl` file, one write per line. Open it
 * with {@linkcode MetricsWriter.open}; close it, or use `await using`.
 *
 * @example
 * ```ts
 * import { MetricsWriter, readMetrics } from "./metrics.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/run/metrics.jsonl`;
 * {
 *   await using w = await MetricsWriter.open(path);
 *   await w.append(1, { loss: 2.5 });
 *   await w.append(2, { loss: 2.0, lr: 0.01 });
 * }
 * assert.deepEqual(await readMetrics(path), [
 *   { step: 1, loss: 2.5 },
 *   { step: 2, loss: 2.0, lr: 0.01 },
 * ]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class MetricsWriter {
  /** The file path. */
  readonly path: string;
  #file: Deno.FsFile | null;

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  /**
   * Open (creating the folder and the file if needed) for appending.
   *
   * @param path File path.
   * @param options `resumeStep`: first drop the records after this step (see
   *   {@linkcode truncateMetricsAfter}); `truncate`: start the file empty.
   * @returns The writer.
   */
  static async open(
    path: string,
    options: { resumeStep?: number; truncate?: boolean } = {},
  ): Promise<MetricsWriter> {
    const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
    if (slash > 0) await ensureDir(path.slice(0, slash));
    if (options.truncate) await writeFileAtomic(path, "");
    else if (options.resumeStep !== undefined) await truncateMetricsAfter(path, options.resumeStep);
    const file = await Deno.open(path, { append: true, create: true });
    return new MetricsWriter(path, file);
  }

  /**
   * Append one record.
   *
   * @param step Non-negative integer step.
   * @param fields Values.
   * @throws {RangeError} When `step` is out of range.
   * @throws {TypeError} When the writer is closed or a value has the wrong type.
   */
  async append(
    step: number,
    fields: Readonly<Record<string, number | string | boolean | null>>,
  ): Promise<void> {
    const file = this.#file;
    if (!file) throw new TypeError(`Cannot append to "${this.path}": the writer is closed`);
    const bytes = new TextEncoder().encode(formatMetricLine(step, fields));
    for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
  }

  /** Close the file; later appends throw. Idempotent. */
  close(): void {
    this.#file?.close();
    this.#file = null;
  }

  /** Same as {@linkcode MetricsWriter.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}
