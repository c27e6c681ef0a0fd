/**
 * Fuzzing the safetensors readers: `decodeSafetensors` / `loadSafetensors`
 * (`tensor/safetensors.ts`, F32 I32 U32 F64) and `readStateDict` (`tensor/state_dict.ts`, F32
 * F16 BF16 F64 I32 I64), on the Python-written fixture, a file of this module's encoder (F64, U32,
 * a scalar, an empty tensor) and a state-dict file (F16, BF16, I64) whose header length starts
 * with the bytes of a pickle's PROTO opcode (0x80, then a protocol <= 5: a 384-byte header).
 *
 * What must happen (errors are SyntaxError `Cannot read safetensors "SRC": ` + the exact text):
 * - truncated → `N bytes is too short for the 8-byte header length`, `header length H exceeds the
 *   N bytes after it`, or `tensor "T" data [B, E) lies past the end of the N data bytes
 *   (truncated file?)` for the first tensor in the header that is cut.
 * - the header length changed → `exceeds`, `the header is not valid JSON (…)`, or, when the
 *   shorter header still parses (trailing spaces dropped), the data-layout error that follows.
 * - a header field changed (re-encoded, valid JSON) → the first rule it breaks, in header order:
 *   `the header is not a JSON object`, `__metadata__ is not an object`, `metadata "K" is not a
 *   string`, `tensor "T" has no description`, `has unsupported dtype D`, `has an invalid shape
 *   S`, `has invalid data_offsets O`, `has N bytes but shape [S] D needs M`, `lies past the end`,
 *   `starts at byte B, expected C (overlap or gap)`, `N bytes after the last tensor are
 *   unaccounted for`. A change that keeps every rule (a same-size dtype, a reshape with the same
 *   element count, an extra key, a metadata string) → accepted, reading the same bytes.
 * - a dtype the reader does not take (F16 for decodeSafetensors, U32 for readStateDict) →
 *   `tensor "T" has unsupported dtype "D"`.
 * - bytes of the header text changed (same length) → as JSON.parse and the rules above decide;
 *   a byte that is not UTF-8 → `the header is not valid JSON (...)`.
 * - bytes of the tensor data changed → accepted: a file carries no checksum; the tensors hold
 *   the changed bytes.
 * - `loadSafetensors` on a cut file → the error names the path.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { decodeSafetensors, encodeSafetensors, loadSafetensors } from "../../tensor/safetensors.ts";
import { readStateDict } from "../../tensor/state_dict.ts";
import {
  between,
  clone,
  concat,
  expectError,
  expectValue,
  flipBytes,
  json,
  JUNK,
  otherByte,
  pick,
  Rng,
  safetensorsHeader,
  Tally,
  withHeaderText,
} from "./mutators.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const tally = new Tally("safetensors");

interface Reader {
  name: string;
  sizes: Record<string, number>;
  read: (bytes: Uint8Array, source: string) => Map<string, { shape: readonly number[] }>;
}

const READERS: Reader[] = [
  {
    name: "decodeSafetensors",
    sizes: { F32: 4, I32: 4, U32: 4, F64: 8 },
    read: (bytes, source) => decodeSafetensors(bytes, source).tensors,
  },
  {
    name: "readStateDict",
    sizes: { F32: 4, F16: 2, BF16: 2, F64: 8, I32: 4, I64: 8 },
    read: (bytes, source) => readStateDict(bytes, source),
  },
];

/** A safetensors file from raw tensors and metadata (header space-padded to 8 bytes). */
function build(
  tensors: [string, string, number[], Uint8Array][],
  metadata: Record<string, string>,
): Uint8Array {
  const header: Json = { __metadata__: metadata };
  let at = 0;
  for (const [name, dtype, shape, data] of tensors) {
    header[name] = { dtype, shape, data_offsets: [at, at + data.length] };
    at += data.length;
  }
  const empty = concat(new Uint8Array([2, 0, 0, 0, 0, 0, 0, 0]), new TextEncoder().encode("{}"));
  return concat(withHeaderText(empty, JSON.stringify(header)), ...tensors.map((t) => t[3]));
}

/** Bytes 0x80, <= 5: what readStateDict took for a legacy pickle (header length 128, 384, ...). */
const looksLikePickle = (b: Uint8Array) => b[0] === 0x80 && b[1] <= 5;

async function fixtures(): Promise<[string, Uint8Array][]> {
  const python = await Deno.readFile(
    new URL("../fixtures/tensor/python_written.safetensors", import.meta.url),
  );
  const encoded = encodeSafetensors({
    w64: { dtype: "f64", shape: [3], data: new Float64Array([1.5, -2, 1e300]) },
    u: { dtype: "u32", shape: [2, 2], data: new Uint32Array([1, 2, 3, 4294967295]) },
    s: { dtype: "f32", shape: [], data: new Float32Array([7]) },
    empty: { dtype: "f32", shape: [0, 3], data: new Float32Array(0) },
  }, { step: "3" });
  const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  let stateDict: Uint8Array = new Uint8Array(0);
  for (let pad = 0; pad < 400; pad++) {
    stateDict = build([
      ["h", "F16", [4], bytes(new Uint16Array([0x3c00, 0xc000, 0x3555, 0x7bff]))],
      ["b", "BF16", [2], bytes(new Uint16Array([0x3f80, 0xc040]))],
      ["i", "I64", [3], bytes(new BigInt64Array([1n, -2n, 3n]))],
    ], { pad: "x".repeat(pad) });
    if (looksLikePickle(stateDict)) break;
  }
  assert.ok(looksLikePickle(stateDict), "a header length that starts like a pickle");
  return [["python_written.safetensors", python], ["encoded.safetensors", encoded], [
    "state_dict.safetensors",
    stateDict,
  ]];
}

const headerOf = (bytes: Uint8Array) =>
  safetensorsHeader(bytes) as { header: Json; length: number };
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The safetensors rules, in the order a reader applies them: the error a header (already
 * parsed) and `dataLength` bytes of data give, or null when they are valid.
 */
function verdict(
  header: unknown,
  dataLength: number,
  sizes: Record<string, number>,
): string | null {
  if (!isObj(header)) return "the header is not a JSON object";
  const spans: [number, number, string][] = [];
  for (const [name, e] of Object.entries(header as Json)) {
    if (name === "__metadata__") {
      if (!isObj(e)) return "__metadata__ is not an object";
      for (const [k, v] of Object.entries(e)) {
        if (typeof v !== "string") return `metadata "${k}" is not a string`;
      }
      continue;
    }
    if (!isObj(e)) return `tensor "${name}" has no description`;
    const { dtype, shape, data_offsets: offsets } = e;
    if (typeof dtype !== "string" || !Object.hasOwn(sizes, dtype)) {
      return `tensor "${name}" has unsupported dtype ${json(dtype) ?? "(none)"}`;
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      return `tensor "${name}" has an invalid shape ${json(shape)}`;
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((d) => Number.isInteger(d) && d >= 0) || offsets[0] > offsets[1]
    ) return `tensor "${name}" has invalid data_offsets ${json(offsets)}`;
    const [b, end] = offsets;
    const need = shape.reduce((a: number, x: number) => a * x, 1) * sizes[dtype];
    if (end - b !== need) {
      return `tensor "${name}" has ${end - b} bytes but shape [${
        shape.join(", ")
      }] ${dtype} needs ${need}`;
    }
    if (end > dataLength) {
      return `tensor "${name}" data [${b}, ${end}) lies past the end of the ${dataLength} data bytes (truncated file?)`;
    }
    spans.push([b, end, name]);
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let covered = 0;
  for (const [b, end, name] of spans) {
    if (b !== covered) {
      return `tensor "${name}" starts at byte ${b}, expected ${covered} (overlap or gap)`;
    }
    covered = end;
  }
  return covered === dataLength
    ? null
    : `${dataLength - covered} bytes after the last tensor are unaccounted for`;
}

/** The error (or null) of whole file bytes, as a reader sees them. */
function fileVerdict(bytes: Uint8Array, reader: Reader): string | null {
  if (bytes.length < 8) return `${bytes.length} bytes is too short for the 8-byte header length`;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  if (8 + h > bytes.length) {
    return `header length ${h} exceeds the ${bytes.length - 8} bytes after it`;
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + h)));
  } catch (e) {
    return `the header is not valid JSON (${(e as Error).message})`;
  }
  return verdict(header, bytes.length - 8 - h, reader.sizes);
}

/** Runs one case: the reader must throw exactly the verdict, or accept and read the same bytes. */
async function check(cls: string, what: string, bytes: Uint8Array, reader: Reader) {
  const src = `${what} (${reader.name})`;
  let why = fileVerdict(bytes, reader);
  if (reader.name === "readStateDict" && bytes[8] !== 0x7b) {
    // not safetensors by its bytes: readStateDict tries the other formats it knows
    if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b) why = "zip";
    else if (bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] <= 5) why = "legacy";
  }
  if (why === "zip" || why === "legacy") {
    const pytorch = why === "zip"
      ? "no end-of-central-directory record (truncated or not a zip archive)"
      : "it is in the legacy (pre-1.6, non-zip) format; re-save it with " +
        "torch.save(torch.load(path), new_path) in a recent PyTorch";
    await expectError(
      src,
      () => reader.read(bytes, src),
      SyntaxError,
      `Cannot read PyTorch file "${src}": ${pytorch}`,
    );
  } else if (why !== null) {
    await expectError(
      src,
      () => reader.read(bytes, src),
      SyntaxError,
      `Cannot read safetensors "${src}": ${why}`,
    );
  } else {
    const tensors = await expectValue(src, () => reader.read(bytes, src));
    const { header, length } = headerOf(bytes);
    const names = Object.keys(header).filter((k) => k !== "__metadata__");
    assert.deepEqual([...tensors.keys()], names, `${src}: names`);
    for (const name of names) {
      const t = tensors.get(name)! as Json;
      const e = header[name];
      assert.deepEqual(t.shape, e.shape, `${src}: ${name} shape`);
      const raw = bytes.subarray(8 + length + e.data_offsets[0], 8 + length + e.data_offsets[1]);
      if (reader.name === "decodeSafetensors") {
        // a view of the file's bytes
        assert.deepEqual(
          new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
          raw,
          `${src}: ${name} bytes`,
        );
      } else if (e.dtype === "F32" || e.dtype === "I32" || e.dtype === "I64") {
        // elements read one by one (a NaN's payload may change: compare values)
        const Type = { F32: Float32Array, I32: Int32Array, I64: BigInt64Array }[e.dtype as "F32"];
        const want = [...new Type(raw.slice().buffer)];
        assert.deepEqual([...t.data], want, `${src}: ${name} values`);
      } else {assert.equal(
          t.data.length,
          raw.length / reader.sizes[e.dtype],
          `${src}: ${name} size`,
        );}
    }
  }
  tally.add(cls);
}

Deno.test("fuzz safetensors: truncation, header length and dtypes a reader does not take", async () => {
  for (const [file, good] of await fixtures()) {
    const { header, length: h } = headerOf(good);
    const dtypes = Object.entries(header).filter(([k]) => k !== "__metadata__").map(([, e]) =>
      (e as Json).dtype
    );
    for (const reader of READERS) {
      const rng = new Rng(file.length * 101 + reader.name.length);
      const foreign = dtypes.find((d) => !(d in reader.sizes));
      if (foreign) {
        await check("a dtype the reader does not take", `${file}`, good, reader);
        continue;
      }
      for (let i = 0; i < 10; i++) {
        const c = i < 2
          ? rng.int(8)
          : i < 4
          ? between(rng, 8, 8 + h)
          : between(rng, 8 + h, good.length);
        await check("truncated", `${file}[:${c}]`, good.slice(0, c), reader);
      }
      for (let i = 0; i < 8; i++) {
        const bytes = good.slice();
        const view = new DataView(bytes.buffer);
        const choice = i % 4;
        if (choice === 0) view.setUint32(0, h + 1 + rng.int(64), true);
        else if (choice === 1) view.setUint32(0, h - 1 - rng.int(Math.min(h - 1, 24)), true);
        else if (choice === 2) view.setUint32(0, rng.int(2 ** 32), true);
        else view.setUint32(4, 1 + rng.int(1000), true);
        await check("header length changed", `${file}#hlen${i}`, bytes, reader);
      }
    }
  }
});

Deno.test("fuzz safetensors: header fields", async () => {
  for (const [file, good] of await fixtures()) {
    for (const reader of READERS) {
      const { header } = headerOf(good);
      const names = Object.keys(header).filter((k) => k !== "__metadata__");
      if (names.some((n) => !(header[n].dtype in reader.sizes))) continue;
      const rng = new Rng(file.length * 7 + reader.name.length * 13);
      for (let i = 0; i < 26; i++) {
        const hd = clone(header);
        const name = pick(rng, names);
        const e = hd[name];
        const kind = i % 13;
        let cls: string;
        if (kind === 0) {
          hd[name] = pick(rng, JUNK.filter((j) => !isObj(j)));
          cls = "a tensor entry that is not an object";
        } else if (kind === 1) {
          e.dtype = pick(rng, [
            ...JUNK,
            "F8",
            "f32",
            "BOOL",
            "",
            ["F32"],
            "F16",
            "I64",
            "U32",
            "BF16",
          ]);
          cls = "dtype junk or another name";
        } else if (kind === 2) {
          delete e.dtype;
          cls = "dtype missing";
        } else if (kind === 3) {
          e.dtype = pick(rng, Object.keys(reader.sizes));
          cls = "dtype swapped for another the reader takes";
        } else if (kind === 4) {
          e.shape = clone(pick(rng, [...JUNK, [-1], [1.5], [2, "3"], [null]]));
          cls = "shape junk";
        } else if (kind === 5) {
          const count = e.shape.reduce((a: number, b: number) => a * b, 1);
          e.shape = pick(rng, [
            [count],
            [1, count],
            [count, 1, 1],
            [count + 1],
            [count * 2, 1],
            [],
          ]);
          cls = "shape changed (same or other element count)";
        } else if (kind === 6) {
          e.data_offsets = clone(
            pick(rng, [
              ...JUNK,
              [e.data_offsets[1], e.data_offsets[0] - 1],
              [0],
              [0, 1, 2],
              [-4, 0],
              ["0", "4"],
            ]),
          );
          cls = "data_offsets junk";
        } else if (kind === 7) {
          const k = pick(rng, [-8, -4, 4, 8, 1]);
          e.data_offsets = e.data_offsets.map((o: number) => Math.max(0, o + k));
          cls = "data_offsets shifted";
        } else if (kind === 8) {
          e.data_offsets = [e.data_offsets[0], e.data_offsets[1] + pick(rng, [-2, 2, 8, 1000])];
          cls = "data_offsets end moved";
        } else if (kind === 9) {
          if ("__metadata__" in hd && rng.int(2)) {
            hd.__metadata__[pick(rng, ["step", "seed", "x"])] = clone(pick(rng, [...JUNK, "ok"]));
          } else hd.__metadata__ = clone(pick(rng, [...JUNK, { a: "b" }]));
          cls = "__metadata__ changed";
        } else if (kind === 10) {
          e[pick(rng, ["extra", "dtype2", "offsets"])] = clone(pick(rng, JUNK));
          cls = "an extra key in a tensor entry (accepted)";
        } else if (kind === 11) {
          const top = pick(rng, [[], [1], "x", 5, null, true]);
          const bytes = withHeaderText(good, JSON.stringify(top));
          await check("the header not a JSON object", `${file}#top${i}`, bytes, reader);
          continue;
        } else {
          // a key written twice (JSON.parse keeps the last)
          const text = JSON.stringify(hd);
          const other = pick(rng, names.filter((n) => n !== name).concat(name));
          const dup = text.slice(0, -1) + `,${JSON.stringify(other)}:${JSON.stringify(hd[name])}}`;
          await check(
            "a tensor name written twice",
            `${file}#dup${i}`,
            withHeaderText(good, dup),
            reader,
          );
          continue;
        }
        await check(cls, `${file}#field${i}`, withHeaderText(good, JSON.stringify(hd)), reader);
      }
    }
  }
});

Deno.test("fuzz safetensors: header and data bytes changed, files on disk", async () => {
  const dir = await Deno.makeTempDir({ prefix: "brl_fuzz_safetensors_" });
  try {
    for (const [file, good] of await fixtures()) {
      const { header, length: h } = headerOf(good);
      for (const reader of READERS) {
        const names = Object.keys(header).filter((k) => k !== "__metadata__");
        if (names.some((n) => !(header[n].dtype in reader.sizes))) continue;
        const rng = new Rng(file.length * 3 + reader.name.length);
        for (let i = 0; i < 8; i++) {
          const bytes = i < 6
            ? flipBytes(rng, good, 1 + rng.int(3), 8, 8 + h)
            : withBytesAt(good, between(rng, 9, 8 + h), pick(rng, [0xff, 0xc0, 0x80]));
          await check(
            i < 6 ? "header text bytes changed" : "a byte that is not UTF-8 in the header",
            `${file}#hbyte${i}`,
            bytes,
            reader,
          );
        }
        if (good.length > 8 + h) {
          for (let i = 0; i < 4; i++) {
            const bytes = flipBytes(rng, good, 1 + rng.int(4), 8 + h, good.length);
            await check("tensor data bytes changed (accepted)", `${file}#data${i}`, bytes, reader);
          }
        }
      }
      const rng = new Rng(file.length);
      for (let i = 0; i < 3; i++) {
        const path = join(dir, `${i}.${file}`);
        const cut = good.slice(0, between(rng, 8 + h, good.length));
        await Deno.writeFile(path, cut);
        await expectError(
          path,
          () => loadSafetensors(path),
          SyntaxError,
          `Cannot read safetensors "${path}": ${fileVerdict(cut, READERS[0])}`,
        );
        tally.add("loadSafetensors on a file cut short");
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  tally.report();
});

function withBytesAt(good: Uint8Array, at: number, value: number): Uint8Array {
  const out = good.slice();
  out[at] = value === out[at] ? otherByte(new Rng(at), value) : value;
  return out;
}
