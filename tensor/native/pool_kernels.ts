/**
 * The `pool.*` kernels on the native backend: loops over planes and windows with the clipped
 * window bounds computed once per launch, instead of decoding every output index. Each keeps its
 * twin's contract (`tensor/ops/pool.ts`): max pooling takes the first maximum of the window in
 * row-major order and never a padding cell, and the gradients add the same terms in the same
 * order.
 *
 * @module
 */

import type { TypedArray } from "../dtype.ts";
import type { CpuTwin } from "../kernel.ts";

type PoolParams = Record<
  "total" | "h" | "w" | "kh" | "kw" | "sh" | "sw" | "ph" | "pw" | "ho" | "wo",
  number
>;

/** For each output position along one axis, the clipped input range `[lo[o], hi[o])`. */
function windowBounds(
  n: number,
  k: number,
  s: number,
  pad: number,
  size: number,
): [Int32Array, Int32Array] {
  const lo = new Int32Array(n), hi = new Int32Array(n);
  for (let o = 0; o < n; o++) {
    const start = o * s - pad;
    lo[o] = Math.max(0, start);
    hi[o] = Math.max(lo[o], Math.min(size, start + k));
  }
  return [lo, hi];
}

/** `pool.max`: the window maximum and its in-plane index (first maximum in row-major order). */
const maxPool: CpuTwin = (ins, outs, params) => {
  const p = params as PoolParams;
  const x = ins.x, out = outs.out, idx = outs.idx;
  const { h, w, ho, wo } = p;
  const [ylo, yhi] = windowBounds(ho, p.kh, p.sh, p.ph, h);
  const [xlo, xhi] = windowBounds(wo, p.kw, p.sw, p.pw, w);
  const planes = p.total / (ho * wo);
  let o = 0;
  for (let plane = 0; plane < planes; plane++) {
    const base = plane * h * w;
    for (let oy = 0; oy < ho; oy++) {
      const y0 = ylo[oy], y1 = yhi[oy];
      for (let ox = 0; ox < wo; ox++, o++) {
        const x0 = xlo[ox], x1 = xhi[ox];
        if (y0 >= y1 || x0 >= x1) {
          out[o] = -Infinity;
          idx[o] = -1;
          continue;
        }
        let at = y0 * w + x0;
        let best = x[base + at];
        if (x1 - x0 === 3) {
          // The common 3-wide window, unrolled (the same comparisons in the same order).
          for (let r = at, j = base + at; r < y1 * w; r += w, j += w) {
            const a = x[j], b = x[j + 1], c = x[j + 2];
            if (a > best) {
              best = a;
              at = r;
            }
            if (b > best) {
              best = b;
              at = r + 1;
            }
            if (c > best) {
              best = c;
              at = r + 2;
            }
          }
        } else {
          for (let y = y0; y < y1; y++) {
            const row = y * w;
            for (let xx = x0; xx < x1; xx++) {
              const v = x[base + row + xx];
              if (v > best) {
                best = v;
                at = row + xx;
              }
            }
          }
        }
        out[o] = best;
        idx[o] = at;
      }
    }
  }
};

/**
 * `pool.max_grad`: each output gradient added to the input element its window picked, in output
 * order (the twin's order). The sums round at each addition, where the twin rounds once: an
 * element picked by three or more overlapping windows may differ in its last bit.
 */
const maxPoolGrad: CpuTwin = (ins, outs, params) => {
  const p = params as PoolParams;
  const g = ins.g, idx = ins.idx, dx = outs.dx;
  const hw = p.h * p.w, area = p.ho * p.wo;
  const planes = p.total / hw;
  dx.fill(0, 0, p.total);
  for (let plane = 0, o = 0; plane < planes; plane++) {
    const base = plane * hw;
    for (const end = o + area; o < end; o++) {
      const at = idx[o];
      if (at >= 0) dx[base + at] += g[o];
    }
  }
};

/**
 * `dst[plane, r, c]` = the sum of `src[plane]` (`srcH x srcW`) over rows `[rlo[r], rhi[r])` and
 * columns `[clo[c], chi[c])`, in increasing order, divided by `area`.
 */
function rectangleMeans(
  src: TypedArray,
  dst: TypedArray,
  planes: number,
  srcH: number,
  srcW: number,
  [rlo, rhi]: [Int32Array, Int32Array],
  [clo, chi]: [Int32Array, Int32Array],
  area: number,
): void {
  const rows = rlo.length, cols = clo.length;
  let o = 0;
  for (let plane = 0; plane < planes; plane++) {
    const base = plane * srcH * srcW;
    for (let r = 0; r < rows; r++) {
      const r0 = rlo[r], r1 = rhi[r];
      for (let c = 0; c < cols; c++, o++) {
        const c0 = clo[c], c1 = chi[c];
        let acc = 0;
        for (let y = r0; y < r1; y++) {
          const row = base + y * srcW;
          for (let xx = c0; xx < c1; xx++) acc += src[row + xx];
        }
        dst[o] = acc / area;
      }
    }
  }
}

/** `pool.avg`: the window sum (padding cells count as zeros) over `kh * kw`. */
const avgPool: CpuTwin = (ins, outs, params) => {
  const p = params as PoolParams;
  rectangleMeans(
    ins.x,
    outs.out,
    p.total / (p.ho * p.wo),
    p.h,
    p.w,
    windowBounds(p.ho, p.kh, p.sh, p.ph, p.h),
    windowBounds(p.wo, p.kw, p.sw, p.pw, p.w),
    p.kh * p.kw,
  );
};

/**
 * `pool.avg_grad`: each input element sums the gradients of the windows that hold it (rows and
 * columns of covering windows in increasing order, as the twin sums them) over `kh * kw`.
 */
const avgPoolGrad: CpuTwin = (ins, outs, params) => {
  const p = params as PoolParams;
  rectangleMeans(
    ins.g,
    outs.dx,
    p.total / (p.h * p.w),
    p.ho,
    p.wo,
    coverBounds(p.h, p.kh, p.sh, p.ph, p.ho),
    coverBounds(p.w, p.kw, p.sw, p.pw, p.wo),
    p.kh * p.kw,
  );
};

/** For each input position along one axis, the output range `[lo[c], hi[c])` whose windows cover it. */
function coverBounds(
  n: number,
  k: number,
  s: number,
  pad: number,
  outSize: number,
): [Int32Array, Int32Array] {
  const lo = new Int32Array(n), hi = new Int32Array(n);
  for (let c = 0; c < n; c++) {
    const t = c + pad;
    lo[c] = Math.max(0, Math.floor((t - k + s) / s));
    hi[c] = Math.max(lo[c], Math.min(outSize - 1, Math.floor(t / s)) + 1);
  }
  return [lo, hi];
}

/** `pool.up`: each input row widened `sw` times, then written `sh` times. */
const upsample: CpuTwin = (ins, outs, params) => {
  const p = params as PoolParams;
  const x = ins.x, out = outs.out;
  const { w, sh, sw, wo } = p;
  const rows = p.total / wo / sh;
  for (let r = 0, o = 0; r < rows; r++) {
    const src = r * w, first = o;
    for (let c = 0; c < w; c++) {
      const v = x[src + c];
      for (let d = 0; d < sw; d++) out[o++] = v;
    }
    for (let d = 1; d < sh; d++, o += wo) out.copyWithin(o, first, first + wo);
  }
};

/** `pool.up_grad`: each input element sums its `sh x sw` block, rows then columns. */
const upsampleGrad: CpuTwin = (ins, outs, params) => {
  const p = params as PoolParams;
  const g = ins.g, dx = outs.dx;
  const { w, sh, sw, wo } = p;
  const rows = p.total / w;
  const acc = new Float64Array(w);
  for (let r = 0, i = 0; r < rows; r++) {
    acc.fill(0);
    for (let dy = 0; dy < sh; dy++) {
      const row = (r * sh + dy) * wo;
      for (let x = 0, j = row; x < w; x++) {
        let a = acc[x];
        for (let d = 0; d < sw; d++) a += g[j++];
        acc[x] = a;
      }
    }
    for (let x = 0; x < w; x++) dx[i++] = acc[x];
  }
};

/** Native replacements of the `pool.*` twins, by kernel label. */
export const POOL_KERNELS: Readonly<Record<string, CpuTwin>> = {
  "pool.max": maxPool,
  "pool.max_grad": maxPoolGrad,
  "pool.avg": avgPool,
  "pool.avg_grad": avgPoolGrad,
  "pool.up": upsample,
  "pool.up_grad": upsampleGrad,
};
