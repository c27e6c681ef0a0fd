import assert from "node:assert/strict";
import { ResNet, type ResNetConfig } from "../../detectors/backbones/resnet.ts";
import { applyOverrides } from "../../engine/config.ts";
import {
  loadBackbonePretrained,
  loadPretrained,
  TORCHVISION_RESNET,
} from "../../engine/pretrained.ts";
import ATSS_R50_COCO from "../../configs/atss_r50_coco.ts";
import { Module } from "../../tensor/nn/module.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { Rng } from "../../tensor/rng.ts";
import { readStateDict } from "../../tensor/state_dict.ts";
import { CPU } from "../tensor/helpers.ts";

const FIXTURES = new URL("../fixtures/torchvision/", import.meta.url);

const BASIC: ResNetConfig = {
  block: "basic",
  layers: [1, 1, 1, 1],
  baseWidth: 64,
  stemKernel: 7,
  norm: "frozen_batch",
  frozenStages: 0,
};

Deno.test("loadPretrained", async (t) => {
  for (const ext of ["pth", "safetensors"]) {
    await t.step(`torchvision BasicBlock weights from .${ext} load by name`, async () => {
      const url = new URL(`resnet_basic.${ext}`, FIXTURES);
      const net = new ResNet(BASIC, new Rng(0), CPU);
      const report = await loadPretrained(net, url, { strict: false });
      // The fixture keeps the stem and the first two stages only.
      assert.ok(report.missing.length > 0);
      assert.ok(report.missing.every((n) => /^layer[34]\./.test(n)), report.missing.join());
      assert.deepEqual(report.unexpected, []);
      assert.deepEqual(report.mismatched, []);
      assert.ok(report.skipped.every((n) => n.endsWith(".num_batches_tracked")));
      assert.equal(report.skipped.length, 6);
      assert.equal(report.loaded.length + report.skipped.length, 36);
      assert.ok(report.loaded.includes("layer2.0.downsample_bn.running_var"));
      const file = readStateDict(await Deno.readFile(url));
      const own = net.stateDict();
      for (
        const name of [
          "conv1.weight",
          "bn1.running_mean",
          "layer1.0.conv2.weight",
          "layer2.0.downsample.0.weight",
          "layer2.0.downsample.1.running_var",
        ]
      ) {
        const live = await own.get(TORCHVISION_RESNET(name)!)!.data();
        assert.deepEqual(live, file.get(name)!.data, name);
      }
      net.dispose();
    });
  }

  await t.step("strict names the missing keys and loads nothing", async () => {
    const net = new ResNet(BASIC, new Rng(0), CPU);
    const before = await net.stateDict().get("conv1.weight")!.data();
    await assert.rejects(
      () => loadPretrained(net, new URL("resnet_basic.pth", FIXTURES)),
      /missing from the file: layer3\.0\.conv1\.weight/,
    );
    assert.deepEqual(await net.stateDict().get("conv1.weight")!.data(), before);
  });

  await t.step("a wrong shape is an error naming the key unless strict: false", async () => {
    const net = new ResNet({ ...BASIC, block: "bottleneck" }, new Rng(0), CPU);
    const url = new URL("resnet_bottleneck.safetensors", FIXTURES);
    await assert.rejects(
      () => loadPretrained(net, url),
      /"layer1\.0\.conv1\.weight" \(module "layer1\.0\.conv1\.weight"\) has shape \[16, 64, 1, 1\] in the file but \[64, 64, 1, 1\] in the module/,
    );
    const report = await loadPretrained(net, url, { strict: false });
    assert.ok(report.mismatched.some((m) => m.source === "layer1.0.conv2.weight"));
    assert.ok(report.loaded.includes("conv1.weight"));
  });

  await t.step("unexpected keys and a wrong format are named", async () => {
    const net = new ResNet(BASIC, new Rng(0), CPU);
    const url = new URL("resnet_basic.safetensors", FIXTURES);
    const report = await loadPretrained(net, url, {
      strict: false,
      map: (n) => n.endsWith("num_batches_tracked") ? null : `backbone.${n}`,
    });
    assert.equal(report.loaded.length, 0);
    assert.ok(report.unexpected.includes("conv1.weight"));
    await assert.rejects(
      () => loadPretrained(net, url, { format: "pytorch" }),
      /is not a pytorch file/,
    );
  });
});

/** A stand-in detector: its ResNet registered as `backbone`, beside a head. */
class WithBackbone extends Module {
  constructor(config: ResNetConfig) {
    super();
    this.registerModule("backbone", new ResNet(config, new Rng(0), CPU));
    this.registerModule("head", new ResNet({ ...config, layers: [1] }, new Rng(1), CPU));
  }
  forward(x: Tensor): Tensor {
    return x;
  }
}

Deno.test("loadBackbonePretrained (backbone.pretrained)", async (t) => {
  const path = new URL("resnet_basic.safetensors", FIXTURES).pathname;
  await t.step("loads every backbone tensor and leaves the rest", async () => {
    const model = new WithBackbone({ ...BASIC, layers: [1, 1] });
    const headBefore = await model.stateDict().get("head.conv1.weight")!.data();
    const report = await loadBackbonePretrained(model, path);
    assert.ok(report.loaded.includes("backbone.layer2.0.downsample_bn.running_var"));
    assert.ok(report.missing.every((n) => n.startsWith("head.")));
    const file = readStateDict(await Deno.readFile(path));
    assert.deepEqual(
      await model.stateDict().get("backbone.conv1.weight")!.data(),
      file.get("conv1.weight")!.data,
    );
    assert.deepEqual(await model.stateDict().get("head.conv1.weight")!.data(), headBefore);
    model.dispose();
  });
  await t.step("a backbone the file does not cover is an error naming the keys", async () => {
    const model = new WithBackbone(BASIC);
    await assert.rejects(
      () => loadBackbonePretrained(model, path),
      /does not fit the config's backbone: missing from the file: backbone\.layer3\.0\.conv1\.weight/,
    );
    model.dispose();
  });
  await t.step("a missing file names where torchvision's weights come from", async () => {
    const model = new WithBackbone({ ...BASIC, layers: [1, 1] });
    await assert.rejects(
      () => loadBackbonePretrained(model, "no/such/resnet50-0676ba61.pth"),
      (e: Error) =>
        e instanceof Deno.errors.NotFound &&
        e.message.includes("https://download.pytorch.org/models/resnet50-0676ba61.pth") &&
        e.message.includes("--pretrained FILE"),
    );
    model.dispose();
  });
  await t.step("the r50 COCO config points at it and --pretrained overrides it", () => {
    assert.equal(
      ATSS_R50_COCO.model.backbone.pretrained,
      "data/pretrained/resnet50-0676ba61.pth",
    );
    const config = applyOverrides(ATSS_R50_COCO, { pretrained: "mine.safetensors" });
    assert.equal(config.model.backbone.pretrained, "mine.safetensors");
    assert.equal(ATSS_R50_COCO.model.backbone.pretrained, "data/pretrained/resnet50-0676ba61.pth");
  });
});
