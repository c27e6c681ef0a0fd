import assert from "node:assert/strict";
import { ResNet, type ResNetConfig } from "../../detectors/backbones/resnet.ts";
import { loadPretrained, TORCHVISION_RESNET } from "../../engine/pretrained.ts";
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
