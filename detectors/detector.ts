/**
 * The one interface every detector kind offers, so that the training loop,
 * evaluation, the command lines and the benches work for any of them without
 * knowing which: a loss for a batch, detections for images, and the
 * parameters and state of an `nn.Module`. {@linkcode buildDetector} makes one
 * from a config.
 *
 * @module
 */

import type { Batch } from "../data/loader.ts";
import type { Backend } from "../tensor/backend.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import type { StateHolder } from "../tensor/safetensors.ts";
import type { Detections } from "./postprocess.ts";

/** The loss of one batch: the total to minimise and its parts (for logging). */
export interface DetectorLosses {
  /** Sum of the parts, a scalar tensor. */
  total: Tensor;
  /** Named scalar parts (for ATSS `rank`, `sort`, `box`, `cls`, `centerness`). */
  parts: Record<string, Tensor>;
  /** Positive samples (anchors, proposals) in the batch. */
  numPositives: number;
}

/**
 * A detector of any kind, as {@linkcode buildDetector} returns it.
 *
 * @example Train one step and predict, whatever the kind
 * ```ts ignore
 * const model = buildDetector(config.model, { seed: 0 });
 * backward((await model.loss(batch)).total);
 * const detections = await model.eval().predict(model.images(batch), scales);
 * ```
 */
export interface Detector extends StateHolder {
  /** Its model config: `kind` names the detector. */
  readonly config: { readonly kind: string; readonly numClasses: number };
  /** The backend the weights live on. */
  readonly backend: Backend;
  /** Whether it is in training mode. */
  readonly training: boolean;
  /** Uploads a loader batch's images `[N, 3, H, W]`. */
  images(batch: Batch): Tensor;
  /**
   * The training loss of a batch, as device scalars. A one-stage detector
   * reads nothing back; a two-stage one reads its proposals back once, so the
   * loss is asynchronous for every kind (run it in `tidyAsync`).
   */
  loss(batch: Batch): Promise<DetectorLosses>;
  /**
   * Detections for `images` `[N, 3, H, W]`, in the coordinates of each original
   * image: `scales[i]` is `[scaleX, scaleY]` (resized / original), `sizes[i]`
   * the original `[height, width]` (used by detectors that paste masks).
   */
  predict(
    images: Tensor,
    scales: readonly [number, number][],
    sizes?: readonly [number, number][],
  ): Promise<Detections[]>;
  /** Whether training batches must carry GT masks (`withMasks` in the loader); default false. */
  readonly usesMasks?: boolean;
  /** Parameters and their dotted names, in registration order. */
  namedParameters(): [string, Tensor][];
  /** Switches to training mode (or evaluation mode with `false`). */
  train(mode?: boolean): this;
  /** Switches to evaluation mode. */
  eval(): this;
}

/**
 * A loader batch's images `[N, 3, H, W]` as a tensor on `backend` (what
 * every detector's {@linkcode Detector.images} does).
 *
 * @example
 * ```ts ignore
 * const images = batchImages(batch, backend); // [batch.batchSize, 3, batch.height, batch.width]
 * ```
 */
export function batchImages(batch: Batch, backend: Backend): Tensor {
  return tensor(batch.images, [batch.batchSize, 3, batch.height, batch.width], { backend });
}
