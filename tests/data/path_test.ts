import assert from "node:assert/strict";
import { posix } from "node:path";
import { joinPath } from "../../data/path.ts";

Deno.test("joinPath() equals POSIX path.join", () => {
  const cases: string[][] = [
    ["runs", "a", "metrics.jsonl"],
    ["runs/", "/a//b/", "c"],
    ["/data/", "./coco", "../lvis", "val"],
    ["/", "..", "..", "x"],
    ["a", "..", "..", "b"],
    ["../a", "./b/", "."],
    ["a/b", "../.."],
    ["", ""],
    [],
    ["/"],
    ["dir/", ""],
    ["x", "y/"],
  ];
  for (const parts of cases) {
    assert.equal(joinPath(...parts), posix.join(...parts), JSON.stringify(parts));
  }
});
