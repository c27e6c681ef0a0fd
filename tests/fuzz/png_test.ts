/**
 * Fuzzing `decodeImage` (`data/image.ts`) on PNG files: the fixtures of `tests/fixtures/data/`
 * (RGB Adam7, 16-bit gray + tRNS, palette + tRNS, 1-bit gray, 16-bit RGB, RGBA), mutated.
 *
 * What must happen, by mutation class (NAME is the file name given to the decoder):
 * - truncated at any byte → SyntaxError `Cannot decode PNG "NAME": ` + exactly what is cut:
 *   `no IHDR chunk`, `truncated chunk at byte P`, `chunk "T" at byte P runs past the end of the
 *   file`, `no IEND chunk (file truncated)`; under 8 bytes, `Cannot decode image "NAME": not a
 *   PNG or JPEG file`.
 * - a signature byte changed → `not a PNG or JPEG file` (bytes 0–2, what dispatch reads) or
 *   `bad signature` (bytes 3–7).
 * - bytes of a chunk's type, body or CRC changed → `CRC mismatch in chunk "T" at byte P`, the
 *   first changed chunk; its length field changed → that, or `runs past the end of the file`.
 * - random bytes changed anywhere → the error the first changed byte implies (as above).
 * - IHDR fields changed with a valid CRC → the field's error (`unknown colour type C`, `bit depth
 *   D is not allowed for colour type C`, `image size WxH`, `image size WxH exceeds 268435456
 *   pixels`, `unknown compression or filter method`, `unknown interlace method I`), `palette image
 *   without PLTE`, or `image data is truncated (N of M bytes for WxH)` when the data is too short
 *   for the new header. A valid header the data is long enough for may decode: then the image
 *   has the header's size and `width * height * channels` bytes; else the row error it reaches
 *   (`unknown filter type F in row R`, `palette index I is out of range`).
 * - a chunk dropped → IHDR: `chunk "T" before IHDR`; IDAT: `no IDAT chunk`; IEND: `no IEND
 *   chunk (file truncated)`; PLTE: `palette image without PLTE`; tRNS: the same RGB without
 *   alpha; an ancillary chunk: the same image.
 * - a chunk duplicated → IHDR, PLTE: `more than one IHDR|PLTE chunk (a second at byte P)`; IDAT:
 *   `image data does not inflate (...)`; IEND, tRNS, ancillary: the same image.
 * - the inflated scanlines changed and deflated again (valid CRC and zlib stream): cut → `image
 *   data is truncated (N of M bytes for WxH)`; bytes appended after the last row → the same image
 *   (extra data is ignored, as libpng warns and goes on); a row's filter byte set above 4 →
 *   `unknown filter type F in row R`; a sample byte changed → an image of the same size (palette
 *   image: or `palette index I is out of range`).
 * - bytes of the compressed IDAT stream changed with a valid CRC → `image data does not inflate`
 *   (the zlib checksum), or, only if the stream still inflates, what the inflated data gives (an
 *   image of the header's size, or a row error).
 * Every case must finish within the budget and throw nothing but the SyntaxError stated.
 */

import assert from "node:assert/strict";
import { type DecodedImage, decodeImage } from "../../data/image.ts";
import {
  between,
  concat,
  DATA_FIXTURES,
  deflate,
  expectError,
  expectValue,
  flipBytes,
  inflate,
  literal,
  otherByte,
  pick,
  type PngChunk,
  pngChunks,
  pngFile,
  Rng,
  Tally,
} from "./mutators.ts";

const FILES = [
  "im_rgb8_adam7.png",
  "py_gray16_trns.png",
  "im_palette_trns.png",
  "im_gray1.png",
  "im_rgb16.png",
  "im_rgba8.png",
];

/** PNG spec tables: samples per pixel and allowed bit depths by colour type. */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const DEPTHS: Record<number, number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};
/** Adam7 passes: [xStart, yStart, xStep, yStep]. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];

interface Header {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlace: number;
}

function header(body: Uint8Array): Header {
  const v = new DataView(body.buffer, body.byteOffset, 13);
  return {
    width: v.getUint32(0),
    height: v.getUint32(4),
    depth: body[8],
    colorType: body[9],
    interlace: body[12],
  };
}

/** Each scanline's [start, row index within its pass] in the inflated data, and its length. */
function rows(h: Header): { starts: [number, number][]; needed: number } {
  const bitsPP = CHANNELS[h.colorType] * h.depth;
  const starts: [number, number][] = [];
  let p = 0;
  for (const [x0, y0, dx, dy] of h.interlace ? ADAM7 : [[0, 0, 1, 1]]) {
    const pw = Math.ceil((h.width - x0) / dx), ph = Math.ceil((h.height - y0) / dy);
    if (pw <= 0 || ph <= 0) continue;
    const rowBytes = 1 + Math.ceil((pw * bitsPP) / 8);
    for (let r = 0; r < ph; r++) starts.push([p, r]), p += rowBytes;
  }
  return { starts, needed: p };
}

const tally = new Tally("png");

interface Fixture {
  file: string;
  good: Uint8Array;
  base: DecodedImage;
  chunks: PngChunk[];
  hdr: Header;
  raw: Uint8Array;
}

async function fixtures(): Promise<Fixture[]> {
  const out: Fixture[] = [];
  for (const file of FILES) {
    const good = await Deno.readFile(new URL(file, DATA_FIXTURES));
    const chunks = pngChunks(good);
    const hdr = header(chunks[0].body);
    const raw = await inflate(
      concat(...chunks.filter((c) => c.type === "IDAT").map((c) => c.body)),
    );
    out.push({ file, good, base: await decodeImage(good, file), chunks, hdr, raw });
  }
  return out;
}

const pngError = (name: string, why: string) => `Cannot decode PNG "${name}": ${why}`;
const notAnImage = (name: string) => `Cannot decode image "${name}": not a PNG or JPEG file`;

/** The error a file with its first change at `p` gives (chunks: the original file's). */
function firstChangeError(name: string, chunks: PngChunk[], bytes: Uint8Array, p: number): string {
  if (p < 3) return notAnImage(name);
  if (p < 8) return pngError(name, "bad signature");
  const ch = chunks.find((c) => p < c.pos + 12 + c.body.length)!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = view.getUint32(ch.pos);
  const type = String.fromCharCode(...bytes.subarray(ch.pos + 4, ch.pos + 8));
  if (len > 0x7fffffff || ch.pos + 12 + len > bytes.length) {
    return pngError(name, `chunk "${type}" at byte ${ch.pos} runs past the end of the file`);
  }
  return pngError(name, `CRC mismatch in chunk "${type}" at byte ${ch.pos}`);
}

/** Asserts a decode that may succeed: the image has the header's size, or a row error. */
async function expectHeaderSizedOrRowError(
  what: string,
  bytes: Uint8Array,
  h: Header,
  alpha: boolean,
  name: string,
) {
  let img: DecodedImage | undefined;
  try {
    img = await decodeImage(bytes, name);
  } catch { /* checked below */ }
  if (img) {
    assert.equal(img.width, h.width, what);
    assert.equal(img.height, h.height, what);
    assert.equal(img.channels, alpha ? 4 : 3, what);
    assert.equal(img.data.length, h.width * h.height * img.channels, what);
    return;
  }
  await expectError(
    what,
    () => decodeImage(bytes, name),
    SyntaxError,
    new RegExp(
      `^${
        literal(pngError(name, ""))
      }(unknown filter type \\d+ in row \\d+|palette index \\d+ is out of range)$`,
    ),
  );
}

Deno.test("fuzz png: truncation, signature, CRC-guarded and random byte changes", async () => {
  for (const fx of await fixtures()) {
    const { file, good, chunks } = fx;
    const rng = new Rng(0x9e37 + file.length * 131);
    for (let i = 0; i < 14; i++) {
      // cuts in each region: the signature, the chunk headers, the bodies
      const c = i < 2 ? rng.int(8) : between(rng, 8, good.length);
      const name = `${file}[:${c}]`;
      let expected = notAnImage(name);
      if (c >= 8) {
        for (const ch of chunks) {
          const len = ch.body.length;
          if (c === ch.pos) {
            expected = pngError(
              name,
              ch.pos === 8 ? "no IHDR chunk" : "no IEND chunk (file truncated)",
            );
            break;
          }
          if (c < ch.pos + 12) {
            expected = pngError(name, `truncated chunk at byte ${ch.pos}`);
            break;
          }
          if (c < ch.pos + 12 + len) {
            expected = pngError(
              name,
              `chunk "${ch.type}" at byte ${ch.pos} runs past the end of the file`,
            );
            break;
          }
        }
      }
      await expectError(
        `${name}: truncated`,
        () => decodeImage(good.slice(0, c), name),
        SyntaxError,
        expected,
      );
      tally.add("truncated at a random byte");
    }
    for (let i = 0; i < 4; i++) {
      const k = i < 2 ? rng.int(3) : between(rng, 3, 8);
      const bytes = good.slice();
      bytes[k] = otherByte(rng, bytes[k]);
      const name = `${file}#sig${i}`;
      const expected = k < 3 ? notAnImage(name) : pngError(name, "bad signature");
      await expectError(
        `${name}: signature byte ${k}`,
        () => decodeImage(bytes, name),
        SyntaxError,
        expected,
      );
      tally.add("signature byte changed");
    }
    for (let i = 0; i < 8; i++) {
      const ch = pick(rng, chunks);
      const bytes = flipBytes(rng, good, 1 + rng.int(3), ch.pos + 4, ch.pos + 12 + ch.body.length);
      const name = `${file}#crc${i}`;
      const type = String.fromCharCode(...bytes.subarray(ch.pos + 4, ch.pos + 8));
      await expectError(
        `${name}: ${ch.type} type/body/CRC bytes changed`,
        () => decodeImage(bytes, name),
        SyntaxError,
        pngError(name, `CRC mismatch in chunk "${type}" at byte ${ch.pos}`),
      );
      tally.add("chunk type/body/CRC bytes changed (CRC not fixed)");
    }
    for (let i = 0; i < 5; i++) {
      const ch = pick(rng, chunks);
      const len = ch.body.length;
      const choices = [
        len + 1 + rng.int(40),
        rng.int(Math.max(1, len)),
        rng.int(2 ** 32),
        0x80000000 + rng.int(1000),
      ];
      let newLen = pick(rng, choices);
      if (newLen === len) newLen = len + 1;
      const bytes = good.slice();
      new DataView(bytes.buffer).setUint32(ch.pos, newLen);
      const name = `${file}#len${i}`;
      await expectError(
        `${name}: ${ch.type} length ${len} -> ${newLen}`,
        () => decodeImage(bytes, name),
        SyntaxError,
        firstChangeError(name, chunks, bytes, ch.pos),
      );
      tally.add("chunk length field changed");
    }
    for (let i = 0; i < 8; i++) {
      const bytes = flipBytes(rng, good, 1 + rng.int(6));
      let p = 0;
      while (bytes[p] === good[p]) p++;
      const name = `${file}#rand${i}`;
      await expectError(
        `${name}: random bytes, first changed at ${p}`,
        () => decodeImage(bytes, name),
        SyntaxError,
        firstChangeError(name, chunks, bytes, p),
      );
      tally.add("random bytes changed anywhere");
    }
  }
});

Deno.test("fuzz png: IHDR fields changed with a valid CRC", async () => {
  for (const fx of await fixtures()) {
    const { file, chunks, raw } = fx;
    const rng = new Rng(0x1bd1 + file.length * 17);
    const hasPlte = chunks.some((c) => c.type === "PLTE");
    const hasTrns = chunks.some((c) => c.type === "tRNS");
    for (let i = 0; i < 12; i++) {
      const body = chunks[0].body.slice();
      const view = new DataView(body.buffer);
      const field = i % 6;
      if (field === 0 || field === 1) {
        const old = view.getUint32(field * 4);
        view.setUint32(
          field * 4,
          pick(rng, [
            0,
            1,
            old + 1 + rng.int(8),
            Math.max(1, old - 1 - rng.int(old)),
            0x7fffffff,
            20000 + rng.int(2 ** 20),
            rng.int(2 ** 32),
          ]),
        );
      } else if (field === 2) body[8] = pick(rng, [0, 1, 2, 3, 4, 5, 8, 16, 32, 255]);
      else if (field === 3) body[9] = pick(rng, [0, 1, 2, 3, 4, 5, 6, 7, 255]);
      else if (field === 4) body[10 + rng.int(2)] = 1 + rng.int(255);
      else body[12] = 1 + rng.int(255);
      const bytes = pngFile(chunks.map((c, k) => (k === 0 ? { type: "IHDR", body } : c)));
      const h = header(body);
      const name = `${file}#ihdr${i}`;
      const what = `${name}: IHDR ${JSON.stringify(h)} compression/filter ${body[10]}/${body[11]}`;
      let why: string | undefined;
      if (!DEPTHS[h.colorType]) why = `unknown colour type ${h.colorType}`;
      else if (!DEPTHS[h.colorType].includes(h.depth)) {
        why = `bit depth ${h.depth} is not allowed for colour type ${h.colorType}`;
      } else if (h.width === 0 || h.height === 0) why = `image size ${h.width}x${h.height}`;
      else if (h.width * h.height > 2 ** 28) {
        why = `image size ${h.width}x${h.height} exceeds ${2 ** 28} pixels`;
      } else if (body[10] !== 0 || body[11] !== 0) why = "unknown compression or filter method";
      else if (h.interlace > 1) why = `unknown interlace method ${h.interlace}`;
      else if (h.colorType === 3 && !hasPlte) why = "palette image without PLTE";
      else {
        const { needed } = rows(h);
        if (raw.length < needed) {
          why =
            `image data is truncated (${raw.length} of ${needed} bytes for ${h.width}x${h.height})`;
        }
      }
      if (why) {
        await expectError(what, () => decodeImage(bytes, name), SyntaxError, pngError(name, why));
        tally.add("IHDR field changed (CRC fixed): header error");
      } else {
        const alpha = h.colorType === 4 || h.colorType === 6 || hasTrns;
        await expectHeaderSizedOrRowError(what, bytes, h, alpha, name);
        tally.add("IHDR field changed (CRC fixed): valid header, data reinterpreted");
      }
    }
  }
});

Deno.test("fuzz png: chunks dropped and duplicated", async () => {
  for (const fx of await fixtures()) {
    const { file, chunks, base } = fx;
    for (const [k, ch] of chunks.entries()) {
      const dropped = pngFile(chunks.filter((_, j) => j !== k));
      const name = `${file}-${ch.type}${k}`;
      const what = `${name}: ${ch.type} dropped`;
      if (ch.type === "IHDR") {
        await expectError(
          what,
          () => decodeImage(dropped, name),
          SyntaxError,
          pngError(name, `chunk "${chunks[1].type}" before IHDR`),
        );
      } else if (ch.type === "IDAT") {
        await expectError(
          what,
          () => decodeImage(dropped, name),
          SyntaxError,
          pngError(name, "no IDAT chunk"),
        );
      } else if (ch.type === "IEND") {
        await expectError(
          what,
          () => decodeImage(dropped, name),
          SyntaxError,
          pngError(name, "no IEND chunk (file truncated)"),
        );
      } else if (ch.type === "PLTE") {
        await expectError(
          what,
          () => decodeImage(dropped, name),
          SyntaxError,
          pngError(name, "palette image without PLTE"),
        );
      } else if (ch.type === "tRNS") {
        const img = await expectValue(what, () => decodeImage(dropped, name));
        assert.equal(img.channels, 3, what);
        const rgb = base.data.filter((_, j) => j % 4 !== 3);
        assert.deepEqual(img.data, rgb, `${what}: the same RGB without alpha`);
      } else {
        assert.deepEqual(await expectValue(what, () => decodeImage(dropped, name)), base, what);
      }
      tally.add(
        `chunk dropped (${
          ["IHDR", "IDAT", "IEND", "PLTE", "tRNS"].includes(ch.type) ? ch.type : "ancillary"
        })`,
      );

      const twice = pngFile([...chunks.slice(0, k + 1), ch, ...chunks.slice(k + 1)]);
      const copyAt = ch.pos + 12 + ch.body.length;
      const dup = `${name}: ${ch.type} duplicated`;
      if (ch.type === "IHDR" || ch.type === "PLTE") {
        await expectError(
          dup,
          () => decodeImage(twice, name),
          SyntaxError,
          pngError(name, `more than one ${ch.type} chunk (a second at byte ${copyAt})`),
        );
      } else if (ch.type === "IDAT") {
        await expectError(
          dup,
          () => decodeImage(twice, name),
          SyntaxError,
          new RegExp(`^${literal(pngError(name, "image data does not inflate ("))}.+\\)$`),
        );
      } else {
        assert.deepEqual(await expectValue(dup, () => decodeImage(twice, name)), base, dup);
      }
      tally.add(
        `chunk duplicated (${
          ["IHDR", "IDAT", "PLTE"].includes(ch.type) ? ch.type : "IEND, tRNS, ancillary"
        })`,
      );
    }
  }
});

Deno.test("fuzz png: scanlines and compressed data changed behind valid CRCs", async () => {
  for (const fx of await fixtures()) {
    const { file, chunks, hdr, raw, base } = fx;
    const rng = new Rng(0x5eed + file.length);
    const { starts, needed } = rows(hdr);
    const isFilterByte = new Set(starts.map(([p]) => p));
    const withIdat = async (data: Uint8Array) => {
      const z = await deflate(data);
      return pngFile([...chunks.filter((c) => c.type !== "IDAT" && c.type !== "IEND"), {
        type: "IDAT",
        body: z,
      }, { type: "IEND", body: new Uint8Array(0) }]);
    };
    const palette = hdr.colorType === 3;
    const alpha = base.channels === 4;
    for (let i = 0; i < 12; i++) {
      const name = `${file}#raw${i}`;
      const kind = i % 4;
      if (kind === 0) {
        const cut = 1 + rng.int(raw.length - 1);
        await expectError(
          `${name}: ${cut} bytes cut from the scanlines`,
          async () => decodeImage(await withIdat(raw.slice(0, raw.length - cut)), name),
          SyntaxError,
          pngError(
            name,
            `image data is truncated (${
              raw.length - cut
            } of ${needed} bytes for ${hdr.width}x${hdr.height})`,
          ),
        );
        tally.add("scanlines cut (zlib and CRC valid)");
      } else if (kind === 1) {
        const extra = Uint8Array.from({ length: 1 + rng.int(64) }, () => rng.int(256));
        const bytes = await withIdat(concat(raw, extra));
        assert.deepEqual(
          await expectValue(`${name}: bytes after the last row`, () => decodeImage(bytes, name)),
          base,
          name,
        );
        tally.add("bytes appended after the last scanline");
      } else if (kind === 2) {
        const [p, r] = pick(rng, starts);
        const data = raw.slice();
        data[p] = 5 + rng.int(251);
        await expectError(
          `${name}: filter byte of row ${r} at ${p} set to ${data[p]}`,
          async () => decodeImage(await withIdat(data), name),
          SyntaxError,
          pngError(name, `unknown filter type ${data[p]} in row ${r}`),
        );
        tally.add("a row's filter type set above 4");
      } else {
        const data = raw.slice();
        let p = rng.int(raw.length);
        while (isFilterByte.has(p)) p = rng.int(raw.length);
        data[p] = otherByte(rng, data[p]);
        const bytes = await withIdat(data);
        const what = `${name}: sample byte ${p} changed`;
        if (palette) await expectHeaderSizedOrRowError(what, bytes, hdr, alpha, name);
        else {
          const img = await expectValue(what, () => decodeImage(bytes, name));
          assert.deepEqual([img.width, img.height, img.channels], [
            base.width,
            base.height,
            base.channels,
          ], what);
          assert.equal(img.data.length, base.data.length, what);
        }
        tally.add("a sample byte changed (decodes to the same size)");
      }
    }
    const idat = chunks.find((c) => c.type === "IDAT")!;
    for (let i = 0; i < 4; i++) {
      const body = flipBytes(rng, idat.body, 1 + rng.int(3));
      const bytes = pngFile(chunks.map((c) => (c === idat ? { type: "IDAT", body } : c)));
      const name = `${file}#z${i}`;
      const what = `${name}: compressed bytes changed, CRC fixed`;
      let inflated: Uint8Array | undefined;
      try {
        inflated = await inflate(body);
      } catch { /* the zlib stream is broken */ }
      if (!inflated) {
        await expectError(
          what,
          () => decodeImage(bytes, name),
          SyntaxError,
          new RegExp(`^${literal(pngError(name, "image data does not inflate ("))}.+\\)$`),
        );
      } else if (inflated.length < needed) {
        await expectError(
          what,
          () => decodeImage(bytes, name),
          SyntaxError,
          pngError(
            name,
            `image data is truncated (${inflated.length} of ${needed} bytes for ${hdr.width}x${hdr.height})`,
          ),
        );
      } else await expectHeaderSizedOrRowError(what, bytes, hdr, alpha, name);
      tally.add("compressed IDAT bytes changed (CRC fixed)");
    }
  }
});

Deno.test("fuzz png: bursts of changed bytes", async () => {
  // Heavier damage than one byte: up to 33 bytes in a 64-byte window, CRCs not fixed; the first
  // changed chunk still decides the error, as for a single byte.
  for (const fx of await fixtures()) {
    const rng = new Rng(0xc0ffee + fx.file.length);
    for (let i = 0; i < 6; i++) {
      const start = 8 + rng.int(fx.good.length - 8);
      const end = Math.min(fx.good.length, start + 64);
      const bytes = flipBytes(rng, fx.good, 4 + rng.int(30), start, end);
      let p = 0;
      while (bytes[p] === fx.good[p]) p++;
      const name = `${fx.file}#burst${i}`;
      await expectError(
        `${name}: burst in [${start}, ${end}), first changed at ${p}`,
        () => decodeImage(bytes, name),
        SyntaxError,
        firstChangeError(name, fx.chunks, bytes, p),
      );
      tally.add("burst of changed bytes in a 64-byte window");
    }
  }
  tally.report();
});
