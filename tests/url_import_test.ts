import assert from "node:assert/strict";
import { extname, join, normalize } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("mod.ts works when imported by URL with no import map or permissions", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = normalize(decodeURIComponent(new URL(req.url).pathname));
    if (path.includes("..")) return new Response("forbidden", { status: 403 });
    try {
      const body = await Deno.readFile(join(ROOT, path));
      const type = extname(path) === ".ts" ? "application/typescript" : "application/octet-stream";
      return new Response(body, { headers: { "content-type": type } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  const { port } = server.addr;
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      join(dir, "main.ts"),
      `import { add, initBackend, sum, tensor } from "http://127.0.0.1:${port}/mod.ts";
await initBackend();
console.log((await sum(add(tensor([1, 2, 3]), 1)).data())[0]);`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", "--reload", `--allow-import=127.0.0.1:${port}`, "main.ts"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
      env: { DENO_DIR: join(dir, "deno_dir"), NO_COLOR: "1" },
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "9");
    // No --allow-ffi: the automatic choice falls back with one line instead of failing.
    const lines = stderr.split("\n").filter((line) => line.startsWith("brl: "));
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0], /brl: backend (webgpu|cpu): .*(FFI is not permitted|hardware WebGPU)/);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
