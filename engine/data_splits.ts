/**
 * The data of a run: the built-in synthetic split generated in memory, a
 * COCO-format folder, or the COCO or LVIS files a config names.
 *
 * @module
 */

import { join } from "node:path";
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

/**
 * The validation split of `config`'s data, or of the COCO-format folder
 * `dataDir` (`annotations/instances_val.json` and `val/` images). Training
 * annotations are not read, so they need not exist.
 */
export async function loadValSplit(config: DetectorConfig, dataDir?: string): Promise<ValSplit> {
  const coco = dataDir
    ? { json: join(dataDir, "annotations", "instances_val.json"), images: join(dataDir, "val") }
    : config.data.kind === "coco" || config.data.kind === "lvis"
    ? { json: config.data.valJson, images: config.data.valImages }
    : undefined;
  if (!coco) {
    const { val, valDataset } = await loadSplits(config);
    return { val, valDataset };
  }
  const load = !dataDir && config.data.kind === "lvis" ? loadLvis : loadCoco;
  const valDataset = await load(coco.json);
  return { val: cocoSource(valDataset, coco.images, { skipCrowd: false }), valDataset };
}

/**
 * The splits of `config`'s data, or of the COCO-format folder `dataDir`
 * (`annotations/instances_{train,val}.json` and `{train,val}/` images).
 */
export async function loadSplits(config: DetectorConfig, dataDir?: string): Promise<Splits> {
  if (dataDir) {
    const valDataset = await loadCoco(join(dataDir, "annotations", "instances_val.json"));
    const trainDataset = await loadCoco(join(dataDir, "annotations", "instances_train.json"));
    return {
      train: cocoSource(trainDataset, join(dataDir, "train")),
      val: cocoSource(valDataset, join(dataDir, "val"), { skipCrowd: false }),
      valDataset,
    };
  }
  const data = config.data;
  if (data.kind === "coco" || data.kind === "lvis") {
    const load = data.kind === "lvis" ? loadLvis : loadCoco;
    const valDataset = await load(data.valJson);
    return {
      train: cocoSource(await load(data.trainJson), data.trainImages),
      val: cocoSource(valDataset, data.valImages, { skipCrowd: false }),
      valDataset,
    };
  }
  const { train, val } = generateShapesSplits({
    seed: data.seed,
    train: data.train,
    val: data.val,
    size: data.size,
  });
  return { train: memorySource(train), val: memorySource(val), valDataset: val.dataset };
}
