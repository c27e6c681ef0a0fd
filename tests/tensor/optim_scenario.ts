/**
 * One optimizer scenario, shared by the arena tests and the script that wrote their reference
 * (`tests/fixtures/optim_arena/`): four named parameters, lr factors, a decay filter, a
 * parameter that gets no gradient before step 2 and one that gets none at step 3.
 */

import type { Backend } from "../../tensor/backend.ts";
import { AdamW } from "../../tensor/optim/adamw.ts";
import type { Optimizer } from "../../tensor/optim/optimizer.ts";
import { SGD } from "../../tensor/optim/sgd.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import { randomArray } from "./helpers.ts";

/** The parameters: name and shape. */
export const SCENARIO_PARAMS: readonly [string, number[]][] = [
  ["backbone.a", [2, 70]],
  ["head.b", [9]],
  ["head.c", [70]],
  ["head.d", [1]],
];

/** Steps of the scenario. */
export const SCENARIO_STEPS = 4;

/** Whether parameter `k` gets a gradient at step `s` (0-based). */
export function hasGrad(k: number, s: number): boolean {
  if (k === 2) return s >= 1;
  if (k === 3) return s !== 2;
  return true;
}

const common = {
  lrScale: (name: string) => name.startsWith("backbone.") ? 0.1 : 1,
  decay: (name: string) => name !== "head.b",
};

type Make = (p: [string, Tensor][]) => Optimizer;

const BASE: readonly [string, Make][] = [
  ["SGD", (p) => new SGD(p, { ...common, lr: 0.1, weightDecay: 0.01 })],
  ["SGD momentum", (p) => new SGD(p, { ...common, lr: 0.1, momentum: 0.9, weightDecay: 0.05 })],
  [
    "SGD dampening",
    (p) => new SGD(p, { ...common, lr: 0.1, momentum: 0.8, dampening: 0.3, weightDecay: 0.05 }),
  ],
  ["SGD Nesterov", (p) => new SGD(p, { ...common, lr: 0.05, momentum: 0.9, nesterov: true })],
  ["AdamW", (p) => new AdamW(p, { ...common, lr: 0.01, weightDecay: 0.1 })],
];

/** The optimizers under test, by case name, each with and without clipping (at norm 1.5). */
export const SCENARIO_CASES: readonly [string, Make][] = BASE.flatMap(([name, make]) =>
  [
    [name, make],
    [`${name} clipped`, (p: [string, Tensor][]) => {
      const opt = make(p);
      opt.maxGradNorm = 1.5;
      return opt;
    }],
  ] as [string, Make][]
);

/** Runs one case on `backend`; returns every parameter and state tensor, by name, read back. */
export async function runScenario(
  backend: Backend,
  make: (p: [string, Tensor][]) => Optimizer,
): Promise<Map<string, number[]>> {
  const params = SCENARIO_PARAMS.map(([name, shape], k): [string, Tensor] => {
    const size = shape.reduce((a, b) => a * b, 1);
    return [name, tensor(randomArray(size, 100 + k), shape, { backend, requiresGrad: true })];
  });
  const opt = make(params);
  for (let s = 0; s < SCENARIO_STEPS; s++) {
    opt.zeroGrad();
    params.forEach(([, p], k) => {
      if (hasGrad(k, s)) {
        p.grad = tensor(randomArray(p.size, 200 + 10 * s + k, -2, 2), p.shape, { backend });
      }
    });
    opt.step();
  }
  const out = new Map<string, number[]>();
  for (const [name, p] of params) out.set(name, Array.from(await p.data()));
  for (const [name, t] of opt.stateDict()) out.set(`state.${name}`, Array.from(await t.data()));
  if (opt.lastGradNorm) out.set("grad_norm", Array.from(await opt.lastGradNorm.data()));
  out.set("step", [opt.stepCount]);
  opt.zeroGrad();
  opt.dispose();
  for (const [, p] of params) p.dispose();
  return out;
}
