/**
 * `deno task serve`: serves `web/` (the demo page and its bundle in `web/dist/`, made by
 * `deno task bundle:web`) on 127.0.0.1. Port: `--port N` (default 8000; 0 picks a free one).
 *
 * @module
 */

import { parseArgs } from "node:util";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
  ".css": "text/css",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** A handler serving the files under `root` (a folder URL); `/` is `index.html`. */
export function staticFiles(root: URL): (request: Request) => Promise<Response> {
  return async (request) => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    if (path.split("/").includes("..")) return new Response("Forbidden", { status: 403 });
    const file = new URL(`.${path.endsWith("/") ? `${path}index.html` : path}`, root);
    try {
      const body = await Deno.readFile(file);
      const ext = path.endsWith("/") ? ".html" : path.slice(path.lastIndexOf("."));
      return new Response(body, {
        headers: { "content-type": TYPES[ext] ?? "application/octet-stream" },
      });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.IsADirectory) {
        return new Response(`Not found: ${path}`, { status: 404 });
      }
      throw error;
    }
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { port: { type: "string" } } });
  const port = Number(values.port ?? 8000);
  const root = new URL("./", import.meta.url);
  try {
    await Deno.stat(new URL("dist/demo.js", root));
  } catch {
    console.error("brl: web/dist/demo.js is missing: run `deno task bundle:web` first");
    Deno.exit(1);
  }
  Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: ({ port }) => console.error(`brl: demo at http://127.0.0.1:${port}/`),
  }, staticFiles(root));
}
