import assert from "node:assert/strict";
import { main, parseEvalArgs, UsageError } from "../../cli/eval.ts";
import { runCli } from "./helpers.ts";
import type { CocoDataset, CocoDetection } from "../../data/coco_types.ts";
import type { LvisDataset } from "../../data/lvis_types.ts";

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

Deno.test("eval CLI evaluates against an LVIS ground truth as lvis-api does", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const fixture = new URL("../fixtures/lvis_eval/federated_basics.json", import.meta.url);
    const f = JSON.parse(await Deno.readTextFile(fixture)) as LvisDataset & {
      detections: CocoDetection[];
      expected: Record<"bbox" | "segm", { results: Record<string, number> }>;
    };
    const gt = `${dir}/lvis_val.json`, dets = `${dir}/dets.json`, out = `${dir}/out`;
    const { images, categories, annotations } = f;
    await Deno.writeTextFile(gt, JSON.stringify({ images, categories, annotations }));
    await Deno.writeTextFile(dets, JSON.stringify(f.detections));

    await t.step("segm: lvis-api's 13 lines, the report and the curves", async () => {
      const r = await run([
        "--gt",
        gt,
        "--dets",
        dets,
        "--iou-type",
        "segm",
        "--per-category",
        "--out",
        out,
      ]);
      assert.equal(r.code, 0, r.err);
      const lines = r.out.split("\n");
      const want = f.expected.segm.results;
      assert.equal(
        lines[0],
        ` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=300 catIds=all] = ${
          want.AP.toFixed(3)
        }`,
      );
      assert.match(lines[6], /^ Average Precision {2}\(AP\) @.* catIds= {2}r\] = /);
      assert.ok(lines[12].startsWith(" Average Recall     (AR) @[ IoU=0.50:0.95 | area=     l"));
      assert.match(r.out, /category +freq +AP +AP50 +AP75 +AR@300/);
      assert.match(
        r.err,
        /Detections: 21 evaluated, 0 over the 300-per-image cap, .* 4 on categories/,
      );
      const report = JSON.parse(await Deno.readTextFile(`${out}/report.json`));
      assert.equal(report.format, "lvis");
      for (const [name, v] of Object.entries(want)) {
        assert.ok(
          Math.abs(report.stats[name] - v) < 1e-6,
          `${name}: ${report.stats[name]} vs ${v}`,
        );
      }
      assert.equal(report.perCategory.length, categories.length);
      const svg = await Deno.readTextFile(`${out}/pr_curves.svg`);
      assert.match(svg, /maxDets 300/);
      assert.equal(svg.match(/<polyline/g)?.length, 10);
      assert.equal([...Deno.readDirSync(`${out}/pr_curves`)].length, categories.length);
    });
    await t.step("bbox with --no-out", async () => {
      const r = await run(["--gt", gt, "--dets", dets, "--no-out"]);
      assert.equal(r.code, 0, r.err);
      assert.ok(r.out.split("\n")[1].endsWith(`= ${f.expected.bbox.results.AP50.toFixed(3)}`));
      assert.equal(r.out.split("\n").length, 13);
    });
    await t.step("--lrp is refused for LVIS", async () => {
      const r = await run(["--gt", gt, "--dets", dets, "--lrp", "--no-out"]);
      assert.equal(r.code, 1);
      assert.match(r.err, /is an LVIS annotation file: optimal LRP is not defined/);
    });
    await t.step("a bad LVIS category is named", async () => {
      const bad = { images, categories: [{ ...categories[0], frequency: "x" }], annotations };
      await Deno.writeTextFile(`${dir}/bad.json`, JSON.stringify(bad));
      const r = await run(["--gt", `${dir}/bad.json`, "--dets", dets, "--no-out"]);
      assert.equal(r.code, 1);
      assert.match(r.err, /Category 5 has frequency "x", expected "r", "c" or "f"/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
