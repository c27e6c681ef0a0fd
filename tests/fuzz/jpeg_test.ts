/**
 * Fuzzing `decodeImage` (`data/image.ts`) on JPEG files: the fixtures of `tests/fixtures/data/`
 * (baseline 4:2:0, 4:2:2, 4:4:4, gray, progressive 4:2:0 and 4:4:4, restart intervals), mutated.
 *
 * What must happen, by mutation class (errors are SyntaxError `Cannot decode JPEG "NAME": ...`):
 * - truncated at any byte → exactly what is cut: `no SOI marker` (under 4 bytes), `file is
 *   truncated` (inside a marker or length), `segment 0xffXX at byte P runs past the end`, `no
 *   frame (SOF) found`, `component C has no scan data (no SOS segment names it: truncated
 *   file?)`, `no EOI marker (file truncated)`; inside entropy-coded data, `scan data is
 *   truncated` (the decoder pads at most 4 missing bytes with zeros) or `no EOI marker (file
 *   truncated)`. Under 2 bytes: `Cannot decode image "NAME": not a PNG or JPEG file`.
 * - bytes of entropy-coded data changed (never creating or breaking a marker) → genuinely may
 *   decode, like libjpeg: an image of the frame's size, `width * height * 3` bytes; or a scan
 *   error: `bad Huffman code`, `DC magnitude N`, `AC coefficient index past 63`, `bad AC
 *   refinement size`, `scan data is truncated (...)`.
 * - a header field changed → its error: SOF precision, size 0, size over 2^28 pixels, component
 *   count, sampling factors, an unsupported SOF type; a DQT table id over 3 or 16-bit precision
 *   in an 8-bit-sized segment; a DHT class/id out of range or counts past the segment; an SOS
 *   component count, an unknown component, an undefined Huffman table, spectral selection in a
 *   baseline scan, a bad progressive spectral range. A DQT value changed → decodes, same size.
 * - a segment dropped → SOF: `SOS before SOF`; a DQT: `quantisation table T is not defined`; a
 *   DHT (baseline): `scan uses an undefined Huffman table`; the SOS header (baseline): `component
 *   C has no scan data`; an APPn: the same pixels.
 * - a segment duplicated → SOF: `more than one frame`; DQT, DHT, APPn: the same pixels.
 * - an unknown APPn/COM segment, 0xff fill bytes or stray non-marker bytes inserted between
 *   segments → ignored: the same pixels.
 * - SOI followed by bytes without a marker → `no frame (SOF) found`.
 * Every case must finish within the budget and throw nothing but the SyntaxError stated.
 */

import assert from "node:assert/strict";
import { type DecodedImage, decodeImage } from "../../data/image.ts";
import {
  between,
  concat,
  DATA_FIXTURES,
  expectError,
  expectValue,
  type JpegSegment,
  jpegSegments,
  literal,
  otherByte,
  pick,
  Rng,
  Tally,
} from "./mutators.ts";

const FILES = [
  "baseline_420.jpg",
  "baseline_422.jpg",
  "baseline_444.jpg",
  "gray.jpg",
  "progressive_420.jpg",
  "progressive_444.jpg",
  "restart_420.jpg",
];

const tally = new Tally("jpeg");

interface Scan {
  seg: JpegSegment;
  comps: number[];
  ss: number;
  se: number;
  ah: number;
  al: number;
}

interface Fixture {
  file: string;
  good: Uint8Array;
  base: DecodedImage;
  segs: JpegSegment[];
  sof: JpegSegment;
  progressive: boolean;
  /** Component ids in frame order, and their quantisation tables. */
  comps: { id: number; tq: number }[];
  scans: Scan[];
  /** Huffman table ids ever defined, by class (0: DC, 1: AC). */
  tables: [Set<number>, Set<number>];
}

async function fixtures(): Promise<Fixture[]> {
  const out: Fixture[] = [];
  for (const file of FILES) {
    const good = await Deno.readFile(new URL(file, DATA_FIXTURES));
    const segs = jpegSegments(good);
    const sof = segs.find((s) => s.marker >= 0xc0 && s.marker <= 0xc2)!;
    const nc = good[sof.start + 9];
    const comps = Array.from({ length: nc }, (_, k) => ({
      id: good[sof.start + 10 + 3 * k],
      tq: good[sof.start + 12 + 3 * k] & 3,
    }));
    const scans = segs.filter((s) => s.marker === 0xda).map((seg) => {
      const ns = good[seg.start + 4];
      const b = seg.start + 5 + 2 * ns;
      return {
        seg,
        comps: Array.from({ length: ns }, (_, k) => good[seg.start + 5 + 2 * k]),
        ss: good[b],
        se: good[b + 1],
        ah: good[b + 2] >> 4,
        al: good[b + 2] & 15,
      };
    });
    const tables: [Set<number>, Set<number>] = [new Set(), new Set()];
    for (const s of segs.filter((s) => s.marker === 0xc4)) {
      const b = good[s.start + 4];
      tables[b >> 4].add(b & 15);
    }
    out.push({
      file,
      good,
      base: await decodeImage(good, file),
      segs,
      sof,
      progressive: sof.marker === 0xc2,
      comps,
      scans,
      tables,
    });
  }
  return out;
}

const jpegError = (name: string, why: string) => `Cannot decode JPEG "${name}": ${why}`;
const hex2 = (v: number) => v.toString(16).padStart(2, "0");
const SCAN_TRUNCATED = String.raw`scan data is truncated( \(marker 0xff[0-9a-f]{2} at byte \d+\))?`;

/** The error of `good` cut to `c` bytes: exactly, or a pattern inside entropy-coded data. */
function cutError(fx: Fixture, name: string, c: number): string | RegExp {
  if (c < 2) return `Cannot decode image "${name}": not a PNG or JPEG file`;
  if (c < 4) return jpegError(name, "no SOI marker");
  let sawFrame = false;
  const scanned = new Set<number>();
  for (const seg of fx.segs) {
    if (c === seg.start) {
      if (!sawFrame) return jpegError(name, "no frame (SOF) found");
      const missing = fx.comps.find((k) => !scanned.has(k.id));
      return jpegError(
        name,
        missing
          ? `component ${missing.id} has no scan data (no SOS segment names it: truncated file?)`
          : "no EOI marker (file truncated)",
      );
    }
    if (c < seg.start + 4) return jpegError(name, "file is truncated");
    if (c < seg.end) {
      return jpegError(
        name,
        `segment 0xff${hex2(seg.marker)} at byte ${seg.start} runs past the end`,
      );
    }
    if (seg === fx.sof) sawFrame = true;
    if (seg.marker === 0xda) {
      if (c < seg.dataEnd!) {
        return new RegExp(
          `^${literal(jpegError(name, ""))}(${SCAN_TRUNCATED}|no EOI marker \\(file truncated\\))$`,
        );
      }
      for (const id of fx.scans.find((s) => s.seg === seg)!.comps) scanned.add(id);
    }
  }
  throw new Error(`cut ${c} is not a truncation of ${fx.file}`);
}

/** A copy of `good` with `at` set to `value` (a byte or bytes). */
function withBytes(good: Uint8Array, at: number, ...values: number[]): Uint8Array {
  const out = good.slice();
  out.set(values, at);
  return out;
}

/** A copy of `good` without `[start, end)` and with `insert` in its place. */
function splice(
  good: Uint8Array,
  start: number,
  end: number,
  insert: Uint8Array = new Uint8Array(0),
) {
  return concat(good.subarray(0, start), insert, good.subarray(end));
}

Deno.test("fuzz jpeg: truncation and entropy-coded data", async () => {
  for (const fx of await fixtures()) {
    const { file, good, base } = fx;
    const rng = new Rng(0x3a9 + file.length * 7);
    for (let i = 0; i < 16; i++) {
      // every fourth cut inside entropy-coded data, where most of the file is
      const scan = pick(rng, fx.scans).seg;
      const c = i % 4 === 3
        ? between(rng, scan.end, scan.dataEnd!)
        : i === 0
        ? rng.int(4)
        : between(rng, 4, good.length);
      const name = `${file}[:${c}]`;
      await expectError(
        `${name}: truncated`,
        () => decodeImage(good.slice(0, c), name),
        SyntaxError,
        cutError(fx, name, c),
      );
      tally.add(i % 4 === 3 ? "truncated inside entropy-coded data" : "truncated at a random byte");
    }
    const scanError = (name: string) =>
      new RegExp(
        `^${
          literal(jpegError(name, ""))
        }(bad Huffman code|DC magnitude \\d+|AC coefficient index past 63|bad AC refinement size|${SCAN_TRUNCATED})$`,
      );
    for (let i = 0; i < 10; i++) {
      const { seg } = pick(rng, fx.scans);
      const bytes = good.slice();
      const n = 1 + rng.int(4);
      for (let k = 0; k < n; k++) {
        let p = between(rng, seg.end, seg.dataEnd!);
        // leave markers and byte stuffing (0xff and the byte after it) alone
        for (let tries = 0; tries < 20 && (good[p] === 0xff || good[p - 1] === 0xff); tries++) {
          p = between(rng, seg.end, seg.dataEnd!);
        }
        if (good[p] === 0xff || good[p - 1] === 0xff) continue;
        bytes[p] = otherByte(rng, bytes[p], [0xff]);
      }
      const name = `${file}#entropy${i}`;
      const what = `${name}: entropy-coded bytes of the scan at ${seg.start} changed`;
      let img: DecodedImage | undefined;
      try {
        img = await decodeImage(bytes, name);
      } catch { /* checked below */ }
      if (img) {
        assert.deepEqual([img.width, img.height, img.channels], [base.width, base.height, 3], what);
        assert.equal(img.data.length, base.width * base.height * 3, what);
      } else await expectError(what, () => decodeImage(bytes, name), SyntaxError, scanError(name));
      tally.add("entropy-coded bytes changed (may decode)");
    }
    for (let i = 0; i < 2; i++) {
      const junk = Uint8Array.from({ length: 1 + rng.int(100) }, () => rng.int(255));
      const name = `${file}#nomarker${i}`;
      await expectError(
        `${name}: SOI then bytes without a marker`,
        () => decodeImage(concat(good.subarray(0, 2), junk), name),
        SyntaxError,
        jpegError(name, "no frame (SOF) found"),
      );
      tally.add("SOI followed by bytes without a marker");
    }
  }
});

Deno.test("fuzz jpeg: header fields", async () => {
  for (const fx of await fixtures()) {
    const { file, good, sof, comps, scans } = fx;
    const rng = new Rng(0x77 + file.length * 3);
    const s = sof.start;
    let n = 0;
    const check = async (
      cls: string,
      bytes: Uint8Array,
      why: (name: string) => string,
      i: number,
    ) => {
      const name = `${file}#field${n++}.${i}`;
      await expectError(
        `${name}: ${cls}`,
        () => decodeImage(bytes, name),
        SyntaxError,
        jpegError(name, why(name)),
      );
      tally.add(cls);
    };
    for (let i = 0; i < 2; i++) {
      const p = otherByte(rng, 8);
      await check(
        "SOF precision",
        withBytes(good, s + 4, p),
        () => `sample precision ${p} (only 8-bit is supported)`,
        i,
      );
      const zeroH = rng.int(2) === 0;
      const w = zeroH ? 1 + rng.int(65535) : 0, h = zeroH ? 0 : rng.int(65536);
      await check(
        "SOF size zero",
        withBytes(good, s + 5, h >> 8, h & 255, w >> 8, w & 255),
        () => `image size ${w}x${h}`,
        i,
      );
      const big = between(rng, 16385, 65536), big2 = between(rng, 16385, 65536);
      await check(
        "SOF size over 2^28 pixels",
        withBytes(good, s + 5, big >> 8, big & 255, big2 >> 8, big2 & 255),
        () => `image size ${big2}x${big} is too large`,
        i,
      );
      const nc = pick(rng, [0, 2, 5, 6, 7, 100, 255]);
      await check("SOF component count", withBytes(good, s + 9, nc), () => `${nc} components`, i);
      const k = rng.int(comps.length);
      const bad = rng.int(2) === 0
        ? (pick(rng, [0, 5, 9, 15]) << 4) | 1
        : 0x10 | pick(rng, [0, 5, 9, 15]);
      await check(
        "SOF sampling factors",
        withBytes(good, s + 11 + 3 * k, bad),
        () => `component ${comps[k].id} has sampling ${bad >> 4}x${bad & 15}`,
        i,
      );
      const m = pick(rng, [0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);
      await check(
        "SOF unsupported coding",
        withBytes(good, s + 1, m),
        () => `unsupported coding process (SOF${m - 0xc0})`,
        i,
      );
    }
    const dqts = fx.segs.filter((x) => x.marker === 0xdb && x.end - x.start === 69);
    for (let i = 0; i < 2; i++) {
      const d = pick(rng, dqts);
      const tq = between(rng, 4, 16);
      await check(
        "DQT table id over 3",
        withBytes(good, d.start + 4, tq),
        () => `quantisation table id ${tq}`,
        i,
      );
      const pq = between(rng, 1, 16);
      await check(
        "DQT precision over an 8-bit segment",
        withBytes(good, d.start + 4, (pq << 4) | (good[d.start + 4] & 15)),
        () => "DQT segment is short",
        i,
      );
      const value = withBytes(good, between(rng, d.start + 5, d.end), between(rng, 1, 256));
      const name = `${file}#dqtvalue${i}`;
      const img = await expectValue(
        `${name}: a quantisation value changed`,
        () => decodeImage(value, name),
      );
      assert.deepEqual([img.width, img.height, img.data.length], [
        fx.base.width,
        fx.base.height,
        fx.base.data.length,
      ], name);
      tally.add("DQT value changed (decodes, same size)");
    }
    const dhts = fx.segs.filter((x) => {
      if (x.marker !== 0xc4) return false;
      let total = 0;
      for (let j = 0; j < 16; j++) total += good[x.start + 5 + j];
      return x.end - x.start === 2 + 2 + 17 + total; // one table per segment
    });
    for (let i = 0; i < 2; i++) {
      const d = pick(rng, dhts);
      const b = good[d.start + 4];
      const tc = rng.int(2) === 0 ? between(rng, 2, 16) : b >> 4;
      const th = tc === b >> 4 ? between(rng, 4, 16) : b & 15;
      await check(
        "DHT class or id out of range",
        withBytes(good, d.start + 4, (tc << 4) | th),
        () => `Huffman table class ${tc} id ${th}`,
        i,
      );
      const j = rng.int(16);
      const more = Math.min(255, good[d.start + 5 + j] + between(rng, 1 + (d.end - d.start), 300));
      await check(
        "DHT counts past the segment",
        withBytes(good, d.start + 5 + j, more),
        () => "DHT segment is short",
        i,
      );
    }
    const definedNot = (cls: 0 | 1) => [0, 1, 2, 3].filter((id) => !fx.tables[cls].has(id));
    for (let i = 0; i < 2; i++) {
      const scan = pick(rng, scans);
      const ss = scan.seg.start;
      const ns = pick(rng, [0, 5, 6, 50, 255]);
      await check(
        "SOS component count",
        withBytes(good, ss + 4, ns),
        () => `SOS with ${ns} components`,
        i,
      );
      const k = rng.int(scan.comps.length);
      let id = rng.int(256);
      while (comps.some((c) => c.id === id)) id = rng.int(256);
      await check(
        "SOS unknown component",
        withBytes(good, ss + 5 + 2 * k, id),
        () => `scan names unknown component ${id}`,
        i,
      );
      // an undefined Huffman table, for a table the scan uses
      const usesDc = !fx.progressive || (scan.ss === 0 && scan.ah === 0);
      const free = definedNot(usesDc ? 0 : 1);
      if (free.length > 0 && (usesDc || scan.ss > 0)) {
        const t = good[ss + 6 + 2 * k];
        const sel = usesDc ? (pick(rng, free) << 4) | (t & 15) : (t & 0xf0) | pick(rng, free);
        await check(
          "SOS undefined Huffman table",
          withBytes(good, ss + 6 + 2 * k, sel),
          () => "scan uses an undefined Huffman table",
          i,
        );
      }
      const b = ss + 5 + 2 * scan.comps.length;
      if (!fx.progressive) {
        const f = rng.int(3);
        const bytes = f === 0
          ? withBytes(good, b, between(rng, 1, 64))
          : f === 1
          ? withBytes(good, b + 1, between(rng, 0, 63))
          : withBytes(good, b + 2, between(rng, 1, 256));
        await check(
          "SOS spectral selection in a baseline scan",
          bytes,
          () => "baseline scan with spectral selection",
          i,
        );
      } else {
        const pair = pick(rng, [[between(rng, 2, 64), 1], [0, between(rng, 64, 256)], [
          between(rng, 64, 256),
          63,
        ], [0, between(rng, 1, 64)]]);
        const [s0, s1] = pair;
        await check(
          "SOS progressive spectral range",
          withBytes(good, b, s0, s1),
          () => `scan with spectral range ${s0}..${s1}`,
          i,
        );
      }
    }
  }
});

Deno.test("fuzz jpeg: segments dropped, duplicated and inserted", async () => {
  for (const fx of await fixtures()) {
    const { file, good, base, segs, sof, comps } = fx;
    const rng = new Rng(0xd00d + file.length);
    const cases: [string, Uint8Array, string | null][] = [];
    cases.push(["SOF dropped", splice(good, sof.start, sof.end), "SOS before SOF"]);
    cases.push([
      "SOF duplicated",
      splice(good, sof.end, sof.end, good.slice(sof.start, sof.end)),
      "more than one frame",
    ]);
    const dqtIds = (d: JpegSegment) => {
      const ids: number[] = [];
      for (let q = d.start + 4; q < d.end; q += 1 + 64 * ((good[q] >> 4) ? 2 : 1)) {
        ids.push(good[q] & 15);
      }
      return ids;
    };
    const dqts = segs.filter((x) => x.marker === 0xdb);
    for (const d of dqts) {
      // the tables only this segment defines
      const others = new Set(dqts.filter((x) => x !== d).flatMap(dqtIds));
      const ids = new Set(dqtIds(d).filter((id) => !others.has(id)));
      const first = comps.find((c) => ids.has(c.tq));
      if (first) {
        cases.push([
          "DQT dropped",
          splice(good, d.start, d.end),
          `quantisation table ${first.tq} is not defined`,
        ]);
      }
      cases.push(["DQT duplicated", splice(good, d.end, d.end, good.slice(d.start, d.end)), null]);
    }
    for (const d of segs.filter((x) => x.marker === 0xc4)) {
      if (!fx.progressive) {
        cases.push([
          "DHT dropped (baseline)",
          splice(good, d.start, d.end),
          "scan uses an undefined Huffman table",
        ]);
      }
      cases.push(["DHT duplicated", splice(good, d.end, d.end, good.slice(d.start, d.end)), null]);
    }
    if (!fx.progressive) {
      const sos = fx.scans[0].seg;
      cases.push([
        "SOS header dropped (baseline)",
        splice(good, sos.start, sos.end),
        `component ${comps[0].id} has no scan data (no SOS segment names it: truncated file?)`,
      ]);
    }
    for (const a of segs.filter((x) => x.marker >= 0xe0 && x.marker <= 0xef)) {
      cases.push(["APPn dropped", splice(good, a.start, a.end), null]);
      cases.push(["APPn duplicated", splice(good, a.end, a.end, good.slice(a.start, a.end)), null]);
    }
    const beforeScan = segs.filter((x) => x.start <= fx.scans[0].seg.start).map((x) => x.start);
    for (let i = 0; i < 4; i++) {
      const at = pick(rng, beforeScan);
      const marker = pick(rng, [0xe1, 0xe2, 0xe5, 0xe9, 0xed, 0xef, 0xfe]);
      const body = Uint8Array.from({ length: rng.int(60) }, () => rng.int(256));
      const segment = concat(
        new Uint8Array([0xff, marker, (body.length + 2) >> 8, (body.length + 2) & 255]),
        body,
      );
      cases.push([`unknown APPn/COM segment inserted`, splice(good, at, at, segment), null]);
      const fill = new Uint8Array(1 + rng.int(8)).fill(0xff);
      cases.push(["0xff fill bytes inserted before a marker", splice(good, at, at, fill), null]);
      const stray = Uint8Array.from({ length: 1 + rng.int(20) }, () => rng.int(255));
      cases.push(["stray non-marker bytes between segments", splice(good, at, at, stray), null]);
    }
    for (const [i, [cls, bytes, why]] of cases.entries()) {
      const name = `${file}#seg${i}`;
      if (why === null) {
        const img = await expectValue(`${name}: ${cls}`, () => decodeImage(bytes, name));
        assert.deepEqual(img, base, `${name}: ${cls}: the same pixels`);
      } else {await expectError(
          `${name}: ${cls}`,
          () => decodeImage(bytes, name),
          SyntaxError,
          jpegError(name, why),
        );}
      tally.add(cls);
    }
  }
  tally.report();
});
