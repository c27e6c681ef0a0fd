import assert from "node:assert/strict";
import { main, parseEvalArgs, UsageError } from "../../cli/eval.ts";
import { runCli } from "./helpers.ts";
import type { CocoDataset, CocoDetection } from "../../data/coco_types.ts";

const FIXTURE = new URL("../fixtures/coco_eval/lrp_edge_cases.json", import.meta.url);

/** Run `main()` with console output captured. */
const run = (args: string[]) => runCli(main, args);

Deno.test("parseEvalArgs() reads flags strictly", async (t) => {
  await t.step("defaults", () => {
    assert.deepEqual(parseEvalArgs(["--gt", "g.json", "--dets", "d.json"]), {
      gt: "g.json",
      dets: "d.json",
      iouType: "bbox",
      lrp: false,
      out: "runs/eval",
      perCategory: false,
    });
  });
  await t.step("all flags", () => {
    const o = parseEvalArgs([
      "--gt=g.json",
      "--dets",
      "d.json",
      "--iou-type",
      "segm",
      "--lrp",
      "--out",
      "o",
      "--per-category",
    ]);
    assert.deepEqual(o, {
      gt: "g.json",
      dets: "d.json",
      iouType: "segm",
      lrp: true,
      out: "o",
      perCategory: true,
    });
    assert.equal(parseEvalArgs(["--gt", "g", "--dets", "d", "--no-out"]) !== "help", true);
    assert.equal(parseEvalArgs(["-h"]), "help");
  });
  await t.step("bad flags", () => {
    for (
      const args of [
        ["--gt", "g", "--dets", "d", "--bogus"],
        ["--gt", "g"],
        ["--dets", "d"],
        ["--gt", "g", "--dets", "d", "--iou-type", "keypoints"],
        ["--gt", "g", "--dets", "d", "positional"],
        ["--gt", "g", "--dets", "d", "--out", "o", "--no-out"],
        ["--gt"],
      ]
    ) {
      assert.throws(() => parseEvalArgs(args), UsageError, args.join(" "));
    }
  });
});

Deno.test("eval CLI prints the summary and writes the report atomically", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const f = JSON.parse(await Deno.readTextFile(FIXTURE)) as CocoDataset & {
      detections: CocoDetection[];
      expected: { segm: { stats: number[] } };
    };
    const gt = `${dir}/gt.json`, dets = `${dir}/dets.json`, out = `${dir}/out`;
    await Deno.writeTextFile(gt, JSON.stringify(f));
    await Deno.writeTextFile(dets, JSON.stringify(f.detections));

    await t.step("full run", async () => {
      const r = await run([
        "--gt",
        gt,
        "--dets",
        dets,
        "--iou-type",
        "segm",
        "--lrp",
        "--per-category",
        "--out",
        out,
      ]);
      assert.equal(r.code, 0, r.err);
      const lines = r.out.split("\n");
      assert.match(lines[0], /^ Average Precision {2}\(AP\) @\[ IoU=0\.50:0\.95 \| area= {3}all/);
      assert.ok(lines[0].endsWith(`= ${f.expected.segm.stats[0].toFixed(3)}`), lines[0]);
      assert.match(r.out, /Optimal LRP/);
      assert.match(r.out, /category +AP +AP50/);
      const report = JSON.parse(await Deno.readTextFile(`${out}/report.json`));
      assert.ok(Math.abs(report.stats.AP - f.expected.segm.stats[0]) < 1e-12);
      assert.equal(report.iouType, "segm");
      assert.equal(report.perCategory.length, f.categories.length);
      assert.equal(report.lrp.tau, 0.5);
      const svg = await Deno.readTextFile(`${out}/pr_curves.svg`);
      assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      assert.equal(svg.match(/<polyline/g)?.length, 10);
      const files = [...Deno.readDirSync(`${out}/pr_curves`)].map((e) => e.name).sort();
      assert.deepEqual(files, f.categories.map((c) => `category_${c.id}.svg`).sort());
      assert.ok(![...Deno.readDirSync(out)].some((e) => e.name.includes(".tmp-")));
    });
    await t.step("--no-out prints the summary and writes nothing", async () => {
      const before = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
      const cwd = Deno.cwd();
      Deno.chdir(dir); // where the default out folder, runs/eval, would go
      try {
        const r = await run([
          "--gt",
          gt,
          "--dets",
          dets,
          "--iou-type",
          "segm",
          "--lrp",
          "--no-out",
        ]);
        assert.equal(r.code, 0, r.err);
        assert.match(r.out, /Average Precision/);
        assert.match(r.out, /Optimal LRP/);
      } finally {
        Deno.chdir(cwd);
      }
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), before);
    });
    await t.step("bad flag exits 2 with the usage", async () => {
      const r = await run(["--gt", gt, "--dets", dets, "--frobnicate"]);
      assert.equal(r.code, 2);
      assert.match(r.err, /Usage: deno task eval/);
    });
    await t.step("--help exits 0", async () => {
      const r = await run(["--help"]);
      assert.equal(r.code, 0);
      assert.match(r.out, /--iou-type/);
    });
    await t.step("unreadable input exits 1 with a message", async () => {
      await Deno.writeTextFile(`${dir}/bad.json`, "{ not json");
      const r = await run(["--gt", gt, "--dets", `${dir}/bad.json`, "--no-out"]);
      assert.equal(r.code, 1);
      assert.match(r.err, /Cannot parse results file/);
      await Deno.writeTextFile(`${dir}/obj.json`, "{}");
      const r2 = await run(["--gt", gt, "--dets", `${dir}/obj.json`, "--no-out"]);
      assert.equal(r2.code, 1);
      assert.match(r2.err, /expected a JSON array/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
