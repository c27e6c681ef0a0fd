/**
 * Dependency-free SVG line charts: several named series of `(x, y)` points
 * on linear or log10 axes with nice ticks, a title, axis labels, a legend,
 * colours from {@linkcode PALETTE} and optional markers. Used for loss curves
 * ({@linkcode lossCurvesSvg}), precision–recall curves and benchmark plots.
 *
 * @module
 */

/** Ten distinct colours (the Tableau 10 set); series and classes cycle through them. */
export const PALETTE: readonly string[] = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

/** Axis scale. */
export type AxisScale = "linear" | "log";

/** One line of a chart. */
export interface ChartSeries {
  /** Legend text. */
  name: string;
  /** Points in drawing order; non-finite values (and values <= 0 on a log axis) break the line. */
  points: ReadonlyArray<readonly [number, number]>;
  /** Stroke colour; by default `PALETTE[index % 10]`. */
  color?: string;
  /** Draw a circle at each point (overrides the chart option). */
  markers?: boolean;
  /** Stroke width (default 1.5). */
  strokeWidth?: number;
  /** Stroke opacity in `[0, 1]` (default 1). */
  opacity?: number;
  /** SVG `stroke-dasharray`, e.g. `"4 3"`. */
  dash?: string;
  /** Leave the series out of the legend. */
  hideInLegend?: boolean;
}

/** Options of {@linkcode lineChartSvg}. */
export interface ChartOptions {
  /** Title above the plot. */
  title?: string;
  /** X axis label. */
  xLabel?: string;
  /** Y axis label. */
  yLabel?: string;
  /** X scale (default `"linear"`). */
  xScale?: AxisScale;
  /** Y scale (default `"linear"`). */
  yScale?: AxisScale;
  /** Fixed x range; by default the data's, widened to nice ticks on a linear axis. */
  xDomain?: readonly [number, number];
  /** Fixed y range; by default the data's, widened to nice ticks on a linear axis. */
  yDomain?: readonly [number, number];
  /** Total width in pixels (default 640). */
  width?: number;
  /** Total height in pixels (default 400). */
  height?: number;
  /** Markers on every series (default `false`). */
  markers?: boolean;
  /** Show the legend (default `true` when a series has a name). */
  legend?: boolean;
  /** About how many ticks per linear axis (default 6). */
  tickCount?: number;
  /** Prefix of element ids, unique per chart when several are inlined in one page (default `"chart"`). */
  id?: string;
}

/**
 * Escape text for SVG/XML content and attribute values.
 *
 * @example
 * ```ts
 * import { escapeXml } from "./svg_chart.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(escapeXml(`a<b & "c"`), "a&lt;b &amp; &quot;c&quot;");
 * ```
 *
 * @param s Text.
 * @returns Escaped text.
 */
export function escapeXml(s: string): string {
  return s.replace(
    /[<>&"']/g,
    (c) =>
      c === "<"
        ? "&lt;"
        : c === ">"
        ? "&gt;"
        : c === "&"
        ? "&amp;"
        : c === '"'
        ? "&quot;"
        : "&#39;",
  );
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * p;
}

function roundTo(v: number, step: number): number {
  const d = Math.max(0, Math.min(20, -Math.floor(Math.log10(step)) + 2));
  const r = Number(v.toFixed(d));
  return Object.is(r, -0) ? 0 : r;
}

/**
 * Evenly spaced round tick values (steps of 1, 2, 2.5 or 5 times a power of
 * ten) covering `[min, max]`: the first tick is at or below `min`, the last
 * at or above `max`. Equal ends are widened.
 *
 * @example
 * ```ts
 * import { niceTicks } from "./svg_chart.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
 * assert.deepEqual(niceTicks(0.13, 9.7, 5), [0, 2, 4, 6, 8, 10]);
 * ```
 *
 * @param min Low end.
 * @param max High end.
 * @param count About how many intervals (default 6).
 * @returns Increasing ticks.
 * @throws {RangeError} When an end is not finite or `min > max`.
 */
export function niceTicks(min: number, max: number, count = 6): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max) || min > max) {
    throw new RangeError(`Cannot make ticks for the range [${min}, ${max}]`);
  }
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad, max += pad;
  }
  const step = niceStep((max - min) / Math.max(1, count));
  const lo = Math.floor(min / step + 1e-9), hi = Math.ceil(max / step - 1e-9);
  const out: number[] = [];
  for (let k = lo; k <= hi; k++) out.push(roundTo(k * step, step));
  return out;
}

/**
 * Tick values for a log10 axis over `[min, max]` (both > 0): powers of ten
 * (every n-th decade when there are many), plus 2 and 5 times them when the
 * range spans fewer than three decades. The first tick is at or below `min`
 * and the last at or above `max`.
 *
 * @example
 * ```ts
 * import { logTicks } from "./svg_chart.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(logTicks(3, 2000), [1, 10, 100, 1000, 10000]);
 * assert.deepEqual(logTicks(1, 10), [1, 2, 5, 10]);
 * ```
 *
 * @param min Low end, > 0.
 * @param max High end.
 * @returns Increasing ticks.
 * @throws {RangeError} When `min <= 0`, an end is not finite, or `min > max`.
 */
export function logTicks(min: number, max: number): number[] {
  if (!(min > 0) || !Number.isFinite(min) || !Number.isFinite(max) || min > max) {
    throw new RangeError(`Cannot make log ticks for the range [${min}, ${max}]`);
  }
  let lo = Math.floor(Math.log10(min) + 1e-9), hi = Math.ceil(Math.log10(max) - 1e-9);
  if (hi === lo) hi++;
  const decades = hi - lo;
  const out: number[] = [];
  if (decades < 3) {
    for (let e = lo; e <= hi; e++) {
      for (const m of e === hi ? [1] : [1, 2, 5]) out.push(Number((m * 10 ** e).toPrecision(12)));
    }
    return out;
  }
  const every = Math.ceil(decades / 8);
  lo = Math.floor(lo / every) * every;
  hi = Math.ceil(hi / every) * every;
  for (let e = lo; e <= hi; e += every) out.push(Number((10 ** e).toPrecision(12)));
  return out;
}

/**
 * A function from data values to pixel positions.
 *
 * @example Log scale: each decade takes the same width
 * ```ts
 * import { makeScale } from "./svg_chart.ts";
 * import assert from "node:assert/strict";
 *
 * const x = makeScale("log", [1, 1000], [0, 300]);
 * assert.equal(x(10), 100);
 * assert.equal(x(100), 200);
 * const y = makeScale("linear", [0, 1], [400, 0]); // pixels grow downwards
 * assert.equal(y(0.25), 300);
 * ```
 *
 * @param scale `"linear"` or `"log"`.
 * @param domain Data range `[d0, d1]` (both > 0 for log), `d0 != d1`.
 * @param range Pixel range `[r0, r1]`: `d0` goes to `r0`, `d1` to `r1`.
 * @returns The mapping (log of a value <= 0 gives `NaN`).
 * @throws {RangeError} When the domain is empty or not positive on a log scale.
 */
export function makeScale(
  scale: AxisScale,
  domain: readonly [number, number],
  range: readonly [number, number],
): (v: number) => number {
  const f = scale === "log" ? (v: number) => (v > 0 ? Math.log10(v) : NaN) : (v: number) => v;
  const a = f(domain[0]), b = f(domain[1]);
  if (!Number.isFinite(a) || !Number.isFinite(b) || a === b) {
    throw new RangeError(`Cannot scale the ${scale} domain [${domain[0]}, ${domain[1]}]`);
  }
  const k = (range[1] - range[0]) / (b - a);
  return (v) => range[0] + (f(v) - a) * k;
}

/**
 * A tick value as short text: `"0.25"`, `"1000"`, `"1e5"`, `"2e-4"`.
 *
 * @example
 * ```ts
 * import { formatTick } from "./svg_chart.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([0.25, 1000, 100000, 0.0002, 0].map((v) => formatTick(v)), [
 *   "0.25", "1000", "1e5", "2e-4", "0",
 * ]);
 * ```
 *
 * @param v Value.
 * @returns Text.
 */
export function formatTick(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) {
    return v.toExponential().replace("e+", "e").replace(/\.?0+e/, "e");
  }
  return String(Number(v.toPrecision(6)));
}

/**
 * Trailing moving average: element `i` is the mean of the last `window`
 * values up to `i` (fewer at the start). Non-finite values are skipped.
 *
 * @example
 * ```ts
 * import { movingAverage } from "./svg_chart.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(movingAverage([1, 2, 3, 4, 5], 3), [1, 1.5, 2, 3, 4]);
 * ```
 *
 * @param values Series.
 * @param window Positive integer window.
 * @returns Averages, same length (`NaN` where the window holds no finite value).
 * @throws {RangeError} When `window` is not a positive integer.
 */
export function movingAverage(values: readonly number[], window: number): number[] {
  if (!Number.isInteger(window) || window < 1) {
    throw new RangeError(`Moving-average window ${window} is not a positive integer`);
  }
  const out: number[] = [];
  let sum = 0, n = 0;
  for (let i = 0; i < values.length; i++) {
    if (Number.isFinite(values[i])) sum += values[i], n++;
    const j = i - window;
    if (j >= 0 && Number.isFinite(values[j])) sum -= values[j], n--;
    out.push(n > 0 ? sum / n : NaN);
  }
  return out;
}

const px = (v: number) => String(Math.round(v * 100) / 100);

function dataRange(values: number[], scale: AxisScale): [number, number] | null {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v) || (scale === "log" && v <= 0)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : null;
}

function axis(
  scale: AxisScale,
  fixed: readonly [number, number] | undefined,
  values: number[],
  count: number,
): { domain: [number, number]; ticks: number[] } {
  if (fixed) {
    if (!(fixed[0] < fixed[1]) || (scale === "log" && !(fixed[0] > 0))) {
      throw new RangeError(`Chart domain [${fixed[0]}, ${fixed[1]}] is empty or not positive`);
    }
    const all = scale === "log"
      ? logTicks(fixed[0], fixed[1])
      : niceTicks(fixed[0], fixed[1], count);
    const eps = (fixed[1] - fixed[0]) * 1e-9;
    const ticks = all.filter((t) => t >= fixed[0] - eps && t <= fixed[1] + eps);
    return { domain: [fixed[0], fixed[1]], ticks };
  }
  const r = dataRange(values, scale) ?? (scale === "log" ? [1, 10] : [0, 1]);
  const ticks = scale === "log" ? logTicks(r[0], r[1]) : niceTicks(r[0], r[1], count);
  return { domain: [ticks[0], ticks[ticks.length - 1]], ticks };
}

/**
 * An SVG line chart of several series.
 *
 * @example Benchmark time against size on log-log axes
 * ```ts
 * import { lineChartSvg } from "./svg_chart.ts";
 * import assert from "node:assert/strict";
 *
 * const svg = lineChartSvg([
 *   { name: "gpu", points: [[100, 0.5], [1000, 0.9], [10000, 4]] },
 *   { name: "cpu", points: [[100, 0.1], [1000, 2], [10000, 150]] },
 * ], { title: "Loss time", xLabel: "N", yLabel: "ms", xScale: "log", yScale: "log", markers: true });
 * assert.ok(svg.startsWith("<svg"));
 * assert.equal(svg.match(/<polyline/g)?.length, 2);
 * ```
 *
 * @param series Lines to draw.
 * @param options Axes, labels and size.
 * @returns SVG text (a complete document).
 * @throws {RangeError} When a fixed domain is empty, or not positive on a log axis.
 */
export function lineChartSvg(series: readonly ChartSeries[], options: ChartOptions = {}): string {
  const W = options.width ?? 640, H = options.height ?? 400;
  const xs = options.xScale ?? "linear", ys = options.yScale ?? "linear";
  const count = options.tickCount ?? 6;
  const clipId = `${escapeXml(options.id ?? "chart")}-plot`;
  const legendNames = series.filter((s) => !s.hideInLegend && s.name).map((s) => s.name);
  const showLegend = (options.legend ?? true) && legendNames.length > 0;
  const legendW = showLegend
    ? Math.min(260, 36 + 7 * Math.max(...legendNames.map((n) => n.length)))
    : 0;
  const top = options.title ? 36 : 16;
  const left = options.yLabel ? 68 : 52;
  const bottom = options.xLabel ? 48 : 30;
  const right = 16 + legendW;
  const pw = Math.max(10, W - left - right), ph = Math.max(10, H - top - bottom);

  const xa = axis(xs, options.xDomain, series.flatMap((s) => s.points.map((p) => p[0])), count);
  const ya = axis(ys, options.yDomain, series.flatMap((s) => s.points.map((p) => p[1])), count);
  const sx = makeScale(xs, xa.domain, [left, left + pw]);
  const sy = makeScale(ys, ya.domain, [top + ph, top]);

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" ` +
    `viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
  ];
  if (options.title) {
    out.push(
      `<text x="${px(left + pw / 2)}" y="22" text-anchor="middle" font-size="14">` +
        `${escapeXml(options.title)}</text>`,
    );
  }
  out.push(`<g class="grid" stroke="#e6e6e6">`);
  for (const t of xa.ticks) {
    out.push(`<line x1="${px(sx(t))}" y1="${top}" x2="${px(sx(t))}" y2="${top + ph}"/>`);
  }
  for (const t of ya.ticks) {
    out.push(`<line x1="${left}" y1="${px(sy(t))}" x2="${left + pw}" y2="${px(sy(t))}"/>`);
  }
  out.push(`</g>`, `<g class="ticks" fill="#333">`);
  for (const t of xa.ticks) {
    out.push(
      `<text x="${px(sx(t))}" y="${top + ph + 16}" text-anchor="middle">${formatTick(t)}</text>`,
    );
  }
  for (const t of ya.ticks) {
    out.push(
      `<text x="${left - 6}" y="${px(sy(t) + 4)}" text-anchor="end">${formatTick(t)}</text>`,
    );
  }
  out.push(`</g>`);
  out.push(`<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  if (options.xLabel) {
    out.push(
      `<text x="${px(left + pw / 2)}" y="${H - 10}" text-anchor="middle">` +
        `${escapeXml(options.xLabel)}</text>`,
    );
  }
  if (options.yLabel) {
    const cy = px(top + ph / 2);
    out.push(
      `<text x="16" y="${cy}" text-anchor="middle" transform="rotate(-90 16 ${cy})">` +
        `${escapeXml(options.yLabel)}</text>`,
    );
  }

  // Data can only leave the frame when a domain is fixed; clip only then (some renderers,
  // such as ImageMagick's, mishandle clip paths).
  if (options.xDomain || options.yDomain) {
    out.push(
      `<defs><clipPath id="${clipId}"><rect x="${left}" y="${top}" width="${pw}" ` +
        `height="${ph}"/></clipPath></defs>`,
      `<g clip-path="url(#${clipId})">`,
    );
  } else out.push(`<g>`);
  let legendRow = 0;
  const legend: string[] = [];
  series.forEach((s, i) => {
    const color = escapeXml(s.color ?? PALETTE[i % PALETTE.length]);
    const style = `stroke="${color}" stroke-width="${s.strokeWidth ?? 1.5}"` +
      (s.opacity === undefined ? "" : ` stroke-opacity="${s.opacity}"`) +
      (s.dash ? ` stroke-dasharray="${escapeXml(s.dash)}"` : "");
    const runs: string[][] = [[]];
    const dots: string[] = [];
    for (const [x, y] of s.points) {
      const X = sx(x), Y = sy(y);
      if (!Number.isFinite(X) || !Number.isFinite(Y)) {
        if (runs[runs.length - 1].length) runs.push([]);
        continue;
      }
      runs[runs.length - 1].push(`${px(X)},${px(Y)}`);
      dots.push(`<circle cx="${px(X)}" cy="${px(Y)}" r="2.5"/>`);
    }
    out.push(`<g class="series" data-name="${escapeXml(s.name)}">`);
    for (const run of runs) {
      if (run.length > 1) out.push(`<polyline fill="none" ${style} points="${run.join(" ")}"/>`);
    }
    if ((s.markers ?? options.markers ?? false) || runs.every((r) => r.length <= 1)) {
      out.push(`<g fill="${color}">`, ...dots, `</g>`);
    }
    out.push(`</g>`);
    if (showLegend && !s.hideInLegend && s.name) {
      const ly = top + 10 + legendRow++ * 18;
      const lx = left + pw + 12;
      legend.push(
        `<line x1="${lx}" y1="${ly}" x2="${lx + 20}" y2="${ly}" ${style}/>`,
        `<text x="${lx + 26}" y="${ly + 4}">${escapeXml(s.name)}</text>`,
      );
    }
  });
  out.push(`</g>`);
  if (legend.length) out.push(`<g class="legend">`, ...legend, `</g>`);
  out.push("</svg>", "");
  return out.join("\n");
}

/** Options of {@linkcode lossCurvesSvg}. */
export interface LossCurveOptions extends Omit<ChartOptions, "xScale"> {
  /** Add a trailing moving average of this many points per field (raw lines fade). */
  smooth?: number;
}

/**
 * Loss curves from `metrics.jsonl` records: one series per field against
 * `step`, records without a finite number for a field skipped. With `smooth`,
 * each field gets a faded raw line and its moving average.
 *
 * @example
 * ```ts
 * import { lossCurvesSvg } from "./svg_chart.ts";
 * import assert from "node:assert/strict";
 *
 * const recs = [1, 2, 3, 4].map((step) => ({ step, loss_cls: 1 / step, loss_box: 2 / step }));
 * const svg = lossCurvesSvg(recs, ["loss_cls", "loss_box"], { smooth: 2 });
 * assert.equal(svg.match(/<polyline/g)?.length, 4);
 * assert.ok(svg.includes("loss_box (mean of 2)"));
 * ```
 *
 * @param records Parsed `metrics.jsonl` records.
 * @param fields Names of the values to plot.
 * @param options Chart options; title `"Training losses"`, labels `step` and `loss` by default.
 * @returns SVG text.
 */
export function lossCurvesSvg(
  records: ReadonlyArray<{ readonly step: number; readonly [k: string]: unknown }>,
  fields: readonly string[],
  options: LossCurveOptions = {},
): string {
  const series: ChartSeries[] = [];
  fields.forEach((f, i) => {
    const pts: [number, number][] = [];
    for (const r of records) {
      const v = r[f];
      if (typeof v === "number" && Number.isFinite(v) && Number.isFinite(r.step)) {
        pts.push([r.step, v]);
      }
    }
    const color = PALETTE[i % PALETTE.length];
    if (options.smooth && options.smooth > 1) {
      const avg = movingAverage(pts.map((p) => p[1]), options.smooth);
      series.push({
        name: f,
        points: pts,
        color,
        opacity: 0.3,
        strokeWidth: 1,
        hideInLegend: true,
      });
      series.push({
        name: `${f} (mean of ${options.smooth})`,
        points: pts.map((p, j) => [p[0], avg[j]]),
        color,
      });
    } else series.push({ name: f, points: pts, color });
  });
  return lineChartSvg(series, {
    title: "Training losses",
    xLabel: "step",
    yLabel: "loss",
    ...options,
  });
}
