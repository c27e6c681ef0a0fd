import assert from "node:assert/strict";

const MOD = new URL("../mod.ts", import.meta.url).pathname;

// The browser build without a browser: what `deno task bundle:web` makes of mod.ts must import no
// `node:` built-in and must load where `Deno` does not exist (`tests/browser/` runs it in Chromium).
Deno.test("mod.ts bundles for the browser and loads without Deno or node: built-ins", async () => {
  const dir = await Deno.makeTempDir({ prefix: "brl-bundle-" });
  try {
    const bundle = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform", "browser", "-o", `${dir}/brl.js`, MOD],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(bundle.code, 0, new TextDecoder().decode(bundle.stderr));
    const text = await Deno.readTextFile(`${dir}/brl.js`);
    assert.deepEqual(text.match(/(from|import\(|require\()\s*["']node:[a-z_/]+/g) ?? [], []);
    await Deno.writeTextFile(
      `${dir}/main.js`,
      `delete globalThis.Deno;
const m = await import("./brl.js");
console.log(typeof Deno, typeof m.initBackend, typeof m.F.bucketedRankSort, typeof m.trainStep);`,
    );
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", `--allow-read=${dir}`, `${dir}/main.js`],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
    assert.equal(
      new TextDecoder().decode(run.stdout).trim(),
      "undefined function function function",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
