/**
 * Batches for training: seeded shuffling, decoding and transforms (in Deno
 * Workers for files, in process for in-memory sets), padding to a common
 * stride-aligned size, plain typed arrays out.
 *
 * @example In-memory synthetic set
 * ```ts
 * import { DetectionLoader, memorySource } from "./loader.ts";
 * import { generateShapes } from "./shapes.ts";
 * import assert from "node:assert/strict";
 *
 * const loader = new DetectionLoader(memorySource(generateShapes({ numImages: 4, seed: 0 })), {
 *   batchSize: 2,
 *   seed: 0,
 * });
 * for await (const batch of loader.epoch(0)) {
 *   assert.equal(batch.images.length, 2 * 3 * batch.height * batch.width);
 * }
 * loader.close();
 * ```
 *
 * @module
 */

import { CocoIndex } from "./coco.ts";
import type { CocoDataset, CocoSegmentation } from "./coco_types.ts";
import { type DecodedImage, decodeImage, toRgb } from "./image.ts";
import * as mask from "./mask.ts";
import { repeatFactors, repeatIndices } from "./repeat_factors.ts";
import { Rng } from "../tensor/rng.ts";
import {
  applyTransforms,
  IMAGENET_MEAN,
  IMAGENET_STD,
  normalizeImage,
  padTo,
  type Sample,
  type SampleMeta,
  type TransformOptions,
} from "./transforms.ts";

/** One image's annotations as the loader needs them. */
export interface SourceItem {
  /** COCO image id. */
  imageId: number;
  /** Image file path (file sources). */
  path?: string;
  /** Width stated by the annotation file. */
  width: number;
  /** Height stated by the annotation file. */
  height: number;
  /** `[n, 4]` xyxy boxes in original pixels. */
  boxes: Float32Array;
  /** `[n]` contiguous labels. */
  labels: Int32Array;
  /** Segmentations, parallel to `labels` (for masks). */
  segmentations?: (CocoSegmentation | undefined)[];
}

/** What a loader reads from: items plus, for in-memory sets, decoded images. */
export interface LoaderSource {
  /** One entry per image. */
  items: SourceItem[];
  /** Decoded images parallel to `items` (in-memory sources); absent for files. */
  images?: DecodedImage[];
  /** Category id of each contiguous label. */
  categoryIds: number[];
}

function itemsFromCoco(dataset: CocoDataset, dir?: string, skipCrowd = true): SourceItem[] {
  const index = new CocoIndex(dataset);
  return dataset.images.map((im) => {
    const anns = index.annotationsOf(im.id).filter((a) =>
      !(skipCrowd && a.iscrowd) && a.bbox[2] > 0 && a.bbox[3] > 0
    );
    const boxes = new Float32Array(anns.length * 4);
    anns.forEach((a, i) => {
      const [x, y, w, h] = a.bbox;
      boxes.set([x, y, x + w, y + h], i * 4);
    });
    return {
      imageId: im.id,
      path: dir === undefined ? undefined : `${dir.replace(/\/$/, "")}/${im.file_name}`,
      width: im.width,
      height: im.height,
      boxes,
      labels: Int32Array.from(anns, (a) => index.labelOf(a.category_id)),
      segmentations: anns.map((a) => a.segmentation),
    };
  });
}

/**
 * A source over image files on disk (decoded in workers).
 *
 * @param dataset Validated COCO dataset.
 * @param imageDir Folder the `file_name`s are relative to.
 * @param options `skipCrowd` (default true) drops crowd annotations.
 * @returns The source.
 */
export function cocoSource(
  dataset: CocoDataset,
  imageDir: string,
  options: { skipCrowd?: boolean } = {},
): LoaderSource {
  return {
    items: itemsFromCoco(dataset, imageDir, options.skipCrowd ?? true),
    categoryIds: new CocoIndex(dataset).categoryIds,
  };
}

/**
 * A source over decoded images in memory (e.g. the synthetic `shapes` split).
 *
 * @param split Dataset and images in `dataset.images` order.
 * @returns The source.
 */
export function memorySource(
  split: { dataset: CocoDataset; images: DecodedImage[] },
): LoaderSource {
  if (split.images.length !== split.dataset.images.length) {
    throw new TypeError(
      `Got ${split.images.length} images for ${split.dataset.images.length} dataset entries`,
    );
  }
  return {
    items: itemsFromCoco(split.dataset),
    images: split.images,
    categoryIds: new CocoIndex(split.dataset).categoryIds,
  };
}

/** Options of {@linkcode DetectionLoader}. */
export interface LoaderOptions {
  /** Images per batch. */
  batchSize: number;
  /** Seed of shuffling and augmentation. */
  seed: number;
  /** Shuffle each epoch (default true). */
  shuffle?: boolean;
  /** Drop the last incomplete batch (default false). */
  dropLast?: boolean;
  /** Resize / flip / jitter settings. */
  transform?: TransformOptions;
  /** Pad batch height and width to a multiple of this (default 32). */
  stride?: number;
  /** Normalisation mean (0..255 RGB). */
  mean?: readonly number[];
  /** Normalisation std (0..255 RGB). */
  std?: readonly number[];
  /** Also produce `[n, H, W]` masks. */
  withMasks?: boolean;
  /** A sample that fails to load: `"fail"` (default) rejects, `"skip"` warns and drops it. */
  onError?: "fail" | "skip";
  /** Workers for file sources (default 2; 0 decodes in process). Memory sources run in process. */
  workers?: number;
  /** Batches prepared ahead (default 2). */
  prefetch?: number;
  /** Receives skip warnings (default `console.warn`). */
  onWarning?: (message: string) => void;
  /**
   * Repeat-factor sampling with this threshold (LVIS: 1e-3, `LVIS_REPEAT_THRESHOLD`): each
   * epoch shows image `i` `ceil(r_i)` times, `r_i` from `repeatFactors` over the items' labels.
   * Off when absent.
   */
  repeatThreshold?: number;
}

/** One batch of plain typed arrays. */
export interface Batch {
  /** `[B, 3, height, width]` normalised CHW images, zero-padded bottom/right. */
  images: Float32Array;
  /** Number of images B. */
  batchSize: number;
  /** Padded height (multiple of the stride). */
  height: number;
  /** Padded width (multiple of the stride). */
  width: number;
  /** Per image `[n, 4]` xyxy boxes in the transformed image's pixels. */
  boxes: Float32Array[];
  /** Per image `[n]` contiguous labels. */
  labels: Int32Array[];
  /** Per image `[n, height, width]` masks (padded), when asked. */
  masks?: Uint8Array[];
  /** Per image provenance, plus the transformed (unpadded) size. */
  meta: (SampleMeta & { width: number; height: number })[];
}

/** What the preparation step hands back for one image. */
export interface PreparedSample {
  /** `[3, height, width]` normalised image (unpadded). */
  chw: Float32Array;
  /** Transformed width. */
  width: number;
  /** Transformed height. */
  height: number;
  /** Boxes. */
  boxes: Float32Array;
  /** Labels. */
  labels: Int32Array;
  /** Masks `[n, height, width]`. */
  masks?: Uint8Array;
  /** Provenance. */
  meta: SampleMeta;
}

/** Settings shared with workers (structured-clone safe). */
export interface PrepareSettings {
  /** Transform options. */
  transform: TransformOptions;
  /** Mean. */
  mean: number[];
  /** Std. */
  std: number[];
  /** Whether to build masks. */
  withMasks: boolean;
}

/**
 * Decode (when needed), transform and normalise one item. Used in process and
 * by `loader_worker.ts`.
 *
 * @param item Annotations.
 * @param image Decoded image, or undefined to read `item.path`.
 * @param settings Transform and normalisation settings.
 * @param seed Per-sample seed.
 * @returns The prepared sample.
 */
export async function prepareSample(
  item: SourceItem,
  image: DecodedImage | undefined,
  settings: PrepareSettings,
  seed: number,
): Promise<PreparedSample> {
  let img = image;
  if (!img) {
    if (!item.path) throw new TypeError(`Image ${item.imageId} has no path`);
    img = await decodeImage(await Deno.readFile(item.path), item.path);
  }
  img = toRgb(img);
  if (img.width !== item.width || img.height !== item.height) {
    throw new RangeError(
      `Image ${item.imageId} ("${
        item.path ?? "<memory>"
      }") is ${img.width}x${img.height}, the annotation file says ${item.width}x${item.height}`,
    );
  }
  let masks: Uint8Array | undefined;
  if (settings.withMasks) {
    const n = item.labels.length, plane = img.width * img.height;
    masks = new Uint8Array(n * plane);
    for (let i = 0; i < n; i++) {
      const seg = item.segmentations?.[i];
      if (seg) masks.set(mask.decode(mask.fromSegmentation(seg, img.height, img.width)), i * plane);
      else {
        // no segmentation: the box as a mask
        const [x1, y1, x2, y2] = item.boxes.subarray(i * 4, i * 4 + 4);
        for (let y = Math.floor(y1); y < Math.ceil(y2); y++) {
          masks.fill(
            1,
            i * plane + y * img.width + Math.floor(x1),
            i * plane + y * img.width + Math.ceil(x2),
          );
        }
      }
    }
  }
  const sample: Sample = {
    image: img,
    boxes: item.boxes.slice(),
    labels: item.labels.slice(),
    masks,
    meta: {
      imageId: item.imageId,
      originalWidth: img.width,
      originalHeight: img.height,
      scaleX: 1,
      scaleY: 1,
      flipped: false,
      fileName: item.path,
    },
  };
  const t = applyTransforms(sample, new Rng(seed), settings.transform);
  const { data: chw } = normalizeImage(t.image, 1, settings.mean, settings.std);
  return {
    chw,
    width: t.image.width,
    height: t.image.height,
    boxes: t.boxes,
    labels: t.labels,
    masks: t.masks,
    meta: t.meta,
  };
}

/** Per-sample seed from the loader seed, epoch and position in the item list. */
function sampleSeed(seed: number, epoch: number, index: number): number {
  let h = (seed ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 13), 0x27d4eb2f);
  return (h ^ (h >>> 16)) >>> 0;
}

interface Pending {
  resolve: (s: PreparedSample) => void;
  reject: (e: Error) => void;
}

/**
 * Seeded batches of normalised images, boxes, labels and (optionally) masks.
 * File sources are decoded and transformed in Deno Workers, prefetching
 * `prefetch` batches ahead. Dispose with `close()` (or `using`).
 */
export class DetectionLoader {
  /** The source. */
  readonly source: LoaderSource;
  /** Resolved options. */
  readonly options: Required<Omit<LoaderOptions, "onWarning" | "repeatThreshold">>;
  /**
   * The epoch's slots before shuffling: `slots[s]` is the item shown in slot `s` (each item
   * once, or `ceil(r)` times with repeat-factor sampling). A slot's position seeds its
   * augmentation, so repeated copies of an image are augmented differently.
   */
  readonly slots: readonly number[];
  #warn: (m: string) => void;
  #workers: Worker[] = [];
  #pending = new Map<number, Pending>();
  #nextId = 0;
  #rr = 0;
  #settings: PrepareSettings;

  /**
   * Create a loader; workers start on the first file batch.
   *
   * @param source Where the images come from.
   * @param options Batch size, seed and the rest.
   */
  constructor(source: LoaderSource, options: LoaderOptions) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new RangeError(`batchSize ${options.batchSize} must be a positive integer`);
    }
    this.source = source;
    this.options = {
      shuffle: true,
      dropLast: false,
      transform: {},
      stride: 32,
      mean: IMAGENET_MEAN,
      std: IMAGENET_STD,
      withMasks: false,
      onError: "fail",
      workers: 2,
      prefetch: 2,
      ...options,
    };
    this.#warn = options.onWarning ?? console.warn;
    const items = source.items;
    this.slots = options.repeatThreshold === undefined
      ? items.map((_, i) => i)
      : repeatIndices(repeatFactors(items.map((it) => it.labels), options.repeatThreshold));
    this.#settings = {
      transform: this.options.transform,
      mean: [...this.options.mean],
      std: [...this.options.std],
      withMasks: this.options.withMasks,
    };
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.slots.length, b = this.options.batchSize;
    return this.options.dropLast ? Math.floor(n / b) : Math.ceil(n / b);
  }

  /**
   * Item order of an epoch (a seeded permutation when shuffling; with repeat-factor sampling an
   * item appears as often as its slots).
   * @param epoch Epoch number.
   * @returns Item indices.
   */
  order(epoch: number): number[] {
    return this.#slotOrder(epoch).map((s) => this.slots[s]);
  }

  /** Slot order of an epoch. */
  #slotOrder(epoch: number): number[] {
    const idx = this.slots.map((_, s) => s);
    return this.options.shuffle
      ? new Rng(sampleSeed(this.options.seed, epoch, -1)).shuffle(idx)
      : idx;
  }

  #useWorkers(): boolean {
    return !this.source.images && this.options.workers > 0;
  }

  #startWorkers(): void {
    if (this.#workers.length) return;
    for (let i = 0; i < this.options.workers; i++) {
      const w = new Worker(new URL("./loader_worker.ts", import.meta.url).href, { type: "module" });
      w.onmessage = (e: MessageEvent) => {
        const { id, ok, result, error } = e.data;
        const p = this.#pending.get(id);
        if (!p) return;
        this.#pending.delete(id);
        if (ok) p.resolve(result);
        else {
          const Ctor = { SyntaxError, RangeError, TypeError }[error.name as string] ?? Error;
          p.reject(new Ctor(error.message));
        }
      };
      w.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        for (const p of this.#pending.values()) {
          p.reject(new Error(`Loader worker failed: ${e.message}`));
        }
        this.#pending.clear();
      };
      this.#workers.push(w);
    }
  }

  #prepare(index: number, seed: number): Promise<PreparedSample> {
    const item = this.source.items[index];
    if (!this.#useWorkers()) {
      return prepareSample(item, this.source.images?.[index], this.#settings, seed);
    }
    this.#startWorkers();
    const id = this.#nextId++;
    const w = this.#workers[this.#rr++ % this.#workers.length];
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      w.postMessage({ id, item, settings: this.#settings, seed });
    });
  }

  /**
   * The batches of one epoch, in order. The same seed and epoch give the same
   * batches, whatever the number of workers.
   *
   * @param epoch Epoch number (changes the order and the augmentation).
   * @param fromBatch First batch to produce (resuming mid-epoch); earlier ones are not prepared.
   * @returns Async iterator of batches.
   */
  async *epoch(epoch: number, fromBatch = 0): AsyncGenerator<Batch> {
    const order = this.#slotOrder(epoch);
    const b = this.options.batchSize;
    const nb = this.length;
    const launch = (k: number) =>
      order.slice(k * b, Math.min(order.length, (k + 1) * b)).map((s) => {
        const i = this.slots[s];
        const p = this.#prepare(i, sampleSeed(this.options.seed, epoch, s));
        p.catch(() => {}); // handled when awaited
        return { i, p };
      });
    const queue: { i: number; p: Promise<PreparedSample> }[][] = [];
    let next = Math.max(0, Math.min(fromBatch, nb));
    const ahead = this.#useWorkers() ? Math.max(1, this.options.prefetch) : 1;
    while (next < nb && queue.length < ahead) queue.push(launch(next++));
    while (queue.length) {
      const jobs = queue.shift()!;
      if (next < nb) queue.push(launch(next++));
      const samples: PreparedSample[] = [];
      for (const { i, p } of jobs) {
        try {
          samples.push(await p);
        } catch (e) {
          const item = this.source.items[i];
          const msg = `Cannot load image ${item.imageId}${item.path ? ` ("${item.path}")` : ""}: ${
            (e as Error).message
          }`;
          if (this.options.onError === "skip") this.#warn(`Skipping sample: ${msg}`);
          else {
            this.close();
            if (e instanceof Error) {
              e.message = msg;
              throw e;
            }
            throw new Error(msg);
          }
        }
      }
      if (samples.length) yield collate(samples, this.options.stride);
    }
  }

  /** Stop the workers. */
  close(): void {
    for (const w of this.#workers) w.terminate();
    this.#workers = [];
    for (const p of this.#pending.values()) p.reject(new Error("Loader closed"));
    this.#pending.clear();
  }

  /** Same as {@linkcode DetectionLoader.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Pad prepared samples to one size (a multiple of `stride`) and stack them.
 *
 * @param samples Prepared samples.
 * @param stride Pad multiple.
 * @returns The batch.
 */
export function collate(samples: PreparedSample[], stride = 32): Batch {
  let mh = 0, mw = 0;
  for (const s of samples) mh = Math.max(mh, s.height), mw = Math.max(mw, s.width);
  const H = padTo(mh, stride), W = padTo(mw, stride);
  const images = new Float32Array(samples.length * 3 * H * W);
  const hasMasks = samples.some((s) => s.masks);
  const masks: Uint8Array[] = [];
  samples.forEach((s, k) => {
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < s.height; y++) {
        const src = c * s.width * s.height + y * s.width;
        images.set(s.chw.subarray(src, src + s.width), ((k * 3 + c) * H + y) * W);
      }
    }
    if (hasMasks) {
      const n = s.labels.length;
      const m = new Uint8Array(n * H * W);
      if (s.masks) {
        for (let i = 0; i < n; i++) {
          for (let y = 0; y < s.height; y++) {
            const src = (i * s.height + y) * s.width;
            m.set(s.masks.subarray(src, src + s.width), (i * H + y) * W);
          }
        }
      }
      masks.push(m);
    }
  });
  return {
    images,
    batchSize: samples.length,
    height: H,
    width: W,
    boxes: samples.map((s) => s.boxes),
    labels: samples.map((s) => s.labels),
    masks: hasMasks ? masks : undefined,
    meta: samples.map((s) => ({ ...s.meta, width: s.width, height: s.height })),
  };
}
