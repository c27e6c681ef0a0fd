/**
 * Stage 5, per-positive errors: each positive's ranking error (and sorting error, for RS and
 * BRS) from prefix sums over the positives and the intervals, each sum a ramp sum (two binary
 * searches and a prefix lookup); then AP's precision envelope or aLRP's localisation loss.
 *
 * Inputs: the sorted positives and the intervals of the bin stage. Output: `pd` `[8 · pcap]`,
 * the per-positive quantities the gradient and the totals read; for aLRP also `errorGrad`, the
 * localisation loss's gradient w.r.t. the errors, by positive in index order.
 *
 * After the stage every error is known: what is left is to spread each positive's error over
 * the negatives above it (the error-driven gradient) and to add the errors up.
 *
 * @module
 */

import type { DType } from "../../../tensor/dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../../../tensor/kernel.ts";
import type { Tensor } from "../../../tensor/tensor.ts";
import { smoothStep } from "../../reference/common.ts";
import { RampSums, rampWgsl } from "../prefix_kernels.ts";
import type { Bins } from "./bin.ts";
import { dominance, type TargetOrder, targetOrder } from "./dominance.ts";
import { type LossKind, overPositives, type Pipeline, ROWS, rows, scan, WG } from "./pipeline.ts";
import type { SortedPositives } from "./sort.ts";

/** Computes the per-positive errors; returns them with the target order of the sorting losses. */
export function positiveErrors(
  ctx: Pipeline,
  kind: LossKind,
  sorted: SortedPositives,
  { ea, eb, imean, gq }: Bins,
  delta: number,
  errorGrad?: Tensor,
): { pd: Tensor; order?: TargetOrder } {
  const { f, pcap, info, grid } = ctx;
  const { ps, py, pv, pk } = sorted;
  const sorting = kind === "rs" || kind === "brs";
  const xp = rows(ctx, "positives", ps, pv, ps, sorting ? 1 : errorGrad ? 2 : 0);
  const gp = scan(ctx, xp, ROWS.positives.channels, pcap);
  // Sorting losses: sums over the positives with larger targets, level by level.
  const order = sorting ? targetOrder(ctx, sorted) : undefined;
  const dom = order ? dominance(ctx, order, ps, "targets", xp, delta) : ps;
  const pd = ctx.alloc(8 * pcap, f);
  overPositives(ctx, positiveKernel(f, kind), [ps, pv, gp, imean, gq, ea, eb, dom, info], [pd], {
    grid,
    delta,
  });
  if (kind === "ap") {
    const gx = scan(ctx, rows(ctx, "precisions", ps, py, pd), 1, pcap, 0, 0, "max");
    overPositives(ctx, apEnvelopeKernel(f), [gx, info], [pd]);
  }
  if (errorGrad) {
    const gl = scan(ctx, rows(ctx, "localisation", ps, pv, pd), 2, pcap);
    overPositives(ctx, alrpLocalisationKernel(f), [gl, pk, info], [pd, errorGrad]);
  }
  return { pd, order };
}

const cached = kernelCache();

type P = Record<string, number>;

/**
 * Per positive (sorted order): `pd[8 i + …]` = `0` ranking value, `1` sorting error, `2`
 * weight of each negative's `H`, `3` share of the sorting error per unit `H`, `4` the
 * positive's own gradient term, `5` precision (AP), `6` rank (AP, aLRP). Every sum over
 * positives or intervals is a ramp sum over a prefix (`gp`: rows `ROWS.positives`, `gq`:
 * interval rows `[count, count · mean]`); the sorting losses read their dominance sums from
 * `dom` (round `targets`).
 */
export function positiveKernel(f: DType, kind: LossKind): Kernel {
  const bucketed = kind === "brs" || kind === "bap";
  const sorting = kind === "rs" || kind === "brs";
  return cached(`pos|${f}|${kind}`, () => ({
    label: `rank_ops.positive_${kind}`,
    inputs: {
      ps: f,
      yv: f,
      gp: f,
      imean: f,
      gq: f,
      ea: "u32",
      eb: "u32",
      dom: f,
      info: "u32",
    },
    outputs: { pd: f },
    params: { grid: "u32", delta: "f32" },
    workgroupSize: WG,
    code: `${rampWgsl("pos", "ps", "gp", ROWS.positives.channels)}
${rampWgsl("iv", "imean", "gq", 2)}
${entryPoint(WG)}
  let np = info[0];
  if (i >= p.grid || info[4] == 0u) { return; }
  let l = info[1];
  for (var a = i; a < np; a += p.grid) {
    let si = ps[a];
    let yi = yv[a];
    let rankp = pos_up(0u, np, si, 0u);
    let cur = pos_up(0u, np, si, 2u);
    ${
      bucketed ? `let nfp = iv_up(0u, l + 1u, si, 0u);` : `let qa = ea[a] + 1u;
    let qb = eb[a] + 1u;
    var nfp = iv_sum(0u, qa, 0u);
    if (qb > qa) {
      let c = iv_sum(qa, qb, 0u);
      nfp += (iv_sum(qa, qb, 1u) - si * c) / (2.0 * p.delta) + 0.5 * c;
    }`
    }
    let o = a * 8u;
    ${
      kind === "alrp"
        ? `let h0 = select(0.5, 1.0, p.delta == 0.0);
    let loc = cur - h0 * yi;
    let rp = rankp - h0 + 1.0;
    let rank = rp + nfp;
    var w = 0.0;
    var g = 0.0;
    if (nfp > 1e-5) {
      let err = (loc + nfp) / rank;
      w = err / nfp;
      g = -err;
    }
    pd[o] = 1.0 - rp / rank;
    pd[o + 1u] = 0.0;
    pd[o + 2u] = w;
    pd[o + 3u] = 0.0;
    pd[o + 4u] = g;
    pd[o + 6u] = rank;`
        : kind === "ap"
        ? `let h0 = select(0.5, 1.0, p.delta == 0.0);
    let rp = rankp - h0 + 1.0;
    let rank = rp + nfp;
    pd[o + 5u] = rp / rank;
    pd[o + 6u] = rank;`
        : `var re = 0.0;
    ${kind === "rs" ? "re = nfp / (rankp + nfp);" : "if (nfp > 0.0) { re = nfp / (rankp + nfp); }"}
    let eps = ${kind === "rs" ? "1e-10" : "0.0"};
    var w = 0.0;
    var g = 0.0;
    if (nfp > eps) { w = re / nfp; ${kind === "rs" ? "g = -re;" : ""} }
    ${kind === "rs" ? "" : "g = -re;"}
    var se = 0.0;
    var share = 0.0;
    ${
          sorting
            ? `let tden = dom[a * 3u];
    let tnum = dom[a * 3u + 1u];
    let miss = dom[a * 3u + 2u];
    se = cur / rankp - tnum / tden;
    if (miss > eps) { share = se / miss; g -= se; }`
            : ""
        }
    pd[o] = re;
    pd[o + 1u] = se;
    pd[o + 2u] = w;
    pd[o + 3u] = share;
    pd[o + 4u] = g;`
    }
  }
}`,
    cpu(ins, outs, p) {
      const { delta } = p as P;
      const info = ins.info, np = info[0], l = info[1];
      if (info[4] === 0) return;
      const { ps, yv, ea, eb, dom } = ins;
      const pos = new RampSums(ps, ins.gp, ROWS.positives.channels, delta);
      const iv = new RampSums(ins.imean, ins.gq, 2, delta);
      const pd = outs.pd;
      // H(0), as the WGSL's `h0`: 1 at δ = 0, else 1/2.
      const h0 = smoothStep(0, delta);
      for (let a = 0; a < np; a++) {
        const si = ps[a], yi = yv[a], o = a * 8;
        const rankp = pos.up(0, np, si, 0);
        const cur = pos.up(0, np, si, 2);
        let nfp: number;
        if (bucketed) nfp = iv.up(0, l + 1, si, 0);
        else {
          const qa = ea[a] + 1, qb = eb[a] + 1;
          nfp = iv.sum(0, qa, 0);
          if (qb > qa) {
            const c = iv.sum(qa, qb, 0);
            nfp += (iv.sum(qa, qb, 1) - si * c) / (2 * delta) + 0.5 * c;
          }
        }
        if (kind === "alrp") {
          const loc = cur - h0 * yi;
          const rp = rankp - h0 + 1, rank = rp + nfp;
          let w = 0, g = 0;
          if (nfp > 1e-5) {
            const err = (loc + nfp) / rank;
            w = err / nfp;
            g = -err;
          }
          pd.set([1 - rp / rank, 0, w, 0, g], o);
          pd[o + 6] = rank;
        } else if (kind === "ap") {
          const rp = rankp - h0 + 1, rank = rp + nfp;
          pd[o + 5] = rp / rank;
          pd[o + 6] = rank;
        } else {
          const re = kind === "rs" || nfp > 0 ? nfp / (rankp + nfp) : 0;
          const eps = kind === "rs" ? 1e-10 : 0;
          let w = 0, g = kind === "rs" ? 0 : -re;
          if (nfp > eps) {
            w = re / nfp;
            if (kind === "rs") g = -re;
          }
          let se = 0, share = 0;
          if (sorting) {
            const tden = dom[a * 3], tnum = dom[a * 3 + 1], miss = dom[a * 3 + 2];
            se = cur / rankp - tnum / tden;
            if (miss > eps) {
              share = se / miss;
              g -= se;
            }
          }
          pd.set([re, se, w, share, g], o);
        }
      }
    },
  }));
}

/**
 * AP: the precision envelope. `gx` is the max-prefix of the precisions in reverse order, so the
 * best precision among the positives ranked at or below positive `a` is one lookup.
 */
export function apEnvelopeKernel(f: DType): Kernel {
  return cached(`apenv|${f}`, () => ({
    label: "rank_ops.ap_envelope",
    inputs: { gx: f, info: "u32" },
    outputs: { pd: f },
    params: { grid: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  let np = info[0];
  if (i >= p.grid || info[4] == 0u) { return; }
  for (var a = i; a < np; a += p.grid) {
    let o = a * 8u;
    let prec = pd[o + 5u];
    let below = max(0.0, gx[(np - 1u - a) * 2u]);
    let best = max(below, prec);
    var scale = 1.0 / pd[o + 6u];
    if (below > prec) { scale *= (1.0 - best) / (1.0 - prec); }
    pd[o] = 1.0 - best;
    pd[o + 1u] = 0.0;
    pd[o + 2u] = scale;
    pd[o + 3u] = 0.0;
    pd[o + 4u] = -(1.0 - best);
  }
}`,
    cpu(ins, outs) {
      if (ins.info[4] === 0) return;
      const np = ins.info[0], pd = outs.pd;
      for (let a = 0; a < np; a++) {
        const o = a * 8, prec = pd[o + 5];
        const below = Math.max(0, ins.gx[(np - 1 - a) * 2]);
        const best = Math.max(below, prec);
        let scale = 1 / pd[o + 6];
        if (below > prec) scale *= (1 - best) / (1 - prec);
        pd.set([1 - best, 0, scale, 0, -(1 - best)], o);
      }
    },
  }));
}

/**
 * aLRP localisation part: running sums of the errors in descending-logit order over the
 * detached ranks into `pd[8 r + 1]`, and the gradient of the mean with respect to each error,
 * `Σ_{r' >= r} 1 / rank(r') / P`, at its position among the positives (`rg`, `[P]`). `gl`:
 * prefix of the rows `ROWS.localisation`.
 */
export function alrpLocalisationKernel(f: DType): Kernel {
  return cached(`alrploc|${f}`, () => ({
    label: "rank_ops.alrp_localisation",
    inputs: { gl: f, pk: "u32", info: "u32" },
    outputs: { pd: f, rg: f },
    params: { grid: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  let np = info[0];
  if (i >= p.grid || info[4] == 0u) { return; }
  for (var r = i; r < np; r += p.grid) {
    let run = gl[(r + 1u) * 4u] + gl[(r + 1u) * 4u + 1u];
    pd[r * 8u + 1u] = run / pd[r * 8u + 6u];
    let tail = (gl[np * 4u + 2u] - gl[r * 4u + 2u]) + (gl[np * 4u + 3u] - gl[r * 4u + 3u]);
    rg[pk[r]] = tail / f32(np);
  }
}`,
    cpu(ins, outs) {
      if (ins.info[4] === 0) return;
      const np = ins.info[0], pd = outs.pd, gl = ins.gl;
      for (let r = 0; r < np; r++) {
        pd[r * 8 + 1] = (gl[(r + 1) * 4] + gl[(r + 1) * 4 + 1]) / pd[r * 8 + 6];
        const tail = (gl[np * 4 + 2] - gl[r * 4 + 2]) + (gl[np * 4 + 3] - gl[r * 4 + 3]);
        outs.rg[ins.pk[r]] = tail / np;
      }
    },
  }));
}
