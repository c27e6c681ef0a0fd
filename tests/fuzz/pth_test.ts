/**
 * Fuzzing `readStateDict` (`tensor/state_dict.ts`) on PyTorch `torch.save` archives: a hand-made
 * archive (float, half, long and a transposed float tensor; a `version` entry) whose zip records
 * and pickle are mutated, and torchvision's `resnet_basic.pth` cut short.
 *
 * What must happen (errors are SyntaxError `Cannot read PyTorch file "SRC": ` + the exact text):
 * - cut short → `no end-of-central-directory record (truncated or not a zip archive)` (from 4
 *   bytes on; shorter ones are not a zip to the dispatcher: `Cannot read safetensors "SRC": N
 *   bytes is too short for the 8-byte header length`).
 * - end-of-central-directory fields: more entries than there are → `central directory entry N is
 *   broken (truncated?)`; fewer → the first thing missing (`expected one <folder>/data.pkl entry,
 *   found 0: …`, `tensor "T": its storage "E" is missing`); a directory offset or size past the
 *   end → `the central directory lies past the end (truncated)`; an offset inside it → `central
 *   directory entry 0 is broken (truncated?)`; a smaller directory size → accepted (the reader
 *   walks entries by count).
 * - a central entry: its signature → `central directory entry N is broken (truncated?)`; a name,
 *   extra or comment length past the end → `central directory entry N ("NAME") runs past the end
 *   (truncated?)`; a compression method → `"NAME" is compressed (method M); …`; a size past the
 *   end → `"NAME" lies past the end of the file (truncated)`; a short storage → `tensor "T" needs
 *   N bytes of storage "E", which has M (a storage shorter than its tensor)`; a zip64 extra field
 *   too short for its values → `… has a short zip64 extra field`; a local-header offset off a
 *   header → `the local header of "NAME" is missing (truncated?)`, onto another entry's header →
 *   `the local header of "NAME" names "OTHER"`.
 * - the pickle: a global renamed → `refusing the global "M.N": …`; an unknown storage class →
 *   `tensor "T" has unknown dtype (torch.XStorage)`; a negative offset, size or stride → `tensor
 *   "T" has offset O, size [S] and stride [D]: a negative value`; sizes past the storage →
 *   `needs N bytes`; a zero stride over more elements than stored → `has N elements (size [S]),
 *   more than its storage "E" holds (B bytes): a zero stride is not supported`; size and stride
 *   of different ranks → `size and stride differ in rank`; a key that is not a string, a value
 *   that is not a tensor, an unknown opcode, a string that is not UTF-8 → their errors; cut short →
 *   `the pickle ends inside an opcode at byte P` or `… inside a GLOBAL`; 300,000 items appended at
 *   once → no stack overflow: `the pickle holds no dict (…)`.
 * - a pre-1.6 (non-zip) pickle → `it is in the legacy (pre-1.6, non-zip) format; …`.
 * - tensor data bytes changed → accepted (the reader checks no CRC): the values of the new bytes.
 */

import assert from "node:assert/strict";
import { readStateDict } from "../../tensor/state_dict.ts";
import {
  between,
  binInt,
  binUnicode,
  concat,
  expectError,
  expectValue,
  flipBytes,
  otherByte,
  pick,
  pickleBytes,
  Rng,
  storedZip,
  Tally,
} from "./mutators.ts";

const tally = new Tally("pth");

interface TensorSpec {
  name: string;
  storage: string;
  key: string;
  numel: number;
  offset: number;
  size: number[];
  stride: number[];
}

const SPECS: TensorSpec[] = [
  { name: "w", storage: "FloatStorage", key: "0", numel: 3, offset: 0, size: [3], stride: [1] },
  { name: "h", storage: "HalfStorage", key: "1", numel: 2, offset: 0, size: [2], stride: [1] },
  { name: "n", storage: "LongStorage", key: "2", numel: 1, offset: 0, size: [], stride: [] },
  {
    name: "t",
    storage: "FloatStorage",
    key: "3",
    numel: 6,
    offset: 0,
    size: [2, 3],
    stride: [1, 2],
  },
];
const ELEMENT: Record<string, number> = { FloatStorage: 4, HalfStorage: 2, LongStorage: 8 };
const STORAGE_DATA: Record<string, Uint8Array> = {
  "0": new Uint8Array(new Float32Array([1.5, -2, 3]).buffer),
  "1": new Uint8Array(new Uint16Array([0x3c00, 0xc000]).buffer),
  "2": new Uint8Array(new BigInt64Array([7n]).buffer),
  "3": new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5]).buffer),
};

/** A state-dict pickle, as torch.save writes one (protocol 2), with where each name starts. */
function statePickle(
  specs: TensorSpec[],
  opts: { key?: (s: TensorSpec) => number[]; global?: string } = {},
): { bytes: Uint8Array; nameAt: number[] } {
  const parts: (number | number[] | string)[] = [
    0x80,
    2,
    opts.global ?? "ccollections\nOrderedDict\n",
    ")R(",
  ];
  const nameAt: number[] = [];
  let length = pickleBytes(...parts).length;
  for (const s of specs) {
    const key = opts.key ? opts.key(s) : binUnicode(s.name);
    nameAt.push(length + 5);
    const tensor = pickleBytes(
      key,
      "ctorch._utils\n_rebuild_tensor_v2\n((",
      binUnicode("storage"),
      `ctorch\n${s.storage}\n`,
      binUnicode(s.key),
      binUnicode("cpu"),
      binInt(s.numel),
      "tQ",
      binInt(s.offset),
      "(",
      s.size.flatMap(binInt),
      "t(",
      s.stride.flatMap(binInt),
      "t",
      0x89,
      "ccollections\nOrderedDict\n)RtR",
    );
    parts.push([...tensor]);
    length += tensor.length;
  }
  parts.push("u.");
  return { bytes: pickleBytes(...parts), nameAt };
}

function archive(pickle: Uint8Array, storages = STORAGE_DATA, folder = "m"): Uint8Array {
  return storedZip([
    [`${folder}/data.pkl`, pickle],
    ...Object.entries(storages).map(([k, v]) => [`${folder}/data/${k}`, v] as [string, Uint8Array]),
    [`${folder}/version`, new TextEncoder().encode("3\n")],
  ]);
}

const GOOD = archive(statePickle(SPECS).bytes);
const NAMES = ["m/data.pkl", ...Object.keys(STORAGE_DATA).map((k) => `m/data/${k}`), "m/version"];

/** Offsets of the zip records of `bytes` (as `storedZip` lays them out). */
function layout(bytes: Uint8Array) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const eocd = bytes.length - 22;
  const cdOffset = view.getUint32(eocd + 16, true);
  const count = view.getUint16(eocd + 10, true);
  const central: number[] = [];
  const local: number[] = [];
  for (let k = 0, at = cdOffset; k < count; k++) {
    central.push(at);
    local.push(view.getUint32(at + 42, true));
    at += 46 + view.getUint16(at + 28, true) + view.getUint16(at + 30, true) +
      view.getUint16(at + 32, true);
  }
  return { view, eocd, cdOffset, count, central, local };
}

const pytorch = (src: string, why: string) => `Cannot read PyTorch file "${src}": ${why}`;
const NO_EOCD = "no end-of-central-directory record (truncated or not a zip archive)";

async function rejected(cls: string, src: string, bytes: Uint8Array, why: string | RegExp) {
  await expectError(
    `${src}: ${cls}`,
    () => readStateDict(bytes, src),
    SyntaxError,
    typeof why === "string" ? pytorch(src, why) : why,
  );
  tally.add(cls);
}

async function accepted(
  cls: string,
  src: string,
  bytes: Uint8Array,
  check?: (m: ReturnType<typeof readStateDict>) => void,
) {
  const state = await expectValue(`${src}: ${cls}`, () => readStateDict(bytes, src));
  assert.deepEqual([...state.keys()], SPECS.map((s) => s.name), `${src}: names`);
  for (const s of SPECS) assert.deepEqual(state.get(s.name)!.shape, s.size, `${src}: ${s.name}`);
  check?.(state);
  tally.add(cls);
}

Deno.test("fuzz pth: cut short, and the end-of-central-directory record", async () => {
  const rng = new Rng(0x7a1);
  const real = await Deno.readFile(
    new URL("../fixtures/torchvision/resnet_basic.pth", import.meta.url),
  );
  for (
    const [file, good, n] of [["archive.pth", GOOD, 16], ["resnet_basic.pth", real, 6]] as const
  ) {
    for (let i = 0; i < n; i++) {
      const c = i === 0 ? between(rng, 0, 4) : between(rng, 4, good.length);
      const src = `${file}[:${c}]`;
      if (c < 4) {
        await expectError(
          src,
          () => readStateDict(good.slice(0, c), src),
          SyntaxError,
          `Cannot read safetensors "${src}": ${c} bytes is too short for the 8-byte header length`,
        );
        tally.add("cut short");
      } else await rejected("cut short", src, good.slice(0, c), NO_EOCD);
    }
  }
  const { eocd, count, cdOffset, central } = layout(GOOD);
  for (let i = 0; i < 16; i++) {
    const bytes = GOOD.slice();
    const view = new DataView(bytes.buffer);
    const src = `archive.pth#eocd${i}`;
    const kind = i % 4;
    if (kind === 0) {
      const more = count + 1 + rng.int(100);
      view.setUint16(eocd + 10, more, true);
      await rejected(
        "EOCD entry count too high",
        src,
        bytes,
        `central directory entry ${count} is broken (truncated?)`,
      );
    } else if (kind === 1) {
      const fewer = rng.int(count);
      view.setUint16(eocd + 10, fewer, true);
      const kept = new Set(NAMES.slice(0, fewer));
      const missing = SPECS.find((s) => !kept.has(`m/data/${s.key}`));
      const why = fewer === 0
        ? "expected one <folder>/data.pkl entry, found 0: not a torch.save archive"
        : missing
        ? `tensor "${missing.name}": its storage "m/data/${missing.key}" is missing`
        : null;
      if (why) await rejected("EOCD entry count too low", src, bytes, why);
      else await accepted("EOCD entry count too low (only the version entry lost)", src, bytes);
    } else if (kind === 2) {
      const cdSize = eocd - cdOffset;
      if (rng.int(2)) view.setUint32(eocd + 16, bytes.length - cdSize + 1 + rng.int(2 ** 31), true);
      else view.setUint32(eocd + 12, bytes.length - cdOffset + 1 + rng.int(2 ** 31), true);
      await rejected(
        "EOCD directory offset or size past the end",
        src,
        bytes,
        "the central directory lies past the end (truncated)",
      );
    } else {
      let off = between(rng, 1, cdOffset);
      while (central.includes(off) || view.getUint32(off, true) === 0x02014b50) {
        off = between(rng, 1, cdOffset);
      }
      view.setUint32(eocd + 16, off, true);
      view.setUint32(eocd + 12, rng.int(bytes.length - off), true);
      await rejected(
        "EOCD directory offset moved",
        src,
        bytes,
        "central directory entry 0 is broken (truncated?)",
      );
    }
  }
  for (let i = 0; i < 3; i++) {
    const bytes = GOOD.slice();
    new DataView(bytes.buffer).setUint32(eocd + 12, rng.int(eocd - cdOffset), true);
    await accepted("EOCD directory size smaller (accepted)", `archive.pth#cdsize${i}`, bytes);
  }
});

Deno.test("fuzz pth: central and local zip headers", async () => {
  const rng = new Rng(0x1ce);
  const { central, local } = layout(GOOD);
  const decoder = new TextDecoder();
  for (let i = 0; i < 36; i++) {
    const k = rng.int(NAMES.length);
    const name = NAMES[k];
    const at = central[k];
    const bytes = GOOD.slice();
    const view = new DataView(bytes.buffer);
    const src = `archive.pth#zip${i}`;
    const kind = i % 9;
    if (kind === 0) {
      const b = at + rng.int(4);
      bytes[b] = otherByte(rng, bytes[b]);
      await rejected(
        "central entry signature",
        src,
        bytes,
        `central directory entry ${k} is broken (truncated?)`,
      );
    } else if (kind === 1) {
      const field = pick(rng, [28, 30, 32]);
      view.setUint16(at + field, 60000 + rng.int(5536), true);
      const nameLength = view.getUint16(at + 28, true);
      const shown = decoder.decode(bytes.subarray(at + 46, at + 46 + nameLength));
      await rejected(
        "central entry name/extra/comment length past the end",
        src,
        bytes,
        `central directory entry ${k} ("${shown}") runs past the end (truncated?)`,
      );
    } else if (kind === 2) {
      const method = 1 + rng.int(20);
      view.setUint16(at + 10, method, true);
      await rejected(
        "central entry compression method",
        src,
        bytes,
        `"${name}" is compressed (method ${method}); torch.save writes stored entries`,
      );
    } else if (kind === 3) {
      view.setUint32(at + 20, bytes.length + rng.int(2 ** 31), true);
      await rejected(
        "central entry size past the end",
        src,
        bytes,
        `"${name}" lies past the end of the file (truncated)`,
      );
    } else if (kind === 4) {
      // a storage shorter than its tensor
      const s = pick(rng, SPECS);
      const j = NAMES.indexOf(`m/data/${s.key}`);
      const full = STORAGE_DATA[s.key].length;
      const short = rng.int(full);
      view.setUint32(central[j] + 20, short, true);
      const first = SPECS.find((x) => x.key === s.key)!;
      const needed = first.size.length === 0
        ? ELEMENT[first.storage]
        : (first.offset + first.size.reduce((a, d, q) => a + (d - 1) * first.stride[q], 0) + 1) *
          ELEMENT[first.storage];
      await rejected(
        "a storage entry shorter than its tensor",
        src,
        bytes,
        `tensor "${first.name}" needs ${needed} bytes of storage "m/data/${s.key}", which has ${short} (a storage shorter than its tensor)`,
      );
    } else if (kind === 5) {
      // the zip64 extra field: a size of 0xffffffff, its 64-bit value cut short
      const len = rng.int(8);
      const extra = new Uint8Array(4 + len);
      new DataView(extra.buffer).setUint16(0, 1, true);
      new DataView(extra.buffer).setUint16(2, len, true);
      const end = at + 46 + view.getUint16(at + 28, true);
      const rebuilt = concat(bytes.subarray(0, end), extra, bytes.subarray(end));
      const rv = new DataView(rebuilt.buffer);
      rv.setUint32(at + 20, 0xffffffff, true);
      rv.setUint16(at + 30, extra.length, true);
      await rejected(
        "zip64 extra field too short",
        src,
        rebuilt,
        `central directory entry ${k} ("${name}") has a short zip64 extra field`,
      );
    } else if (kind === 6) {
      let off = rng.int(GOOD.length);
      while (local.includes(off)) off = rng.int(GOOD.length);
      view.setUint32(at + 42, off, true);
      const why = off + 30 <= bytes.length && view.getUint32(off, true) === 0x04034b50
        ? null
        : `the local header of "${name}" is missing (truncated?)`;
      if (why === null) continue;
      await rejected("local-header offset off a header", src, bytes, why);
    } else if (kind === 7) {
      const j = (k + 1 + rng.int(NAMES.length - 1)) % NAMES.length;
      view.setUint32(at + 42, local[j], true);
      const fits = local[j] + 30 + NAMES[j].length + view.getUint32(at + 20, true) <= bytes.length;
      await rejected(
        "local-header offset onto another entry",
        src,
        bytes,
        fits
          ? `the local header of "${name}" names "${NAMES[j]}"`
          : `"${name}" lies past the end of the file (truncated)`,
      );
    } else {
      // (the first entry's "PK" is what tells a zip archive: keep it, see "not a zip" below)
      const b = local[k] + (k === 0 ? 2 + rng.int(2) : rng.int(4));
      bytes[b] = otherByte(rng, bytes[b]);
      await rejected(
        "local header signature",
        src,
        bytes,
        `the local header of "${name}" is missing (truncated?)`,
      );
    }
  }
  for (let i = 0; i < 3; i++) {
    // without "PK" up front, readStateDict reads the bytes as safetensors
    const bytes = GOOD.slice();
    bytes[i % 2] = otherByte(rng, bytes[i % 2], [0x80]);
    const view = new DataView(bytes.buffer);
    const h = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
    const src = `archive.pth#pk${i}`;
    await expectError(
      src,
      () => readStateDict(bytes, src),
      SyntaxError,
      `Cannot read safetensors "${src}": header length ${h} exceeds the ${
        bytes.length - 8
      } bytes after it`,
    );
    tally.add('the leading "PK" changed (not a zip: read as safetensors)');
  }
  for (let i = 0; i < 6; i++) {
    const s = pick(rng, SPECS.filter((x) => x.storage !== "HalfStorage"));
    const j = NAMES.indexOf(`m/data/${s.key}`);
    const { local: loc } = layout(GOOD);
    const start = loc[j] + 30 + NAMES[j].length;
    const bytes = flipBytes(rng, GOOD, 1 + rng.int(3), start, start + STORAGE_DATA[s.key].length);
    const stored = bytes.slice(start, start + STORAGE_DATA[s.key].length);
    await accepted(
      "tensor data bytes changed (accepted, no CRC check)",
      `archive.pth#data${i}`,
      bytes,
      (state) => {
        const got = state.get(s.name)!;
        const values = s.storage === "LongStorage"
          ? [...new BigInt64Array(stored.buffer)]
          : [...new Float32Array(stored.buffer)];
        const want = s.name === "t" ? [0, 2, 4, 1, 3, 5].map((q) => values[q]) : values;
        assert.deepEqual([...got.data], want, `archive.pth#data${i}: ${s.name}`);
      },
    );
  }
});

Deno.test("fuzz pth: the pickle", async () => {
  const rng = new Rng(0x91c);
  const withTensor = (k: number, change: Partial<TensorSpec>) =>
    SPECS.map((s, j) => (j === k ? { ...s, ...change } : s));
  for (let i = 0; i < 40; i++) {
    const src = `archive.pth#pkl${i}`;
    const kind = i % 10;
    const k = rng.int(SPECS.length);
    const s = SPECS[k];
    const dims = (x: TensorSpec) => `size [${x.size.join(", ")}]`;
    if (kind === 0) {
      const [module, name] = pick(rng, [
        ["os", "system"],
        ["builtins", "eval"],
        ["collections", "defaultdict"],
        ["torch", "load"],
        ["numpy.core.multiarray", "_reconstruct"],
      ]);
      await rejected(
        "a global the unpickler refuses",
        src,
        archive(statePickle(SPECS, { global: `c${module}\n${name}\n` }).bytes),
        `refusing the global "${module}.${name}": a state dict only needs collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage`,
      );
    } else if (kind === 1) {
      const storage = pick(rng, [
        "QInt8Storage",
        "ComplexFloatStorage",
        "BoolStorage",
        "Storage",
        "XStorage",
      ]);
      await rejected(
        "an unknown storage class",
        src,
        archive(statePickle(withTensor(k, { storage })).bytes),
        `tensor "${s.name}" has unknown dtype (torch.${storage})`,
      );
    } else if (kind === 2) {
      const spec = { ...s, size: [...s.size], stride: [...s.stride] };
      const which = s.size.length === 0 ? 0 : rng.int(3);
      if (which === 0) spec.offset = -1 - rng.int(10);
      else if (which === 1) spec.size[rng.int(spec.size.length)] = -1 - rng.int(10);
      else spec.stride[rng.int(spec.stride.length)] = -1 - rng.int(10);
      await rejected(
        "a negative offset, size or stride",
        src,
        archive(statePickle(withTensor(k, spec)).bytes),
        `tensor "${s.name}" has offset ${spec.offset}, ${dims(spec)} and stride [${
          spec.stride.join(", ")
        }]: a negative value`,
      );
    } else if (kind === 3) {
      // past the storage: bigger sizes, strides or offset (contiguous: needed = elements after the offset)
      const spec = {
        ...s,
        size: s.size.length ? [s.numel + 1 + rng.int(5)] : [],
        stride: s.size.length ? [1] : [],
        offset: s.size.length ? 0 : s.numel + rng.int(5),
      };
      const es = ELEMENT[s.storage];
      const needed = spec.size.length ? spec.size[0] * es : (spec.offset + 1) * es;
      await rejected(
        "sizes or offset past the storage",
        src,
        archive(statePickle(withTensor(k, spec)).bytes),
        `tensor "${s.name}" needs ${needed} bytes of storage "m/data/${s.key}", which has ${
          s.numel * es
        } (a storage shorter than its tensor)`,
      );
    } else if (kind === 4) {
      const big = [s.numel + 1 + rng.int(50), 1000 + rng.int(100000)];
      const spec = { ...s, size: big, stride: [0, 0] };
      const count = big[0] * big[1];
      await rejected(
        "a zero stride over more elements than stored",
        src,
        archive(statePickle(withTensor(k, spec)).bytes),
        `tensor "${s.name}" has ${count} elements (${
          dims(spec)
        }), more than its storage "m/data/${s.key}" holds (${
          s.numel * ELEMENT[s.storage]
        } bytes): a zero stride is not supported`,
      );
    } else if (kind === 5) {
      const spec = { ...s, stride: [...s.stride, 1] };
      await rejected(
        "size and stride of different ranks",
        src,
        archive(statePickle(withTensor(k, spec)).bytes),
        `tensor "${s.name}": size and stride differ in rank`,
      );
    } else if (kind === 6) {
      const v = rng.int(100);
      await rejected(
        "a key that is not a string",
        src,
        archive(
          statePickle(SPECS, { key: (x) => (x === s ? binInt(v) : binUnicode(x.name)) }).bytes,
        ),
        `a key that is not a string: ${v}`,
      );
    } else if (kind === 7) {
      // an invalid UTF-8 byte in a tensor's name
      const { bytes, nameAt } = statePickle(SPECS);
      const p = bytes.slice();
      p[nameAt[k]] = pick(rng, [0xff, 0xc0, 0x80, 0xfe]);
      await rejected(
        "a name that is not UTF-8",
        src,
        archive(p),
        `a string that is not valid UTF-8 at byte ${nameAt[k]}`,
      );
    } else if (kind === 8) {
      const handled = [
        0x80,
        0x95,
        0x2e,
        0x28,
        0x7d,
        0x5d,
        0x29,
        0x4e,
        0x88,
        0x89,
        0x4b,
        0x4d,
        0x4a,
        0x8a,
        0x47,
        0x58,
        0x8c,
        0x71,
        0x72,
        0x94,
        0x68,
        0x6a,
        0x63,
        0x93,
        0x74,
        0x85,
        0x86,
        0x87,
        0x61,
        0x65,
        0x73,
        0x75,
        0x30,
        0x51,
        0x52,
        0x62,
      ];
      let op = rng.int(256);
      while (handled.includes(op)) op = rng.int(256);
      const { bytes } = statePickle(SPECS);
      const p = concat(bytes.subarray(0, 2), new Uint8Array([op]), bytes.subarray(2));
      await rejected(
        "an unknown opcode",
        src,
        archive(p),
        `unsupported pickle opcode 0x${op.toString(16).padStart(2, "0")} at byte 2`,
      );
    } else {
      const { bytes } = statePickle(SPECS);
      const cut = 2 + rng.int(bytes.length - 2);
      await rejected(
        "the pickle cut short",
        src,
        archive(bytes.slice(0, cut)),
        new RegExp(
          `^${
            pytorch(src, "").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
          }the pickle ends inside (an opcode at byte \\d+|a GLOBAL)$`,
        ),
      );
    }
  }
  {
    const src = "archive.pth#value";
    const p = pickleBytes(
      0x80,
      2,
      "ccollections\nOrderedDict\n)R(",
      binUnicode("w"),
      binInt(5),
      "u.",
    );
    await rejected("a value that is not a tensor", src, archive(p), `"w" is not a tensor`);
  }
  {
    const src = "archive.pth#appends";
    const items = new Array(300000).fill([0x4b, 1]).flat();
    const p = pickleBytes(0x80, 2, 0x5d, 0x28, items, 0x65, 0x2e);
    await rejected(
      "300,000 items appended at once",
      src,
      archive(p),
      "the pickle holds no dict (a whole model rather than a state dict?)",
    );
  }
  for (let i = 0; i < 3; i++) {
    const src = `legacy${i}.pth`;
    const magic = [0x80, 2, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    const tail = Array.from({ length: rng.int(50) }, () => rng.int(256));
    await rejected(
      "a pre-1.6 (non-zip) pickle",
      src,
      new Uint8Array([...magic, ...tail]),
      "it is in the legacy (pre-1.6, non-zip) format; re-save it with torch.save(torch.load(path), new_path) in a recent PyTorch",
    );
  }
  tally.report();
});
