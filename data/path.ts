/**
 * Path joining without `node:path`, so that modules which name files (training runs, COCO and
 * Cityscapes folders) still load in a browser, where `node:` built-ins do not exist.
 *
 * @module
 */

/**
 * Joins path segments with `/` and normalises the result as POSIX `path.join` does: empty
 * segments are dropped, repeated separators collapse, `.` segments vanish and `..` removes the
 * segment before it (never above the root of an absolute path). A trailing separator is kept.
 *
 * @example
 * ```ts
 * import { joinPath } from "./path.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(joinPath("runs/a", "metrics.jsonl"), "runs/a/metrics.jsonl");
 * assert.equal(joinPath("/data/", "./coco", "../lvis", "val"), "/data/lvis/val");
 * assert.equal(joinPath("", ""), ".");
 * ```
 *
 * @param parts Path segments, each possibly holding several `/`-separated parts.
 * @returns The joined path; `"."` when nothing is left.
 */
export function joinPath(...parts: string[]): string {
  const joined = parts.filter((part) => part !== "").join("/");
  const absolute = joined.startsWith("/");
  const kept: string[] = [];
  for (const segment of joined.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment !== "..") kept.push(segment);
    else if (kept.length > 0 && kept[kept.length - 1] !== "..") kept.pop();
    else if (!absolute) kept.push(segment);
  }
  const body = kept.join("/");
  if (body === "") return absolute ? "/" : ".";
  return (absolute ? "/" : "") + body + (joined.endsWith("/") ? "/" : "");
}
