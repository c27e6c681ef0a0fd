/**
 * Fast CPU bucketed ranking losses (BRS, BAP) at `O(M log P + P log P)`, and their building
 * blocks (bucketing by search or by sort, prefix-sum and Fenwick pairwise sums).
 *
 * @module
 */

export {
  fastBucketedApLoss,
  fastBucketedApLossInto,
  type FastBucketedOptions,
  fastBucketedRankSortLoss,
  fastBucketedRankSortLossInto,
  type FastLossValues,
} from "./bucketed_losses.ts";
export {
  bucketBySearch,
  bucketBySort,
  BucketGrid,
  bucketPrototypes,
  type NegativeBuckets,
  positivesAtOrAbove,
  type SortedPositives,
  sortPositives,
  type SortPositivesOptions,
} from "./bucketing.ts";
export {
  directPairwise,
  type PairwiseSums,
  positiveWindows,
  prefixPairwise,
  type SortingErrors,
} from "./pairwise.ts";
export { CompensatedPrefixSum, FenwickTree } from "./prefix_sums.ts";
export { argsortDescending } from "./radix_sort.ts";
