import assert from "node:assert/strict";
import { generateShapes, writeShapes } from "../../data/shapes.ts";
import { loadCoco } from "../../data/coco.ts";
import { type Batch, cocoSource, DetectionLoader, memorySource } from "../../data/loader.ts";

async function all(loader: DetectionLoader, epoch: number): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of loader.epoch(epoch)) out.push(b);
  return out;
}

Deno.test("loader", async (t) => {
  const split = generateShapes({ numImages: 10, seed: 2, size: 64 });
  const opts = {
    batchSize: 4,
    seed: 1,
    stride: 32,
    transform: { shortSide: 80, flipProb: 0.5 },
    withMasks: true,
  };
  await t.step("in-process batches: shapes, padding, labels, metadata", async () => {
    using loader = new DetectionLoader(memorySource(split), opts);
    const batches = await all(loader, 0);
    assert.equal(loader.length, 3);
    assert.deepEqual(batches.map((b) => b.batchSize), [4, 4, 2]);
    const seen = new Set<number>();
    for (const b of batches) {
      assert.equal(b.height, 96);
      assert.equal(b.width, 96);
      assert.equal(b.images.length, b.batchSize * 3 * 96 * 96);
      b.meta.forEach((m, k) => {
        seen.add(m.imageId);
        assert.equal(m.width, 80);
        assert.equal(m.scaleX, 80 / 64);
        assert.equal(b.masks![k].length, b.labels[k].length * 96 * 96);
        assert.equal(b.boxes[k].length, b.labels[k].length * 4);
        assert.ok(b.labels[k].every((l) => l >= 0 && l < 5));
        // padding region is exactly zero
        assert.equal(b.images[(k * 3 * 96 + 90) * 96 + 90], 0);
      });
    }
    assert.equal(seen.size, 10);
    const again = await all(loader, 0);
    assert.deepEqual(again, batches);
    const other = await all(loader, 1);
    assert.notDeepEqual(
      other.map((b) => b.meta.map((m) => m.imageId)),
      batches.map((b) => b.meta.map((m) => m.imageId)),
    );
  });
  const dir = await Deno.makeTempDir();
  const annPath = await writeShapes(dir, "train", split);
  const ds = await loadCoco(annPath);
  await t.step("workers over PNG files give the same batches as in process", async () => {
    using mem = new DetectionLoader(memorySource(split), opts);
    using files = new DetectionLoader(cocoSource(ds, `${dir}/train`), { ...opts, workers: 2 });
    using inproc = new DetectionLoader(cocoSource(ds, `${dir}/train`), { ...opts, workers: 0 });
    const a = await all(mem, 3), b = await all(files, 3), c = await all(inproc, 3);
    const strip = (bs: Batch[]) =>
      bs.map((x) => ({ ...x, meta: x.meta.map((m) => ({ ...m, fileName: undefined })) }));
    assert.deepEqual(strip(b), strip(a));
    assert.deepEqual(strip(c), strip(a));
  });
  await t.step("a bad sample is skipped with a warning or fails the run", async () => {
    await Deno.writeFile(
      `${dir}/train/${ds.images[2].file_name}`,
      new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2]),
    );
    const warnings: string[] = [];
    using skip = new DetectionLoader(cocoSource(ds, `${dir}/train`), {
      ...opts,
      shuffle: false,
      onError: "skip",
      onWarning: (m) => warnings.push(m),
    });
    const bs = await all(skip, 0);
    assert.deepEqual(bs.map((b) => b.batchSize), [3, 4, 2]);
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0],
      new RegExp(`image ${ds.images[2].id} .*${ds.images[2].file_name}.*not a PNG or JPEG`),
    );
    using fail = new DetectionLoader(cocoSource(ds, `${dir}/train`), { ...opts, shuffle: false });
    await assert.rejects(
      all(fail, 0),
      (e: Error) => e instanceof SyntaxError && e.message.includes(ds.images[2].file_name),
    );
  });
  await Deno.remove(dir, { recursive: true });
});
