/**
 * Learning-rate schedules: functions from the step number (0-based) to a
 * multiplier of the base learning rate. They compose by multiplication
 * ({@linkcode composeSchedules}), e.g. a linear warmup times a cosine decay.
 *
 * @example Warmup then cosine decay
 * ```ts
 * import { composeSchedules, cosineSchedule, linearWarmup } from "./schedules.ts";
 * const schedule = composeSchedules(linearWarmup(100, 0.001), cosineSchedule(1000));
 * const baseLr = 0.01;
 * console.log(baseLr * schedule(0), baseLr * schedule(500)); // 1e-5, ~0.005
 * ```
 *
 * @module
 */

/** A learning-rate multiplier as a function of the step number (0-based). */
export type LrSchedule = (step: number) => number;

function checkCount(op: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new RangeError(`${op}: ${name} ${value} is not a positive integer`);
  }
}

/** The constant multiplier 1. */
export function constantSchedule(): LrSchedule {
  return () => 1;
}

/**
 * Multiplies by `gamma` every `stepSize` steps: `gamma ** floor(step / stepSize)`.
 *
 * @example
 * ```ts
 * import { stepSchedule } from "./schedules.ts";
 * console.log(stepSchedule(10, 0.5)(25)); // 0.25
 * ```
 */
export function stepSchedule(stepSize: number, gamma = 0.1): LrSchedule {
  checkCount("stepSchedule", "stepSize", stepSize);
  return (step) => gamma ** Math.floor(Math.max(step, 0) / stepSize);
}

/**
 * Multiplies by `gamma` at each milestone step: `gamma ** (milestones <= step)`.
 *
 * @example
 * ```ts
 * import { multiStepSchedule } from "./schedules.ts";
 * console.log(multiStepSchedule([8, 11], 0.1)(9)); // 0.1
 * ```
 */
export function multiStepSchedule(milestones: readonly number[], gamma = 0.1): LrSchedule {
  const sorted = [...milestones].sort((a, b) => a - b);
  return (step) => gamma ** sorted.filter((m) => m <= step).length;
}

/**
 * Cosine decay from 1 at step 0 to `minFactor` at `totalSteps` (and after).
 *
 * @example
 * ```ts
 * import { cosineSchedule } from "./schedules.ts";
 * console.log(cosineSchedule(100)(50)); // 0.5
 * ```
 */
export function cosineSchedule(totalSteps: number, minFactor = 0): LrSchedule {
  checkCount("cosineSchedule", "totalSteps", totalSteps);
  return (step) => {
    const t = Math.min(Math.max(step, 0), totalSteps) / totalSteps;
    return minFactor + (1 - minFactor) * 0.5 * (1 + Math.cos(Math.PI * t));
  };
}

/**
 * Linear warmup from `startFactor` at step 0 to 1 at `warmupSteps`, then 1.
 *
 * @example
 * ```ts
 * import { linearWarmup } from "./schedules.ts";
 * console.log(linearWarmup(10, 0)(5)); // 0.5
 * ```
 */
export function linearWarmup(warmupSteps: number, startFactor = 0.001): LrSchedule {
  checkCount("linearWarmup", "warmupSteps", warmupSteps);
  return (step) =>
    step >= warmupSteps ? 1 : startFactor + (1 - startFactor) * Math.max(step, 0) / warmupSteps;
}

/**
 * The product of several schedules.
 *
 * @example
 * ```ts
 * import { composeSchedules, linearWarmup, stepSchedule } from "./schedules.ts";
 * console.log(composeSchedules(linearWarmup(10, 0), stepSchedule(100))(5)); // 0.5
 * ```
 */
export function composeSchedules(...schedules: LrSchedule[]): LrSchedule {
  return (step) => schedules.reduce((f, s) => f * s(step), 1);
}
