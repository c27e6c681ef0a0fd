/**
 * The page side of `bench/browser_gemm.ts`: the rows of `gemm_rows.ts` measured on the browser's
 * WebGPU adapter. Bundled for the browser; no Deno or `node:` API here.
 *
 * @module
 */

import { webgpu } from "../../tensor/device.ts";
import { type GemmOptions, type GemmRow, gemmRows } from "../gemm_rows.ts";

/** What the page reports. */
export interface GemmReport {
  /** The backend's adapter, in words. */
  adapter: string;
  /** The measured rows, in order. */
  rows: GemmRow[];
}

/** Measures `options`' rows on the page's WebGPU backend. */
export async function runGemm(options: GemmOptions): Promise<GemmReport> {
  const backend = await webgpu();
  const rows: GemmRow[] = [];
  for await (const row of gemmRows(backend, options)) rows.push(row);
  return { adapter: backend.description, rows };
}
