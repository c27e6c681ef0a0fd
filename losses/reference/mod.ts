/**
 * Reference ranking-based losses on plain arrays, in float64, written from the formulas of
 * `ranking-losses.md`: AP, aLRP, Rank & Sort and their bucketed forms.
 *
 * @module
 */

export { apLoss } from "./ap_loss.ts";
export { alrpLoss, type AlrpLossResult } from "./alrp_loss.ts";
export { rankSortLoss } from "./rank_sort_loss.ts";
export { bucketedApLoss } from "./bucketed_ap_loss.ts";
export { bucketedRankSortLoss } from "./bucketed_rank_sort_loss.ts";
export {
  type BucketedRanking,
  type NegativeBucket,
  type RankingLossOptions,
  type RankingLossResult,
  smoothStep,
  sortAndBucket,
  validateRankingInputs,
} from "./common.ts";
