/**
 * `deno bench` of the ranking-loss ops (forward + backward on the tensors' backend) at detector
 * sizes; each group pairs the WebGPU op with the CPU-backend op (baseline).
 *
 * Run: `deno bench -A bench/loss_bench.ts` (filter with `--filter "N=1e+5"`).
 *
 * @module
 */

import { apLoss, bucketedAp, bucketedRankSort, rankSort } from "../losses/ops/mod.ts";
import { backward } from "../tensor/autograd.ts";
import type { Backend } from "../tensor/backend.ts";
import { cpu, hasGpu, webgpu } from "../tensor/device.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import { detectorLikeInputs } from "./inputs.ts";

const GPU = await hasGpu();
const backends: Backend[] = [cpu()];
if (GPU) backends.push(await webgpu());

type Loss = "RS" | "BRS" | "AP" | "BAP";

function step(loss: Loss, s: Tensor, y: Tensor): void {
  let out: Tensor;
  if (loss === "RS" || loss === "BRS") {
    const r = (loss === "RS" ? rankSort : bucketedRankSort)(s, y);
    r.sortingLoss.dispose();
    out = r.rankingLoss;
  } else out = (loss === "AP" ? apLoss : bucketedAp)(s, y).loss;
  backward(out);
  out.dispose();
  s.grad?.dispose();
  s.grad = null;
}

for (const [n, p] of [[1e5, 100], [1e6, 1000]] as const) {
  for (const loss of ["RS", "BRS", "AP", "BAP"] as const) {
    const data = detectorLikeInputs(n, p, { binary: loss === "AP" || loss === "BAP" });
    for (const backend of backends) {
      const s = tensor(data.logits, [n], { backend, requiresGrad: true });
      const y = tensor(data.targets, [n], { backend });
      Deno.bench({
        name: `${loss} ${backend.name} N=${n.toExponential(0)} P=${p}`,
        group: `${loss} N=${n.toExponential(0)} P=${p}`,
        baseline: backend.name === "cpu",
        async fn() {
          step(loss, s, y);
          await backend.sync();
        },
      });
    }
  }
}
