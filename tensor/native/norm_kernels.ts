/**
 * The per-element `norm.*` kernels on the native backend (statistics, normalisation and the two
 * gradient passes) as loops over whole channel planes, instead of one decoded invocation per run
 * of 256 (`NORM_CHUNK`) or 8 elements. Each computes what its twin in `tensor/ops/norm.ts`
 * computes, in the same order except that sums run in several partial sums (`./sums.ts`). The
 * short per-row kernels (`norm.merge`, `norm.finalize`, `norm.running_update`) keep their twins.
 *
 * @module
 */

import type { CpuTwin } from "../kernel.ts";
import { sumRange, sumSquaredDeviations } from "./sums.ts";

type PlaneParams = Record<
  "planes" | "nch" | "per" | "hw" | "c" | "gn" | "cpg" | "affine" | "relu",
  number
>;

/** The statistics row of `plane` (sample, channel): its group, or the channel for batch norm. */
function rowOf(plane: number, p: PlaneParams): number {
  const ch = plane % p.c;
  return ((plane - ch) / p.c) * p.gn + Math.floor(ch / p.cpg);
}

/** `norm.moments`: (count, mean, M2) of each chunk of each statistics row of `x` as `[a, r, b]`. */
const moments: CpuTwin = (ins, outs, params) => {
  const { a, r: rows, b, chunk, nb } = params as Record<string, number>;
  const x = ins.x, part = outs.part;
  let at = 0;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < a; j++) {
      const base = (j * rows + r) * b;
      for (let q = 0; q < nb; q++, at += 3) {
        const start = base + Math.min(b, q * chunk);
        const stop = base + Math.min(b, Math.min(b, q * chunk) + chunk);
        const cnt = stop - start;
        const mu = sumRange(x, start, stop) / Math.max(cnt, 1);
        const m2 = sumSquaredDeviations(x, start, stop, mu);
        part[at] = cnt;
        part[at + 1] = mu;
        part[at + 2] = m2;
      }
    }
  }
};

/**
 * `norm.apply`: `(x - mean) * rstd * weight + bias` (then `max(·, 0)` with `relu`), one statistics
 * row and channel per plane.
 */
const apply: CpuTwin = (ins, outs, params) => {
  const p = params as PlaneParams;
  const { x, mean, rstd, w, b } = ins;
  const out = outs.out, hw = p.hw;
  for (let plane = 0; plane < p.planes; plane++) {
    const ch = plane % p.c, r = rowOf(plane, p);
    const mu = mean[r];
    const scale = p.affine ? rstd[r] * w[ch] : rstd[r], shift = p.affine ? b[ch] : 0;
    if (p.relu) {
      for (let k = plane * hw, end = k + hw; k < end; k++) {
        out[k] = Math.max((x[k] - mu) * scale + shift, 0);
      }
    } else {
      for (let k = plane * hw, end = k + hw; k < end; k++) out[k] = (x[k] - mu) * scale + shift;
    }
  }
};

/** `norm.grad_input`: `a * g - k2 * (x - mean) - k0` per plane, from the statistic-row sums. */
const gradInput: CpuTwin = (ins, outs, params) => {
  const p = params as PlaneParams & { use_sums: number; inv_m: number };
  const { g, x, mean, rstd, w, s1, s2 } = ins;
  const dx = outs.dx, hw = p.hw;
  for (let plane = 0; plane < p.planes; plane++) {
    const ch = plane % p.c, r = rowOf(plane, p);
    const mu = mean[r], rs = rstd[r];
    const a = p.affine ? rs * w[ch] : rs;
    const k2 = p.use_sums ? rs * rs * s2[r] * p.inv_m : 0;
    const k0 = p.use_sums ? rs * s1[r] * p.inv_m : 0;
    for (let k = plane * hw, end = k + hw; k < end; k++) dx[k] = a * g[k] - k2 * (x[k] - mu) - k0;
  }
};

/** `norm.grad_sums`: sums of `g` and `g * xhat` over each run of `per` elements of a plane. */
const gradSums: CpuTwin = (ins, outs, params) => {
  const p = params as PlaneParams;
  const { g, x, mean, rstd } = ins;
  const { sg, sgx } = outs;
  const { hw, per, nch } = p;
  let i = 0;
  for (let plane = 0; plane < p.planes; plane++) {
    const r = rowOf(plane, p), mu = mean[r], rs = rstd[r];
    const base = plane * hw;
    for (let q = 0; q < nch; q++, i++) {
      const start = base + Math.min(hw, q * per);
      const stop = base + Math.min(hw, Math.min(hw, q * per) + per);
      let a0 = 0, a1 = 0, b0 = 0, b1 = 0, k = start;
      for (; k + 1 < stop; k += 2) {
        const g0 = g[k], g1 = g[k + 1];
        a0 += g0;
        a1 += g1;
        b0 += g0 * (x[k] - mu);
        b1 += g1 * (x[k + 1] - mu);
      }
      if (k < stop) {
        a0 += g[k];
        b0 += g[k] * (x[k] - mu);
      }
      sg[i] = a0 + a1;
      sgx[i] = (b0 + b1) * rs;
    }
  }
};

/** Native replacements of the per-element `norm.*` twins, by kernel label. */
export const NORM_KERNELS: Readonly<Record<string, CpuTwin>> = {
  "norm.moments": moments,
  "norm.apply": apply,
  "norm.grad_input": gradInput,
  "norm.grad_sums": gradSums,
};
