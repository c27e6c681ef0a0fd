/**
 * LVIS v1 annotation files: loading with validation, on top of the COCO
 * checks of `coco.ts` (same messages, naming LVIS), plus what LVIS adds:
 * every image's `neg_category_ids` and `not_exhaustive_category_ids` (known
 * category ids), every category's `frequency` (`r`, `c` or `f`),
 * `image_count` and `instance_count`. Annotations need no `iscrowd` (it is
 * set to 0, silently), and an image without `file_name` takes the path of
 * its `coco_url` (`val2017/000000397133.jpg`), as mmdetection's LVIS v1
 * dataset does, so that a parsed LVIS dataset feeds the loader like a COCO
 * one.
 *
 * @example
 * ```ts
 * import { parseLvis } from "./lvis.ts";
 * import assert from "node:assert/strict";
 *
 * const ds = parseLvis({
 *   images: [{
 *     id: 7, width: 10, height: 10, coco_url: "http://images.cocodataset.org/val2017/7.jpg",
 *     neg_category_ids: [2], not_exhaustive_category_ids: [],
 *   }],
 *   categories: [
 *     { id: 1, name: "a", frequency: "f", image_count: 120, instance_count: 400 },
 *     { id: 2, name: "b", frequency: "r", image_count: 3, instance_count: 3 },
 *   ],
 *   annotations: [{ id: 1, image_id: 7, category_id: 1, bbox: [1, 1, 2, 2], area: 4 }],
 * });
 * assert.equal(ds.images[0].file_name, "val2017/7.jpg");
 * assert.equal(ds.annotations[0].iscrowd, 0);
 * ```
 *
 * @module
 */

import {
  DatasetChecker,
  type DatasetFormat,
  isObj,
  type Obj,
  parseCoco,
  type ParseCocoOptions,
  readJsonFile,
} from "./coco.ts";
import type { LvisDataset } from "./lvis_types.ts";

export type * from "./lvis_types.ts";

/** LVIS' rules for `parseCoco`: messages name LVIS, `iscrowd` is optional. */
export const LVIS_FORMAT: Readonly<DatasetFormat> = Object.freeze({
  name: "LVIS",
  crowdOptional: true,
});

const FREQUENCIES: readonly unknown[] = ["r", "c", "f"];
const IMAGE_LISTS = ["neg_category_ids", "not_exhaustive_category_ids"] as const;

/**
 * Whether a parsed annotation file is LVIS rather than COCO: an image
 * carries `neg_category_ids` or a category carries `frequency`.
 *
 * @example
 * ```ts
 * import { isLvisDataset } from "./lvis.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isLvisDataset({ images: [], categories: [{ id: 1, name: "a", frequency: "c" }] }), true);
 * assert.equal(isLvisDataset({ images: [{ id: 1 }], categories: [{ id: 1, name: "a" }] }), false);
 * ```
 *
 * @param json The value of `JSON.parse` of an annotation file.
 * @returns True for an LVIS file.
 */
export function isLvisDataset(json: unknown): boolean {
  if (!isObj(json)) return false;
  const has = (list: unknown, key: string) =>
    Array.isArray(list) && list.some((e) => isObj(e) && key in e);
  return has(json.images, "neg_category_ids") || has(json.categories, "frequency");
}

/** An image entry with `file_name` taken from `coco_url` when it has none. */
function withFileName(c: DatasetChecker, im: unknown, i: number): unknown {
  if (!isObj(im) || "file_name" in im) return im;
  const what = Number.isInteger(im.id) ? `image ${im.id}` : `image at index ${i}`;
  if (!("coco_url" in im)) c.fail(`${what} has neither "file_name" nor "coco_url"`);
  let path = "";
  try {
    path = new URL(String(im.coco_url)).pathname.replace(/^\/+/, "");
  } catch {
    // reported below
  }
  if (typeof im.coco_url !== "string" || path === "") {
    c.fail(`${what} has coco_url ${JSON.stringify(im.coco_url)}, expected an image URL`);
  }
  return { ...im, file_name: decodeURIComponent(path) };
}

/**
 * Validate a parsed LVIS annotation object: everything `parseCoco` checks
 * (missing keys, bad sizes, unknown or duplicate ids, malformed
 * segmentations, unknown ids in the image lists), with LVIS' required keys
 * and values on top (see the module doc).
 *
 * @param json The value of `JSON.parse` of the file.
 * @param options Source name and warning sink.
 * @returns A new dataset object (input entries are copied where changed).
 * @throws {SyntaxError} Naming the file and the first problem found, e.g.
 *   `Cannot load LVIS file "a.json": category 3 has frequency "x", expected "r", "c" or "f"`.
 */
export function parseLvis(json: unknown, options: ParseCocoOptions = {}): LvisDataset {
  const source = options.source ?? "<memory>";
  const c: DatasetChecker = new DatasetChecker(
    source,
    options.onWarning ?? console.warn,
    LVIS_FORMAT.name,
  );
  const input = isObj(json) && Array.isArray(json.images)
    ? { ...json, images: json.images.map((im, i) => withFileName(c, im, i)) }
    : json;
  const ds = parseCoco(input, { ...options, source }, LVIS_FORMAT);
  for (const im of ds.images) {
    for (const key of IMAGE_LISTS) {
      if (!(key in im)) c.fail(`image ${im.id} is missing key "${key}"`);
    }
  }
  for (const cat of ds.categories as Obj[]) {
    if (!("frequency" in cat)) c.fail(`category ${cat.id} is missing key "frequency"`);
    if (!FREQUENCIES.includes(cat.frequency)) {
      c.fail(
        `category ${cat.id} has frequency ${
          JSON.stringify(cat.frequency)
        }, expected "r", "c" or "f"`,
      );
    }
    for (const key of ["image_count", "instance_count"]) {
      if (!(key in cat)) c.fail(`category ${cat.id} is missing key "${key}"`);
      const v = cat[key];
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
        c.fail(`category ${cat.id} has ${key} ${JSON.stringify(v)}, expected an integer >= 0`);
      }
    }
  }
  for (const a of ds.annotations) {
    if ("ignore" in a && ![0, 1, true, false].includes(a.ignore as number)) {
      c.fail(`annotation ${a.id} has ignore ${JSON.stringify(a.ignore)}, expected 0 or 1`);
    }
  }
  return ds as LvisDataset;
}

/**
 * Read and validate an LVIS annotation file.
 *
 * ```ts ignore
 * const ds = await loadLvis("data/lvis/lvis_v1_val.json");
 * ```
 *
 * @param path File path or URL.
 * @param options Warning sink (the source name defaults to the path).
 * @returns The validated dataset.
 * @throws {SyntaxError} When the file is not JSON or fails validation.
 */
export async function loadLvis(
  path: string | URL,
  options: ParseCocoOptions = {},
): Promise<LvisDataset> {
  const source = options.source ?? String(path);
  return parseLvis(await readJsonFile(path, `LVIS file "${source}"`), { ...options, source });
}
