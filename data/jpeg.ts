/**
 * JPEG decoding: baseline and progressive Huffman-coded files (8-bit), gray,
 * YCbCr, RGB and Adobe CMYK/YCCK, any chroma subsampling, restart intervals.
 * The IDCT is a float one and chroma upsampling follows libjpeg's "fancy"
 * (triangle) filter for 2x1 and 2x2, so pixels agree with libjpeg-turbo to
 * within a couple of levels (rounding differs in the IDCT).
 *
 * ```ts ignore
 * const img = decodeJpeg(await Deno.readFile("photo.jpg"), "photo.jpg");
 * ```
 *
 * @module
 */

import type { DecodedImage } from "./image.ts";

/** Largest pixel count accepted. */
export const JPEG_MAX_PIXELS = 1 << 28;

const ZIGZAG = new Uint8Array([
  0,
  1,
  8,
  16,
  9,
  2,
  3,
  10,
  17,
  24,
  32,
  25,
  18,
  11,
  4,
  5,
  12,
  19,
  26,
  33,
  40,
  48,
  41,
  34,
  27,
  20,
  13,
  6,
  7,
  14,
  21,
  28,
  35,
  42,
  49,
  56,
  57,
  50,
  43,
  36,
  29,
  22,
  15,
  23,
  30,
  37,
  44,
  51,
  58,
  59,
  52,
  45,
  38,
  31,
  39,
  46,
  53,
  60,
  61,
  54,
  47,
  55,
  62,
  63,
]);

const COS = (() => {
  const t = new Float64Array(64);
  for (let x = 0; x < 8; x++) {
    for (let u = 0; u < 8; u++) {
      t[x * 8 + u] = (u === 0 ? Math.SQRT1_2 : 1) * Math.cos(((2 * x + 1) * u * Math.PI) / 16) / 2;
    }
  }
  return t;
})();

interface Huffman {
  maxcode: Int32Array;
  valptr: Int32Array;
  mincode: Int32Array;
  values: Uint8Array;
}

interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  blocksPerLine: number;
  blocksPerColumn: number;
  blocksPerLineMcu: number;
  blocksPerColumnMcu: number;
  coeffs: Int16Array;
  dcTable?: Huffman;
  acTable?: Huffman;
  pred: number;
}

class JpegError extends SyntaxError {}

function buildHuffman(counts: Uint8Array, values: Uint8Array): Huffman {
  const maxcode = new Int32Array(18).fill(-1);
  const valptr = new Int32Array(17);
  const mincode = new Int32Array(17);
  let code = 0, k = 0;
  for (let l = 1; l <= 16; l++) {
    valptr[l] = k;
    mincode[l] = code;
    code += counts[l - 1];
    k += counts[l - 1];
    maxcode[l] = counts[l - 1] ? code - 1 : -1;
    code <<= 1;
  }
  return { maxcode, valptr, mincode, values };
}

function idctBlock(
  coef: Int16Array,
  off: number,
  q: Uint16Array,
  out: Uint8Array,
  o: number,
  stride: number,
): void {
  const tmp = new Float64Array(64);
  // rows: for each frequency row v, transform over u -> x
  for (let v = 0; v < 8; v++) {
    for (let x = 0; x < 8; x++) {
      let s = 0;
      for (let u = 0; u < 8; u++) {
        const c = coef[off + v * 8 + u];
        if (c) s += COS[x * 8 + u] * c * q[v * 8 + u];
      }
      tmp[v * 8 + x] = s;
    }
  }
  for (let x = 0; x < 8; x++) {
    for (let y = 0; y < 8; y++) {
      let s = 0;
      for (let v = 0; v < 8; v++) s += COS[y * 8 + v] * tmp[v * 8 + x];
      const val = Math.round(s + 128);
      out[o + y * stride + x] = val < 0 ? 0 : val > 255 ? 255 : val;
    }
  }
}

/**
 * Decode a JPEG file to 8-bit RGB.
 *
 * @param bytes File contents.
 * @param name File name for error messages.
 * @returns The image (3 channels).
 * @throws {SyntaxError} Naming the file and the reason (unsupported coding, bad tables,
 *   truncation: every component needs scan data and the file must reach its EOI marker).
 */
export function decodeJpeg(bytes: Uint8Array, name = "<memory>"): DecodedImage {
  try {
    return decode(bytes);
  } catch (e) {
    if (e instanceof JpegError) throw new SyntaxError(`Cannot decode JPEG "${name}": ${e.message}`);
    if (
      e instanceof RangeError &&
      /Invalid typed array length|Array buffer allocation/.test(e.message)
    ) {
      throw new SyntaxError(`Cannot decode JPEG "${name}": ${e.message}`);
    }
    throw e;
  }
}

function decode(data: Uint8Array): DecodedImage {
  const fail = (m: string): never => {
    throw new JpegError(m);
  };
  const n = data.length;
  const u16 = (p: number) => {
    if (p + 1 >= n) fail("file is truncated");
    return (data[p] << 8) | data[p + 1];
  };
  if (n < 4 || data[0] !== 0xff || data[1] !== 0xd8) fail("no SOI marker");
  const qt: (Uint16Array | undefined)[] = [];
  const dcT: (Huffman | undefined)[] = [], acT: (Huffman | undefined)[] = [];
  let frame: {
    progressive: boolean;
    width: number;
    height: number;
    comps: Component[];
    hmax: number;
    vmax: number;
    mcusX: number;
    mcusY: number;
  } | null = null;
  let restart = 0;
  let adobe = -1;
  let jfif = false;
  let p = 2;
  let done = false;
  let eoi = false;
  const scanned = new Set<Component>();
  while (p < n && !done) {
    if (data[p] !== 0xff) {
      p++;
      continue;
    }
    const marker = data[p + 1];
    p += 2;
    if (
      marker === 0xff || marker === 0x00 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01
    ) {
      if (marker === 0xff) p--;
      continue;
    }
    if (marker === 0xd9) {
      eoi = true;
      break;
    }
    const len = u16(p);
    if (len < 2 || p + len > n) {
      fail(
        `segment 0xff${marker.toString(16).padStart(2, "0")} at byte ${p - 2} runs past the end`,
      );
    }
    const seg = p + 2, end = p + len;
    p = end;
    switch (marker) {
      case 0xe0:
        if (data[seg] === 0x4a && data[seg + 1] === 0x46) jfif = true;
        break;
      case 0xee:
        if (data[seg] === 0x41 && data[seg + 1] === 0x64 && len >= 14) adobe = data[seg + 11];
        break;
      case 0xdb: {
        let q = seg;
        while (q < end) {
          const pq = data[q] >> 4, tq = data[q] & 15;
          if (tq > 3) fail(`quantisation table id ${tq}`);
          const t = new Uint16Array(64);
          q++;
          for (let i = 0; i < 64; i++) {
            if (q + (pq ? 1 : 0) >= end + (pq ? 0 : 1)) fail("DQT segment is short");
            t[ZIGZAG[i]] = pq ? (data[q] << 8) | data[q + 1] : data[q];
            q += pq ? 2 : 1;
          }
          qt[tq] = t;
        }
        break;
      }
      case 0xc4: {
        let q = seg;
        while (q < end) {
          const tc = data[q] >> 4, th = data[q] & 15;
          if (tc > 1 || th > 3) fail(`Huffman table class ${tc} id ${th}`);
          if (q + 17 > end) fail("DHT segment is short");
          const counts = data.subarray(q + 1, q + 17);
          let total = 0;
          for (const c of counts) total += c;
          if (q + 17 + total > end || total > 256) fail("DHT segment is short");
          const table = buildHuffman(counts, data.slice(q + 17, q + 17 + total));
          (tc === 0 ? dcT : acT)[th] = table;
          q += 17 + total;
        }
        break;
      }
      case 0xdd:
        restart = u16(seg);
        break;
      case 0xc0:
      case 0xc1:
      case 0xc2: {
        if (frame) fail("more than one frame");
        if (data[seg] !== 8) fail(`sample precision ${data[seg]} (only 8-bit is supported)`);
        const height = u16(seg + 1), width = u16(seg + 3), nc = data[seg + 5];
        if (width === 0 || height === 0) fail(`image size ${width}x${height}`);
        if (width * height > JPEG_MAX_PIXELS) fail(`image size ${width}x${height} is too large`);
        if (![1, 3, 4].includes(nc)) fail(`${nc} components`);
        if (seg + 6 + nc * 3 > end) fail("SOF segment is short");
        const comps: Component[] = [];
        for (let i = 0; i < nc; i++) {
          const b = seg + 6 + i * 3;
          const h = data[b + 1] >> 4, v = data[b + 1] & 15;
          if (h < 1 || h > 4 || v < 1 || v > 4) fail(`component ${data[b]} has sampling ${h}x${v}`);
          comps.push({
            id: data[b],
            h,
            v,
            tq: data[b + 2] & 3,
            blocksPerLine: 0,
            blocksPerColumn: 0,
            blocksPerLineMcu: 0,
            blocksPerColumnMcu: 0,
            coeffs: new Int16Array(0),
            pred: 0,
          });
        }
        const hmax = Math.max(...comps.map((c) => c.h)), vmax = Math.max(...comps.map((c) => c.v));
        const mcusX = Math.ceil(width / (8 * hmax)), mcusY = Math.ceil(height / (8 * vmax));
        for (const c of comps) {
          c.blocksPerLine = Math.ceil(Math.ceil((width * c.h) / hmax) / 8);
          c.blocksPerColumn = Math.ceil(Math.ceil((height * c.v) / vmax) / 8);
          c.blocksPerLineMcu = mcusX * c.h;
          c.blocksPerColumnMcu = mcusY * c.v;
          c.coeffs = new Int16Array(c.blocksPerLineMcu * c.blocksPerColumnMcu * 64);
        }
        frame = { progressive: marker === 0xc2, width, height, comps, hmax, vmax, mcusX, mcusY };
        break;
      }
      case 0xda: {
        if (!frame) fail("SOS before SOF");
        const f = frame!;
        const ns = data[seg];
        if (ns < 1 || ns > 4 || seg + 1 + ns * 2 + 3 > end) fail(`SOS with ${ns} components`);
        const sc: Component[] = [];
        for (let i = 0; i < ns; i++) {
          const cid = data[seg + 1 + i * 2], t = data[seg + 2 + i * 2];
          const c = f.comps.find((x) => x.id === cid);
          if (!c) fail(`scan names unknown component ${cid}`);
          c!.dcTable = dcT[t >> 4];
          c!.acTable = acT[t & 15];
          sc.push(c!);
          scanned.add(c!);
        }
        const b = seg + 1 + ns * 2;
        const ss = data[b], se = data[b + 1], ah = data[b + 2] >> 4, al = data[b + 2] & 15;
        if (!f.progressive && (ss !== 0 || se !== 63 || ah !== 0 || al !== 0)) {
          fail("baseline scan with spectral selection");
        }
        if (ss > 63 || se > 63 || ss > se || (ss === 0 && se !== 0 && f.progressive)) {
          fail(`scan with spectral range ${ss}..${se}`);
        }
        p = decodeScan(data, end, f, sc, restart, ss, se, ah, al, fail);
        break;
      }
      default:
        if (
          marker >= 0xc3 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc
        ) {
          fail(`unsupported coding process (SOF${marker - 0xc0})`);
        }
    }
    if (frame && p >= n) done = true;
  }
  if (!frame) return fail("no frame (SOF) found");
  const f = frame;
  for (const c of f.comps) {
    if (!scanned.has(c)) {
      fail(`component ${c.id} has no scan data (no SOS segment names it: truncated file?)`);
    }
  }
  if (!eoi) fail("no EOI marker (file truncated)");
  // Dequantise + IDCT each component into a plane.
  const planes: Uint8Array[] = [];
  for (const c of f.comps) {
    const q = qt[c.tq];
    if (!q) fail(`quantisation table ${c.tq} is not defined`);
    const w = c.blocksPerLineMcu * 8, h = c.blocksPerColumnMcu * 8;
    const plane = new Uint8Array(w * h);
    for (let by = 0; by < c.blocksPerColumnMcu; by++) {
      for (let bx = 0; bx < c.blocksPerLineMcu; bx++) {
        idctBlock(c.coeffs, (by * c.blocksPerLineMcu + bx) * 64, q!, plane, by * 8 * w + bx * 8, w);
      }
    }
    planes.push(plane);
  }
  const { width, height } = f;
  const full = f.comps.map((c, i) => upsample(planes[i], c, f.hmax, f.vmax, width, height));
  const out = new Uint8Array(width * height * 3);
  const nc = f.comps.length;
  const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));
  if (nc === 1) {
    for (let i = 0; i < width * height; i++) {
      out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = full[0][i];
    }
  } else if (nc === 3) {
    const rgb = adobe === 0 ||
      (!jfif && adobe < 0 && f.comps[0].id === 0x52 && f.comps[1].id === 0x47);
    const [Y, Cb, Cr] = full;
    for (let i = 0; i < width * height; i++) {
      if (rgb) {
        out[3 * i] = Y[i], out[3 * i + 1] = Cb[i], out[3 * i + 2] = Cr[i];
        continue;
      }
      const y = Y[i], cb = Cb[i] - 128, cr = Cr[i] - 128;
      out[3 * i] = clamp(y + 1.402 * cr);
      out[3 * i + 1] = clamp(y - 0.344136 * cb - 0.714136 * cr);
      out[3 * i + 2] = clamp(y + 1.772 * cb);
    }
  } else {
    const [C0, C1, C2, K] = full;
    for (let i = 0; i < width * height; i++) {
      let c = C0[i], m = C1[i], y = C2[i];
      if (adobe === 2) {
        const yy = c, cb = m - 128, cr = y - 128;
        c = clamp(yy + 1.402 * cr),
          m = clamp(yy - 0.344136 * cb - 0.714136 * cr),
          y = clamp(yy + 1.772 * cb);
      }
      // Adobe stores CMYK inverted: R = C' * K' / 255
      const k = K[i];
      out[3 * i] = clamp((c * k) / 255);
      out[3 * i + 1] = clamp((m * k) / 255);
      out[3 * i + 2] = clamp((y * k) / 255);
    }
  }
  return { width, height, channels: 3, data: out };
}

function upsample(
  plane: Uint8Array,
  c: Component,
  hmax: number,
  vmax: number,
  width: number,
  height: number,
): Uint8Array {
  const pw = c.blocksPerLineMcu * 8;
  const dw = Math.ceil((width * c.h) / hmax), dh = Math.ceil((height * c.v) / vmax);
  const sx = hmax / c.h, sy = vmax / c.v;
  const out = new Uint8Array(width * height);
  if (sx === 1 && sy === 1) {
    for (let y = 0; y < height; y++) out.set(plane.subarray(y * pw, y * pw + width), y * width);
    return out;
  }
  if (sx === 2 && (sy === 1 || sy === 2)) {
    // libjpeg "fancy" upsampling: triangle filter, 3/4 nearer + 1/4 further sample
    const row = new Int32Array(dw);
    for (let y = 0; y < height; y++) {
      const iy = sy === 2 ? y >> 1 : y;
      if (sy === 2) {
        const other = Math.min(dh - 1, Math.max(0, y & 1 ? iy + 1 : iy - 1));
        for (let x = 0; x < dw; x++) row[x] = 3 * plane[iy * pw + x] + plane[other * pw + x];
      } else for (let x = 0; x < dw; x++) row[x] = plane[iy * pw + x];
      const o = y * width;
      for (let x = 0; x < width; x++) {
        const ix = x >> 1;
        const cur = row[ix];
        if (sy === 2) {
          if (dw === 1) out[o + x] = (cur * 4 + 8) >> 4;
          else if (x & 1) {
            out[o + x] = ix === dw - 1 ? (cur * 4 + 7) >> 4 : (cur * 3 + row[ix + 1] + 7) >> 4;
          } else out[o + x] = ix === 0 ? (cur * 4 + 8) >> 4 : (cur * 3 + row[ix - 1] + 8) >> 4;
        } else {
          if (dw === 1) out[o + x] = cur;
          else if (x & 1) out[o + x] = ix === dw - 1 ? cur : (cur * 3 + row[ix + 1] + 2) >> 2;
          else out[o + x] = ix === 0 ? cur : (cur * 3 + row[ix - 1] + 1) >> 2;
        }
      }
    }
    return out;
  }
  for (let y = 0; y < height; y++) {
    const r = Math.floor(y / sy) * pw;
    for (let x = 0; x < width; x++) out[y * width + x] = plane[r + Math.floor(x / sx)];
  }
  return out;
}

function decodeScan(
  data: Uint8Array,
  start: number,
  f: { progressive: boolean; comps: Component[]; mcusX: number; mcusY: number },
  comps: Component[],
  restart: number,
  ss: number,
  se: number,
  ah: number,
  al: number,
  fail: (m: string) => never,
): number {
  let p = start;
  const n = data.length;
  let bitBuf = 0, bitCnt = 0, overrun = 0;
  const readBit = (): number => {
    if (bitCnt === 0) {
      if (p >= n) {
        if (++overrun > 4) fail("scan data is truncated");
        bitBuf = 0;
      } else {
        bitBuf = data[p];
        if (bitBuf === 0xff) {
          const nx = data[p + 1];
          if (nx === 0) p += 2;
          else {
            // a marker: feed zeros without consuming it
            if (++overrun > 4) {
              fail(
                `scan data is truncated (marker 0xff${
                  (nx ?? 0).toString(16).padStart(2, "0")
                } at byte ${p})`,
              );
            }
            bitBuf = 0;
          }
        } else p++;
      }
      bitCnt = 8;
    }
    bitCnt--;
    return (bitBuf >> bitCnt) & 1;
  };
  const receive = (len: number) => {
    let v = 0;
    for (let i = 0; i < len; i++) v = (v << 1) | readBit();
    return v;
  };
  const extend = (
    v: number,
    len: number,
  ) => (len === 0 ? 0 : v < 1 << (len - 1) ? v - (1 << len) + 1 : v);
  const decodeHuff = (t: Huffman | undefined): number => {
    if (!t) fail("scan uses an undefined Huffman table");
    let code = 0;
    for (let l = 1; l <= 16; l++) {
      code = (code << 1) | readBit();
      if (code <= t!.maxcode[l]) return t!.values[t!.valptr[l] + code - t!.mincode[l]];
    }
    return fail("bad Huffman code");
  };
  let eobrun = 0;
  const decodeBlock = (c: Component, off: number) => {
    const z = c.coeffs;
    if (!f.progressive) {
      const s = decodeHuff(c.dcTable);
      if (s > 16) fail(`DC magnitude ${s}`);
      c.pred += extend(receive(s), s);
      z[off] = c.pred;
      for (let k = 1; k < 64;) {
        const rs = decodeHuff(c.acTable);
        const r = rs >> 4, sz = rs & 15;
        if (sz === 0) {
          if (r < 15) break;
          k += 16;
          continue;
        }
        k += r;
        if (k > 63) fail("AC coefficient index past 63");
        z[off + ZIGZAG[k]] = extend(receive(sz), sz);
        k++;
      }
      return;
    }
    if (ss === 0) {
      if (ah === 0) {
        const s = decodeHuff(c.dcTable);
        if (s > 16) fail(`DC magnitude ${s}`);
        c.pred += extend(receive(s), s);
        z[off] = c.pred * (1 << al);
      } else if (readBit()) z[off] |= 1 << al;
      return;
    }
    if (ah === 0) {
      if (eobrun > 0) {
        eobrun--;
        return;
      }
      for (let k = ss; k <= se;) {
        const rs = decodeHuff(c.acTable);
        const r = rs >> 4, sz = rs & 15;
        if (sz === 0) {
          if (r < 15) {
            eobrun = (1 << r) - 1 + (r ? receive(r) : 0);
            break;
          }
          k += 16;
          continue;
        }
        k += r;
        if (k > 63) fail("AC coefficient index past 63");
        z[off + ZIGZAG[k]] = extend(receive(sz), sz) * (1 << al);
        k++;
      }
      return;
    }
    // AC refinement
    const p1 = 1 << al, m1 = -1 << al;
    let k = ss;
    if (eobrun <= 0) {
      for (; k <= se;) {
        const rs = decodeHuff(c.acTable);
        let r = rs >> 4;
        const sz = rs & 15;
        let value = 0;
        if (sz === 0) {
          if (r < 15) {
            eobrun = (1 << r) + (r ? receive(r) : 0);
            break;
          }
        } else {
          if (sz !== 1) fail("bad AC refinement size");
          value = readBit() ? p1 : m1;
        }
        while (k <= se) {
          const zi = off + ZIGZAG[k];
          if (z[zi] !== 0) {
            if (readBit() && (z[zi] & p1) === 0) z[zi] += z[zi] >= 0 ? p1 : m1;
          } else {
            if (r === 0) {
              if (value) z[zi] = value;
              k++;
              break;
            }
            r--;
          }
          k++;
        }
      }
    }
    if (eobrun > 0) {
      for (; k <= se; k++) {
        const zi = off + ZIGZAG[k];
        if (z[zi] !== 0 && readBit() && (z[zi] & p1) === 0) z[zi] += z[zi] >= 0 ? p1 : m1;
      }
      eobrun--;
    }
  };
  const single = comps.length === 1;
  const c0 = comps[0];
  const total = single ? c0.blocksPerLine * c0.blocksPerColumn : f.mcusX * f.mcusY;
  const interval = restart || total;
  for (const c of comps) c.pred = 0;
  for (let m = 0; m < total; m++) {
    if (m > 0 && restart && m % interval === 0) {
      // expect RSTn; reset the bit reader, predictions and EOB run
      bitCnt = 0;
      overrun = 0;
      while (p < n && !(data[p] === 0xff && data[p + 1] >= 0xd0 && data[p + 1] <= 0xd7)) {
        if (data[p] === 0xff && data[p + 1] !== 0 && data[p + 1] !== 0xff) break;
        p++;
      }
      if (p < n && data[p] === 0xff && data[p + 1] >= 0xd0 && data[p + 1] <= 0xd7) p += 2;
      for (const c of comps) c.pred = 0;
      eobrun = 0;
    }
    if (single) {
      const bx = m % c0.blocksPerLine, by = Math.floor(m / c0.blocksPerLine);
      decodeBlock(c0, (by * c0.blocksPerLineMcu + bx) * 64);
    } else {
      const mx = m % f.mcusX, my = Math.floor(m / f.mcusX);
      for (const c of comps) {
        for (let v = 0; v < c.v; v++) {
          for (let h = 0; h < c.h; h++) {
            const by = my * c.v + v, bx = mx * c.h + h;
            decodeBlock(c, (by * c.blocksPerLineMcu + bx) * 64);
          }
        }
      }
    }
  }
  // skip to the next marker
  while (
    p < n &&
    !(data[p] === 0xff && data[p + 1] !== 0 && !(data[p + 1] >= 0xd0 && data[p + 1] <= 0xd7))
  ) p++;
  return p;
}
