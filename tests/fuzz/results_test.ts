/**
 * Fuzzing `parseCocoResults` and `loadCocoResults` (`data/coco.ts`): a results file of three
 * detections (a box; a box with a compressed RLE; an RLE only), checked with and without the
 * ground truth of `coco_small.json`, mutated one field at a time.
 *
 * What must happen, by mutation class (errors are SyntaxError `Cannot load COCO results "SRC": `
 * followed by the exact text below):
 * - top level not an array → `top level is not an array`; a detection not an object →
 *   `detection I is not an object`.
 * - `image_id`, `category_id` or `score` missing → `detection I is missing key "K"`; not a finite
 *   number → `detection I has K V`; an id that is not an integer → `detection I has K V, expected
 *   an integer`; any finite score (negative, 0, above 1) → accepted as given.
 * - an id the ground truth does not have → `detection I has unknown image_id|category_id V`
 *   with the ground truth; accepted as given without it.
 * - neither `bbox` nor `segmentation` → `detection I has neither "bbox" nor "segmentation"`.
 * - a bbox not of 4 finite numbers or of negative size → `detection I has bbox V`.
 * - a segmentation that is not a compressed RLE (polygons, uncompressed counts, a bad size) →
 *   `detection I has a segmentation that is not a compressed RLE`; counts outside the alphabet →
 *   `detection I has RLE counts that do not decode: …`; a size whose area differs from the
 *   counts' sum → `detection I has RLE counts summing to S, expected N (HxW)`.
 * - an extra unknown field → accepted; the detection as without it.
 * - the file cut short, followed by junk, or not UTF-8 → `Cannot load COCO results "PATH": ` +
 *   JSON.parse's message, or `the file is not UTF-8 text (...)`.
 * Each case must finish within the budget.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CocoIndex, loadCocoResults, parseCoco, parseCocoResults } from "../../data/coco.ts";
import type { CocoDetection } from "../../data/coco_types.ts";
import * as mask from "../../data/mask.ts";
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

const tally = new Tally("results");
const isObj = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
const isFiniteNumber = (v: unknown) => typeof v === "number" && Number.isFinite(v);

const index = new CocoIndex(
  parseCoco(JSON.parse(await Deno.readTextFile(new URL("coco_small.json", DATA_FIXTURES))), {
    onWarning: () => {},
  }),
);
const [rle] = mask.fromPolygons([[1, 1, 5, 1, 5, 4, 1, 4]], 12, 16);
const BASE: Json[] = [
  { image_id: 7, category_id: 3, bbox: [1.25, 1.5, 4, 3.125], score: 0.875 },
  { image_id: 7, category_id: 90, bbox: [0, 0, 1, 1], score: 0.1, segmentation: rle },
  {
    image_id: 42,
    category_id: 18,
    segmentation: { size: [10, 20], counts: "Z137000P4" },
    score: 0.5,
  },
];

/** What a valid detection parses to: the known keys only. */
function normalized(d: Json): CocoDetection {
  const out: CocoDetection = { image_id: d.image_id, category_id: d.category_id, score: d.score };
  if ("bbox" in d) out.bbox = [...d.bbox] as [number, number, number, number];
  if ("segmentation" in d) {
    out.segmentation = {
      size: [...d.segmentation.size] as [number, number],
      counts: d.segmentation.counts,
    };
  }
  return out;
}

/** Runs a case with and without the ground truth; `withIndex`/`without`: error text or null. */
async function check(
  what: string,
  dets: unknown,
  withIndex: string | null,
  without: string | null,
  cls: string,
) {
  for (const [gt, verdict] of [[index, withIndex], [undefined, without]] as const) {
    const src = `${what}${gt ? "+gt" : ""}`;
    if (verdict === null) {
      const out = await expectValue(src, () => parseCocoResults(dets, gt, src));
      assert.deepEqual(out, (dets as Json[]).map(normalized), src);
    } else {
      await expectError(
        src,
        () => parseCocoResults(dets, gt, src),
        SyntaxError,
        `Cannot load COCO results "${src}": ${verdict}`,
      );
    }
    tally.add(cls);
  }
}

Deno.test("fuzz results: structure, keys and values", async () => {
  const rng = new Rng(424242);
  let n = 0;
  const name = () => `results#${n++}`;
  for (let i = 0; i < 5; i++) {
    const v = pick(rng, [...JUNK.filter((j) => !Array.isArray(j)), BASE[0]]);
    const msg = "top level is not an array";
    await check(name(), v, msg, msg, "top level not an array");
  }
  for (let i = 0; i < 6; i++) {
    const d = clone(BASE);
    const at = rng.int(d.length);
    d[at] = pick(rng, JUNK.filter((j) => !isObj(j)));
    const msg = `detection ${at} is not an object`;
    await check(name(), d, msg, msg, "a detection that is not an object");
  }
  for (const [at] of BASE.entries()) {
    for (const key of ["image_id", "category_id", "score"]) {
      const d = clone(BASE);
      delete d[at][key];
      const msg = `detection ${at} is missing key "${key}"`;
      await check(name(), d, msg, msg, "a required key missing");
    }
  }
  for (let i = 0; i < 24; i++) {
    const d = clone(BASE);
    const at = rng.int(d.length);
    const key = pick(rng, ["image_id", "category_id", "score"]);
    const v = clone(pick(rng, JUNK));
    d[at][key] = v;
    let withIndex: string | null, without: string | null;
    if (!isFiniteNumber(v)) withIndex = without = `detection ${at} has ${key} ${json(v)}`;
    else if (key === "score") withIndex = without = null;
    else if (!Number.isInteger(v)) {
      withIndex = without = `detection ${at} has ${key} ${v}, expected an integer`;
    } else {
      without = null;
      const known = key === "image_id" ? index.images : index.categories;
      withIndex = known.has(v as number) ? null : `detection ${at} has unknown ${key} ${v}`;
    }
    await check(name(), d, withIndex, without, `${key} set to a junk value`);
  }
  for (let i = 0; i < 6; i++) {
    const d = clone(BASE);
    const at = rng.int(d.length);
    const key = i % 2 ? "image_id" : "category_id";
    const known = key === "image_id" ? index.imageIds : index.categoryIds;
    let v = 1 + rng.int(200);
    while (known.includes(v)) v++;
    d[at][key] = v;
    await check(
      name(),
      d,
      `detection ${at} has unknown ${key} ${v}`,
      null,
      "an id the ground truth lacks",
    );
  }
});

Deno.test("fuzz results: boxes, segmentations and extra fields", async () => {
  const rng = new Rng(777);
  let n = 0;
  const name = () => `results#geo${n++}`;
  for (const [at] of BASE.entries()) {
    const d = clone(BASE);
    delete d[at].bbox;
    delete d[at].segmentation;
    const msg = `detection ${at} has neither "bbox" nor "segmentation"`;
    await check(name(), d, msg, msg, "neither bbox nor segmentation");
  }
  const boxed = BASE.flatMap((d, i) => ("bbox" in d ? [i] : []));
  for (let i = 0; i < 18; i++) {
    const d = clone(BASE);
    const at = pick(rng, boxed);
    const b = [...d[at].bbox];
    const kind = i % 3;
    if (kind === 0) d[at].bbox = clone(pick(rng, JUNK));
    else if (kind === 1) {
      b[rng.int(4)] = pick(rng, [null, "2", Infinity, [], true]);
      d[at].bbox = b;
    } else {
      b[2 + rng.int(2)] = -(1 + rng.int(8)) / 4;
      d[at].bbox = b;
    }
    const msg = `detection ${at} has bbox ${json(d[at].bbox)}`;
    await check(
      name(),
      d,
      msg,
      msg,
      ["a bbox that is junk", "a bbox element that is not finite", "a bbox of negative size"][kind],
    );
  }
  const segmented = BASE.flatMap((d, i) => ("segmentation" in d ? [i] : []));
  for (let i = 0; i < 20; i++) {
    const d = clone(BASE);
    const at = pick(rng, segmented);
    const seg = d[at].segmentation;
    const [h, w] = seg.size;
    const kind = i % 4;
    let msg: string, cls: string;
    if (kind === 0) {
      d[at].segmentation = pick(rng, [
        ...JUNK,
        [[1, 1, 5, 1, 5, 4]],
        { size: [h, w], counts: [0, h * w] },
        { size: [h, w] },
        { counts: seg.counts },
        { size: [h, -w], counts: seg.counts },
        { size: [h, w, 1], counts: seg.counts },
        { size: [h, w + 0.5], counts: seg.counts },
      ]);
      msg = `detection ${at} has a segmentation that is not a compressed RLE`;
      cls = "a segmentation that is not a compressed RLE";
    } else if (kind === 1) {
      const ch = pick(rng, ["!", "~", " ", "{"]);
      const pos = seg.counts.length;
      seg.counts += ch;
      msg =
        `detection ${at} has RLE counts that do not decode: Cannot decode RLE counts: character ${
          json(ch)
        } at ${pos} is not valid`;
      cls = "compressed RLE counts with a character outside the alphabet";
    } else if (kind === 2) {
      const size = pick(rng, [[h + 1, w], [h, w + 3], [h, 0], [0, 0], [2 * h, 2 * w]]);
      seg.size = size;
      msg = `detection ${at} has RLE counts summing to ${h * w}, expected ${size[0] * size[1]} (${
        size[0]
      }x${size[1]})`;
      cls = "an RLE size whose area is not the counts' sum";
    } else {
      const sum = h * w - 1 - rng.int(h * w - 1);
      seg.counts = mask.countsToString([sum]);
      msg = `detection ${at} has RLE counts summing to ${sum}, expected ${h * w} (${h}x${w})`;
      cls = "RLE counts that do not fill the size";
    }
    await check(name(), d, msg, msg, cls);
  }
  for (let i = 0; i < 8; i++) {
    const d = clone(BASE);
    const at = rng.int(d.length);
    d[at][pick(rng, ["id", "area", "iscrowd", "x_fuzz", "extra"]) + i] = clone(pick(rng, JUNK));
    await check(name(), d, null, null, "an extra unknown field (accepted, dropped)");
  }
});

Deno.test("fuzz results: files cut short, with trailing junk or not UTF-8", async () => {
  const dir = await Deno.makeTempDir({ prefix: "brl_fuzz_results_" });
  try {
    const text = new TextEncoder().encode(JSON.stringify(BASE));
    const rng = new Rng(99);
    for (let i = 0; i < 12; i++) {
      const path = join(dir, `results.${i}.json`);
      let bytes: Uint8Array;
      if (i % 3 === 0) bytes = text.slice(0, rng.int(text.length));
      else if (i % 3 === 1) {
        bytes = new Uint8Array([
          ...text,
          ...new TextEncoder().encode(pick(rng, ["x", "]", ",", "{}"])),
        ]);
      } else {
        bytes = text.slice();
        bytes[new TextDecoder().decode(text).indexOf("Z137")] = pick(rng, [0xff, 0xc3, 0x80]);
      }
      let problem: string;
      try {
        JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
        throw new Error("the mutated text still parses");
      } catch (e) {
        problem = e instanceof SyntaxError
          ? e.message
          : `the file is not UTF-8 text (${(e as Error).message})`;
      }
      await Deno.writeFile(path, bytes);
      await expectError(
        path,
        () => loadCocoResults(path, index),
        SyntaxError,
        `Cannot load COCO results "${path}": ${problem}`,
      );
      tally.add(
        [
          "file cut short",
          "junk after the JSON value",
          "a byte that is not UTF-8 inside a string",
        ][i % 3],
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  tally.report();
});
