/**
 * The matmul and conv2d table of `bench/matmul_conv_table.ts`, measured inside headless Chromium
 * on its WebGPU adapter (SwiftShader on a machine without a GPU; a real GPU's where Chromium
 * has one), for the llvmpipe-style default paths and the hardware kernels side by side.
 *
 * Run: `deno run -A bench/browser_gemm.ts [--sizes 256,512,1024] [--paths auto,hardware]
 * [--repeat 2]` (needs Chromium: `apt-get install chromium`, or `BRL_CHROMIUM`).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { bundleForBrowser, Chromium, findChromium } from "../tests/browser/chromium.ts";
import { staticFiles } from "../web/serve.ts";
import type { GemmReport } from "./browser/gemm_page.ts";
import { GEMM_TABLE_HEADER, gemmRowLine } from "./gemm_rows.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    sizes: { type: "string", default: "256,512,1024" },
    paths: { type: "string", default: "auto,hardware" },
    repeat: { type: "string", default: "2" },
  },
});
const chromium = await findChromium();
if (!chromium) {
  console.error("browser_gemm: no Chromium found (apt-get install chromium, or set BRL_CHROMIUM)");
  Deno.exit(1);
}
const site = await Deno.makeTempDir({ prefix: "brl-gemm-" });
await bundleForBrowser(new URL("./browser/gemm_page.ts", import.meta.url), `${site}/gemm.js`);
await Deno.writeTextFile(`${site}/index.html`, "<!doctype html><title>brl gemm</title>\n");
const server = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen() {} },
  staticFiles(new URL(`file://${site}/`)),
);
try {
  await using browser = await Chromium.launch(chromium);
  await browser.goto(`http://127.0.0.1:${server.addr.port}/index.html`);
  const options = {
    sizes: values.sizes!.split(",").map(Number),
    paths: values.paths!.split(","),
    repeat: Number(values.repeat),
  };
  const report = await browser.evaluate<GemmReport>(
    `import("/gemm.js").then((m) => m.runGemm(${JSON.stringify(options)}))`,
  );
  console.log(`Chromium, adapter: ${report.adapter}\n`);
  console.log(GEMM_TABLE_HEADER);
  for (const row of report.rows) console.log(gemmRowLine(row));
} finally {
  await server.shutdown();
  await Deno.remove(site, { recursive: true });
}
