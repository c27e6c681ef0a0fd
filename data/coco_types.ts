/**
 * Wire types of COCO (and LVIS) annotation and results files. Keys keep the
 * file's spelling (`image_id`, `iscrowd`); domain types elsewhere are camelCase.
 *
 * @module
 */

/** A box `[x, y, width, height]` in pixels, as stored in COCO files. */
export type CocoBbox = [number, number, number, number];

/**
 * Compressed run-length encoding: `size` is `[height, width]`, `counts` is
 * COCO's LEB128-like string of column-major run lengths starting with zeros.
 */
export interface CocoRle {
  /** `[height, width]` of the mask. */
  size: [number, number];
  /** Compressed run lengths. */
  counts: string;
}

/**
 * Uncompressed run-length encoding (used for crowd regions): column-major run
 * lengths, the first one a run of zeros.
 */
export interface CocoUncompressedRle {
  /** `[height, width]` of the mask. */
  size: [number, number];
  /** Run lengths, alternating zeros and ones, starting with zeros. */
  counts: number[];
}

/** A polygon `[x1, y1, x2, y2, ...]` in pixels. */
export type CocoPolygon = number[];

/** Segmentation of an annotation: polygon parts, or an RLE (compressed or not). */
export type CocoSegmentation = CocoPolygon[] | CocoRle | CocoUncompressedRle;

/** One entry of `images`. LVIS adds the two category-id lists. */
export interface CocoImage {
  /** Image id, unique in the file. */
  id: number;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** File name relative to the image folder. */
  file_name: string;
  /** License id. */
  license?: number;
  /** Original URL. */
  coco_url?: string;
  /** Flickr URL. */
  flickr_url?: string;
  /** Capture date. */
  date_captured?: string;
  /** LVIS: categories that may be present but not exhaustively annotated. */
  not_exhaustive_category_ids?: number[];
  /** LVIS: categories verified absent from the image. */
  neg_category_ids?: number[];
  /** Any other key is kept as it is. */
  [key: string]: unknown;
}

/** One entry of `categories`. */
export interface CocoCategory {
  /** Category id (often non-contiguous, e.g. 1..90 in COCO). */
  id: number;
  /** Display name. */
  name: string;
  /** Parent name. */
  supercategory?: string;
  /** Any other key (LVIS `frequency`, `synset`, ...) is kept as it is. */
  [key: string]: unknown;
}

/** One entry of `annotations`. */
export interface CocoAnnotation {
  /** Annotation id, unique in the file. */
  id: number;
  /** Id of the image it belongs to. */
  image_id: number;
  /** Id of its category. */
  category_id: number;
  /** `[x, y, w, h]` box. */
  bbox: CocoBbox;
  /** Area in pixels (mask area for COCO; used for the small/medium/large ranges). */
  area: number;
  /** 1 for a crowd region (ignored in evaluation), else 0. */
  iscrowd: 0 | 1;
  /** Optional mask. */
  segmentation?: CocoSegmentation;
  /** Any other key is kept as it is. */
  [key: string]: unknown;
}

/** Free-form `info` block. */
export interface CocoInfo {
  /** Any key. */
  [key: string]: unknown;
}

/** One entry of `licenses`. */
export interface CocoLicense {
  /** License id. */
  id: number;
  /** Name. */
  name?: string;
  /** URL. */
  url?: string;
  /** Any other key. */
  [key: string]: unknown;
}

/** A whole COCO annotation file. */
export interface CocoDataset {
  /** Optional info block. */
  info?: CocoInfo;
  /** Optional licenses. */
  licenses?: CocoLicense[];
  /** Images. */
  images: CocoImage[];
  /** Categories. */
  categories: CocoCategory[];
  /** Annotations. */
  annotations: CocoAnnotation[];
}

/**
 * One detection of a COCO results file (a JSON array of these), as read by
 * pycocotools' `loadRes`: `bbox` and/or `segmentation` (compressed RLE).
 */
export interface CocoDetection {
  /** Image id. */
  image_id: number;
  /** Category id (the file's id, not a contiguous label). */
  category_id: number;
  /** `[x, y, w, h]` box. */
  bbox?: CocoBbox;
  /** Compressed RLE mask. */
  segmentation?: CocoRle;
  /** Confidence. */
  score: number;
}
