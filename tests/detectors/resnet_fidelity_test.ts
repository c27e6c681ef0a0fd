/**
 * torchvision fidelity: the fixture ResNets (stem + layer1 + layer2, random
 * weights, eval-mode BN) loaded from `.pth` and `.safetensors` reproduce the
 * stage outputs torchvision recorded, within 1e-4 of each output's scale, on
 * every backend here.
 */
import assert from "node:assert/strict";
import { ResNet, type ResNetConfig } from "../../detectors/backbones/resnet.ts";
import { loadPretrained } from "../../engine/pretrained.ts";
import type { Backend } from "../../tensor/backend.ts";
import { Rng } from "../../tensor/rng.ts";
import { readStateDict } from "../../tensor/state_dict.ts";
import { tensor } from "../../tensor/tensor.ts";
import { assertClose, CPU, GPU, gpuBackend, NATIVE, nativeBackend } from "../tensor/helpers.ts";

const FIXTURES = new URL("../fixtures/torchvision/", import.meta.url);
const STAGES = ["stem", "layer1", "layer2"] as const;
const REL = 1e-4;

interface Summary {
  shape: number[];
  channel_mean: { data: number[] };
  sample_position: { data: number[] };
  sample_value: { data: number[] };
  sum: number;
  max_abs_float64: number;
}

interface FixtureModel {
  name: string;
  outputs: Record<string, Summary>;
}

const META: { models: FixtureModel[] } = JSON.parse(
  await Deno.readTextFile(new URL("resnet_small.json", FIXTURES)),
);
const IO = readStateDict(await Deno.readFile(new URL("resnet_small_io.safetensors", FIXTURES)));

/** torchvision's `ResNet(block, [1, 1, 1, 1], width_per_group)` cut after layer2. */
const MODELS: Record<string, ResNetConfig> = {
  resnet_basic: {
    block: "basic",
    layers: [1, 1],
    baseWidth: 64,
    stemKernel: 7,
    norm: "frozen_batch",
    frozenStages: 0,
  },
  resnet_bottleneck: {
    block: "bottleneck",
    layers: [1, 1],
    baseWidth: 64,
    widthPerGroup: 16,
    stemKernel: 7,
    norm: "frozen_batch",
    frozenStages: 0,
  },
};

async function stageOutputs(
  name: string,
  ext: string,
  backend: Backend,
): Promise<{ shape: readonly number[]; data: Float32Array }[]> {
  const net = new ResNet(MODELS[name], new Rng(0), backend);
  const report = await loadPretrained(net, new URL(`${name}.${ext}`, FIXTURES));
  assert.deepEqual(report.missing, []);
  net.eval();
  const input = IO.get("input")!;
  const x = tensor(input.data as Float32Array, input.shape, { backend });
  const outs = net.forwardStages(x);
  const result = [];
  for (const o of outs) result.push({ shape: o.shape, data: (await o.data()) as Float32Array });
  for (const o of outs) o.dispose();
  x.dispose();
  net.dispose();
  return result;
}

function checkSummary(
  got: { shape: readonly number[]; data: Float32Array },
  want: Summary,
  what: string,
): void {
  assert.deepEqual([...got.shape], want.shape, what);
  const [n, c, h, w] = want.shape;
  const atol = REL * want.max_abs_float64;
  const means = new Float64Array(c);
  let sum = 0;
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < h * w; i++) means[ch] += got.data[(b * c + ch) * h * w + i];
    }
  }
  for (let ch = 0; ch < c; ch++) {
    sum += means[ch];
    means[ch] /= n * h * w;
  }
  assertClose(means, want.channel_mean.data, atol, REL, `${what} channel means`);
  assertClose([sum], [want.sum], REL * Math.abs(want.sum), 0, `${what} sum`);
  const pos = want.sample_position.data;
  const samples = want.sample_value.data.map((_, k) => {
    const [b, ch, y, x] = pos.slice(4 * k, 4 * k + 4);
    return got.data[((b * c + ch) * h + y) * w + x];
  });
  assertClose(samples, want.sample_value.data, atol, REL, `${what} samples`);
}

async function checkBackend(t: Deno.TestContext, backend: Backend): Promise<void> {
  for (const model of META.models) {
    for (const ext of ["safetensors", "pth"]) {
      await t.step(`${model.name}.${ext}`, async () => {
        const outs = await stageOutputs(model.name, ext, backend);
        STAGES.forEach((stage, s) => {
          const what = `${model.name}.${ext} ${stage}`;
          checkSummary(outs[s], model.outputs[stage], what);
          const full = IO.get(`${model.name.replace("resnet_", "")}.${stage}`);
          if (full) {
            const atol = REL * model.outputs[stage].max_abs_float64;
            assertClose(outs[s].data, full.data as Float32Array, atol, REL, `${what} (full)`);
          }
        });
      });
    }
  }
}

Deno.test("ResNet matches torchvision's stage outputs (cpu)", async (t) => {
  await checkBackend(t, CPU);
});

Deno.test({
  name: "ResNet matches torchvision's stage outputs (native)",
  ignore: !NATIVE,
  fn: async (t) => await checkBackend(t, nativeBackend()),
});

Deno.test({
  name: "ResNet matches torchvision's stage outputs (webgpu)",
  ignore: !GPU,
  fn: async (t) => await checkBackend(t, await gpuBackend()),
});

Deno.test("ResNet config: widthPerGroup and fewer stages", () => {
  const net = new ResNet(MODELS.resnet_bottleneck, new Rng(0), CPU);
  assert.deepEqual(net.outChannels, [512]);
  const shapes = new Map([...net.stateDict()].map(([k, v]) => [k, v.shape.join("x")]));
  assert.equal(shapes.get("layer1.0.conv1.weight"), "16x64x1x1");
  assert.equal(shapes.get("layer2.0.conv3.weight"), "512x32x1x1");
  assert.ok(![...shapes.keys()].some((k) => k.startsWith("layer3")));
  net.dispose();
  assert.throws(
    () => new ResNet({ ...MODELS.resnet_basic, layers: [1, 1, 1, 1, 1] }, new Rng(0), CPU),
    /layers must hold 1 to 4 positive block counts/,
  );
});
