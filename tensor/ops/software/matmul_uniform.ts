/**
 * The packed uniform-window matmul (llvmpipe): a uniform buffer load costs there ~2-4 ns (a
 * vec4) against ~15 ns for a storage load, so both operands are first packed into panels of
 * {@linkcode MATMUL_PANEL} rows (`[group][k][64]`, see {@linkcode packMatmulOperand}; contiguous
 * operands are themselves read through uniform windows), then each dispatch of
 * `matmul.uniform16` binds 4 + 4 windows of 64 KiB (256 inner steps of one A panel and one B
 * panel each) and 16 invocations accumulate a 64 x 64 output block in 16 x 16 register blocks.
 * Inner axes over 1024 take several dispatches that accumulate. `software/conv_uniform.ts`
 * builds its packed operands directly. The profile's `matmulUniform` chooses it.
 *
 * @module
 */

import {
  entryPoint,
  type Kernel,
  kernelCache,
  UNIFORM_WINDOW_FLOATS,
  UNIFORM_WINDOW_SPAN,
  type UniformWindow,
} from "../../kernel.ts";
import { empty, type Tensor } from "../../tensor.ts";
import { launch, launchAtWindow, launchWindowed } from "../launch.ts";
import type { MatmulVariant } from "../matmul.ts";

const cached = kernelCache();

/** Rows (or columns) of one packed operand panel, and of one uniform dispatch's output block. */
const PANEL = 64;
/** Dispatches a packing by rows or runs may take before the plain pack kernel is used instead. */
const MAX_PACK_DISPATCHES = 4096;
/** Inner-axis steps one 64 KiB window holds for a `PANEL`-wide panel. */
const KSEG = UNIFORM_WINDOW_FLOATS / PANEL;
/** Windows of each operand one uniform dispatch binds (2 * SEGS + params <= 12 uniform buffers). */
const SEGS = 4;

/**
 * `matmul.pack`: copies a strided operand into panels `[group][k][PANEL]`
 * (`dst[(g * k + q) * PANEL + j] = src[base + (g * PANEL + j) * srow + q * sk]`, zero
 * for rows past `rows`), so that each 64 KiB window holds `KSEG` inner steps of one panel.
 */
export function matmulPackKernel(): Kernel {
  const key = "pack";
  return cached(key, () => ({
    label: "matmul.pack",
    inputs: { src: "f32" },
    outputs: { dst: "f32" },
    params: {
      total: "u32",
      rows: "u32",
      k: "u32",
      srow: "u32",
      sk: "u32",
      base: "u32",
      kin: "u32",
      souter: "u32",
    },
    workgroupSize: 64,
    code: `${entryPoint(64)}
  if (i >= p.total) { return; }
  let j = i % ${PANEL}u;
  let q = (i / ${PANEL}u) % p.k;
  let r = (i / (${PANEL}u * p.k)) * ${PANEL}u + j;
  let inside = r < p.rows && q < p.k;
  let at = select(0u, p.base + r * p.srow + (q / p.kin) * p.souter + (q % p.kin) * p.sk, inside);
  dst[i] = select(0.0, src[at], inside);
}`,
    cpu(ins, outs, p) {
      const src = ins.src, dst = outs.dst;
      const { total, rows, k, srow, sk, base, kin, souter } = p as Record<string, number>;
      for (let i = 0; i < total; i++) {
        const j = i % PANEL, q = Math.floor(i / PANEL) % k;
        const r = Math.floor(i / (PANEL * k)) * PANEL + j;
        const at = base + r * srow + Math.floor(q / kin) * souter + (q % kin) * sk;
        dst[i] = r < rows && q < k ? src[at] : 0;
      }
    },
  }));
}

/**
 * `matmul.uniform16`: one `PANEL x PANEL` output block per dispatch, read from
 * packed panels through uniform windows `a0..a3`, `b0..b3` (each `KSEG` inner
 * steps; `kc0..kc3` of them are used). 16 invocations (2 workgroups of 8) each
 * hold a 16 x 16 block of accumulators. On llvmpipe a uniform-buffer load costs
 * a few ns where a storage load costs ~15 ns, so this is several times faster
 * than {@linkcode matmulKernel} there.
 *
 * `wide` (`matmul.uniform16_wide`, for inner axes of at most `KSEG`): four
 * output blocks per dispatch, rows `m0 + 64 s` from window `a<s>`, all with
 * columns from `b0` and `kc0` inner steps (8 workgroups of 8).
 */
export function matmulUniformKernel(wide = false): Kernel {
  const key = `uniform16|${wide}`;
  return cached(key, () => {
    const lines: string[] = [entryPoint(8)];
    if (wide) {
      lines.push(`  if (i >= 64u) { return; }`);
      lines.push(`  let blk = i / 16u;`);
      lines.push(`  let m0 = p.m0 + blk * ${PANEL}u;`);
      lines.push(`  if (m0 >= p.m) { return; }`);
    } else {
      lines.push(`  if (i >= 16u) { return; }`);
      lines.push(`  let m0 = p.m0;`);
    }
    lines.push(`  let lr = (i % 16u) / 4u;`);
    lines.push(`  let lc = i % 4u;`);
    for (let r = 0; r < 16; r++) {
      for (let q = 0; q < 4; q++) lines.push(`  var acc${r}_${q} = vec4<f32>(0.0);`);
    }
    for (let s = 0; s < SEGS; s++) {
      const b = wide ? "b0" : `b${s}`;
      if (wide) lines.push(`  if (blk == ${s}u) {`);
      lines.push(`  for (var k = 0u; k < p.kc${wide ? 0 : s}; k++) {`);
      lines.push(`    let ab = k * 16u + lr * 4u;`);
      lines.push(`    let bb = k * 16u + lc * 4u;`);
      for (let q = 0; q < 4; q++) lines.push(`    let x${q} = a${s}[ab + ${q}u];`);
      for (let q = 0; q < 4; q++) lines.push(`    let y${q} = ${b}[bb + ${q}u];`);
      for (let r = 0; r < 16; r++) lines.push(`    let xs${r} = x${r >> 2}[${r & 3}];`);
      for (let r = 0; r < 16; r++) {
        for (let q = 0; q < 4; q++) {
          lines.push(`    acc${r}_${q} = fma(vec4<f32>(xs${r}), y${q}, acc${r}_${q});`);
        }
      }
      lines.push(`  }`);
      if (wide) lines.push(`  }`);
    }
    lines.push(`  let add = p.accumulate != 0u;`);
    lines.push(`  let col0 = p.n0 + lc * 16u;`);
    for (let r = 0; r < 16; r++) {
      lines.push(`  let row${r} = m0 + lr * 16u + ${r}u;`);
      lines.push(`  if (row${r} < p.m) {`);
      lines.push(`    let at${r} = p.cbase + row${r} * p.n + col0;`);
      for (let q = 0; q < 4; q++) {
        for (let e = 0; e < 4; e++) {
          const c = q * 4 + e;
          lines.push(
            `    if (col0 + ${c}u < p.n) { c[at${r} + ${c}u] = select(acc${r}_${q}[${e}], c[at${r} + ${c}u] + acc${r}_${q}[${e}], add); }`,
          );
        }
      }
      lines.push(`  }`);
    }
    lines.push(`}`);
    const uniforms: string[] = [];
    for (let s = 0; s < SEGS; s++) uniforms.push(`a${s}`);
    for (let s = 0; s < SEGS; s++) uniforms.push(`b${s}`);
    return {
      label: wide ? "matmul.uniform16_wide" : "matmul.uniform16",
      inputs: {},
      outputs: { c: "f32" },
      params: {
        m: "u32",
        n: "u32",
        m0: "u32",
        n0: "u32",
        kc0: "u32",
        kc1: "u32",
        kc2: "u32",
        kc3: "u32",
        accumulate: "u32",
        cbase: "u32",
      },
      workgroupSize: 8,
      code: lines.join("\n"),
      uniforms,
      cpu: (ins, outs, p) => matmulUniformCpu(ins, outs, p, wide),
    };
  });
}

/** The CPU twin of {@linkcode matmulUniformKernel}. */
function matmulUniformCpu(
  inputs: Record<string, ArrayLike<number>>,
  outputs: Record<string, { [i: number]: number; length: number }>,
  params: Record<string, number | readonly number[]>,
  wide: boolean,
): void {
  const c = outputs.c;
  const { m, n, m0, n0, accumulate, cbase } = params as Record<string, number>;
  // Blocks of output rows, each with the (window, step count) pairs it sums over.
  const blocks = wide
    ? [0, 1, 2, 3].map((s) => ({ row0: m0 + s * PANEL, parts: [[s, 0, params.kc0 as number]] }))
    : [{ row0: m0, parts: [0, 1, 2, 3].map((s) => [s, s, params[`kc${s}`] as number]) }];
  for (const { row0, parts } of blocks) {
    for (let r = row0; r < Math.min(m, row0 + PANEL); r++) {
      for (let col = n0; col < Math.min(n, n0 + PANEL); col++) {
        let acc = 0;
        for (const [sa, sb, kc] of parts) {
          const a = inputs[`a${sa}`], b = inputs[`b${sb}`];
          for (let k = 0; k < kc; k++) acc += a[k * PANEL + r - row0] * b[k * PANEL + col - n0];
        }
        const at = cbase + r * n + col;
        c[at] = accumulate ? c[at] + acc : acc;
      }
    }
  }
}

/**
 * `matmul.pack_runs`: packs an operand whose rows are contiguous in memory
 * (`srow == 1`), read through a 64 KiB uniform window `sw` (`window`) or from
 * storage `src` (offsets then count from its start): invocation `i` copies the
 * 64-element run of panel `g0 + i % ng` at inner step `q0 + i / ng`, read at
 * window offset `delta + (i / ng) * sk + (i % ng) * PANEL`, to
 * `dst[((g * k) + q) * PANEL ...]` (zero past `rows`).
 */
export function matmulPackRunsKernel(window: boolean): Kernel {
  const key = `pack_runs|${window}`;
  return cached(key, (): Kernel => ({
    label: `matmul.pack_runs_${window ? "window" : "storage"}`,
    inputs: window ? {} : { src: "f32" },
    outputs: { dst: "f32" },
    params: {
      total: "u32",
      q0: "u32",
      g0: "u32",
      ng: "u32",
      delta: "u32",
      sk: "u32",
      rows: "u32",
      k: "u32",
    },
    workgroupSize: 64,
    uniforms: window ? ["sw"] : [],
    code: `${entryPoint(64)}
  if (i >= p.total) { return; }
  let qq = i / p.ng;
  let gg = i % p.ng;
  let g = p.g0 + gg;
  let e0 = p.delta + qq * p.sk + gg * ${PANEL}u;
  let d0 = (g * p.k + p.q0 + qq) * ${PANEL}u;
  let last = min(p.rows - g * ${PANEL}u, ${PANEL}u);
  for (var j = 0u; j < ${PANEL}u; j++) {
    let e = e0 + min(j, last - 1u);
    dst[d0 + j] = select(0.0, ${window ? "sw[e / 4u][e % 4u]" : "src[e]"}, j < last);
  }
}`,
    cpu(ins, outs, p) {
      const sw = window ? ins.sw : ins.src, dst = outs.dst;
      const { total, q0, g0, ng, delta, sk, rows, k } = p as Record<string, number>;
      for (let i = 0; i < total; i++) {
        const qq = Math.floor(i / ng), gg = i % ng, g = g0 + gg;
        const e0 = delta + qq * sk + gg * PANEL, d0 = (g * k + q0 + qq) * PANEL;
        for (let j = 0; j < PANEL; j++) {
          dst[d0 + j] = g * PANEL + j < rows ? sw[e0 + j] : 0;
        }
      }
    },
  }));
}

/**
 * `matmul.pack_rows`: packs rows `[r0, r0 + nr)` of an operand whose inner axis
 * is contiguous (`sk == 1`), inner steps `[qofs, qofs + kin)`, read through a
 * 64 KiB uniform window `sw` (`window`) or from storage `src`: invocation `q`
 * reads `delta + j * srow + q` for `j < nr` and writes `dst[((r / PANEL) * k +
 * qofs + q) * PANEL + r % PANEL]`.
 */
export function matmulPackRowsKernel(window: boolean): Kernel {
  const key = `pack_rows|${window}`;
  return cached(key, (): Kernel => ({
    label: `matmul.pack_rows_${window ? "window" : "storage"}`,
    inputs: window ? {} : { src: "f32" },
    outputs: { dst: "f32" },
    params: { kin: "u32", r0: "u32", nr: "u32", qofs: "u32", delta: "u32", srow: "u32", k: "u32" },
    workgroupSize: 64,
    uniforms: window ? ["sw"] : [],
    code: `${entryPoint(64)}
  if (i >= p.kin) { return; }
  let q = p.qofs + i;
  for (var j = 0u; j < p.nr; j++) {
    let r = p.r0 + j;
    let e = p.delta + j * p.srow + i;
    dst[((r / ${PANEL}u) * p.k + q) * ${PANEL}u + r % ${PANEL}u] = ${
      window ? "sw[e / 4u][e % 4u]" : "src[e]"
    };
  }
}`,
    cpu(ins, outs, p) {
      const sw = window ? ins.sw : ins.src, dst = outs.dst;
      const { kin, r0, nr, qofs, delta, srow, k } = p as Record<string, number>;
      for (let i = 0; i < kin; i++) {
        for (let j = 0; j < nr; j++) {
          const r = r0 + j;
          dst[(Math.floor(r / PANEL) * k + qofs + i) * PANEL + (r % PANEL)] =
            sw[delta + j * srow + i];
        }
      }
    },
  }));
}

/**
 * Packs an operand with a contiguous inner axis (optionally split at `kin`) by
 * rows through uniform windows; returns false (having launched nothing) when
 * rows do not fit a window or that would take too many dispatches.
 */
function packRows(
  src: Tensor,
  out: Tensor,
  rows: number,
  k: number,
  srow: number,
  base: number,
  kin: number,
  souter: number,
): boolean {
  const span = UNIFORM_WINDOW_SPAN;
  if (kin > span || k % kin !== 0 || srow < kin) return false;
  const nr = Math.floor((span - kin) / srow) + 1;
  const outer = k / kin;
  if (outer * Math.ceil(rows / nr) > MAX_PACK_DISPATCHES) return false;
  for (let o = 0; o < outer; o++) {
    for (let r0 = 0; r0 < rows; r0 += nr) {
      const start = base + o * souter + r0 * srow;
      const params = { kin, r0, nr: Math.min(nr, rows - r0), qofs: o * kin, srow, k };
      const [windowed, storage] = [matmulPackRowsKernel(true), matmulPackRowsKernel(false)];
      launchAtWindow(windowed, storage, src, out, start, params, Math.ceil(kin / 64));
    }
  }
  return true;
}

/** Layout of a packed operand (see {@linkcode packMatmulOperand}). */
export interface PackedShape {
  /** Panels of {@linkcode MATMUL_PANEL} rows. */
  groups: number;
  /** Inner length of each panel (the inner axis, at least 1). */
  kp: number;
  /** Elements to allocate: the panels plus one window of slack past the last. */
  size: number;
}

/** Rows per packed panel (and output block edge) of the uniform-window product. */
export const MATMUL_PANEL: number = PANEL;

/** The packed layout of an operand with `rows` rows (or columns) and inner axis `k`. */
export function packedShape(rows: number, k: number): PackedShape {
  const groups = Math.ceil(rows / PANEL), kp = Math.max(k, 1);
  return { groups, kp, size: groups * kp * PANEL + UNIFORM_WINDOW_FLOATS };
}

/**
 * Packs `rows x k` of a strided f32 operand into `[groups][k][MATMUL_PANEL]`
 * panels for {@linkcode packedMatmulInto}: element `(r, q)` is read at
 * `base + r * srow + floor(q / kin) * souter + (q % kin) * sk` (`kin` splits the
 * inner axis in two, e.g. images x pixels; default: not split).
 *
 * ```ts ignore
 * const pa = packMatmulOperand(a, m, k, k, 1, 0); // row-major [m, k]
 * ```
 */
export function packMatmulOperand(
  src: Tensor,
  rows: number,
  k: number,
  srow: number,
  sk: number,
  base: number,
  kin = k,
  souter = 0,
): Tensor {
  const { groups, kp, size } = packedShape(rows, k);
  const out = empty([size], "f32", src.backend);
  if (srow === 1 && kin >= k && k > 0 && rows > 0 && packRuns(src, out, rows, k, sk, base)) {
    return out;
  }
  const split = Math.min(Math.max(kin, 1), k);
  if (sk === 1 && k > 0 && rows > 0 && packRows(src, out, rows, k, srow, base, split, souter)) {
    return out;
  }
  const total = groups * kp * PANEL;
  launch(
    matmulPackKernel(),
    [src],
    [out],
    { total, rows, k: kp, srow, sk, base, kin: Math.max(kin, 1), souter },
    Math.ceil(total / 64),
  );
  return out;
}

/**
 * Packs an operand with contiguous rows by runs of {@linkcode PANEL} through
 * uniform windows; returns false (having launched nothing) when that would
 * take too many dispatches.
 */
function packRuns(
  src: Tensor,
  out: Tensor,
  rows: number,
  k: number,
  sk: number,
  base: number,
): boolean {
  const groups = Math.ceil(rows / PANEL);
  const span = UNIFORM_WINDOW_SPAN;
  // Dispatches: [q0, q0 + nq) x [g0, g0 + ng), all runs inside one window.
  const plan: { q0: number; nq: number; g0: number; ng: number }[] = [];
  // Count the dispatches before listing them: a plan past the limit is never used.
  if (rows <= span && sk >= rows) {
    const per = Math.max(1, Math.floor((span - rows) / sk) + 1);
    if (Math.ceil(k / per) > MAX_PACK_DISPATCHES) return false;
    for (let q0 = 0; q0 < k; q0 += per) {
      plan.push({ q0, nq: Math.min(per, k - q0), g0: 0, ng: groups });
    }
  } else {
    const per = Math.floor(span / PANEL);
    if (k * Math.ceil(groups / per) > MAX_PACK_DISPATCHES) return false;
    for (let q0 = 0; q0 < k; q0++) {
      for (let g0 = 0; g0 < groups; g0 += per) {
        plan.push({ q0, nq: 1, g0, ng: Math.min(per, groups - g0) });
      }
    }
  }
  for (const { q0, nq, g0, ng } of plan) {
    const start = base + q0 * sk + g0 * PANEL;
    const total = nq * ng;
    const params = { total, q0, g0, ng, sk, rows, k };
    const [windowed, storage] = [matmulPackRunsKernel(true), matmulPackRunsKernel(false)];
    launchAtWindow(windowed, storage, src, out, start, params, Math.ceil(total / 64));
  }
  return true;
}

/**
 * `out[cbase + r * n + c] (+)= sum_q A(r, q) * B(q, c)` for `r < m, c < n, q < k`
 * from packed operands (`pa` from A's rows, `pb` from B's columns, both with
 * inner axis `k`; see {@linkcode packMatmulOperand}), through uniform windows.
 * With `accumulate` the products are added to `out`. f32 only (the CPU backend runs the twins).
 *
 * ```ts ignore
 * packedMatmulInto(pa, pb, out, m, n, k, 0);
 * ```
 */
export function packedMatmulInto(
  pa: Tensor,
  pb: Tensor,
  out: Tensor,
  m: number,
  n: number,
  k: number,
  cbase: number,
  accumulate = false,
): void {
  const kernel = matmulUniformKernel();
  const panelBytes = Math.max(k, 1) * PANEL * 4;
  const window = (t: Tensor, g: number, seg: number): UniformWindow => ({
    storage: t.storage,
    byteOffset: g * panelBytes + (seg * KSEG < k ? seg : 0) * UNIFORM_WINDOW_FLOATS * 4,
  });
  if (k <= KSEG && m > PANEL) {
    // Short inner axis: four row blocks per dispatch (fewer, larger dispatches).
    const wide = matmulUniformKernel(true);
    for (let gm = 0; gm * PANEL < m; gm += SEGS) {
      for (let gn = 0; gn * PANEL < n; gn++) {
        const uniformInputs: UniformWindow[] = [];
        for (let s = 0; s < SEGS; s++) {
          uniformInputs.push(window(pa, (gm + s) * PANEL < m ? gm + s : gm, 0));
        }
        for (let s = 0; s < SEGS; s++) uniformInputs.push(window(pb, gn, 0));
        launchWindowed(wide, uniformInputs, [], [out], {
          m,
          n,
          m0: gm * PANEL,
          n0: gn * PANEL,
          kc0: k,
          kc1: 0,
          kc2: 0,
          kc3: 0,
          accumulate: accumulate ? 1 : 0,
          cbase,
        }, 8);
      }
    }
    return;
  }
  for (let gm = 0; gm * PANEL < m; gm++) {
    for (let gn = 0; gn * PANEL < n; gn++) {
      let s0 = 0;
      do {
        const kc = [0, 1, 2, 3].map((s) => Math.max(0, Math.min(KSEG, k - (s0 + s) * KSEG)));
        const uniformInputs: UniformWindow[] = [];
        for (let s = 0; s < SEGS; s++) uniformInputs.push(window(pa, gm, s0 + s));
        for (let s = 0; s < SEGS; s++) uniformInputs.push(window(pb, gn, s0 + s));
        launchWindowed(kernel, uniformInputs, [], [out], {
          m,
          n,
          m0: gm * PANEL,
          n0: gn * PANEL,
          kc0: kc[0],
          kc1: kc[1],
          kc2: kc[2],
          kc3: kc[3],
          accumulate: s0 > 0 || accumulate ? 1 : 0,
          cbase,
        }, 2);
        s0 += SEGS;
      } while (s0 * KSEG < k);
    }
  }
}

/**
 * The product through packed panels and uniform windows (f32), as a registered
 * {@linkcode MatmulVariant}: taken where `options.uniformPath` asks for it, or by default where the
 * profile's `matmulUniform` is `"on"`, or `"auto"` where uniform windows pay (`uniformWindows`)
 * and the product is large enough.
 */
export const uniformWindowMatmul: MatmulVariant = (a, b, out, product, options) => {
  const { m, n, k, nbatch, bshape, ast, bst } = product;
  const { matmulUniform: mode, uniformWindows } = out.backend.profile;
  const useUniform = options.uniformPath ??
    (options.tile === undefined && options.kChunk === undefined && mode !== "off" &&
      a.dtype === "f32" && (mode === "on" || (uniformWindows && m >= 16 && n >= 16 &&
        // Each matrix of a batch costs a few launches: batches need larger matrices.
        m * n * k >= (nbatch === 1 ? 1 << 18 : 1 << 20))));
  if (!useUniform || a.dtype !== "f32" || k === 0) return false;
  const packedA = new Map<number, Tensor>(), packedB = new Map<number, Tensor>();
  for (let bt = 0; bt < nbatch; bt++) {
    let rem = bt, aoff = 0, boff = 0;
    for (let d = bshape.length - 1; d >= 0; d--) {
      const cd = rem % bshape[d];
      rem = Math.floor(rem / bshape[d]);
      aoff += cd * ast[d];
      boff += cd * bst[d];
    }
    let pa = packedA.get(aoff);
    if (!pa) packedA.set(aoff, pa = packMatmulOperand(a, m, k, product.sam, product.sak, aoff));
    let pb = packedB.get(boff);
    if (!pb) packedB.set(boff, pb = packMatmulOperand(b, n, k, product.sbn, product.sbk, boff));
    packedMatmulInto(pa, pb, out, m, n, k, bt * m * n);
  }
  for (const t of packedA.values()) t.dispose();
  for (const t of packedB.values()) t.dispose();
  return true;
};
