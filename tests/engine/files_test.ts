import assert from "node:assert/strict";
import { ensureDir, writeFileAtomic } from "../../engine/files.ts";

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

/** A byte stream that yields `first`, then waits for `release()` before yielding `second` (or failing). */
function gatedStream(first: Uint8Array, second: Uint8Array | Error) {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  let sent = 0;
  let firstPulled!: () => void;
  const pulled = new Promise<void>((r) => firstPulled = r);
  const stream = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (sent === 0) {
        sent++;
        c.enqueue(first);
        firstPulled();
        return;
      }
      await gate;
      if (second instanceof Error) c.error(second);
      else {
        c.enqueue(second);
        c.close();
      }
    },
  });
  return { stream, release, pulled };
}

Deno.test("writeFileAtomic()", async (t) => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/out.bin`;

  await t.step("writes text, bytes and streams, and leaves no temporary file", async () => {
    await writeFileAtomic(path, "héllo\n");
    assert.equal(await Deno.readTextFile(path), "héllo\n");
    await writeFileAtomic(path, Uint8Array.of(1, 2, 3));
    assert.deepEqual(await Deno.readFile(path), Uint8Array.of(1, 2, 3));
    await writeFileAtomic(path, ReadableStream.from([Uint8Array.of(9), Uint8Array.of(8, 7)]));
    assert.deepEqual(await Deno.readFile(path), Uint8Array.of(9, 8, 7));
    await writeFileAtomic(path, "", { fsync: false });
    assert.equal((await Deno.readFile(path)).length, 0);
    assert.deepEqual(await listDir(dir), ["out.bin"]);
  });

  await t.step(
    "mid-write the target still holds the old content (unlike a plain write)",
    async () => {
      const old = new Uint8Array(4096).fill(0x61);
      const a = new Uint8Array(4096).fill(0x62), b = new Uint8Array(4096).fill(0x63);
      await Deno.writeFile(path, old);
      // Control: a plain streaming write exposes a partial file.
      {
        const g = gatedStream(a, b);
        const writing = Deno.writeFile(path, g.stream);
        await g.pulled;
        await new Promise((r) => setTimeout(r, 20));
        const seen = await Deno.readFile(path);
        g.release();
        await writing;
        assert.notDeepEqual(seen, old, "the control should observe a torn file");
      }
      await Deno.writeFile(path, old);
      const g = gatedStream(a, b);
      const writing = writeFileAtomic(path, g.stream);
      await g.pulled;
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(await Deno.readFile(path), old);
      assert.equal((await listDir(dir)).length, 2, "the temporary file exists while writing");
      g.release();
      await writing;
      const done = await Deno.readFile(path);
      assert.deepEqual(done.subarray(0, 4096), a);
      assert.deepEqual(done.subarray(4096), b);
      assert.deepEqual(await listDir(dir), ["out.bin"]);
    },
  );

  await t.step("a failing stream leaves the old file and no temporary file", async () => {
    await Deno.writeTextFile(path, "old");
    const g = gatedStream(Uint8Array.of(1, 2), new Error("disk on fire"));
    const writing = writeFileAtomic(path, g.stream);
    await g.pulled;
    g.release();
    await assert.rejects(writing, /disk on fire/);
    assert.equal(await Deno.readTextFile(path), "old");
    assert.deepEqual(await listDir(dir), ["out.bin"]);
  });

  await t.step("a failing rename (target is a folder) cleans up", async () => {
    await Deno.mkdir(`${dir}/sub/x`, { recursive: true });
    await assert.rejects(writeFileAtomic(`${dir}/sub/x`, "data"));
    assert.deepEqual(await listDir(`${dir}/sub`), ["x"]);
    assert.ok((await Deno.stat(`${dir}/sub/x`)).isDirectory);
    await Deno.remove(`${dir}/sub`, { recursive: true });
  });

  await t.step("concurrent readers only ever see a whole version", async () => {
    const versions = ["A", "B", "C"].map((c) => c.repeat(256 * 1024));
    await writeFileAtomic(path, versions[0]);
    let writing = true;
    const writer = (async () => {
      for (let i = 1; i <= 30; i++) await writeFileAtomic(path, versions[i % 3], { fsync: false });
      writing = false;
    })();
    let reads = 0;
    while (writing) {
      const text = await Deno.readTextFile(path);
      assert.ok(versions.includes(text), `read ${text.length} chars of mixed content`);
      reads++;
    }
    await writer;
    assert.ok(reads > 0);
    assert.deepEqual(await listDir(dir), ["out.bin"]);
  });

  await t.step("rejects data of the wrong type", async () => {
    await assert.rejects(
      writeFileAtomic(path, 42 as unknown as string),
      (e: Error) => e instanceof TypeError && e.message.includes(path),
    );
  });

  await Deno.remove(dir, { recursive: true });
});

Deno.test("ensureDir() creates nested folders and tolerates existing ones", async () => {
  const dir = await Deno.makeTempDir();
  await ensureDir(`${dir}/a/b/c`);
  await ensureDir(`${dir}/a/b/c`);
  assert.ok((await Deno.stat(`${dir}/a/b/c`)).isDirectory);
  await Deno.writeTextFile(`${dir}/f`, "");
  await assert.rejects(ensureDir(`${dir}/f`));
  await Deno.remove(dir, { recursive: true });
});
