import assert from "node:assert/strict";
import { decodeImage } from "../../data/image.ts";
import { parseCoco } from "../../data/coco.ts";
import { Rng } from "../../tensor/rng.ts";

const FIX = new URL("../fixtures/data/", import.meta.url);

function mutate(bytes: Uint8Array, rng: Rng): Uint8Array {
  const kind = rng.int(3);
  if (kind === 0) return bytes.slice(0, rng.int(bytes.length)); // truncate
  const b = bytes.slice();
  const n = 1 + rng.int(kind === 1 ? 4 : 40);
  for (let i = 0; i < n; i++) b[rng.int(b.length)] = rng.int(256); // corrupt bytes
  return b;
}

async function expectDecodeOrSyntaxError(bytes: Uint8Array, name: string): Promise<void> {
  try {
    const img = await decodeImage(bytes, name);
    assert.equal(img.data.length, img.width * img.height * img.channels);
  } catch (e) {
    assert.ok(e instanceof SyntaxError, `${name}: ${(e as Error)?.name}: ${(e as Error)?.message}`);
    assert.ok((e as Error).message.includes(name), `${name}: ${(e as Error).message}`);
  }
}

Deno.test("fuzz: truncated and corrupted images give errors, never crashes", async (t) => {
  for (
    const file of [
      "im_rgb8_adam7.png",
      "py_gray16_trns.png",
      "baseline_420.jpg",
      "progressive_420.jpg",
    ]
  ) {
    const good = await Deno.readFile(new URL(file, FIX));
    await t.step(file, async () => {
      const rng = new Rng(file.length * 7919);
      for (let i = 0; i < 80; i++) {
        await expectDecodeOrSyntaxError(mutate(good, rng), `${file}#${i}`);
      }
    });
  }
});

Deno.test("fuzz: malformed COCO JSON gives SyntaxError naming the problem", () => {
  const base = JSON.parse(Deno.readTextFileSync(new URL("coco_small.json", FIX)));
  const rng = new Rng(99);
  const junk = [null, -1, NaN, "x", [], {}, 1e308, [1, 2], true];
  let errors = 0;
  for (let i = 0; i < 200; i++) {
    const d = structuredClone(base);
    const lists = ["images", "categories", "annotations"] as const;
    const list = d[lists[rng.int(3)]];
    const entry = list[rng.int(list.length)];
    const keys = Object.keys(entry);
    const key = keys[rng.int(keys.length)];
    if (rng.uniform() < 0.3) delete entry[key];
    else entry[key] = junk[rng.int(junk.length)];
    if (rng.uniform() < 0.1) d[lists[rng.int(3)]] = junk[rng.int(junk.length)];
    try {
      parseCoco(JSON.parse(JSON.stringify(d)), { source: `case${i}`, onWarning: () => {} });
    } catch (e) {
      assert.ok(
        e instanceof SyntaxError,
        `case ${i}: ${(e as Error).name}: ${(e as Error).message}`,
      );
      assert.match((e as Error).message, new RegExp(`^Cannot load COCO file "case${i}": `));
      errors++;
    }
  }
  assert.ok(errors > 100, `only ${errors} of 200 mutations rejected`);
});
