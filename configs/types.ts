/**
 * The shape of a training configuration: the model, the data and the schedule.
 *
 * @module
 */

import type { DetectorModelConfig } from "../detectors/build.ts";

/** How a run trains: optimiser, schedule, batch and image size. */
export interface TrainSettings {
  /** Images per batch. */
  batchSize: number;
  /** Optimiser steps. */
  iters: number;
  /** Optimiser: SGD with momentum (default) or AdamW (the DETR detectors). */
  optimizer?: "sgd" | "adamw";
  /** Base learning rate. */
  lr: number;
  /** SGD momentum (AdamW ignores it). */
  momentum: number;
  /**
   * Learning-rate factors of named parameters: a parameter whose dotted name contains `match`
   * trains at `factor` times the rate (the first match wins; Deformable-DETR: backbone and
   * sampling offsets at 0.1).
   */
  lrFactors?: readonly { match: string; factor: number }[];
  /** Weight decay. */
  weightDecay: number;
  /** Linear warm-up steps (0: none) and the starting factor. */
  warmup: { iters: number; factor: number };
  /** Steps at which the learning rate is multiplied by `gamma`. */
  milestones: readonly number[];
  /** Learning-rate factor at each milestone. */
  gamma: number;
  /** Clip gradients to this global norm (none when absent). */
  maxGradNorm?: number;
  /** Short side of the resized images. */
  shortSide: number;
  /** Long-side limit of the resized images. */
  maxSize: number;
  /** Probability of a horizontal flip. */
  flipProb: number;
  /** Checkpoint every this many steps. */
  checkpointEvery: number;
  /** Read back and log the losses every this many steps. */
  logEvery: number;
}

/** How training images are drawn, whatever the data. */
export interface SamplingSettings {
  /**
   * Repeat-factor sampling with this threshold in (0, 1] (LVIS trains with 1e-3): images
   * holding categories rarer than it are repeated in each epoch (`data/repeat_factors.ts`).
   * Off when absent.
   */
  repeatThreshold?: number;
}

/** Annotation files and image folders of a training and a validation split. */
export interface FileSplits {
  /** Training annotation file. */
  trainJson: string;
  /** Folder the training `file_name`s are relative to. */
  trainImages: string;
  /** Validation annotation file. */
  valJson: string;
  /** Folder the validation `file_name`s are relative to. */
  valImages: string;
}

/**
 * Where the data comes from: the built-in synthetic set, COCO files, LVIS v1 files (images
 * named by `coco_url` resolve under the image folders as `train2017/...`, `val2017/...`), or a
 * Cityscapes folder (`root/leftImg8bit/` and `root/gtFine/`, read by `loadCityscapes`;
 * `--data DIR` replaces `root`).
 */
export type DataSettings =
  & (
    | { kind: "shapes"; train: number; val: number; size: number; seed: number }
    | ({ kind: "coco" } & FileSplits)
    | ({ kind: "lvis" } & FileSplits)
    | { kind: "cityscapes"; root: string }
  )
  & SamplingSettings;

/** A complete configuration, as `configs/*.ts` export it. */
export interface DetectorConfig<M extends DetectorModelConfig = DetectorModelConfig> {
  /** Name (recorded in checkpoints; a checkpoint only loads into its own config). */
  name: string;
  /** The model, tagged by detector kind (`model.kind`). */
  model: M;
  /** Training. */
  train: TrainSettings;
  /** Data. */
  data: DataSettings;
}
