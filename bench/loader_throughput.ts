/**
 * Loader throughput (decode + transform + batch), printed as a markdown table:
 *
 *   deno run --allow-read --allow-write --allow-env --allow-run bench/loader_throughput.ts [--images 512]
 *
 * Rows: the in-memory synthetic set (in process), the same set as PNG files (2 workers), and as
 * JPEG files (2 workers; made with ImageMagick's `convert` when it is installed, else skipped).
 * Pass `--coco <annotations.json> --dir <image folder>` to add a row for a real COCO folder.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadCoco } from "../data/coco.ts";
import { cocoSource, DetectionLoader, type LoaderSource, memorySource } from "../data/loader.ts";
import { generateShapes, writeShapes } from "../data/shapes.ts";

async function measure(source: LoaderSource, workers: number, shortSide: number): Promise<number> {
  using loader = new DetectionLoader(source, {
    batchSize: 16,
    seed: 0,
    workers,
    prefetch: 4,
    transform: { shortSide, flipProb: 0.5, jitter: {} },
  });
  let n = 0;
  for await (const b of loader.epoch(0)) n += b.batchSize; // warm-up epoch
  n = 0;
  const t0 = performance.now();
  for await (const b of loader.epoch(1)) n += b.batchSize;
  return n / ((performance.now() - t0) / 1000);
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      images: { type: "string", default: "512" },
      coco: { type: "string" },
      dir: { type: "string" },
    },
    strict: true,
  });
  const count = Number(values.images);
  const rows: string[] = [];
  const split = generateShapes({ numImages: count, seed: 0 });
  rows.push(
    `| shapes 128x128, in memory, in process | ${count} | ${
      (await measure(memorySource(split), 0, 128)).toFixed(0)
    } |`,
  );
  const dir = await Deno.makeTempDir();
  try {
    const ann = await writeShapes(dir, "train", split);
    const ds = await loadCoco(ann);
    rows.push(
      `| shapes 128x128, PNG files, 2 workers | ${count} | ${
        (await measure(cocoSource(ds, `${dir}/train`), 2, 128)).toFixed(0)
      } |`,
    );
    try {
      const jpgDir = `${dir}/jpg`;
      await Deno.mkdir(jpgDir);
      const cmd = new Deno.Command("convert", {
        args: [
          `${dir}/train/*.png`,
          "-quality",
          "90",
          "-set",
          "filename:f",
          "%t",
          `${jpgDir}/%[filename:f].jpg`,
        ],
      });
      if (!(await cmd.output()).success) throw new Error("convert failed");
      const jds = {
        ...ds,
        images: ds.images.map((im) => ({
          ...im,
          file_name: im.file_name.replace(/\.png$/, ".jpg"),
        })),
      };
      rows.push(
        `| shapes 128x128, JPEG files, 2 workers | ${count} | ${
          (await measure(cocoSource(jds, jpgDir), 2, 128)).toFixed(0)
        } |`,
      );
    } catch (e) {
      console.error(`JPEG row skipped: ${(e as Error).message}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  if (values.coco && values.dir) {
    const ds = await loadCoco(values.coco);
    rows.push(
      `| ${values.coco}, 2 workers, short side 512 | ${ds.images.length} | ${
        (await measure(cocoSource(ds, values.dir), 2, 512)).toFixed(0)
      } |`,
    );
  }
  console.log("| source | images | images/s |\n| --- | ---: | ---: |\n" + rows.join("\n"));
}
