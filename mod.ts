/**
 * **brl**: bucketed ranking-based losses for object detection, on Deno's
 * WebGPU, with its own WGSL tensor kernels, autograd and a CPU twin.
 *
 * Call {@linkcode initBackend} once to pick WebGPU (or the CPU where no
 * adapter exists); tensors are then created on it by default.
 *
 * @example Gradients on whichever backend is available
 * ```ts
 * import { backward, initBackend, mul, sum, tensor } from "./mod.ts";
 *
 * await initBackend();
 * const x = tensor([1, 2, 3], undefined, { requiresGrad: true });
 * backward(sum(mul(x, x)));
 * console.log(await x.grad!.data()); // Float32Array [2, 4, 6]
 * ```
 *
 * @module
 */

export * from "./tensor/mod.ts";
