/**
 * OpenBLAS through `Deno.dlopen`: finding the library, loading `cblas_sgemm`, setting its
 * thread count. Everything that touches FFI is in this file, and nothing here runs at import:
 * a URL import without `--allow-ffi` (or in a browser) only fails when {@linkcode loadOpenBlas}
 * is called, with a {@linkcode NativeUnavailableError} saying why.
 *
 * @module
 */

import { NativeUnavailableError } from "../errors.ts";

/** `cblas_sgemm` on row-major `f32` matrices, each operand a view starting at its first element. */
export type Sgemm = (
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  beta: number,
  c: Float32Array,
  ldc: number,
) => void;

/** A loaded OpenBLAS. */
export interface OpenBlas {
  /** The file that was loaded (as given to `dlopen`). */
  readonly path: string;
  /** `openblas_get_config()`, e.g. `OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ... Zen`. */
  readonly config: string;
  /** The version, e.g. `0.3.21` (empty where the config does not say). */
  readonly version: string;
  /** Threads OpenBLAS uses for large products (small ones run on one). */
  readonly threads: number;
  /** The row-major single-precision product `C = alpha op(A) op(B) + beta C`. */
  readonly sgemm: Sgemm;
}

const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

/** Multiply-adds from which a product is worth splitting over threads. */
const PARALLEL_MIN_MACS = 1 << 22;

const SYMBOLS = {
  cblas_sgemm: {
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "f32",
      "buffer",
      "i32",
      "buffer",
      "i32",
      "f32",
      "buffer",
      "i32",
    ],
    result: "void",
  },
  openblas_set_num_threads: { parameters: ["i32"], result: "void" },
  openblas_get_config: { parameters: [], result: "pointer" },
} as const;

/** Where OpenBLAS is looked for, in order, when `BRL_BLAS` does not name a file. */
export const OPENBLAS_CANDIDATES: readonly string[] = [
  "libopenblas.so.0",
  "libopenblas.so",
  "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "/usr/lib64/libopenblas.so.0",
  "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
  "/usr/local/opt/openblas/lib/libopenblas.dylib",
  "libopenblas.dll",
];

const INSTALL_HINT =
  "install OpenBLAS (Debian/Ubuntu: apt-get install libopenblas0-pthread; macOS: brew install openblas) or set BRL_BLAS=/path/to/libopenblas.so";

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env
  }
}

/** Options of {@linkcode loadOpenBlas}. */
export interface OpenBlasOptions {
  /** The library file; default `BRL_BLAS`, else the first of {@linkcode OPENBLAS_CANDIDATES} that loads. */
  path?: string;
  /** Threads; default `BRL_THREADS`, else `navigator.hardwareConcurrency`. */
  threads?: number;
}

function threadCount(wanted: number | undefined): number {
  const text = wanted === undefined ? env("BRL_THREADS") : String(wanted);
  if (text !== undefined) {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`BRL_THREADS / threads must be a positive integer, got "${text}"`);
    }
    return n;
  }
  return Math.max(1, globalThis.navigator?.hardwareConcurrency ?? 1);
}

/**
 * Loads OpenBLAS and sets its thread count. Throws {@linkcode NativeUnavailableError} naming the
 * cause when FFI is missing or not permitted, or when no library loads (with what to install).
 *
 * @example
 * ```ts ignore
 * import { loadOpenBlas } from "./openblas.ts";
 * const blas = loadOpenBlas(); // needs --allow-ffi
 * const c = new Float32Array(1);
 * blas.sgemm(false, false, 1, 1, 2, 1, new Float32Array([1, 2]), 2, new Float32Array([3, 4]), 1, 0, c, 1);
 * console.log(c[0]); // 11
 * ```
 */
export function loadOpenBlas(options: OpenBlasOptions = {}): OpenBlas {
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  if (typeof deno?.dlopen !== "function") {
    throw new NativeUnavailableError("FFI is not available here (Deno.dlopen is missing)");
  }
  const threads = threadCount(options.threads);
  const given = options.path ?? env("BRL_BLAS");
  const candidates = given !== undefined ? [given] : OPENBLAS_CANDIDATES;
  let lib: Deno.DynamicLibrary<typeof SYMBOLS> | null = null;
  let path = "";
  const failures: string[] = [];
  for (const candidate of candidates) {
    try {
      lib = deno.dlopen(candidate, SYMBOLS);
      path = candidate;
      break;
    } catch (error) {
      if (
        error instanceof deno.errors.NotCapable || error instanceof deno.errors.PermissionDenied
      ) {
        throw new NativeUnavailableError(
          "FFI is not permitted (run with --allow-ffi to use the native backend)",
        );
      }
      failures.push(`${candidate}: ${(error as Error).message.split("\n")[0]}`);
    }
  }
  if (!lib) {
    const where = given !== undefined ? `BRL_BLAS=${given} did not load` : "OpenBLAS was not found";
    throw new NativeUnavailableError(`${where} (${failures.join("; ")}); ${INSTALL_HINT}`);
  }
  const symbols = lib.symbols;
  symbols.openblas_set_num_threads(threads);
  const configPointer = symbols.openblas_get_config();
  const config = configPointer ? Deno.UnsafePointerView.getCString(configPointer) : "OpenBLAS";
  const version = /OpenBLAS\s+([\d.]+)/.exec(config)?.[1] ?? "";
  // OpenBLAS splits even tiny products over all its threads, and the hand-off costs more than
  // it saves below a few million multiply-adds (measured: a 32x256x288 product takes 1.6x longer
  // on two threads than on one): small products run on one thread.
  let current = threads;
  const sgemm: Sgemm = (transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) => {
    const wanted = m * n * k < PARALLEL_MIN_MACS ? 1 : threads;
    if (wanted !== current) {
      symbols.openblas_set_num_threads(wanted);
      current = wanted;
    }
    symbols.cblas_sgemm(
      ROW_MAJOR,
      transA ? TRANS : NO_TRANS,
      transB ? TRANS : NO_TRANS,
      m,
      n,
      k,
      alpha,
      a,
      lda,
      b,
      ldb,
      beta,
      c,
      ldc,
    );
  };
  return { path, config, version, threads, sgemm };
}
