/**
 * Stage 1, count: per-chunk positive counts and logit bounds, then their totals and offsets.
 *
 * Inputs: `logits`, `targets` `[M]`. Outputs: `offs` `[chunks]` (exclusive prefix of the
 * per-chunk positive counts), `info` (u32: `P`, the boundary count `L`, the matrix columns and
 * rows, the `ok` flag, and the dispatch sizes over positives and intervals) and `fmeta` (float:
 * min positive logit, max negative logit, relevance threshold `t = min positive - δ`).
 *
 * After the stage every later kernel sizes itself from `info` alone; when `P` exceeds the
 * capacity `info` marks the pass not ok and the losses come out NaN with a zero gradient.
 *
 * @module
 */

import type { DType } from "../../../tensor/dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../../../tensor/kernel.ts";
import { launch } from "../../../tensor/ops/launch.ts";
import type { Tensor } from "../../../tensor/tensor.ts";
import {
  type Alloc,
  CHUNK,
  isPos,
  isPosWgsl,
  MAX_COLUMNS,
  MAX_POSITIVES,
  NONE,
  type Sizes,
  WG,
} from "./pipeline.ts";

/** Counts the positives; `ne` is the number of aLRP errors (`0xffffffff` when none). */
export function countPositives(
  sizes: Sizes,
  alloc: Alloc,
  logits: Tensor,
  targets: Tensor,
  config: { posEq1: number; delta: number; bucketed: boolean; ne: number },
): { offs: Tensor; info: Tensor; fmeta: Tensor } {
  const { f, m, chunks } = sizes;
  const cnt = alloc(chunks, "u32"), minp = alloc(chunks, f), maxn = alloc(chunks, f);
  const offs = alloc(chunks, "u32"), info = alloc(16, "u32"), fmeta = alloc(4, f);
  launch(chunkStatsKernel(f), [logits, targets], [cnt, minp, maxn], {
    m,
    chunks,
    pos_eq1: config.posEq1,
  }, Math.ceil(chunks / 64));
  launch(totalsKernel(f), [cnt, minp, maxn], [offs, info, fmeta], {
    chunks,
    m,
    delta: config.delta,
    edges: config.bucketed ? 0 : 1,
    cape: sizes.cape,
    pcap: sizes.pcap,
    ne: config.ne,
    grid: sizes.grid,
  }, 1);
  return { offs, info, fmeta };
}

const cached = kernelCache();

type P = Record<string, number>;

/** Per-chunk positive count, min positive logit, max negative logit. */
export function chunkStatsKernel(f: DType): Kernel {
  return cached(`stats|${f}`, () => ({
    label: "rank_ops.chunk_stats",
    inputs: { s: f, yv: f },
    outputs: { cnt: "u32", minp: f, maxn: f },
    params: { m: "u32", chunks: "u32", pos_eq1: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  if (i >= p.chunks) { return; }
  let start = i * ${CHUNK}u;
  let stop = min(p.m, start + ${CHUNK}u);
  var c = 0u;
  var mn = 3.0e38;
  var mx = -3.0e38;
  for (var k = start; k < stop; k++) {
    let y = yv[k];
    let v = s[k];
    if (${isPosWgsl()}) { c++; mn = min(mn, v); } else if (y == 0.0) { mx = max(mx, v); }
  }
  cnt[i] = c;
  minp[i] = mn;
  maxn[i] = mx;
}`,
    cpu(ins, outs, p) {
      const { m, chunks, pos_eq1: eq1 } = p as P;
      const s = ins.s, y = ins.yv;
      for (let i = 0; i < chunks; i++) {
        let c = 0, mn = 3.0e38, mx = -3.0e38;
        const stop = Math.min(m, (i + 1) * CHUNK);
        for (let k = i * CHUNK; k < stop; k++) {
          if (isPos(y[k], eq1)) {
            c++;
            if (s[k] < mn) mn = s[k];
          } else if (y[k] === 0 && s[k] > mx) mx = s[k];
        }
        outs.cnt[i] = c;
        outs.minp[i] = mn;
        outs.maxn[i] = mx;
      }
    },
  }));
}

/**
 * One invocation: totals, chunk offsets, `info` and `fmeta`; also the workgroup counts of the
 * later dispatches over the positives (`info[8..11)`) and the intervals (`info[11..14)`), so
 * that they launch no more lanes than there is work (`Launch.indirect`).
 */
export function totalsKernel(f: DType): Kernel {
  return cached(`totals|${f}`, () => ({
    label: "rank_ops.totals",
    inputs: { cnt: "u32", minp: f, maxn: f },
    outputs: { offs: "u32", info: "u32", fmeta: f },
    params: {
      chunks: "u32",
      m: "u32",
      delta: "f32",
      edges: "u32",
      cape: "u32",
      pcap: "u32",
      ne: "u32",
      grid: "u32",
    },
    workgroupSize: 1,
    code: `${entryPoint(1)}
  if (i > 0u) { return; }
  var total = 0u;
  var mn = 3.0e38;
  var mx = -3.0e38;
  for (var c = 0u; c < p.chunks; c++) {
    offs[c] = total;
    total += cnt[c];
    mn = min(mn, minp[c]);
    mx = max(mx, maxn[c]);
  }
  var l = total;
  if (p.edges != 0u && p.delta > 0.0) { l = 2u * total; }
  let ncol = clamp(p.cape / (l + 1u), 1u, ${MAX_COLUMNS}u);
  info[0] = total;
  info[1] = l;
  info[2] = ncol;
  info[3] = (p.m + ncol - 1u) / ncol;
  info[4] = select(0u, 1u, total <= min(p.pcap, ${MAX_POSITIVES}u) && (p.ne == ${NONE}u || p.ne == total));
  fmeta[0] = mn;
  fmeta[1] = mx;
  fmeta[2] = mn - p.delta;
  fmeta[3] = 0.0;
  info[8] = (min(total, p.grid) + ${WG - 1}u) / ${WG}u;
  info[11] = (min(l + 1u, p.grid) + ${WG - 1}u) / ${WG}u;
  info[9] = 1u;
  info[10] = 1u;
  info[12] = 1u;
  info[13] = 1u;
}`,
    cpu(ins, outs, p) {
      const { chunks, m, delta, edges, cape, pcap, ne, grid } = p as P;
      let total = 0, mn = 3.0e38, mx = -3.0e38;
      for (let c = 0; c < chunks; c++) {
        outs.offs[c] = total;
        total += ins.cnt[c];
        mn = Math.min(mn, ins.minp[c]);
        mx = Math.max(mx, ins.maxn[c]);
      }
      const l = edges && delta > 0 ? 2 * total : total;
      const ncol = Math.min(MAX_COLUMNS, Math.max(1, Math.floor(cape / (l + 1))));
      const info = outs.info;
      info[0] = total;
      info[1] = l;
      info[2] = ncol;
      info[3] = Math.ceil(m / ncol);
      info[4] = total <= Math.min(pcap, MAX_POSITIVES) && (ne === NONE || ne === total) ? 1 : 0;
      outs.fmeta[0] = mn;
      outs.fmeta[1] = mx;
      outs.fmeta[2] = mn - delta;
      outs.fmeta[3] = 0;
      info.set([Math.ceil(Math.min(total, grid) / WG), 1, 1], 8);
      info.set([Math.ceil(Math.min(l + 1, grid) / WG), 1, 1], 11);
    },
  }));
}
