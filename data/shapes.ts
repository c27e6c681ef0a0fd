/**
 * `shapes`: a seeded synthetic detection dataset, so that a newcomer with
 * nothing downloaded can train. Each image holds several circles, squares,
 * triangles, stars and rings (a ring is one keyhole polygon) at small, medium
 * and large COCO scales, with random colours, rotation, partial overlap and a
 * textured background. Masks are the polygons rasterised with pycocotools'
 * rules and painted as is (no anti-aliasing), so boxes are exact and tight.
 * Masks are amodal: an object drawn later may cover at most 30% of an earlier
 * one.
 *
 * @example In memory
 * ```ts
 * import { generateShapes } from "./shapes.ts";
 * import assert from "node:assert/strict";
 *
 * const { dataset, images } = generateShapes({ numImages: 4, seed: 1 });
 * assert.equal(images.length, 4);
 * assert.equal(dataset.categories.length, 5);
 * ```
 *
 * @module
 */

import type { CocoAnnotation, CocoCategory, CocoDataset, CocoImage } from "./coco_types.ts";
import type { DecodedImage } from "./image.ts";
import * as mask from "./mask.ts";
import { encodePng } from "./png.ts";
import { Rng } from "../tensor/rng.ts";

/** The five classes, category ids 1..5 in this order. */
export const SHAPE_CLASSES = ["circle", "square", "triangle", "star", "ring"] as const;

/** Options of {@linkcode generateShapes}. */
export interface ShapesOptions {
  /** Number of images. */
  numImages: number;
  /** Seed; equal seeds give byte-identical output. */
  seed: number;
  /** Image side in pixels (square images); default 128. */
  size?: number;
  /** Objects per image, inclusive range; default `[2, 6]`. */
  objectsPerImage?: [number, number];
  /** Probabilities of small / medium / large objects; default `[0.4, 0.45, 0.15]`. */
  scaleMix?: [number, number, number];
  /** First image id; default 1. */
  firstImageId?: number;
}

/** A generated split: COCO dataset plus RGB images in `dataset.images` order. */
export interface ShapesSplit {
  /** The COCO dataset (polygon segmentations, exact boxes, mask-pixel areas). */
  dataset: CocoDataset;
  /** RGB images, `images[i]` for `dataset.images[i]`. */
  images: DecodedImage[];
}

/** Categories of the shapes dataset. */
export function shapesCategories(): CocoCategory[] {
  return SHAPE_CLASSES.map((name, i) => ({ id: i + 1, name, supercategory: "shape" }));
}

function unitPolygon(cls: number, rng: Rng): number[] {
  const pts: number[] = [];
  const ring = (n: number, r: (k: number) => number, phase: number, reverse = false) => {
    const out: number[] = [];
    for (let k = 0; k < n; k++) {
      const kk = reverse ? n - k : k;
      const a = phase + (2 * Math.PI * kk) / n;
      out.push(r(kk) * Math.cos(a), r(kk) * Math.sin(a));
    }
    return out;
  };
  const phase = rng.uniform(0, 2 * Math.PI);
  switch (cls) {
    case 0:
      return ring(32, () => 1, phase);
    case 1:
      return ring(4, () => 1, phase);
    case 2:
      return ring(3, () => 1, phase);
    case 3:
      return ring(10, (k) => (k % 2 ? 0.45 : 1), phase);
    default: {
      // keyhole: outer circle, a cut in, the inner circle backwards, the cut out
      const inner = rng.uniform(0.45, 0.65);
      const outer = ring(32, () => 1, phase);
      const hole = ring(32, () => inner, phase, true);
      pts.push(...outer, outer[0], outer[1], ...hole, hole[0], hole[1]);
      return pts;
    }
  }
}

function shoelace(p: number[]): number {
  let a = 0;
  for (let i = 0; i < p.length; i += 2) {
    const j = (i + 2) % p.length;
    a += p[i] * p[j + 1] - p[j] * p[i + 1];
  }
  return Math.abs(a) / 2;
}

const AREA_RANGES: [number, number][] = [[80, 900], [1200, 8000], [9800, 13000]];

function background(rng: Rng, size: number): Uint8Array {
  const data = new Uint8Array(size * size * 3);
  const base = [rng.int(256), rng.int(256), rng.int(256)];
  const kind = rng.int(3);
  const amp = rng.uniform(10, 40);
  const freq = rng.uniform(0.05, 0.4);
  const angle = rng.uniform(0, Math.PI);
  const ca = Math.cos(angle), sa = Math.sin(angle);
  let noise = rng.nextU32();
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let d: number;
      if (kind === 0) d = amp * ((x * ca + y * sa) / size - 0.5) * 2; // gradient
      else if (kind === 1) d = Math.sin((x * ca + y * sa) * freq) > 0 ? amp : -amp; // stripes
      else d = 0;
      noise = (Math.imul(noise, 1664525) + 1013904223) >>> 0;
      d += ((noise >>> 24) / 255 - 0.5) * amp;
      const o = (y * size + x) * 3;
      for (let c = 0; c < 3; c++) data[o + c] = Math.max(0, Math.min(255, Math.round(base[c] + d)));
    }
  }
  return data;
}

/**
 * Generate one split in memory.
 *
 * @param options Size, seed and mix.
 * @returns The dataset and its images.
 */
export function generateShapes(options: ShapesOptions): ShapesSplit {
  const size = options.size ?? 128;
  const [minObj, maxObj] = options.objectsPerImage ?? [2, 6];
  const mix = options.scaleMix ?? [0.4, 0.45, 0.15];
  if (!Number.isInteger(options.numImages) || options.numImages < 0) {
    throw new RangeError(`numImages ${options.numImages} must be a non-negative integer`);
  }
  if (size < 16) throw new RangeError(`Image size ${size} is below 16`);
  const firstId = options.firstImageId ?? 1;
  const images: DecodedImage[] = [];
  const cocoImages: CocoImage[] = [];
  const annotations: CocoAnnotation[] = [];
  const scaleArea = size * size / (128 * 128);
  for (let n = 0; n < options.numImages; n++) {
    const rng = new Rng(options.seed, n); // one PCG32 stream per image
    const id = firstId + n;
    const data = background(rng, size);
    const owner = new Int32Array(size * size).fill(-1); // index of the topmost object per pixel
    const objects: {
      rle: mask.CocoRle;
      bits: Uint8Array;
      poly: number[];
      cls: number;
      pixels: number;
    }[] = [];
    const count = minObj + rng.int(maxObj - minObj + 1);
    let haveLarge = false;
    for (let k = 0, tries = 0; k < count && tries < count * 20; tries++) {
      const cls = rng.int(SHAPE_CLASSES.length);
      const u = rng.uniform();
      let bucket = u < mix[0] ? 0 : u < mix[0] + mix[1] ? 1 : 2;
      if (bucket === 2 && (haveLarge || objects.length > 0)) bucket = 1; // a large object goes first
      const [lo, hi] = AREA_RANGES[bucket];
      const target = rng.uniform(lo, hi) * scaleArea;
      const unit = unitPolygon(cls, rng);
      const scale = Math.sqrt(target / shoelace(unit));
      let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
      for (let i = 0; i < unit.length; i += 2) {
        x0 = Math.min(x0, unit[i] * scale), x1 = Math.max(x1, unit[i] * scale);
        y0 = Math.min(y0, unit[i + 1] * scale), y1 = Math.max(y1, unit[i + 1] * scale);
      }
      if (x1 - x0 > size - 2 || y1 - y0 > size - 2) continue;
      const cx = rng.uniform(1 - x0, size - 1 - x1);
      const cy = rng.uniform(1 - y0, size - 1 - y1);
      const poly = unit.map((v, i) => Math.round((v * scale + (i % 2 ? cy : cx)) * 100) / 100);
      const [rle] = mask.fromPolygons([poly], size, size);
      const pixels = mask.area(rle);
      if (pixels < 16) continue;
      const bits = mask.decode(rle);
      // reject when this object would hide more than 30% of an earlier one
      const covered = new Int32Array(objects.length);
      for (let p = 0; p < bits.length; p++) if (bits[p] && owner[p] >= 0) covered[owner[p]]++;
      let ok = true;
      for (let j = 0; j < objects.length; j++) {
        if (covered[j] > 0.3 * objects[j].pixels) ok = false;
      }
      if (!ok) continue;
      // colour far enough from the background under the object
      let color: number[];
      let guard = 0;
      do {
        color = [rng.int(256), rng.int(256), rng.int(256)];
        const p = bits.indexOf(1);
        const d = Math.abs(color[0] - data[p * 3]) + Math.abs(color[1] - data[p * 3 + 1]) +
          Math.abs(color[2] - data[p * 3 + 2]);
        if (d > 120) break;
      } while (++guard < 20);
      for (let p = 0; p < bits.length; p++) {
        if (!bits[p]) continue;
        owner[p] = objects.length;
        data[p * 3] = color[0], data[p * 3 + 1] = color[1], data[p * 3 + 2] = color[2];
      }
      objects.push({ rle, bits, poly, cls, pixels });
      if (bucket === 2) haveLarge = true;
      k++;
    }
    images.push({ width: size, height: size, channels: 3, data });
    cocoImages.push({
      id,
      width: size,
      height: size,
      file_name: `${String(id).padStart(6, "0")}.png`,
    });
    for (const o of objects) {
      annotations.push({
        id: annotations.length + 1,
        image_id: id,
        category_id: o.cls + 1,
        bbox: mask.toBbox(o.rle),
        area: o.pixels,
        iscrowd: 0,
        segmentation: [o.poly],
      });
    }
  }
  return {
    dataset: {
      info: { description: "brl synthetic shapes", seed: options.seed, size },
      images: cocoImages,
      categories: shapesCategories(),
      annotations,
    },
    images,
  };
}

/**
 * Train and val splits from one seed (val uses disjoint image ids).
 *
 * @param options Seed, sizes and generator options.
 * @returns `{ train, val }`.
 */
export function generateShapesSplits(
  options: { seed: number; train: number; val: number } & Omit<ShapesOptions, "numImages" | "seed">,
): { train: ShapesSplit; val: ShapesSplit } {
  const { seed, train, val, ...rest } = options;
  return {
    train: generateShapes({ ...rest, numImages: train, seed, firstImageId: 1 }),
    val: generateShapes({
      ...rest,
      numImages: val,
      seed: (seed ^ 0x5bd1e995) >>> 0,
      firstImageId: 1_000_001,
    }),
  };
}

/**
 * Write a split to disk as a real COCO dataset: `dir/<name>/*.png` and
 * `dir/annotations/instances_<name>.json`.
 *
 * ```ts ignore
 * const { train, val } = generateShapesSplits({ seed: 0, train: 1000, val: 200 });
 * await writeShapes("datasets/shapes", "train", train);
 * await writeShapes("datasets/shapes", "val", val);
 * ```
 *
 * @param dir Dataset root.
 * @param name Split name.
 * @param split The generated split.
 * @returns The annotation file path.
 */
export async function writeShapes(dir: string, name: string, split: ShapesSplit): Promise<string> {
  await Deno.mkdir(`${dir}/${name}`, { recursive: true });
  await Deno.mkdir(`${dir}/annotations`, { recursive: true });
  for (let i = 0; i < split.images.length; i++) {
    const png = await encodePng(split.images[i]);
    await Deno.writeFile(`${dir}/${name}/${split.dataset.images[i].file_name}`, png);
  }
  const path = `${dir}/annotations/instances_${name}.json`;
  await Deno.writeTextFile(path, JSON.stringify(split.dataset));
  return path;
}
