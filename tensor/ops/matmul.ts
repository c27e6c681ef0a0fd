/**
 * Matrix products: `matmul` over the last two axes with broadcast batch axes,
 * optionally reading either operand transposed, and its gradient.
 *
 * One kernel family, `matmul.tile<TM>x<TN>`: each invocation computes a
 * `TM x TN` block of the output in registers, looping over the inner axis.
 * Operands are addressed through strides, so a transposed operand is read in
 * place (no copy) and the backward pass reuses the same kernel. The inner loop
 * runs at most the profile's `loopBudget` iterations per dispatch (below
 * llvmpipe's `LOOP_LIMIT` there, tensor/kernel.ts); longer inner axes take
 * several dispatches that accumulate into the output.
 *
 * Hardware adapters (the profile's `matmul: "tiled"`) take the workgroup-tiled f32 kernel
 * `matmul.tiled` of `tiled_gemm.ts` (shared-memory tiles sized from the adapter's limits).
 * Elsewhere, block sizes are chosen per adapter: llvmpipe (a CPU rasteriser running 8
 * invocations per SIMD batch) pays ~15 ns per lane per storage load, so wide
 * blocks (32 x 32 per invocation for outputs of at least 64 x 64, 16 x 16
 * from 32 x 32, workgroup 8) amortise loads best; other adapters get 4 x 4
 * blocks and workgroups of 64.
 *
 * Adapter-specific products are registered alternatives ({@linkcode MatmulVariant}), tried
 * first: large f32 products on llvmpipe take the packed uniform-window kernels of
 * `software/matmul_uniform.ts` (the profile's `matmulUniform`).
 *
 * @module
 */

import { record } from "../autograd.ts";
import type { Backend } from "../backend.ts";
import type { GemmTiles } from "../device_profile.ts";
import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { empty, sizeOf, type Tensor } from "../tensor.ts";
import { broadcastShapes } from "./elementwise.ts";
import { backendOf, launch } from "./launch.ts";
import { sumTo } from "./reduce.ts";
import { uniformWindowMatmul } from "./software/matmul_uniform.ts";
import {
  type GemmLayout,
  type GemmSpec,
  ROW_MAJOR,
  runTiledGemm,
  tiledGemmKernel,
} from "./tiled_gemm.ts";

/** Most batch axes a matmul supports. */
const MAX_BATCH_RANK = 8;

/** A register-block configuration of the matmul kernel. */
export interface MatmulTile {
  /** Output rows per invocation. */
  tm: number;
  /** Output columns per invocation. */
  tn: number;
  /** Invocations per workgroup. */
  workgroupSize: number;
}

/** Strided view of a batch of matrices: element `(b, r, c)` at `batch(b) + r * rs + c * cs`. */
interface Operand {
  rows: number;
  cols: number;
  rowStride: number;
  colStride: number;
}

const cached = kernelCache();

/** The register block {@linkcode matmul} uses for an `m x n` output on `backend` (its profile's kind). */
export function chooseTile(backend: Backend, m: number, n: number): MatmulTile {
  if (backend.profile.kind === "llvmpipe") {
    if (m >= 64 && n >= 64) return { tm: 32, tn: 32, workgroupSize: 8 };
    if (m >= 32 && n >= 32) return { tm: 16, tn: 16, workgroupSize: 8 };
    return { tm: 4, tn: 4, workgroupSize: 8 };
  }
  return { tm: 4, tn: 4, workgroupSize: 64 };
}

/**
 * The matmul kernel with a `tm x tn` register block. Parameters: sizes `m, n,
 * k`, the inner range `[k0, k0 + kc)`, `accumulate` (add to the output instead
 * of overwriting it), element strides of each operand (`sam, sak` for A's rows
 * and inner axis, `sbk, sbn` for B's), the batch count and the broadcast batch
 * shape with per-operand batch strides (`u32x8`, right-aligned).
 */
export function matmulKernel(tile: MatmulTile, dtype: DType = "f32"): Kernel {
  const { tm, tn, workgroupSize: wg } = tile;
  const key = `${tm}x${tn}|${wg}|${dtype}`;
  return cached(key, () => {
    const lines: string[] = [entryPoint(wg)];
    lines.push(`  let tiles = p.tiles_m * p.tiles_n;`);
    lines.push(`  if (i >= tiles * p.nbatch) { return; }`);
    lines.push(`  let bt = i / tiles;`);
    lines.push(`  let t = i % tiles;`);
    lines.push(`  let m0 = (t / p.tiles_n) * ${tm}u;`);
    lines.push(`  let n0 = (t % p.tiles_n) * ${tn}u;`);
    lines.push(`  var rem = bt;`);
    lines.push(`  var aoff = 0u;`);
    lines.push(`  var boff = 0u;`);
    for (let d = MAX_BATCH_RANK - 1; d >= 0; d--) {
      lines.push(`  let c${d} = rem % u32x8_at(p.bshape, ${d}u);`);
      lines.push(`  rem = rem / u32x8_at(p.bshape, ${d}u);`);
      lines.push(`  aoff += c${d} * u32x8_at(p.ast, ${d}u);`);
      lines.push(`  boff += c${d} * u32x8_at(p.bst, ${d}u);`);
    }
    for (let r = 0; r < tm; r++) {
      lines.push(`  let ra${r} = aoff + min(m0 + ${r}u, p.m - 1u) * p.sam;`);
    }
    for (let c = 0; c < tn; c++) {
      lines.push(`  let rb${c} = boff + min(n0 + ${c}u, p.n - 1u) * p.sbn;`);
    }
    for (let r = 0; r < tm; r++) {
      for (let c = 0; c < tn; c++) lines.push(`  var acc${r}_${c} = 0.0;`);
    }
    lines.push(`  let kend = p.k0 + p.kc;`);
    lines.push(`  for (var k = p.k0; k < kend; k++) {`);
    lines.push(`    let ka = k * p.sak;`);
    lines.push(`    let kb = k * p.sbk;`);
    for (let r = 0; r < tm; r++) lines.push(`    let a${r} = a[ra${r} + ka];`);
    for (let c = 0; c < tn; c++) lines.push(`    let b${c} = b[rb${c} + kb];`);
    for (let r = 0; r < tm; r++) {
      for (let c = 0; c < tn; c++) lines.push(`    acc${r}_${c} = acc${r}_${c} + a${r} * b${c};`);
    }
    lines.push(`  }`);
    lines.push(`  let cbase = bt * p.m * p.n;`);
    lines.push(`  let add = p.accumulate != 0u;`);
    for (let r = 0; r < tm; r++) {
      lines.push(`  if (m0 + ${r}u < p.m) {`);
      lines.push(`    let row${r} = cbase + (m0 + ${r}u) * p.n + n0;`);
      for (let c = 0; c < tn; c++) {
        lines.push(
          `    if (n0 + ${c}u < p.n) { c[row${r} + ${c}u] = select(acc${r}_${c}, c[row${r} + ${c}u] + acc${r}_${c}, add); }`,
        );
      }
      lines.push(`  }`);
    }
    lines.push(`}`);
    return {
      label: `matmul.tile${tm}x${tn}`,
      inputs: { a: dtype, b: dtype },
      outputs: { c: dtype },
      params: {
        m: "u32",
        n: "u32",
        k0: "u32",
        kc: "u32",
        accumulate: "u32",
        sam: "u32",
        sak: "u32",
        sbk: "u32",
        sbn: "u32",
        nbatch: "u32",
        tiles_m: "u32",
        tiles_n: "u32",
        bshape: "u32x8",
        ast: "u32x8",
        bst: "u32x8",
      },
      workgroupSize: wg,
      code: lines.join("\n"),
      cpu: matmulCpu,
    };
  });
}

/** The CPU twin of {@linkcode matmulKernel} (block size does not change the result). */
function matmulCpu(
  inputs: Record<string, ArrayLike<number>>,
  outputs: Record<string, { [i: number]: number; length: number }>,
  params: Record<string, number | readonly number[]>,
): void {
  const a = inputs.a, b = inputs.b, c = outputs.c;
  const m = params.m as number, n = params.n as number;
  const k0 = params.k0 as number, kc = params.kc as number;
  const add = (params.accumulate as number) !== 0;
  const sam = params.sam as number, sak = params.sak as number;
  const sbk = params.sbk as number, sbn = params.sbn as number;
  const nbatch = params.nbatch as number;
  const bshape = params.bshape as readonly number[];
  const ast = params.ast as readonly number[], bst = params.bst as readonly number[];
  const row = new Float64Array(n);
  for (let bt = 0; bt < nbatch; bt++) {
    let rem = bt, aoff = 0, boff = 0;
    for (let d = MAX_BATCH_RANK - 1; d >= 0; d--) {
      const size = bshape[d] ?? 1;
      const cd = rem % size;
      rem = Math.floor(rem / size);
      aoff += cd * (ast[d] ?? 0);
      boff += cd * (bst[d] ?? 0);
    }
    const cbase = bt * m * n;
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let k = k0; k < k0 + kc; k++) {
        const aik = a[aoff + i * sam + k * sak];
        if (aik === 0) continue;
        const bb = boff + k * sbk;
        for (let j = 0; j < n; j++) row[j] += aik * b[bb + j * sbn];
      }
      const out = cbase + i * n;
      for (let j = 0; j < n; j++) c[out + j] = add ? c[out + j] + row[j] : row[j];
    }
  }
}

/**
 * `matmul.tiled` (`matmul.tiled4a`, `4b`, `4ab` where an operand is read as vec4):
 * {@linkcode matmulKernel}'s product (same parameters) on the shared-memory tiles.
 */
function tiledMatmulSpec(a4: boolean, b4: boolean): GemmSpec {
  const key = `${a4}|${b4}`;
  let spec = tiledSpecs.get(key);
  if (spec) return spec;
  const loadA = a4
    ? `fn load_a4(bt: u32, r: u32, q: u32) -> vec4<f32> { return a[(aoff + r * p.sam + q) / 4u]; }`
    : `fn load_a(bt: u32, r: u32, q: u32) -> f32 { return a[aoff + r * p.sam + q * p.sak]; }`;
  const loadB = b4
    ? `fn load_b4(bt: u32, q: u32, col: u32) -> vec4<f32> { return b[(boff + q * p.sbk + col) / 4u]; }`
    : `fn load_b(bt: u32, q: u32, col: u32) -> f32 { return b[boff + q * p.sbk + col * p.sbn]; }`;
  const vec = `${a4 ? "a" : ""}${b4 ? "b" : ""}`;
  spec = {
    label: vec ? `matmul.tiled4${vec}` : "matmul.tiled",
    inputs: ["a", "b"],
    output: "c",
    params: {
      sam: "u32",
      sak: "u32",
      sbk: "u32",
      sbn: "u32",
      bshape: "u32x8",
      ast: "u32x8",
      bst: "u32x8",
    },
    vec4: vec ? { inputs: [...(a4 ? ["a"] : []), ...(b4 ? ["b"] : [])], a4, b4 } : undefined,
    wgsl: `var<private> aoff: u32;
var<private> boff: u32;
${loadA}
${loadB}
fn out_at(bt: u32, r: u32, col: u32) -> u32 { return (bt * p.m + r) * p.n + col; }`,
    prologue: `  var rem = bt;
  for (var d = ${MAX_BATCH_RANK}u; d > 0u; d--) {
    let size = u32x8_at(p.bshape, d - 1u);
    aoff += (rem % size) * u32x8_at(p.ast, d - 1u);
    boff += (rem % size) * u32x8_at(p.bst, d - 1u);
    rem = rem / size;
  }`,
    cpu: matmulCpu,
  };
  tiledSpecs.set(key, spec);
  return spec;
}

const tiledSpecs = new Map<string, GemmSpec>();

/** How the tiled matmul reads each operand: which axis its tile loads walk, and vec4 or not. */
export interface TiledMatmulReads extends GemmLayout {
  /** Read A 4 inner steps at a time (contiguous, 16-byte aligned rows). */
  a4: boolean;
  /** Read B 4 columns at a time (contiguous, 16-byte aligned rows). */
  b4: boolean;
}

/**
 * The workgroup-tiled matmul kernel with `tiles` (hardware adapters; see `tiled_gemm.ts`):
 * {@linkcode matmulKernel}'s parameters, `tiles_m`, `tiles_n` counting `bm x bn` blocks.
 */
export function tiledMatmulKernel(
  tiles: GemmTiles,
  reads: TiledMatmulReads = { ...ROW_MAJOR, a4: false, b4: false },
): Kernel {
  const a4 = reads.a4 && tiles.bk % 4 === 0;
  return tiledGemmKernel(tiledMatmulSpec(a4, reads.b4), tiles, reads);
}

/**
 * How the tiled matmul reads `product`'s operands: tile loads along each operand's contiguous
 * axis, and vec4 loads where that axis is contiguous, 16-byte aligned in every batch entry and a
 * multiple of 4 long.
 */
function tiledReads(a: Tensor, b: Tensor, product: StridedProduct): TiledMatmulReads {
  const { k, n, sam, sak, sbk, sbn, ast, bst } = product;
  const aligned = (t: Tensor, strides: readonly number[]) =>
    strides.every((s) => s % 4 === 0) && t.storage.byteLength % 16 === 0 && t.size > 0;
  return {
    aq: sak === 1 || sam !== 1,
    bq: sbk === 1 && sbn !== 1,
    a4: sak === 1 && k % 4 === 0 && sam % 4 === 0 && aligned(a, ast),
    b4: sbn === 1 && n % 4 === 0 && sbk % 4 === 0 && aligned(b, bst),
  };
}

/**
 * One strided, batched product as the kernels see it: an `m x n` output per batch entry, inner
 * axis `k`; A's element `(r, q)` at `aoff + r * sam + q * sak`, B's `(q, c)` at
 * `boff + q * sbk + c * sbn`, with `aoff`, `boff` from the batch index through the broadcast
 * batch shape `bshape` and strides `ast`, `bst` (8 entries, right-aligned).
 */
export interface StridedProduct {
  /** Output rows. */
  m: number;
  /** Output columns. */
  n: number;
  /** Inner axis. */
  k: number;
  /** A's row stride. */
  sam: number;
  /** A's inner-axis stride. */
  sak: number;
  /** B's inner-axis stride. */
  sbk: number;
  /** B's column stride. */
  sbn: number;
  /** Batch entries. */
  nbatch: number;
  /** The broadcast batch shape (8 axes, right-aligned, 1 where unused). */
  bshape: number[];
  /** A's batch strides (0 on broadcast axes). */
  ast: number[];
  /** B's batch strides. */
  bst: number[];
}

/**
 * An adapter-specific product, registered in {@linkcode VARIANTS}: runs `a x b` into `out` and
 * returns true, or returns false (having launched nothing) to leave it to the portable kernels.
 * Each variant reads `out.backend.profile` to decide.
 */
export type MatmulVariant = (
  a: Tensor,
  b: Tensor,
  out: Tensor,
  product: StridedProduct,
  options: MatmulOptions,
) => boolean;

/** The registered alternatives, tried in order before the portable kernels. */
const VARIANTS: readonly MatmulVariant[] = [uniformWindowMatmul];

/** Options of {@linkcode matmul}. */
export interface MatmulOptions {
  /** Read `a` as its transpose over the last two axes (no copy is made). */
  transposeA?: boolean;
  /** Read `b` as its transpose over the last two axes (no copy is made). */
  transposeB?: boolean;
  /** Force a register block (benchmarks and tests); chosen per adapter by default. */
  tile?: MatmulTile;
  /** Inner-axis iterations per dispatch; default the profile's `loopBudget`. */
  kChunk?: number;
  /**
   * Use (`true`) or avoid (`false`) the packed uniform-window kernels (see
   * {@linkcode matmulUniformKernel}); by default the profile's `matmulUniform` decides (large
   * f32 products on llvmpipe).
   */
  uniformPath?: boolean;
}

function shapeText(t: Tensor): string {
  return `[${t.shape.join(", ")}]`;
}

function operandOf(t: Tensor, transpose: boolean): Operand {
  const rows = t.shape[t.rank - 2], cols = t.shape[t.rank - 1];
  return transpose
    ? { rows: cols, cols: rows, rowStride: 1, colStride: cols }
    : { rows, cols, rowStride: cols, colStride: 1 };
}

/** Batch strides of `t` (in elements) against the broadcast batch shape `batch`. */
function batchStrides(t: Tensor, batch: readonly number[]): number[] {
  const own = t.shape.slice(0, -2);
  const matrix = t.shape[t.rank - 2] * t.shape[t.rank - 1];
  const strides = new Array<number>(MAX_BATCH_RANK).fill(0);
  let s = matrix;
  for (let d = own.length - 1; d >= 0; d--) {
    const at = MAX_BATCH_RANK - (own.length - d);
    strides[at] = own[d] === 1 && batch[batch.length - (own.length - d)] !== 1 ? 0 : s;
    s *= own[d];
  }
  return strides;
}

/** The product without recording a gradient. */
function matmulRaw(a: Tensor, b: Tensor, options: MatmulOptions): Tensor {
  const op = "matmul";
  const backend = backendOf(op, [a, b]);
  if (a.rank < 2 || b.rank < 2) {
    throw new TypeError(
      `${op}: operands must have at least 2 dimensions, got ${shapeText(a)} and ${shapeText(b)}`,
    );
  }
  if (a.dtype !== b.dtype || (a.dtype !== "f32" && a.dtype !== "f64")) {
    throw new TypeError(
      `${op}: expected two f32 (or f64 on the CPU) operands, got ${a.dtype} ${
        shapeText(a)
      } and ${b.dtype} ${shapeText(b)}`,
    );
  }
  const A = operandOf(a, options.transposeA ?? false);
  const B = operandOf(b, options.transposeB ?? false);
  if (A.cols !== B.rows) {
    throw new TypeError(
      `${op}: inner dimensions of ${shapeText(a)}${options.transposeA ? "ᵀ" : ""} and ${
        shapeText(b)
      }${options.transposeB ? "ᵀ" : ""} differ (${A.cols} and ${B.rows})`,
    );
  }
  let batch: number[];
  try {
    batch = broadcastShapes(op, [a.shape.slice(0, -2), b.shape.slice(0, -2)]);
  } catch {
    throw new TypeError(
      `${op}: batch dimensions of ${shapeText(a)} and ${shapeText(b)} do not broadcast`,
    );
  }
  if (batch.length > MAX_BATCH_RANK) {
    throw new RangeError(`${op}: ${batch.length} batch dimensions exceed ${MAX_BATCH_RANK}`);
  }
  const m = A.rows, n = B.cols, k = A.cols;
  const out = empty([...batch, m, n], a.dtype, backend);
  const nbatch = sizeOf(batch);
  if (out.size === 0) return out;
  const bshape = new Array<number>(MAX_BATCH_RANK).fill(1);
  batch.forEach((d, i) => (bshape[MAX_BATCH_RANK - batch.length + i] = d));
  const product: StridedProduct = {
    m,
    n,
    k,
    sam: A.rowStride,
    sak: A.colStride,
    sbk: B.rowStride,
    sbn: B.colStride,
    nbatch,
    bshape,
    ast: batchStrides(a, batch),
    bst: batchStrides(b, batch),
  };
  for (const variant of VARIANTS) if (variant(a, b, out, product, options)) return out;
  if (
    backend.profile.matmul === "tiled" && a.dtype === "f32" && options.tile === undefined &&
    options.kChunk === undefined
  ) {
    const { k: _, ...strides } = product;
    const reads = tiledReads(a, b, product);
    const kernel = (tiles: GemmTiles) => tiledMatmulKernel(tiles, reads);
    runTiledGemm(kernel, [a, b], out, product, strides);
    return out;
  }
  const tile = options.tile ?? chooseTile(backend, m, n);
  const kernel = matmulKernel(tile, a.dtype);
  const tilesM = Math.ceil(m / tile.tm), tilesN = Math.ceil(n / tile.tn);
  const { k: _, ...strides } = product;
  const params = { ...strides, k0: 0, kc: 0, accumulate: 0, tiles_m: tilesM, tiles_n: tilesN };
  const workgroups = Math.ceil((tilesM * tilesN * nbatch) / tile.workgroupSize);
  const chunk = options.kChunk ?? backend.profile.loopBudget;
  let k0 = 0;
  do {
    const kc = Math.min(chunk, k - k0);
    launch(kernel, [a, b], [out], { ...params, k0, kc, accumulate: k0 > 0 ? 1 : 0 }, workgroups);
    k0 += kc;
  } while (k0 < k);
  return out;
}

/**
 * Matrix product over the last two axes, `[..., M, K] x [..., K, N] -> [..., M, N]`,
 * broadcasting the batch axes (NumPy rules). Either operand can be read
 * transposed without a copy. Both operands need at least 2 dimensions.
 *
 * @example
 * ```ts
 * import { matmul } from "./matmul.ts";
 * import { tensor } from "../tensor.ts";
 * const a = tensor([[1, 2], [3, 4]]);
 * const b = tensor([[5, 6], [7, 8]]);
 * console.log(await matmul(a, b).data()); // Float32Array [19, 22, 43, 50]
 * console.log(await matmul(a, b, { transposeA: true }).data()); // Float32Array [26, 30, 38, 44]
 * ```
 *
 * @param a Left operand `[..., M, K]` (`[..., K, M]` with `transposeA`).
 * @param b Right operand `[..., K, N]` (`[..., N, K]` with `transposeB`).
 * @param options Transposes; a forced register block.
 * @returns `[...batch, M, N]`.
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const out = matmulRaw(a, b, options);
  const tA = options.transposeA ?? false, tB = options.transposeB ?? false;
  record("matmul", [a, b], [out], ([g]) => {
    let ga: Tensor | null = null, gb: Tensor | null = null;
    if (a.requiresGrad) {
      const full = tA
        ? matmulRaw(b, g!, { transposeA: tB, transposeB: true })
        : matmulRaw(g!, b, { transposeB: !tB });
      ga = sumTo(full, a.shape);
      if (ga !== full) full.dispose();
    }
    if (b.requiresGrad) {
      const full = tB
        ? matmulRaw(g!, a, { transposeA: true, transposeB: tA })
        : matmulRaw(a, g!, { transposeA: !tA });
      gb = sumTo(full, b.shape);
      if (gb !== full) full.dispose();
    }
    return [ga, gb];
  });
  return out;
}
