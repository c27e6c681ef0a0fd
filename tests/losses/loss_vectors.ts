/**
 * Loading and comparing the official reference vectors of the ranking losses
 * (`tests/fixtures/losses/`, copied from `shared/vectors/`).
 *
 * @module
 */

import assert from "node:assert/strict";
import type { RankingLossResult } from "../../losses/reference/common.ts";

/** Outputs of one official run (float64). */
export interface VectorOutputs {
  ranking_loss?: number;
  sorting_loss?: number;
  loss?: number;
  grad?: number[];
  grad_sum?: number;
  grad_l1?: number;
  grad_sum_pos?: number;
  grad_min?: number;
  grad_max?: number;
  grad_idx?: number[];
  grad_at_idx?: number[];
  error?: string;
}

/** One case of `ranking_losses.json`. */
export interface VectorCase {
  name: string;
  loss: "RankSort" | "BucketedRankSort" | "APLoss" | "BucketedAPLoss";
  delta: number;
  group: string;
  pair: string;
  kind: "hand" | "random";
  tie_pos_neg: boolean;
  logits: number[];
  targets: number[];
  outputs: VectorOutputs;
}

/** One case of `alrp_loss.json`. */
export interface AlrpCase {
  name: string;
  delta: number;
  logits: number[];
  targets: number[];
  regression_losses: number[];
  outputs: { loss: number; rank: number[]; grad: number[] };
}

async function readJson<T>(file: string): Promise<T> {
  const url = new URL(`../fixtures/losses/${file}`, import.meta.url);
  return JSON.parse(await Deno.readTextFile(url)) as T;
}

/** All cases of `ranking_losses.json`. */
export async function loadRankingVectors(): Promise<VectorCase[]> {
  return (await readJson<{ cases: VectorCase[] }>("ranking_losses.json")).cases;
}

/** All cases of `alrp_loss.json`. */
export async function loadAlrpVectors(): Promise<AlrpCase[]> {
  return (await readJson<{ cases: AlrpCase[] }>("alrp_loss.json")).cases;
}

/** Relative tolerance 1e-9, absolute 1e-12 near 0. */
export function assertNear(
  actual: number,
  expected: number,
  what: string,
  rel = 1e-9,
  abs = 1e-12,
): void {
  const tol = Math.max(abs, rel * Math.abs(expected));
  assert.ok(
    Math.abs(actual - expected) <= tol,
    `${what}: got ${actual}, expected ${expected} (diff ${actual - expected}, tol ${tol})`,
  );
}

/** Compares a result with the official outputs (losses and full or sampled gradient). */
export function assertMatchesVector(r: RankingLossResult, c: VectorCase, label = c.name): void {
  const o = c.outputs;
  if (o.loss !== undefined) assertNear(r.loss, o.loss, `${label} loss`);
  if (o.ranking_loss !== undefined) assertNear(r.rankingLoss, o.ranking_loss, `${label} L_rank`);
  if (o.sorting_loss !== undefined) assertNear(r.sortingLoss, o.sorting_loss, `${label} L_sort`);
  assert.equal(r.grad.length, c.logits.length, `${label} grad length`);
  if (o.grad !== undefined) {
    for (let i = 0; i < o.grad.length; i++) assertNear(r.grad[i], o.grad[i], `${label} grad[${i}]`);
    return;
  }
  let sum = 0;
  let l1 = 0;
  let sumPos = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < r.grad.length; i++) {
    const g = r.grad[i];
    sum += g;
    l1 += Math.abs(g);
    if (c.targets[i] > 0 && (c.loss !== "APLoss" || c.targets[i] === 1)) sumPos += g;
    min = Math.min(min, g);
    max = Math.max(max, g);
  }
  assertNear(sum, o.grad_sum!, `${label} grad_sum`, 1e-9, 1e-12);
  assertNear(l1, o.grad_l1!, `${label} grad_l1`);
  assertNear(sumPos, o.grad_sum_pos!, `${label} grad_sum_pos`);
  assertNear(min, o.grad_min!, `${label} grad_min`);
  assertNear(max, o.grad_max!, `${label} grad_max`);
  const idx = o.grad_idx!;
  for (let k = 0; k < idx.length; k++) {
    assertNear(r.grad[idx[k]], o.grad_at_idx![k], `${label} grad[${idx[k]}]`);
  }
}
