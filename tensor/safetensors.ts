/**
 * The safetensors checkpoint format: an 8-byte little-endian header length,
 * a JSON header (`{"name": {"dtype", "shape", "data_offsets"}, "__metadata__":
 * {...}}`) padded with spaces to a multiple of 8 bytes, then the tensors'
 * little-endian bytes back to back. Files written here load with PyTorch's
 * `safetensors.torch.load_file`; writes are atomic (a `.tmp` file renamed
 * over the target).
 *
 * @module
 */

import type { DType, TypedArray } from "./dtype.ts";
import { BYTES_PER_ELEMENT, viewAs } from "./dtype.ts";
import type { Tensor } from "./tensor.ts";

/** A tensor's elements on the host, as read from or written to a checkpoint. */
export interface HostTensor {
  /** Element type. */
  readonly dtype: DType;
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** Row-major elements. */
  readonly data: TypedArray;
}

/** A decoded safetensors file. */
export interface SafetensorsFile {
  /** The tensors by name, in file order. */
  readonly tensors: Map<string, HostTensor>;
  /** The `__metadata__` string map (empty when absent). */
  readonly metadata: Record<string, string>;
}

const TO_FILE: Record<DType, string> = { f32: "F32", i32: "I32", u32: "U32", f64: "F64" };
const FROM_FILE: Record<string, DType> = { F32: "f32", I32: "i32", U32: "u32", F64: "f64" };

function checkName(name: string): void {
  if (name === "__metadata__" || name.length === 0) {
    throw new TypeError(`Cannot save a tensor named "${name}"`);
  }
}

/**
 * Encodes tensors (and string metadata) as safetensors bytes. Tensors are
 * laid out by element size, then name, so that every tensor's data is
 * naturally aligned.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors(
 *   { w: { dtype: "f32", shape: [2], data: new Float32Array([1, 2]) } },
 *   { step: "10" },
 * );
 * const file = decodeSafetensors(bytes);
 * console.log(file.tensors.get("w")!.data, file.metadata); // Float32Array [1, 2] { step: "10" }
 * ```
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>,
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array<ArrayBuffer> {
  const entries: [string, HostTensor][] = tensors instanceof Map
    ? [...(tensors as ReadonlyMap<string, HostTensor>)]
    : Object.entries(tensors as Readonly<Record<string, HostTensor>>);
  entries.sort(([na, a], [nb, b]) =>
    BYTES_PER_ELEMENT[b.dtype] - BYTES_PER_ELEMENT[a.dtype] || (na < nb ? -1 : na > nb ? 1 : 0)
  );
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new TypeError(`Metadata "${k}" is not a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, t] of entries) {
    checkName(name);
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (size !== t.data.length) {
      throw new TypeError(
        `Tensor "${name}": ${t.data.length} values do not fill shape [${t.shape.join(", ")}]`,
      );
    }
    const bytes = size * BYTES_PER_ELEMENT[t.dtype];
    header[name] = {
      dtype: TO_FILE[t.dtype],
      shape: [...t.shape],
      data_offsets: [offset, offset + bytes],
    };
    offset += bytes;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const spaced = new Uint8Array(padded).fill(0x20);
    spaced.set(json);
    json = spaced;
  }
  const out = new Uint8Array(8 + json.length + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, json.length, true);
  view.setUint32(4, 0, true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const [, t] of entries) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(bytes, at);
    at += bytes.length;
  }
  return out;
}

/** One tensor of a safetensors header: its file dtype string, shape and byte span. */
export interface SafetensorsEntry {
  /** The tensor's name. */
  readonly name: string;
  /** The file's dtype string (`F32`, `BF16`, `I64`, ...). */
  readonly dtype: string;
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** The tensor's bytes (a copy, its own buffer). */
  readonly bytes: Uint8Array<ArrayBuffer>;
}

/**
 * Parses and validates safetensors bytes, accepting the dtypes that
 * `elementSizes` lists (file dtype string to bytes per element); the layer
 * under {@linkcode decodeSafetensors} and `readStateDict`. A malformed or
 * truncated file raises a `SyntaxError` naming `source` and the tensor at
 * fault.
 */
export function parseSafetensors(
  bytes: Uint8Array,
  elementSizes: Readonly<Record<string, number>>,
  source = "buffer",
): { entries: SafetensorsEntry[]; metadata: Record<string, string> } {
  const fail = (what: string): never => {
    throw new SyntaxError(`Cannot read safetensors "${source}": ${what}`);
  };
  if (bytes.length < 8) fail(`${bytes.length} bytes is too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(0, true) + view.getUint32(4, true) * 4294967296;
  if (8 + headerLength > bytes.length) {
    fail(`header length ${headerLength} exceeds the ${bytes.length - 8} bytes after it`);
  }
  let header: unknown;
  try {
    header = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)),
    );
  } catch (error) {
    fail(`the header is not valid JSON (${(error as Error).message})`);
  }
  if (!header || typeof header !== "object" || Array.isArray(header)) {
    fail("the header is not a JSON object");
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  const spans: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (!entry || typeof entry !== "object" || Array.isArray(entry)) {
        fail("__metadata__ is not an object");
      }
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`metadata "${k}" is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!e || typeof e !== "object" || Array.isArray(e)) {
      fail(`tensor "${name}" has no description`);
    }
    const dtype = e.dtype;
    const elementSize = typeof dtype === "string" && Object.hasOwn(elementSizes, dtype)
      ? elementSizes[dtype]
      : undefined;
    if (elementSize === undefined) {
      fail(`tensor "${name}" has unsupported dtype ${JSON.stringify(dtype) ?? "(none)"}`);
    }
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      fail(`tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
    }
    const offsets = e.data_offsets;
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((d) => Number.isInteger(d) && d >= 0) || offsets[0] > offsets[1]
    ) {
      fail(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const size = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== size * elementSize!) {
      fail(
        `tensor "${name}" has ${end - begin} bytes but shape [${
          (shape as number[]).join(", ")
        }] ${dtype} needs ${size * elementSize!}`,
      );
    }
    if (end > dataLength) {
      fail(
        `tensor "${name}" data [${begin}, ${end}) lies past the end of the ${dataLength} data bytes (truncated file?)`,
      );
    }
    spans.push([begin, end, name]);
    entries.push({
      name,
      dtype: dtype as string,
      shape: shape as number[],
      bytes: bytes.slice(dataStart + begin, dataStart + end),
    });
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let covered = 0;
  for (const [begin, end, name] of spans) {
    if (begin !== covered) {
      fail(`tensor "${name}" starts at byte ${begin}, expected ${covered} (overlap or gap)`);
    }
    covered = end;
  }
  if (covered !== dataLength) {
    fail(`${dataLength - covered} bytes after the last tensor are unaccounted for`);
  }
  return { entries, metadata };
}

const FILE_SIZES: Record<string, number> = { F32: 4, I32: 4, U32: 4, F64: 8 };

/**
 * Decodes safetensors bytes, validating the header; a malformed or truncated
 * file raises a `SyntaxError` naming `source` and the tensor at fault.
 *
 * @param bytes The file's contents.
 * @param source Names the file in errors.
 */
export function decodeSafetensors(bytes: Uint8Array, source = "buffer"): SafetensorsFile {
  const { entries, metadata } = parseSafetensors(bytes, FILE_SIZES, source);
  const tensors = new Map<string, HostTensor>();
  for (const { name, dtype, shape, bytes: data } of entries) {
    const d = FROM_FILE[dtype];
    const size = shape.reduce((a, b) => a * b, 1);
    tensors.set(name, { dtype: d, shape, data: viewAs(data.buffer, d, size) });
  }
  return { tensors, metadata };
}

/** A tensor on the host, from a device tensor (one readback) or as is. */
export async function toHost(t: Tensor | HostTensor): Promise<HostTensor> {
  if ("backend" in t) return { dtype: t.dtype, shape: [...t.shape], data: await t.data() };
  return t;
}

/**
 * Saves tensors to `path` in the safetensors format, atomically: the bytes go
 * to `path.tmp`, which is then renamed over `path`.
 *
 * @example
 * ```ts ignore
 * await saveSafetensors("runs/a/model.safetensors", model.stateDict(), { step: "100" });
 * ```
 */
export async function saveSafetensors(
  path: string,
  tensors: ReadonlyMap<string, Tensor | HostTensor> | Readonly<Record<string, Tensor | HostTensor>>,
  metadata: Readonly<Record<string, string>> = {},
): Promise<void> {
  const entries: [string, Tensor | HostTensor][] = tensors instanceof Map
    ? [...(tensors as ReadonlyMap<string, Tensor | HostTensor>)]
    : Object.entries(tensors as Readonly<Record<string, Tensor | HostTensor>>);
  const host = await Promise.all(entries.map(async ([n, t]) => [n, await toHost(t)] as const));
  const bytes = encodeSafetensors(new Map(host), metadata);
  const tmp = `${path}.tmp`;
  await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, path);
}

/** Reads and validates a safetensors file. */
export async function loadSafetensors(path: string): Promise<SafetensorsFile> {
  return decodeSafetensors(await Deno.readFile(path), path);
}

/** What a checkpoint holds besides tensors. */
export interface CheckpointMetadata {
  /** Training step. */
  step: number;
  /** The run's seed. */
  seed: number;
  /** Name of the training configuration. */
  config: string;
  /** Anything else, as strings. */
  [key: string]: string | number;
}

/** Something with named tensors to save and restore (a module). */
export interface StateHolder {
  /** The live tensors by name. */
  stateDict(): Map<string, Tensor>;
  /** Copies the given values in, validating names, shapes and element types. */
  loadStateDict(state: ReadonlyMap<string, HostTensor>): void;
}

/** An optimizer's state, as {@linkcode saveCheckpoint} sees it. */
export interface OptimizerStateHolder {
  /** Steps taken. */
  stepCount: number;
  /** The state tensors by name. */
  stateDict(): Map<string, Tensor>;
  /** Restores the state and the step count. */
  loadStateDict(state: ReadonlyMap<string, HostTensor>, stepCount: number): void;
}

const OPTIM_PREFIX = "optimizer.";

/**
 * Saves a model's state and optionally an optimizer's (prefixed
 * `optimizer.`) to one safetensors file, with `step`, `seed`, `config` and
 * the optimizer's step count in `__metadata__`.
 *
 * @example
 * ```ts ignore
 * await saveCheckpoint("runs/a/step_100.safetensors", {
 *   model, optimizer, metadata: { step: 100, seed: 0, config: "atss_tiny_shapes" },
 * });
 * ```
 */
export async function saveCheckpoint(
  path: string,
  { model, optimizer, metadata }: {
    model: StateHolder;
    optimizer?: OptimizerStateHolder;
    metadata: CheckpointMetadata;
  },
): Promise<void> {
  const tensors = new Map<string, Tensor>(model.stateDict());
  const meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata)) meta[k] = String(v);
  if (optimizer) {
    for (const [name, t] of optimizer.stateDict()) tensors.set(OPTIM_PREFIX + name, t);
    meta.optimizer_step = String(optimizer.stepCount);
  }
  await saveSafetensors(path, tensors, meta);
}

/**
 * Loads a checkpoint written by {@linkcode saveCheckpoint} into `model` (and
 * `optimizer`), validating every tensor; returns the metadata.
 */
export async function loadCheckpoint(
  path: string,
  { model, optimizer }: { model: StateHolder; optimizer?: OptimizerStateHolder },
): Promise<Record<string, string>> {
  const file = await loadSafetensors(path);
  const modelState = new Map<string, HostTensor>();
  const optimState = new Map<string, HostTensor>();
  for (const [name, t] of file.tensors) {
    if (name.startsWith(OPTIM_PREFIX)) optimState.set(name.slice(OPTIM_PREFIX.length), t);
    else modelState.set(name, t);
  }
  model.loadStateDict(modelState);
  if (optimizer) optimizer.loadStateDict(optimState, Number(file.metadata.optimizer_step ?? 0));
  return file.metadata;
}
