/**
 * Ranking-based losses as autograd ops on tensors (WebGPU or CPU backend), with no readback:
 * Rank & Sort, bucketed Rank & Sort, AP and bucketed AP.
 *
 * @module
 */

export {
  alrp,
  type AlrpOutputs,
  apLoss,
  type ApOutputs,
  bucketedAp,
  bucketedRankSort,
  rankSort,
  type RankSortOutputs,
} from "./ranking_ops.ts";
export { type RankingForward, rankingForward, type RankingOpOptions } from "./core.ts";
export { MAX_POSITIVES } from "./ranking/pipeline.ts";
