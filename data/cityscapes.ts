/**
 * Cityscapes' fine annotations as a COCO instance dataset, the one mmdetection's converter
 * (`tools/dataset_converters/cityscapes.py`) writes as `instancesonly_filtered_gtFine_{split}.json`:
 * the 8 instance classes with Cityscapes' label ids as category ids (person 24, rider 25, car 26,
 * truck 27, bus 28, train 31, motorcycle 32, bicycle 33), one annotation per visible object with an
 * RLE mask, its area and its box, and per image one crowd annotation for each class's
 * `<class>group` polygons. Images are `leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png`, and their
 * `file_name`s (`{city}/{stem}_leftImg8bit.png`) are relative to
 * {@linkcode cityscapesImageDir}, so `cocoSource(dataset, cityscapesImageDir(root, split))` loads
 * them.
 *
 * How the masks are made. The official converter reads `gtFine_instanceIds.png`, which
 * cityscapesScripts paints from the polygon file: objects in file order, each over the ones before
 * it, whatever its label (road, sky and the like cover objects too), except deleted objects and
 * `license plate`, which are not painted. Here the same polygons are painted in the same order, so
 * occlusion is the official one: an object keeps only the pixels no later polygon covers, an
 * object covered entirely gets no annotation, and all groups of one class in an image share one
 * crowd mask. The departure is the rasteriser: each polygon is rasterised by pycocotools' rules
 * (`mask.fromPolygons`, pixels whose centres fall inside), where cityscapesScripts uses PIL, which
 * also fills the pixels on the outline. An axis-aligned rectangle with integer corners `(x0, y0)`,
 * `(x1, y1)` covers `(x1 - x0) x (y1 - y0)` pixels here and `(x1 - x0 + 1) x (y1 - y0 + 1)` with
 * PIL, so masks, areas and boxes are smaller by about half the outline (docs/departures.md, Q25).
 * Areas and boxes are pycocotools' `area` and `toBbox` of the visible mask, as in the converter.
 * The raw polygons are not kept as segmentations: they overlap, so their areas would count hidden
 * pixels and their masks would not be the visible ones the official annotations hold.
 *
 * Also unlike the converter (which numbers from 0 in `glob` order), images are sorted by city and
 * name and numbered from 1, and annotation ids from 1 (pycocotools' matching takes a ground-truth
 * id of 0 for "unmatched"). Within an image annotations follow the converter's order: by
 * instance-image id, so crowds (id = label id) before the instances (label id x 1000 + n).
 *
 * @example One polygon file, parsed
 * ```ts
 * import { parseCityscapesPolygons } from "./cityscapes.ts";
 * import assert from "node:assert/strict";
 *
 * const { annotations } = parseCityscapesPolygons({
 *   imgHeight: 8,
 *   imgWidth: 16,
 *   objects: [
 *     { label: "car", polygon: [[0, 0], [8, 0], [8, 4], [0, 4]] },
 *     { label: "person", polygon: [[6, 2], [10, 2], [10, 8], [6, 8]] }, // covers 4 car pixels
 *     { label: "road", polygon: [[0, 7], [16, 7], [16, 8], [0, 8]] }, // covers 4 person pixels
 *   ],
 * });
 * assert.deepEqual(annotations.map((a) => [a.category_id, a.area, a.bbox]), [
 *   [24, 20, [6, 2, 4, 5]],
 *   [26, 28, [0, 0, 8, 4]],
 * ]);
 * ```
 *
 * @module
 */

import { joinPath } from "./path.ts";
import { parseJsonBytes } from "./coco.ts";
import type { CocoAnnotation, CocoCategory, CocoDataset, CocoImage } from "./coco_types.ts";
import * as mask from "./mask.ts";
import { PNG_MAX_PIXELS } from "./png.ts";

/** A Cityscapes split. */
export type CityscapesSplit = "train" | "val" | "test";

/** The splits {@linkcode loadCityscapes} reads. */
export const CITYSCAPES_SPLITS: readonly CityscapesSplit[] = ["train", "val", "test"];

/**
 * The 8 instance classes in mmdetection's order, which is ascending category id, so a class's
 * contiguous label (`CocoIndex.labelOf`) is its index here.
 */
export const CITYSCAPES_CLASSES = [
  "person",
  "rider",
  "car",
  "truck",
  "bus",
  "train",
  "motorcycle",
  "bicycle",
] as const;

/** Cityscapes' label ids of the instance classes that are evaluated (the category ids). */
const CATEGORY_IDS: readonly number[] = [24, 25, 26, 27, 28, 31, 32, 33];

/** Every Cityscapes label with its id (cityscapesScripts' `labels.py`); -1 is never painted. */
const LABEL_IDS: ReadonlyMap<string, number> = new Map([
  ...[
    "unlabeled",
    "ego vehicle",
    "rectification border",
    "out of roi",
    "static",
    "dynamic",
    "ground",
    "road",
    "sidewalk",
    "parking",
    "rail track",
    "building",
    "wall",
    "fence",
    "guard rail",
    "bridge",
    "tunnel",
    "pole",
    "polegroup",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "caravan",
    "trailer",
    "train",
    "motorcycle",
    "bicycle",
  ].map((name, id) => [name, id] as const),
  ["license plate", -1],
]);

/** Label ids that have instances (person to bicycle, caravan and trailer included). */
const FIRST_INSTANCE_ID = 24, LAST_INSTANCE_ID = 33;

/**
 * The COCO categories of Cityscapes instances, as the converter writes them.
 *
 * @returns `[{ id: 24, name: "person" }, ..., { id: 33, name: "bicycle" }]`.
 */
export function cityscapesCategories(): CocoCategory[] {
  return CITYSCAPES_CLASSES.map((name, i) => ({ id: CATEGORY_IDS[i], name }));
}

/**
 * The folder the `file_name`s of a split are relative to: `root/leftImg8bit/split`.
 *
 * @example
 * ```ts
 * import { cityscapesImageDir } from "./cityscapes.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(cityscapesImageDir("data/cityscapes", "val"), "data/cityscapes/leftImg8bit/val");
 * ```
 *
 * @param root The Cityscapes folder (holding `leftImg8bit/` and `gtFine/`).
 * @param split The split.
 * @returns The image folder of the split.
 */
export function cityscapesImageDir(root: string, split: CityscapesSplit): string {
  return joinPath(root, "leftImg8bit", checkSplit(split));
}

/** One image's annotations, before image and annotation ids are given. */
export interface CityscapesInstances {
  /** `imgWidth` of the polygon file. */
  width: number;
  /** `imgHeight` of the polygon file. */
  height: number;
  /** Visible-mask annotations in the converter's order; `id` and `image_id` are 0. */
  annotations: CocoAnnotation[];
}

type Obj = Record<string, unknown>;

const isObj = (x: unknown): x is Obj => typeof x === "object" && x !== null && !Array.isArray(x);

/** An object's key in the instance image (crowd: the label id; else label id x 1000 + n). */
interface Instance {
  key: number;
  categoryId: number;
  iscrowd: 0 | 1;
}

/**
 * Turns one `*_gtFine_polygons.json` into COCO annotations: paints every polygon in file order
 * (see the module doc), then encodes each evaluated object's visible pixels as an RLE with its
 * area and box. Objects covered entirely, other labels (stuff, `caravan`, `trailer`,
 * `license plate`) and objects marked `deleted` give no annotation.
 *
 * @param json The value of `JSON.parse` of the file.
 * @param source Names the file in messages.
 * @returns The image size and its annotations.
 * @throws {SyntaxError} Naming the file and the object index at fault: a size that is not a
 *   positive integer, an object without a label, an unknown label, a polygon of fewer than 3
 *   points or with a point that is not two finite numbers.
 */
export function parseCityscapesPolygons(
  json: unknown,
  source = "<memory>",
): CityscapesInstances {
  const fail: (msg: string) => never = (msg) => {
    throw new SyntaxError(`Cannot load Cityscapes file "${source}": ${msg}`);
  };
  if (!isObj(json)) return fail("top level is not an object");
  const size = (key: string): number => {
    if (!(key in json)) fail(`missing key "${key}"`);
    const v = json[key];
    if (!Number.isInteger(v) || (v as number) < 1) {
      fail(`${key} is ${JSON.stringify(v)}, expected a positive integer`);
    }
    return v as number;
  };
  const height = size("imgHeight"), width = size("imgWidth");
  if (height * width > PNG_MAX_PIXELS) {
    fail(`image size ${width}x${height} exceeds the ${PNG_MAX_PIXELS}-pixel limit of PNG images`);
  }
  if (!Array.isArray(json.objects)) {
    fail(`"objects" is ${json.objects === undefined ? "missing" : "not an array"}`);
  }
  const objects = json.objects as unknown[];
  // Owner of each pixel, column-major like the runs: an index into `instances`, or -1.
  const owner = new Int32Array(height * width).fill(-1);
  const instances: Instance[] = [];
  const crowdOf = new Map<number, number>();
  const counted = new Map<number, number>();
  // `[x0, y0, x1, y1]` of each painted instance's polygon: a polygon that paints background only
  // matters where it meets one, so one that meets none is not rasterised (the result is the same).
  const instanceBoxes: number[][] = [];
  objects.forEach((o, i) => {
    if (!isObj(o)) fail(`object ${i} is not an object`);
    if (o.deleted) return;
    if (!("label" in o)) fail(`object ${i} has no label`);
    if (typeof o.label !== "string") {
      return fail(`object ${i} has label ${JSON.stringify(o.label)}, expected a string`);
    }
    let label: string = o.label;
    const what = `object ${i} ("${label}")`;
    const poly = o.polygon;
    if (!("polygon" in o)) fail(`${what} has no polygon`);
    if (!Array.isArray(poly)) fail(`${what} has polygon ${JSON.stringify(poly)}, expected points`);
    const points = poly as unknown[];
    if (points.length < 3) {
      fail(
        `${what} has a polygon of ${points.length} point${
          points.length === 1 ? "" : "s"
        }, expected at least 3`,
      );
    }
    const xy = new Float64Array(points.length * 2);
    points.forEach((p, j) => {
      if (
        !Array.isArray(p) || p.length !== 2 ||
        !p.every((v) => typeof v === "number" && Number.isFinite(v))
      ) {
        fail(
          `${what} has polygon point ${j} = ${JSON.stringify(p) ?? "undefined"}, expected [x, y]`,
        );
      }
      xy[2 * j] = (p as number[])[0];
      xy[2 * j + 1] = (p as number[])[1];
    });
    let isGroup = false;
    if (!LABEL_IDS.has(label) && label.endsWith("group")) {
      label = label.slice(0, -"group".length);
      isGroup = true;
    }
    const id = LABEL_IDS.get(label);
    if (id === undefined) return fail(`${what} has an unknown label`);
    if (id < 0) return; // not painted
    let paint = -1;
    if (id >= FIRST_INSTANCE_ID && id <= LAST_INSTANCE_ID) {
      let key = id;
      if (!isGroup) {
        const n = counted.get(id) ?? 0;
        counted.set(id, n + 1);
        key = id * 1000 + n;
      }
      if (CATEGORY_IDS.includes(id)) {
        paint = isGroup ? crowdOf.get(id) ?? -1 : -1;
        if (paint < 0) {
          paint = instances.length;
          instances.push({ key, categoryId: id, iscrowd: isGroup ? 1 : 0 });
          if (isGroup) crowdOf.set(id, paint);
        }
      }
    }
    const box = polygonBox(xy);
    if (paint >= 0) instanceBoxes.push(box);
    else if (!instanceBoxes.some((b) => boxesMeet(b, box))) return;
    const counts = mask.rleCounts(mask.fromPolygons([xy], height, width)[0]);
    for (let j = 0, p = 0; j < counts.length; p += counts[j], j++) {
      if (j & 1) owner.fill(paint, p, p + counts[j]);
    }
  });
  return { width, height, annotations: visibleAnnotations(owner, instances, height, width) };
}

/** `[x0, y0, x1, y1]` of a polygon's coordinates. */
function polygonBox(xy: Float64Array): number[] {
  const box = [Infinity, Infinity, -Infinity, -Infinity];
  for (let j = 0; j < xy.length; j += 2) {
    box[0] = Math.min(box[0], xy[j]), box[2] = Math.max(box[2], xy[j]);
    box[1] = Math.min(box[1], xy[j + 1]), box[3] = Math.max(box[3], xy[j + 1]);
  }
  return box;
}

/** Whether two polygon boxes come within 2 pixels (a rasterised pixel never lies farther out). */
function boxesMeet(a: number[], b: number[]): boolean {
  return a[0] < b[2] + 2 && b[0] < a[2] + 2 && a[1] < b[3] + 2 && b[1] < a[3] + 2;
}

/** Each instance's pixels in `owner` as an annotation, in instance-image id order; empty ones dropped. */
function visibleAnnotations(
  owner: Int32Array,
  instances: Instance[],
  height: number,
  width: number,
): CocoAnnotation[] {
  const runs = instances.map(() => [] as number[]);
  const ends = new Float64Array(instances.length);
  const n = owner.length;
  for (let s = 0; s < n;) {
    const o = owner[s];
    let e = s + 1;
    while (e < n && owner[e] === o) e++;
    if (o >= 0) {
      // Zeros since this instance's last pixel, then the ones of this stretch.
      runs[o].push(s - ends[o], e - s);
      ends[o] = e;
    }
    s = e;
  }
  const out: { key: number; annotation: CocoAnnotation }[] = [];
  instances.forEach((inst, k) => {
    if (runs[k].length === 0) return;
    if (ends[k] < n) runs[k].push(n - ends[k]);
    const rle = mask.fromUncompressed({ size: [height, width], counts: runs[k] });
    out.push({
      key: inst.key,
      annotation: {
        id: 0,
        image_id: 0,
        category_id: inst.categoryId,
        bbox: mask.toBbox(rle),
        area: mask.area(rle),
        iscrowd: inst.iscrowd,
        segmentation: rle,
      },
    });
  });
  return out.sort((a, b) => a.key - b.key).map((o) => o.annotation);
}

function checkSplit(split: string): CityscapesSplit {
  if (!(CITYSCAPES_SPLITS as readonly string[]).includes(split)) {
    throw new RangeError(
      `Unknown Cityscapes split ${JSON.stringify(split)}: expected one of ${
        CITYSCAPES_SPLITS.map((s) => `"${s}"`).join(", ")
      }`,
    );
  }
  return split as CityscapesSplit;
}

const IMAGE_SUFFIX = "_leftImg8bit.png";
const POLYGONS_SUFFIX = "_gtFine_polygons.json";

/** `city/stem` of every file ending in `suffix` one folder below `dir`. */
async function listStems(dir: string, suffix: string, what: string): Promise<Set<string>> {
  const stems = new Set<string>();
  let cities: Deno.DirEntry[];
  try {
    cities = await Array.fromAsync(Deno.readDir(dir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot load Cityscapes ${what}: folder "${dir}" is missing`);
    }
    throw e;
  }
  for (const city of cities) {
    if (!city.isDirectory) continue;
    for await (const f of Deno.readDir(joinPath(dir, city.name))) {
      if (f.isFile && f.name.endsWith(suffix)) {
        stems.add(`${city.name}/${f.name.slice(0, -suffix.length)}`);
      }
    }
  }
  return stems;
}

/**
 * Reads one split of a Cityscapes folder (`leftImg8bit/{split}/` and `gtFine/{split}/`; other
 * splits are not touched) into a COCO dataset: each image with its polygon file, parsed by
 * {@linkcode parseCityscapesPolygons}. Images are in city, then name order, with ids from 1.
 *
 * ```ts ignore
 * const val = await loadCityscapes("data/cityscapes", "val");
 * const source = cocoSource(val, cityscapesImageDir("data/cityscapes", "val"), { skipCrowd: false });
 * ```
 *
 * @param root The Cityscapes folder.
 * @param split `"train"`, `"val"` or `"test"`.
 * @returns The dataset (categories: {@linkcode cityscapesCategories}).
 * @throws {RangeError} For an unknown split.
 * @throws {Deno.errors.NotFound} Naming a missing split folder, an image without its polygon
 *   file or a polygon file without its image.
 * @throws {SyntaxError} Naming the polygon file (and object index) that is not valid.
 */
export async function loadCityscapes(root: string, split: CityscapesSplit): Promise<CocoDataset> {
  const imageDir = cityscapesImageDir(root, split);
  const gtDir = joinPath(root, "gtFine", split);
  const what = `split "${split}" of "${root}"`;
  const images = await listStems(imageDir, IMAGE_SUFFIX, what);
  const polygons = await listStems(gtDir, POLYGONS_SUFFIX, what);
  const stems = [...new Set([...images, ...polygons])].sort();
  const cocoImages: CocoImage[] = [];
  const annotations: CocoAnnotation[] = [];
  for (const stem of stems) {
    const imagePath = joinPath(imageDir, stem + IMAGE_SUFFIX);
    const jsonPath = joinPath(gtDir, stem + POLYGONS_SUFFIX);
    if (!images.has(stem)) {
      throw new Deno.errors.NotFound(
        `Cannot load Cityscapes ${what}: image "${imagePath}" of "${jsonPath}" is missing`,
      );
    }
    if (!polygons.has(stem)) {
      throw new Deno.errors.NotFound(
        `Cannot load Cityscapes ${what}: polygon file "${jsonPath}" of "${imagePath}" is missing`,
      );
    }
    const context = `Cannot load Cityscapes file "${jsonPath}"`;
    const parsed = parseCityscapesPolygons(
      parseJsonBytes(await Deno.readFile(jsonPath), context),
      jsonPath,
    );
    const id = cocoImages.length + 1;
    cocoImages.push({
      id,
      width: parsed.width,
      height: parsed.height,
      file_name: stem + IMAGE_SUFFIX,
    });
    for (const a of parsed.annotations) {
      annotations.push({ ...a, id: annotations.length + 1, image_id: id });
    }
  }
  return { images: cocoImages, categories: cityscapesCategories(), annotations };
}
