/**
 * Reading other frameworks' state dicts: safetensors files (timm, Hugging
 * Face) and PyTorch `torch.save` zip archives (`<folder>/data.pkl` with
 * `<folder>/data/N` storages), through a restricted unpickler that knows
 * only what a state dict needs and never executes anything from the file.
 *
 * @module
 */

import { parseSafetensors } from "./safetensors.ts";

/** Element type of a state-dict entry on the host. */
export type StateDictDType = "f32" | "i32" | "i64";

/** One entry of a state dict, as `readStateDict` returns it. */
export interface StateDictEntry {
  /** `f32` (also for F16, BF16 and F64 in the file, converted), `i32` or `i64`. */
  readonly dtype: StateDictDType;
  /** Dimensions, outermost first (`[]` for a scalar). */
  readonly shape: readonly number[];
  /** Row-major elements. */
  readonly data: Float32Array<ArrayBuffer> | Int32Array<ArrayBuffer> | BigInt64Array<ArrayBuffer>;
  /** The element type in the file: `F32`, `F16`, `BF16`, `F64`, `I32` or `I64`. */
  readonly stored: string;
}

/** Bytes per element of the file dtypes a state dict may hold. */
const ELEMENT_SIZES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I32: 4, I64: 8 };

/** PyTorch storage classes and the file dtype they hold. */
const STORAGES: Record<string, string> = {
  FloatStorage: "F32",
  HalfStorage: "F16",
  BFloat16Storage: "BF16",
  DoubleStorage: "F64",
  IntStorage: "I32",
  LongStorage: "I64",
};

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * Converts `count` elements of `bytes` (file dtype `stored`, little-endian)
 * to an entry; `at(i)` is the storage element index of output element `i`.
 */
function convert(
  bytes: Uint8Array,
  stored: string,
  shape: readonly number[],
  count: number,
  at: (i: number) => number,
): StateDictEntry {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (stored) {
    case "F32": {
      const data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getFloat32(at(i) * 4, true);
      return { dtype: "f32", shape, data, stored };
    }
    case "F64": {
      const data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getFloat64(at(i) * 8, true);
      return { dtype: "f32", shape, data, stored };
    }
    case "F16": {
      const data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = halfToFloat(view.getUint16(at(i) * 2, true));
      return { dtype: "f32", shape, data, stored };
    }
    case "BF16": {
      const data = new Float32Array(count);
      const u = new Uint32Array(data.buffer);
      for (let i = 0; i < count; i++) u[i] = view.getUint16(at(i) * 2, true) << 16;
      return { dtype: "f32", shape, data, stored };
    }
    case "I32": {
      const data = new Int32Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getInt32(at(i) * 4, true);
      return { dtype: "i32", shape, data, stored };
    }
    case "I64": {
      const data = new BigInt64Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getBigInt64(at(i) * 8, true);
      return { dtype: "i64", shape, data, stored };
    }
  }
  throw new TypeError(`unknown dtype "${stored}"`);
}

function readSafetensorsState(bytes: Uint8Array, source: string): Map<string, StateDictEntry> {
  const out = new Map<string, StateDictEntry>();
  for (const e of parseSafetensors(bytes, ELEMENT_SIZES, source).entries) {
    const count = e.shape.reduce((a, b) => a * b, 1);
    out.set(e.name, convert(e.bytes, e.dtype, e.shape, count, (i) => i));
  }
  return out;
}

// ---------------------------------------------------------------- zip reader

interface ZipEntry {
  name: string;
  method: number;
  size: number;
  localOffset: number;
}

/** The stored (uncompressed) entries of a zip archive, by name. */
function readZip(bytes: Uint8Array, fail: (what: string) => never): Map<string, Uint8Array> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (view.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail("no end-of-central-directory record (truncated or not a zip archive)");
  let count = view.getUint16(eocd + 10, true);
  let cdSize = view.getUint32(eocd + 12, true);
  let cdOffset = view.getUint32(eocd + 16, true);
  if (
    (count === 0xffff || cdOffset === 0xffffffff || cdSize === 0xffffffff) && eocd >= 20 &&
    view.getUint32(eocd - 20, true) === 0x07064b50
  ) {
    const z64 = Number(view.getBigUint64(eocd - 12, true));
    if (z64 + 56 > bytes.length || view.getUint32(z64, true) !== 0x06064b50) {
      fail("a broken zip64 end-of-central-directory record");
    }
    count = Number(view.getBigUint64(z64 + 32, true));
    cdSize = Number(view.getBigUint64(z64 + 40, true));
    cdOffset = Number(view.getBigUint64(z64 + 48, true));
  }
  if (cdOffset + cdSize > bytes.length) fail("the central directory lies past the end (truncated)");
  const entries: ZipEntry[] = [];
  let at = cdOffset;
  const decoder = new TextDecoder();
  for (let n = 0; n < count; n++) {
    if (at + 46 > bytes.length || view.getUint32(at, true) !== 0x02014b50) {
      fail(`central directory entry ${n} is broken (truncated?)`);
    }
    const method = view.getUint16(at + 10, true);
    let size = view.getUint32(at + 20, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    let localOffset = view.getUint32(at + 42, true);
    const name = decoder.decode(bytes.subarray(at + 46, at + 46 + nameLength));
    // zip64 extra field: the 64-bit values, in order, of those that are 0xffffffff.
    let extra = at + 46 + nameLength;
    const extraEnd = extra + extraLength;
    if (extraEnd + commentLength > bytes.length) {
      fail(`central directory entry ${n} ("${name}") runs past the end (truncated?)`);
    }
    while (extra + 4 <= extraEnd) {
      const id = view.getUint16(extra, true);
      const len = view.getUint16(extra + 2, true);
      if (id === 0x0001) {
        let p = extra + 4;
        const u64 = () => {
          if (p + 8 > Math.min(extra + 4 + len, extraEnd)) {
            fail(`central directory entry ${n} ("${name}") has a short zip64 extra field`);
          }
          p += 8;
          return Number(view.getBigUint64(p - 8, true));
        };
        if (view.getUint32(at + 24, true) === 0xffffffff) u64(); // uncompressed size
        if (size === 0xffffffff) size = u64();
        if (localOffset === 0xffffffff) localOffset = u64();
      }
      extra += 4 + len;
    }
    entries.push({ name, method, size, localOffset });
    at = extraEnd + commentLength;
  }
  const files = new Map<string, Uint8Array>();
  for (const e of entries) {
    const h = e.localOffset;
    if (h + 30 > bytes.length || view.getUint32(h, true) !== 0x04034b50) {
      fail(`the local header of "${e.name}" is missing (truncated?)`);
    }
    if (e.method !== 0) {
      fail(`"${e.name}" is compressed (method ${e.method}); torch.save writes stored entries`);
    }
    const nameLength = view.getUint16(h + 26, true);
    const start = h + 30 + nameLength + view.getUint16(h + 28, true);
    if (start + e.size > bytes.length) {
      fail(`"${e.name}" lies past the end of the file (truncated)`);
    }
    const localName = decoder.decode(bytes.subarray(h + 30, h + 30 + nameLength));
    if (localName !== e.name) fail(`the local header of "${e.name}" names "${localName}"`);
    files.set(e.name, bytes.subarray(start, start + e.size));
  }
  return files;
}

// ------------------------------------------------------- restricted unpickler

class Global {
  constructor(readonly module: string, readonly name: string) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

class Tuple {
  constructor(readonly items: unknown[]) {}
}

class StorageRef {
  constructor(readonly stored: string, readonly cls: string, readonly key: string) {}
}

class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
  ) {}
}

const MARK = Symbol("mark");

function allowedGlobal(module: string, name: string): boolean {
  if (module === "collections" && name === "OrderedDict") return true;
  if (module === "torch._utils" && name === "_rebuild_tensor_v2") return true;
  return module === "torch" && /^[A-Za-z0-9]*Storage$/.test(name);
}

function intList(v: unknown, what: string, fail: (what: string) => never): number[] {
  if (!(v instanceof Tuple) || !v.items.every((x) => Number.isInteger(x))) {
    fail(`${what} is not a tuple of integers`);
  }
  return (v as Tuple).items as number[];
}

/**
 * Unpickles a state dict: dicts, lists, tuples, strings, numbers, and only
 * the globals {@linkcode allowedGlobal} names; any other global is refused
 * before anything is built from it.
 */
function unpickle(p: Uint8Array, fail: (what: string) => never): unknown {
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  let i = 0;
  const need = (n: number) => {
    if (i + n > p.length) fail(`the pickle ends inside an opcode at byte ${i}`);
  };
  const u8 = () => (need(1), p[i++]);
  const u16 = () => (need(2), i += 2, view.getUint16(i - 2, true));
  const u32 = () => (need(4), i += 4, view.getUint32(i - 4, true));
  const decode = (start: number, end: number) => {
    try {
      return utf8.decode(p.subarray(start, end));
    } catch {
      return fail(`a string that is not valid UTF-8 at byte ${start}`);
    }
  };
  const text = (n: number) => (need(n), i += n, decode(i - n, i));
  const line = () => {
    const end = p.indexOf(0x0a, i);
    if (end < 0) fail("the pickle ends inside a GLOBAL");
    const s = decode(i, end);
    i = end + 1;
    return s;
  };
  const pop = () => {
    if (stack.length === 0) fail(`the pickle pops an empty stack at byte ${i}`);
    const v = stack.pop();
    if (v === MARK) fail(`the pickle pops a MARK at byte ${i}`);
    return v;
  };
  const popMark = () => {
    const at = stack.lastIndexOf(MARK);
    if (at < 0) fail(`no MARK on the stack at byte ${i}`);
    const items = stack.splice(at);
    items.shift();
    return items;
  };
  const top = () => {
    const v = stack[stack.length - 1];
    if (stack.length === 0 || v === MARK) fail(`nothing on the stack at byte ${i}`);
    return v;
  };
  const global = (module: string, name: string) => {
    if (!allowedGlobal(module, name)) {
      fail(
        `refusing the global "${module}.${name}": a state dict only needs ` +
          `collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage`,
      );
    }
    stack.push(new Global(module, name));
  };
  const setItem = (dict: unknown, k: unknown, v: unknown) => {
    if (!(dict instanceof Map)) fail(`SETITEM on something that is not a dict at byte ${i}`);
    (dict as Map<unknown, unknown>).set(k, v);
  };
  for (;;) {
    const at = i;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        need(8), i += 8;
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new Tuple([]));
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x4a: // BININT
        need(4), i += 4, stack.push(view.getInt32(i - 4, true));
        break;
      case 0x8a: { // LONG1
        const n = u8();
        need(n);
        let v = 0n;
        for (let k = n - 1; k >= 0; k--) v = (v << 8n) | BigInt(p[i + k]);
        if (n > 0 && p[i + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        i += n;
        stack.push(Number.isSafeInteger(Number(v)) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8), i += 8, stack.push(view.getFloat64(i - 8, false));
        break;
      case 0x58: // BINUNICODE
        stack.push(text(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(u8()));
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: { // LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) fail(`the pickle reads memo ${k}, never stored (byte ${at})`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: { // GLOBAL
        const module = line();
        global(module, line());
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof module !== "string" || typeof name !== "string") {
          fail(`STACK_GLOBAL of non-strings at byte ${at}`);
        }
        global(module as string, name as string);
        break;
      }
      case 0x74: // TUPLE
        stack.push(new Tuple(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(new Tuple([pop()]));
        break;
      case 0x86: { // TUPLE2
        const b = pop(), a = pop();
        stack.push(new Tuple([a, b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop(), b = pop(), a = pop();
        stack.push(new Tuple([a, b, c]));
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list)) fail(`APPEND to something that is not a list at byte ${at}`);
        (list as unknown[]).push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) fail(`APPENDS to something that is not a list at byte ${at}`);
        for (const v of items) (list as unknown[]).push(v); // no spread: items may be many
        break;
      }
      case 0x73: { // SETITEM
        const v = pop(), k = pop();
        setItem(top(), k, v);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        const dict = top();
        for (let k = 0; k + 1 < items.length; k += 2) setItem(dict, items[k], items[k + 1]);
        break;
      }
      case 0x30: // POP
        pop();
        break;
      case 0x51: { // BINPERSID
        const pid = pop();
        const items = pid instanceof Tuple ? pid.items : [];
        const [tag, cls, key] = items;
        if (tag !== "storage" || !(cls instanceof Global) || typeof key !== "string") {
          fail(`an unknown persistent id at byte ${at} (expected ('storage', class, key, ...))`);
        }
        const g = cls as Global;
        stack.push(new StorageRef(STORAGES[g.name] ?? g.qualified, g.qualified, key as string));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop(), fn = pop();
        if (!(fn instanceof Global) || !(args instanceof Tuple)) {
          fail(`REDUCE of something other than an allowed global at byte ${at}`);
        }
        const g = fn as Global, a = (args as Tuple).items;
        if (g.qualified === "collections.OrderedDict") {
          if (a.length !== 0) fail("OrderedDict called with arguments");
          stack.push(new Map());
        } else if (g.qualified === "torch._utils._rebuild_tensor_v2") {
          const [storage, offset, size, stride] = a;
          if (!(storage instanceof StorageRef) || !Number.isInteger(offset)) {
            fail(`_rebuild_tensor_v2 without a storage and an offset at byte ${at}`);
          }
          stack.push(
            new TensorRef(
              storage as StorageRef,
              offset as number,
              intList(size, "a tensor's size", fail),
              intList(stride, "a tensor's stride", fail),
            ),
          );
        } else {
          fail(`"${g.qualified}" cannot be called`);
        }
        break;
      }
      case 0x62: { // BUILD: an OrderedDict's _metadata, ignored
        pop();
        if (!(top() instanceof Map)) fail(`BUILD on something that is not a dict at byte ${at}`);
        break;
      }
      default:
        fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, "0")} at byte ${at}`);
    }
  }
}

function readTorchZip(bytes: Uint8Array, source: string): Map<string, StateDictEntry> {
  const fail = (what: string): never => {
    throw new SyntaxError(`Cannot read PyTorch file "${source}": ${what}`);
  };
  const files = readZip(bytes, fail);
  const pkl = [...files.keys()].filter((n) => n === "data.pkl" || /^[^/]+\/data\.pkl$/.test(n));
  if (pkl.length !== 1) {
    fail(`expected one <folder>/data.pkl entry, found ${pkl.length}: not a torch.save archive`);
  }
  const folder = pkl[0].slice(0, -"data.pkl".length);
  const root = unpickle(files.get(pkl[0])!, fail);
  if (!(root instanceof Map)) {
    fail("the pickle holds no dict (a whole model rather than a state dict?)");
  }
  const out = new Map<string, StateDictEntry>();
  for (const [name, value] of root as Map<unknown, unknown>) {
    if (typeof name !== "string") fail(`a key that is not a string: ${String(name)}`);
    if (!(value instanceof TensorRef)) fail(`"${name}" is not a tensor`);
    const t = value as TensorRef;
    const stored = t.storage.stored;
    const size = ELEMENT_SIZES[stored];
    if (size === undefined) fail(`tensor "${name}" has unknown dtype (${t.storage.cls})`);
    if (t.size.length !== t.stride.length) fail(`tensor "${name}": size and stride differ in rank`);
    const dims = `size [${t.size.join(", ")}]`;
    if ([t.offset, ...t.size, ...t.stride].some((d) => d < 0)) {
      fail(
        `tensor "${name}" has offset ${t.offset}, ${dims} and stride [${
          t.stride.join(", ")
        }]: a negative value`,
      );
    }
    const entry = `${folder}data/${t.storage.key}`;
    const data = files.get(entry);
    if (!data) fail(`tensor "${name}": its storage "${entry}" is missing`);
    const count = t.size.reduce((a, b) => a * b, 1);
    let last = t.offset;
    for (let d = 0; d < t.size.length; d++) last += (t.size[d] - 1) * t.stride[d];
    const needed = count === 0 ? 0 : (last + 1) * size;
    if (needed > data!.length) {
      fail(
        `tensor "${name}" needs ${needed} bytes of storage "${entry}", which has ${
          data!.length
        } (a storage shorter than its tensor)`,
      );
    }
    if (count * size > data!.length) {
      // Only zero strides (an expanded view) get here; its elements would be read from fewer.
      fail(
        `tensor "${name}" has ${count} elements (${dims}), more than its storage "${entry}" ` +
          `holds (${data!.length} bytes): a zero stride is not supported`,
      );
    }
    const contiguous = t.stride.every((s, d) =>
      t.size[d] <= 1 || s === t.size.slice(d + 1).reduce((a, b) => a * b, 1)
    );
    const at = contiguous ? (k: number) => t.offset + k : (k: number) => {
      let pos = t.offset;
      for (let d = t.size.length - 1; d >= 0; d--) {
        pos += (k % t.size[d]) * t.stride[d];
        k = Math.floor(k / t.size[d]);
      }
      return pos;
    };
    out.set(name as string, convert(data!, stored, t.size, count, at));
  }
  return out;
}

/**
 * Reads a state dict from a safetensors file or a PyTorch `torch.save` zip
 * archive (detected from the bytes) and returns every entry by name, in file
 * order, the way `safetensors.torch.load` / `torch.load(weights_only=True)`
 * would: floating-point tensors as `f32` (F16, BF16 and F64 converted),
 * integers as `i32` / `i64`. The PyTorch reader unpickles only dicts,
 * tuples, strings, numbers, `collections.OrderedDict`,
 * `torch._utils._rebuild_tensor_v2` and storages; any other global is
 * refused with an error naming it, and nothing from the file is executed.
 *
 * @param bytes The file's contents.
 * @param source Names the file in errors.
 * @example
 * ```ts ignore
 * const state = readStateDict(await Deno.readFile("resnet50-0676ba61.pth"));
 * console.log(state.get("conv1.weight")!.shape); // [64, 3, 7, 7]
 * ```
 */
export function readStateDict(bytes: Uint8Array, source = "buffer"): Map<string, StateDictEntry> {
  // safetensors first: its header length may begin with the bytes of "PK" or a pickle's 0x80
  // (a 128-byte header does), but only its 9th byte is "{" (a zip's is its compression method).
  if (bytes.length >= 9 && bytes[8] === 0x7b) return readSafetensorsState(bytes, source);
  if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b) {
    return readTorchZip(bytes, source);
  }
  if (bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] <= 5) {
    throw new SyntaxError(
      `Cannot read PyTorch file "${source}": it is in the legacy (pre-1.6, non-zip) format; ` +
        `re-save it with torch.save(torch.load(path), new_path) in a recent PyTorch`,
    );
  }
  return readSafetensorsState(bytes, source);
}
