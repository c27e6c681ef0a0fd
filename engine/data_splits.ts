/**
 * The data of a run: the built-in synthetic split generated in memory, a
 * COCO-format folder, the COCO or LVIS files a config names, or a Cityscapes
 * folder.
 *
 * @module
 */

import { joinPath } from "../data/path.ts";
import { cityscapesImageDir, loadCityscapes } from "../data/cityscapes.ts";
import { loadCoco } from "../data/coco.ts";
import { loadLvis } from "../data/lvis.ts";
import type { CocoDataset } from "../data/coco_types.ts";
import { cocoSource, type LoaderSource, memorySource } from "../data/loader.ts";
import { generateShapesSplits } from "../data/shapes.ts";
import type { DetectorConfig } from "../configs/types.ts";

/** The training and validation data of a run. */
export interface Splits {
  /** Training images. */
  train: LoaderSource;
  /** Validation images. */
  val: LoaderSource;
  /** Validation annotations (the ground truth of evaluation). */
  valDataset: CocoDataset;
}

/** The validation data of a run: what evaluation reads. */
export type ValSplit = Pick<Splits, "val" | "valDataset">;

/** One split's annotations and the folder its `file_name`s are relative to. */
interface FileSplit {
  dataset: CocoDataset;
  images: string;
}

/**
 * One split read from files: a Cityscapes folder when the config's data is
 * Cityscapes (`dataDir`, else `data.root`); otherwise the COCO-format folder
 * `dataDir` (`annotations/instances_{split}.json`, `{split}/`) or the config's
 * COCO files. The synthetic data without `dataDir` has none.
 */
async function readSplit(
  config: DetectorConfig,
  split: "train" | "val",
  dataDir?: string,
): Promise<FileSplit> {
  const data = config.data;
  if (data.kind === "cityscapes") {
    const root = dataDir ?? data.root;
    return { dataset: await loadCityscapes(root, split), images: cityscapesImageDir(root, split) };
  }
  // An LVIS config reads LVIS files (from its own paths or the folder's), any other COCO files.
  const load = data.kind === "lvis" ? loadLvis : loadCoco;
  if (dataDir) {
    return {
      dataset: await load(joinPath(dataDir, "annotations", `instances_${split}.json`)),
      images: joinPath(dataDir, split),
    };
  }
  if (data.kind === "coco" || data.kind === "lvis") {
    return split === "train"
      ? { dataset: await load(data.trainJson), images: data.trainImages }
      : { dataset: await load(data.valJson), images: data.valImages };
  }
  throw new TypeError(`Config data of kind "${data.kind}" has no files to read`);
}

/** The validation source of a file split: crowd regions kept (evaluation ignores them). */
function valOf(split: FileSplit): ValSplit {
  return {
    val: cocoSource(split.dataset, split.images, { skipCrowd: false }),
    valDataset: split.dataset,
  };
}

/**
 * The validation split of `config`'s data, or of the folder `dataDir`: a
 * COCO-format folder (`annotations/instances_val.json` and `val/` images), or a
 * Cityscapes folder when the config's data is Cityscapes. Training
 * annotations are not read, so they need not exist.
 */
export async function loadValSplit(config: DetectorConfig, dataDir?: string): Promise<ValSplit> {
  if (config.data.kind !== "shapes" || dataDir) {
    return valOf(await readSplit(config, "val", dataDir));
  }
  const { val, valDataset } = await loadSplits(config);
  return { val, valDataset };
}

/**
 * The splits of `config`'s data, or of the folder `dataDir`: a COCO-format
 * folder (`annotations/instances_{train,val}.json` and `{train,val}/` images),
 * or a Cityscapes folder when the config's data is Cityscapes.
 */
export async function loadSplits(config: DetectorConfig, dataDir?: string): Promise<Splits> {
  const data = config.data;
  if (data.kind !== "shapes" || dataDir) {
    const val = valOf(await readSplit(config, "val", dataDir));
    const train = await readSplit(config, "train", dataDir);
    return { ...val, train: cocoSource(train.dataset, train.images) };
  }
  const { train, val } = generateShapesSplits({
    seed: data.seed,
    train: data.train,
    val: data.val,
    size: data.size,
  });
  return { train: memorySource(train), val: memorySource(val), valDataset: val.dataset };
}
