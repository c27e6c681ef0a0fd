/**
 * PAA's anchor re-assignment (Kim & Lee, ECCV 2020) as mmdetection's `PAAHead.paa_reassign`
 * computes it, with the two-component 1-D Gaussian mixture that scikit-learn's `GaussianMixture`
 * fits there, reproduced operation by operation on the host.
 *
 * The contract, per ground truth (GT):
 *
 * 1. Candidates: on each pyramid level, the (at most) `topk = 9` first-stage positives of the GT
 *    with the smallest loss, ascending; the levels concatenated in level order.
 * 2. Fewer than 2 candidates: the GT is skipped and gets no positive.
 * 3. The candidates are sorted by loss, ascending and stable (ties keep candidate order).
 * 4. {@linkcode fitGmm2} fits the mixture to the sorted losses: weights `[0.5, 0.5]`, means
 *    `[min, max]`, precisions `[1, 1]`, diagonal covariance, `reg_covar = 1e-6`, `tol = 1e-3`,
 *    `max_iter = 100` (scikit-learn's defaults; mmdetection passes no others, so its `reg_covar`
 *    is 1e-6, not the 1e-5 one summary of the method gives; {@linkcode GmmOptions.regCovar}
 *    changes it; the official rank-based PAA head passes 1e-5, which the ranking losses of
 *    `paa_losses.ts` use). A float32 loss array is fitted with scikit-learn's float32
 *    arithmetic (see {@linkcode GmmOptions.arithmetic}).
 * 5. {@linkcode paaSeparate}: the component-0 ("fg") candidates up to the one with the highest
 *    log-likelihood (the first on a tie) are the positives; candidates of component 1 are never
 *    positives, even before that threshold.
 * 6. {@linkcode paaReassign}: every first-stage positive that is not a positive of its GT after
 *    step 5 becomes a negative.
 *
 * Where this departs from the reference:
 *
 * - Ties. torch's `sort` and `topk` leave the order of equal values undefined (on CPU `topk(1)`
 *   over nine equal scores returns index 7). Here every tie goes to the first index: stable sorts
 *   and the first maximum, as the original PAA code does.
 * - Ill-defined covariance. With float32 losses and a diagonal covariance, scikit-learn raises
 *   `ValueError` when a component collapses onto one large isolated loss (its variance, reg_covar
 *   plus the float32 rounding error of x², can come out negative). {@linkcode fitGmm2} does not
 *   throw: it refits the same losses in float64 (what scikit-learn returns for float64 data) and
 *   says so in {@linkcode Gmm2Fit.fallback}. A float64 fit that fails (a non-positive or
 *   non-finite variance; not seen in practice, since the `10 eps` added to each responsibility sum
 *   keeps a collapsed component's variance positive) throws a `RangeError`.
 *
 * Bad input throws a `RangeError`: NaN or infinite losses, unsorted losses where sorted ones are
 * required, fewer than two samples for {@linkcode fitGmm2}, or inconsistent indices. An empty (or
 * single) candidate set given to {@linkcode paaSelect} or {@linkcode paaReassign} is not an error:
 * the GT is skipped, as in mmdetection.
 *
 * Reference fixtures and how closely this matches them: `tests/fixtures/paa_gmm/README.md` and
 * `tests/detectors/paa_gmm_test.ts`.
 *
 * @module
 */

/** Which floating-point arithmetic the data follow (scikit-learn keeps float32 data float32). */
export type GmmArithmetic = "float32" | "float64";

/** scikit-learn's `covariance_type` (the two are the same model in one dimension). */
export type GmmCovariance = "diag" | "full";

/** One EM iteration, after its M-step (scikit-learn's state at the end of the iteration). */
export interface GmmIteration {
  /** 1-based iteration number. */
  iteration: number;
  /** Mixture weights after the M-step. */
  weights: [number, number];
  /** Component means after the M-step. */
  means: [number, number];
  /** Component variances after the M-step (reg_covar included). */
  variances: [number, number];
  /** Mean log-likelihood of the E-step that started this iteration (before its M-step). */
  lowerBound: number;
}

/** Options of {@linkcode fitGmm2}; the defaults are scikit-learn's and mmdetection's. */
export interface GmmOptions {
  /**
   * `"float32"` rounds to float32 exactly where scikit-learn (numpy) computes in float32 on
   * float32 data: x² in the E- and M-steps and the squared initial means of the first E-step;
   * everything else is float64, as there. Default: `"float32"` for a `Float32Array`, `"float64"`
   * for a `Float64Array` (a `Float64Array` with `"float32"` must hold float32 values).
   */
  arithmetic?: GmmArithmetic;
  /** `"diag"` (mmdetection's default) or `"full"` (the original PAA code). Default `"diag"`. */
  covariance?: GmmCovariance;
  /** Added to every variance. Default `1e-6`. */
  regCovar?: number;
  /** EM stops when the lower bound changes by less than this. Default `1e-3`. */
  tol?: number;
  /** At most this many EM iterations. Default `100`. */
  maxIter?: number;
  /** Called after each iteration's M-step (of the fit that is returned, and of a failed one). */
  onIteration?: (step: GmmIteration) => void;
}

/** A fitted two-component mixture and its verdict on the samples it was fitted to. */
export interface Gmm2Fit {
  /** Component means; component 0 started at the smallest loss, component 1 at the largest. */
  means: [number, number];
  /** Component variances (scikit-learn's `covariances_`, reg_covar included). */
  variances: [number, number];
  /** Mixture weights (sum to 1). */
  weights: [number, number];
  /** `1 / sqrt(variance)` per component (scikit-learn's `precisions_cholesky_`). */
  precisionsCholesky: [number, number];
  /** EM iterations run (scikit-learn's `n_iter_`; at least 2 when converged). */
  iterations: number;
  /** Whether the lower bound changed by less than `tol` within `maxIter` iterations. */
  converged: boolean;
  /** The lower bound that stopped EM (computed before the last M-step; `lower_bound_`). */
  lowerBound: number;
  /** Component of each sample (`predict`): 0 or 1, an exact tie going to 0. */
  labels: Uint8Array;
  /** Log-likelihood of each sample under the mixture (`score_samples`). */
  logLikelihoods: Float64Array;
  /** The arithmetic of the fit returned (float64 after a fallback). */
  arithmetic: GmmArithmetic;
  /** The covariance formula of the fit returned. */
  covariance: GmmCovariance;
  /**
   * `null`, or `"float64"` when the float32 fit had a non-positive variance (where scikit-learn
   * raises `ValueError`; or a non-finite one) and the fit returned is the float64 one of the same
   * losses.
   */
  fallback: null | "float64";
}

const LOG_2PI = Math.log(2 * Math.PI);
/** `10 * np.finfo(np.float64).eps`, added to each component's responsibility sum. */
const NK_EPS = 10 * 2.220446049250313e-16;

/**
 * Fits scikit-learn's two-component 1-D Gaussian mixture to ascending losses, initialised as
 * mmdetection's PAA head does (weights 0.5/0.5, means min/max, precisions 1), and reproduces
 * scikit-learn 1.2's arithmetic operation by operation: the E-step's
 * `mu²P - 2x(muP) + x²P` with `P = (1/sqrt(var))²`, scipy's max-shifted logsumexp, numpy's
 * pairwise sum for the mean log-likelihood, the responsibility sums row by row plus `10 eps`,
 * `np.dot` summed in the order of OpenBLAS's x86-64 kernels, the diagonal variance written as
 * `E[x²] - 2 mu E[x] + mu² + reg`, and float32 rounding where numpy keeps float32. On the
 * fixtures this is bit-identical to scikit-learn in 38 of 39 fits; what is left comes from
 * `Math.exp`/`Math.log`, which differ from glibc's in the last bit for about one argument in
 * 1,300 (a few 1e-15 relative on the parameters). Another BLAS, or numpy's AVX-512 exp/log, would
 * move the reference by as much. Throws a `RangeError` for fewer than 2 samples, a NaN or
 * infinite loss, or losses that are not ascending.
 *
 * @example Six losses, two clusters: the three small ones form component 0
 * ```ts
 * import { fitGmm2 } from "./paa_gmm.ts";
 * const fit = fitGmm2(new Float32Array([0.2, 0.25, 0.3, 1.4, 1.5, 1.6]));
 * console.log(Array.from(fit.labels)); // [0, 0, 0, 1, 1, 1]
 * console.log(fit.means[0].toFixed(3), fit.means[1].toFixed(3)); // "0.250 1.500"
 * console.log(fit.converged, fit.fallback); // true null
 * ```
 *
 * @param sortedLosses The losses, ascending (non-decreasing).
 * @param options Arithmetic, covariance formula and EM settings (scikit-learn's defaults).
 */
export function fitGmm2(
  sortedLosses: Float32Array | Float64Array,
  options: GmmOptions = {},
): Gmm2Fit {
  const n = sortedLosses.length;
  if (n < 2) throw new RangeError(`fitGmm2: needs at least 2 losses, got ${n}`);
  const arithmetic = options.arithmetic ??
    (sortedLosses instanceof Float32Array ? "float32" : "float64");
  const covariance = options.covariance ?? "diag";
  const settings: EmSettings = {
    regCovar: options.regCovar ?? 1e-6,
    tol: options.tol ?? 1e-3,
    maxIter: options.maxIter ?? 100,
    onIteration: options.onIteration,
  };
  if (
    !(settings.regCovar >= 0) || !(settings.tol >= 0) || !Number.isInteger(settings.maxIter) ||
    settings.maxIter < 1
  ) {
    throw new RangeError("fitGmm2: regCovar and tol must be >= 0 and maxIter >= 1");
  }
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = sortedLosses[i];
    if (!Number.isFinite(v)) throw new RangeError(`fitGmm2: loss ${i} is ${v}`);
    if (i > 0 && v < x[i - 1]) {
      throw new RangeError(`fitGmm2: losses must be ascending, but loss ${i} (${v}) < ${x[i - 1]}`);
    }
    if (arithmetic === "float32" && Math.fround(v) !== v) {
      throw new RangeError(`fitGmm2: float32 arithmetic, but loss ${i} (${v}) is not a float32`);
    }
    x[i] = v;
  }
  const first = runEm(x, arithmetic === "float32", covariance === "full", settings);
  if (first) return { ...first, arithmetic, covariance, fallback: null };
  if (arithmetic === "float32") {
    const f64 = runEm(x, false, covariance === "full", settings);
    if (f64) return { ...f64, arithmetic: "float64", covariance, fallback: "float64" };
  }
  throw new RangeError("fitGmm2: a component's variance is not positive and finite");
}

interface EmSettings {
  regCovar: number;
  tol: number;
  maxIter: number;
  onIteration?: (step: GmmIteration) => void;
}

type EmResult = Omit<Gmm2Fit, "arithmetic" | "covariance" | "fallback">;

/**
 * scikit-learn's EM on `x` (ascending, finite), or `null` where it would raise (a variance that
 * is not positive) or where a variance is not finite.
 */
function runEm(x: Float64Array, f32: boolean, full: boolean, s: EmSettings): EmResult | null {
  const n = x.length;
  // numpy: X * X stays float32 for float32 data.
  const xx = new Float64Array(n);
  for (let i = 0; i < n; i++) xx[i] = f32 ? Math.fround(x[i] * x[i]) : x[i] * x[i];
  const mean = [x[0], x[n - 1]], weight = [0.5, 0.5], prec = [1, 1], variance = [1, 1];
  const wlp0 = new Float64Array(n), wlp1 = new Float64Array(n), norm = new Float64Array(n);
  const resp0 = new Float64Array(n), resp1 = new Float64Array(n);
  const diff = new Float64Array(full ? n : 0), weighted = new Float64Array(full ? n : 0);

  // Weighted log-probabilities (_estimate_weighted_log_prob) into wlp0/wlp1, their logsumexp
  // into norm; returns the mean of norm (np.mean: pairwise sum / n).
  const eStep = (firstStep: boolean): number => {
    for (let k = 0; k < 2; k++) {
      const out = k === 0 ? wlp0 : wlp1;
      const mu = mean[k], pc = prec[k], logDet = Math.log(pc), logW = Math.log(weight[k]);
      if (full) {
        // y = X @ prec_chol - mu @ prec_chol; log_prob = y².
        const muPc = mu * pc;
        for (let i = 0; i < n; i++) {
          const y = x[i] * pc - muPc;
          out[i] = -0.5 * (LOG_2PI + y * y) + logDet + logW;
        }
      } else {
        // sum(mu² P) - 2 X @ (mu P) + X² @ P, with P = prec_chol²; the initial means are float32.
        const p = pc * pc;
        const muSq = firstStep && f32 ? Math.fround(mu * mu) : mu * mu;
        const a = muSq * p, b = mu * p;
        for (let i = 0; i < n; i++) {
          out[i] = -0.5 * (LOG_2PI + (a - 2 * (x[i] * b) + xx[i] * p)) + logDet + logW;
        }
      }
    }
    for (let i = 0; i < n; i++) {
      // scipy.special.logsumexp: shift by the (finite) maximum.
      let m = wlp0[i] >= wlp1[i] ? wlp0[i] : wlp1[i];
      if (!Number.isFinite(m)) m = 0;
      norm[i] = Math.log(Math.exp(wlp0[i] - m) + Math.exp(wlp1[i] - m)) + m;
    }
    return pairwiseSum(norm) / n;
  };

  // _m_step on exp(log_resp); false where scikit-learn raises (or a variance is not finite).
  const mStep = (): boolean => {
    const nk = [0, 0];
    for (let i = 0; i < n; i++) {
      resp0[i] = Math.exp(wlp0[i] - norm[i]);
      resp1[i] = Math.exp(wlp1[i] - norm[i]);
      nk[0] += resp0[i]; // resp.sum(axis=0): row by row
      nk[1] += resp1[i];
    }
    nk[0] += NK_EPS;
    nk[1] += NK_EPS;
    for (let k = 0; k < 2; k++) {
      const r = k === 0 ? resp0 : resp1;
      const sx = gemvRowDot(r, x); // np.dot(resp.T, X)[k]
      const mu = sx / nk[k];
      let v: number;
      if (full) {
        // np.dot(resp[:, k] * diff.T, diff) / nk[k] + reg
        for (let i = 0; i < n; i++) {
          diff[i] = x[i] - mu;
          weighted[i] = r[i] * diff[i];
        }
        v = ddot(weighted, diff) / nk[k] + s.regCovar;
      } else {
        // avg_X2 - 2 avg_X_means + avg_means2 + reg
        v = gemvRowDot(r, xx) / nk[k] - 2 * ((mu * sx) / nk[k]) + mu * mu + s.regCovar;
      }
      mean[k] = mu;
      variance[k] = v;
    }
    const total = nk[0] + nk[1];
    weight[0] = nk[0] / total;
    weight[1] = nk[1] / total;
    for (let k = 0; k < 2; k++) {
      if (!(variance[k] > 0) || !Number.isFinite(variance[k])) return false;
      prec[k] = 1 / Math.sqrt(variance[k]);
    }
    return true;
  };

  let lowerBound = -Infinity, iterations = 0, converged = false;
  for (let it = 1; it <= s.maxIter; it++) {
    const previous = lowerBound;
    lowerBound = eStep(it === 1);
    const ok = mStep();
    iterations = it;
    s.onIteration?.({
      iteration: it,
      weights: [weight[0], weight[1]],
      means: [mean[0], mean[1]],
      variances: [variance[0], variance[1]],
      lowerBound,
    });
    if (!ok) return null;
    if (Math.abs(lowerBound - previous) < s.tol) {
      converged = true;
      break;
    }
  }
  // predict / score_samples with the final parameters.
  eStep(false);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) labels[i] = wlp1[i] > wlp0[i] ? 1 : 0;
  return {
    means: [mean[0], mean[1]],
    variances: [variance[0], variance[1]],
    weights: [weight[0], weight[1]],
    precisionsCholesky: [prec[0], prec[1]],
    iterations,
    converged,
    lowerBound,
    labels,
    logLikelihoods: Float64Array.from(norm),
  };
}

/**
 * `Σ a_i x_i` in the order of OpenBLAS's `dgemv_n` kernel for a matrix of two rows, which is how
 * numpy's `np.dot(resp.T, X)` sums on the reference machine (OpenBLAS 0.3.21, x86-64): pairs of
 * products, added to the accumulator four columns at a time, then the rest one by one.
 */
function gemvRowDot(a: Float64Array, x: Float64Array): number {
  const n = a.length, n4 = n - (n % 4);
  let t = 0, i = 0;
  for (; i < n4; i += 4) {
    t += a[i] * x[i] + a[i + 1] * x[i + 1];
    t += a[i + 2] * x[i + 2] + a[i + 3] * x[i + 3];
  }
  for (; i < n; i++) t += a[i] * x[i];
  return t;
}

/**
 * `Σ x_i y_i` in the order of OpenBLAS's x86-64 (Haswell) `ddot` kernel, numpy's `np.dot` of a
 * row and a column: 16 lanes of fused multiply-adds over the first multiple of 16, reduced as
 * the AVX code does, then the rest one by one.
 */
function ddot(x: Float64Array, y: Float64Array): number {
  const n = x.length, n16 = n - (n % 16);
  let dot = 0;
  if (n16 > 0) {
    const acc = new Float64Array(16);
    for (let i = 0; i < n16; i += 16) {
      for (let l = 0; l < 16; l++) acc[l] = fma(x[i + l], y[i + l], acc[l]);
    }
    // Four registers of four lanes: each folds its upper half onto its lower one, the registers
    // are added as (0 + 1) + (2 + 3), and the two lanes last.
    const half = (r: number, l: number) => acc[4 * r + l] + acc[4 * r + l + 2];
    dot = ((half(0, 0) + half(1, 0)) + (half(2, 0) + half(3, 0))) +
      ((half(0, 1) + half(1, 1)) + (half(2, 1) + half(3, 1)));
  }
  for (let i = n16; i < n; i++) dot += y[i] * x[i];
  return dot;
}

/**
 * `a * b + c` with one rounding (a fused multiply-add), from Dekker's exact product and an
 * exact sum; correctly rounded except in vanishingly rare double-rounding cases.
 */
function fma(a: number, b: number, c: number): number {
  const p = a * b, s = p + c;
  if (!Number.isFinite(p) || !Number.isFinite(s)) return s;
  const SPLIT = 134217729; // 2^27 + 1
  let t = SPLIT * a;
  const ah = t - (t - a), al = a - ah;
  t = SPLIT * b;
  const bh = t - (t - b), bl = b - bh;
  const productError = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
  const back = s - p;
  const sumError = (p - (s - back)) + (c - back);
  return s + (sumError + productError);
}

/**
 * numpy's sum of a contiguous float64 array: plain below 8 elements, 8 interleaved partial sums
 * up to 128, halves (cut at a multiple of 8) above.
 *
 * @example Agrees with a plain sum where rounding does not matter
 * ```ts
 * import { pairwiseSum } from "./paa_gmm.ts";
 * console.log(pairwiseSum(Float64Array.from({ length: 200 }, (_, i) => i))); // 19900
 * ```
 */
export function pairwiseSum(a: Float64Array, start = 0, n = a.length - start): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[start + i];
    return res;
  }
  if (n <= 128) {
    const r = a.slice(start, start + 8);
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (let j = 0; j < 8; j++) r[j] += a[start + i + j];
    }
    let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[start + i];
    return res;
  }
  let half = Math.floor(n / 2);
  half -= half % 8;
  return pairwiseSum(a, start, half) + pairwiseSum(a, start + half, n - half);
}

/** Which sorted candidates {@linkcode paaSeparate} keeps. */
export interface PaaSeparation {
  /** 1 for a positive, over the sorted candidates. */
  positive: Uint8Array;
  /** Index among the component-0 candidates of the best-scoring one (the first on a tie), or
   * `null` when no candidate is in component 0. */
  thresholdIndex: number | null;
  /** Number of positives (`thresholdIndex + 1`, or 0). */
  numPositives: number;
}

/**
 * mmdetection's `gmm_separation_scheme`: over candidates sorted by loss, the positives are the
 * first `t + 1` candidates of component 0, where `t` indexes (among those) the one with the
 * highest log-likelihood, the first on a tie. Component-1 candidates are never positives, even
 * ahead of the threshold. Throws a `RangeError` for a label other than 0/1, a NaN score or
 * lengths that differ.
 *
 * @example The best fg candidate is the third fg one; the component-1 candidate before it stays out
 * ```ts
 * import { paaSeparate } from "./paa_gmm.ts";
 * const s = paaSeparate([0, 1, 0, 0, 0, 1], [-1.2, -3, 0.4, 0.9, 0.1, -2]);
 * console.log(Array.from(s.positive), s.thresholdIndex); // [1, 0, 1, 1, 0, 0] 2
 * ```
 *
 * @param labels Component of each sorted candidate (0 = fg).
 * @param logLikelihoods Mixture log-likelihood of each sorted candidate.
 */
export function paaSeparate(
  labels: ArrayLike<number>,
  logLikelihoods: ArrayLike<number>,
): PaaSeparation {
  const n = labels.length;
  if (logLikelihoods.length !== n) {
    throw new RangeError(`paaSeparate: ${n} labels but ${logLikelihoods.length} scores`);
  }
  let thresholdIndex: number | null = null, best = -Infinity, fg = 0;
  for (let i = 0; i < n; i++) {
    if (labels[i] !== 0 && labels[i] !== 1) {
      throw new RangeError(`paaSeparate: label ${i} is ${labels[i]}, not 0 or 1`);
    }
    if (Number.isNaN(logLikelihoods[i])) throw new RangeError(`paaSeparate: score ${i} is NaN`);
    if (labels[i] !== 0) continue;
    if (thresholdIndex === null || logLikelihoods[i] > best) {
      best = logLikelihoods[i];
      thresholdIndex = fg;
    }
    fg++;
  }
  const positive = new Uint8Array(n);
  const numPositives = thresholdIndex === null ? 0 : thresholdIndex + 1;
  for (let i = 0, kept = 0; i < n && kept < numPositives; i++) {
    if (labels[i] === 0) {
      positive[i] = 1;
      kept++;
    }
  }
  return { positive, thresholdIndex, numPositives };
}

/** What {@linkcode paaSelect} decides for one GT. */
export interface PaaSelection {
  /** `"skipped"` for fewer than 2 candidates (no positive, no fit), else `"fitted"`. */
  status: "skipped" | "fitted";
  /** Input position of each sorted candidate (stable ascending order of the losses). */
  order: Int32Array;
  /** The mixture fitted to the sorted losses, or `null` when skipped. */
  fit: Gmm2Fit | null;
  /** {@linkcode paaSeparate} on the fit (over sorted candidates); `null` when skipped. */
  separation: PaaSeparation | null;
  /** 1 for a positive, over the candidates in input order. */
  positive: Uint8Array;
  /** Number of positives. */
  numPositives: number;
}

/**
 * One GT's step of PAA after the per-level top-k: stable ascending sort of its candidates'
 * losses, {@linkcode fitGmm2}, {@linkcode paaSeparate}. Fewer than 2 candidates (none included)
 * skip the GT: no positive. Throws a `RangeError` for a NaN or infinite loss.
 *
 * @example The input order does not matter; the positives come back in input order
 * ```ts
 * import { paaSelect } from "./paa_gmm.ts";
 * const s = paaSelect(new Float32Array([1.5, 0.2, 1.4, 0.3, 1.6, 0.25]));
 * console.log(Array.from(s.order)); // [1, 5, 3, 2, 0, 4]
 * console.log(Array.from(s.positive)); // [0, 1, 0, 0, 0, 1]
 * console.log(paaSelect(new Float32Array([0.7])).status); // "skipped"
 * ```
 *
 * @param losses The GT's candidate losses (any order).
 * @param options Passed to {@linkcode fitGmm2} (the arithmetic follows the array type).
 */
export function paaSelect(
  losses: Float32Array | Float64Array,
  options: GmmOptions = {},
): PaaSelection {
  const n = losses.length;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(losses[i])) throw new RangeError(`paaSelect: loss ${i} is ${losses[i]}`);
  }
  const order = stableArgsort(losses);
  const positive = new Uint8Array(n);
  if (n < 2) {
    return { status: "skipped", order, fit: null, separation: null, positive, numPositives: 0 };
  }
  const sorted = losses instanceof Float32Array ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) sorted[i] = losses[order[i]];
  const fit = fitGmm2(sorted, options);
  const separation = paaSeparate(fit.labels, fit.logLikelihoods);
  for (let i = 0; i < n; i++) positive[order[i]] = separation.positive[i];
  return {
    status: "fitted",
    order,
    fit,
    separation,
    positive,
    numPositives: separation.numPositives,
  };
}

/** Positions of `values`, ascending by value, ties in position order. */
function stableArgsort(values: ArrayLike<number>): Int32Array {
  const order = Array.from({ length: values.length }, (_, i) => i);
  return Int32Array.from(order.sort((a, b) => values[a] - values[b] || a - b));
}

/** First-stage positives of one image, the input of {@linkcode paaReassign}. */
export interface PaaReassignInput {
  /** First-stage positive anchors (indices over the concatenated levels), strictly ascending. */
  posInds: ArrayLike<number>;
  /** The GT (0-based) of each first-stage positive. */
  posGtInds: ArrayLike<number>;
  /** The loss of each first-stage positive (PAA's cls + box score); a `Float32Array` is fitted
   * with float32 arithmetic, as mmdetection's float32 loss tensor is. */
  posLosses: Float32Array | Float64Array;
  /** Anchors on each level (the level of anchor `a` is where `a` falls in their prefix sums). */
  numAnchorsPerLevel: readonly number[];
  /** Candidates per GT and level. Default 9. */
  topk?: number;
  /** Number of GTs. Default `max(posGtInds) + 1`, as mmdetection. */
  numGt?: number;
}

/** One GT's share of {@linkcode paaReassign}'s result. */
export interface PaaGtResult {
  /** Candidate anchors: per level, the `topk` lowest losses, ascending; levels in order. */
  candidates: Int32Array;
  /** Their losses (same array type as `posLosses`). */
  candidateLosses: Float32Array | Float64Array;
  /** {@linkcode paaSelect} on `candidateLosses`. */
  selection: PaaSelection;
  /** The GT's positive anchors, in ascending loss order. */
  positives: Int32Array;
}

/** The re-assignment of one image. */
export interface PaaReassignResult {
  /** Per GT, 0 to `numGt - 1`. */
  perGt: PaaGtResult[];
  /** The positives after PAA, GT by GT (mmdetection's `pos_inds_after_paa`). */
  positives: Int32Array;
  /** First-stage positives that became negatives, ascending. */
  reassignedToNegative: Int32Array;
  /** `positives.length`. */
  numPositives: number;
}

/**
 * mmdetection's `PAAHead.paa_reassign` for one image: per GT, the per-level top-k candidates by
 * loss, {@linkcode paaSelect}, and every first-stage positive that is not kept becomes a negative
 * (background label, no box loss: the caller applies that). No first-stage positive gives an
 * empty result. Throws a `RangeError` for a NaN or infinite loss, `posInds` not strictly
 * ascending or outside the anchors, lengths that differ, or a GT index that is not an integer in
 * `[0, numGt)`.
 *
 * @example Two levels, one GT: of the three low losses (component 0), the one nearest their mean
 * (0.32) scores best, so it and the lower 0.3 stay positive; 0.4 and the high losses become negatives
 * ```ts
 * import { paaReassign } from "./paa_gmm.ts";
 * const r = paaReassign({
 *   posInds: [1, 3, 4, 6, 9, 10, 11],
 *   posGtInds: [0, 0, 0, 0, 0, 0, 0],
 *   posLosses: new Float32Array([0.3, 1.5, 0.4, 1.6, 0.32, 1.4, 1.45]),
 *   numAnchorsPerLevel: [8, 4],
 * });
 * console.log(Array.from(r.positives)); // [1, 9]
 * console.log(Array.from(r.reassignedToNegative)); // [3, 4, 6, 10, 11]
 * ```
 */
export function paaReassign(input: PaaReassignInput, options: GmmOptions = {}): PaaReassignResult {
  const { posInds, posGtInds, posLosses, numAnchorsPerLevel } = input;
  const topk = input.topk ?? 9;
  const p = posInds.length;
  if (posGtInds.length !== p || posLosses.length !== p) {
    throw new RangeError(
      `paaReassign: ${p} posInds, ${posGtInds.length} posGtInds, ${posLosses.length} posLosses`,
    );
  }
  if (!Number.isInteger(topk) || topk < 1) throw new RangeError(`paaReassign: topk ${topk}`);
  const bounds = [0];
  for (const count of numAnchorsPerLevel) {
    if (!Number.isInteger(count) || count < 0) {
      throw new RangeError(`paaReassign: level size ${count}`);
    }
    bounds.push(bounds[bounds.length - 1] + count);
  }
  let maxGt = -1;
  for (let i = 0; i < p; i++) {
    const a = posInds[i], g = posGtInds[i];
    if (!Number.isInteger(a) || a < 0 || a >= bounds[bounds.length - 1]) {
      throw new RangeError(`paaReassign: posInds[${i}] = ${a} is not an anchor`);
    }
    if (i > 0 && !(a > posInds[i - 1])) {
      throw new RangeError(`paaReassign: posInds must be strictly ascending (at ${i})`);
    }
    if (!Number.isInteger(g) || g < 0) throw new RangeError(`paaReassign: posGtInds[${i}] = ${g}`);
    if (!Number.isFinite(posLosses[i])) {
      throw new RangeError(`paaReassign: posLosses[${i}] is ${posLosses[i]}`);
    }
    maxGt = Math.max(maxGt, g);
  }
  const numGt = input.numGt ?? maxGt + 1;
  if (!Number.isInteger(numGt) || numGt <= maxGt) {
    throw new RangeError(`paaReassign: numGt ${numGt}, but a GT index is ${maxGt}`);
  }
  // Level of each first-stage positive (posInds ascending, so one sweep).
  const level = new Int32Array(p);
  for (let i = 0, l = 0; i < p; i++) {
    while (posInds[i] >= bounds[l + 1]) l++;
    level[i] = l;
  }
  const f32 = posLosses instanceof Float32Array;
  const perGt: PaaGtResult[] = [];
  const kept = new Set<number>();
  const positives: number[] = [];
  for (let g = 0; g < numGt; g++) {
    const chosen: number[] = [];
    for (let l = 0; l < numAnchorsPerLevel.length; l++) {
      const members: number[] = [];
      for (let i = 0; i < p; i++) if (posGtInds[i] === g && level[i] === l) members.push(i);
      members.sort((a, b) => posLosses[a] - posLosses[b] || a - b);
      chosen.push(...members.slice(0, topk));
    }
    const candidates = Int32Array.from(chosen, (i) => posInds[i]);
    const candidateLosses = f32 ? new Float32Array(chosen.length) : new Float64Array(chosen.length);
    chosen.forEach((i, c) => candidateLosses[c] = posLosses[i]);
    const selection = paaSelect(candidateLosses, options);
    const mine: number[] = [];
    for (const c of selection.order) {
      if (selection.positive[c]) {
        mine.push(candidates[c]);
        kept.add(candidates[c]);
      }
    }
    positives.push(...mine);
    perGt.push({ candidates, candidateLosses, selection, positives: Int32Array.from(mine) });
  }
  const reassigned: number[] = [];
  for (let i = 0; i < p; i++) if (!kept.has(posInds[i])) reassigned.push(posInds[i]);
  return {
    perGt,
    positives: Int32Array.from(positives),
    reassignedToNegative: Int32Array.from(reassigned),
    numPositives: positives.length,
  };
}
