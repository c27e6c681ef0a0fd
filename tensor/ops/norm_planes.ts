/**
 * How the per-element `norm.*` kernels (`norm.ts`, `group_norm_tree.ts`) walk an `[N, C, ...]`
 * tensor: as `N * C` channel planes of `hw` elements, each invocation taking a run of `per`
 * elements of one plane, whose statistics row is its group (group norm) or its channel (batch
 * norm).
 *
 * @module
 */

/** Elements of one channel plane an apply or gradient invocation handles. */
export const PER = 8;

/** An `[N, C, ...]` input as planes: `gn` groups of `cpg` channels (batch norm: `gn` 0, `cpg` 1). */
export interface Layout {
  /** Samples `N`. */
  batch: number;
  /** Channels `C`. */
  c: number;
  /** Elements per channel plane. */
  hw: number;
  /** Groups per sample (0 for batch norm, whose rows are channels). */
  gn: number;
  /** Channels per group. */
  cpg: number;
}

/**
 * WGSL that locates invocation `i`'s plane (sample, channel), its run `[start, stop)`, channel
 * `ch`, statistics row `r` and the plane's first element `base`; invocations past the last run
 * return. The kernel has {@linkcode PLANE_PARAMS}.
 */
export const PLANE_WGSL = `  if (i >= p.planes * p.nch) { return; }
  let plane = i / p.nch;
  let start = min(p.hw, (i % p.nch) * p.per);
  let stop = min(p.hw, start + p.per);
  let ch = plane % p.c;
  let r = (plane / p.c) * p.gn + ch / p.cpg;
  let base = plane * p.hw;`;

/** Where {@linkcode planeCpu} puts an invocation. */
export interface PlaneSpot {
  /** The plane's first element. */
  base: number;
  /** The run's first element in the plane. */
  start: number;
  /** One past its last. */
  stop: number;
  /** The plane's channel. */
  ch: number;
  /** The plane's statistics row. */
  r: number;
}

/**
 * The CPU side of {@linkcode PLANE_WGSL}: where invocation `i` works.
 *
 * @example
 * ```ts
 * import { planeCpu } from "./norm_planes.ts";
 * const p = { planes: 4, nch: 2, per: 8, hw: 10, c: 2, gn: 1, cpg: 2, affine: 0 };
 * console.log(planeCpu(3, p)); // { base: 10, start: 8, stop: 10, ch: 1, r: 0 }
 * ```
 */
export function planeCpu(i: number, p: Record<string, number>): PlaneSpot {
  const plane = Math.floor(i / p.nch);
  const start = Math.min(p.hw, (i % p.nch) * p.per), stop = Math.min(p.hw, start + p.per);
  const ch = plane % p.c;
  const r = Math.floor(plane / p.c) * p.gn + Math.floor(ch / p.cpg);
  return { base: plane * p.hw, start, stop, ch, r };
}

/** The uniform parameters {@linkcode PLANE_WGSL} reads (`affine`: 1 with weight and bias). */
export const PLANE_PARAMS = {
  planes: "u32",
  nch: "u32",
  per: "u32",
  hw: "u32",
  c: "u32",
  gn: "u32",
  cpg: "u32",
  affine: "u32",
} as const;

/**
 * Launch parameters of a plane kernel handling `per` elements per invocation, and its invocations.
 *
 * @example
 * ```ts
 * import { planeParams } from "./norm_planes.ts";
 * const layout = { batch: 2, c: 4, hw: 20, gn: 2, cpg: 2 };
 * console.log(planeParams(layout, 8, 1).invocations); // 24: 8 planes of 3 runs
 * ```
 */
export function planeParams(
  layout: Layout,
  per: number,
  affine: number,
): { params: Record<keyof typeof PLANE_PARAMS, number>; invocations: number } {
  const planes = layout.batch * layout.c;
  const nch = Math.max(1, Math.ceil(layout.hw / per));
  return {
    params: {
      planes,
      nch,
      per,
      hw: layout.hw,
      c: layout.c,
      gn: layout.gn,
      cpg: layout.cpg,
      affine,
    },
    invocations: planes * nch,
  };
}
