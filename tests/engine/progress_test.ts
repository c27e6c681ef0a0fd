import assert from "node:assert/strict";
import {
  formatDuration,
  formatFields,
  formatValue,
  Progress,
  type ProgressOptions,
} from "../../engine/progress.ts";

function fake(options: Partial<ProgressOptions> & { total: number }) {
  const clock = { t: 1000 };
  const writes: string[] = [];
  const p = new Progress({
    now: () => clock.t,
    write: (s) => writes.push(s),
    tty: false,
    ...options,
  });
  return { p, clock, writes };
}

Deno.test("formatDuration()", () => {
  const cases: [number, string][] = [
    [0, "0s"],
    [12, "12s"],
    [59.4, "59s"],
    [59.6, "1m00s"],
    [185, "3m05s"],
    [3599, "59m59s"],
    [3600, "1h00m"],
    [3720, "1h02m"],
    [90061, "25h01m"],
    [-1, "--"],
    [NaN, "--"],
    [Infinity, "--"],
  ];
  for (const [s, want] of cases) assert.equal(formatDuration(s), want, `${s} s`);
});

Deno.test("formatValue() and formatFields()", () => {
  assert.equal(formatValue(1.23456789), "1.235");
  assert.equal(formatValue(-0.5), "-0.5");
  assert.equal(formatValue(3e-5), "3.00e-5");
  assert.equal(formatValue(123456.7), "1.23e5");
  assert.equal(formatValue(7), "7");
  assert.equal(formatValue(Infinity), "Infinity");
  assert.equal(formatValue("warmup"), "warmup");
  assert.equal(formatFields({}), "");
  assert.equal(formatFields({ a: 1, b: "x", c: 0.25 }), "a=1 b=x c=0.25");
});

Deno.test("Progress on a plain stream", async (t) => {
  await t.step("a line every logEvery steps with rate and ETA from the clock", () => {
    const { p, clock, writes } = fake({ total: 100, logEvery: 20, label: "train" });
    for (let s = 1; s <= 100; s++) {
      clock.t += 250; // 4 it/s
      p.update(s, { loss: 10 / s });
    }
    p.done();
    assert.equal(writes.length, 5);
    assert.ok(writes.every((w) => w.endsWith("\n") && !w.includes("\r") && !w.includes("\x1b")));
    assert.equal(writes[0], "train 20/100 20% loss=0.5 | 4.00 it/s ETA 20s\n");
    assert.equal(writes[1], "train 40/100 40% loss=0.25 | 4.00 it/s ETA 15s\n");
    assert.equal(writes[4], "train 100/100 100% loss=0.1 | 4.00 it/s in 25s\n");
  });

  await t.step("the rate follows a changing speed; ETA is remaining / rate", () => {
    const { p, clock, writes } = fake({ total: 1000, logEvery: 100 });
    for (let s = 1; s <= 100; s++) clock.t += 100; // 10 s for 100 steps
    p.update(100);
    for (let s = 101; s <= 200; s++) clock.t += 400; // 40 s for the next 100
    p.update(200);
    // 200 steps in 50 s: 4 it/s; 800 left: 200 s.
    assert.equal(writes[1], "200/1000 20% | 4.00 it/s ETA 3m20s\n");
    assert.ok(Math.abs(p.rate - 4) < 1e-12);
    assert.ok(Math.abs(p.eta - 200) < 1e-9);
  });

  await t.step("slow steps show seconds per step", () => {
    const { p, clock, writes } = fake({ total: 10, logEvery: 1 });
    clock.t += 2500;
    p.update(1, { lr: 0.001 });
    assert.equal(writes[0], "1/10 10% lr=0.001 | 2.5 s/it ETA 23s\n");
  });

  await t.step("resuming counts the rate from startStep", () => {
    const { p, clock, writes } = fake({ total: 100, logEvery: 10, startStep: 50 });
    p.update(50); // no line for the starting step
    for (let s = 51; s <= 60; s++) {
      clock.t += 500;
      p.update(s);
    }
    assert.deepEqual(writes, ["60/100 60% | 2.00 it/s ETA 20s\n"]);
  });

  await t.step("done() writes the last state once when no line was due", () => {
    const { p, clock, writes } = fake({ total: 10, logEvery: 4 });
    for (let s = 1; s <= 6; s++) (clock.t += 1000, p.update(s));
    p.done();
    p.done();
    assert.equal(writes.length, 2);
    assert.equal(writes[1], "6/10 60% | 1.00 it/s ETA 4s\n");
  });

  await t.step("log() writes its own line", () => {
    const { p, writes } = fake({ total: 10 });
    p.log("checkpoint saved");
    assert.deepEqual(writes, ["checkpoint saved\n"]);
  });

  await t.step("rejects bad arguments", () => {
    assert.throws(() => fake({ total: -1 }), RangeError);
    assert.throws(() => fake({ total: 10, logEvery: 0 }), RangeError);
    assert.throws(() => fake({ total: 10, startStep: 11 }), RangeError);
    const { p } = fake({ total: 10 });
    assert.throws(() => p.update(11), /step 11 is outside \[0, 10\]/);
    assert.throws(() => p.update(1.5), RangeError);
  });
});

Deno.test("Progress on a terminal", async (t) => {
  await t.step("redraws in place at most every 100 ms, always at the end", () => {
    const { p, clock, writes } = fake({ total: 200, tty: true, label: "eval", barWidth: 10 });
    for (let s = 1; s <= 200; s++) {
      clock.t += 10; // 100 it/s, 2 s in all
      p.update(s, { AP: 0.5 });
    }
    p.done();
    const draws = writes.filter((w) => w.startsWith("\r\x1b[K"));
    // One draw per 100 ms of the 2 s run, the end, and done(): about 20, never all 200.
    assert.ok(draws.length >= 19 && draws.length <= 23, `${draws.length} draws`);
    assert.equal(writes[writes.length - 1], "\n");
    assert.equal(draws[0], "\r\x1b[Keval [----------] 1/200 0% AP=0.5 | 100 it/s ETA 2s");
    const half = draws.find((d) => d.includes(" 101/200 ")); // drawn at steps 1, 11, 21, ...
    assert.equal(half, "\r\x1b[Keval [#####-----] 101/200 50% AP=0.5 | 100 it/s ETA 1s");
    assert.equal(
      draws[draws.length - 1],
      "\r\x1b[Keval [##########] 200/200 100% AP=0.5 | 100 it/s in 2s",
    );
    assert.ok(!writes.slice(0, -1).some((w) => w.includes("\n")));
  });

  await t.step("log() clears the line, prints, and redraws", () => {
    const { p, clock, writes } = fake({ total: 10, tty: true, barWidth: 0 });
    clock.t += 1000;
    p.update(1);
    p.log("note");
    assert.deepEqual(writes.slice(1), [
      "\r\x1b[Knote\n",
      "\r\x1b[K1/10 10% | 1.00 it/s ETA 9s",
    ]);
  });

  await t.step("lines are cut to the terminal width", () => {
    const { p, writes } = fake({ total: 10, tty: true, columns: 20 });
    p.update(1, { a_long_field_name: 1.5 });
    assert.equal(writes[0].length, "\r\x1b[K".length + 19);
  });
});
