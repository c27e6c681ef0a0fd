import assert from "node:assert/strict";
import { Module } from "../../tensor/nn/module.ts";
import { AdamW } from "../../tensor/optim/adamw.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  type HostTensor,
  loadCheckpoint,
  loadSafetensors,
  saveCheckpoint,
  saveSafetensors,
} from "../../tensor/safetensors.ts";
import { type Tensor, tensor } from "../../tensor/tensor.ts";
import { CPU } from "./helpers.ts";

class Tiny extends Module {
  readonly w = this.registerParameter("w", tensor([1, 2, 3, 4, 5, 6], [2, 3], { backend: CPU }));
  readonly stats = this.registerBuffer(
    "stats",
    tensor([7, 8], [2], { backend: CPU, dtype: "i32" }),
  );
  forward(x: Tensor): Tensor {
    return x;
  }
}

/** A file written byte by byte: header `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`. */
function handWritten(): Uint8Array {
  const json = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const padded = json + " ".repeat((8 - (json.length % 8)) % 8);
  const bytes = new Uint8Array(8 + padded.length + 8);
  bytes[0] = padded.length; // little-endian u64, < 256
  for (let i = 0; i < padded.length; i++) bytes[8 + i] = padded.charCodeAt(i);
  // 1.5 = 0x3fc00000, -2 = 0xc0000000, little-endian
  bytes.set([0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0], 8 + padded.length);
  return bytes;
}

Deno.test("safetensors encoding", async (t) => {
  await t.step("a hand-written file decodes", () => {
    const file = decodeSafetensors(handWritten(), "hand");
    assert.deepEqual([...file.tensors.keys()], ["a"]);
    const a = file.tensors.get("a")!;
    assert.equal(a.dtype, "f32");
    assert.deepEqual(a.shape, [2]);
    assert.deepEqual(Array.from(a.data), [1.5, -2]);
    assert.deepEqual(file.metadata, {});
  });
  await t.step("encoding reproduces the hand-written bytes", () => {
    const bytes = encodeSafetensors({
      a: { dtype: "f32", shape: [2], data: new Float32Array([1.5, -2]) },
    });
    assert.deepEqual(Array.from(bytes), Array.from(handWritten()));
  });
  await t.step("round trip of every element type, padding and alignment", () => {
    const tensors: Record<string, HostTensor> = {
      f: { dtype: "f32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
      i: { dtype: "i32", shape: [3], data: new Int32Array([-1, 0, 7]) },
      u: { dtype: "u32", shape: [1], data: new Uint32Array([4294967295]) },
      d: { dtype: "f64", shape: [], data: new Float64Array([Math.PI]) },
      e: { dtype: "f32", shape: [0, 3], data: new Float32Array(0) },
    };
    const bytes = encodeSafetensors(tensors, { step: "12", seed: "3", config: "tiny" });
    const headerLength = new DataView(bytes.buffer).getUint32(0, true);
    assert.equal(headerLength % 8, 0);
    const file = decodeSafetensors(bytes);
    for (const [name, v] of Object.entries(tensors)) {
      const got = file.tensors.get(name)!;
      assert.equal(got.dtype, v.dtype, name);
      assert.deepEqual(got.shape, v.shape, name);
      assert.deepEqual(Array.from(got.data), Array.from(v.data), name);
    }
    assert.deepEqual(file.metadata, { step: "12", seed: "3", config: "tiny" });
    // The f64 tensor comes first, so its data is 8-byte aligned.
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
    assert.deepEqual(header.d.data_offsets, [0, 8]);
  });
  await t.step("corrupt and truncated files give clear errors", () => {
    const good = handWritten();
    assert.throws(
      () => decodeSafetensors(good.subarray(0, 5), "f.st"),
      /Cannot read safetensors "f.st": 5 bytes is too short/,
    );
    assert.throws(
      () => decodeSafetensors(good.subarray(0, 20), "f.st"),
      /header length 56 exceeds the 12 bytes after it/,
    );
    assert.throws(
      () => decodeSafetensors(good.subarray(0, good.length - 3), "f.st"),
      /tensor "a" data \[0, 8\) lies past the end of the 5 data bytes \(truncated file\?\)/,
    );
    const badJson = good.slice();
    badJson[9] = 0x7b; // '{{'
    assert.throws(() => decodeSafetensors(badJson), /the header is not valid JSON/);
    const encode = (header: unknown, data = 8) => {
      const json = new TextEncoder().encode(JSON.stringify(header));
      const out = new Uint8Array(8 + json.length + data);
      new DataView(out.buffer).setUint32(0, json.length, true);
      out.set(json, 8);
      return out;
    };
    assert.throws(
      () => decodeSafetensors(encode({ a: { dtype: "BF16", shape: [4], data_offsets: [0, 8] } })),
      /tensor "a" has unsupported dtype "BF16"/,
    );
    assert.throws(
      () => decodeSafetensors(encode({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } })),
      /tensor "a" has 8 bytes but shape \[3\] F32 needs 12/,
    );
    assert.throws(
      () => decodeSafetensors(encode({ a: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } })),
      /tensor "a" has an invalid shape/,
    );
    assert.throws(
      () => decodeSafetensors(encode({ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } })),
      /tensor "a" starts at byte 4, expected 0/,
    );
    assert.throws(
      () => decodeSafetensors(encode({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } })),
      /4 bytes after the last tensor/,
    );
    assert.throws(
      () => decodeSafetensors(encode({ __metadata__: { step: 3 } }, 0)),
      /metadata "step" is not a string/,
    );
    assert.throws(() => decodeSafetensors(encode([1, 2], 0)), /the header is not a JSON object/);
  });
});

Deno.test("safetensors files and checkpoints", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "brl_safetensors_" });
  try {
    await t.step("atomic save and load of device tensors", async () => {
      const path = `${dir}/a.safetensors`;
      await saveSafetensors(path, { x: tensor([1, 2, 3], [3], { backend: CPU }) }, { note: "hi" });
      const names = [];
      for await (const e of Deno.readDir(dir)) names.push(e.name);
      assert.deepEqual(names, ["a.safetensors"]);
      const file = await loadSafetensors(path);
      assert.deepEqual(Array.from(file.tensors.get("x")!.data), [1, 2, 3]);
      assert.equal(file.metadata.note, "hi");
    });
    await t.step("checkpoint with a module and an optimizer", async () => {
      const path = `${dir}/ckpt.safetensors`;
      const model = new Tiny();
      const opt = new AdamW(model.namedParameters(), { lr: 0.1 });
      model.w.grad = tensor([1, 1, 1, 1, 1, 1], [2, 3], { backend: CPU });
      opt.step();
      await saveCheckpoint(path, {
        model,
        optimizer: opt,
        metadata: { step: 1, seed: 7, config: "tiny" },
      });
      const other = new Tiny();
      const opt2 = new AdamW(other.namedParameters(), { lr: 0.1 });
      const meta = await loadCheckpoint(path, { model: other, optimizer: opt2 });
      assert.deepEqual(meta, { step: "1", seed: "7", config: "tiny", optimizer_step: "1" });
      assert.deepEqual(Array.from(await other.w.data()), Array.from(await model.w.data()));
      assert.deepEqual(Array.from(await other.stats.data()), [7, 8]);
      assert.equal(opt2.stepCount, 1);
      assert.deepEqual(
        Array.from(await opt2.stateDict().get("w.exp_avg")!.data()),
        Array.from(await opt.stateDict().get("w.exp_avg")!.data()),
      );
    });
    await t.step("loading validates names, shapes and types", async () => {
      const model = new Tiny();
      const path = `${dir}/bad.safetensors`;
      await saveSafetensors(path, {
        w: { dtype: "f32", shape: [3, 2], data: new Float32Array(6) },
        stats: { dtype: "i32", shape: [2], data: new Int32Array(2) },
      });
      await assert.rejects(
        () => loadCheckpoint(path, { model }),
        /loadStateDict: "w" has shape \[3, 2\] in the state but \[2, 3\] in the module/,
      );
      await saveSafetensors(path, {
        w: { dtype: "f32", shape: [2, 3], data: new Float32Array(6) },
      });
      await assert.rejects(
        () => loadCheckpoint(path, { model }),
        /loadStateDict: "stats" is missing from the state/,
      );
      await saveSafetensors(path, {
        w: { dtype: "f32", shape: [2, 3], data: new Float32Array(6) },
        stats: { dtype: "f32", shape: [2], data: new Float32Array(2) },
      });
      await assert.rejects(
        () => loadCheckpoint(path, { model }),
        /loadStateDict: "stats" is f32 in the state but i32 in the module/,
      );
      await saveSafetensors(path, {
        w: { dtype: "f32", shape: [2, 3], data: new Float32Array(6) },
        stats: { dtype: "i32", shape: [2], data: new Int32Array(2) },
        extra: { dtype: "f32", shape: [1], data: new Float32Array(1) },
      });
      await assert.rejects(
        () => loadCheckpoint(path, { model }),
        /loadStateDict: unexpected tensor "extra" in the state/,
      );
      // Nothing was changed by the failed loads.
      assert.deepEqual(Array.from(await model.w.data()), [1, 2, 3, 4, 5, 6]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a file written by the Python safetensors library loads", async () => {
  const file = await loadSafetensors(
    new URL("../fixtures/tensor/python_written.safetensors", import.meta.url).pathname,
  );
  assert.deepEqual(file.metadata, { step: "5", seed: "1", config: "py" });
  const a = file.tensors.get("a")!, b = file.tensors.get("b")!;
  assert.deepEqual(a.shape, [2, 3]);
  assert.deepEqual(Array.from(a.data), [0, 1, 2, 3, 4, 5]);
  assert.equal(b.dtype, "i32");
  assert.deepEqual(Array.from(b.data), [-3, 9]);
});
