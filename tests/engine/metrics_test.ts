import assert from "node:assert/strict";
import {
  formatMetricLine,
  MetricsWriter,
  parseMetrics,
  readMetrics,
  truncateMetricsAfter,
} from "../../engine/metrics.ts";

Deno.test("formatMetricLine()", async (t) => {
  await t.step("step comes first; non-finite numbers become strings", () => {
    const line = formatMetricLine(7, { loss: 1.5, lr: Infinity, x: -Infinity, y: NaN, tag: "a" });
    assert.equal(
      line,
      '{"step":7,"loss":1.5,"lr":"Infinity","x":"-Infinity","y":"NaN","tag":"a"}\n',
    );
    assert.equal(
      formatMetricLine(0, { step: 99, ok: true, none: null }),
      '{"step":0,"ok":true,"none":null}\n',
    );
  });
  await t.step("rejects bad steps and values", () => {
    assert.throws(() => formatMetricLine(-1, {}), RangeError);
    assert.throws(() => formatMetricLine(1.5, {}), /step 1.5/);
    assert.throws(
      () => formatMetricLine(3, { bad: [1] as unknown as number }),
      (e: Error) => e instanceof TypeError && e.message.includes('"bad"'),
    );
  });
});

Deno.test("parseMetrics()", async (t) => {
  await t.step("round-trips what formatMetricLine writes", () => {
    const text = formatMetricLine(1, { a: 0.1, b: NaN }) + "\n" +
      formatMetricLine(2, { a: -Infinity });
    const recs = parseMetrics(text);
    assert.equal(recs.length, 2);
    assert.equal(recs[0].a, 0.1);
    assert.ok(Number.isNaN(recs[0].b));
    assert.equal(recs[1].a, -Infinity);
  });
  await t.step("skips a torn last line but not a bad middle line", () => {
    assert.deepEqual(parseMetrics('{"step":1}\n{"step":2,"lo'), [{ step: 1 }]);
    assert.throws(
      () => parseMetrics('{"step":1}\n{"step":2,"lo\n{"step":3}\n', "m.jsonl"),
      (e: Error) => e instanceof SyntaxError && e.message.includes('"m.jsonl" line 2'),
    );
  });
  await t.step("requires an object with an integer step", () => {
    assert.throws(() => parseMetrics("[1]\n"), /line 1: not a JSON object/);
    assert.throws(() => parseMetrics('{"loss":1}\n'), /step undefined/);
    assert.throws(() => parseMetrics('{"step":"3"}\n'), SyntaxError);
  });
});

Deno.test("MetricsWriter and truncateMetricsAfter()", async (t) => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/runs/x/metrics.jsonl`;

  await t.step("appends one line per record, creating the folder", async () => {
    const w = await MetricsWriter.open(path);
    for (let s = 10; s <= 50; s += 10) await w.append(s, { loss: 1 / s, lr: 0.01 });
    w.close();
    w.close();
    await assert.rejects(w.append(60, {}), TypeError);
    const text = await Deno.readTextFile(path);
    assert.equal(text.split("\n").length, 6);
    assert.equal(text.split("\n")[0], '{"step":10,"loss":0.1,"lr":0.01}');
    assert.deepEqual((await readMetrics(path)).map((r) => r.step), [10, 20, 30, 40, 50]);
  });

  await t.step("a second writer appends after the first", async () => {
    {
      await using w = await MetricsWriter.open(path);
      await w.append(60, { loss: 0.5 });
    }
    assert.deepEqual((await readMetrics(path)).map((r) => r.step), [10, 20, 30, 40, 50, 60]);
  });

  await t.step("truncation keeps lines with step <= k verbatim and drops a torn tail", async () => {
    const before = (await Deno.readTextFile(path)).split("\n");
    await Deno.writeTextFile(path, '{"step":70,"lo', { append: true });
    assert.equal(await truncateMetricsAfter(path, 30), 3);
    assert.equal(await Deno.readTextFile(path), before.slice(0, 3).join("\n") + "\n");
    assert.equal(await truncateMetricsAfter(path, 1000), 3);
    assert.equal(await truncateMetricsAfter(path, 0), 0);
    assert.equal(await Deno.readTextFile(path), "");
  });

  await t.step("open with resumeStep truncates, then appends", async () => {
    await Deno.writeTextFile(path, '{"step":1}\n{"step":2}\n{"step":3}\n{"step":4}\n');
    {
      await using w = await MetricsWriter.open(path, { resumeStep: 2 });
      await w.append(3, { resumed: true });
    }
    assert.deepEqual(await readMetrics(path), [{ step: 1 }, { step: 2 }, {
      step: 3,
      resumed: true,
    }]);
    {
      await using w = await MetricsWriter.open(path, { truncate: true });
      await w.append(1, { fresh: 1 });
    }
    assert.deepEqual(await readMetrics(path), [{ step: 1, fresh: 1 }]);
  });

  await t.step("a missing file reads as empty and is not created by truncation", async () => {
    const missing = `${dir}/none.jsonl`;
    assert.deepEqual(await readMetrics(missing), []);
    assert.equal(await truncateMetricsAfter(missing, 5), 0);
    await assert.rejects(Deno.stat(missing), Deno.errors.NotFound);
    await assert.rejects(truncateMetricsAfter(missing, -2), RangeError);
  });

  await t.step("a bad middle line stops truncation and leaves the file", async () => {
    const bad = '{"step":1}\nnot json\n{"step":2}\n';
    await Deno.writeTextFile(path, bad);
    await assert.rejects(truncateMetricsAfter(path, 1), /line 2/);
    assert.equal(await Deno.readTextFile(path), bad);
  });

  await Deno.remove(dir, { recursive: true });
});
