/**
 * Per-step overhead of the engine: a 50-op graph on small tensors (forward
 * and backward), encoded and submitted with no readback, so the time is the
 * cost of recording the tape, encoding ~100 dispatches and submitting them.
 *
 * Run: `deno bench --allow-read --allow-env bench/overhead_bench.ts`
 *
 * @module
 */

import { backward } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { cpu, hasGpu, webgpu } from "../tensor/device.ts";
import { add, mul, sigmoid, tanh } from "../tensor/ops/elementwise.ts";
import { sum } from "../tensor/ops/reduce.ts";
import { type Tensor, tensor, tidy } from "../tensor/tensor.ts";

function fiftyOps(x: Tensor): Tensor {
  let y = x;
  for (let k = 0; k < 12; k++) y = add(mul(tanh(sigmoid(y)), 0.5), x); // 4 ops each
  return sum(add(y, 1)); // 2 more: 50 ops
}

function step(backend: Backend, x: Tensor): void {
  tidy(() => {
    backward(fiftyOps(x));
    x.grad?.dispose();
    x.grad = null;
  });
  backend.flush();
}

const backends: Backend[] = [cpu()];
if (await hasGpu()) backends.push(await webgpu());
for (const backend of backends) {
  const x = tensor(new Float32Array(256).map((_, i) => i / 256), [256], {
    backend,
    requiresGrad: true,
  });
  step(backend, x); // compile every kernel first
  await backend.sync();
  Deno.bench({
    name: `50-op graph forward + backward, encode and submit (${backend.name})`,
    group: "step overhead",
    baseline: backend.name === "cpu",
    fn() {
      step(backend, x);
    },
  });
  Deno.bench({
    name: `same, waiting for the device (${backend.name})`,
    group: "step overhead incl. execution",
    baseline: backend.name === "cpu",
    async fn() {
      step(backend, x);
      await backend.sync();
    },
  });
}
