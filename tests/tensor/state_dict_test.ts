import assert from "node:assert/strict";
import { readStateDict } from "../../tensor/state_dict.ts";
import { storedZip } from "../fuzz/mutators.ts";

const FIXTURES = new URL("../fixtures/torchvision/", import.meta.url);

interface Listing {
  models: { name: string; state_dict: { name: string; dtype: string; shape: number[] }[] }[];
}

/** Pickle bytes from a mix of opcode bytes and strings (written as latin-1 bytes). */
function pickle(...parts: (number | string)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === "number") out.push(p);
    else for (const c of p) out.push(c.charCodeAt(0));
  }
  return new Uint8Array(out);
}

/** BINUNICODE of an ASCII string. */
function str(s: string): string {
  return "X" + String.fromCharCode(s.length, 0, 0, 0) + s;
}

/** `OrderedDict(w=_rebuild_tensor_v2(storage(cls, "0", numel), 0, (numel,), (1,)))`. */
function tensorPickle(storage: string, numel: number): Uint8Array {
  return pickle(
    0x80,
    2,
    "ccollections\nOrderedDict\n",
    ")R(",
    str("w"),
    "ctorch._utils\n_rebuild_tensor_v2\n",
    "((",
    str("storage"),
    `ctorch\n${storage}\n`,
    str("0"),
    str("cpu"),
    "K",
    numel,
    "tQ",
    "K",
    0,
    "K",
    numel,
    0x85,
    "K",
    1,
    0x85,
    0x89,
    "ccollections\nOrderedDict\n)RtR",
    "u.",
  );
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

Deno.test("readStateDict", async (t) => {
  const listing = JSON.parse(
    await Deno.readTextFile(new URL("resnet_small.json", FIXTURES)),
  ) as Listing;

  for (const model of listing.models) {
    await t.step(
      `${model.name}: .pth and .safetensors hold the listed entries, equal`,
      async () => {
        const st = readStateDict(
          await Deno.readFile(new URL(`${model.name}.safetensors`, FIXTURES)),
          "st",
        );
        const pth = readStateDict(
          await Deno.readFile(new URL(`${model.name}.pth`, FIXTURES)),
          "pth",
        );
        assert.deepEqual([...pth.keys()], model.state_dict.map((e) => e.name));
        assert.deepEqual(new Set(st.keys()), new Set(pth.keys()));
        for (const e of model.state_dict) {
          const a = pth.get(e.name)!, b = st.get(e.name)!;
          assert.deepEqual(a.shape, e.shape, e.name);
          assert.deepEqual(b.shape, e.shape, e.name);
          assert.equal(a.stored, e.dtype);
          assert.equal(a.dtype, e.dtype === "F32" ? "f32" : "i64");
          assert.equal(b.dtype, a.dtype);
          assert.deepEqual(a.data, b.data, e.name);
          if (e.dtype === "I64") assert.deepEqual([...a.data], [1n]);
        }
      },
    );
  }

  await t.step("a hand-made archive with another folder name loads", () => {
    const bytes = storedZip([
      ["archive/data.pkl", tensorPickle("FloatStorage", 3)],
      ["archive/data/0", f32Bytes([1.5, -2, 3])],
    ]);
    const w = readStateDict(bytes).get("w")!;
    assert.deepEqual(w.shape, [3]);
    assert.deepEqual([...w.data], [1.5, -2, 3]);
  });

  await t.step("half and bfloat16 storages convert to f32", () => {
    const half = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3555]).buffer);
    const h = readStateDict(storedZip([
      ["m/data.pkl", tensorPickle("HalfStorage", 3)],
      ["m/data/0", half],
    ])).get("w")!;
    assert.equal(h.dtype, "f32");
    assert.deepEqual([...h.data], [1, -2, Math.fround(0.333251953125)]);
    const bf = new Uint8Array(new Uint16Array([0x3f80, 0xc040, 0x0000]).buffer);
    const b = readStateDict(storedZip([
      ["m/data.pkl", tensorPickle("BFloat16Storage", 3)],
      ["m/data/0", bf],
    ])).get("w")!;
    assert.deepEqual([...b.data], [1, -3, 0]);
  });

  await t.step("a pickle naming os.system is refused without running anything", () => {
    // os.system("touch pwned"), as `pickle.dumps` would write a malicious reduce.
    const evil = pickle(0x80, 2, "cos\nsystem\nq\0", str("touch pwned"), 0x85, "R.");
    const bytes = storedZip([["evil/data.pkl", evil], ["evil/version", pickle("3\n")]]);
    assert.throws(() => readStateDict(bytes, "evil.pth"), (e: Error) => {
      assert.match(e.message, /refusing the global "os\.system"/);
      assert.match(e.message, /evil\.pth/);
      return true;
    });
    // The same global after a valid prefix, via STACK_GLOBAL (protocol 4), is refused too.
    const stacked = pickle(0x80, 4, 0x8c, 5, "posix", 0x8c, 6, "system", 0x93, ".");
    assert.throws(
      () => readStateDict(storedZip([["a/data.pkl", stacked]])),
      /refusing the global "posix\.system"/,
    );
  });

  await t.step("a truncated archive is a named error", async () => {
    const bytes = await Deno.readFile(new URL("resnet_basic.pth", FIXTURES));
    assert.throws(
      () => readStateDict(bytes.subarray(0, bytes.length - 1000), "cut.pth"),
      /Cannot read PyTorch file "cut\.pth": .*truncated/,
    );
    assert.throws(
      () => readStateDict(bytes.subarray(0, 100000), "cut.pth"),
      /truncated/,
    );
  });

  await t.step("a storage shorter than its tensor names the tensor", () => {
    const bytes = storedZip([
      ["m/data.pkl", tensorPickle("FloatStorage", 4)],
      ["m/data/0", f32Bytes([1, 2, 3])],
    ]);
    assert.throws(
      () => readStateDict(bytes),
      /tensor "w" needs 16 bytes of storage "m\/data\/0", which has 12/,
    );
  });

  await t.step("an unknown dtype names the tensor", () => {
    const pth = storedZip([
      ["m/data.pkl", tensorPickle("ComplexFloatStorage", 1)],
      ["m/data/0", new Uint8Array(8)],
    ]);
    assert.throws(
      () => readStateDict(pth),
      /tensor "w" has unknown dtype \(torch\.ComplexFloatStorage\)/,
    );
    const header = new TextEncoder().encode(
      JSON.stringify({ z: { dtype: "C64", shape: [1], data_offsets: [0, 8] } }).padEnd(48, " "),
    );
    const st = new Uint8Array(8 + header.length + 8);
    new DataView(st.buffer).setUint32(0, header.length, true);
    st.set(header, 8);
    assert.throws(() => readStateDict(st), /tensor "z" has unsupported dtype "C64"/);
  });

  await t.step("the legacy format asks for a re-save", () => {
    assert.throws(() => readStateDict(pickle(0x80, 2, "\x8a\x0a")), /legacy.*re-save/);
  });
});
