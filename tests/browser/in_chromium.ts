// The module in headless Chromium on its WebGPU adapter (SwiftShader on machines without a GPU):
// the kernel-parity suite against the CPU twin, and the demo page training the default detector.
// Run with `deno task test:browser`; skipped, saying why, where Chromium is not installed. Not
// named *_test.ts on purpose: `deno task test` finds no Chromium-only test.
import assert from "node:assert/strict";
import { bundleForBrowser, Chromium, findChromium } from "./chromium.ts";
import type { SuiteReport } from "./page_suite.ts";
import type { DemoResult } from "../../web/demo.ts";
import { staticFiles } from "../../web/serve.ts";

const ROOT = new URL("../../", import.meta.url);
const CHROMIUM = await findChromium();
if (!CHROMIUM) {
  console.warn(
    "tests/browser: skipped: no Chromium found (apt-get install chromium, or set BRL_CHROMIUM)",
  );
}

/**
 * Demo settings of the test: as the detectors' own "a few steps on one batch" tests, one batch
 * of two 64 px images fitted for 10 steps at a small learning rate, so that the loss must fall.
 */
const DEMO_QUERY = "steps=10&batchSize=2&size=64&trainImages=2&valImages=4&seed=0&lr=0.01";

Deno.test({
  name: "the module in headless Chromium (WebGPU)",
  ignore: !CHROMIUM,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const site = await Deno.makeTempDir({ prefix: "brl-browser-" });
  const runDir = new URL(`runs/browser/${new Date().toISOString().replaceAll(":", "-")}/`, ROOT);
  await bundleForBrowser(new URL("tests/browser/page_suite.ts", ROOT), `${site}/suite.js`);
  await bundleForBrowser(new URL("web/demo.ts", ROOT), `${site}/dist/demo.js`);
  await Deno.copyFile(new URL("web/index.html", ROOT), `${site}/index.html`);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    staticFiles(new URL(`file://${site}/`)),
  );
  const origin = `http://127.0.0.1:${server.addr.port}`;
  try {
    await using browser = await Chromium.launch(CHROMIUM!);
    await browser.goto(`${origin}/index.html`);

    await t.step("navigator.gpu gives an adapter", async () => {
      const adapter = await browser.evaluate<string | null>(
        `navigator.gpu?.requestAdapter().then((a) => a && a.info.vendor + " " + a.info.architecture)`,
      );
      assert.ok(adapter, "Chromium has no WebGPU adapter: check the flags in WEBGPU_FLAGS");
      console.log(`  adapter: ${adapter}`);
    });

    const report = await browser.evaluate<SuiteReport>(
      `import("/suite.js").then((m) => m.runSuite())`,
    );
    for (const r of report.results) {
      await t.step(`parity: ${r.name} (${r.ms.toFixed(0)} ms)`, () => assert.ok(r.ok, r.detail));
    }

    await t.step("the demo page trains the default detector and draws detections", async () => {
      await browser.goto(`${origin}/index.html?${DEMO_QUERY}&autostart=1`);
      const result = await browser.evaluate<DemoResult>("globalThis.brlDemo");
      await Deno.mkdir(runDir, { recursive: true });
      await Deno.writeFile(new URL("demo.png", runDir), await browser.screenshot());
      await Deno.writeTextFile(new URL("demo.json", runDir), JSON.stringify(result, null, 2));
      const { losses } = result;
      const head = mean(losses.slice(0, 3)), tail = mean(losses.slice(-3));
      console.log(
        `  ${losses.length} steps: first ${result.firstStepSeconds.toFixed(1)} s, then ${
          result.stepsPerSecond.toFixed(2)
        } steps/s; loss ${head.toFixed(3)} -> ${tail.toFixed(3)}; ${result.drawn} boxes drawn; ${
          new URL("demo.png", runDir).pathname
        }`,
      );
      assert.ok(losses.every(Number.isFinite), `Non-finite loss: ${losses}`);
      assert.ok(tail < head, `The loss did not fall: ${losses.map((v) => v.toFixed(3))}`);
      assert.ok(result.drawn > 0, "No detections were drawn");
    });
    const errors = browser.log.filter((line) => line.startsWith("uncaught"));
    assert.deepEqual(errors, [], "Uncaught errors in the page");
  } finally {
    await server.shutdown();
    await Deno.remove(site, { recursive: true });
  }
});

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}
