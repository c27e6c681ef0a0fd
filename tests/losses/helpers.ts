/**
 * Shared pieces of the ranking-loss tests.
 *
 * @module
 */

import type { RankingLossOptions, RankingLossResult } from "../../losses/reference/mod.ts";

/** The signature every reference and fast ranking loss shares. */
export type LossFn = (
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  options?: RankingLossOptions,
) => RankingLossResult;
