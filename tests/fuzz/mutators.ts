/**
 * Shared pieces of the fuzz suite (`tests/fuzz/*_test.ts`): seeded mutators, the format
 * helpers the mutators need (PNG chunks, JPEG segments, zip archives, safetensors headers),
 * the per-case checks (a time budget; the exact error class and message) and the case count.
 *
 * Every mutation is drawn from a seeded {@linkcode Rng}, so a run sees the same inputs every
 * time; a failure message names the case (entry, class, index), which reproduces it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Rng } from "../../tensor/rng.ts";
import { crc32 } from "../../data/png.ts";

export { Rng };

/** Fixtures of `data/` (images, COCO files). */
export const DATA_FIXTURES: URL = new URL("../fixtures/data/", import.meta.url);

/**
 * The fewest malformed inputs each entry must run; the entries' files are `<entry>_test.ts`.
 * Their sum is at least {@linkcode MIN_TOTAL} (checked by `total_test.ts`), so a suite that
 * shrinks fails: in the file that lost cases, or in `total_test.ts` when a floor is lowered.
 */
export const MIN_CASES = {
  coco: 300,
  results: 170,
  png: 430,
  jpeg: 480,
  safetensors: 190,
  pth: 105,
  config: 140,
  cli: 130,
} as const;

/** The least total of malformed inputs per run of the whole suite. */
export const MIN_TOTAL = 1000;

/** An entry of the suite (one input kind, one test file). */
export type Entry = keyof typeof MIN_CASES;

/** Wall-clock budget of one case (decode, parse or load), in milliseconds. */
export const CASE_BUDGET_MS = 2000;

// ------------------------------------------------------------------ random choices

/** A uniformly drawn element of `xs`. */
export function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)];
}

/** An integer in `[lo, hi)`. */
export function between(rng: Rng, lo: number, hi: number): number {
  return lo + rng.int(hi - lo);
}

/** A byte value other than `old`. */
export function otherByte(rng: Rng, old: number, avoid: readonly number[] = []): number {
  for (;;) {
    const v = rng.int(256);
    if (v !== old && !avoid.includes(v)) return v;
  }
}

/**
 * Values `JSON.parse` can produce that are wrong for almost any field: `null`, strings, booleans,
 * arrays, objects, negative, zero, fractional and infinite numbers (`1e999` parses as Infinity).
 */
export const JUNK: readonly unknown[] = [
  null,
  "7",
  "",
  true,
  false,
  [],
  {},
  [1, 2],
  -1,
  0,
  1.5,
  Infinity,
  -Infinity,
];

/** `bytes` cut to its first `at` bytes (a copy). */
export function truncate(bytes: Uint8Array, at: number): Uint8Array {
  return bytes.slice(0, at);
}

/** `bytes` with `count` bytes at positions drawn from `[lo, hi)` changed (a copy). */
export function flipBytes(
  rng: Rng,
  bytes: Uint8Array,
  count: number,
  lo = 0,
  hi = bytes.length,
): Uint8Array {
  const out = bytes.slice();
  for (let k = 0; k < count; k++) {
    const at = between(rng, lo, hi);
    out[at] = otherByte(rng, out[at]);
  }
  return out;
}

/** The concatenation of byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, at), at += p.length;
  return out;
}

/** A deep copy of JSON data (Infinity and -0 survive, unlike a JSON round trip). */
export function clone<T>(value: T): T {
  return structuredClone(value);
}

/** A value as the library's messages write it (`JSON.stringify`). */
export function json(value: unknown): string {
  return JSON.stringify(value);
}

// ------------------------------------------------------------------ per-case checks

/** Runs `fn` and fails when it takes longer than `budget` ms (async work is cut off then). */
export async function withinBudget<T>(
  what: string,
  fn: () => T | Promise<T>,
  budget = CASE_BUDGET_MS,
): Promise<T> {
  const t0 = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const result = fn();
    const value = result instanceof Promise
      ? await Promise.race([
        result,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`${what}: still running after ${budget} ms (a hang?)`)),
            budget,
          );
        }),
      ])
      : result;
    return value;
  } finally {
    clearTimeout(timer);
    const ms = performance.now() - t0;
    assert.ok(ms <= budget, `${what}: took ${ms.toFixed(0)} ms, over the ${budget} ms budget`);
  }
}

/** The error `fn` throws (or rejects with), within the budget; fails when it returns. */
export async function thrown(what: string, fn: () => unknown): Promise<Error> {
  let result: unknown;
  try {
    result = await withinBudget(what, fn);
  } catch (error) {
    if (error instanceof assert.AssertionError) throw error;
    return error as Error;
  }
  assert.fail(`${what}: expected an error, got ${describe(result)}`);
}

/**
 * Asserts that `fn` throws exactly `type` (not a subclass, not a TypeError or RangeError from
 * inside the library) with `message`: the whole message when a string, else a match.
 */
export async function expectError(
  what: string,
  fn: () => unknown,
  type: new (message: string) => Error,
  message: string | RegExp,
): Promise<Error> {
  const error = await thrown(what, fn);
  assert.ok(
    error?.constructor === type,
    `${what}: expected ${type.name}, got ${error?.constructor?.name}: ${error?.message}`,
  );
  if (typeof message === "string") assert.equal(error.message, message, what);
  else assert.match(error.message, message, what);
  return error;
}

/** Asserts that `fn` returns (within the budget) and gives the value. */
export async function expectValue<T>(what: string, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await withinBudget(what, fn);
  } catch (error) {
    if (error instanceof assert.AssertionError) throw error;
    throw new assert.AssertionError({
      message: `${what}: expected a value, got ${(error as Error)?.constructor?.name}: ${
        (error as Error)?.message
      }`,
    });
  }
}

function describe(value: unknown): string {
  try {
    return JSON.stringify(value)?.slice(0, 200) ?? String(value);
  } catch {
    return String(value);
  }
}

/** A RegExp matching `text` literally. */
export function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// ------------------------------------------------------------------ case counts

const TALLY_KEY = "BRL_FUZZ_TALLY";

/**
 * Counts one entry's cases by mutation class. {@linkcode Tally.report} prints them, checks the
 * entry's floor, and adds the entry's count to the run's total: test files run in isolates of
 * one process, so the total lives in a process environment variable; the file that completes
 * the set of entries prints the total and checks it against {@linkcode MIN_TOTAL}.
 */
export class Tally {
  readonly counts: Map<string, number> = new Map();
  constructor(readonly entry: Entry) {}

  /** Counts a case of `cls`. */
  add(cls: string): void {
    this.counts.set(cls, (this.counts.get(cls) ?? 0) + 1);
  }

  /** The entry's cases so far. */
  get total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  /** Prints the counts, checks the floor, and adds to the run's total. */
  report(): void {
    const lines = [...this.counts].map(([cls, n]) => `  ${String(n).padStart(5)}  ${cls}`);
    console.log(`fuzz ${this.entry}: ${this.total} malformed inputs\n${lines.join("\n")}`);
    assert.ok(
      this.total >= MIN_CASES[this.entry],
      `fuzz ${this.entry}: ${this.total} cases, fewer than its floor ${MIN_CASES[this.entry]}`,
    );
    let tally: Record<string, number> = {};
    try {
      tally = JSON.parse(Deno.env.get(TALLY_KEY) ?? "{}");
    } catch { /* a foreign value: start over */ }
    tally[this.entry] = this.total;
    Deno.env.set(TALLY_KEY, JSON.stringify(tally));
    const entries = Object.keys(MIN_CASES) as Entry[];
    if (entries.every((e) => e in tally)) {
      const total = entries.reduce((n, e) => n + tally[e], 0);
      console.log(
        `fuzz total: ${total} malformed inputs (${
          entries.map((e) => `${e} ${tally[e]}`).join(", ")
        })`,
      );
      assert.ok(total >= MIN_TOTAL, `fuzz total: ${total} cases, fewer than ${MIN_TOTAL}`);
    }
  }
}

// ------------------------------------------------------------------ PNG

/** One PNG chunk: where it starts, its type and body. */
export interface PngChunk {
  /** Byte offset of its length field. */
  pos: number;
  /** Four-letter type. */
  type: string;
  /** The body (length bytes). */
  body: Uint8Array;
}

/** The chunks of a well-formed PNG file. */
export function pngChunks(bytes: Uint8Array): PngChunk[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: PngChunk[] = [];
  for (let pos = 8; pos + 12 <= bytes.length;) {
    const len = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    out.push({ pos, type, body: bytes.slice(pos + 8, pos + 8 + len) });
    pos += 12 + len;
  }
  return out;
}

/** A chunk's bytes: length, type, body and a correct CRC. */
export function pngChunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  view.setUint32(8 + body.length, crc32(out, 4, 8 + body.length));
  return out;
}

/** A PNG file from chunks (each with a correct CRC). */
export function pngFile(chunks: readonly { type: string; body: Uint8Array }[]): Uint8Array {
  const signature = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return concat(signature, ...chunks.map((c) => pngChunk(c.type, c.body)));
}

async function pipe(bytes: Uint8Array, stream: CompressionStream | DecompressionStream) {
  const out = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(stream);
  return new Uint8Array(await new Response(out).arrayBuffer());
}

/** zlib-inflated bytes. */
export function inflate(bytes: Uint8Array): Promise<Uint8Array> {
  return pipe(bytes, new DecompressionStream("deflate"));
}

/** zlib-deflated bytes. */
export function deflate(bytes: Uint8Array): Promise<Uint8Array> {
  return pipe(bytes, new CompressionStream("deflate"));
}

// ------------------------------------------------------------------ JPEG

/** One JPEG marker segment; for SOS, `dataEnd` ends its entropy-coded data. */
export interface JpegSegment {
  /** The marker byte (after 0xff). */
  marker: number;
  /** Offset of the 0xff. */
  start: number;
  /** End of the segment (of its header, for SOS). */
  end: number;
  /** SOS only: end of the entropy-coded data (the next non-RST marker). */
  dataEnd?: number;
}

/** The segments of a well-formed JPEG after SOI, EOI last (`end = start + 2`). */
export function jpegSegments(bytes: Uint8Array): JpegSegment[] {
  const out: JpegSegment[] = [];
  let p = 2;
  while (p < bytes.length) {
    const marker = bytes[p + 1];
    if (marker === 0xd9) {
      out.push({ marker, start: p, end: p + 2 });
      break;
    }
    const end = p + 2 + ((bytes[p + 2] << 8) | bytes[p + 3]);
    if (marker !== 0xda) {
      out.push({ marker, start: p, end });
      p = end;
      continue;
    }
    let q = end;
    while (
      q < bytes.length &&
      !(bytes[q] === 0xff && bytes[q + 1] !== 0 && !(bytes[q + 1] >= 0xd0 && bytes[q + 1] <= 0xd7))
    ) q++;
    out.push({ marker, start: p, end, dataEnd: q });
    p = q;
  }
  return out;
}

// ------------------------------------------------------------------ zip and pickle

/** A zip archive of stored entries, as `torch.save` writes (CRCs left 0: readers skip them). */
export function storedZip(files: readonly [string, Uint8Array][]): Uint8Array {
  const enc = new TextEncoder();
  const locals: Uint8Array[] = [], centrals: Uint8Array[] = [];
  let offset = 0;
  for (const [name, data] of files) {
    const n = enc.encode(name);
    const local = new Uint8Array(30 + n.length + data.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint32(18, data.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, n.length, true);
    local.set(n, 30);
    local.set(data, 30 + n.length);
    const central = new Uint8Array(46 + n.length);
    const cv = new DataView(central.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, n.length, true);
    cv.setUint32(42, offset, true);
    central.set(n, 46);
    locals.push(local);
    centrals.push(central);
    offset += local.length;
  }
  const cdSize = centrals.reduce((a, c) => a + c.length, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, files.length, true);
  ev.setUint16(10, files.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  return concat(...locals, ...centrals, eocd);
}

/** Pickle bytes from opcode bytes, byte lists and latin-1 strings. */
export function pickleBytes(...parts: (number | number[] | string)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === "number") out.push(p);
    else if (Array.isArray(p)) { for (const b of p) out.push(b); }
    else for (const c of p) out.push(c.charCodeAt(0));
  }
  return new Uint8Array(out);
}

/** BINUNICODE of a string's UTF-8 bytes (or of raw bytes). */
export function binUnicode(s: string | Uint8Array): number[] {
  const b = typeof s === "string" ? new TextEncoder().encode(s) : s;
  return [0x58, b.length & 0xff, (b.length >> 8) & 0xff, 0, 0, ...b];
}

/** BININT (signed 32-bit little-endian). */
export function binInt(v: number): number[] {
  const b = new Uint8Array(5);
  b[0] = 0x4a;
  new DataView(b.buffer).setInt32(1, v, true);
  return [...b];
}

// ------------------------------------------------------------------ safetensors

/** The JSON header of safetensors bytes and where the data starts. */
export function safetensorsHeader(
  bytes: Uint8Array,
): { header: Record<string, unknown>; length: number } {
  const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
  return { header, length };
}

/** Safetensors bytes with the header replaced by `headerText` (space-padded to 8), same data. */
export function withHeaderText(bytes: Uint8Array, headerText: string | Uint8Array): Uint8Array {
  const { length } = safetensorsHeader(bytes);
  let text = typeof headerText === "string" ? new TextEncoder().encode(headerText) : headerText;
  const padded = Math.ceil(text.length / 8) * 8;
  if (padded !== text.length) {
    const spaced = new Uint8Array(padded).fill(0x20);
    spaced.set(text);
    text = spaced;
  }
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setUint32(0, text.length, true);
  return concat(prefix, text, bytes.subarray(8 + length));
}
