/**
 * COCO annotation files: loading with validation, an index by image and
 * category, contiguous labels, and results files (detections) in the form
 * pycocotools' `loadRes` reads.
 *
 * @example Parse, index and map labels
 * ```ts
 * import { CocoIndex, parseCoco } from "./coco.ts";
 * import assert from "node:assert/strict";
 *
 * const ds = parseCoco({
 *   images: [{ id: 7, width: 10, height: 10, file_name: "a.png" }],
 *   categories: [{ id: 3, name: "cat" }, { id: 1, name: "dog" }],
 *   annotations: [{ id: 1, image_id: 7, category_id: 3, bbox: [1, 1, 2, 2], area: 4, iscrowd: 0 }],
 * });
 * const index = new CocoIndex(ds);
 * assert.equal(index.labelOf(3), 1);
 * assert.equal(index.categoryIdOf(0), 1);
 * assert.equal(index.annotationsOf(7).length, 1);
 * ```
 *
 * @module
 */

import type {
  CocoAnnotation,
  CocoBbox,
  CocoCategory,
  CocoDataset,
  CocoDetection,
  CocoImage,
  CocoRle,
  CocoSegmentation,
} from "./coco_types.ts";
import { countsFromString } from "./mask.ts";

export type * from "./coco_types.ts";

/** Options of {@linkcode parseCoco} and {@linkcode loadCoco}. */
export interface ParseCocoOptions {
  /** Name used in messages (the file path); defaults to `"<memory>"`. */
  source?: string;
  /** Receives each warning (boxes clipped, defaults filled); defaults to `console.warn`. */
  onWarning?: (message: string) => void;
}

/** A JSON object. */
export type Obj = Record<string, unknown>;

/**
 * Whether a JSON value is an object (not an array, not null).
 *
 * @example
 * ```ts
 * import { isObj } from "./coco.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isObj({}), true);
 * assert.equal(isObj([]), false);
 * ```
 *
 * @param x Any value.
 * @returns True for a plain object.
 */
export function isObj(x: unknown): x is Obj {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function isNum(x: unknown): x is number {
  return typeof x === "number" && Number.isFinite(x);
}

/** What differs between the formats whose files {@linkcode parseCoco} checks. */
export interface DatasetFormat {
  /** Name in messages: `"COCO"` or `"LVIS"`. */
  name: string;
  /** A missing `iscrowd` is 0 without a warning (LVIS files have none). */
  crowdOptional: boolean;
}

/** COCO's rules: a missing `iscrowd` is 0, with a warning. */
export const COCO_FORMAT: Readonly<DatasetFormat> = Object.freeze({
  name: "COCO",
  crowdOptional: false,
});

/**
 * Error and warning messages for one annotation file, and the id check they
 * share: `fail` throws a `SyntaxError` naming the format and the file.
 *
 * @example
 * ```ts
 * import { DatasetChecker } from "./coco.ts";
 * import assert from "node:assert/strict";
 *
 * const c = new DatasetChecker("a.json", () => {}, "LVIS");
 * assert.equal(c.id({ id: 3 }, "id", "image at index 0"), 3);
 * assert.throws(() => c.id({ id: 1.5 }, "id", "image at index 0"), {
 *   name: "SyntaxError",
 *   message: 'Cannot load LVIS file "a.json": image at index 0 has id 1.5, expected an integer',
 * });
 * ```
 */
export class DatasetChecker {
  /**
   * A checker for one file.
   *
   * @param source File name used in messages.
   * @param warn Receives each warning.
   * @param format Format name used in messages.
   */
  constructor(
    readonly source: string,
    readonly warn: (m: string) => void,
    readonly format = "COCO",
  ) {}
  /**
   * Throw the problem.
   *
   * @param msg What is wrong, naming the entry and id.
   */
  fail(msg: string): never {
    throw new SyntaxError(`Cannot load ${this.format} file "${this.source}": ${msg}`);
  }
  /**
   * Report a problem that was repaired.
   *
   * @param msg What was wrong and what was done.
   */
  warning(msg: string): void {
    this.warn(`${this.format} file "${this.source}": ${msg}`);
  }
  /**
   * An integer field of an entry.
   *
   * @param o The entry.
   * @param key Its key.
   * @param what The entry as messages name it.
   * @returns The value.
   */
  id(o: Obj, key: string, what: string): number {
    if (!(key in o)) this.fail(`${what} is missing key "${key}"`);
    const v = o[key];
    if (!isNum(v) || !Number.isInteger(v)) {
      this.fail(`${what} has ${key} ${JSON.stringify(v)}, expected an integer`);
    }
    return v;
  }
}

function checkSegmentation(
  c: DatasetChecker,
  seg: unknown,
  what: string,
  h: number,
  w: number,
): CocoSegmentation {
  if (Array.isArray(seg)) {
    seg.forEach((poly, i) => {
      if (!Array.isArray(poly) || poly.length < 6 || poly.length % 2 !== 0) {
        c.fail(
          `${what} has polygon ${i} with ${
            Array.isArray(poly) ? poly.length : "no"
          } coordinates, expected an even number >= 6`,
        );
      }
      for (let j = 0; j < poly.length; j++) {
        if (!isNum(poly[j])) {
          c.fail(`${what} has polygon ${i} coordinate ${j} = ${JSON.stringify(poly[j]) ?? "null"}`);
        }
      }
    });
    return seg as CocoSegmentation;
  }
  if (!isObj(seg)) {
    c.fail(`${what} has segmentation ${JSON.stringify(seg)}, expected polygons or RLE`);
  }
  const size = seg.size;
  if (!Array.isArray(size) || size.length !== 2 || size[0] !== h || size[1] !== w) {
    c.fail(`${what} has RLE size ${JSON.stringify(size)}, expected [${h}, ${w}] of its image`);
  }
  if (typeof seg.counts === "string") {
    let counts: Uint32Array;
    try {
      counts = countsFromString(seg.counts);
    } catch (e) {
      c.fail(`${what} has RLE counts that do not decode: ${(e as Error).message}`);
    }
    const total = counts.reduce((a, b) => a + b, 0);
    if (total !== h * w) c.fail(`${what} has RLE counts summing to ${total}, expected ${h * w}`);
  } else if (Array.isArray(seg.counts)) {
    let total = 0;
    for (const v of seg.counts) {
      if (!isNum(v) || v < 0 || !Number.isInteger(v)) {
        c.fail(`${what} has RLE count ${JSON.stringify(v) ?? "null"}`);
      }
      total += v;
    }
    if (total !== h * w) c.fail(`${what} has RLE counts summing to ${total}, expected ${h * w}`);
  } else c.fail(`${what} has RLE without counts`);
  return seg as unknown as CocoSegmentation;
}

/**
 * Validate a parsed COCO (or LVIS) annotation object. Problems are errors
 * naming the entry and id: missing keys, non-finite or negative sizes, unknown
 * image or category ids, duplicate ids, malformed segmentations. Boxes reaching
 * outside their image are clipped with a warning; a missing `iscrowd` becomes 0
 * and a missing `area` the box area, also with a warning. A missing
 * `annotations` array (test-set image lists) is read as empty. Extra keys (LVIS'
 * `not_exhaustive_category_ids`, `neg_category_ids`, `frequency`) are kept.
 *
 * @param json The value of `JSON.parse` of the file.
 * @param options Source name and warning sink.
 * @param format Format rules and name (LVIS files use them through `parseLvis`).
 * @returns A new dataset object (input entries are copied where changed).
 * @throws {SyntaxError} Naming the first problem found.
 */
export function parseCoco(
  json: unknown,
  options: ParseCocoOptions = {},
  format: Readonly<DatasetFormat> = COCO_FORMAT,
): CocoDataset {
  const c: DatasetChecker = new DatasetChecker(
    options.source ?? "<memory>",
    options.onWarning ?? console.warn,
    format.name,
  );
  if (!isObj(json)) c.fail("top level is not an object");
  for (const key of ["images", "categories"]) {
    if (!(key in json)) c.fail(`missing key "${key}"`);
    if (!Array.isArray(json[key])) c.fail(`"${key}" is not an array`);
  }
  if ("annotations" in json && !Array.isArray(json.annotations)) {
    c.fail(`"annotations" is not an array`);
  }
  const images = new Map<number, CocoImage>();
  (json.images as unknown[]).forEach((im, i) => {
    if (!isObj(im)) c.fail(`image at index ${i} is not an object`);
    const id = c.id(im, "id", `image at index ${i}`);
    const what = `image ${id}`;
    if (images.has(id)) c.fail(`duplicate image id ${id}`);
    for (const key of ["width", "height"]) {
      if (!(key in im)) c.fail(`${what} is missing key "${key}"`);
      const v = im[key];
      if (!isNum(v) || !Number.isInteger(v) || v <= 0) {
        c.fail(`${what} has ${key} ${JSON.stringify(v)}, expected a positive integer`);
      }
    }
    if (!("file_name" in im)) c.fail(`${what} is missing key "file_name"`);
    if (typeof im.file_name !== "string") {
      c.fail(`${what} has file_name ${JSON.stringify(im.file_name)}`);
    }
    images.set(id, im as CocoImage);
  });
  const categories = new Map<number, CocoCategory>();
  (json.categories as unknown[]).forEach((cat, i) => {
    if (!isObj(cat)) c.fail(`category at index ${i} is not an object`);
    const id = c.id(cat, "id", `category at index ${i}`);
    if (categories.has(id)) c.fail(`duplicate category id ${id}`);
    if (!("name" in cat)) c.fail(`category ${id} is missing key "name"`);
    if (typeof cat.name !== "string") c.fail(`category ${id} has name ${JSON.stringify(cat.name)}`);
    categories.set(id, cat as CocoCategory);
  });
  for (const [id, im] of images) {
    for (const key of ["not_exhaustive_category_ids", "neg_category_ids"]) {
      if (!(key in im)) continue;
      const list = im[key];
      if (!Array.isArray(list)) c.fail(`image ${id} has ${key} that is not an array`);
      for (const cid of list) {
        if (!categories.has(cid)) {
          c.fail(`image ${id} lists unknown category id ${JSON.stringify(cid)} in ${key}`);
        }
      }
    }
  }
  const seen = new Set<number>();
  const annotations: CocoAnnotation[] = ((json.annotations ?? []) as unknown[]).map((a, i) => {
    if (!isObj(a)) c.fail(`annotation at index ${i} is not an object`);
    const id = c.id(a, "id", `annotation at index ${i}`);
    const what = `annotation ${id}`;
    if (seen.has(id)) c.fail(`duplicate annotation id ${id}`);
    seen.add(id);
    const imageId = c.id(a, "image_id", what);
    const im = images.get(imageId);
    if (!im) c.fail(`${what} has unknown image_id ${imageId}`);
    const categoryId = c.id(a, "category_id", what);
    if (!categories.has(categoryId)) c.fail(`${what} has unknown category_id ${categoryId}`);
    if (!("bbox" in a)) c.fail(`${what} is missing key "bbox"`);
    const b = a.bbox;
    if (!Array.isArray(b) || b.length !== 4 || !b.every(isNum)) {
      c.fail(`${what} has bbox ${JSON.stringify(b)}, expected 4 finite numbers`);
    }
    if (b[2] < 0 || b[3] < 0) c.fail(`${what} has negative bbox size ${b[2]}x${b[3]}`);
    const out: CocoAnnotation = { ...a } as CocoAnnotation;
    const x0 = Math.max(0, b[0]), y0 = Math.max(0, b[1]);
    const x1 = Math.min(im.width, b[0] + b[2]), y1 = Math.min(im.height, b[1] + b[3]);
    if (x0 !== b[0] || y0 !== b[1] || x1 !== b[0] + b[2] || y1 !== b[1] + b[3]) {
      const clipped: CocoBbox = [x0, y0, Math.max(0, x1 - x0), Math.max(0, y1 - y0)];
      c.warning(
        `${what} has bbox ${
          JSON.stringify(b)
        } outside image ${imageId} (${im.width}x${im.height}), clipped to ${
          JSON.stringify(clipped)
        }`,
      );
      out.bbox = clipped;
    } else out.bbox = [b[0], b[1], b[2], b[3]];
    if (!("area" in a)) {
      c.warning(`${what} is missing key "area", using the box area`);
      out.area = out.bbox[2] * out.bbox[3];
    } else if (!isNum(a.area) || a.area < 0) c.fail(`${what} has area ${JSON.stringify(a.area)}`);
    if (!("iscrowd" in a)) {
      if (!format.crowdOptional) c.warning(`${what} is missing key "iscrowd", using 0`);
      out.iscrowd = 0;
    } else if (a.iscrowd !== 0 && a.iscrowd !== 1 && a.iscrowd !== true && a.iscrowd !== false) {
      c.fail(`${what} has iscrowd ${JSON.stringify(a.iscrowd)}, expected 0 or 1`);
    } else out.iscrowd = a.iscrowd ? 1 : 0;
    if ("segmentation" in a && a.segmentation !== undefined && a.segmentation !== null) {
      out.segmentation = checkSegmentation(c, a.segmentation, what, im.height, im.width);
    }
    return out;
  });
  const out: CocoDataset = {
    ...(json as Obj),
    images: [...images.values()],
    categories: [...categories.values()],
    annotations,
  };
  return out;
}

/** Strict UTF-8: a file with bytes that are not UTF-8 is an error, not U+FFFD in a name. */
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * `JSON.parse` of a file's bytes read as strict UTF-8 (the annotation loaders share it).
 *
 * @example
 * ```ts
 * import { parseJsonBytes } from "./coco.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseJsonBytes(new TextEncoder().encode("[1]"), "Cannot load x"), [1]);
 * assert.throws(
 *   () => parseJsonBytes(new Uint8Array([0xff]), "Cannot load x"),
 *   /^SyntaxError: Cannot load x: the file is not UTF-8/,
 * );
 * ```
 *
 * @param bytes The file's contents.
 * @param context Starts the error message, e.g. `Cannot load COCO file "a.json"`.
 * @returns The parsed value.
 * @throws {SyntaxError} `context: ` and JSON.parse's message, or that the bytes are not UTF-8.
 */
export function parseJsonBytes(bytes: Uint8Array, context: string): unknown {
  try {
    return JSON.parse(utf8.decode(bytes));
  } catch (e) {
    const problem = e instanceof SyntaxError
      ? e.message
      : `the file is not UTF-8 text (${(e as Error).message})`;
    throw new SyntaxError(`${context}: ${problem}`);
  }
}

/**
 * Read a JSON file as strict UTF-8.
 *
 * ```ts ignore
 * const json = await readJsonFile("a.json", 'LVIS file "a.json"');
 * ```
 *
 * @param path File path or URL.
 * @param what The file as messages name it, e.g. `COCO file "a.json"`.
 * @returns The parsed value.
 * @throws {SyntaxError} `Cannot load <what>: ...` when the file is not UTF-8 or not JSON.
 */
export async function readJsonFile(path: string | URL, what: string): Promise<unknown> {
  return parseJsonBytes(await Deno.readFile(path), `Cannot load ${what}`);
}

/**
 * Read and validate a COCO annotation file.
 *
 * ```ts ignore
 * const ds = await loadCoco("annotations/instances_val2017.json");
 * ```
 *
 * @param path File path or URL.
 * @param options Warning sink (the source name defaults to the path).
 * @returns The validated dataset.
 * @throws {SyntaxError} When the file is not JSON or fails validation.
 */
export async function loadCoco(
  path: string | URL,
  options: ParseCocoOptions = {},
): Promise<CocoDataset> {
  const source = options.source ?? String(path);
  return parseCoco(await readJsonFile(path, `COCO file "${source}"`), { ...options, source });
}

/**
 * Lookups over a dataset: by image, by category, and contiguous 0-based
 * labels in ascending category-id order.
 */
export class CocoIndex {
  /** The indexed dataset. */
  readonly dataset: CocoDataset;
  /** Images by id. */
  readonly images: Map<number, CocoImage> = new Map();
  /** Categories by id. */
  readonly categories: Map<number, CocoCategory> = new Map();
  /** Annotations by id. */
  readonly annotations: Map<number, CocoAnnotation> = new Map();
  /** Image ids in ascending order. */
  readonly imageIds: number[];
  /** Category ids in ascending order; `categoryIds[label]` is the id of a label. */
  readonly categoryIds: number[];
  #byImage = new Map<number, CocoAnnotation[]>();
  #byCategory = new Map<number, CocoAnnotation[]>();
  #imagesByCategory = new Map<number, number[]>();
  #labels = new Map<number, number>();

  /**
   * Index a dataset.
   *
   * @param dataset A dataset (validate it first with {@linkcode parseCoco}).
   */
  constructor(dataset: CocoDataset) {
    this.dataset = dataset;
    for (const im of dataset.images) this.images.set(im.id, im);
    for (const cat of dataset.categories) this.categories.set(cat.id, cat);
    this.imageIds = [...this.images.keys()].sort((a, b) => a - b);
    this.categoryIds = [...this.categories.keys()].sort((a, b) => a - b);
    this.categoryIds.forEach((id, i) => this.#labels.set(id, i));
    for (const a of dataset.annotations) {
      this.annotations.set(a.id, a);
      push(this.#byImage, a.image_id, a);
      push(this.#byCategory, a.category_id, a);
    }
    for (const [cid, anns] of this.#byCategory) {
      this.#imagesByCategory.set(
        cid,
        [...new Set(anns.map((a) => a.image_id))].sort((a, b) => a - b),
      );
    }
  }

  /** Number of categories (labels are `0..numClasses-1`). */
  get numClasses(): number {
    return this.categoryIds.length;
  }

  /**
   * Annotations of one image, in file order.
   * @param imageId Image id.
   * @returns The annotations (empty if none).
   */
  annotationsOf(imageId: number): CocoAnnotation[] {
    return this.#byImage.get(imageId) ?? [];
  }

  /**
   * Annotations of one category, in file order.
   * @param categoryId Category id.
   * @returns The annotations (empty if none).
   */
  annotationsOfCategory(categoryId: number): CocoAnnotation[] {
    return this.#byCategory.get(categoryId) ?? [];
  }

  /**
   * Ids of the images holding at least one annotation of a category.
   * @param categoryId Category id.
   * @returns Ascending image ids.
   */
  imagesWith(categoryId: number): number[] {
    return this.#imagesByCategory.get(categoryId) ?? [];
  }

  /**
   * Contiguous label of a category id.
   * @param categoryId Category id.
   * @returns Its 0-based label.
   * @throws {RangeError} For an unknown id.
   */
  labelOf(categoryId: number): number {
    const l = this.#labels.get(categoryId);
    if (l === undefined) throw new RangeError(`Unknown category id ${categoryId}`);
    return l;
  }

  /**
   * Category id of a contiguous label.
   * @param label 0-based label.
   * @returns The category id.
   * @throws {RangeError} For a label outside `0..numClasses-1`.
   */
  categoryIdOf(label: number): number {
    const id = this.categoryIds[label];
    if (id === undefined) {
      throw new RangeError(`Label ${label} is outside 0..${this.numClasses - 1}`);
    }
    return id;
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

/**
 * Validate a results file (a JSON array of detections). Each needs
 * `image_id`, `category_id`, a finite `score`, and a `bbox` of 4 finite numbers
 * with non-negative size and/or a compressed-RLE `segmentation`. With an index,
 * image and category ids must be known.
 *
 * @param json The value of `JSON.parse` of the file.
 * @param index Optional ground truth to check ids against.
 * @param source Name used in messages.
 * @returns The detections.
 * @throws {SyntaxError} Naming the detection index at fault.
 */
export function parseCocoResults(
  json: unknown,
  index?: CocoIndex,
  source = "<memory>",
): CocoDetection[] {
  const fail: (msg: string) => never = (msg) => {
    throw new SyntaxError(`Cannot load COCO results "${source}": ${msg}`);
  };
  if (!Array.isArray(json)) fail("top level is not an array");
  return (json as unknown[]).map((d, i) => {
    if (!isObj(d)) fail(`detection ${i} is not an object`);
    const det = d as Obj;
    for (const key of ["image_id", "category_id", "score"]) {
      if (!(key in det)) fail(`detection ${i} is missing key "${key}"`);
      if (!isNum(det[key])) fail(`detection ${i} has ${key} ${JSON.stringify(det[key])}`);
      if (key !== "score" && !Number.isInteger(det[key])) {
        fail(`detection ${i} has ${key} ${det[key]}, expected an integer`);
      }
    }
    if (index && !index.images.has(det.image_id as number)) {
      fail(`detection ${i} has unknown image_id ${det.image_id}`);
    }
    if (index && !index.categories.has(det.category_id as number)) {
      fail(`detection ${i} has unknown category_id ${det.category_id}`);
    }
    if (!("bbox" in det) && !("segmentation" in det)) {
      fail(`detection ${i} has neither "bbox" nor "segmentation"`);
    }
    const out: CocoDetection = {
      image_id: det.image_id as number,
      category_id: det.category_id as number,
      score: det.score as number,
    };
    if ("bbox" in det) {
      const b = det.bbox;
      if (!Array.isArray(b) || b.length !== 4 || !b.every(isNum) || b[2] < 0 || b[3] < 0) {
        fail(`detection ${i} has bbox ${JSON.stringify(b)}`);
      }
      out.bbox = [b[0], b[1], b[2], b[3]];
    }
    if ("segmentation" in det) {
      const s = det.segmentation;
      if (
        !isObj(s) || typeof s.counts !== "string" || !Array.isArray(s.size) ||
        s.size.length !== 2 || !s.size.every((v) => Number.isInteger(v) && v >= 0)
      ) fail(`detection ${i} has a segmentation that is not a compressed RLE`);
      let total = 0;
      try {
        total = countsFromString(s.counts as string).reduce((a, b) => a + b, 0);
      } catch (e) {
        fail(`detection ${i} has RLE counts that do not decode: ${(e as Error).message}`);
      }
      const [h, w] = s.size as [number, number];
      if (total !== h * w) {
        fail(`detection ${i} has RLE counts summing to ${total}, expected ${h * w} (${h}x${w})`);
      }
      out.segmentation = { size: [s.size[0], s.size[1]], counts: s.counts as string };
    }
    return out;
  });
}

/**
 * Read a results file.
 *
 * @param path File path or URL.
 * @param index Optional ground truth to check ids against.
 * @returns The detections.
 */
export async function loadCocoResults(
  path: string | URL,
  index?: CocoIndex,
): Promise<CocoDetection[]> {
  const json = await readJsonFile(path, `COCO results "${path}"`);
  return parseCocoResults(json, index, String(path));
}

/**
 * Serialise detections as a results file pycocotools' `loadRes` accepts.
 *
 * @param detections Detections.
 * @returns JSON text.
 */
export function stringifyCocoResults(detections: CocoDetection[]): string {
  return JSON.stringify(detections.map((d) => {
    const o: CocoDetection = { image_id: d.image_id, category_id: d.category_id, score: d.score };
    if (d.bbox) o.bbox = [d.bbox[0], d.bbox[1], d.bbox[2], d.bbox[3]];
    if (d.segmentation) {
      o.segmentation = { size: d.segmentation.size, counts: d.segmentation.counts };
    }
    return o;
  }));
}

/**
 * Write a results file.
 *
 * @param path File path or URL.
 * @param detections Detections.
 */
export async function writeCocoResults(
  path: string | URL,
  detections: CocoDetection[],
): Promise<void> {
  await Deno.writeTextFile(path, stringifyCocoResults(detections));
}

/**
 * Turn one image's model output (xyxy boxes in original-image pixels,
 * contiguous labels) into COCO detections.
 *
 * @example
 * ```ts
 * import { CocoIndex, toCocoDetections } from "./coco.ts";
 * import assert from "node:assert/strict";
 *
 * const index = new CocoIndex({ images: [], annotations: [], categories: [{ id: 5, name: "a" }] });
 * const dets = toCocoDetections(index, 9, new Float32Array([1, 2, 4, 6]), new Float32Array([0.5]), new Int32Array([0]));
 * assert.deepEqual(dets, [{ image_id: 9, category_id: 5, bbox: [1, 2, 3, 4], score: 0.5 }]);
 * ```
 *
 * @param index Gives the category id of each label.
 * @param imageId Image id.
 * @param boxes `[n, 4]` xyxy boxes.
 * @param scores `[n]` scores.
 * @param labels `[n]` labels.
 * @param masks Optional `[n]` RLE masks.
 * @returns `n` detections.
 */
export function toCocoDetections(
  index: CocoIndex,
  imageId: number,
  boxes: ArrayLike<number>,
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  masks?: CocoRle[],
): CocoDetection[] {
  const n = scores.length;
  if (boxes.length !== 4 * n || labels.length !== n || (masks && masks.length !== n)) {
    throw new TypeError(
      `Expected [${n}, 4] boxes and ${n} labels, got ${boxes.length} box values and ${labels.length} labels`,
    );
  }
  const out: CocoDetection[] = [];
  for (let i = 0; i < n; i++) {
    const x0 = boxes[4 * i], y0 = boxes[4 * i + 1];
    const d: CocoDetection = {
      image_id: imageId,
      category_id: index.categoryIdOf(labels[i]),
      bbox: [x0, y0, boxes[4 * i + 2] - x0, boxes[4 * i + 3] - y0],
      score: scores[i],
    };
    if (masks) d.segmentation = masks[i];
    out.push(d);
  }
  return out;
}
