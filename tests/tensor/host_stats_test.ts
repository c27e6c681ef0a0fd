import assert from "node:assert/strict";
import { type Backend, encodeMs } from "../../tensor/backend.ts";
import { BufferPool } from "../../tensor/buffer_pool.ts";
import { requestGpuDevice } from "../../tensor/device.ts";
import { add } from "../../tensor/ops/elementwise.ts";
import { tensor } from "../../tensor/tensor.ts";
import { createWebGpuBackend } from "../../tensor/webgpu_backend.ts";
import { CPU, GPU, gpuBackend } from "./helpers.ts";

Deno.test("hostStats() counts launches, submits and device waits", async (t) => {
  const backends: Backend[] = [CPU];
  if (GPU) backends.push(await gpuBackend());
  for (const backend of backends) {
    await t.step(backend.name, async () => {
      await backend.sync();
      const before = backend.hostStats();
      const started = performance.now();
      const a = tensor(new Float32Array(1000).fill(1), [1000], { backend });
      const outs = [add(a, a), add(a, 2), add(a, 3)];
      backend.flush();
      const after = backend.hostStats();
      const wall = performance.now() - started;
      assert.equal(after.launches - before.launches, 3);
      assert.ok(after.lastSubmitAt >= started && after.lastSubmitAt <= performance.now());
      const host = encodeMs(started, before, after);
      assert.ok(host >= 0 && host <= wall, `encode ${host} ms, wall ${wall} ms`);
      // A read waits on WebGPU, never on the host backends; that wait follows the last submit.
      assert.deepEqual([...await outs[1].data()].slice(0, 2), [3, 3]);
      const read = backend.hostStats();
      if (backend.name === "webgpu") {
        assert.ok(read.waitMs > after.waitMs, `${read.waitMs} ms waited`);
        assert.equal(read.submits, after.submits + 1); // the read's copy
        assert.equal(read.waitMsAtLastSubmit, after.waitMs);
      } else {
        assert.equal(read.waitMs, 0);
        assert.equal(read.submits - before.submits, 3);
      }
      // The snapshot is a copy.
      read.launches = -1;
      assert.notEqual(backend.hostStats().launches, -1);
      for (const o of [a, ...outs]) o.dispose();
    });
  }
});

Deno.test("encodeMs() leaves out waits before the last submit, and only those", () => {
  const at = (lastSubmitAt: number, waitMsAtLastSubmit: number, waitMs = waitMsAtLastSubmit) => ({
    waitMs,
    lastSubmitAt,
    waitMsAtLastSubmit,
    launches: 0,
    submits: 0,
  });
  assert.equal(encodeMs(10, at(0, 2), at(40, 12, 30)), 20);
  assert.equal(encodeMs(10, at(0, 2), at(5, 2)), 0); // nothing submitted since the start
});

Deno.test("BufferPool hands out the lowest-numbered free item of a bucket", () => {
  const pool = new BufferPool<object>();
  const items = Array.from({ length: 6 }, () => ({}));
  for (const k of [3, 0, 5, 1, 4, 2]) pool.put(256, items[k]); // numbered in this order
  pool.put(512, {});
  const order = [3, 0, 5, 1, 4, 2];
  const taken = order.map(() => pool.take(256));
  assert.deepEqual(taken, order.map((k) => items[k]));
  assert.equal(pool.take(256), undefined);
  // Returned in another order, they come back in the same one.
  for (const k of [2, 4, 1, 5, 0, 3]) pool.put(256, items[k]);
  assert.deepEqual(order.map(() => pool.take(256)), order.map((k) => items[k]));
});

Deno.test("BufferPool agrees with a plain search for the lowest number over random use", () => {
  const pool = new BufferPool<{ id: number }>();
  const items = Array.from({ length: 300 }, (_, id) => ({ id }));
  const numberOf = new Map<object, number>();
  const free = new Map<number, Set<{ id: number }>>([[256, new Set()], [512, new Set()]]);
  let next = 0, seed = 12345;
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const out = new Set(items);
  for (let step = 0; step < 20_000; step++) {
    const bucket = random() < 0.5 ? 256 : 512;
    if (random() < 0.5 && out.size > 0) {
      const item = [...out][Math.floor(random() * out.size)];
      out.delete(item);
      if (!numberOf.has(item)) numberOf.set(item, next++);
      free.get(bucket)!.add(item);
      pool.put(bucket, item);
    } else {
      const candidates = [...free.get(bucket)!];
      const expected = candidates.length === 0
        ? undefined
        : candidates.reduce((a, b) => numberOf.get(a)! < numberOf.get(b)! ? a : b);
      assert.equal(pool.take(bucket), expected, `step ${step}`);
      if (expected) {
        free.get(bucket)!.delete(expected);
        out.add(expected);
      }
    }
  }
});

Deno.test("WebGPU: uploads while launches are pending", { ignore: !GPU }, async (t) => {
  // A fresh backend, so that the pool holds only this test's buffers.
  const { device, description } = await requestGpuDevice();
  const backend = createWebGpuBackend(device, description);
  const filled = (n: number, value: number) => new Float32Array(n).fill(value);

  /**
   * Launches `x + 1` on a fresh tensor, releases that tensor and uploads `sizes` arrays of its
   * size while the launch is pending (the first reuses its buffer); checks every value and
   * returns the submits the uploads made.
   */
  async function uploadsAfterLaunch(n: number, count: number): Promise<number> {
    await backend.sync();
    const x = tensor(filled(n, 1), [n], { backend });
    const y = add(x, 1);
    x.dispose();
    const before = backend.hostStats().submits;
    const uploaded = Array.from(
      { length: count },
      (_, k) => tensor(filled(n, 10 + k), [n], { backend }),
    );
    const submits = backend.hostStats().submits - before;
    const got = await y.data();
    assert.equal(got[0], 2, "the launch read the data it was given");
    assert.equal(got[n - 1], 2);
    for (const [k, u] of uploaded.entries()) {
      const data = await u.data();
      assert.equal(data[0], 10 + k);
      assert.equal(data[n - 1], 10 + k);
      u.dispose();
    }
    y.dispose();
    return submits;
  }

  await t.step("a small upload is staged and copied in order, without a submit", async () => {
    assert.equal(await uploadsAfterLaunch(1000, 1), 0);
  });
  await t.step("uploads past the staging ring submit the pending launches first", async () => {
    assert.equal(await uploadsAfterLaunch(400_000, 4), 1); // 1.6 MB each, 4 MiB staged at most
    assert.equal(await uploadsAfterLaunch(1_500_000, 1), 1); // 6 MB: never staged
  });
});
