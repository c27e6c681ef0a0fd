import assert from "node:assert/strict";
import { join } from "node:path";
import { main, TRAIN_USAGE } from "../../cli/train.ts";
import { runCli } from "./helpers.ts";

/** Runs `main()` with console output captured. */
const train = (args: string[]) => runCli(main, args);

Deno.test("train CLI: --help, bad flags and bad values", async (t) => {
  await t.step("--help exits 0 and names every config and loss", async () => {
    const r = await train(["--help"]);
    assert.equal(r.code, 0);
    for (
      const word of [
        "paa_tiny_shapes",
        "faster_rcnn_tiny_shapes",
        "cascade_rcnn_tiny_shapes",
        "--resume",
        "focal",
      ]
    ) {
      assert.ok(r.out.includes(word), word);
    }
    assert.ok(TRAIN_USAGE.startsWith("Usage: deno task train"));
  });
  await t.step("an unknown flag exits 2 with the usage", async () => {
    const r = await train(["--frobnicate"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /Usage: deno task train/);
  });
  for (
    const [args, message] of [
      [["--iters", "0"], /--iters must be an integer >= 1, got "0"/],
      [["--batch", "0"], /--batch must be an integer >= 1, got "0"/],
      [["--seed=-3"], /--seed must be an integer >= 0, got "-3"/],
      [["--log-every", "x"], /--log-every must be an integer >= 1, got "x"/],
      [
        ["--loss", "focal", "--config", "faster_rcnn_tiny_shapes"],
        /Unknown loss "focal" for a faster_rcnn detector: expected one of brs, rs/,
      ],
      [
        ["--loss", "alrp", "--config", "paa_tiny_shapes"],
        /Unknown loss "alrp" for a paa detector: expected one of brs, rs, bap, ap, focal/,
      ],
      [["--config", "no_such_config"], /Cannot load config "no_such_config"/],
    ] as const
  ) {
    await t.step(`${args.join(" ")} exits 1 naming the problem`, async () => {
      const r = await train([...args, "--out", "/nonexistent/never-written"]);
      assert.equal(r.code, 1);
      assert.match(r.err, message);
    });
  }
});

Deno.test("train CLI: a 5-step run with the end-of-run evaluation", async () => {
  const dir = await Deno.makeTempDir();
  const config = join(dir, "tiny.ts");
  // The default config cut to 64 px images and 6 + 2 images, through a config file.
  const base = new URL("../../configs/atss_tiny_shapes.ts", import.meta.url).href;
  await Deno.writeTextFile(
    config,
    `import base from "${base}";
export default {
  ...base,
  name: "train_cli_test",
  train: { ...base.train, batchSize: 2, shortSide: 64, maxSize: 64, warmup: { iters: 1, factor: 0.5 } },
  data: { kind: "shapes", train: 6, val: 2, size: 64, seed: 4 },
};
`,
  );
  const out = join(dir, "run");
  const r = await train(["--config", config, "--iters", "5", "--backend", "cpu", "--out", out]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /Trained 5 steps in [0-9.]+ s/);
  assert.match(r.out, /Average Precision {2}\(AP\) @\[ IoU=0\.50:0\.95/);
  assert.match(r.out, /oLRP: [0-9.]+/);
  const names = [...Deno.readDirSync(out)].map((e) => e.name).sort();
  for (
    const file of [
      "checkpoint.safetensors",
      "model_final.safetensors",
      "eval.json",
      "metrics.jsonl",
    ]
  ) {
    assert.ok(names.includes(file), `${file} in ${names}`);
  }
  const report = JSON.parse(await Deno.readTextFile(join(out, "eval.json")));
  assert.equal(report.stats.length, 12);
  assert.ok(report.stats.every((v: number) => v === -1 || (v >= 0 && v <= 1)), `${report.stats}`);
  assert.ok(report.trainSeconds > 0);
  await Deno.remove(dir, { recursive: true });
});
