/**
 * Reverse-mode autograd over a tape. Each primitive op records a
 * {@linkcode GradNode} with its backward rule (written beside the op's forward
 * in `tensor/ops/`); {@linkcode backward} walks the nodes in reverse
 * topological order, accumulating into tensors used more than once.
 *
 * @module
 */

import { add } from "./ops/elementwise.ts";
import { copyInto, type GradNode, keep, Tensor, tensor, viewOf } from "./tensor.ts";

let disabled = 0;

/** Whether ops record gradient nodes now (false inside {@linkcode noGrad}). */
export function isGradEnabled(): boolean {
  return disabled === 0;
}

/**
 * Runs `fn` without recording gradients.
 *
 * @example
 * ```ts
 * import { noGrad } from "./autograd.ts";
 * import { mul } from "./ops/elementwise.ts";
 * import { tensor } from "./tensor.ts";
 * const w = tensor([1, 2], undefined, { requiresGrad: true });
 * const y = noGrad(() => mul(w, w));
 * console.log(y.requiresGrad); // false
 * ```
 */
export function noGrad<T>(fn: () => T): T {
  disabled++;
  try {
    return fn();
  } finally {
    disabled--;
  }
}

/** A tensor sharing `t`'s memory, cut from the tape (no gradient flows through it). */
export function detach(t: Tensor): Tensor {
  return viewOf(t, t.shape);
}

/** Whether an op with these inputs must record a node. */
export function needsGrad(inputs: readonly Tensor[]): boolean {
  return disabled === 0 && inputs.some((t) => t.requiresGrad);
}

/**
 * Records that `outputs` were computed from `inputs` by `label`, with the rule
 * `backward` giving the inputs' gradients from the outputs'. Does nothing when
 * no input requires a gradient or inside {@linkcode noGrad}.
 */
export function record(
  label: string,
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  backward: GradNode["backward"],
): void {
  if (!needsGrad(inputs)) return;
  const node: GradNode = { label, inputs, outputs, backward };
  for (const out of outputs) {
    out.node = node;
    out.requiresGrad = true;
  }
}

function topologicalOrder(root: GradNode): GradNode[] {
  const order: GradNode[] = [];
  const visited = new Set<GradNode>();
  const stack: [GradNode, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [node, next] = top;
    if (next < node.inputs.length) {
      top[1]++;
      const child = node.inputs[next].node;
      if (child && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(node);
    }
  }
  return order.reverse();
}

function accumulate(into: Map<Tensor, Tensor>, target: Tensor, grad: Tensor): void {
  const previous = into.get(target);
  if (!previous) {
    into.set(target, grad);
    return;
  }
  into.set(target, add(previous, grad));
  previous.dispose();
  grad.dispose();
}

/**
 * Computes gradients of `output` with respect to every leaf tensor that
 * requires one, adding them into the leaves' `grad`. `output` must have one
 * element unless `gradOutput` is given. The tape is released afterwards.
 *
 * @example
 * ```ts
 * import { backward } from "./autograd.ts";
 * import { mul } from "./ops/elementwise.ts";
 * import { sum } from "./ops/reduce.ts";
 * import { tensor } from "./tensor.ts";
 * const x = tensor([1, 2, 3], undefined, { requiresGrad: true });
 * backward(sum(mul(x, x)));
 * console.log(await x.grad!.data()); // Float32Array [2, 4, 6]
 * ```
 */
export function backward(output: Tensor, gradOutput?: Tensor): void {
  if (!gradOutput && output.size !== 1) {
    throw new TypeError(
      `backward: output has shape [${output.shape.join(", ")}]; pass gradOutput for non-scalars`,
    );
  }
  const seed = gradOutput ??
    tensor(new Float32Array([1]), output.shape, { backend: output.backend, dtype: output.dtype });
  if (!output.node) {
    if (output.requiresGrad) accumulateLeaf(output, gradOutput ? viewOf(seed, seed.shape) : seed);
    else if (!gradOutput) seed.dispose();
    return;
  }
  const grads = new Map<Tensor, Tensor>([[output, seed]]);
  for (const node of topologicalOrder(output.node)) {
    const outGrads = node.outputs.map((o) => grads.get(o) ?? null);
    if (outGrads.every((g) => g === null)) continue;
    // Each gradient must be its own Tensor object: a rule may return its
    // incoming gradient or one tensor for two inputs, so such repeats become views.
    const seen = new Set<Tensor | null>(outGrads);
    const inGrads = noGradBackward(node, outGrads).map((g) => {
      if (!g) return null;
      const unique = seen.has(g) ? viewOf(g, g.shape) : g;
      seen.add(g);
      return unique;
    });
    for (const o of node.outputs) {
      const g = grads.get(o);
      if (g && (g !== seed || !gradOutput)) g.dispose();
      grads.delete(o);
      o.node = null;
    }
    node.inputs.forEach((input, k) => {
      const g = inGrads[k];
      if (!g) return;
      if (!input.requiresGrad) {
        g.dispose();
        return;
      }
      if (g.size !== input.size) {
        throw new TypeError(
          `backward of "${node.label}": gradient [${
            g.shape.join(", ")
          }] does not match input ${k} [${input.shape.join(", ")}]`,
        );
      }
      if (input.node) accumulate(grads, input, g);
      else accumulateLeaf(input, g);
    });
  }
}

function noGradBackward(node: GradNode, outGrads: (Tensor | null)[]): readonly (Tensor | null)[] {
  return noGrad(() => node.backward(outGrads));
}

/**
 * Adds `grad` into `leaf.grad`. A leaf with a `gradSlot` (an optimizer's gradient arena) keeps
 * its gradient there: the first contribution is copied in, later sums are copied over it.
 */
function accumulateLeaf(leaf: Tensor, grad: Tensor): void {
  const g = grad.shape.join() === leaf.shape.join() ? grad : viewOf(grad, leaf.shape);
  if (g !== grad) grad.dispose();
  const previous = leaf.grad;
  const total = previous ? noGrad(() => add(previous, g)) : g;
  if (previous) g.dispose();
  const slot = leaf.gradSlot;
  if (!slot || total.dtype !== leaf.dtype || total.backend !== leaf.backend) {
    previous?.dispose();
    leaf.grad = keep(total);
    return;
  }
  const inSlot = previous?.storage === slot
    ? previous
    : keep(new Tensor(slot, leaf.shape, leaf.dtype, leaf.backend));
  if (previous !== inSlot) previous?.dispose();
  copyInto(total, inSlot);
  total.dispose();
  leaf.grad = inSlot;
}

/** What a custom op's forward returns. */
export interface CustomForward {
  /** The op's outputs. */
  outputs: Tensor[];
  /** Tensors the backward needs (e.g. a gradient computed in the forward pass). */
  saved?: Tensor[];
}

/** A function whose forward and backward are given by hand. */
export interface CustomOpSpec {
  /** Names the op in errors. */
  label: string;
  /** Computes the outputs (gradients are not recorded inside). */
  forward(inputs: readonly Tensor[]): CustomForward;
  /** Gradients of the inputs from those of the outputs (`null` where none). */
  backward(
    grads: readonly (Tensor | null)[],
    saved: readonly Tensor[],
    inputs: readonly Tensor[],
  ): readonly (Tensor | null)[];
}

/**
 * Makes an autograd op from a hand-written forward and backward, for
 * functions whose gradient is computed in the forward pass (the ranking
 * losses) or has a better form than the composed one.
 *
 * @example A function that doubles its gradient
 * ```ts
 * import { backward, customOp } from "./autograd.ts";
 * import { mul } from "./ops/elementwise.ts";
 * import { tensor } from "./tensor.ts";
 * const twiceGrad = customOp({
 *   label: "twice_grad",
 *   forward: ([x]) => ({ outputs: [mul(x, 1)] }),
 *   backward: ([g]) => [g ? mul(g, 2) : null],
 * });
 * const x = tensor([3], undefined, { requiresGrad: true });
 * backward(twiceGrad(x)[0]);
 * console.log(await x.grad!.data()); // Float32Array [2]
 * ```
 */
export function customOp(spec: CustomOpSpec): (...inputs: Tensor[]) => Tensor[] {
  return (...inputs: Tensor[]) => {
    const { outputs, saved = [] } = noGrad(() => spec.forward(inputs));
    record(spec.label, inputs, outputs, (grads) => spec.backward(grads, saved, inputs));
    return outputs;
  };
}
