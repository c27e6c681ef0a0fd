/**
 * Normalisation layers over NCHW tensors: group normalisation and batch
 * normalisation (training with running statistics updated in place on the
 * device, evaluation with the running statistics), with hand-written
 * gradients.
 *
 * Statistics come from one kernel family, `norm.*`: the input is viewed as
 * `[a, r, b]`; each of the `r` statistic rows is reduced in chunks of
 * {@linkcode NORM_CHUNK} contiguous elements (two passes per chunk: mean,
 * then the sum of squared deviations), and the chunks are merged with Chan's
 * parallel update until one (count, mean, M2) triple per row is left. No
 * invocation loops more than a few hundred times, within llvmpipe's
 * per-invocation loop limit. `norm.apply` then computes
 * `(x - mean) * rstd * weight + bias` with one fused multiply-add per element,
 * each invocation handling a run of one channel plane. The backward pass is
 * one pass for the per-(sample, channel) sums of `g` and `g * xhat`
 * (`norm.grad_sums`), short `sum` reductions, and one pass for the input
 * gradient (`norm.grad_input`). Where the backend's profile says `reductions: "workgroup"`
 * (hardware adapters), group normalisation runs on the workgroup kernels of `group_norm_tree.ts`
 * instead: one launch forward, two backward.
 *
 * @module
 */

import { needsGrad, record } from "../autograd.ts";
import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { empty, sizeOf, type Tensor, viewOf } from "../tensor.ts";
import { map, mul, reluGrad } from "./elementwise.ts";
import { groupNormTree, groupNormTreeFits } from "./group_norm_tree.ts";
import { backendOf, expectDtype, launch, launchInto } from "./launch.ts";
import {
  type Layout,
  PER,
  PLANE_PARAMS,
  PLANE_WGSL,
  planeCpu,
  planeParams,
} from "./norm_planes.ts";
import { sum } from "./reduce.ts";

/** Elements one invocation reduces per statistics chunk. */
export const NORM_CHUNK = 256;
const MERGE_CHUNK = 1024;
const WG_STATS = 64;
const WG = 256;

const cached = kernelCache();

function momentsKernel(dtype: DType): Kernel {
  return cached(`moments|${dtype}`, () => ({
    label: "norm.moments",
    inputs: { x: dtype },
    outputs: { part: dtype },
    params: { a: "u32", r: "u32", b: "u32", chunk: "u32", nb: "u32" },
    workgroupSize: WG_STATS,
    code: `${entryPoint(WG_STATS)}
  let nchunks = p.a * p.nb;
  if (i >= p.r * nchunks) { return; }
  let r = i / nchunks;
  let rem = i % nchunks;
  let base = ((rem / p.nb) * p.r + r) * p.b;
  let start = min(p.b, (rem % p.nb) * p.chunk);
  let stop = min(p.b, start + p.chunk);
  var s = 0.0;
  for (var k = start; k < stop; k++) { s += x[base + k]; }
  let cnt = f32(stop - start);
  let mu = s / max(cnt, 1.0);
  var m2 = 0.0;
  for (var k = start; k < stop; k++) {
    let d = x[base + k] - mu;
    m2 += d * d;
  }
  part[3u * i] = cnt;
  part[3u * i + 1u] = mu;
  part[3u * i + 2u] = m2;
}`,
    cpu(ins, outs, p) {
      const { a, r: rows, b, chunk, nb } = p as Record<string, number>;
      const x = ins.x, part = outs.part;
      const nchunks = a * nb;
      for (let i = 0; i < rows * nchunks; i++) {
        const r = Math.floor(i / nchunks), rem = i % nchunks;
        const base = (Math.floor(rem / nb) * rows + r) * b;
        const start = Math.min(b, (rem % nb) * chunk), stop = Math.min(b, start + chunk);
        let s = 0;
        for (let k = start; k < stop; k++) s += x[base + k];
        const cnt = stop - start;
        const mu = s / Math.max(cnt, 1);
        let m2 = 0;
        for (let k = start; k < stop; k++) m2 += (x[base + k] - mu) ** 2;
        part[3 * i] = cnt;
        part[3 * i + 1] = mu;
        part[3 * i + 2] = m2;
      }
    },
  }));
}

function mergeKernel(dtype: DType): Kernel {
  return cached(`merge|${dtype}`, () => ({
    label: "norm.merge",
    inputs: { part: dtype },
    outputs: { out: dtype },
    params: { r: "u32", nin: "u32", nout: "u32", chunk: "u32" },
    workgroupSize: WG_STATS,
    code: `${entryPoint(WG_STATS)}
  if (i >= p.r * p.nout) { return; }
  let r = i / p.nout;
  let j = i % p.nout;
  let start = j * p.chunk;
  let stop = min(p.nin, start + p.chunk);
  var n = 0.0;
  var mu = 0.0;
  var m2 = 0.0;
  for (var k = start; k < stop; k++) {
    let at = (r * p.nin + k) * 3u;
    let nb = part[at];
    if (nb > 0.0) {
      let nt = n + nb;
      let d = part[at + 1u] - mu;
      mu = mu + d * (nb / nt);
      m2 = m2 + part[at + 2u] + d * d * (n * nb / nt);
      n = nt;
    }
  }
  out[3u * i] = n;
  out[3u * i + 1u] = mu;
  out[3u * i + 2u] = m2;
}`,
    cpu(ins, outs, p) {
      const { r: rows, nin, nout, chunk } = p as Record<string, number>;
      const part = ins.part, out = outs.out;
      for (let i = 0; i < rows * nout; i++) {
        const r = Math.floor(i / nout), j = i % nout;
        let n = 0, mu = 0, m2 = 0;
        for (let k = j * chunk; k < Math.min(nin, (j + 1) * chunk); k++) {
          const at = (r * nin + k) * 3;
          const nb = part[at];
          if (nb > 0) {
            const nt = n + nb, d = part[at + 1] - mu;
            mu += d * (nb / nt);
            m2 += part[at + 2] + d * d * (n * nb / nt);
            n = nt;
          }
        }
        out[3 * i] = n;
        out[3 * i + 1] = mu;
        out[3 * i + 2] = m2;
      }
    },
  }));
}

function finalizeKernel(dtype: DType): Kernel {
  return cached(`finalize|${dtype}`, () => ({
    label: "norm.finalize",
    inputs: { stats: dtype },
    outputs: { mean: dtype, rstd: dtype },
    params: { r: "u32", eps: "f32" },
    workgroupSize: WG_STATS,
    code: `${entryPoint(WG_STATS)}
  if (i >= p.r) { return; }
  let n = max(stats[3u * i], 1.0);
  mean[i] = stats[3u * i + 1u];
  rstd[i] = inverseSqrt(stats[3u * i + 2u] / n + p.eps);
}`,
    cpu(ins, outs, p) {
      const rows = p.r as number, eps = p.eps as number;
      const stats = ins.stats;
      for (let i = 0; i < rows; i++) {
        const n = Math.max(stats[3 * i], 1);
        outs.mean[i] = stats[3 * i + 1];
        outs.rstd[i] = 1 / Math.sqrt(stats[3 * i + 2] / n + eps);
      }
    },
  }));
}

function runningKernel(dtype: DType): Kernel {
  return cached(`running|${dtype}`, () => ({
    label: "norm.running_update",
    inputs: { stats: dtype },
    outputs: { running_mean: dtype, running_var: dtype },
    params: { r: "u32", momentum: "f32" },
    workgroupSize: WG_STATS,
    code: `${entryPoint(WG_STATS)}
  if (i >= p.r) { return; }
  let n = stats[3u * i];
  let unbiased = stats[3u * i + 2u] / max(n - 1.0, 1.0);
  running_mean[i] = (1.0 - p.momentum) * running_mean[i] + p.momentum * stats[3u * i + 1u];
  running_var[i] = (1.0 - p.momentum) * running_var[i] + p.momentum * unbiased;
}`,
    cpu(ins, outs, p) {
      const rows = p.r as number, m = p.momentum as number;
      const stats = ins.stats, rm = outs.running_mean, rv = outs.running_var;
      for (let i = 0; i < rows; i++) {
        const unbiased = stats[3 * i + 2] / Math.max(stats[3 * i] - 1, 1);
        rm[i] = (1 - m) * rm[i] + m * stats[3 * i + 1];
        rv[i] = (1 - m) * rv[i] + m * unbiased;
      }
    },
  }));
}

/** Elements of one channel plane a gradient-sum invocation reduces. */
const SUM_CHUNK = 256;

function applyKernel(dtype: DType): Kernel {
  return cached(`apply|${dtype}`, () => ({
    label: "norm.apply",
    inputs: { x: dtype, mean: dtype, rstd: dtype, w: dtype, b: dtype },
    outputs: { out: dtype },
    params: { ...PLANE_PARAMS, relu: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
${PLANE_WGSL}
  let mu = mean[r];
  var scale = rstd[r];
  var shift = 0.0;
  if (p.affine != 0u) {
    scale = scale * w[ch];
    shift = b[ch];
  }
  if (p.relu != 0u) {
    for (var k = base + start; k < base + stop; k++) { out[k] = max((x[k] - mu) * scale + shift, 0.0); }
  } else {
    for (var k = base + start; k < base + stop; k++) { out[k] = (x[k] - mu) * scale + shift; }
  }
}`,
    cpu(ins, outs, params) {
      const p = params as Record<string, number>;
      const { x, mean, rstd, w, b } = ins;
      const out = outs.out;
      for (let i = 0; i < p.planes * p.nch; i++) {
        const { base, start, stop, ch, r } = planeCpu(i, p);
        const mu = mean[r];
        const scale = p.affine ? rstd[r] * w[ch] : rstd[r], shift = p.affine ? b[ch] : 0;
        for (let k = base + start; k < base + stop; k++) {
          const v = (x[k] - mu) * scale + shift;
          out[k] = p.relu ? Math.max(v, 0) : v;
        }
      }
    },
  }));
}

function gradInputKernel(dtype: DType): Kernel {
  return cached(`grad_input|${dtype}`, () => ({
    label: "norm.grad_input",
    inputs: { g: dtype, x: dtype, mean: dtype, rstd: dtype, w: dtype, s1: dtype, s2: dtype },
    outputs: { dx: dtype },
    params: { ...PLANE_PARAMS, use_sums: "u32", inv_m: "f32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
${PLANE_WGSL}
  let mu = mean[r];
  let rs = rstd[r];
  var a = rs;
  if (p.affine != 0u) { a = rs * w[ch]; }
  var k2 = 0.0;
  var k0 = 0.0;
  if (p.use_sums != 0u) {
    k2 = rs * rs * s2[r] * p.inv_m;
    k0 = rs * s1[r] * p.inv_m;
  }
  for (var k = base + start; k < base + stop; k++) { dx[k] = a * g[k] - k2 * (x[k] - mu) - k0; }
}`,
    cpu(ins, outs, params) {
      const p = params as Record<string, number>;
      const { g, x, mean, rstd, w, s1, s2 } = ins;
      const dx = outs.dx;
      for (let i = 0; i < p.planes * p.nch; i++) {
        const { base, start, stop, ch, r } = planeCpu(i, p);
        const mu = mean[r], rs = rstd[r];
        const a = p.affine ? rs * w[ch] : rs;
        const k2 = p.use_sums ? rs * rs * s2[r] * p.inv_m : 0;
        const k0 = p.use_sums ? rs * s1[r] * p.inv_m : 0;
        for (let k = base + start; k < base + stop; k++) dx[k] = a * g[k] - k2 * (x[k] - mu) - k0;
      }
    },
  }));
}

/** Per-(plane, chunk) partial sums of `g` and `g * xhat`. */
function gradSumsKernel(dtype: DType): Kernel {
  return cached(`grad_sums|${dtype}`, () => ({
    label: "norm.grad_sums",
    inputs: { g: dtype, x: dtype, mean: dtype, rstd: dtype },
    outputs: { sg: dtype, sgx: dtype },
    params: PLANE_PARAMS,
    workgroupSize: WG_STATS,
    code: `${entryPoint(WG_STATS)}
${PLANE_WGSL}
  let mu = mean[r];
  let rs = rstd[r];
  var a = 0.0;
  var bx = 0.0;
  for (var k = base + start; k < base + stop; k++) {
    a += g[k];
    bx += g[k] * (x[k] - mu);
  }
  sg[i] = a;
  sgx[i] = bx * rs;
}`,
    cpu(ins, outs, params) {
      const p = params as Record<string, number>;
      const { g, x, mean, rstd } = ins;
      const { sg, sgx } = outs;
      for (let i = 0; i < p.planes * p.nch; i++) {
        const { base, start, stop, r } = planeCpu(i, p);
        const mu = mean[r];
        let a = 0, bx = 0;
        for (let k = base + start; k < base + stop; k++) {
          a += g[k];
          bx += g[k] * (x[k] - mu);
        }
        sg[i] = a;
        sgx[i] = bx * rstd[r];
      }
    },
  }));
}

/** (count, mean, M2) per statistics row of `x` viewed as `[a, r, b]`: a `[r * 3]` tensor. */
function moments(x: Tensor, a: number, r: number, b: number): Tensor {
  const dtype = x.dtype;
  const nb = Math.max(1, Math.ceil(b / NORM_CHUNK));
  let j = Math.max(1, a * nb);
  let part = launchInto(
    momentsKernel(dtype),
    [x],
    [r * j * 3],
    dtype,
    { a, r, b, chunk: NORM_CHUNK, nb },
    Math.ceil((r * j) / WG_STATS),
  );
  while (j > 1) {
    const next = Math.ceil(j / MERGE_CHUNK);
    const merged = launchInto(
      mergeKernel(dtype),
      [part],
      [r * next * 3],
      dtype,
      { r, nin: j, nout: next, chunk: MERGE_CHUNK },
      Math.ceil((r * next) / WG_STATS),
    );
    part.dispose();
    part = merged;
    j = next;
  }
  return part;
}

/** Mean and `1 / sqrt(var + eps)` (biased variance) from {@linkcode moments}. */
function finalize(stats: Tensor, r: number, eps: number): [Tensor, Tensor] {
  const backend = backendOf("norm.finalize", [stats]);
  const mean = empty([r], stats.dtype, backend);
  const rstd = empty([r], stats.dtype, backend);
  launch(finalizeKernel(stats.dtype), [stats], [mean, rstd], { r, eps }, Math.ceil(r / WG_STATS));
  return [mean, rstd];
}

function checkAffine(op: string, x: Tensor, c: number, t: Tensor | undefined, name: string) {
  if (!t) return;
  if (t.size !== c || t.rank !== 1) {
    throw new TypeError(
      `${op}: ${name} has shape [${t.shape.join(", ")}] but the input [${
        x.shape.join(", ")
      }] has ${c} channels`,
    );
  }
  if (t.dtype !== x.dtype) {
    throw new TypeError(`${op}: ${name} is ${t.dtype} but the input is ${x.dtype}`);
  }
}

/**
 * Normalises with per-row statistics and records the gradient. `statSums`
 * turns `[N, C]` per-channel sums into `[R]` statistic-row sums (null in
 * evaluation mode, where the statistics are constants).
 */
function normalize(
  op: string,
  x: Tensor,
  mean: Tensor,
  rstd: Tensor,
  weight: Tensor | undefined,
  bias: Tensor | undefined,
  layout: Layout,
  rows: number,
  statSums: ((perChannel: Tensor) => Tensor) | null,
  relu = false,
): Tensor {
  const { batch, c } = layout;
  const affine = weight && bias ? 1 : 0;
  const w = weight ?? mean, b = bias ?? mean;
  const apply = planeParams(layout, PER, affine);
  const out = launchInto(
    applyKernel(x.dtype),
    [x, mean, rstd, w, b],
    x.shape,
    x.dtype,
    { ...apply.params, relu: relu ? 1 : 0 },
    Math.ceil(apply.invocations / WG),
  );
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  if (!needsGrad(inputs)) {
    mean.dispose();
    rstd.dispose();
    return out;
  }
  record(op, inputs, [out], ([gOut]) => {
    let gw: Tensor | null = null, gb: Tensor | null = null, dx: Tensor | null = null;
    // Through the fused ReLU, the gradient flows where the output is positive.
    const g = relu ? reluGrad(gOut!, out) : gOut;
    // Sums of g and g * xhat per (sample, channel): one pass, then a short reduction.
    const sums = planeParams(layout, SUM_CHUNK, affine);
    const backend = backendOf(op, [g!, x]);
    const pg = empty([batch, c, sums.params.nch], x.dtype, backend);
    const pgx = empty([batch, c, sums.params.nch], x.dtype, backend);
    launch(
      gradSumsKernel(x.dtype),
      [g!, x, mean, rstd],
      [pg, pgx],
      sums.params,
      Math.ceil(sums.invocations / WG_STATS),
    );
    const sumG = sum(pg, 2), sumGx = sum(pgx, 2);
    pg.dispose();
    pgx.dispose();
    if (weight?.requiresGrad) gw = sum(sumGx, 0);
    if (bias?.requiresGrad) gb = sum(sumG, 0);
    if (x.requiresGrad) {
      let s1: Tensor = mean, s2: Tensor = mean;
      if (statSums) {
        const scaled = (t: Tensor) => (affine ? mul(t, w) : viewOf(t, t.shape));
        const a1 = scaled(sumG), a2 = scaled(sumGx);
        s1 = statSums(a1);
        s2 = statSums(a2);
        a1.dispose();
        a2.dispose();
      }
      const m = rows === 0 ? 1 : x.size / rows;
      dx = launchInto(
        gradInputKernel(x.dtype),
        [g!, x, mean, rstd, w, s1, s2],
        x.shape,
        x.dtype,
        { ...apply.params, use_sums: statSums ? 1 : 0, inv_m: 1 / m },
        Math.ceil(apply.invocations / WG),
      );
      if (statSums) {
        s1.dispose();
        s2.dispose();
      }
    }
    for (const t of [sumG, sumGx, mean, rstd]) t.dispose();
    if (relu) g!.dispose();
    return [dx, ...(weight ? [gw] : []), ...(bias ? [gb] : [])];
  });
  return out;
}

function channelsOf(op: string, x: Tensor): [number, number, number] {
  expectDtype(op, x, ["f32", "f64"]);
  if (x.rank < 2) {
    throw new TypeError(`${op}: expected [N, C, ...] but got [${x.shape.join(", ")}]`);
  }
  return [x.shape[0], x.shape[1], sizeOf(x.shape.slice(2))];
}

/**
 * Group normalisation of an `[N, C, ...]` tensor: each sample's channels are
 * split into `numGroups` groups, normalised by the group's mean and (biased)
 * variance, then scaled by `weight[c]` and shifted by `bias[c]`. With `{ relu: true }` a ReLU
 * follows, fused into the normalisation's launches (on the chunked kernels the backward pass
 * masks the gradient in one more launch; on the workgroup kernels of hardware adapters in none).
 *
 * @example
 * ```ts
 * import { groupNorm } from "./norm.ts";
 * import { tensor } from "../tensor.ts";
 * const x = tensor([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 2, 2]);
 * const y = groupNorm(x, 1);
 * console.log(y.shape); // [1, 2, 2, 2], mean 0 and variance ~1 per group
 * ```
 *
 * @param x Input `[N, C, ...]` (f32, or f64 on the CPU).
 * @param numGroups Number of groups; must divide `C`.
 * @param weight Optional per-channel scale `[C]` (requires `bias` too).
 * @param bias Optional per-channel shift `[C]`.
 * @param eps Added to the variance.
 * @param options `relu`: apply a ReLU to the result.
 * @returns A tensor of `x`'s shape.
 */
export function groupNorm(
  x: Tensor,
  numGroups: number,
  weight?: Tensor,
  bias?: Tensor,
  eps = 1e-5,
  options: ReluOption = {},
): Tensor {
  const [batch, c, hw] = channelsOf("groupNorm", x);
  if (!Number.isInteger(numGroups) || numGroups <= 0 || c % numGroups !== 0) {
    throw new RangeError(`groupNorm: ${numGroups} groups do not divide ${c} channels`);
  }
  if (!weight !== !bias) throw new TypeError("groupNorm: pass both weight and bias or neither");
  checkAffine("groupNorm", x, c, weight, "weight");
  checkAffine("groupNorm", x, c, bias, "bias");
  const rows = batch * numGroups;
  const cpg = c / numGroups;
  const layout = { batch, c, hw, gn: numGroups, cpg };
  const profile = x.backend.profile;
  if (profile.reductions === "workgroup" && groupNormTreeFits(layout, profile.loopBudget)) {
    return groupNormTree(x, layout, weight, bias, eps, options.relu);
  }
  const stats = moments(x, 1, rows, cpg * hw);
  const [mean, rstd] = finalize(stats, rows, eps);
  stats.dispose();
  const statSums = (perChannel: Tensor) => {
    const grouped = viewOf(perChannel, [rows, cpg]);
    const out = sum(grouped, 1);
    grouped.dispose();
    return out;
  };
  return normalize("groupNorm", x, mean, rstd, weight, bias, layout, rows, statSums, options.relu);
}

/** Whether a normalisation is followed by a ReLU ({@linkcode groupNorm}, the norm layers). */
export interface ReluOption {
  /** Apply a ReLU to the result; default false. */
  relu?: boolean;
}

/** Options of {@linkcode batchNorm}. */
export interface BatchNormOptions {
  /** Batch statistics (and a running-statistics update) when true; running statistics otherwise. */
  training: boolean;
  /** Weight of the new batch statistics in the running average; default 0.1. */
  momentum?: number;
  /** Added to the variance; default 1e-5. */
  eps?: number;
}

/**
 * Batch normalisation of an `[N, C, ...]` tensor. In training mode each
 * channel is normalised by its batch mean and biased variance, and
 * `runningMean` / `runningVar` are updated in place on the device
 * (`(1 - momentum) * running + momentum * batch`, unbiased variance), with no
 * readback. In evaluation mode the running statistics are used and no
 * gradient flows through them.
 *
 * @example
 * ```ts
 * import { batchNorm } from "./norm.ts";
 * import { tensor } from "../tensor.ts";
 * const x = tensor([1, 2, 3, 4], [2, 2, 1, 1]);
 * const rm = tensor([0, 0]), rv = tensor([1, 1]);
 * const w = tensor([1, 1]), b = tensor([0, 0]);
 * const y = batchNorm(x, rm, rv, w, b, { training: true });
 * console.log(await y.data()); // ~[-1, -1, 1, 1]
 * console.log(await rm.data()); // [0.2, 0.3]
 * ```
 *
 * @param x Input `[N, C, ...]`.
 * @param runningMean `[C]`, updated in place when training.
 * @param runningVar `[C]`, updated in place when training.
 * @param weight Per-channel scale `[C]`, or `undefined` (no affine transform).
 * @param bias Per-channel shift `[C]`, or `undefined`.
 * @param options `training`, `momentum`, `eps`.
 * @returns A tensor of `x`'s shape.
 */
export function batchNorm(
  x: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  weight: Tensor | undefined,
  bias: Tensor | undefined,
  options: BatchNormOptions,
): Tensor {
  const { training, momentum = 0.1, eps = 1e-5 } = options;
  const [batch, c, hw] = channelsOf("batchNorm", x);
  if (!weight !== !bias) throw new TypeError("batchNorm: pass both weight and bias or neither");
  checkAffine("batchNorm", x, c, weight, "weight");
  checkAffine("batchNorm", x, c, bias, "bias");
  checkAffine("batchNorm", x, c, runningMean, "runningMean");
  checkAffine("batchNorm", x, c, runningVar, "runningVar");
  if (!(momentum >= 0 && momentum <= 1)) {
    throw new RangeError(`batchNorm: momentum ${momentum} is outside [0, 1]`);
  }
  const layout = { batch, c, hw, gn: 0, cpg: 1 };
  if (!training) {
    const mean = viewOf(runningMean, [c]);
    const rstd = map({
      label: "norm.rstd",
      wgsl: "inverseSqrt(a + b)",
      cpu: (a, b) => 1 / Math.sqrt(a + b),
    }, [runningVar, eps]);
    return normalize("batchNorm", x, mean, rstd, weight, bias, layout, c, null);
  }
  const stats = moments(x, batch, c, hw);
  const [mean, rstd] = finalize(stats, c, eps);
  if (batch * hw > 0) {
    launch(
      runningKernel(x.dtype),
      [stats],
      [runningMean, runningVar],
      { r: c, momentum },
      Math.ceil(c / WG_STATS),
    );
  }
  stats.dispose();
  return normalize("batchNorm", x, mean, rstd, weight, bias, layout, c, (perChannel) => {
    const out = sum(perChannel, 0);
    return out;
  });
}
