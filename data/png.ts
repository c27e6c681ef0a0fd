/**
 * PNG decoding (all colour types and bit depths, tRNS, Adam7, all filters)
 * and encoding, with the built-in `DecompressionStream` / `CompressionStream`.
 *
 * @example Round trip
 * ```ts
 * import { decodePng, encodePng } from "./png.ts";
 * import assert from "node:assert/strict";
 *
 * const data = Uint8Array.from({ length: 2 * 3 * 3 }, (_, i) => i * 10);
 * const png = await encodePng({ width: 3, height: 2, channels: 3, data });
 * const back = await decodePng(png);
 * assert.deepEqual(back.data, data);
 * ```
 *
 * @module
 */

import type { DecodedImage } from "./image.ts";

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
]; // [xStart, yStart, xStep, yStep]

/** One non-empty pass of an image: its first pixel, steps, size and filtered row length. */
interface Pass {
  x0: number;
  y0: number;
  dx: number;
  dy: number;
  /** Pixels per row. */
  pw: number;
  /** Rows. */
  ph: number;
  /** Bytes per row, without the filter byte. */
  rowBytes: number;
}

/** The non-empty passes of a `width x height` image: Adam7's when interlaced, else one. */
function passesOf(width: number, height: number, bitsPP: number, interlace: boolean): Pass[] {
  const passes: Pass[] = [];
  for (const [x0, y0, dx, dy] of interlace ? ADAM7 : [[0, 0, 1, 1]]) {
    const pw = Math.ceil((width - x0) / dx), ph = Math.ceil((height - y0) / dy);
    if (pw > 0 && ph > 0) {
      passes.push({ x0, y0, dx, dy, pw, ph, rowBytes: Math.ceil((pw * bitsPP) / 8) });
    }
  }
  return passes;
}
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const DEPTHS: Record<number, number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};
/** Largest pixel count accepted (guards against decompression bombs). */
export const PNG_MAX_PIXELS = 1 << 28;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * CRC-32 of `bytes[start, end)`: the checksum of PNG chunks (and zip entries).
 *
 * @example
 * ```ts
 * import { crc32 } from "./png.ts";
 * console.log(crc32(new TextEncoder().encode("IEND")).toString(16)); // ae426082
 * ```
 */
export function crc32(bytes: Uint8Array, start = 0, end: number = bytes.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

async function runStream(
  data: Uint8Array,
  stream: CompressionStream | DecompressionStream,
): Promise<Uint8Array> {
  const out = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(stream);
  return new Uint8Array(await new Response(out).arrayBuffer());
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Undo one filtered scanline in place (`prev` is the unfiltered previous row or null). */
function unfilter(
  type: number,
  row: Uint8Array,
  prev: Uint8Array | null,
  bpp: number,
): boolean {
  const n = row.length;
  switch (type) {
    case 0:
      return true;
    case 1:
      for (let i = bpp; i < n; i++) row[i] = (row[i] + row[i - bpp]) & 0xff;
      return true;
    case 2:
      if (prev) { for (let i = 0; i < n; i++) row[i] = (row[i] + prev[i]) & 0xff; }
      return true;
    case 3:
      for (let i = 0; i < n; i++) {
        const a = i >= bpp ? row[i - bpp] : 0;
        const b = prev ? prev[i] : 0;
        row[i] = (row[i] + ((a + b) >> 1)) & 0xff;
      }
      return true;
    case 4:
      for (let i = 0; i < n; i++) {
        const a = i >= bpp ? row[i - bpp] : 0;
        const b = prev ? prev[i] : 0;
        const c = prev && i >= bpp ? prev[i - bpp] : 0;
        row[i] = (row[i] + paeth(a, b, c)) & 0xff;
      }
      return true;
    default:
      return false;
  }
}

interface Header {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlace: number;
}

/**
 * Decode a PNG file to 8-bit RGB, or RGBA when it has an alpha channel or a
 * tRNS chunk. 16-bit samples keep their high byte; 1/2/4-bit gray is scaled to
 * 0..255.
 *
 * @param bytes File contents.
 * @param name File name for error messages.
 * @returns The image.
 * @throws {SyntaxError} Naming the file and the reason (bad signature, CRC, header, data).
 */
export async function decodePng(bytes: Uint8Array, name = "<memory>"): Promise<DecodedImage> {
  const fail = (why: string): never => {
    throw new SyntaxError(`Cannot decode PNG "${name}": ${why}`);
  };
  if (bytes.length < 8 || SIGNATURE.some((v, i) => bytes[i] !== v)) fail("bad signature");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let hdr: Header | null = null;
  let palette: Uint8Array | null = null;
  let trns: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  let pos = 8;
  let ended = false;
  while (pos < bytes.length) {
    if (pos + 12 > bytes.length) fail(`truncated chunk at byte ${pos}`);
    const len = view.getUint32(pos);
    const type = String.fromCharCode(
      bytes[pos + 4],
      bytes[pos + 5],
      bytes[pos + 6],
      bytes[pos + 7],
    );
    if (len > 0x7fffffff || pos + 12 + len > bytes.length) {
      fail(`chunk "${type}" at byte ${pos} runs past the end of the file`);
    }
    const crc = view.getUint32(pos + 8 + len);
    if (crc32(bytes, pos + 4, pos + 8 + len) !== crc) {
      fail(`CRC mismatch in chunk "${type}" at byte ${pos}`);
    }
    const body = bytes.subarray(pos + 8, pos + 8 + len);
    pos += 12 + len;
    if (type === "IHDR") {
      if (hdr) fail(`more than one IHDR chunk (a second at byte ${pos - 12 - len})`);
      if (len !== 13) fail(`IHDR has length ${len}`);
      const bv = new DataView(body.buffer, body.byteOffset, 13);
      hdr = {
        width: bv.getUint32(0),
        height: bv.getUint32(4),
        depth: body[8],
        colorType: body[9],
        interlace: body[12],
      };
      if (!DEPTHS[hdr.colorType]) fail(`unknown colour type ${hdr.colorType}`);
      if (!DEPTHS[hdr.colorType].includes(hdr.depth)) {
        fail(`bit depth ${hdr.depth} is not allowed for colour type ${hdr.colorType}`);
      }
      if (hdr.width === 0 || hdr.height === 0) fail(`image size ${hdr.width}x${hdr.height}`);
      if (hdr.width * hdr.height > PNG_MAX_PIXELS) {
        fail(`image size ${hdr.width}x${hdr.height} exceeds ${PNG_MAX_PIXELS} pixels`);
      }
      if (body[10] !== 0 || body[11] !== 0) fail("unknown compression or filter method");
      if (hdr.interlace > 1) fail(`unknown interlace method ${hdr.interlace}`);
    } else if (!hdr) {
      fail(`chunk "${type}" before IHDR`);
    } else if (type === "PLTE") {
      if (palette) fail(`more than one PLTE chunk (a second at byte ${pos - 12 - len})`);
      if (len % 3 !== 0 || len === 0 || len > 768) fail(`PLTE has length ${len}`);
      palette = body;
    } else if (type === "tRNS") {
      trns = body;
    } else if (type === "IDAT") {
      idat.push(body);
    } else if (type === "IEND") {
      ended = true;
      break;
    } else if ((type.charCodeAt(0) & 0x20) === 0) {
      fail(`unknown critical chunk "${type}"`);
    }
  }
  if (!hdr) return fail("no IHDR chunk");
  if (!ended) fail("no IEND chunk (file truncated)");
  if (idat.length === 0) fail("no IDAT chunk");
  if (hdr.colorType === 3 && !palette) fail("palette image without PLTE");
  const { width, height, depth, colorType, interlace } = hdr;
  let total = 0;
  for (const c of idat) total += c.length;
  const zdata = new Uint8Array(total);
  let off = 0;
  for (const c of idat) zdata.set(c, off), off += c.length;
  let raw: Uint8Array;
  try {
    raw = await runStream(zdata, new DecompressionStream("deflate"));
  } catch (e) {
    return fail(`image data does not inflate (${(e as Error).message})`);
  }
  const nch = CHANNELS[colorType];
  const bitsPP = nch * depth;
  const bpp = Math.max(1, bitsPP >> 3);
  const passes = passesOf(width, height, bitsPP, interlace !== 0);
  // Check the data's length before allocating the image: a header may claim far more than is there.
  let needed = 0;
  for (const { ph, rowBytes } of passes) needed += ph * (1 + rowBytes);
  if (raw.length < needed) {
    fail(`image data is truncated (${raw.length} of ${needed} bytes for ${width}x${height})`);
  }
  const hasAlpha = colorType === 4 || colorType === 6 || trns !== null;
  const outCh = hasAlpha ? 4 : 3;
  const out = new Uint8Array(width * height * outCh);
  const maxv = (1 << depth) - 1;
  // tRNS key colour at native depth (gray or RGB)
  let key: number[] | null = null;
  if (trns && colorType === 0 && trns.length >= 2) key = [(trns[0] << 8) | trns[1]];
  if (trns && colorType === 2 && trns.length >= 6) {
    key = [(trns[0] << 8) | trns[1], (trns[2] << 8) | trns[3], (trns[4] << 8) | trns[5]];
  }
  let p = 0;
  const samples = new Array<number>(4);
  for (const { x0, y0, dx, dy, pw, ph, rowBytes } of passes) {
    let prev: Uint8Array | null = null;
    for (let r = 0; r < ph; r++) {
      const ft = raw[p];
      const row = raw.subarray(p + 1, p + 1 + rowBytes);
      if (!unfilter(ft, row, prev, bpp)) fail(`unknown filter type ${ft} in row ${r}`);
      prev = row;
      p += 1 + rowBytes;
      const y = y0 + r * dy;
      // fast path: 8-bit RGB/RGBA without a key colour
      if (depth === 8 && (colorType === 2 || colorType === 6) && !key && dx === 1) {
        const o = y * width * outCh;
        if (nch === outCh) out.set(row, o);
        else {
          for (let x = 0; x < pw; x++) {
            out[o + x * 4] = row[x * 3];
            out[o + x * 4 + 1] = row[x * 3 + 1];
            out[o + x * 4 + 2] = row[x * 3 + 2];
            out[o + x * 4 + 3] = 255;
          }
        }
        continue;
      }
      for (let i = 0; i < pw; i++) {
        for (let c = 0; c < nch; c++) {
          const s = i * nch + c;
          if (depth === 16) samples[c] = (row[2 * s] << 8) | row[2 * s + 1];
          else if (depth === 8) samples[c] = row[s];
          else {
            const bit = s * depth;
            samples[c] = (row[bit >> 3] >> (8 - depth - (bit & 7))) & maxv;
          }
        }
        const o = (y * width + x0 + i * dx) * outCh;
        let rr: number, gg: number, bb: number, aa = 255;
        if (colorType === 3) {
          const idx = samples[0];
          if (idx * 3 + 2 >= palette!.length) fail(`palette index ${idx} is out of range`);
          rr = palette![idx * 3], gg = palette![idx * 3 + 1], bb = palette![idx * 3 + 2];
          if (trns) aa = idx < trns.length ? trns[idx] : 255;
        } else {
          const to8 = (v: number) =>
            depth === 16 ? v >> 8 : depth === 8 ? v : Math.round((v * 255) / maxv);
          if (nch <= 2) rr = gg = bb = to8(samples[0]);
          else rr = to8(samples[0]), gg = to8(samples[1]), bb = to8(samples[2]);
          if (colorType === 4) aa = to8(samples[1]);
          else if (colorType === 6) aa = to8(samples[3]);
          else if (key) {
            const match = colorType === 0 ? samples[0] === key[0] : samples[0] === key[0] &&
              samples[1] === key[1] && samples[2] === key[2];
            aa = match ? 0 : 255;
          }
        }
        out[o] = rr, out[o + 1] = gg, out[o + 2] = bb;
        if (outCh === 4) out[o + 3] = aa;
      }
    }
  }
  return { width, height, channels: outCh, data: out };
}

/** Options of {@linkcode encodePng}. */
export interface EncodePngOptions {
  /** PNG colour type; by default from `channels` (1: 0, 2: 4, 3: 2, 4: 6). 3 needs `palette`. */
  colorType?: 0 | 2 | 3 | 4 | 6;
  /** Bits per sample (default 8); `data` then holds values up to `2^bitDepth - 1`. */
  bitDepth?: 1 | 2 | 4 | 8 | 16;
  /** RGB triplets for colour type 3 (`data` holds indices). */
  palette?: Uint8Array;
  /** Raw tRNS chunk body (palette alphas, or a gray / RGB key as 16-bit values). */
  transparency?: Uint8Array;
  /** Write Adam7-interlaced. */
  interlace?: boolean;
  /** Filter for every row (0..4), or `"adaptive"` (default): per row, the least sum of |bytes|. */
  filter?: 0 | 1 | 2 | 3 | 4 | "adaptive";
}

function filterRow(
  type: number,
  row: Uint8Array,
  prev: Uint8Array | null,
  bpp: number,
  out: Uint8Array,
): void {
  out[0] = type;
  for (let i = 0; i < row.length; i++) {
    const a = i >= bpp ? row[i - bpp] : 0;
    const b = prev ? prev[i] : 0;
    const c = prev && i >= bpp ? prev[i - bpp] : 0;
    const pred = type === 0
      ? 0
      : type === 1
      ? a
      : type === 2
      ? b
      : type === 3
      ? (a + b) >> 1
      : paeth(a, b, c);
    out[i + 1] = (row[i] - pred) & 0xff;
  }
}

function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  v.setUint32(8 + body.length, crc32(out, 4, 8 + body.length));
  return out;
}

/**
 * Encode an image as PNG. By default an 8-bit image of 1 to 4 channels
 * (gray, gray + alpha, RGB, RGBA); options give any colour type, bit depth,
 * palette, tRNS, interlacing and filter.
 *
 * @param image Samples in HWC order; `Uint16Array` for 16-bit.
 * @param options Format choices.
 * @returns The PNG file bytes.
 * @throws {TypeError} When `data` does not match the size or the options contradict each other.
 */
export async function encodePng(
  image: { width: number; height: number; channels: number; data: ArrayLike<number> },
  options: EncodePngOptions = {},
): Promise<Uint8Array> {
  const { width, height, channels, data } = image;
  const colorType = options.colorType ?? ([0, 0, 4, 2, 6][channels] as 0 | 2 | 4 | 6 | undefined);
  if (colorType === undefined) throw new TypeError(`Cannot encode ${channels} channels as PNG`);
  const depth = options.bitDepth ?? 8;
  if (!DEPTHS[colorType]?.includes(depth)) {
    throw new TypeError(`Bit depth ${depth} is not allowed for colour type ${colorType}`);
  }
  const nch = CHANNELS[colorType];
  if (nch !== channels) {
    throw new TypeError(`Colour type ${colorType} needs ${nch} channels, got ${channels}`);
  }
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`Image size ${width}x${height} is not positive`);
  }
  if (data.length !== width * height * nch) {
    throw new TypeError(`Data has ${data.length} samples, expected ${width}x${height}x${nch}`);
  }
  if (colorType === 3 && !options.palette) throw new TypeError("Colour type 3 needs a palette");
  const bitsPP = nch * depth;
  const bpp = Math.max(1, bitsPP >> 3);
  const parts: Uint8Array[] = [];
  const maxv = (1 << depth) - 1;
  for (
    const { x0, y0, dx, dy, pw, ph, rowBytes } of passesOf(
      width,
      height,
      bitsPP,
      !!options.interlace,
    )
  ) {
    let prev: Uint8Array | null = null;
    for (let r = 0; r < ph; r++) {
      const row = new Uint8Array(rowBytes);
      const y = y0 + r * dy;
      for (let i = 0; i < pw; i++) {
        const src = (y * width + x0 + i * dx) * nch;
        for (let c = 0; c < nch; c++) {
          const v = data[src + c];
          if (!(v >= 0 && v <= maxv)) {
            throw new RangeError(`Sample ${src + c} is ${v}, outside 0..${maxv}`);
          }
          const s = i * nch + c;
          if (depth === 16) row[2 * s] = v >> 8, row[2 * s + 1] = v & 0xff;
          else if (depth === 8) row[s] = v;
          else {
            const bit = s * depth;
            row[bit >> 3] |= v << (8 - depth - (bit & 7));
          }
        }
      }
      const f = options.filter ?? "adaptive";
      let best = new Uint8Array(rowBytes + 1);
      if (f === "adaptive") {
        let bestScore = Infinity;
        const tmp = new Uint8Array(rowBytes + 1);
        for (let t = 0; t < 5; t++) {
          filterRow(t, row, prev, bpp, tmp);
          let score = 0;
          for (let i = 1; i < tmp.length; i++) score += tmp[i] < 128 ? tmp[i] : 256 - tmp[i];
          if (score < bestScore) bestScore = score, best.set(tmp);
        }
      } else {
        best = new Uint8Array(rowBytes + 1);
        filterRow(f, row, prev, bpp, best);
      }
      parts.push(best);
      prev = row;
    }
  }
  let total = 0;
  for (const p of parts) total += p.length;
  const raw = new Uint8Array(total);
  let off = 0;
  for (const p of parts) raw.set(p, off), off += p.length;
  const z = await runStream(raw, new CompressionStream("deflate"));
  const ihdr = new Uint8Array(13);
  const hv = new DataView(ihdr.buffer);
  hv.setUint32(0, width);
  hv.setUint32(4, height);
  ihdr[8] = depth;
  ihdr[9] = colorType;
  ihdr[12] = options.interlace ? 1 : 0;
  const chunks = [Uint8Array.from(SIGNATURE), chunk("IHDR", ihdr)];
  if (options.palette) chunks.push(chunk("PLTE", options.palette));
  if (options.transparency) chunks.push(chunk("tRNS", options.transparency));
  chunks.push(chunk("IDAT", z), chunk("IEND", new Uint8Array(0)));
  let n = 0;
  for (const c of chunks) n += c.length;
  const file = new Uint8Array(n);
  off = 0;
  for (const c of chunks) file.set(c, off), off += c.length;
  return file;
}
