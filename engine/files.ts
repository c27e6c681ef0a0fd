/**
 * File helpers shared by training, evaluation and benches: atomic writes (reports, charts,
 * checkpoints, rewritten `metrics.jsonl`) and folder creation.
 *
 * @module
 */

/** Options of {@linkcode writeFileAtomic}. */
export interface WriteAtomicOptions {
  /** Flush the temporary file to disk before the rename (default `true`). */
  fsync?: boolean;
  /** File mode of the new file (ignored on Windows). */
  mode?: number;
}

/** The folder part of a path (`"."` when it has none). */
function dirOf(path: string): string {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return i < 0 ? "." : i === 0 ? path.slice(0, 1) : path.slice(0, i);
}

/**
 * Create a folder and its parents; nothing happens when it already exists.
 *
 * @example
 * ```ts
 * import { ensureDir } from "./files.ts";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await ensureDir(`${root}/runs/a/b`);
 * await ensureDir(`${root}/runs/a/b`);
 * assert.ok((await Deno.stat(`${root}/runs/a/b`)).isDirectory);
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @param path Folder path.
 */
export async function ensureDir(path: string | URL): Promise<void> {
  await Deno.mkdir(path, { recursive: true });
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
}

/**
 * Write a file atomically: the data goes to `path.tmp-<pid>-<random>` in the
 * same folder, is flushed to disk, and the temporary file is then renamed over
 * `path`. Readers see either the old or the new content, never a part; when
 * anything fails (including a stream that errors) the temporary file is
 * removed, the old file is left as it was and the error is rethrown.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./files.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/report.json`, JSON.stringify({ ok: true }));
 * assert.equal(await Deno.readTextFile(`${dir}/report.json`), '{"ok":true}');
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param path Destination (its folder must exist).
 * @param data Text (written as UTF-8), bytes, or a stream of byte chunks.
 * @param options Flush and mode.
 * @throws {TypeError} When `data` is none of the accepted types.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array | ReadableStream<Uint8Array>,
  options: WriteAtomicOptions = {},
): Promise<void> {
  if (
    typeof data !== "string" && !(data instanceof Uint8Array) && !(data instanceof ReadableStream)
  ) {
    throw new TypeError(`Cannot write "${path}": data must be a string, Uint8Array or stream`);
  }
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  const tmp = `${path}.tmp-${Deno.pid}-${rand}`;
  try {
    const file = await Deno.open(tmp, {
      write: true,
      createNew: true,
      ...(options.mode === undefined ? {} : { mode: options.mode }),
    });
    try {
      if (typeof data === "string") await writeAll(file, new TextEncoder().encode(data));
      else if (data instanceof Uint8Array) await writeAll(file, data);
      else for await (const chunk of data) await writeAll(file, chunk);
      if (options.fsync ?? true) await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  if (options.fsync ?? true) await syncDir(dirOf(path));
}

/** Flush a folder entry after a rename where the platform allows it (best effort). */
async function syncDir(dir: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch {
    // Some file systems refuse fsync on folders; the rename itself is still atomic.
  }
}
