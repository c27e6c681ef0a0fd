/**
 * Fuzzing `parseCoco` and `loadCoco` (`data/coco.ts`): `coco_small.json` (polygons, a box
 * outside its image, uncompressed and compressed RLE) and `lvis_small.json` (LVIS image and
 * category fields, a missing `iscrowd`), mutated one field at a time.
 *
 * What must happen, by mutation class (errors are SyntaxError `Cannot load COCO file "SRC": `
 * followed by the exact text below):
 * - top level not an object → `top level is not an object`; `images`/`categories` missing or not
 *   an array → `missing key "K"` / `"K" is not an array`; `annotations` not an array → `"annotations"
 *   is not an array`; `annotations` missing → accepted, no annotations (a test-set image list).
 * - an entry not an object → `image|category|annotation at index I is not an object`.
 * - a required key missing → `… at index I is missing key "id"`, `image ID is missing key "K"`,
 *   `category ID is missing key "name"`, `annotation ID is missing key "K"`.
 * - a key of the wrong type or value (a junk value: null, strings, booleans, arrays, objects,
 *   -1, 0, 1.5, ±Infinity) → the error naming entry, id, key and value (`image at index I has id
 *   V, expected an integer`, `image ID has width V, expected a positive integer`, `annotation ID
 *   has bbox V, expected 4 finite numbers`, `annotation ID has iscrowd V, expected 0 or 1`, …); a
 *   value that is valid for the key (a string file_name, area 0 or 1.5, iscrowd true, a null
 *   segmentation) → accepted with that value.
 * - an id that names nothing → `annotation ID has unknown image_id|category_id V`; in an LVIS
 *   list → `image ID lists unknown category id V in KEY`.
 * - a duplicated entry or id → `duplicate image|category|annotation id V`.
 * - a bbox with a non-finite element or the wrong length → `has bbox V, expected 4 finite
 *   numbers`; a negative size → `has negative bbox size WxH`; moved partly outside its image →
 *   accepted, clipped, with the warning naming the annotation, the box and the clipped box.
 * - segmentation damage → `has polygon P with N coordinates, expected an even number >= 6`, `has
 *   polygon P coordinate J = V`, `has RLE size V, expected [H, W] of its image`, `has RLE count V`,
 *   `has RLE counts summing to S, expected N`, `has RLE counts that do not decode: …`.
 * - optional keys missing → `area`: the box area with a warning; `iscrowd`: 0 with a warning;
 *   `segmentation`, LVIS fields, `supercategory`: accepted without them.
 * - an extra unknown field anywhere → accepted, the same dataset with the field kept.
 * - the file's text cut, followed by junk, or with a byte that is not UTF-8 → `Cannot load COCO
 *   file "PATH": ` + JSON.parse's message for that text, or `the file is not UTF-8 text (...)`.
 * Each case must finish within the budget; warnings are compared exactly too.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadCoco, parseCoco } from "../../data/coco.ts";
import type { CocoDataset } from "../../data/coco_types.ts";
import { countsToString } from "../../data/mask.ts";
import {
  clone,
  DATA_FIXTURES,
  expectError,
  expectValue,
  json,
  JUNK,
  pick,
  Rng,
  Tally,
} from "./mutators.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const tally = new Tally("coco");
const LISTS = ["images", "categories", "annotations"] as const;
const KIND = { images: "image", categories: "category", annotations: "annotation" } as const;
const LVIS_KEYS = ["not_exhaustive_category_ids", "neg_category_ids"];

const isObj = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
const isInt = (v: unknown) => Number.isInteger(v);
const isFinite = (v: unknown) => typeof v === "number" && Number.isFinite(v);

async function bases(): Promise<[string, Json][]> {
  return await Promise.all(
    ["coco_small.json", "lvis_small.json"].map(async (f) =>
      [f, JSON.parse(await Deno.readTextFile(new URL(f, DATA_FIXTURES)))] as [string, Json]
    ),
  );
}

/** The box `parseCoco` keeps (clipped to the image) and whether it warns. */
function clip(b: number[], w: number, h: number): { box: number[]; clipped: boolean } {
  const x0 = Math.max(0, b[0]), y0 = Math.max(0, b[1]);
  const x1 = Math.min(w, b[0] + b[2]), y1 = Math.min(h, b[1] + b[3]);
  const clipped = x0 !== b[0] || y0 !== b[1] || x1 !== b[0] + b[2] || y1 !== b[1] + b[3];
  return {
    box: clipped ? [x0, y0, Math.max(0, x1 - x0), Math.max(0, y1 - y0)] : [...b],
    clipped,
  };
}

/**
 * The dataset and warnings a valid file gives, by the documented rules (boxes clipped with a
 * warning; a missing area is the kept box's area, a missing iscrowd 0, each with a warning;
 * extra keys kept): the expectation of every "accepted" case.
 */
function expected(d: Json, src: string): { ds: CocoDataset; warnings: string[] } {
  const warnings: string[] = [];
  const images = new Map<number, Json>(d.images.map((im: Json) => [im.id, im]));
  const annotations = (d.annotations ?? []).map((a: Json) => {
    const im = images.get(a.image_id);
    const out = { ...a };
    const { box, clipped } = clip(a.bbox, im.width, im.height);
    if (clipped) {
      warnings.push(
        `COCO file "${src}": annotation ${a.id} has bbox ${
          json(a.bbox)
        } outside image ${a.image_id} (${im.width}x${im.height}), clipped to ${json(box)}`,
      );
    }
    out.bbox = box;
    if (!("area" in a)) {
      warnings.push(
        `COCO file "${src}": annotation ${a.id} is missing key "area", using the box area`,
      );
      out.area = box[2] * box[3];
    }
    if (!("iscrowd" in a)) {
      warnings.push(`COCO file "${src}": annotation ${a.id} is missing key "iscrowd", using 0`);
      out.iscrowd = 0;
    } else out.iscrowd = a.iscrowd ? 1 : 0;
    return out;
  });
  return { ds: { ...d, images: d.images, categories: d.categories, annotations }, warnings };
}

async function expectAccepted(what: string, d: Json, src: string) {
  const warnings: string[] = [];
  const ds = await expectValue(
    what,
    () => parseCoco(d, { source: src, onWarning: (m) => warnings.push(m) }),
  );
  const want = expected(d, src);
  assert.deepEqual(ds, want.ds, `${what}: the dataset`);
  assert.deepEqual(warnings, want.warnings, `${what}: the warnings`);
}

async function expectRejected(what: string, d: Json, src: string, message: string) {
  await expectError(
    what,
    () => parseCoco(d, { source: src, onWarning: () => {} }),
    SyntaxError,
    `Cannot load COCO file "${src}": ${message}`,
  );
}

/** What a junk value in `key` of an entry gives: an error message, or null when it is valid. */
function junkVerdict(
  list: (typeof LISTS)[number],
  index: number,
  entry: Json,
  key: string,
  v: unknown,
  d: Json,
): string | null {
  const kind = KIND[list];
  const what = `${kind} ${entry.id}`;
  if (key === "id") {
    return isInt(v) ? "skip" : `${kind} at index ${index} has id ${json(v)}, expected an integer`;
  }
  if (list === "images") {
    if (key === "width" || key === "height") {
      return isInt(v) && (v as number) > 0
        ? "skip"
        : `${what} has ${key} ${json(v)}, expected a positive integer`;
    }
    if (key === "file_name") {
      return typeof v === "string" ? null : `${what} has file_name ${json(v)}`;
    }
    if (LVIS_KEYS.includes(key)) {
      if (!Array.isArray(v)) return `${what} has ${key} that is not an array`;
      const known = new Set(d.categories.map((c: Json) => c.id));
      const bad = v.find((c) => !known.has(c));
      return bad === undefined ? null : `${what} lists unknown category id ${json(bad)} in ${key}`;
    }
    return null;
  }
  if (list === "categories") {
    if (key === "name") return typeof v === "string" ? null : `${what} has name ${json(v)}`;
    return null;
  }
  if (key === "image_id" || key === "category_id") {
    if (!isInt(v)) return `${what} has ${key} ${json(v)}, expected an integer`;
    const ids = new Set((key === "image_id" ? d.images : d.categories).map((e: Json) => e.id));
    return ids.has(v) ? "skip" : `${what} has unknown ${key} ${v}`;
  }
  if (key === "bbox") return `${what} has bbox ${json(v)}, expected 4 finite numbers`;
  if (key === "area") {
    return isFinite(v) && (v as number) >= 0 ? null : `${what} has area ${json(v)}`;
  }
  if (key === "iscrowd") {
    return [0, 1, true, false].includes(v as number)
      ? null
      : `${what} has iscrowd ${json(v)}, expected 0 or 1`;
  }
  if (key === "segmentation") {
    const im = d.images.find((i: Json) => i.id === entry.image_id);
    if (v === null) return null;
    if (Array.isArray(v)) {
      if (v.length === 0) return null;
      return `${what} has polygon 0 with ${
        Array.isArray(v[0]) ? v[0].length : "no"
      } coordinates, expected an even number >= 6`;
    }
    if (!isObj(v)) return `${what} has segmentation ${json(v)}, expected polygons or RLE`;
    return `${what} has RLE size ${
      json((v as Json).size)
    }, expected [${im.height}, ${im.width}] of its image`;
  }
  return null;
}

Deno.test("fuzz coco: structure, entries and keys", async () => {
  for (const [file, base] of await bases()) {
    const rng = new Rng(file.length * 4099);
    let n = 0;
    const src = () => `${file}#${n++}`;
    for (let i = 0; i < 4; i++) {
      const v = pick(rng, [
        null,
        "x",
        3,
        true,
        [],
        [base.images],
        ...JUNK.filter((j) => !isObj(j)),
      ]);
      const s = src();
      await expectRejected(`${s}: top level ${json(v)}`, v, s, "top level is not an object");
      tally.add("top level not an object");
    }
    for (const key of LISTS) {
      const d = clone(base);
      delete d[key];
      const s = src();
      if (key === "annotations") await expectAccepted(`${s}: no annotations`, d, s);
      else await expectRejected(`${s}: no ${key}`, d, s, `missing key "${key}"`);
      tally.add(`"${key}" missing`);
      for (let i = 0; i < 2; i++) {
        const v = pick(rng, JUNK.filter((j) => !Array.isArray(j)));
        const e = clone(base);
        e[key] = v;
        const s2 = src();
        await expectRejected(`${s2}: ${key} = ${json(v)}`, e, s2, `"${key}" is not an array`);
        tally.add(`"${key}" not an array`);
      }
    }
    for (let i = 0; i < 9; i++) {
      const list = LISTS[i % 3];
      const d = clone(base);
      const at = rng.int(d[list].length);
      const v = pick(rng, JUNK.filter((j) => !isObj(j)));
      d[list][at] = v;
      const s = src();
      await expectRejected(
        `${s}: ${list}[${at}] = ${json(v)}`,
        d,
        s,
        `${KIND[list]} at index ${at} is not an object`,
      );
      tally.add("an entry that is not an object");
    }
    const required: Record<string, string[]> = {
      images: ["id", "width", "height", "file_name"],
      categories: ["id", "name"],
      annotations: ["id", "image_id", "category_id", "bbox"],
    };
    for (const list of LISTS) {
      for (const [at, entry] of base[list].entries()) {
        for (const key of Object.keys(entry)) {
          const d = clone(base);
          delete d[list][at][key];
          const s = src();
          const what = `${s}: ${list}[${at}] without "${key}"`;
          const kind = KIND[list];
          if (required[list].includes(key)) {
            const who = key === "id" ? `${kind} at index ${at}` : `${kind} ${entry.id}`;
            await expectRejected(what, d, s, `${who} is missing key "${key}"`);
            tally.add("a required key missing");
          } else {
            await expectAccepted(what, d, s);
            tally.add("an optional key missing (area, iscrowd, segmentation, LVIS fields, ...)");
          }
        }
      }
    }
    for (let i = 0; i < 40; i++) {
      const list = pick(rng, LISTS);
      const d = clone(base);
      const at = rng.int(d[list].length);
      const entry = d[list][at];
      const keys = Object.keys(entry);
      if (list === "images" && file === "coco_small.json") keys.push(pick(rng, LVIS_KEYS));
      const key = pick(rng, keys);
      const v = clone(pick(rng, JUNK));
      const verdict = junkVerdict(list, at, entry, key, v, d);
      if (verdict === "skip") continue; // a valid id: another class's business
      entry[key] = v;
      const s = src();
      const what = `${s}: ${list}[${at}].${key} = ${json(v)}`;
      if (verdict === null) {
        await expectAccepted(what, d, s);
        tally.add("a junk value that is valid for its key (accepted)");
      } else {
        await expectRejected(what, d, s, verdict);
        tally.add("a junk value of the wrong type or range");
      }
    }
  }
});

Deno.test("fuzz coco: ids, references and duplicates", async () => {
  for (const [file, base] of await bases()) {
    const rng = new Rng(file.length * 31337);
    let n = 0;
    const src = () => `${file}#ref${n++}`;
    const ids = (list: (typeof LISTS)[number]) => base[list].map((e: Json) => e.id);
    const unknown = (known: number[]) => {
      let v = rng.int(1000) - 100;
      while (known.includes(v)) v++;
      return v;
    };
    for (let i = 0; i < 6; i++) {
      const key = i % 2 ? "image_id" : "category_id";
      const d = clone(base);
      const a = pick(rng, d.annotations) as Json;
      const v = unknown(ids(key === "image_id" ? "images" : "categories"));
      a[key] = v;
      const s = src();
      await expectRejected(`${s}: ${key} ${v}`, d, s, `annotation ${a.id} has unknown ${key} ${v}`);
      tally.add("an annotation naming an unknown image or category");
    }
    for (let i = 0; i < 4; i++) {
      const d = clone(base);
      const im = pick(rng, d.images) as Json;
      const key = pick(rng, LVIS_KEYS);
      const v = unknown(ids("categories"));
      im[key] = [...(im[key] ?? []), v];
      const s = src();
      await expectRejected(
        `${s}: ${key} + ${v}`,
        d,
        s,
        `image ${im.id} lists unknown category id ${v} in ${key}`,
      );
      tally.add("an LVIS category list naming an unknown category");
    }
    for (let i = 0; i < 9; i++) {
      const list = LISTS[i % 3];
      const d = clone(base);
      const entry = pick(rng, d[list]) as Json;
      if (i % 2 === 0) d[list].push(clone(entry));
      else d[list].splice(rng.int(d[list].length + 1), 0, clone(entry));
      const s = src();
      await expectRejected(
        `${s}: ${list} ${entry.id} twice`,
        d,
        s,
        `duplicate ${KIND[list]} id ${entry.id}`,
      );
      tally.add("a duplicated entry");
    }
  }
});

Deno.test("fuzz coco: boxes and segmentations", async () => {
  for (const [file, base] of await bases()) {
    const rng = new Rng(file.length * 65537);
    let n = 0;
    const src = () => `${file}#geo${n++}`;
    const imageOf = (d: Json, a: Json) => d.images.find((im: Json) => im.id === a.image_id);
    for (let i = 0; i < 24; i++) {
      const d = clone(base);
      const a = pick(rng, d.annotations) as Json;
      const b = [...a.bbox];
      const kind = i % 4;
      const s = src();
      if (kind === 0) {
        b[rng.int(4)] = pick(rng, [null, "1", Infinity, -Infinity, [], true]);
        a.bbox = b;
        await expectRejected(
          `${s}: bbox ${json(b)}`,
          d,
          s,
          `annotation ${a.id} has bbox ${json(b)}, expected 4 finite numbers`,
        );
        tally.add("a bbox element that is not a finite number");
      } else if (kind === 1) {
        a.bbox = rng.int(2) ? b.slice(0, rng.int(4)) : [...b, ...b.slice(0, 1 + rng.int(3))];
        await expectRejected(
          `${s}: bbox ${json(a.bbox)}`,
          d,
          s,
          `annotation ${a.id} has bbox ${json(a.bbox)}, expected 4 finite numbers`,
        );
        tally.add("a bbox of the wrong length");
      } else if (kind === 2) {
        b[2 + rng.int(2)] = -(1 + rng.int(20)) / 2;
        a.bbox = b;
        await expectRejected(
          `${s}: bbox ${json(b)}`,
          d,
          s,
          `annotation ${a.id} has negative bbox size ${b[2]}x${b[3]}`,
        );
        tally.add("a bbox of negative size");
      } else {
        const im = imageOf(d, a);
        a.bbox = [
          rng.int(im.width + 10) - 5,
          rng.int(im.height + 10) - 5,
          rng.int(im.width),
          rng.int(im.height),
        ];
        await expectAccepted(`${s}: bbox moved to ${json(a.bbox)}`, d, s);
        tally.add("a bbox moved (clipped with a warning when outside its image)");
      }
    }
    const polys = base.annotations.filter((a: Json) => Array.isArray(a.segmentation));
    for (let i = 0; i < 9; i++) {
      const d = clone(base);
      const id = (pick(rng, polys) as Json).id;
      const a = d.annotations.find((x: Json) => x.id === id);
      const p = rng.int(a.segmentation.length);
      const poly = a.segmentation[p];
      const s = src();
      if (i % 3 === 0) {
        poly.splice(rng.int(poly.length), 1);
        await expectRejected(
          `${s}: polygon of ${poly.length}`,
          d,
          s,
          `annotation ${a.id} has polygon ${p} with ${poly.length} coordinates, expected an even number >= 6`,
        );
        tally.add("a polygon with an odd number of coordinates");
      } else if (i % 3 === 1) {
        a.segmentation[p] = poly.slice(0, 2 * rng.int(3));
        await expectRejected(
          `${s}: polygon of ${a.segmentation[p].length}`,
          d,
          s,
          `annotation ${a.id} has polygon ${p} with ${
            a.segmentation[p].length
          } coordinates, expected an even number >= 6`,
        );
        tally.add("a polygon with fewer than 3 points");
      } else {
        const j = rng.int(poly.length);
        poly[j] = pick(rng, [null, "3", Infinity, [], {}, true]);
        await expectRejected(
          `${s}: coordinate ${json(poly[j])}`,
          d,
          s,
          `annotation ${a.id} has polygon ${p} coordinate ${j} = ${json(poly[j])}`,
        );
        tally.add("a polygon coordinate that is not a finite number");
      }
    }
    const rles = base.annotations.filter((a: Json) => isObj(a.segmentation));
    for (let i = 0; i < (rles.length ? 12 : 0); i++) {
      const d = clone(base);
      const id = (pick(rng, rles) as Json).id;
      const a = d.annotations.find((x: Json) => x.id === id);
      const im = imageOf(d, a);
      const seg = a.segmentation;
      const s = src();
      const kind = i % 4;
      if (kind === 0) {
        seg.size = pick(rng, [
          [im.height + 1, im.width],
          [im.height, im.width - 1],
          [im.width, im.height],
          [im.height],
          null,
          "10x20",
        ]);
        await expectRejected(
          `${s}: RLE size ${json(seg.size)}`,
          d,
          s,
          `annotation ${a.id} has RLE size ${
            json(seg.size)
          }, expected [${im.height}, ${im.width}] of its image`,
        );
        tally.add("an RLE size that is not its image's");
      } else if (kind === 1) {
        const total = im.height * im.width;
        const wrong = total + pick(rng, [-1, 1, 7, -total]);
        seg.counts = typeof seg.counts === "string" ? countsToString([wrong]) : [wrong];
        await expectRejected(
          `${s}: RLE counts summing to ${wrong}`,
          d,
          s,
          `annotation ${a.id} has RLE counts summing to ${wrong}, expected ${total}`,
        );
        tally.add("RLE counts summing to other than height * width");
      } else if (kind === 2 && typeof seg.counts === "string") {
        const ch = pick(rng, ["!", "~", " ", "\u0001", "\u00e9", "/"]);
        const pos = seg.counts.length;
        seg.counts += ch;
        await expectRejected(
          `${s}: RLE counts + ${json(ch)}`,
          d,
          s,
          `annotation ${a.id} has RLE counts that do not decode: Cannot decode RLE counts: character ${
            json(ch)
          } at ${pos} is not valid`,
        );
        tally.add("compressed RLE counts with a character outside the alphabet");
      } else if (Array.isArray(seg.counts)) {
        const k = rng.int(seg.counts.length);
        seg.counts[k] = pick(rng, [-1, 1.5, null, "3", Infinity]);
        await expectRejected(
          `${s}: RLE count ${json(seg.counts[k])}`,
          d,
          s,
          `annotation ${a.id} has RLE count ${json(seg.counts[k])}`,
        );
        tally.add("an uncompressed RLE count that is not a non-negative integer");
      } else {
        delete seg.counts;
        await expectRejected(
          `${s}: RLE without counts`,
          d,
          s,
          `annotation ${a.id} has RLE without counts`,
        );
        tally.add("an RLE without counts");
      }
    }
  }
});

Deno.test("fuzz coco: extra unknown fields are kept", async () => {
  for (const [file, base] of await bases()) {
    const rng = new Rng(file.length * 977);
    for (let i = 0; i < 16; i++) {
      const d = clone(base);
      const where = pick(rng, ["top", ...LISTS]);
      const target = where === "top" ? d : pick(rng, d[where]);
      const key = pick(rng, [
        "x_fuzz",
        "coco_url",
        "flickr_url",
        "date_captured",
        "attributes",
        "comment",
        "__proto__x",
      ]) + i;
      target[key] = clone(pick(rng, [...JUNK, { nested: [1, { a: null }] }, "text"]));
      const s = `${file}#extra${i}`;
      await expectAccepted(`${s}: ${where}.${key}`, d, s);
      tally.add("an extra unknown field (accepted, kept)");
    }
  }
});

Deno.test("fuzz coco: files cut short, with trailing junk or bytes that are not UTF-8", async () => {
  const dir = await Deno.makeTempDir({ prefix: "brl_fuzz_coco_" });
  try {
    for (const [file] of await bases()) {
      const text = await Deno.readFile(new URL(file, DATA_FIXTURES));
      const rng = new Rng(file.length * 7);
      const end = new TextDecoder().decode(text).trimEnd().length;
      for (let i = 0; i < 16; i++) {
        const path = join(dir, `${file}.${i}.json`);
        let bytes: Uint8Array;
        let problem: string;
        if (i % 4 < 2) {
          bytes = text.slice(0, rng.int(end));
          problem = parseProblem(bytes);
          tally.add("file cut short");
        } else if (i % 4 === 2) {
          bytes = new Uint8Array([
            ...text,
            ...new TextEncoder().encode(pick(rng, ["x", "}", "]", ",", "{}", "null"])),
          ]);
          problem = parseProblem(bytes);
          tally.add("junk after the JSON value");
        } else {
          // inside a string (a file name), where a lossy decoder would turn it into U+FFFD
          const t = new TextDecoder().decode(text);
          const at = Math.max(t.indexOf(".png"), t.indexOf(".jpg"));
          bytes = text.slice();
          bytes[at] = pick(rng, [0xff, 0xc0, 0x80, 0xfe]);
          problem = parseProblem(bytes);
          tally.add("a byte that is not UTF-8 inside a string");
        }
        await Deno.writeFile(path, bytes);
        await expectError(
          `${path}`,
          () => loadCoco(path, { onWarning: () => {} }),
          SyntaxError,
          `Cannot load COCO file "${path}": ${problem}`,
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  tally.report();
});

/** Why `bytes` is not a JSON document: strict UTF-8 decoding, then JSON.parse. */
function parseProblem(bytes: Uint8Array): string {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (e) {
    return `the file is not UTF-8 text (${(e as Error).message})`;
  }
  try {
    JSON.parse(text);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("the mutated text still parses");
}
