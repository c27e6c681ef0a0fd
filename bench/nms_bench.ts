/**
 * Batched NMS: the WebGPU pipeline (`batchedNms`), the same kernels' CPU
 * twins (CPU backend) and the classic greedy host NMS (`batchedNmsHost`, the
 * baseline), on 1,000 and 5,000 clustered boxes of 20 classes, IoU 0.6.
 *
 * Run: `XDG_RUNTIME_DIR=/tmp/xdg deno bench --allow-read --allow-write --allow-env bench/nms_bench.ts`
 *
 * @module
 */

import type { Backend } from "../tensor/backend.ts";
import { cpu, hasGpu, webgpu } from "../tensor/device.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import { batchedNms, batchedNmsHost } from "../boxes/nms.ts";
import { uniform } from "./inputs.ts";

/** Detector-like candidates: boxes jittered around 50 objects in an 800 x 800 image. */
function candidates(n: number, seed: number) {
  const r = uniform(seed);
  const objects = Array.from({ length: 50 }, () => [r() * 700, r() * 700, 20 + r() * 100]);
  const boxes = new Float32Array(4 * n), scores = new Float32Array(n), classes = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const [x, y, s] = objects[Math.floor(r() * objects.length)];
    const x1 = x + (r() - 0.5) * s * 0.4, y1 = y + (r() - 0.5) * s * 0.4;
    boxes.set([x1, y1, x1 + s * (0.7 + 0.6 * r()), y1 + s * (0.7 + 0.6 * r())], 4 * i);
    scores[i] = r();
    classes[i] = Math.floor(r() * 20);
  }
  return { boxes, scores, classes };
}

const OPTIONS = { iouThreshold: 0.6 };
const gpu = (await hasGpu()) ? await webgpu() : null;

for (const n of [1000, 5000]) {
  const data = candidates(n, n);
  const upload = (backend: Backend): Tensor[] => [
    tensor(data.boxes, [n, 4], { backend }),
    tensor(data.scores, [n], { backend }),
    tensor(data.classes, [n], { backend }),
  ];
  const group = `batchedNms ${n} boxes`;
  Deno.bench(`greedy host NMS, ${n}`, { group, baseline: true }, () => {
    batchedNmsHost(data.boxes, data.scores, data.classes, OPTIONS);
  });
  const onCpu = upload(cpu());
  Deno.bench(`CPU backend (kernel twins), ${n}`, { group }, async () => {
    const { keep, count } = batchedNms(onCpu[0], onCpu[1], onCpu[2], OPTIONS);
    await cpu().sync();
    keep.dispose();
    count.dispose();
  });
  if (gpu) {
    const onGpu = upload(gpu);
    Deno.bench(`WebGPU, ${n}`, { group }, async () => {
      const { keep, count } = batchedNms(onGpu[0], onGpu[1], onGpu[2], OPTIONS);
      await gpu.sync();
      keep.dispose();
      count.dispose();
    });
    Deno.bench(`WebGPU, ${n}, maxOutput 100`, { group }, async () => {
      const { keep, count } = batchedNms(onGpu[0], onGpu[1], onGpu[2], {
        ...OPTIONS,
        maxOutput: 100,
      });
      await gpu.sync();
      keep.dispose();
      count.dispose();
    });
  }
}
