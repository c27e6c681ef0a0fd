import assert from "node:assert/strict";
import { join } from "node:path";
import ATSS_TINY_SHAPES from "../../configs/atss_tiny_shapes.ts";
import type { DetectorModelConfig } from "../../detectors/build.ts";
import { buildDetector, DETECTOR_KINDS } from "../../detectors/build.ts";
import { loadModel } from "../../engine/model_io.ts";
import { cpu } from "../../tensor/device.ts";
import { saveCheckpoint } from "../../tensor/safetensors.ts";

/** FNV-1a over strings or the bytes of each tensor, in order. */
function fnv(chunks: Iterable<Uint8Array>): string {
  let h = 0x811c9dc5;
  for (const bytes of chunks) for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16);
}

Deno.test("buildDetector: a missing or unknown kind is a clear error naming the known ones", () => {
  assert.deepEqual(DETECTOR_KINDS, [
    "atss",
    "paa",
    "faster_rcnn",
    "cascade_rcnn",
    "mask_rcnn",
    "co_detr",
  ]);
  const unknown = { ...ATSS_TINY_SHAPES.model, kind: "yolo" } as unknown as DetectorModelConfig;
  assert.throws(
    () => buildDetector(unknown, { seed: 0, backend: cpu() }),
    /unknown detector kind "yolo" \(known: atss, paa, faster_rcnn, cascade_rcnn, mask_rcnn, co_detr\)/,
  );
  const { kind: _, ...untagged } = ATSS_TINY_SHAPES.model;
  assert.throws(
    () => buildDetector(untagged as DetectorModelConfig, { seed: 0, backend: cpu() }),
    /no detector kind \(model\.kind\) \(known: atss, paa, faster_rcnn, cascade_rcnn, mask_rcnn, co_detr\)/,
  );
  assert.throws(
    () =>
      buildDetector({ ...ATSS_TINY_SHAPES.model, loss: "hinge" as "brs" }, {
        seed: 0,
        backend: cpu(),
      }),
    /unknown loss "hinge" \(expected brs, rs, bap, ap, focal\)/,
  );
});

Deno.test("buildDetector: ATSS gets the parameters (names and values) it had before the registry", async () => {
  // Fingerprints of `new Atss(config, { seed: 7 })` before detectors were built by composition.
  const expected = {
    brs: { count: 67, names: "d0480e06", values: "4ae351bb" },
    focal: { count: 69, names: "a0ec9df3", values: "ee6dfbfa" },
  };
  for (const loss of ["brs", "focal"] as const) {
    const model = buildDetector({ ...ATSS_TINY_SHAPES.model, loss }, { seed: 7, backend: cpu() });
    const params = model.namedParameters();
    const values = await Promise.all(params.map(async ([, p]) => await p.data()));
    const encoder = new TextEncoder();
    assert.deepEqual({
      count: params.length,
      names: fnv(params.map(([n]) => encoder.encode(n))),
      values: fnv(values.map((v) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength))),
    }, expected[loss]);
  }
});

Deno.test("loadModel: a checkpoint of another detector kind is refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = ATSS_TINY_SHAPES;
    const model = buildDetector(config.model, { seed: 0, backend: cpu() });
    const path = join(dir, "other_kind.safetensors");
    await saveCheckpoint(path, {
      model,
      metadata: { step: 0, seed: 0, config: config.name, detector: "faster_rcnn", loss: "brs" },
    });
    await assert.rejects(
      () => loadModel(path, cpu()),
      /holds a "faster_rcnn" detector, but config "atss_tiny_shapes" builds "atss"/,
    );
    // A checkpoint written before detector kinds (no `detector` entry) still loads.
    const old = join(dir, "old.safetensors");
    await saveCheckpoint(old, {
      model,
      metadata: { step: 0, seed: 0, config: config.name, loss: "brs" },
    });
    assert.equal((await loadModel(old, cpu())).model.config.kind, "atss");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
