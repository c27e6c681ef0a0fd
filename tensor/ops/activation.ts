/**
 * The error function and the exact (erf) GELU, with their gradients, as fused
 * `map.*` expressions (one dispatch each way).
 *
 * WGSL has no `erf`, so both sides evaluate the same approximation, the WGSL
 * in `f32` and its TypeScript twin in doubles:
 *
 * - `|x| < 1`: the Maclaurin series `erf(x) = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))`
 *   to `n = 11` (truncation below 1e-10);
 * - `z >= 1`: `erfc(z) = t * exp(P(t) - z^2)` with `t = 1 / (1 + z/2)` and `P`
 *   a degree-9 polynomial fitted by least squares to `log(erfc(z) / t) + z^2`
 *   on `z` in `[1, 12]` (error below 1e-9; `tests/fixtures/tensor/erfc_fit.py`
 *   refits it with mpmath).
 *
 * In `f32` both stay within about 1.3e-7 of the true `erf` (a few ulps), and
 * the `erfc` form keeps GELU's negative tail accurate in relative terms, where
 * `1 + erf(x / sqrt 2)` would cancel.
 *
 * @module
 */

import { record } from "../autograd.ts";
import type { Tensor } from "../tensor.ts";
import { map } from "./elementwise.ts";
import { expectDtype } from "./launch.ts";

/** Maclaurin coefficients of `erf(x) / x` in powers of `x^2`. */
const SERIES: readonly number[] = Array.from({ length: 12 }, (_, n) => {
  let factorial = 1;
  for (let k = 2; k <= n; k++) factorial *= k;
  return (2 / Math.sqrt(Math.PI)) * (-1) ** n / (factorial * (2 * n + 1));
});

/** `P(t)` of `erfc(z) = t * exp(P(t) - z^2)`, `t = 1 / (1 + z/2)`, lowest power first. */
const TAIL: readonly number[] = [
  -1.2655231169491865,
  1.00035511132189,
  0.3700380487828259,
  0.12272572242876598,
  -0.28180170180415176,
  0.4876729063056674,
  -1.4012726655638592,
  1.6681888446810438,
  -0.8678766798209621,
  0.16710680304165895,
];

const SQRT1_2 = Math.SQRT1_2;
/** `1 / sqrt(2 pi)`. */
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
/** `2 / sqrt(pi)`. */
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/** A WGSL float literal of `v` (always with a point or an exponent). */
function literal(v: number): string {
  const s = String(v);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** WGSL Horner form of `sum coeffs[k] * v^k` (`v` an expression). */
function hornerWgsl(coeffs: readonly number[], v: string): string {
  let s = literal(coeffs[coeffs.length - 1]);
  for (let k = coeffs.length - 2; k >= 0; k--) s = `${literal(coeffs[k])} + ${v} * (${s})`;
  return s;
}

function horner(coeffs: readonly number[], v: number): number {
  let s = coeffs[coeffs.length - 1];
  for (let k = coeffs.length - 2; k >= 0; k--) s = coeffs[k] + v * s;
  return s;
}

/** `erf(x)` for `|x| <= 1` from the series. */
function erfSeries(x: number): number {
  return x * horner(SERIES, x * x);
}

/** `erfc(z)` for `z >= 1` from the fitted tail. */
function erfcTail(z: number): number {
  const t = 1 / (1 + 0.5 * z);
  return t * Math.exp(horner(TAIL, t) - z * z);
}

/** `erfc(z)` for `z >= 0`, as the WGSL evaluates it. */
function erfcPositive(z: number): number {
  return z < 1 ? 1 - erfSeries(z) : erfcTail(z);
}

/** The error function as {@linkcode erf}'s kernel computes it, in doubles. */
function erfHost(x: number): number {
  const z = Math.abs(x);
  return z < 1 ? erfSeries(x) : Math.sign(x) * (1 - erfcTail(z));
}

/** The standard normal CDF `Phi(x) = erfc(-x / sqrt 2) / 2` as {@linkcode gelu}'s kernel has it. */
function normalCdf(x: number): number {
  const h = 0.5 * erfcPositive(Math.abs(x) * SQRT1_2);
  return x < 0 ? h : 1 - h;
}

/** `x * Phi(x)`, the exact GELU, as {@linkcode gelu}'s kernel computes it, in doubles. */
function geluHost(x: number): number {
  return x * normalCdf(x);
}

/** WGSL of `erf(v)` for `|v| <= 1` (the argument is clamped so the unused branch stays finite). */
function erfSeriesWgsl(v: string): string {
  const c = `clamp(${v}, -1.0, 1.0)`;
  return `${c} * (${hornerWgsl(SERIES, `${c} * ${c}`)})`;
}

/** WGSL of `erfc(z)` for `z >= 1` (`z` a non-negative expression). */
function erfcTailWgsl(z: string): string {
  const t = `(1.0 / (1.0 + 0.5 * ${z}))`;
  return `${t} * exp(${hornerWgsl(TAIL, t)} - ${z} * ${z})`;
}

/** WGSL of `erfc(z)` for a non-negative expression `z`. */
function erfcPositiveWgsl(z: string): string {
  return `select(${erfcTailWgsl(z)}, 1.0 - ${erfSeriesWgsl(z)}, ${z} < 1.0)`;
}

/** WGSL of `Phi(v)`: `|[v >= 0] - erfc(|v| / sqrt 2) / 2|` needs the erfc only once. */
function normalCdfWgsl(v: string): string {
  const h = `0.5 * (${erfcPositiveWgsl(`(abs(${v}) * ${literal(SQRT1_2)})`)})`;
  return `abs(select(0.0, 1.0, ${v} >= 0.0) - ${h})`;
}

const ERF = {
  label: "erf",
  wgsl: `select(sign(a) * (1.0 - ${erfcTailWgsl("abs(a)")}), ${erfSeriesWgsl("a")}, abs(a) < 1.0)`,
  cpu: erfHost,
};

const ERF_GRAD = {
  label: "erf_grad",
  wgsl: `a * ${literal(TWO_OVER_SQRT_PI)} * exp(-b * b)`,
  cpu: (a: number, b: number) => a * TWO_OVER_SQRT_PI * Math.exp(-b * b),
};

const GELU = { label: "gelu", wgsl: `a * ${normalCdfWgsl("a")}`, cpu: geluHost };

const GELU_GRAD = {
  label: "gelu_grad",
  wgsl: `a * (${normalCdfWgsl("b")} + b * ${literal(INV_SQRT_2PI)} * exp(-0.5 * b * b))`,
  cpu: (a: number, b: number) => a * (normalCdf(b) + b * INV_SQRT_2PI * Math.exp(-0.5 * b * b)),
};

/**
 * The error function `erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt`,
 * elementwise, accurate to a few `f32` ulps; gradient `2/sqrt(pi) * exp(-x^2)`.
 *
 * @example
 * ```ts
 * import { erf } from "./activation.ts";
 * import { tensor } from "../tensor.ts";
 * console.log(await erf(tensor([0, 0.5, -2])).data()); // ~[0, 0.5205, -0.9953]
 * ```
 *
 * @param x A float tensor.
 * @returns A tensor of `x`'s shape.
 */
export function erf(x: Tensor): Tensor {
  expectDtype("erf", x, ["f32", "f64"]);
  const out = map(ERF, [x]);
  record("erf", [x], [out], ([g]) => [map(ERF_GRAD, [g!, x])]);
  return out;
}

/**
 * The exact GELU `x * Phi(x) = x/2 * (1 + erf(x / sqrt 2))` elementwise,
 * PyTorch's default `F.gelu` (not the tanh approximation); gradient
 * `Phi(x) + x * phi(x)`. `Phi` is computed as `erfc(-x / sqrt 2) / 2`, so
 * large negative inputs keep their small values to relative precision.
 *
 * @example
 * ```ts
 * import { gelu } from "./activation.ts";
 * import { tensor } from "../tensor.ts";
 * console.log(await gelu(tensor([-1, 0, 1, 3])).data()); // ~[-0.1587, 0, 0.8413, 2.9960]
 * ```
 *
 * @param x A float tensor.
 * @returns A tensor of `x`'s shape.
 */
export function gelu(x: Tensor): Tensor {
  expectDtype("gelu", x, ["f32", "f64"]);
  const out = map(GELU, [x]);
  record("gelu", [x], [out], ([g]) => [map(GELU_GRAD, [g!, x])]);
  return out;
}
