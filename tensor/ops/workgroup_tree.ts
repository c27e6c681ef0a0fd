/**
 * The building block of the single-launch reductions of hardware adapters
 * (`DeviceProfile.reductions` `"workgroup"`): a workgroup of
 * {@linkcode REDUCE_WORKGROUP} invocations walks one row with a strided loop (invocation
 * `lid` takes elements `lid`, `lid + 256`, …), then combines the invocations' partial results
 * through a tree in workgroup memory ({@linkcode treeReduceWgsl}). A row fits one workgroup when
 * the strided loop stays within the profile's `loopBudget` ({@linkcode rowFitsWorkgroup}); the ops
 * (`reduce.ts`, `norm.ts`) decide what to do with longer rows.
 *
 * @module
 */

/** Invocations of a reducing workgroup: WebGPU's guaranteed `maxComputeInvocationsPerWorkgroup`. */
export const REDUCE_WORKGROUP = 256;

/**
 * Iterations of the strided loop over a row of `n` elements (at least 1).
 *
 * @example
 * ```ts
 * import { stridedIterations } from "./workgroup_tree.ts";
 * console.log(stridedIterations(257)); // 2
 * ```
 */
export function stridedIterations(n: number): number {
  return Math.max(1, Math.ceil(n / REDUCE_WORKGROUP));
}

/**
 * Whether one workgroup reduces a row of `n` elements with at most `loopBudget` iterations of
 * its strided loop (`loops` such loops in sequence, e.g. one per channel, count together).
 *
 * @example
 * ```ts
 * import { rowFitsWorkgroup } from "./workgroup_tree.ts";
 * console.log(rowFitsWorkgroup(70_000, 16_384)); // true: 274 iterations
 * console.log(rowFitsWorkgroup(256 * 20, 16)); // false
 * ```
 */
export function rowFitsWorkgroup(n: number, loopBudget: number, loops = 1): boolean {
  return loops * stridedIterations(n) <= loopBudget;
}

/**
 * WGSL of a workgroup array `<name>_tree` and a function `fn <name>(lid: u32, v: <type>) -> <type>`
 * that combines the `v` of all {@linkcode REDUCE_WORKGROUP} invocations with `combine` (pairwise,
 * in a tree of halving strides) and returns the result to every invocation. It holds workgroup
 * barriers, so every invocation must call it, from uniform control flow; it can be called again
 * at once (it ends on a barrier).
 *
 * @example
 * ```ts
 * import { treeReduceWgsl } from "./workgroup_tree.ts";
 * const wgsl = treeReduceWgsl("tree_max", "f32", (a, b) => `max(${a}, ${b})`);
 * console.log(wgsl.includes("fn tree_max(lid: u32, v: f32) -> f32")); // true
 * ```
 *
 * @param name The function's name (snake_case).
 * @param type The WGSL type reduced (`f32`, `vec2<f32>`, `i32`, …).
 * @param combine The WGSL expression combining two values, from their expressions.
 * @returns WGSL declarations for the module scope.
 */
export function treeReduceWgsl(
  name: string,
  type: string,
  combine: (a: string, b: string) => string,
): string {
  const tree = `${name}_tree`;
  return `var<workgroup> ${tree}: array<${type}, ${REDUCE_WORKGROUP}>;
fn ${name}(lid: u32, v: ${type}) -> ${type} {
  ${tree}[lid] = v;
  workgroupBarrier();
  for (var s = ${REDUCE_WORKGROUP / 2}u; s > 0u; s = s / 2u) {
    if (lid < s) { ${tree}[lid] = ${combine(`${tree}[lid]`, `${tree}[lid + s]`)}; }
    workgroupBarrier();
  }
  let result = ${tree}[0];
  workgroupBarrier();
  return result;
}`;
}
