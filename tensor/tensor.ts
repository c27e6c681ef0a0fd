/**
 * The `Tensor`: a shape, an element type, a backend and a block of its memory,
 * plus the autograd fields. Creation from typed arrays, the one readback
 * (`await t.data()`), deterministic release (`dispose()`, `using`, `tidy`).
 *
 * @module
 */

import { type Backend, releaseStorage, type Storage } from "./backend.ts";
import { defaultDevice } from "./device.ts";
import {
  BYTES_PER_ELEMENT,
  type DType,
  dtypeOf,
  type TypedArray,
  type TypedArrayFor,
} from "./dtype.ts";

/** A node of the autograd tape: the op that made some tensors from others. */
export interface GradNode {
  /** The op's label, for errors and debugging. */
  readonly label: string;
  /** The op's inputs; gradients flow to those that require them. */
  readonly inputs: readonly Tensor[];
  /** The op's outputs (weakly: a disposed output just gets no gradient). */
  readonly outputs: readonly Tensor[];
  /** Gradients of the inputs from gradients of the outputs (`null`: none). */
  backward(grads: readonly (Tensor | null)[]): readonly (Tensor | null)[];
}

/** Options for creating a tensor. */
export interface TensorOptions {
  /** Element type; default `f32` (or the typed array's own type). */
  dtype?: DType;
  /** Backend; default the one chosen by `initBackend`. */
  backend?: Backend;
  /** Whether gradients flow to this tensor (a leaf such as a parameter). */
  requiresGrad?: boolean;
}

const scopes: Set<Tensor>[] = [];

/** Number of elements of a shape. */
export function sizeOf(shape: readonly number[]): number {
  let size = 1;
  for (const d of shape) size *= d;
  return size;
}

/** Checks a shape: non-negative integers. */
export function checkShape(shape: readonly number[], op: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new TypeError(`${op}: invalid shape [${shape.join(", ")}]`);
    }
  }
}

/** An n-dimensional array on a backend. */
export class Tensor {
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: DType;
  /** Where the memory lives and kernels run. */
  readonly backend: Backend;
  /** Whether gradients are computed for this tensor. */
  requiresGrad = false;
  /** Accumulated gradient, for leaves that require one. */
  grad: Tensor | null = null;
  /** The op that produced this tensor, while a tape is being recorded. */
  node: GradNode | null = null;
  /**
   * Where `backward` puts this leaf's gradient: a view in an optimizer's gradient arena that
   * `grad` then views, or `null` for a gradient tensor of its own.
   */
  gradSlot: Storage | null = null;
  #storage: Storage | null;
  /** Elements of `shape`, counted once (the shape is frozen). */
  readonly #size: number;

  /** Wraps `storage` (taking a reference); use {@linkcode tensor} to create tensors. */
  constructor(storage: Storage, shape: readonly number[], dtype: DType, backend: Backend) {
    this.shape = Object.freeze([...shape]);
    this.#size = sizeOf(this.shape);
    this.dtype = dtype;
    this.backend = backend;
    this.#storage = storage;
    storage.refs++;
    scopes.at(-1)?.add(this);
  }

  /** Number of elements. */
  get size(): number {
    return this.#size;
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** Whether {@linkcode dispose} was called. */
  get disposed(): boolean {
    return this.#storage === null;
  }

  /** The backend memory; throws once disposed. */
  get storage(): Storage {
    if (!this.#storage) {
      throw new ReferenceError(`Tensor [${this.shape.join(", ")}] ${this.dtype} was disposed`);
    }
    return this.#storage;
  }

  /** Replaces this tensor's memory with `other`'s (in-place updates); `other` keeps ours. */
  swapStorage(other: Tensor): void {
    if (other.size !== this.size || other.dtype !== this.dtype) {
      throw new TypeError(
        `swapStorage: [${other.shape}] ${other.dtype} does not match [${this.shape}] ${this.dtype}`,
      );
    }
    const mine = this.storage;
    this.#storage = other.storage;
    other.#storage = mine;
  }

  /** Copies the elements to the CPU: the only readback. */
  async data(): Promise<TypedArray> {
    return await this.backend.read(this.storage, this.dtype, this.size);
  }

  /** Nested arrays of the elements, for printing and small tests. */
  async array(): Promise<unknown> {
    const flat = Array.from(await this.data());
    const build = (dim: number, offset: number): unknown => {
      if (dim === this.rank) return flat[offset];
      const stride = sizeOf(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim] }, (_, k) => build(dim + 1, offset + k * stride));
    };
    return build(0, 0);
  }

  /**
   * Returns the memory to the pool (once the last view sharing it is disposed).
   * The tensor stays on the tape: gradients still flow through it to its inputs.
   */
  dispose(): void {
    const storage = this.#storage;
    if (!storage) return;
    this.#storage = null;
    if (--storage.refs === 0) releaseStorage(this.backend, storage);
    for (const scope of scopes) scope.delete(this);
  }

  /** `using t = ...` disposes at the end of the block. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** A short description: `Tensor([2, 3] f32 webgpu)`. */
  toString(): string {
    return `Tensor([${this.shape.join(", ")}] ${this.dtype} ${this.backend.name})`;
  }
}

/** A tensor sharing `source`'s memory with another shape of the same size. */
export function viewOf(source: Tensor, shape: readonly number[]): Tensor {
  return new Tensor(source.storage, shape, source.dtype, source.backend);
}

/**
 * Copies the elements of `src` into `dst` (same dtype, size and backend) with a copy command,
 * not a kernel.
 *
 * @example
 * ```ts
 * import { copyInto, tensor } from "./tensor.ts";
 * const dst = tensor([0, 0]);
 * copyInto(tensor([1, 2]), dst);
 * console.log(await dst.data()); // Float32Array [1, 2]
 * ```
 */
export function copyInto(src: Tensor, dst: Tensor): void {
  if (src.size !== dst.size || src.dtype !== dst.dtype || src.backend !== dst.backend) {
    throw new TypeError(`copyInto: ${src} does not match ${dst}`);
  }
  const bytes = src.size * BYTES_PER_ELEMENT[src.dtype];
  if (src.storage !== dst.storage) src.backend.copy(src.storage, 0, dst.storage, 0, bytes);
}

/** A tensor of uninitialised memory (every kernel writes all of its outputs). */
export function empty(shape: readonly number[], dtype: DType, backend: Backend): Tensor {
  checkShape(shape, "empty");
  return new Tensor(backend.alloc(dtype, sizeOf(shape)), shape, dtype, backend);
}

function fromNested(data: unknown, shape: number[]): number[] {
  if (!Array.isArray(data)) return [Number(data)];
  shape.push(data.length);
  const flat: number[] = [];
  let inner: number[] | null = null;
  for (const item of data) {
    const sub: number[] = [];
    flat.push(...fromNested(item, sub));
    if (inner && inner.join() !== sub.join()) throw new TypeError("tensor: ragged nested array");
    inner = sub;
  }
  if (inner) shape.push(...inner);
  return flat;
}

/**
 * Creates a tensor from a typed array, a flat or nested number array, or a number.
 *
 * @example
 * ```ts
 * import { tensor } from "./tensor.ts";
 * const t = tensor([[1, 2, 3], [4, 5, 6]]);
 * console.log(t.shape); // [2, 3]
 * console.log(await t.data()); // Float32Array [1, 2, 3, 4, 5, 6]
 * ```
 *
 * @param data Values, row-major.
 * @param shape Shape; default the nested array's shape (or `[length]`).
 * @param options Element type, backend, `requiresGrad`.
 */
export function tensor(
  data: TypedArray | number | readonly unknown[],
  shape?: readonly number[],
  options: TensorOptions = {},
): Tensor {
  const backend = options.backend ?? defaultDevice();
  let values: TypedArray;
  let inferred: number[] = [];
  if (ArrayBuffer.isView(data)) {
    values = data as TypedArray;
    inferred = [values.length];
    if (options.dtype && options.dtype !== dtypeOf(values)) {
      values = castArray(values, options.dtype);
    }
  } else {
    const flat = fromNested(data, inferred);
    values = castArray(Float64Array.from(flat), options.dtype ?? "f32");
  }
  const finalShape = shape ?? inferred;
  checkShape(finalShape, "tensor");
  if (sizeOf(finalShape) !== values.length) {
    throw new TypeError(
      `tensor: ${values.length} values do not fill shape [${finalShape.join(", ")}]`,
    );
  }
  const t = new Tensor(backend.upload(values), finalShape, dtypeOf(values), backend);
  t.requiresGrad = options.requiresGrad ?? false;
  return t;
}

/** A copy of `values` as `dtype` (`i32`/`u32` truncate toward zero). */
export function castArray<D extends DType>(values: ArrayLike<number>, dtype: D): TypedArrayFor[D] {
  switch (dtype) {
    case "f32":
      return Float32Array.from(values) as TypedArrayFor[D];
    case "i32":
      return Int32Array.from(values) as TypedArrayFor[D];
    case "u32":
      return Uint32Array.from(values) as TypedArrayFor[D];
    default:
      return Float64Array.from(values) as TypedArrayFor[D];
  }
}

type Kept = Tensor | readonly Kept[] | { readonly [key: string]: Kept } | unknown;

function collect(value: Kept, into: Set<Tensor>): void {
  if (value instanceof Tensor) into.add(value);
  else if (Array.isArray(value)) { for (const item of value) collect(item, into); }
  else if (value && typeof value === "object" && !ArrayBuffer.isView(value)) {
    for (const item of Object.values(value)) collect(item, into);
  }
}

/**
 * Runs `fn` and disposes every tensor it created, except those it returns
 * (found in arrays and plain objects) and those passed to {@linkcode keep}.
 *
 * @example One training step leaves no buffer behind
 * ```ts
 * import { tensor, tidy } from "./tensor.ts";
 * const x = tensor([1, 2, 3]);
 * const kept = tidy(() => {
 *   const scratch = tensor([4, 5, 6]);
 *   return scratch;
 * });
 * console.log(kept.disposed, x.disposed); // false false
 * ```
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (error) {
    for (const t of scope) t.dispose();
    throw error;
  } finally {
    scopes.pop();
  }
  if (result instanceof Promise) {
    throw new TypeError(
      "tidy: the function must not be async (it would release tensors in use); use tidyAsync",
    );
  }
  return closeScope(scope, result);
}

/**
 * {@linkcode tidy} for an async `fn`, such as a loss that reads predictions
 * back in the middle (a two-stage detector's proposals). The scope stays open
 * across `fn`'s awaits, so no other tensor work may run until it settles: a
 * tensor made meanwhile elsewhere would be released with `fn`'s.
 *
 * @example
 * ```ts
 * import { tensor, tidyAsync } from "./tensor.ts";
 * const kept = await tidyAsync(async () => {
 *   const scratch = tensor([1, 2]);
 *   const [a, b] = await scratch.data();
 *   const sum = a + b;
 *   return tensor([sum]);
 * });
 * console.log(Array.from(await kept.data())); // [3]
 * ```
 */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = await fn();
  } catch (error) {
    for (const t of scope) t.dispose();
    throw error;
  } finally {
    const at = scopes.lastIndexOf(scope);
    if (at >= 0) scopes.splice(at, 1);
  }
  return closeScope(scope, result);
}

/** Disposes what `scope` holds but `result`, and hands the rest to the enclosing scope. */
function closeScope<T>(scope: Set<Tensor>, result: T): T {
  const returned = new Set<Tensor>();
  collect(result, returned);
  for (const t of scope) {
    if (!returned.has(t)) t.dispose();
  }
  const parent = scopes.at(-1);
  if (parent) { for (const t of returned) if (scope.has(t) && !t.disposed) parent.add(t); }
  return result;
}

/** Exempts `t` from disposal by the enclosing {@linkcode tidy} scopes; returns `t`. */
export function keep<T extends Tensor>(t: T): T {
  for (const scope of scopes) scope.delete(t);
  return t;
}
