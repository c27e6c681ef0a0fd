/**
 * The geometry of a 2-D convolution and the uniform parameters its im2col-style kernels share
 * (`conv.ts` and the llvmpipe variants of `software/`).
 *
 * @module
 */

/** Invocations per workgroup of the convolution's element-wise kernels. */
export const CONV_WORKGROUP = 64;

/**
 * The geometry of one convolution: `n` images of `c` x `h` x `w` convolved
 * with `cout` filters of `kh` x `kw` (stride `sh`, `sw`; padding `ph`, `pw`;
 * dilation `dh`, `dw`) into `ho` x `wo` outputs, in `groups` channel groups.
 */
export interface Geometry {
  /** Channel groups. */
  groups: number;
  /** Images. */
  n: number;
  /** Input channels. */
  c: number;
  /** Input height. */
  h: number;
  /** Input width. */
  w: number;
  /** Output channels. */
  cout: number;
  /** Kernel height. */
  kh: number;
  /** Kernel width. */
  kw: number;
  /** Stride (y). */
  sh: number;
  /** Stride (x). */
  sw: number;
  /** Padding (y). */
  ph: number;
  /** Padding (x). */
  pw: number;
  /** Dilation (y). */
  dh: number;
  /** Dilation (x). */
  dw: number;
  /** Output height. */
  ho: number;
  /** Output width. */
  wo: number;
}

/**
 * The uniform parameters of a geometry's planes, taps and steps (input and output sizes, kernel,
 * stride, padding, dilation), which every convolution kernel reads; {@linkcode spatialParams}
 * gives their values.
 */
export const SPATIAL_PARAMS = {
  h: "u32",
  w: "u32",
  kh: "u32",
  kw: "u32",
  sh: "u32",
  sw: "u32",
  ph: "u32",
  pw: "u32",
  dh: "u32",
  dw: "u32",
  ho: "u32",
  wo: "u32",
} as const;

/** The values of {@linkcode SPATIAL_PARAMS} for `g`. */
export function spatialParams(g: Geometry): Record<keyof typeof SPATIAL_PARAMS, number> {
  const { h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo } = g;
  return { h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo };
}

/** The uniform parameters of {@linkcode geometryParams}, for a kernel's `params`. */
export const GEOMETRY_PARAMS = { total: "u32", b0: "u32", c: "u32", ...SPATIAL_PARAMS } as const;

/** The values of {@linkcode GEOMETRY_PARAMS} for `g`: `total` invocations from image `b0`. */
export function geometryParams(g: Geometry, total: number, b0: number): Record<string, number> {
  return { total, b0, c: g.c, ...spatialParams(g) };
}
