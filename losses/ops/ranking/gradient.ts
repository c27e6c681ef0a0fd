/**
 * Stage 6, gradient and totals: the error-driven gradient, then the loss values.
 *
 * Inputs: the sorted positives, the intervals of the bin stage, the per-positive quantities
 * `pd` and, for the sorting losses, the target order. Outputs: `grad` `[M]` and the two scalar
 * losses.
 *
 * After {@linkcode scatterGradient} every entry of `grad` is written once: each relevant
 * negative gets its interval's weight (ramp sums over the positives, `O(1)` per negative),
 * every other negative 0, each positive its share (over the positives with larger targets for
 * RS and BRS). After {@linkcode lossTotals} the ranking and sorting losses are the means of the
 * per-positive errors (NaN when the pass is not ok).
 *
 * @module
 */

import type { DType } from "../../../tensor/dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../../../tensor/kernel.ts";
import { launch } from "../../../tensor/ops/launch.ts";
import type { Tensor } from "../../../tensor/tensor.ts";
import { partitionPoint } from "../../reference/common.ts";
import { partitionPointWgsl, RampSums, rampWgsl } from "../prefix_kernels.ts";
import type { Bins } from "./bin.ts";
import { dominance, type TargetOrder } from "./dominance.ts";
import { NONE, overIntervals, overPositives, type Pipeline, rows, scan, WG } from "./pipeline.ts";
import type { SortedPositives } from "./sort.ts";

/** Entries each lane of the negative scatter writes (fewer, fuller workgroups). */
export const SCATTER_PER_LANE = 16;

const cached = kernelCache();

type P = Record<string, number>;

/** Writes the gradient of the loss (for an upstream gradient of 1) into `grad`. */
export function scatterGradient(
  ctx: Pipeline,
  logits: Tensor,
  { ps, py, pi }: SortedPositives,
  { ea, eb, imean, qid }: Bins,
  pd: Tensor,
  config: { bucketed: boolean; delta: number; order?: TargetOrder },
  grad: Tensor,
): void {
  const { f, m, lcap, pcap, alloc, info, grid } = ctx;
  const { delta, order } = config;
  const gw = scan(ctx, rows(ctx, "weights", ps, py, pd), 2, pcap);
  const wa = alloc(lcap + 1, f), wb = alloc(lcap + 1, f);
  overIntervals(
    ctx,
    intervalWeightsKernel(f, config.bucketed),
    [ps, gw, imean, ea, eb, info],
    [wa, wb],
    { grid, delta },
  );
  if (m > 0) {
    launch(
      scatterNegativesKernel(f),
      [logits, qid, wa, wb, info],
      [grad],
      { m },
      Math.ceil(m / (64 * SCATTER_PER_LANE)),
    );
  }
  const shares = order
    ? dominance(ctx, order, ps, "shares", rows(ctx, "shares", ps, py, pd), delta)
    : pd;
  overPositives(ctx, positiveGradKernel(f, order !== undefined), [pi, pd, shares, info], [grad]);
}

/** Writes the ranking and sorting losses. */
export function lossTotals(
  ctx: Pipeline,
  { ps, py }: SortedPositives,
  pd: Tensor,
  rankingLoss: Tensor,
  sortingLoss: Tensor,
): void {
  const gt = scan(ctx, rows(ctx, "totals", ps, py, pd), 2, ctx.pcap);
  launch(finalizeKernel(ctx.f), [gt, ctx.info], [rankingLoss, sortingLoss], { unused: 0 }, 1);
}

/**
 * Per interval `q`: the negatives' gradient is `(A_q + B_q s) / P`. Bucketed: `A_q = Σ_i
 * H(m_q - p_i) w_i`, `B_q = 0`, a ramp sum over the positives. Unbucketed: by the interval's
 * piece of `H(s - p_i)`: ones (`q <= ea_i`) add `w_i` to `A`; the ramp (`ea_i < q <= eb_i`)
 * adds `w_i (1/2 - p_i/(2δ))` to `A` and `w_i / (2δ)` to `B`; both sets of positives are
 * ranges, since `ea` and `eb` ascend. `gw`: prefix of the rows `ROWS.weights`.
 */
export function intervalWeightsKernel(f: DType, bucketed: boolean): Kernel {
  return cached(`weights|${f}|${bucketed}`, () => ({
    label: `rank_ops.interval_weights_${bucketed ? "bucketed" : "edges"}`,
    inputs: { ps: f, gw: f, imean: f, ea: "u32", eb: "u32", info: "u32" },
    outputs: { wa: f, wb: f },
    params: { grid: "u32", delta: "f32" },
    workgroupSize: WG,
    code: `${rampWgsl("pw", "ps", "gw", 2)}
${partitionPointWgsl("ea_below", "q: u32", "ea[mid] < q")}
${partitionPointWgsl("eb_below", "q: u32", "eb[mid] < q")}
${entryPoint(WG)}
  if (i >= p.grid || info[4] == 0u || info[0] == 0u) { return; }
  let np = info[0];
  let l = info[1];
  for (var q = i; q <= l; q += p.grid) {
    var a = 0.0;
    var b = 0.0;
    ${
      bucketed ? `a = pw_down(0u, np, imean[q], 0u);` : `let k1 = ea_below(0u, np, q);
    let k2 = eb_below(0u, np, q);
    a = pw_sum(k1, np, 0u);
    if (k1 > k2) {
      let c = pw_sum(k2, k1, 0u);
      a += 0.5 * c - pw_sum(k2, k1, 1u) / (2.0 * p.delta);
      b = c / (2.0 * p.delta);
    }`
    }
    wa[q] = a;
    wb[q] = b;
  }
}`,
    cpu(ins, outs, p) {
      const { delta } = p as P;
      const info = ins.info;
      if (info[4] === 0 || info[0] === 0) return;
      const np = info[0], l = info[1];
      const pw = new RampSums(ins.ps, ins.gw, 2, delta);
      const below = (e: ArrayLike<number>, q: number) => partitionPoint(0, np, (k) => e[k] < q);
      for (let q = 0; q <= l; q++) {
        let a = 0, b = 0;
        if (bucketed) a = pw.down(0, np, ins.imean[q], 0);
        else {
          const k1 = below(ins.ea, q), k2 = below(ins.eb, q);
          a = pw.sum(k1, np, 0);
          if (k1 > k2) {
            const c = pw.sum(k2, k1, 0);
            a += 0.5 * c - pw.sum(k2, k1, 1) / (2 * delta);
            b = c / (2 * delta);
          }
        }
        outs.wa[q] = a;
        outs.wb[q] = b;
      }
    },
  }));
}

/** Every entry: relevant negatives `(A_q + B_q s) / P` (interval `q` from the binning pass), others 0. */
export function scatterNegativesKernel(f: DType): Kernel {
  return cached(`scatter|${f}`, () => ({
    label: "rank_ops.scatter_negatives",
    inputs: { s: f, qid: "u32", wa: f, wb: f, info: "u32" },
    outputs: { grad: f },
    params: { m: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  // Workgroup b covers entries [b WG K, (b + 1) WG K); lane l takes every WG-th of them.
  let base = (i / WG) * WG * ${SCATTER_PER_LANE}u + i % WG;
  let np = info[0];
  let ok = info[4] != 0u && np > 0u;
  for (var k = 0u; k < ${SCATTER_PER_LANE}u; k++) {
    let at = base + k * WG;
    if (at >= p.m) { break; }
    var g = 0.0;
    if (ok) {
      let q = qid[at];
      if (q != ${NONE}u) { g = (wa[q] + wb[q] * s[at]) / f32(np); }
    }
    grad[at] = g;
  }
}`,
    cpu(ins, outs, p) {
      const { m } = p as P;
      const { s, qid, wa, wb, info } = ins;
      const grad = outs.grad;
      const np = info[0], ok = info[4] !== 0 && np > 0;
      for (let i = 0; i < m; i++) {
        const q = ok ? qid[i] : NONE;
        grad[i] = q !== NONE ? (wa[q] + wb[q] * s[i]) / np : 0;
      }
    },
  }));
}

/**
 * Positives' gradients: own term plus (sorting losses) `Σ_{y_i < y_k} H(p_i - p_k) share_k`
 * (`dom`, round `shares`), divided by `P`, written at their original indices.
 */
export function positiveGradKernel(f: DType, sorting: boolean): Kernel {
  return cached(`posgrad|${f}|${sorting}`, () => ({
    label: `rank_ops.positive_grad${sorting ? "_sorting" : ""}`,
    inputs: { pi: "u32", pd: f, dom: f, info: "u32" },
    outputs: { grad: f },
    params: { grid: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  let np = info[0];
  if (i >= p.grid || info[4] == 0u) { return; }
  for (var a = i; a < np; a += p.grid) {
    grad[pi[a]] = (pd[a * 8u + 4u]${sorting ? " + dom[a]" : ""}) / f32(np);
  }
}`,
    cpu(ins, outs) {
      const { pi, pd, dom, info } = ins;
      if (info[4] === 0) return;
      const np = info[0];
      for (let a = 0; a < np; a++) outs.grad[pi[a]] = (pd[a * 8 + 4] + (sorting ? dom[a] : 0)) / np;
    },
  }));
}

/** Loss values: means of the ranking and sorting values (`gt`: prefix of `ROWS.totals`; NaN when `P` is out of range). */
export function finalizeKernel(f: DType): Kernel {
  return cached(`final|${f}`, () => ({
    label: "rank_ops.finalize",
    inputs: { gt: f, info: "u32" },
    outputs: { lr: f, ls: f },
    params: { unused: "u32" },
    workgroupSize: 1,
    code: `${entryPoint(1)}
  if (i > 0u) { return; }
  let np = info[0];
  if (info[4] == 0u) {
    // A quiet NaN built from a runtime value: a constant expression evaluating to NaN is a
    // shader-creation error in WGSL (Tint rejects it; naga lets it through).
    let nan = bitcast<f32>(0x7fc00000u | info[4]);
    lr[0] = nan;
    ls[0] = nan;
    return;
  }
  if (np == 0u) {
    lr[0] = 0.0;
    ls[0] = 0.0;
    return;
  }
  lr[0] = (gt[np * 4u] + gt[np * 4u + 1u]) / f32(np);
  ls[0] = (gt[np * 4u + 2u] + gt[np * 4u + 3u]) / f32(np);
}`,
    cpu(ins, outs) {
      const np = ins.info[0], gt = ins.gt;
      if (ins.info[4] === 0) {
        outs.lr[0] = NaN;
        outs.ls[0] = NaN;
        return;
      }
      outs.lr[0] = np === 0 ? 0 : (gt[np * 4] + gt[np * 4 + 1]) / np;
      outs.ls[0] = np === 0 ? 0 : (gt[np * 4 + 2] + gt[np * 4 + 3]) / np;
    },
  }));
}
