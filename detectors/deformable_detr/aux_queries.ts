/**
 * Co-DETR's customised positive queries: the positives an auxiliary head
 * assigned (here the ATSS head's anchors) become extra decoder queries whose
 * reference boxes are those anchors and whose targets are the GT boxes and
 * classes the head assigned them, with no Hungarian matching (spec §10.7).
 * Built on the host from the head's assignment.
 *
 * @module
 */

import { inverseSigmoidHost } from "./transformer.ts";
import type { DetrSetTargets } from "./detr_losses.ts";
import type { AtssTargets } from "../atss_targets.ts";

/** The auxiliary queries of a batch, `M` per image (padded). */
export interface AuxQueries {
  /** `[N]` positive queries of each image (at most the cap). */
  perImage: Int32Array;
  /** Queries per image `M`: the largest count (padding queries are negatives). */
  numQueries: number;
  /** `[N * M * 4]` reference boxes before the sigmoid (padding: 0). */
  unact: Float32Array;
  /** The positives' targets, query index `image * M + j`. */
  targets: DetrSetTargets;
}

/**
 * The auxiliary queries of an assignment: for each image, its first
 * `maxPerImage` positives in anchor order, each anchor normalised by the
 * input size to `cxcywh` and passed through the inverse sigmoid (clamped, as
 * Co-DETR does), each target box normalised to `cxcywh`.
 *
 * @example Two images, the second with no positive
 * ```ts
 * import { auxiliaryQueries } from "./aux_queries.ts";
 * const positives = {
 *   index: Int32Array.of(3, 5), label: Int32Array.of(1, 2), numAnchors: 10,
 *   gtBox: Float32Array.of(0, 0, 32, 32, 32, 32, 64, 64),
 *   anchor: Float32Array.of(0, 0, 32, 32, 16, 16, 48, 48),
 * };
 * const q = auxiliaryQueries(positives, 2, 64, 64, 300);
 * console.log(Array.from(q.perImage), q.numQueries, Array.from(q.targets.index)); // [2, 0] 2 [0, 1]
 * console.log(Array.from(q.targets.box.slice(0, 4))); // [0.25, 0.25, 0.5, 0.5]
 * ```
 *
 * @param positives The head's positives over the batch (`index = image * A + anchor`, ascending).
 * @param batchSize Images `N`.
 * @param width Input width (pixels).
 * @param height Input height (pixels).
 * @param maxPerImage The cap per image (300 in the seeds).
 */
export function auxiliaryQueries(
  positives: AtssTargets,
  batchSize: number,
  width: number,
  height: number,
  maxPerImage: number,
): AuxQueries {
  const perImage = new Int32Array(batchSize);
  const kept: number[] = [];
  positives.index.forEach((flat, p) => {
    const image = Math.floor(flat / positives.numAnchors);
    if (image >= batchSize) {
      throw new RangeError(
        `auxiliaryQueries: positive ${p} is in image ${image} of a batch of ${batchSize}`,
      );
    }
    if (perImage[image] < maxPerImage) {
      perImage[image]++;
      kept.push(p);
    }
  });
  const m = perImage.reduce((a, b) => Math.max(a, b), 0);
  const unact = new Float32Array(batchSize * m * 4);
  const index = new Int32Array(kept.length), label = new Int32Array(kept.length);
  const box = new Float32Array(kept.length * 4);
  const slot = new Int32Array(batchSize);
  const cxcywh = (b: ArrayLike<number>, at: number, out: Float32Array | number[]) => {
    out[0] = (b[at] + b[at + 2]) / 2 / width;
    out[1] = (b[at + 1] + b[at + 3]) / 2 / height;
    out[2] = (b[at + 2] - b[at]) / width;
    out[3] = (b[at + 3] - b[at + 1]) / height;
    return out;
  };
  const tmp = [0, 0, 0, 0];
  kept.forEach((p, k) => {
    const image = Math.floor(positives.index[p] / positives.numAnchors);
    const q = image * m + slot[image]++;
    index[k] = q;
    label[k] = positives.label[p];
    cxcywh(positives.anchor, 4 * p, tmp).forEach((
      v,
      c,
    ) => (unact[4 * q + c] = inverseSigmoidHost(v)));
    box.set(cxcywh(positives.gtBox, 4 * p, tmp), 4 * k);
  });
  return { perImage, numQueries: m, unact, targets: { index, label, box } };
}
