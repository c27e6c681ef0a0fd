/**
 * Stage 2, compact: the `P` positives, copied out of the `M` entries in index order.
 *
 * Inputs: `logits`, `targets` `[M]`, the chunk offsets `offs` and `info` of the count stage.
 * Outputs: `cs`, `cy`, `ci` `[pcap]`: logit, target and original index of each positive.
 *
 * After the stage row `r < P` holds the `r`-th positive by index (positives are targets equal
 * to 1 for AP and aLRP, above 0 for the others); rows from `P` on are not read.
 *
 * @module
 */

import type { DType } from "../../../tensor/dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../../../tensor/kernel.ts";
import { launch } from "../../../tensor/ops/launch.ts";
import type { Tensor } from "../../../tensor/tensor.ts";
import { CHUNK, isPos, isPosWgsl, type Pipeline, WG } from "./pipeline.ts";

/** The positives, in index order. */
export interface Positives {
  /** Logits. */
  cs: Tensor;
  /** Targets. */
  cy: Tensor;
  /** Indices into the `M` entries. */
  ci: Tensor;
}

/** Copies the positives out of `logits`/`targets`. */
export function compactPositives(
  ctx: Pipeline,
  logits: Tensor,
  targets: Tensor,
  offs: Tensor,
  posEq1: number,
): Positives {
  const { f, pcap, alloc } = ctx;
  const cs = alloc(pcap, f), cy = alloc(pcap, f), ci = alloc(pcap, "u32");
  launch(compactKernel(f), [logits, targets, offs, ctx.info], [cs, cy, ci], {
    m: ctx.m,
    chunks: ctx.chunks,
    pos_eq1: posEq1,
    pcap,
  }, Math.ceil(ctx.chunks / 64));
  return { cs, cy, ci };
}

const cached = kernelCache();

type P = Record<string, number>;

/** Writes the positives in index order at their chunk offsets (first `P` slots). */
export function compactKernel(f: DType): Kernel {
  return cached(`compact|${f}`, () => ({
    label: "rank_ops.compact",
    inputs: { s: f, yv: f, offs: "u32", info: "u32" },
    outputs: { cs: f, cy: f, ci: "u32" },
    params: { m: "u32", chunks: "u32", pos_eq1: "u32", pcap: "u32" },
    workgroupSize: WG,
    code: `${entryPoint(WG)}
  if (i >= p.chunks || info[4] == 0u) { return; }
  let start = i * ${CHUNK}u;
  let stop = min(p.m, start + ${CHUNK}u);
  var o = offs[i];
  for (var k = start; k < stop; k++) {
    let y = yv[k];
    if (${isPosWgsl()}) {
      cs[o] = s[k];
      cy[o] = y;
      ci[o] = k;
      o++;
    }
  }
}`,
    cpu(ins, outs, p) {
      const { m, chunks, pos_eq1: eq1 } = p as P;
      if (ins.info[4] === 0) return;
      for (let i = 0; i < chunks; i++) {
        let o = ins.offs[i];
        const stop = Math.min(m, (i + 1) * CHUNK);
        for (let k = i * CHUNK; k < stop; k++) {
          if (isPos(ins.yv[k], eq1)) {
            outs.cs[o] = ins.s[k];
            outs.cy[o] = ins.yv[k];
            outs.ci[o] = k;
            o++;
          }
        }
      }
    },
  }));
}
