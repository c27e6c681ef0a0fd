import assert from "node:assert/strict";
import { cpu } from "../../tensor/device.ts";
import {
  adapterProfile,
  HARDWARE_PATHS,
  hostProfile,
  preferredTiles,
  withProfile,
} from "../../tensor/device_profile.ts";
import { LOOP_BUDGET } from "../../tensor/kernel.ts";
import { tileBytes } from "../../tensor/ops/tiled_gemm.ts";
import { GPU, gpuBackend } from "./helpers.ts";

const LLVMPIPE = "llvmpipe (LLVM 15.0.6, 256 bits)";

Deno.test("adapterProfile() keeps llvmpipe on its own kernels and hardware on the tiled ones", () => {
  const mesa = adapterProfile({ description: LLVMPIPE });
  assert.equal(mesa.kind, "llvmpipe");
  assert.equal(mesa.software, true);
  assert.equal(mesa.loopBudget, LOOP_BUDGET);
  assert.equal(mesa.uniformWindows, true);
  assert.deepEqual([mesa.matmul, mesa.conv], ["blocked", "im2col"]);
  for (const p of [mesa, adapterProfile({ description: "Apple M2" }), hostProfile()]) {
    assert.deepEqual([p.matmulUniform, p.convDirect, p.convUniform], ["auto", "auto", "auto"]);
  }
  const swift = adapterProfile({ description: "SwiftShader Device (Subzero)" });
  assert.equal(swift.kind, "software");
  assert.deepEqual([swift.matmul, swift.conv, swift.uniformWindows], ["blocked", "im2col", false]);
  const fallback = adapterProfile({ description: "NVIDIA H100", isFallbackAdapter: true });
  assert.equal(fallback.kind, "software");
  const gpu = adapterProfile({ description: "NVIDIA H100 80GB HBM3" });
  assert.equal(gpu.kind, "hardware");
  assert.equal(gpu.software, false);
  assert.ok(gpu.loopBudget > LOOP_BUDGET);
  assert.deepEqual([gpu.matmul, gpu.conv, gpu.uniformWindows], ["tiled", "implicit", false]);
  assert.equal(hostProfile().kind, "host");
  // Workgroup reductions on hardware only (barriers are slow where invocations are coroutines).
  assert.deepEqual(
    [mesa, swift, fallback, gpu, hostProfile()].map((p) => p.reductions),
    ["chunked", "chunked", "chunked", "workgroup", "chunked"],
  );
  assert.equal(HARDWARE_PATHS.reductions, "workgroup");
});

Deno.test("preferredTiles() fits the workgroup and its memory", async (t) => {
  await t.step("WebGPU's default limits: 64 x 64 blocks of 16 x 16 invocations", () => {
    const tiles = preferredTiles({
      maxComputeInvocationsPerWorkgroup: 256,
      maxComputeWorkgroupSizeX: 256,
      maxComputeWorkgroupStorageSize: 16384,
    });
    assert.deepEqual(tiles, { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 });
  });
  await t.step("64 invocations, 4 KiB: smaller blocks and inner steps", () => {
    const tiles = preferredTiles({
      maxComputeInvocationsPerWorkgroup: 128,
      maxComputeWorkgroupSizeX: 64,
      maxComputeWorkgroupStorageSize: 4096,
    });
    assert.deepEqual(tiles, { bm: 32, bn: 32, bk: 8, tm: 4, tn: 4 });
    const tight = preferredTiles({
      maxComputeInvocationsPerWorkgroup: 64,
      maxComputeWorkgroupSizeX: 64,
      maxComputeWorkgroupStorageSize: 1024,
    });
    assert.deepEqual(tight, { bm: 32, bn: 32, bk: 2, tm: 4, tn: 4 });
    assert.ok(tileBytes(tight) <= 1024 && tileBytes({ ...tight, bk: 4 }) > 1024);
  });
});

Deno.test("withProfile() overrides one backend and restores it", async (t) => {
  const backend = cpu();
  const before = backend.profile;
  await t.step("synchronous, and on a throw", () => {
    const seen = withProfile(backend, HARDWARE_PATHS, () => backend.profile.matmul);
    assert.equal(seen, "tiled");
    assert.equal(backend.profile, before);
    assert.throws(() =>
      withProfile(backend, { convColLimit: 7 }, () => {
        throw new Error("boom");
      }), /boom/);
    assert.equal(backend.profile, before);
  });
  await t.step("asynchronous: restored after the promise settles", async () => {
    const pending = withProfile(backend, { convDirect: "on" }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      return backend.profile.convDirect;
    });
    assert.equal(backend.profile.convDirect, "on");
    assert.equal(await pending, "on");
    assert.equal(backend.profile, before);
  });
  await t.step("bad overrides name the field", () => {
    assert.throws(
      () => withProfile(backend, { convDirect: "yes" as "on" }, () => 0),
      /Profile field "convDirect" "yes" is not auto, on or off/,
    );
    assert.throws(
      () => withProfile(backend, { reductions: "tree" as "workgroup" }, () => 0),
      /Profile field "reductions" "tree" is not chunked or workgroup/,
    );
    assert.throws(
      () => withProfile(backend, { convColLimit: 0 }, () => 0),
      /Profile field "convColLimit" 0 must be a positive integer/,
    );
    assert.throws(
      () => withProfile(backend, { tiles: { bm: 64, bn: 64, bk: 8, tm: 2, tn: 2 } }, () => 0),
      /at most 256 whole register blocks/,
    );
    assert.equal(backend.profile, before);
  });
});

Deno.test("each backend carries its adapter's profile", { ignore: !GPU }, async () => {
  assert.equal(cpu().profile.kind, "host");
  const gpu = await gpuBackend();
  assert.equal(gpu.profile.kind, adapterProfile({ description: gpu.description }).kind);
  assert.equal(gpu.profile.software, /llvmpipe|swiftshader|lavapipe/i.test(gpu.description));
});
