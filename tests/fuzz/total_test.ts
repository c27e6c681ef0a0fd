/**
 * The fuzz suite's size: every entry of {@linkcode MIN_CASES} has its test file, and the floors
 * add up to at least {@linkcode MIN_TOTAL} malformed inputs per run. Each file checks its own
 * floor (`Tally.report`), and the file that completes a whole run prints and checks the actual
 * total, so a suite that shrinks fails: by losing cases, a file, or a floor.
 */

import assert from "node:assert/strict";
import { MIN_CASES, MIN_TOTAL } from "./mutators.ts";

Deno.test("fuzz suite: every entry has its file, and the floors add up to the minimum", async () => {
  let total = 0;
  for (const [entry, floor] of Object.entries(MIN_CASES)) {
    const file = new URL(`./${entry}_test.ts`, import.meta.url);
    const text = await Deno.readTextFile(file);
    assert.match(
      text,
      new RegExp(`new Tally\\("${entry}"\\)`),
      `${entry}_test.ts counts its cases`,
    );
    assert.match(text, /tally\.report\(\)/, `${entry}_test.ts reports its count`);
    total += floor;
  }
  console.log(
    `fuzz floors: at least ${total} malformed inputs per run over ${
      Object.keys(MIN_CASES).length
    } entries`,
  );
  assert.ok(total >= MIN_TOTAL, `the floors add up to ${total}, fewer than ${MIN_TOTAL}`);
});
