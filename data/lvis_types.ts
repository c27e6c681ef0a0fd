/**
 * Wire types of LVIS v1 annotation files: COCO's layout with federated
 * labels per image and a frequency group per category. Keys keep the file's
 * spelling, as in `coco_types.ts`.
 *
 * LVIS v1 files name each image by `coco_url` and give annotations no
 * `iscrowd`; `parseLvis` (in `lvis.ts`) fills `file_name` from the URL and
 * `iscrowd` with 0, so that a parsed LVIS dataset is also a COCO dataset for
 * the loader. LVIS evaluation reads neither.
 *
 * @module
 */

import type { CocoAnnotation, CocoCategory, CocoDataset, CocoImage } from "./coco_types.ts";

/** Frequency group of a category: rare (1-10 training images), common (11-100), frequent. */
export type LvisFrequency = "r" | "c" | "f";

/** One entry of `images`. */
export interface LvisImage extends CocoImage {
  /** Categories verified absent from the image: detections on them are false positives. */
  neg_category_ids: number[];
  /** Categories present but not exhaustively annotated: their unmatched detections are ignored. */
  not_exhaustive_category_ids: number[];
}

/** One entry of `categories`. */
export interface LvisCategory extends CocoCategory {
  /** Frequency group (from the number of training images holding the category). */
  frequency: LvisFrequency;
  /** Training images holding the category. */
  image_count: number;
  /** Training instances of the category. */
  instance_count: number;
  /** WordNet synset, e.g. `"person.n.01"`. */
  synset?: string;
  /** Other names. */
  synonyms?: string[];
  /** Definition. */
  def?: string;
}

/** One entry of `annotations` (polygons in LVIS v1; `iscrowd` is 0 after `parseLvis`). */
export interface LvisAnnotation extends CocoAnnotation {
  /** Ground truth to ignore in evaluation (honoured by lvis-api; absent in LVIS v1 files). */
  ignore?: 0 | 1;
}

/** A whole LVIS annotation file. */
export interface LvisDataset extends CocoDataset {
  /** Images with their federated category lists. */
  images: LvisImage[];
  /** Categories with their frequency group. */
  categories: LvisCategory[];
  /** Annotations. */
  annotations: LvisAnnotation[];
}
