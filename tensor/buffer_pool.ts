/**
 * The WebGPU backend's pool of free buffers by size bucket, which hands out the oldest free
 * buffer of a bucket (lowest number, buffers being numbered when first returned) rather than
 * the last one returned.
 *
 * That makes the choice depend only on which buffers are free, not on the order in which they
 * came back: a training step that starts with the same free buffers as the step before, and
 * allocates and releases in the same order, gets the same buffer for each tensor, so the bind
 * groups of its launches are the ones the step before made (`bind_groups.ts` reuses a group for
 * the same buffer ranges). With last-returned-first, the order of the free lists drifts from
 * step to step and a default step made ~450 new bind groups.
 *
 * @example
 * ```ts
 * import { BufferPool } from "./buffer_pool.ts";
 * import assert from "node:assert/strict";
 *
 * const pool = new BufferPool<{ name: string }>();
 * const a = { name: "a" }, b = { name: "b" };
 * pool.put(256, a);
 * pool.put(256, b);
 * assert.equal(pool.take(256), a); // the first returned, whatever came back after it
 * pool.put(256, a);
 * assert.equal(pool.take(256), a);
 * assert.equal(pool.take(256), b);
 * assert.equal(pool.take(256), undefined);
 * ```
 *
 * @module
 */

/** Free items by bucket, taken lowest number first (see the module doc). */
export class BufferPool<T extends object> {
  readonly #numbers = new WeakMap<T, number>();
  #next = 0;
  /** Each bucket's free items and their numbers, as a binary min-heap on the numbers. */
  readonly #free = new Map<number, { items: T[]; numbers: number[] }>();

  /** The free item of `bucket` with the lowest number, removed from the pool, if any. */
  take(bucket: number): T | undefined {
    const heap = this.#free.get(bucket);
    if (!heap || heap.items.length === 0) return undefined;
    const { items, numbers } = heap;
    const lowest = items[0];
    const item = items.pop()!, number = numbers.pop()!;
    const n = items.length;
    if (n > 0) {
      // Sift the last item down from the root.
      let at = 0;
      for (;;) {
        let child = 2 * at + 1;
        if (child >= n) break;
        if (child + 1 < n && numbers[child + 1] < numbers[child]) child++;
        if (numbers[child] >= number) break;
        items[at] = items[child];
        numbers[at] = numbers[child];
        at = child;
      }
      items[at] = item;
      numbers[at] = number;
    }
    return lowest;
  }

  /** Returns `item` to `bucket`'s free list; it is numbered the first time it is returned. */
  put(bucket: number, item: T): void {
    let number = this.#numbers.get(item);
    if (number === undefined) this.#numbers.set(item, number = this.#next++);
    let heap = this.#free.get(bucket);
    if (!heap) this.#free.set(bucket, heap = { items: [], numbers: [] });
    const { items, numbers } = heap;
    // Sift up from a new leaf.
    let at = items.length;
    items.push(item);
    numbers.push(number);
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (numbers[parent] <= number) break;
      items[at] = items[parent];
      numbers[at] = numbers[parent];
      at = parent;
    }
    items[at] = item;
    numbers[at] = number;
  }
}
