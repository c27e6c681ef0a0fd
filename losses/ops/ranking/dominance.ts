/**
 * Stage 5a, the sorting losses only (RS, BRS): sums over the positives with larger targets,
 * read level by level off a merge sort of the positives in target order.
 *
 * Inputs: the sorted positives `ps`, `py`. {@linkcode targetOrder} gives `ys` (each positive's
 * row in target order) and `lge`, `lgt` (per positive, how many have a target `>=` and `>`
 * its own); {@linkcode dominance} then sums rows `xs` of one round over those positives.
 *
 * After the stage `acc` `[pcap · outputs]` holds, per positive, the ramp sums over the
 * positives with larger targets (round `"targets"`: the sorting errors' terms; round
 * `"shares"`: the positives' gradient shares), in `O(P log² P)` with one prefix per level.
 *
 * Why the merge levels answer these sums: with the rows in descending-target order, the first
 * `L` rows are the union of at most one level-`ℓ` block per set bit `ℓ` of `L`, and each block is
 * sorted by logit, so a ramp sum over it is two binary searches and a prefix lookup
 * ({@linkcode dominanceKernel}). The last `P - L` rows are row `L` and the right siblings of the
 * blocks that hold row `L`, also one block per level. No `P x P` buffer is needed.
 *
 * @module
 */

import type { DType } from "../../../tensor/dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../../../tensor/kernel.ts";
import type { Tensor } from "../../../tensor/tensor.ts";
import { countFrom, RampSums, rampWgsl, searchWgsl } from "../prefix_kernels.ts";
import type { SortedPositives } from "./sort.ts";
import { mergeLevels, overPositives, type Pipeline, rows, scan, WG } from "./pipeline.ts";

/** Which dominance sums a pass accumulates. */
export type DominanceRound = "targets" | "shares";

/** Number of accumulators per positive of each round. */
export const DOMINANCE_OUTPUTS: Record<DominanceRound, number> = { targets: 3, shares: 1 };

/** Channels of the rows of each round. */
export const DOMINANCE_CHANNELS: Record<DominanceRound, number> = { targets: 4, shares: 2 };

const cached = kernelCache();

type P = Record<string, number>;

/** The positives in target order. */
export interface TargetOrder {
  /** Row of each positive in target order. */
  ys: Tensor;
  /** Positives with a target `>=` each one's. */
  lge: Tensor;
  /** Positives with a target `>` each one's. */
  lgt: Tensor;
}

/** Sorts the positives by target. */
export function targetOrder(ctx: Pipeline, { ps, py }: SortedPositives): TargetOrder {
  const { pcap, alloc, info } = ctx;
  const byTarget = mergeLevels(ctx, py, rows(ctx, "iota", ps, py, ps), 1);
  const lge = alloc(pcap, "u32"), lgt = alloc(pcap, "u32");
  overPositives(ctx, targetBoundsKernel(ctx.f), [py, byTarget.key, info], [lge, lgt]);
  return { ys: byTarget.x, lge, lgt };
}

/** Per positive, the sums of round `round` of rows `xs` over the positives with larger targets. */
export function dominance(
  ctx: Pipeline,
  { ys, lge, lgt }: TargetOrder,
  ps: Tensor,
  round: DominanceRound,
  xs: Tensor,
  delta: number,
): Tensor {
  const { f, pcap, alloc, info, grid } = ctx;
  const channels = DOMINANCE_CHANNELS[round];
  const acc = alloc(pcap * DOMINANCE_OUTPUTS[round], f);
  const k0 = alloc(pcap, f), x0 = alloc(pcap * channels, f);
  overPositives(ctx, gatherRowsKernel(f, channels), [ps, ys, xs, info], [k0, x0]);
  mergeLevels(ctx, k0, x0, channels, (level, key, x) => {
    // One prefix per level, released as soon as its queries are encoded.
    const g = scan(ctx, x, channels, pcap, 0, 0, "sum", false);
    try {
      overPositives(ctx, dominanceKernel(f, round), [key, g, ps, lge, lgt, info], [acc], {
        grid,
        level,
        first: level === 0 ? 1 : 0,
        delta,
      });
    } finally {
      g.dispose();
    }
  });
  return acc;
}

/**
 * Level 0 of a dominance pass: row `j` takes the key `ps[order[j]]` and the rows `xs[order[j]]`
 * (`order` holds positions as floats).
 */
export function gatherRowsKernel(f: DType, channels: number): Kernel {
  const C = channels;
  return cached(`gatherrows|${f}|${C}`, () => ({
    label: `rank_ops.gather_rows${C}`,
    inputs: { ps: f, order: f, xs: f, info: "u32" },
    outputs: { kb: f, xb: f },
    params: { grid: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  if (i >= p.grid || info[4] == 0u) { return; }
  for (var j = i; j < info[0]; j += p.grid) {
    let a = u32(order[j]);
    kb[j] = ps[a];
    for (var c = 0u; c < ${C}u; c++) { xb[j * ${C}u + c] = xs[a * ${C}u + c]; }
  }
}`,
    cpu(ins, outs) {
      if (ins.info[4] === 0) return;
      const { ps, order, xs } = ins;
      for (let j = 0; j < ins.info[0]; j++) {
        const a = order[j];
        outs.kb[j] = ps[a];
        for (let c = 0; c < C; c++) outs.xb[j * C + c] = xs[a * C + c];
      }
    },
  }));
}

/**
 * For every positive `a`: `lge[a] = #{b: y_b >= y_a}` and `lgt[a] = #{b: y_b > y_a}`, by binary
 * search in the targets sorted descending (`ys`).
 */
export function targetBoundsKernel(f: DType): Kernel {
  return cached(`bounds|${f}`, () => ({
    label: "rank_ops.target_bounds",
    inputs: { py: f, ys: f, info: "u32" },
    outputs: { lge: "u32", lgt: "u32" },
    params: { grid: "u32" },
    workgroupSize: WG,
    code: `${searchWgsl("ys", "ys")}
${entryPoint(WG)}
  let n = info[0];
  if (i >= p.grid || info[4] == 0u) { return; }
  for (var a = i; a < n; a += p.grid) {
    lge[a] = ys_ge(0u, n, py[a]);
    lgt[a] = ys_gt(0u, n, py[a]);
  }
}`,
    cpu(ins, outs) {
      if (ins.info[4] === 0) return;
      const n = ins.info[0];
      for (let a = 0; a < n; a++) {
        outs.lge[a] = countFrom(ins.ys, 0, n, ins.py[a], false);
        outs.lgt[a] = countFrom(ins.ys, 0, n, ins.py[a], true);
      }
    },
  }));
}

/**
 * One level of a dominance pass, for every positive `a` (logit `s_a = ps[a]`), over the rows in
 * descending-target order. Round `targets` (rows `[1, s, 1 - y, (1 - y) s]`) adds
 * `Σ_{y_b >= y_a} H(s_b - s_a)`, `Σ_{y_b >= y_a} H(s_b - s_a) (1 - y_b)` and
 * `Σ_{y_b < y_a} H(s_b - s_a)` to `acc[3a + 0, 1, 2]`; round `shares` (rows `[σ, σ s]`) adds
 * `Σ_{y_b > y_a} H(s_a - s_b) σ_b` to `acc[a]`. Level 0 (`first`) overwrites `acc`.
 */
export function dominanceKernel(f: DType, round: DominanceRound): Kernel {
  const C = DOMINANCE_CHANNELS[round], K = DOMINANCE_OUTPUTS[round];
  const targets = round === "targets";
  return cached(`dominance|${f}|${round}`, () => ({
    label: `rank_ops.dominance_${round}`,
    inputs: { key: f, g: f, ps: f, lge: "u32", lgt: "u32", info: "u32" },
    outputs: { acc: f },
    params: { grid: "u32", level: "u32", first: "u32", delta: "f32" },
    workgroupSize: WG,
    code: `${rampWgsl("lv", "key", "g", C)}
${entryPoint(WG)}
  let n = info[0];
  if (i >= p.grid || info[4] == 0u) { return; }
  let w = 1u << p.level;
  for (var a = i; a < n; a += p.grid) {
    let s = ps[a];
    var add: array<f32, ${K}>;
    for (var k = 0u; k < ${K}u; k++) { add[k] = 0.0; }
    let lp = ${targets ? "lge[a]" : "lgt[a]"};
    if (((lp >> p.level) & 1u) != 0u) {
      let u = (lp >> (p.level + 1u)) << (p.level + 1u);
      ${
      targets
        ? `add[0] = lv_up(u, u + w, s, 0u);
      add[1] = lv_up(u, u + w, s, 2u);`
        : `add[0] = lv_down(u, u + w, s, 0u);`
    }
    }
    ${
      targets
        ? `if (((lp >> p.level) & 1u) == 0u) {
      let u = ((lp >> p.level) << p.level) + w;
      if (u < n) { add[2] = lv_up(u, min(u + w, n), s, 0u); }
    }
    if (p.level == 0u && lp < n) { add[2] += lv_up(lp, lp + 1u, s, 0u); }`
        : ""
    }
    for (var k = 0u; k < ${K}u; k++) {
      var base = 0.0;
      if (p.first == 0u) { base = acc[a * ${K}u + k]; }
      acc[a * ${K}u + k] = base + add[k];
    }
  }
}`,
    cpu(ins, outs, p) {
      const { level, first, delta } = p as P;
      if (ins.info[4] === 0) return;
      const n = ins.info[0], w = 2 ** level, acc = outs.acc;
      const sums = new RampSums(ins.key, ins.g, C, delta);
      for (let a = 0; a < n; a++) {
        const s = ins.ps[a];
        const add = [0, 0, 0];
        const lp = targets ? ins.lge[a] : ins.lgt[a];
        if (Math.floor(lp / w) % 2 === 1) {
          const u = lp - (lp % (2 * w));
          if (targets) {
            add[0] = sums.up(u, u + w, s, 0);
            add[1] = sums.up(u, u + w, s, 2);
          } else add[0] = sums.down(u, u + w, s, 0);
        }
        if (targets && Math.floor(lp / w) % 2 === 0) {
          const u = lp - (lp % w) + w;
          if (u < n) add[2] = sums.up(u, Math.min(u + w, n), s, 0);
        }
        if (targets && level === 0 && lp < n) add[2] += sums.up(lp, lp + 1, s, 0);
        for (let k = 0; k < K; k++) acc[a * K + k] = (first ? 0 : acc[a * K + k]) + add[k];
      }
    },
  }));
}
