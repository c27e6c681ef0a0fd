/**
 * Workgroup-tiled f32 GEMM for hardware adapters: a generator of kernels that compute batched
 * products `out(bt, r, c) (+)= sum_q A(bt, r, q) * B(bt, q, c)` where each product says how to
 * read A and B and where to write (a {@linkcode GemmSpec}), so that matmul and the implicit-GEMM
 * convolutions (`conv_gemm.ts`) share one tiling.
 *
 * A workgroup computes a `bm x bn` output block (tiles from the backend's profile,
 * `DeviceProfile.tiles`): it steps the inner axis `bk` at a time, staging an A tile `[bk][bm]` and
 * a B tile `[bk][bn / 4]` (vec4) in workgroup memory (rows padded against bank conflicts,
 * {@linkcode tileBytes}), and each of its `(bm / tm) x (bn / 4)`
 * invocations accumulates a `tm x 4` register block from vec4 reads of the B tile. Loads of the
 * tiles walk each operand along its contiguous axis ({@linkcode GemmLayout}) and are
 * zero-filled past the edges, so any `m`, `n`, `k` works. The inner axis runs in dispatches of at
 * most the profile's `loopBudget` that accumulate into the output; small outputs over long inner
 * axes split it over more workgroups ({@linkcode splitKGemm}).
 *
 * @module
 */

import type { Backend } from "../backend.ts";
import type { GemmTiles } from "../device_profile.ts";
import type { DType, TypedArray } from "../dtype.ts";
import {
  type CpuTwin,
  entryPoint,
  type Kernel,
  kernelCache,
  type ParamType,
  type ParamValues,
} from "../kernel.ts";
import { empty, sizeOf, type Tensor } from "../tensor.ts";
import { launch } from "./launch.ts";
import { sum } from "./reduce.ts";

/** Parameters every tiled GEMM kernel has (its own follow). */
export const GEMM_PARAMS = {
  m: "u32",
  n: "u32",
  k0: "u32",
  kc: "u32",
  accumulate: "u32",
  nbatch: "u32",
  tiles_m: "u32",
  tiles_n: "u32",
  splits: "u32",
  split_len: "u32",
  split_stride: "u32",
} as const;

/** What one tiled GEMM reads and writes; the tiling around it is {@linkcode tiledGemmKernel}'s. */
export interface GemmSpec {
  /** The kernel's label (`family.variant`). */
  label: string;
  /** Storage inputs (f32), in binding order. */
  inputs: readonly string[];
  /** The output's name. */
  output: string;
  /** Parameters past {@linkcode GEMM_PARAMS}. */
  params: Readonly<Record<string, ParamType>>;
  /**
   * WGSL of `fn load_a(bt: u32, r: u32, q: u32) -> f32` and `fn load_b(bt: u32, q: u32, c: u32)
   * -> f32` (called only with `r < p.m`, `c < p.n` and `q` inside the inner axis) and
   * `fn out_at(bt: u32, r: u32, c: u32) -> u32` (the output's index of element `(r, c)`).
   */
  wgsl: string;
  /**
   * Inputs read as vec4 (`Kernel.vec4Inputs`); with `a4`, `wgsl` defines
   * `fn load_a4(bt: u32, r: u32, q: u32) -> vec4<f32>` (A's `(r, q..q + 3)`, `q` a multiple of 4,
   * all four inside the inner axis) and A's tile is staged 4 inner steps at a time; with `b4`,
   * `fn load_b4(bt: u32, q: u32, c: u32) -> vec4<f32>` (B's `(q, c..c + 3)`, all inside `n`).
   */
  vec4?: { inputs: readonly string[]; a4: boolean; b4: boolean };
  /**
   * WGSL statements run once per workgroup before the loop, with the batch entry `bt` in scope:
   * they may set `var<private>` values (declared in `wgsl`) that the three functions read.
   */
  prologue?: string;
  /**
   * With `initial`, `wgsl` also defines `fn initial(bt: u32, r: u32, c: u32) -> f32`, a value added
   * to element `(r, c)` where the output is written afresh (not accumulated: the first inner
   * chunk), e.g. a bias; the CPU loaders give it as `initial`.
   */
  initial?: boolean;
  /** The CPU twin: the same three functions over the twin's arrays, or a whole twin. */
  cpu: GemmCpuLoaders | CpuTwin;
}

/** The CPU side of a {@linkcode GemmSpec}'s three WGSL functions. */
export interface GemmCpuLoaders {
  /** A's element `(r, q)` of batch entry `bt`. */
  loadA(
    ins: Record<string, TypedArray>,
    p: Record<string, number>,
    bt: number,
    r: number,
    q: number,
  ): number;
  /** B's element `(q, c)` of batch entry `bt`. */
  loadB(
    ins: Record<string, TypedArray>,
    p: Record<string, number>,
    bt: number,
    q: number,
    c: number,
  ): number;
  /** The output's index of element `(r, c)` of batch entry `bt`. */
  outAt(p: Record<string, number>, bt: number, r: number, c: number): number;
  /** The spec's `initial` value of element `(r, c)`, where it has one. */
  initial?(
    ins: Record<string, TypedArray>,
    p: Record<string, number>,
    bt: number,
    r: number,
    c: number,
  ): number;
}

const cached = kernelCache();

/** Throws a `RangeError` unless `tiles` fit the kernel: 4 columns per invocation, whole blocks. */
function checkTiles(label: string, tiles: GemmTiles): void {
  const { bm, bn, bk, tm, tn } = tiles;
  const invocations = (bm / tm) * (bn / tn);
  if (tn !== 4 || bm % tm !== 0 || bn % 4 !== 0 || bk < 1 || !Number.isInteger(invocations)) {
    throw new RangeError(
      `Kernel "${label}" cannot use tiles ${
        JSON.stringify(tiles)
      }: tn must be 4 and bm, bn whole blocks`,
    );
  }
}

/**
 * Which index of each operand the tile loads walk fastest, so that neighbouring invocations read
 * neighbouring floats: A's inner axis (`aq`, row-major A) or its rows; B's inner axis (`bq`,
 * a transposed B) or its columns.
 */
export interface GemmLayout {
  /** Walk A's inner axis fastest (else its rows). */
  aq: boolean;
  /** Walk B's inner axis fastest (else its columns). */
  bq: boolean;
}

/** Row-major A and B: A along its inner axis, B along its columns. */
export const ROW_MAJOR: GemmLayout = { aq: true, bq: false };

/**
 * Bytes of workgroup memory that `tiles` take: both tiles, each row padded (A by 1 float, B by
 * one vec4) so that staging stores along the inner axis do not fall in one memory bank.
 *
 * @example
 * ```ts
 * import { tileBytes } from "./tiled_gemm.ts";
 * console.log(tileBytes({ bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 })); // 8512
 * ```
 */
export function tileBytes(tiles: GemmTiles): number {
  return (tiles.bm + 1 + tiles.bn + 4) * tiles.bk * 4;
}

/**
 * The tiled GEMM kernel of `spec` with `tiles` (see the module doc); workgroups: one per
 * `bm x bn` block per batch entry, `tiles_m x tiles_n x nbatch` in all.
 */
export function tiledGemmKernel(
  spec: GemmSpec,
  tiles: GemmTiles,
  layout: GemmLayout = ROW_MAJOR,
): Kernel {
  const { bm, bn, bk, tm, tn } = tiles;
  const vec = spec.vec4 ? `|${spec.vec4.a4}|${spec.vec4.b4}` : "";
  const key = `${spec.label}|${bm}x${bn}x${bk}|${tm}x${tn}|${layout.aq}|${layout.bq}${vec}|${
    spec.initial ?? false
  }`;
  return cached(key, () => makeKernel(spec, tiles, layout));
}

/** WGSL staging A's tile one float at a time, walking the inner axis (`aq`) or the rows fastest. */
function stageA(bm: number, bk: number, wg: number, sa: number, aq: boolean): string[] {
  return [
    `    for (var e = lid; e < ${bm * bk}u; e += ${wg}u) {`,
    aq ? `      let r = e / ${bk}u;` : `      let r = e % ${bm}u;`,
    aq ? `      let q = e % ${bk}u;` : `      let q = e / ${bm}u;`,
    `      var v = 0.0;`,
    `      if (m0 + r < p.m && q0 + q < kend) { v = load_a(bt, m0 + r, q0 + q); }`,
    `      sa[q * ${sa}u + r] = v;`,
    `    }`,
  ];
}

/** WGSL staging A's tile 4 inner steps at a time (`load_a4`). */
function stageA4(bm: number, bk: number, wg: number, sa: number): string[] {
  const lines = [
    `    for (var e = lid; e < ${(bm * bk) / 4}u; e += ${wg}u) {`,
    `      let r = e / ${bk / 4}u;`,
    `      let q = (e % ${bk / 4}u) * 4u;`,
    `      var v = vec4<f32>(0.0);`,
    `      if (m0 + r < p.m && q0 + q < kend) { v = load_a4(bt, m0 + r, q0 + q); }`,
  ];
  for (let j = 0; j < 4; j++) lines.push(`      sa[(q + ${j}u) * ${sa}u + r] = v[${j}];`);
  lines.push(`    }`);
  return lines;
}

/** WGSL staging B's tile one float at a time, walking the inner axis (`bq`) or the columns fastest. */
function stageB(bn: number, bk: number, wg: number, sb: number, bq: boolean): string[] {
  return [
    `    for (var e = lid; e < ${bn * bk}u; e += ${wg}u) {`,
    bq ? `      let q = e % ${bk}u;` : `      let q = e / ${bn}u;`,
    bq ? `      let c = e / ${bk}u;` : `      let c = e % ${bn}u;`,
    `      var v = 0.0;`,
    `      if (n0 + c < p.n && q0 + q < kend) { v = load_b(bt, q0 + q, n0 + c); }`,
    `      sb[q * ${sb}u + c / 4u][c % 4u] = v;`,
    `    }`,
  ];
}

/** WGSL staging B's tile 4 columns at a time (`load_b4`). */
function stageB4(bn: number, bk: number, wg: number, sb: number): string[] {
  const cols = bn / 4;
  return [
    `    for (var e = lid; e < ${cols * bk}u; e += ${wg}u) {`,
    `      let q = e / ${cols}u;`,
    `      let c = (e % ${cols}u) * 4u;`,
    `      var v = vec4<f32>(0.0);`,
    `      if (n0 + c < p.n && q0 + q < kend) { v = load_b4(bt, q0 + q, n0 + c); }`,
    `      sb[q * ${sb}u + c / 4u] = v;`,
    `    }`,
  ];
}

function makeKernel(spec: GemmSpec, tiles: GemmTiles, layout: GemmLayout): Kernel {
  checkTiles(spec.label, tiles);
  const { bm, bn, bk, tm } = tiles;
  const cols = bn / 4, wg = (bm / tm) * cols;
  const a4 = spec.vec4?.a4 ?? false, b4 = spec.vec4?.b4 ?? false;
  if (a4 && (bk % 4 !== 0 || !layout.aq)) {
    throw new RangeError(
      `Kernel "${spec.label}" reads A as vec4: bk ${bk} must be a multiple of 4`,
    );
  }
  const sa = bm + 1, sb = cols + 1; // padded row strides (floats, vec4s)
  const lines: string[] = [
    `var<workgroup> sa: array<f32, ${bk * sa}>;`,
    `var<workgroup> sb: array<vec4<f32>, ${bk * sb}>;`,
    spec.wgsl,
    entryPoint(wg),
    // The workgroup's index from uniform builtins only: barriers below need uniform control flow.
    `  let w = wid.y * nwg.x + wid.x;`,
    `  let tiles = p.tiles_m * p.tiles_n;`,
    `  if (w >= tiles * p.nbatch * p.splits) { return; }`,
    `  let bt = (w / tiles) % p.nbatch;`,
    // Split-K: split s sums the inner steps [kbeg, kend) into its own output slice.
    `  let split = w / (tiles * p.nbatch);`,
    `  let kbeg = p.k0 + split * p.split_len;`,
    `  let kend = min(p.k0 + p.kc, kbeg + p.split_len);`,
    `  let slice = split * p.split_stride;`,
    `  let m0 = ((w % tiles) / p.tiles_n) * ${bm}u;`,
    `  let n0 = ((w % tiles) % p.tiles_n) * ${bn}u;`,
    `  let tr = lid / ${cols}u;`,
    `  let tc = lid % ${cols}u;`,
    spec.prologue ?? "",
  ];
  for (let r = 0; r < tm; r++) lines.push(`  var acc${r} = vec4<f32>(0.0);`);
  lines.push(
    `  for (var q0 = kbeg; q0 < kend; q0 += ${bk}u) {`,
    ...(a4 ? stageA4(bm, bk, wg, sa) : stageA(bm, bk, wg, sa, layout.aq)),
    ...(b4 ? stageB4(bn, bk, wg, sb) : stageB(bn, bk, wg, sb, layout.bq)),
    `    workgroupBarrier();`,
    `    for (var q = 0u; q < ${bk}u; q++) {`,
    `      let bv = sb[q * ${sb}u + tc];`,
    `      let ar = q * ${sa}u + tr * ${tm}u;`,
  );
  for (let r = 0; r < tm; r++) {
    lines.push(`      acc${r} = fma(vec4<f32>(sa[ar + ${r}u]), bv, acc${r});`);
  }
  lines.push(`    }`, `    workgroupBarrier();`, `  }`, `  let add = p.accumulate != 0u;`);
  lines.push(`  let c0 = n0 + tc * 4u;`);
  for (let r = 0; r < tm; r++) {
    lines.push(`  let r${r} = m0 + tr * ${tm}u + ${r}u;`);
    lines.push(`  if (r${r} < p.m) {`);
    for (let e = 0; e < 4; e++) {
      const col = `c0 + ${e}u`, acc = `acc${r}[${e}]`;
      const fresh = spec.initial ? `${acc} + initial(bt, r${r}, ${col})` : acc;
      lines.push(
        `    if (${col} < p.n) { let at = slice + out_at(bt, r${r}, ${col}); ${spec.output}[at] = select(${fresh}, ${spec.output}[at] + ${acc}, add); }`,
      );
    }
    lines.push(`  }`);
  }
  lines.push(`}`);
  const inputs: Record<string, DType> = {};
  for (const name of spec.inputs) inputs[name] = "f32";
  return {
    label: `${spec.label}_${bm}x${bn}x${bk}`,
    inputs,
    outputs: { [spec.output]: "f32" },
    params: { ...GEMM_PARAMS, ...spec.params },
    vec4Inputs: spec.vec4?.inputs,
    workgroupSize: wg,
    code: lines.join("\n"),
    cpu: typeof spec.cpu === "function"
      ? spec.cpu
      : (ins, outs, params) =>
        tiledGemmCpu(spec.cpu as GemmCpuLoaders, ins, outs[spec.output], params),
  };
}

/** The CPU twin of {@linkcode tiledGemmKernel} (the tiling does not change the result). */
function tiledGemmCpu(
  loaders: GemmCpuLoaders,
  ins: Record<string, TypedArray>,
  out: TypedArray,
  params: ParamValues,
): void {
  const p = params as Record<string, number>;
  const { loadA, loadB, outAt, initial } = loaders;
  for (let split = 0; split < p.splits; split++) {
    const kbeg = p.k0 + split * p.split_len;
    const kend = Math.min(p.k0 + p.kc, kbeg + p.split_len);
    for (let bt = 0; bt < p.nbatch; bt++) {
      for (let r = 0; r < p.m; r++) {
        for (let c = 0; c < p.n; c++) {
          let acc = 0;
          for (let q = kbeg; q < kend; q++) {
            acc += loadA(ins, p, bt, r, q) * loadB(ins, p, bt, q, c);
          }
          const at = split * p.split_stride + outAt(p, bt, r, c);
          out[at] = p.accumulate ? out[at] + acc : acc + (initial?.(ins, p, bt, r, c) ?? 0);
        }
      }
    }
  }
}

/** The size of one tiled GEMM: `nbatch` products of `m x n` outputs over inner axis `k`. */
export interface GemmSize {
  /** Output rows. */
  m: number;
  /** Output columns. */
  n: number;
  /** Inner axis. */
  k: number;
  /** Batch entries. */
  nbatch: number;
}

/**
 * Runs a tiled GEMM into `out`, in dispatches of at most the profile's `loopBudget` inner steps
 * (the first overwrites unless `accumulate`, the rest add). With `splits > 1` (split-K) each
 * dispatch's inner range is cut in `splits` parts computed by separate workgroups into slices of
 * `out` `splitStride` elements apart (the caller sums them).
 */
export function runTiledGemm(
  kernel: (tiles: GemmTiles) => Kernel,
  inputs: readonly Tensor[],
  out: Tensor,
  size: GemmSize,
  params: ParamValues,
  accumulate = false,
  splits = 1,
  splitStride = 0,
): void {
  const backend: Backend = out.backend;
  const tiles = backend.profile.tiles;
  const { m, n, k, nbatch } = size;
  const tilesM = Math.ceil(m / tiles.bm), tilesN = Math.ceil(n / tiles.bn);
  const budget = backend.profile.loopBudget;
  const chunk = Math.max(tiles.bk, budget - budget % tiles.bk) * splits;
  const compiled = kernel(tiles);
  let k0 = 0;
  do {
    const kc = Math.min(chunk, k - k0);
    const splitLen = Math.ceil(Math.ceil(kc / splits) / tiles.bk) * tiles.bk;
    launch(compiled, inputs, [out], {
      ...params,
      m,
      n,
      k0,
      kc,
      accumulate: accumulate || k0 > 0 ? 1 : 0,
      nbatch,
      tiles_m: tilesM,
      tiles_n: tilesN,
      splits,
      split_len: Math.max(splitLen, 1),
      split_stride: splitStride,
    }, tilesM * tilesN * nbatch * splits);
    k0 += kc;
  } while (k0 < k);
}

/** Workgroups below which {@linkcode splitKGemm} splits the inner axis. */
const SPLIT_TARGET = 256;
/** Fewest inner steps one split gets. */
const MIN_SPLIT = 512;

/**
 * A tiled GEMM whose output `shape` (`size.nbatch x m x n` elements, laid out by the spec's
 * `out_at`) is small beside its inner axis (a weight gradient: few outputs, many images x
 * pixels): the inner axis is split over enough workgroups to fill the device (up to
 * {@linkcode SPLIT_TARGET} with at least {@linkcode MIN_SPLIT} steps each), into partial slices
 * summed afterwards.
 */
export function splitKGemm(
  kernel: (tiles: GemmTiles) => Kernel,
  inputs: readonly Tensor[],
  shape: readonly number[],
  size: GemmSize,
  params: ParamValues,
): Tensor {
  const backend = inputs[0].backend;
  const tiles = backend.profile.tiles;
  const blocks = Math.ceil(size.m / tiles.bm) * Math.ceil(size.n / tiles.bn) * size.nbatch;
  const splits = Math.max(
    1,
    Math.min(Math.ceil(SPLIT_TARGET / blocks), Math.floor(size.k / MIN_SPLIT)),
  );
  const elements = sizeOf(shape);
  if (splits === 1) {
    const out = empty(shape, "f32", backend);
    runTiledGemm(kernel, inputs, out, size, params);
    return out;
  }
  const partial = empty([splits, ...shape], "f32", backend);
  runTiledGemm(kernel, inputs, partial, size, params, false, splits, elements);
  const out = sum(partial, 0);
  partial.dispose();
  return out;
}
