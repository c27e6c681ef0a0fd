import assert from "node:assert/strict";
import { decodePng, encodePng, type EncodePngOptions } from "../../data/png.ts";
import { decodeImage } from "../../data/image.ts";

const FIX = new URL("../fixtures/data/", import.meta.url);

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
}

Deno.test("decodePng reads files written by other encoders", async (t) => {
  const expected: Record<
    string,
    { width: number; height: number; channels: number; data: number[] }
  > = JSON.parse(await Deno.readTextFile(new URL("png_expected.json", FIX)));
  for (const [name, exp] of Object.entries(expected)) {
    await t.step(name, async () => {
      const img = await decodePng(await Deno.readFile(new URL(name, FIX)), name);
      assert.equal(img.width, exp.width);
      assert.equal(img.height, exp.height);
      assert.equal(img.channels, exp.channels);
      assert.deepEqual(Array.from(img.data), exp.data);
    });
  }
});

Deno.test("encodePng -> decodePng over every colour type, depth, filter and interlace", async (t) => {
  const W = 11, H = 7;
  const next = lcg(1);
  const types: [0 | 2 | 3 | 4 | 6, number[]][] = [
    [0, [1, 2, 4, 8, 16]],
    [2, [8, 16]],
    [3, [1, 2, 4, 8]],
    [4, [8, 16]],
    [6, [8, 16]],
  ];
  const nchOf = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
  for (const [ct, depths] of types) {
    for (const depth of depths) {
      for (const interlace of [false, true]) {
        for (const filter of [0, 1, 2, 3, 4, "adaptive"] as const) {
          const label = `type ${ct} depth ${depth} ${
            interlace ? "adam7" : "plain"
          } filter ${filter}`;
          await t.step(label, async () => {
            const nch = nchOf[ct];
            const maxv = (1 << depth) - 1;
            const entries = ct === 3 ? Math.min(maxv + 1, 20) : 0;
            const data = depth === 16 ? new Uint16Array(W * H * nch) : new Uint8Array(W * H * nch);
            for (let i = 0; i < data.length; i++) {
              data[i] = ct === 3 ? next() % entries : next() % (maxv + 1);
            }
            const opts: EncodePngOptions = {
              colorType: ct,
              bitDepth: depth as 8,
              interlace,
              filter,
            };
            let palette: Uint8Array | undefined, trns: Uint8Array | undefined;
            if (ct === 3) {
              palette = Uint8Array.from({ length: entries * 3 }, () => next() & 255);
              trns = Uint8Array.from({ length: Math.max(1, entries - 2) }, () => next() & 255);
              opts.palette = palette;
              opts.transparency = trns;
            }
            // a gray key colour for type 0 (exercises tRNS on gray)
            const key = ct === 0 && depth >= 8 ? data[3] : -1;
            if (key >= 0) opts.transparency = Uint8Array.of(key >> 8, key & 255);
            const png = await encodePng({ width: W, height: H, channels: nch, data }, opts);
            const img = await decodePng(png, label);
            const hasAlpha = ct === 4 || ct === 6 || ct === 3 || key >= 0;
            assert.equal(img.channels, hasAlpha ? 4 : 3);
            const to8 = (v: number) => depth === 16 ? v >> 8 : Math.round((v * 255) / maxv);
            for (let p = 0; p < W * H; p++) {
              const s = data.subarray(p * nch, p * nch + nch);
              let want: number[];
              if (ct === 3) {
                const i = s[0];
                want = [
                  palette![3 * i],
                  palette![3 * i + 1],
                  palette![3 * i + 2],
                  i < trns!.length ? trns![i] : 255,
                ];
              } else if (ct === 0) want = [to8(s[0]), to8(s[0]), to8(s[0]), s[0] === key ? 0 : 255];
              else if (ct === 4) want = [to8(s[0]), to8(s[0]), to8(s[0]), to8(s[1])];
              else want = [to8(s[0]), to8(s[1]), to8(s[2]), ct === 6 ? to8(s[3]) : 255];
              const got: number[] = Array.from(
                img.data.subarray(p * img.channels, (p + 1) * img.channels),
              );
              assert.deepEqual(got, want.slice(0, img.channels), `pixel ${p}`);
            }
          });
        }
      }
    }
  }
});

Deno.test("decodePng errors name the file and the reason", async (t) => {
  const good = await encodePng({
    width: 4,
    height: 3,
    channels: 3,
    data: new Uint8Array(36).fill(9),
  });
  const cases: [string, Uint8Array, RegExp][] = [
    ["signature", Uint8Array.from(good, (v, i) => i === 6 ? v ^ 0xff : v), /bad signature/],
    ["truncated", good.slice(0, good.length - 20), /runs past the end|truncated/],
    [
      "crc",
      (() => {
        const b = good.slice();
        b[20] ^= 1;
        return b;
      })(),
      /CRC mismatch in chunk "IHDR"/,
    ],
    ["no IEND", good.slice(0, good.length - 12), /no IEND/],
  ];
  for (const [name, bytes, re] of cases) {
    await t.step(name, async () => {
      await assert.rejects(decodeImage(bytes, `${name}.png`), (e: Error) => {
        assert.ok(e instanceof SyntaxError);
        assert.match(e.message, new RegExp(`"${name}\\.png"`));
        assert.match(e.message, re);
        return true;
      });
    });
  }
  await t.step("not an image", async () => {
    await assert.rejects(
      decodeImage(new Uint8Array([1, 2, 3]), "x.bin"),
      /"x\.bin": not a PNG or JPEG/,
    );
  });
});
