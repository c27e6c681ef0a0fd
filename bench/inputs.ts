/**
 * Seeded inputs the benchmarks share: a uniform generator and detector-like ranking-loss
 * inputs (the distribution of the shared official-code vectors); timing helpers, including
 * the loss of a dense head alone on fixed outputs.
 *
 * @module
 */

import type { AtssHeadOutput } from "../detectors/heads/atss_head.ts";
import { backward, detach } from "../tensor/autograd.ts";
import { type Tensor, tidy } from "../tensor/tensor.ts";

/**
 * mulberry32: a seeded uniform generator on `[0, 1)`.
 *
 * @example
 * ```ts
 * import { uniform } from "./inputs.ts";
 * import assert from "node:assert/strict";
 *
 * const a = uniform(7), b = uniform(7);
 * assert.equal(a(), b());
 * ```
 */
export function uniform(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `n` detector-like entries: negatives a 70/30 mix of N(-2.5, 1) and N(0.3, 1), `p` positives
 * at distinct random places with logits N(1, 1) and IoU targets U(0.05, 1), or 1 with `binary`
 * (the AP family counts only targets equal to 1).
 *
 * @example
 * ```ts
 * import { detectorLikeInputs } from "./inputs.ts";
 * import assert from "node:assert/strict";
 *
 * const { targets } = detectorLikeInputs(1000, 10, { binary: true });
 * assert.equal(targets.filter((y) => y === 1).length, 10);
 * ```
 *
 * @param n Number of entries.
 * @param p Number of positives, `<= n`.
 * @param options `binary` targets; generator `seed` (default 1).
 * @returns Logits and targets, `[n]` each.
 */
export function detectorLikeInputs(
  n: number,
  p: number,
  options: { binary?: boolean; seed?: number } = {},
): { logits: Float32Array; targets: Float32Array } {
  const rand = uniform(options.seed ?? 1);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const logits = new Float32Array(n);
  const targets = new Float32Array(n);
  for (let i = 0; i < n; i++) logits[i] = rand() < 0.7 ? -2.5 + normal() : 0.3 + normal();
  for (let placed = 0; placed < Math.min(p, n);) {
    const i = Math.floor(rand() * n);
    if (targets[i] !== 0) continue;
    targets[i] = options.binary ? 1 : 0.05 + 0.95 * rand();
    logits[i] = 1 + normal();
    placed++;
  }
  return { logits, targets };
}

/**
 * Mean milliseconds of `once` over `reps` runs after one warm-up run, the
 * backend synced before and after (so queued device work is counted).
 */
export async function meanMs(
  once: () => void,
  backend: { sync(): Promise<void> },
  reps = 5,
): Promise<number> {
  once();
  await backend.sync();
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) once();
  await backend.sync();
  return (performance.now() - t0) / reps;
}

/** Wall times in ms of `reps` calls of a host function after one warm-up call, ascending. */
export function sortedMs(reps: number, fn: () => void): number[] {
  fn();
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b);
}

/** Median wall time in ms of `reps` calls of a host function after one warm-up call. */
export function medianMs(reps: number, fn: () => void): number {
  return sortedMs(reps, fn)[Math.floor(reps / 2)];
}

/** `out` detached into leaves that require gradients: fixed inputs for timing a head loss. */
export function fixedHeadOutputs(out: AtssHeadOutput): AtssHeadOutput {
  const leaf = (t: Tensor) => {
    const d = detach(t);
    d.requiresGrad = true;
    return d;
  };
  return {
    cls: leaf(out.cls),
    reg: leaf(out.reg),
    centerness: out.centerness ? leaf(out.centerness) : undefined,
  };
}

/**
 * Mean milliseconds ({@linkcode meanMs}) of forward + backward of `loss` on
 * the fixed head outputs `fixed`, whose gradients are dropped after each run.
 */
export async function headLossMs(
  fixed: AtssHeadOutput,
  loss: () => Tensor,
  backend: { sync(): Promise<void> },
): Promise<number> {
  const once = () =>
    tidy(() => {
      backward(loss());
      for (const t of [fixed.cls, fixed.reg, fixed.centerness]) {
        t?.grad?.dispose();
        if (t) t.grad = null;
      }
    });
  return await meanMs(once, backend);
}
