/**
 * A progress reporter for long loops (training, evaluation, detection) on
 * stderr: on a terminal one line redrawn in place (`\r\x1b[K`, a bar,
 * `step/total`, custom fields, it/s and ETA) at most ~10 times a second;
 * otherwise (CI, a log file) a plain line every `logEvery` steps.
 *
 * @module
 */

/** Values shown after the counter: numbers are formatted by {@linkcode formatValue}. */
export type ProgressFields = Readonly<Record<string, number | string>>;

/** Options of {@linkcode Progress}. */
export interface ProgressOptions {
  /** Number of steps; the last step is `total`. */
  total: number;
  /** Text before the bar (e.g. `"train"`). */
  label?: string;
  /** Non-terminal output: a line when `step % logEvery === 0` and at `total` (default 50). */
  logEvery?: number;
  /** Redraw in place; default `Deno.stderr.isTerminal()`. */
  tty?: boolean;
  /** Where the text goes; default a synchronous write to stderr. */
  write?: (text: string) => void;
  /** Clock in milliseconds; default `performance.now`. */
  now?: () => number;
  /** Least time between two redraws on a terminal (default 100 ms). */
  minIntervalMs?: number;
  /** Bar width in characters (default 24). */
  barWidth?: number;
  /** Terminal width to cut lines at; default `Deno.consoleSize().columns` on a terminal. */
  columns?: number;
  /** Step the run starts from (when resuming): rates count steps after it (default 0). */
  startStep?: number;
}

/**
 * A duration in seconds as compact text: `"12s"`, `"3m05s"`, `"1h02m"`;
 * `"--"` for a negative or non-finite value.
 *
 * @example
 * ```ts
 * import { formatDuration } from "./progress.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatDuration(12.3), "12s");
 * assert.equal(formatDuration(185), "3m05s");
 * assert.equal(formatDuration(3720), "1h02m");
 * assert.equal(formatDuration(Infinity), "--");
 * ```
 *
 * @param seconds Duration.
 * @returns Text.
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  const m = Math.round(seconds / 60);
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/**
 * A field value as short text: integers as they are, other numbers with 4
 * significant digits, very small or large ones in exponent form.
 *
 * @example
 * ```ts
 * import { formatValue } from "./progress.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatValue(0.123456), "0.1235");
 * assert.equal(formatValue(0.0001), "1.00e-4");
 * assert.equal(formatValue(120), "120");
 * assert.equal(formatValue(NaN), "NaN");
 * ```
 *
 * @param v Number or text.
 * @returns Text.
 */
export function formatValue(v: number | string): string {
  if (typeof v === "string") return v;
  if (!Number.isFinite(v) || Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 1e5) return String(Number(v.toPrecision(4)));
  return v.toExponential(2).replace("e+", "e");
}

/**
 * Fields as `name=value` pairs separated by spaces.
 *
 * @example
 * ```ts
 * import { formatFields } from "./progress.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatFields({ loss: 0.51234, lr: 0.01 }), "loss=0.5123 lr=0.01");
 * ```
 *
 * @param fields Values.
 * @returns Text.
 */
export function formatFields(fields: ProgressFields): string {
  return Object.entries(fields).map(([k, v]) => `${k}=${formatValue(v)}`).join(" ");
}

function formatRate(stepsPerSecond: number): string {
  if (!Number.isFinite(stepsPerSecond) || stepsPerSecond <= 0) return "-- it/s";
  if (stepsPerSecond < 1) return `${formatValue(1 / stepsPerSecond)} s/it`;
  return `${stepsPerSecond.toFixed(stepsPerSecond < 100 ? 2 : 0)} it/s`;
}

const encoder = new TextEncoder();

/**
 * Writes `text` to stderr synchronously (all of it): the default output of
 * {@linkcode Progress} and of training's messages.
 *
 * @example
 * ```ts
 * import { writeStderr } from "./progress.ts";
 *
 * writeStderr("brl: starting\n");
 * ```
 *
 * @param text Text, written as UTF-8.
 */
export function writeStderr(text: string): void {
  const bytes = encoder.encode(text);
  for (let off = 0; off < bytes.length;) off += Deno.stderr.writeSync(bytes.subarray(off));
}

/**
 * The progress reporter. Call {@linkcode Progress.update} after each step,
 * {@linkcode Progress.log} for a message that should not be overdrawn, and
 * {@linkcode Progress.done} at the end.
 *
 * @example Plain lines with a fake clock
 * ```ts
 * import { Progress } from "./progress.ts";
 * import assert from "node:assert/strict";
 *
 * let t = 0, out = "";
 * const p = new Progress({
 *   total: 10, label: "train", logEvery: 5, tty: false,
 *   now: () => t, write: (s) => out += s,
 * });
 * for (let step = 1; step <= 10; step++) {
 *   t += 500; // two steps a second
 *   p.update(step, { loss: 1 / step });
 * }
 * assert.equal(
 *   out.split("\n")[0],
 *   "train 5/10 50% loss=0.2 | 2.00 it/s ETA 3s",
 * );
 * ```
 */
export class Progress {
  /** Number of steps. */
  readonly total: number;
  /** Text before the bar. */
  readonly label: string;
  /** Steps between plain lines. */
  readonly logEvery: number;
  /** Whether the line is redrawn in place. */
  readonly tty: boolean;
  #write: (text: string) => void;
  #now: () => number;
  #minInterval: number;
  #barWidth: number;
  #columns: number;
  #start: number;
  #startStep: number;
  #lastDraw = -Infinity;
  #step = 0;
  #fields: ProgressFields = {};
  #drawn = false;
  #finished = false;

  /**
   * Start the clock.
   *
   * @param options Total, label, output and clock.
   * @throws {RangeError} When `total`, `logEvery` or `startStep` is out of range.
   */
  constructor(options: ProgressOptions) {
    const { total } = options;
    if (!Number.isInteger(total) || total < 0) {
      throw new RangeError(`Progress total ${total} is not a non-negative integer`);
    }
    const logEvery = options.logEvery ?? 50;
    if (!Number.isInteger(logEvery) || logEvery < 1) {
      throw new RangeError(`Progress logEvery ${logEvery} is not a positive integer`);
    }
    const startStep = options.startStep ?? 0;
    if (!Number.isInteger(startStep) || startStep < 0 || startStep > total) {
      throw new RangeError(`Progress startStep ${startStep} is outside [0, ${total}]`);
    }
    this.total = total;
    this.label = options.label ?? "";
    this.logEvery = logEvery;
    this.tty = options.tty ?? Deno.stderr.isTerminal();
    this.#write = options.write ?? writeStderr;
    this.#now = options.now ?? (() => performance.now());
    this.#minInterval = options.minIntervalMs ?? 100;
    this.#barWidth = options.barWidth ?? 24;
    let columns = options.columns;
    if (columns === undefined && this.tty && options.write === undefined) {
      try {
        columns = Deno.consoleSize().columns;
      } catch {
        columns = undefined;
      }
    }
    this.#columns = columns ?? Infinity;
    this.#start = this.#now();
    this.#startStep = startStep;
    this.#step = startStep;
  }

  /** Steps per second since the start (or since `startStep`). */
  get rate(): number {
    const dt = (this.#now() - this.#start) / 1000;
    return dt > 0 ? (this.#step - this.#startStep) / dt : NaN;
  }

  /** Seconds left at the current rate (`NaN` before the first timed step). */
  get eta(): number {
    const r = this.rate;
    return r > 0 ? (this.total - this.#step) / r : NaN;
  }

  /**
   * The status text for the current step, without control characters.
   *
   * @returns E.g. `train [######------] 5/10 50% loss=0.2 | 2.00 it/s ETA 3s`.
   */
  line(): string {
    const { total } = this;
    const step = this.#step;
    const frac = total > 0 ? Math.min(1, step / total) : 1;
    const pct = `${Math.floor(frac * 100)}%`;
    const parts: string[] = [];
    if (this.label) parts.push(this.label);
    if (this.tty && this.#barWidth > 0) {
      const full = Math.round(frac * this.#barWidth);
      parts.push(`[${"#".repeat(full)}${"-".repeat(this.#barWidth - full)}]`);
    }
    parts.push(`${step}/${total}`, pct);
    const f = formatFields(this.#fields);
    if (f) parts.push(f);
    const time = step >= total
      ? `${formatRate(this.rate)} in ${formatDuration((this.#now() - this.#start) / 1000)}`
      : `${formatRate(this.rate)} ETA ${formatDuration(this.eta)}`;
    parts.push("|", time);
    return parts.join(" ");
  }

  #draw(): void {
    let text = this.line();
    if (text.length > this.#columns - 1) text = text.slice(0, Math.max(0, this.#columns - 1));
    this.#write(`\r\x1b[K${text}`);
    this.#drawn = true;
    this.#lastDraw = this.#now();
  }

  /**
   * Record that `step` steps are done, with the fields to show. On a terminal
   * the line is redrawn when `minIntervalMs` has passed (and always at
   * `total`); otherwise a line is written when `step` is a multiple of
   * `logEvery` or equals `total`.
   *
   * @param step Steps done so far (1 after the first step).
   * @param fields Values to show (losses, learning rate); they persist until replaced.
   * @throws {RangeError} When `step` is not an integer in `[0, total]`.
   */
  update(step: number, fields?: ProgressFields): void {
    if (!Number.isInteger(step) || step < 0 || step > this.total) {
      throw new RangeError(`Progress step ${step} is outside [0, ${this.total}]`);
    }
    this.#step = step;
    if (fields) this.#fields = fields;
    if (this.tty) {
      if (step === this.total || this.#now() - this.#lastDraw >= this.#minInterval) this.#draw();
    } else if (step > this.#startStep && (step % this.logEvery === 0 || step === this.total)) {
      this.#write(`${this.line()}\n`);
    }
  }

  /**
   * Print a message on its own line without breaking the progress line: on a
   * terminal the line is cleared, the message written and the line redrawn.
   *
   * @param message Text (no trailing newline needed).
   */
  log(message: string): void {
    if (this.tty && this.#drawn) {
      this.#write(`\r\x1b[K${message}\n`);
      this.#draw();
    } else this.#write(`${message}\n`);
  }

  /**
   * Finish: on a terminal draw the final state and end the line; otherwise
   * write the final line unless the last update already did. Idempotent.
   *
   * @param fields Final values to show.
   */
  done(fields?: ProgressFields): void {
    if (this.#finished) return;
    this.#finished = true;
    if (fields) this.#fields = fields;
    const step = this.#step;
    if (this.tty) {
      this.#draw();
      this.#write("\n");
    } else if (
      fields || !(step > this.#startStep && (step % this.logEvery === 0 || step === this.total))
    ) this.#write(`${this.line()}\n`);
  }
}
