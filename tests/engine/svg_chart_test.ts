import assert from "node:assert/strict";
import {
  escapeXml,
  formatTick,
  lineChartSvg,
  logTicks,
  lossCurvesSvg,
  makeScale,
  movingAverage,
  niceTicks,
  PALETTE,
} from "../../engine/svg_chart.ts";

/** A small XML well-formedness check: balanced tags, quoted attributes, known entities. */
function assertWellFormedXml(xml: string): void {
  const stack: string[] = [];
  const re =
    /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<|&(?!(?:lt|gt|amp|quot|#\d+);)/g;
  let m: RegExpExecArray | null;
  let last = 0;
  while ((m = re.exec(xml))) {
    assert.ok(
      m[2] !== undefined,
      `Stray "${m[0]}" at ${m.index}: ${xml.slice(m.index, m.index + 40)}`,
    );
    last = m.index;
    if (m[1]) assert.equal(stack.pop(), m[2], `Unbalanced </${m[2]}> at ${m.index}`);
    else if (!m[4]) stack.push(m[2]);
  }
  assert.deepEqual(stack, [], `Unclosed tags after ${last}`);
}

function isNiceStep(step: number): boolean {
  const p = 10 ** Math.floor(Math.log10(step) + 1e-12);
  return [1, 2, 2.5, 5, 10].some((m) => Math.abs(step / p - m) < 1e-9);
}

Deno.test("niceTicks()", async (t) => {
  await t.step("known ranges", () => {
    assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(niceTicks(0.13, 9.7, 5), [0, 2, 4, 6, 8, 10]);
    assert.deepEqual(niceTicks(-3.2, 7.9, 5), [-5, -2.5, 0, 2.5, 5, 7.5, 10]);
    assert.deepEqual(niceTicks(0.001, 0.0042, 4), [0.001, 0.002, 0.003, 0.004, 0.005]);
    assert.deepEqual(niceTicks(0, 20000, 4), [0, 5000, 10000, 15000, 20000]);
    assert.deepEqual(niceTicks(-1, 0, 2), [-1, -0.5, 0]);
  });
  await t.step("a single value is widened", () => {
    const ticks = niceTicks(5, 5);
    assert.ok(ticks[0] < 5 && ticks[ticks.length - 1] > 5);
    assert.deepEqual(niceTicks(0, 0, 2), [-1, 0, 1]);
  });
  await t.step("random ranges: covering, evenly spaced, round steps", () => {
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 300; i++) {
      const scale = 10 ** Math.floor(rand() * 12 - 6);
      const a = (rand() - 0.5) * 100 * scale, b = a + rand() * 100 * scale + 1e-300;
      const count = 2 + Math.floor(rand() * 8);
      const ticks = niceTicks(a, b, count);
      const step = ticks[1] - ticks[0];
      assert.ok(ticks[0] <= a && ticks[ticks.length - 1] >= b, `[${a}, ${b}] -> ${ticks}`);
      assert.ok(isNiceStep(step), `step ${step}`);
      for (let k = 1; k < ticks.length; k++) {
        assert.ok(Math.abs(ticks[k] - ticks[k - 1] - step) <= step * 1e-6, `${ticks}`);
      }
      assert.ok(ticks.length - 1 <= 2.5 * count + 2, `${ticks.length} ticks for ${count}`);
      assert.ok(ticks[0] > a - step && ticks[ticks.length - 1] < b + step);
    }
  });
  await t.step("rejects bad ranges", () => {
    assert.throws(() => niceTicks(2, 1), RangeError);
    assert.throws(() => niceTicks(0, Infinity), RangeError);
  });
});

Deno.test("logTicks()", () => {
  assert.deepEqual(logTicks(3, 2000), [1, 10, 100, 1000, 10000]);
  assert.deepEqual(logTicks(1, 10), [1, 2, 5, 10]);
  assert.deepEqual(logTicks(0.02, 0.5), [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1]);
  assert.deepEqual(logTicks(100, 100), [100, 200, 500, 1000]);
  const wide = logTicks(1e-6, 1e12); // 18 decades: every third
  assert.deepEqual(wide, [1e-6, 1e-3, 1, 1e3, 1e6, 1e9, 1e12]);
  assert.throws(() => logTicks(0, 10), RangeError);
  assert.throws(() => logTicks(-1, 10), RangeError);
});

Deno.test("makeScale()", () => {
  const x = makeScale("log", [10, 100000], [50, 450]);
  for (const [v, want] of [[10, 50], [100, 150], [1000, 250], [100000, 450]]) {
    assert.ok(Math.abs(x(v) - want) < 1e-9, `${v} -> ${x(v)}`);
  }
  assert.ok(Math.abs(x(Math.sqrt(10) * 10) - 100) < 1e-9);
  assert.ok(Number.isNaN(x(0)) && Number.isNaN(x(-3)));
  const y = makeScale("linear", [-1, 3], [300, 100]);
  assert.equal(y(-1), 300);
  assert.equal(y(3), 100);
  assert.equal(y(1), 200);
  assert.throws(() => makeScale("linear", [1, 1], [0, 1]), RangeError);
  assert.throws(() => makeScale("log", [0, 1], [0, 1]), RangeError);
});

Deno.test("formatTick() and escapeXml()", () => {
  assert.deepEqual(
    [0, 1, 0.1 + 0.2, 2.5, -40, 12000, 1e5, 1.5e7, 0.001, 0.0005, 1e-9].map((v) => formatTick(v)),
    ["0", "1", "0.3", "2.5", "-40", "12000", "1e5", "1.5e7", "0.001", "5e-4", "1e-9"],
  );
  assert.equal(escapeXml(`<a href='x'>&amp;</a>`), "&lt;a href=&#39;x&#39;&gt;&amp;amp;&lt;/a&gt;");
});

Deno.test("movingAverage() matches a direct window mean", () => {
  const values = [3, 1, NaN, 4, 1, 5, 9, 2, 6, Infinity, 5, 3];
  for (const w of [1, 2, 3, 5, 20]) {
    const got = movingAverage(values, w);
    values.forEach((_, i) => {
      const win = values.slice(Math.max(0, i - w + 1), i + 1).filter(Number.isFinite);
      const want = win.length ? win.reduce((a, b) => a + b, 0) / win.length : NaN;
      if (Number.isNaN(want)) assert.ok(Number.isNaN(got[i]));
      else assert.ok(Math.abs(got[i] - want) < 1e-12, `w=${w} i=${i}: ${got[i]} vs ${want}`);
    });
  }
  assert.deepEqual(movingAverage([NaN, 1], 1).slice(1), [1]);
  assert.throws(() => movingAverage([1], 0), RangeError);
});

/** The plot frame `[left, top, width, height]` read from the SVG. */
function frame(svg: string): [number, number, number, number] {
  const m = svg.match(
    /<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="none"/,
  );
  assert.ok(m, "frame rect");
  return [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
}

function circles(svg: string): [number, number][] {
  return [...svg.matchAll(/<circle cx="([-\d.]+)" cy="([-\d.]+)"/g)].map((m) => [+m[1], +m[2]]);
}

Deno.test("lineChartSvg()", async (t) => {
  await t.step("log-log points land at their decade positions", () => {
    const svg = lineChartSvg(
      [{ name: "t", points: [[1, 1e-3], [10, 1e-2], [100, 1], [1000, 1000]] }],
      { xScale: "log", yScale: "log", markers: true, width: 500, height: 300 },
    );
    const [L, T, W, H] = frame(svg);
    const got = circles(svg);
    assert.equal(got.length, 4);
    // x domain [1, 1000] (3 decades), y domain [1e-3, 1e3] (6 decades)
    const want = [[0, 0], [1, 1], [2, 3], [3, 6]].map(([dx, dy]) => [
      L + (W * dx) / 3,
      T + H - (H * dy) / 6,
    ]);
    got.forEach((p, i) => {
      assert.ok(
        Math.abs(p[0] - want[i][0]) < 0.01 && Math.abs(p[1] - want[i][1]) < 0.01,
        `${p} vs ${want[i]}`,
      );
    });
    for (const label of ["1", "10", "100", "1000", "0.001", "0.01", "0.1"]) {
      assert.ok(svg.includes(`>${label}</text>`), label);
    }
    assertWellFormedXml(svg);
  });

  await t.step("linear axes widen to nice ticks and draw their labels", () => {
    const svg = lineChartSvg([{ name: "a", points: [[0.13, 0.5], [9.7, 3.3]] }], { tickCount: 5 });
    for (const label of ["0", "2", "4", "6", "8", "10"]) {
      assert.ok(svg.includes(`>${label}</text>`));
    }
    const [L, T, W, H] = frame(svg);
    const poly = svg.match(/points="([^"]+)"/)![1].split(" ").map((p) => p.split(",").map(Number));
    // y ticks for [0.5, 3.3] with ~5 intervals: raw step 0.56 -> 1, domain [0, 4]
    for (const label of ["0", "1", "2", "3", "4"]) assert.ok(svg.includes(`>${label}</text>`));
    assert.ok(!svg.includes(">0.5</text>"));
    assert.ok(Math.abs(poly[0][0] - (L + W * 0.013)) < 0.01);
    assert.ok(Math.abs(poly[0][1] - (T + H * (1 - 0.5 / 4))) < 0.01);
    assert.ok(Math.abs(poly[1][1] - (T + H * (1 - 3.3 / 4))) < 0.01);
  });

  await t.step("fixed domains keep their ends and only the ticks inside", () => {
    const svg = lineChartSvg([{ name: "pr", points: [[0, 1], [1, 0]] }], {
      xDomain: [0, 1],
      yDomain: [0, 1.01],
    });
    const [L, T, W, H] = frame(svg);
    const poly = svg.match(/points="([^"]+)"/)![1].split(" ").map((p) => p.split(",").map(Number));
    assert.ok(Math.abs(poly[1][0] - (L + W)) < 0.01);
    assert.ok(Math.abs(poly[0][1] - (T + H * (1 - 1 / 1.01))) < 0.01);
    assert.ok(!svg.includes(">1.2</text>"));
    assert.ok(svg.includes('<g clip-path="url(#chart-plot)">'), "data outside is clipped");
    const other = lineChartSvg([{ name: "pr", points: [[0, 1]] }], { xDomain: [0, 1], id: "k7" });
    assert.ok(other.includes('<clipPath id="k7-plot">'));
    assert.ok(!lineChartSvg([{ name: "a", points: [[0, 1], [1, 2]] }]).includes("clip"));
    assert.throws(() => lineChartSvg([], { xDomain: [1, 1] }), RangeError);
    assert.throws(() => lineChartSvg([], { xScale: "log", xDomain: [0, 1] }), RangeError);
  });

  await t.step("non-finite and non-positive (log) values break the line", () => {
    const svg = lineChartSvg([
      { name: "gap", points: [[1, 1], [2, 2], [3, NaN], [4, 3], [5, 4]] },
      { name: "log", points: [[1, 1], [2, 0], [3, 2], [4, 3]] },
    ], { yScale: "log" });
    assert.equal(svg.match(/<polyline/g)?.length, 3); // 2 + 1 (the lone point after 0 is a dot)
    assert.equal(circles(svg).length, 0);
    const lone = lineChartSvg([{ name: "one", points: [[1, 1]] }]);
    assert.equal(circles(lone).length, 1, "a single point is drawn as a marker");
  });

  await t.step("colours, legend, escaping", () => {
    const svg = lineChartSvg([
      { name: "a<b>", points: [[0, 0], [1, 1]] },
      { name: "hidden", points: [[0, 1], [1, 0]], hideInLegend: true },
      { name: 'c & "d"', points: [[0, 0.5], [1, 0.5]], color: "#000000", dash: "4 2" },
    ], { title: `Loss <script>alert("x")</script> & co`, xLabel: "x's", yLabel: "y<" });
    assertWellFormedXml(svg);
    assert.ok(!svg.includes("<script>"));
    assert.ok(svg.includes("Loss &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co"));
    assert.ok(svg.includes(">a&lt;b&gt;</text>") && svg.includes(">c &amp; &quot;d&quot;</text>"));
    assert.ok(!svg.includes(">hidden</text>"));
    assert.ok(svg.includes(`stroke="${PALETTE[0]}"`) && svg.includes(`stroke="${PALETTE[1]}"`));
    assert.ok(svg.includes('stroke="#000000"') && svg.includes('stroke-dasharray="4 2"'));
    const legend = svg.slice(svg.indexOf('<g class="legend">'));
    assert.equal(legend.match(/<line /g)?.length, 2);
    assert.ok(
      !lineChartSvg([{ name: "a", points: [[0, 0], [1, 1]] }], { legend: false }).includes(
        "legend",
      ),
    );
  });

  await t.step("no data still gives a valid chart", () => {
    const svg = lineChartSvg([], { title: "empty" });
    assertWellFormedXml(svg);
    assert.ok(svg.includes(">empty</text>"));
  });
});

Deno.test("lossCurvesSvg()", async (t) => {
  const recs = Array.from({ length: 20 }, (_, i) => ({
    step: (i + 1) * 10,
    loss: 2 / (i + 1) + (i % 2) * 0.1,
    ...(i % 5 === 0 ? {} : { loss_box: 1 }),
    note: "x",
  }));
  await t.step("one line per field against step, missing values skipped", () => {
    const out = lossCurvesSvg(recs, ["loss", "loss_box", "note"]);
    assertWellFormedXml(out);
    const polys = [...out.matchAll(/points="([^"]+)"/g)].map((m) => m[1].split(" ").length);
    assert.deepEqual(polys, [20, 16]);
    assert.ok(out.includes(">Training losses</text>") && out.includes(">step</text>"));
  });
  await t.step("smoothing adds the moving average in the same colour", () => {
    const out = lossCurvesSvg(recs, ["loss"], { smooth: 4, yDomain: [0, 2.5], xDomain: [10, 200] });
    const [L, T, W, H] = frame(out);
    const lines = [...out.matchAll(/<polyline fill="none" ([^>]*)points="([^"]+)"/g)];
    assert.equal(lines.length, 2);
    assert.ok(lines[0][1].includes('stroke-opacity="0.3"'));
    const avg = lines[1][2].split(" ").map((p) => p.split(",").map(Number));
    recs.forEach((r, i) => {
      const win = recs.slice(Math.max(0, i - 3), i + 1).map((q) => q.loss);
      const mean = win.reduce((a, b) => a + b, 0) / win.length;
      assert.ok(Math.abs(avg[i][0] - (L + (W * (r.step - 10)) / 190)) < 0.01);
      assert.ok(Math.abs(avg[i][1] - (T + H * (1 - mean / 2.5))) < 0.01, `${i}`);
    });
    const legend = out.slice(out.indexOf('<g class="legend">'));
    assert.ok(legend.includes(">loss (mean of 4)</text>") && !legend.includes(">loss</text>"));
  });
});
