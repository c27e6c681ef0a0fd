/**
 * The `Module` base class: named parameters (leaf tensors that require
 * gradients), named buffers (state without gradients, such as running
 * statistics), child modules, the training/evaluation switch and the state
 * dictionary used by checkpoints.
 *
 * @module
 */

import type { HostTensor } from "../safetensors.ts";
import { copyInto, keep, type Tensor, tensor } from "../tensor.ts";

/** A module of any input and output types. */
// deno-lint-ignore no-explicit-any
export type AnyModule = Module<any, any>;

/** Options of {@linkcode Module.loadStateDict}. */
export interface LoadStateOptions {
  /** Fail on missing or unexpected names (default true); shapes and types are always checked. */
  strict?: boolean;
}

/**
 * A layer or a network of layers. Subclasses register their tensors in the
 * constructor and implement {@linkcode Module.forward}. Registered tensors are
 * `keep()`-ed, so building a module inside `tidy` does not release them.
 *
 * @example A module with one parameter
 * ```ts
 * import { Module } from "./module.ts";
 * import { mul } from "../ops/elementwise.ts";
 * import { type Tensor, tensor } from "../tensor.ts";
 * class Scale extends Module {
 *   readonly scale = this.registerParameter("scale", tensor([2]));
 *   forward(x: Tensor): Tensor {
 *     return mul(x, this.scale);
 *   }
 * }
 * const m = new Scale();
 * console.log(m.namedParameters().map(([n]) => n)); // ["scale"]
 * ```
 */
export abstract class Module<In = Tensor, Out = Tensor> {
  /** Whether the module is in training mode (see {@linkcode Module.train}). */
  training = true;
  readonly #params = new Map<string, Tensor>();
  readonly #buffers = new Map<string, Tensor>();
  readonly #children = new Map<string, AnyModule>();

  /** Computes the module's output. */
  abstract forward(x: In): Out;

  /** Registers `t` as the parameter `name` (it will require gradients); returns `t`. */
  protected registerParameter(name: string, t: Tensor): Tensor {
    this.#checkFree(name);
    t.requiresGrad = true;
    this.#params.set(name, keep(t));
    return t;
  }

  /** Registers `t` as the buffer `name` (saved, never trained); returns `t`. */
  protected registerBuffer(name: string, t: Tensor): Tensor {
    this.#checkFree(name);
    t.requiresGrad = false;
    this.#buffers.set(name, keep(t));
    return t;
  }

  /** Registers a child module under `name`; returns it. */
  protected registerModule<M extends AnyModule>(name: string, module: M): M {
    this.#checkFree(name);
    this.#children.set(name, module);
    return module;
  }

  #checkFree(name: string): void {
    if (name.length === 0 || name.includes(".")) {
      throw new TypeError(`Module: invalid name "${name}" (empty or containing ".")`);
    }
    if (this.#params.has(name) || this.#buffers.has(name) || this.#children.has(name)) {
      throw new TypeError(`Module: "${name}" is already registered`);
    }
  }

  /** The direct children, by name. */
  children(): [string, AnyModule][] {
    return [...this.#children];
  }

  /** This module and every descendant, with dotted names (`""` for this one). */
  namedModules(prefix = ""): [string, AnyModule][] {
    const out: [string, AnyModule][] = [[prefix, this as AnyModule]];
    for (const [name, child] of this.#children) {
      out.push(...child.namedModules(prefix ? `${prefix}.${name}` : name));
    }
    return out;
  }

  /** Every parameter with its dotted name (`layer1.0.weight`), in registration order. */
  namedParameters(): [string, Tensor][] {
    return this.#collect((m) => m.#params);
  }

  /** Every parameter, in registration order. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Every buffer with its dotted name. */
  namedBuffers(): [string, Tensor][] {
    return this.#collect((m) => m.#buffers);
  }

  #collect(pick: (m: AnyModule) => Map<string, Tensor>): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, t] of pick(m)) out.push([prefix ? `${prefix}.${name}` : name, t]);
    }
    return out;
  }

  /** Sets training mode (`true`) or evaluation mode on this module and its descendants. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /** Sets evaluation mode; same as `train(false)`. */
  eval(): this {
    return this.train(false);
  }

  /** Parameters and buffers by dotted name: the live tensors, not copies. */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /**
   * Copies `state` into the module's tensors in place (on their backends),
   * after checking every name, shape and element type; nothing is changed
   * when a check fails.
   */
  loadStateDict(
    state: ReadonlyMap<string, HostTensor | Tensor>,
    options: LoadStateOptions = {},
  ): void {
    const strict = options.strict ?? true;
    const own = this.stateDict();
    if (strict) {
      for (const name of own.keys()) {
        if (!state.has(name)) {
          throw new TypeError(`loadStateDict: "${name}" is missing from the state`);
        }
      }
      for (const name of state.keys()) {
        if (!own.has(name)) {
          throw new TypeError(`loadStateDict: unexpected tensor "${name}" in the state`);
        }
      }
    }
    for (const [name, value] of state) {
      const target = own.get(name);
      if (!target) continue;
      if (value.shape.join() !== target.shape.join()) {
        throw new TypeError(
          `loadStateDict: "${name}" has shape [${value.shape.join(", ")}] in the state but [${
            target.shape.join(", ")
          }] in the module`,
        );
      }
      if (value.dtype !== target.dtype) {
        throw new TypeError(
          `loadStateDict: "${name}" is ${value.dtype} in the state but ${target.dtype} in the module`,
        );
      }
    }
    for (const [name, value] of state) {
      const target = own.get(name);
      if (!target) continue;
      // Copied into the target's memory, which may be a slot of an optimizer's arena.
      if ("backend" in value) {
        if (value.backend !== target.backend) {
          throw new TypeError(
            `loadStateDict: "${name}" lives on ${value.backend.name}, not ${target.backend.name}`,
          );
        }
        copyInto(value, target);
      } else {
        using fresh = tensor(value.data, target.shape, {
          backend: target.backend,
          dtype: target.dtype,
        });
        copyInto(fresh, target);
      }
    }
  }

  /** Disposes every gradient of the parameters. */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Releases every parameter, gradient and buffer. */
  dispose(): void {
    for (const [, t] of [...this.namedParameters(), ...this.namedBuffers()]) {
      t.grad?.dispose();
      t.grad = null;
      t.dispose();
    }
  }
}
