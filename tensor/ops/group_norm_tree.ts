/**
 * Group normalisation in few launches, for adapters whose profile says
 * `reductions: "workgroup"` (hardware GPUs): the `norm.tree_*` kernels.
 *
 * A statistics row is one (sample, group): `cpg * hw` contiguous elements of an NCHW input. The
 * forward pass is one launch, `norm.tree_forward`, one workgroup per row: a strided loop sums the
 * row and a tree in workgroup memory (`workgroup_tree.ts`) gives the mean; a second loop and tree
 * give the sum of squared deviations (two passes over the row, for accuracy); a third loop writes
 * `(x - mean) * rstd * weight + bias`. Mean and rstd are kept for the backward pass, which is two
 * launches: `norm.tree_grad_sums` (one workgroup per row) sums `g` and `g * xhat` over each
 * channel plane of the row (a tree per plane for wide planes; for many narrow ones an invocation
 * per plane, `norm.tree_grad_sums_planes`) and, scaled by the channel's weight, over the row;
 * `norm.tree_grad_input` writes the input gradient per run of a plane and, in its first `C`
 * invocations, the weight and bias gradients (the plane sums added over the samples).
 *
 * On llvmpipe workgroup barriers are slow (invocations run as coroutines) and loops end after
 * ~65,535 iterations, so its profile keeps the chunked kernels of `norm.ts`; rows whose strided
 * loops would pass the profile's `loopBudget` ({@linkcode groupNormTreeFits}) do too.
 *
 * @module
 */

import { needsGrad, record } from "../autograd.ts";
import type { DType } from "../dtype.ts";
import { entryPoint, type Kernel, kernelCache } from "../kernel.ts";
import { empty, type Tensor } from "../tensor.ts";
import { backendOf, launch } from "./launch.ts";
import {
  type Layout,
  PER,
  PLANE_PARAMS,
  PLANE_WGSL,
  planeCpu,
  planeParams,
} from "./norm_planes.ts";
import {
  REDUCE_WORKGROUP,
  rowFitsWorkgroup,
  stridedIterations,
  treeReduceWgsl,
} from "./workgroup_tree.ts";

const cached = kernelCache();

/** The workgroup's row from uniform builtins (the trees' barriers need uniform control flow). */
const ROW_WGSL = `  let r = wid.y * nwg.x + wid.x;
  if (r >= p.rows) { return; }`;

/** A strided loop of uniform bounds over `[0, count)`: `body` sees `k`, this invocation's index. */
function strided(count: string, body: string): string {
  return `for (var k0 = 0u; k0 < ${count}; k0 += WG) {
    let k = k0 + lid;
    if (k < ${count}) { ${body} }
  }`;
}

/**
 * `norm.tree_forward`: per row `r` of `n` elements, `stats[r]` = mean, `stats[rows + r]` = rstd,
 * and the normalised (affine) output.
 */
function forwardKernel(dtype: DType, relu: boolean): Kernel {
  return cached(`forward|${dtype}|${relu}`, () => ({
    label: relu ? "norm.tree_forward_relu" : "norm.tree_forward",
    inputs: { x: dtype, w: dtype, b: dtype },
    outputs: { out: dtype, stats: dtype },
    params: { rows: "u32", n: "u32", hw: "u32", cpg: "u32", gn: "u32", affine: "u32", eps: "f32" },
    workgroupSize: REDUCE_WORKGROUP,
    code: `${treeReduceWgsl("tree_sum", "f32", (a, b) => `${a} + ${b}`)}
${entryPoint(REDUCE_WORKGROUP)}
${ROW_WGSL}
  let base = r * p.n;
  let count = max(f32(p.n), 1.0);
  var s = 0.0;
  ${strided("p.n", "s += x[base + k];")}
  let mu = tree_sum(lid, s) / count;
  var m2 = 0.0;
  ${strided("p.n", "let d = x[base + k] - mu; m2 += d * d;")}
  let rs = inverseSqrt(tree_sum(lid, m2) / count + p.eps);
  if (lid == 0u) {
    stats[r] = mu;
    stats[p.rows + r] = rs;
  }
  let c0 = (r % p.gn) * p.cpg;
  ${
      strided(
        "p.n",
        `var scale = rs;
      var shift = 0.0;
      if (p.affine != 0u) {
        let ch = c0 + k / p.hw;
        scale = rs * w[ch];
        shift = b[ch];
      }
      out[base + k] = ${
          relu
            ? "max((x[base + k] - mu) * scale + shift, 0.0)"
            : "(x[base + k] - mu) * scale + shift"
        };`,
      )
    }
}`,
    cpu(ins, outs, params) {
      const { rows, n, hw, cpg, gn, affine, eps } = params as Record<string, number>;
      const { x, w, b } = ins;
      const { out, stats } = outs;
      for (let r = 0; r < rows; r++) {
        const base = r * n, count = Math.max(n, 1);
        let s = 0;
        for (let k = 0; k < n; k++) s += x[base + k];
        const mu = s / count;
        let m2 = 0;
        for (let k = 0; k < n; k++) m2 += (x[base + k] - mu) ** 2;
        const rs = 1 / Math.sqrt(m2 / count + eps);
        stats[r] = mu;
        stats[rows + r] = rs;
        const c0 = (r % gn) * cpg;
        for (let k = 0; k < n; k++) {
          const ch = c0 + Math.floor(k / hw);
          const scale = affine ? rs * w[ch] : rs, shift = affine ? b[ch] : 0;
          const v = (x[base + k] - mu) * scale + shift;
          out[base + k] = relu ? Math.max(v, 0) : v;
        }
      }
    },
  }));
}

/** How `norm.tree_grad_sums` sums a row's planes: a tree per plane, or an invocation per plane. */
type PlaneSums = "tree" | "plane";

/**
 * The cheaper way to sum a row's `cpg` planes of `hw` elements that fits `loopBudget`, or null:
 * `"tree"` (all invocations stride over each plane in turn, then combine through a tree, ~8
 * barriers: wide planes) or `"plane"` (each invocation sums whole planes, one tree for the row:
 * many narrow planes, as layer norm's `[rows, d]` view with planes of one element).
 */
function planeSums(layout: Layout, loopBudget: number): PlaneSums | null {
  const { cpg, hw } = layout;
  const treeLoop = cpg * stridedIterations(hw), planeLoop = stridedIterations(cpg) * hw;
  const tree = treeLoop <= loopBudget, plane = planeLoop <= loopBudget;
  if (tree && plane) return planeLoop < treeLoop + cpg * TREE_COST ? "plane" : "tree";
  return tree ? "tree" : plane ? "plane" : null;
}

/** Loop iterations a tree's barriers are reckoned to cost, when choosing {@linkcode PlaneSums}. */
const TREE_COST = 8;

/** The body of `norm.tree_grad_sums` for `mode`, after the row's `mu`, `rs`, `c0`, `first`. */
const PLANE_SUMS_WGSL: Record<PlaneSums, string> = {
  tree: `var s1 = 0.0;
  var s2 = 0.0;
  for (var j = 0u; j < p.cpg; j++) {
    let plane = first + j;
    let base = plane * p.hw;
    var acc = vec2<f32>(0.0);
    ${strided("p.hw", "let gv = grad_at(base + k); acc += vec2<f32>(gv, gv * (x[base + k] - mu));")}
    let total = tree_sum2(lid, acc);
    let sgx = total.y * rs;
    var wc = 1.0;
    if (p.affine != 0u) { wc = w[c0 + j]; }
    s1 += wc * total.x;
    s2 += wc * sgx;
    if (lid == 0u) {
      sums[plane] = total.x;
      sums[p.planes + plane] = sgx;
    }
  }
  let row = vec2<f32>(s1, s2);`,
  plane: `var acc = vec2<f32>(0.0);
  ${
    strided(
      "p.cpg",
      `let plane = first + k;
      let base = plane * p.hw;
      var sg = 0.0;
      var sgx = 0.0;
      for (var e = base; e < base + p.hw; e++) {
        let gv = grad_at(e);
        sg += gv;
        sgx += gv * (x[e] - mu);
      }
      sgx = sgx * rs;
      sums[plane] = sg;
      sums[p.planes + plane] = sgx;
      var wc = 1.0;
      if (p.affine != 0u) { wc = w[c0 + k]; }
      acc += vec2<f32>(wc * sg, wc * sgx);`,
    )
  }
  let row = tree_sum2(lid, acc);`,
};

/** `grad_at(k)`: the output gradient at element `k`. */
const GRAD_AT_WGSL = `fn grad_at(k: u32) -> f32 { return g[k]; }`;

/**
 * `grad_at(k)` after a fused ReLU: the output gradient where the output `y` is positive, else 0,
 * also stored in `gm` (every element is read exactly once) for `norm.tree_grad_input`.
 */
const GRAD_AT_RELU_WGSL = `fn grad_at(k: u32) -> f32 {
  let v = select(0.0, g[k], y[k] > 0.0);
  gm[k] = v;
  return v;
}`;

/**
 * `norm.tree_grad_sums` (`mode` `"tree"`) or `norm.tree_grad_sums_planes` (`"plane"`): `sums`
 * holds, for the `planes = N * C` planes and `rows` rows,
 * `[sum g per plane | sum g * xhat per plane | s1 per row | s2 per row]` with
 * `s1 = sum w[c] g`, `s2 = sum w[c] g xhat` over the row (`w` 1 without affine). With `relu`,
 * `g` is the gradient through the fused ReLU (`_relu` labels), also written to `gm`.
 */
function gradSumsKernel(dtype: DType, mode: PlaneSums, relu: boolean): Kernel {
  return cached(`grad_sums|${dtype}|${mode}|${relu}`, () => ({
    label: `${mode === "tree" ? "norm.tree_grad_sums" : "norm.tree_grad_sums_planes"}${
      relu ? "_relu" : ""
    }`,
    inputs: {
      g: dtype,
      x: dtype,
      stats: dtype,
      w: dtype,
      ...(relu ? { y: dtype } : {}),
    } as Record<string, DType>,
    outputs: { sums: dtype, ...(relu ? { gm: dtype } : {}) } as Record<string, DType>,
    params: {
      rows: "u32",
      planes: "u32",
      hw: "u32",
      c: "u32",
      cpg: "u32",
      gn: "u32",
      affine: "u32",
    },
    workgroupSize: REDUCE_WORKGROUP,
    code: `${treeReduceWgsl("tree_sum2", "vec2<f32>", (a, b) => `${a} + ${b}`)}
${relu ? GRAD_AT_RELU_WGSL : GRAD_AT_WGSL}
${entryPoint(REDUCE_WORKGROUP)}
${ROW_WGSL}
  let mu = stats[r];
  let rs = stats[p.rows + r];
  let c0 = (r % p.gn) * p.cpg;
  let first = (r / p.gn) * p.c + c0;
  ${PLANE_SUMS_WGSL[mode]}
  if (lid == 0u) {
    sums[2u * p.planes + r] = row.x;
    sums[2u * p.planes + p.rows + r] = row.y;
  }
}`,
    cpu(ins, outs, params) {
      const { rows, planes, hw, c, cpg, gn, affine } = params as Record<string, number>;
      const { g, x, stats, w, y } = ins;
      const { sums, gm } = outs;
      // The gradient through the ReLU (kept in gm for the input-gradient pass), or g itself.
      const gradAt = relu ? (k: number) => (gm[k] = y[k] > 0 ? g[k] : 0) : (k: number) => g[k];
      for (let r = 0; r < rows; r++) {
        const mu = stats[r], rs = stats[rows + r];
        const c0 = (r % gn) * cpg, first = Math.floor(r / gn) * c + c0;
        let s1 = 0, s2 = 0;
        for (let j = 0; j < cpg; j++) {
          const plane = first + j, base = plane * hw;
          let sg = 0, sgx = 0;
          for (let k = base; k < base + hw; k++) {
            const gv = gradAt(k);
            sg += gv;
            sgx += gv * (x[k] - mu);
          }
          sgx *= rs;
          const wc = affine ? w[c0 + j] : 1;
          s1 += wc * sg;
          s2 += wc * sgx;
          sums[plane] = sg;
          sums[planes + plane] = sgx;
        }
        sums[2 * planes + r] = s1;
        sums[2 * planes + rows + r] = s2;
      }
    },
  }));
}

/**
 * `norm.tree_grad_input`: `dx = a g - k2 (x - mean) - k0` per run of a plane (with
 * `a = rstd w[c]`, `k2 = rstd² s2 / m`, `k0 = rstd s1 / m`, `m` the row's length) where `need_dx`,
 * and in invocations `c < C`, with affine, `gw[c]` and `gb[c]`: the plane sums of `g * xhat` and
 * `g` added over the samples.
 */
function gradInputKernel(dtype: DType): Kernel {
  return cached(`grad_input|${dtype}`, () => ({
    label: "norm.tree_grad_input",
    inputs: { g: dtype, x: dtype, stats: dtype, w: dtype, sums: dtype },
    outputs: { dx: dtype, gw: dtype, gb: dtype },
    params: { ...PLANE_PARAMS, rows: "u32", batch: "u32", need_dx: "u32", inv_m: "f32" },
    workgroupSize: REDUCE_WORKGROUP,
    code: `${entryPoint(REDUCE_WORKGROUP)}
  if (i < p.c && p.affine != 0u) {
    var sg = 0.0;
    var sgx = 0.0;
    for (var n = 0u; n < p.batch; n++) {
      sg += sums[n * p.c + i];
      sgx += sums[p.planes + n * p.c + i];
    }
    gw[i] = sgx;
    gb[i] = sg;
  }
  if (p.need_dx == 0u) { return; }
${PLANE_WGSL}
  let mu = stats[r];
  let rs = stats[p.rows + r];
  var a = rs;
  if (p.affine != 0u) { a = rs * w[ch]; }
  let k2 = rs * rs * sums[2u * p.planes + p.rows + r] * p.inv_m;
  let k0 = rs * sums[2u * p.planes + r] * p.inv_m;
  for (var k = base + start; k < base + stop; k++) { dx[k] = a * g[k] - k2 * (x[k] - mu) - k0; }
}`,
    cpu(ins, outs, params) {
      const p = params as Record<string, number>;
      const { g, x, stats, w, sums } = ins;
      const { dx, gw, gb } = outs;
      if (p.affine) {
        for (let ch = 0; ch < p.c; ch++) {
          let sg = 0, sgx = 0;
          for (let n = 0; n < p.batch; n++) {
            sg += sums[n * p.c + ch];
            sgx += sums[p.planes + n * p.c + ch];
          }
          gw[ch] = sgx;
          gb[ch] = sg;
        }
      }
      if (!p.need_dx) return;
      for (let i = 0; i < p.planes * p.nch; i++) {
        const { base, start, stop, ch, r } = planeCpu(i, p);
        const mu = stats[r], rs = stats[p.rows + r];
        const a = p.affine ? rs * w[ch] : rs;
        const k2 = rs * rs * sums[2 * p.planes + p.rows + r] * p.inv_m;
        const k0 = rs * sums[2 * p.planes + r] * p.inv_m;
        for (let k = base + start; k < base + stop; k++) dx[k] = a * g[k] - k2 * (x[k] - mu) - k0;
      }
    },
  }));
}

/**
 * Whether group norm of `layout` runs on the `norm.tree_*` kernels within `loopBudget`: the
 * forward pass's strided loops over a row, the gradient sums' loops over the row's planes, and
 * the weight gradient's loop over the samples.
 *
 * @example
 * ```ts
 * import { groupNormTreeFits } from "./group_norm_tree.ts";
 * const layout = { batch: 2, c: 256, hw: 4096, gn: 32, cpg: 8 };
 * console.log(groupNormTreeFits(layout, 65_536)); // true
 * console.log(groupNormTreeFits(layout, 64)); // false: 8 planes of 16 iterations each, or 4096
 * ```
 */
export function groupNormTreeFits(layout: Layout, loopBudget: number): boolean {
  return planeSums(layout, loopBudget) !== null &&
    rowFitsWorkgroup(layout.cpg * layout.hw, loopBudget) && layout.batch <= loopBudget;
}

/**
 * Group normalisation of `x` (`[N, C, ...]`, already checked; `layout.gn` groups) on the
 * `norm.tree_*` kernels: one launch forward, two backward. `weight` and `bias` come together or
 * not at all. With `relu`, the output is `max(0, ·)` of the normalised input in the same launch,
 * and the backward pass masks the gradient in its first launch (no extra launches).
 *
 * @example
 * ```ts
 * import { groupNormTree } from "./group_norm_tree.ts";
 * import { tensor } from "../tensor.ts";
 * const x = tensor([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 2, 2]);
 * const y = groupNormTree(x, { batch: 1, c: 2, hw: 4, gn: 1, cpg: 2 }, undefined, undefined, 1e-5);
 * console.log(y.shape); // [1, 2, 2, 2], mean 0 and variance ~1
 * ```
 *
 * @param x Input `[N, C, ...]`.
 * @param layout Its planes and groups.
 * @param weight Per-channel scale `[C]`, or undefined.
 * @param bias Per-channel shift `[C]`, or undefined.
 * @param eps Added to the variance.
 * @param relu Whether a ReLU follows, fused.
 * @returns A tensor of `x`'s shape.
 */
export function groupNormTree(
  x: Tensor,
  layout: Layout,
  weight: Tensor | undefined,
  bias: Tensor | undefined,
  eps: number,
  relu = false,
): Tensor {
  const backend = backendOf("groupNorm", [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])]);
  const { batch, c, hw, gn, cpg } = layout;
  const rows = batch * gn, n = cpg * hw;
  const affine = weight && bias ? 1 : 0;
  const out = empty(x.shape, x.dtype, backend);
  const stats = empty([2 * rows], x.dtype, backend);
  // Without affine parameters the kernels bind the input in their place (and never read it).
  const w = weight ?? x, b = bias ?? x;
  if (rows > 0) {
    launch(
      forwardKernel(x.dtype, relu),
      [x, w, b],
      [out, stats],
      { rows, n, hw, cpg, gn, affine, eps },
      rows,
    );
  }
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  const mode = planeSums(layout, backend.profile.loopBudget) ?? "tree";
  if (!needsGrad(inputs)) {
    stats.dispose();
    return out;
  }
  record("groupNorm", inputs, [out], ([g]) => {
    const planes = batch * c;
    const sums = empty([2 * planes + 2 * rows], x.dtype, backend);
    // The gradient through the ReLU, written by the sums' pass, read by the input-gradient pass.
    const gm = relu ? empty(x.shape, x.dtype, backend) : g!;
    if (rows > 0) {
      launch(
        gradSumsKernel(x.dtype, mode, relu),
        relu ? [g!, x, stats, w, out] : [g!, x, stats, w],
        relu ? [sums, gm] : [sums],
        { rows, planes, hw, c, cpg, gn, affine },
        rows,
      );
    }
    const needDx = x.requiresGrad ? 1 : 0;
    // Outputs nobody asked for are one-element stand-ins.
    const dx = empty(needDx ? x.shape : [1], x.dtype, backend);
    const gw = empty(affine ? [c] : [1], x.dtype, backend);
    const gb = empty(affine ? [c] : [1], x.dtype, backend);
    const plan = planeParams(layout, PER, affine);
    const invocations = Math.max(needDx ? plan.invocations : 0, affine ? c : 0);
    if (invocations > 0) {
      launch(
        gradInputKernel(x.dtype),
        [gm, x, stats, w, sums],
        [dx, gw, gb],
        { ...plan.params, rows, batch, need_dx: needDx, inv_m: 1 / Math.max(n, 1) },
        Math.ceil(invocations / REDUCE_WORKGROUP),
      );
    }
    sums.dispose();
    stats.dispose();
    if (relu) gm.dispose();
    const keep = (t: Tensor, wanted: boolean | undefined) => {
      if (wanted) return t;
      t.dispose();
      return null;
    };
    const grads = [
      keep(dx, needDx === 1),
      keep(gw, weight?.requiresGrad),
      keep(gb, bias?.requiresGrad),
    ];
    return [grads[0], ...(weight ? [grads[1]] : []), ...(bias ? [grads[2]] : [])];
  });
  return out;
}
