import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  classColor,
  detectionsSvg,
  drawBoxes,
  type DrawnBox,
  drawText,
  fillRect,
  GLYPH_HEIGHT,
  type RgbImage,
  strokeRect,
  textColorOn,
  textWidth,
  toBase64,
  upscale,
} from "../../engine/draw.ts";
import { decodePng } from "../../data/png.ts";
import { PALETTE } from "../../engine/svg_chart.ts";

function blank(width: number, height: number, channels = 3, fill = 0): RgbImage {
  return { width, height, channels, data: new Uint8Array(width * height * channels).fill(fill) };
}

/** Reference: is pixel (x, y) on the outline? Pixel centres inside the box, within t of an edge. */
function onOutline(
  x: number,
  y: number,
  box: readonly number[],
  t: number,
): boolean {
  const [l, r] = [Math.round(Math.min(box[0], box[2])), Math.round(Math.max(box[0], box[2]))];
  const [u, d] = [Math.round(Math.min(box[1], box[3])), Math.round(Math.max(box[1], box[3]))];
  const cx = x + 0.5, cy = y + 0.5;
  if (!(cx > l && cx < r && cy > u && cy < d)) return false;
  return Math.min(cx - l, r - cx, cy - u, d - cy) < t;
}

Deno.test("classColor() cycles through the palette", () => {
  assert.deepEqual(classColor(1), [0xff, 0x7f, 0x0e]);
  for (let k = -12; k < 25; k++) {
    const hex = PALETTE[((k % 10) + 10) % 10];
    assert.equal("#" + classColor(k).map((v) => v.toString(16).padStart(2, "0")).join(""), hex);
  }
});

Deno.test("strokeRect()", async (t) => {
  await t.step("a 1-pixel outline of a 4x3 box, pixel by pixel", () => {
    const img = blank(6, 5);
    strokeRect(img, [1, 1, 5, 4], [9, 8, 7], 1);
    const map: string[] = [];
    for (let y = 0; y < 5; y++) {
      let row = "";
      for (let x = 0; x < 6; x++) row += img.data[(y * 6 + x) * 3] === 9 ? "#" : ".";
      map.push(row);
    }
    assert.deepEqual(map, ["......", ".####.", ".#..#.", ".####.", "......"]);
    assert.deepEqual([...img.data.subarray((1 * 6 + 1) * 3, (1 * 6 + 1) * 3 + 3)], [9, 8, 7]);
  });

  await t.step("matches a per-pixel reference for random boxes, thicknesses, clipping", () => {
    let seed = 7;
    const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    for (let i = 0; i < 200; i++) {
      const W = 3 + Math.floor(rand() * 20), H = 3 + Math.floor(rand() * 20);
      const box = [0, 0, 0, 0].map((_, j) => (rand() * 1.4 - 0.2) * (j % 2 ? H : W)) as [
        number,
        number,
        number,
        number,
      ];
      const th = 1 + Math.floor(rand() * 4);
      const img = blank(W, H, 4, 17);
      strokeRect(img, box, [200, 100, 50], th);
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const o = (y * W + x) * 4;
          const want = onOutline(x, y, box, th);
          const got = img.data[o] === 200;
          assert.equal(got, want, `box ${box} t=${th} pixel (${x}, ${y}) in ${W}x${H}`);
          assert.deepEqual(
            [...img.data.subarray(o, o + 4)],
            want ? [200, 100, 50, 255] : [17, 17, 17, 17],
          );
        }
      }
    }
  });

  await t.step("empty, off-image and non-finite boxes draw nothing", () => {
    const img = blank(8, 8);
    strokeRect(img, [3, 3, 3.2, 6], [255, 255, 255]);
    strokeRect(img, [20, 20, 30, 30], [255, 255, 255]);
    strokeRect(img, [-9, -9, -1, -1], [255, 255, 255]);
    strokeRect(img, [0, 0, NaN, 4], [255, 255, 255]);
    assert.ok(img.data.every((v) => v === 0));
  });

  await t.step("rejects bad images and thickness", () => {
    assert.throws(() => strokeRect(blank(4, 4, 1), [0, 0, 2, 2], [1, 1, 1]), /1 channels/);
    assert.throws(
      () =>
        strokeRect({ width: 4, height: 4, channels: 3, data: new Uint8Array(47) }, [0, 0, 1, 1], [
          1,
          1,
          1,
        ]),
      TypeError,
    );
    assert.throws(() => strokeRect(blank(4, 4), [0, 0, 2, 2], [1, 1, 1], 0), RangeError);
  });
});

Deno.test("drawBoxes() copies the image and colours by class", () => {
  const img = blank(10, 10, 3, 40);
  const boxes: DrawnBox[] = [
    { box: [0, 0, 10, 10], classId: 0 },
    { box: [2, 2, 8, 8], classId: 4, score: 0.9 },
  ];
  const out = drawBoxes(img, boxes, { thickness: 2 });
  assert.ok(img.data.every((v) => v === 40), "input unchanged");
  const px = (
    x: number,
    y: number,
  ) => [...out.data.subarray((y * 10 + x) * 3, (y * 10 + x) * 3 + 3)];
  assert.deepEqual(px(0, 0), [...classColor(0)]);
  assert.deepEqual(px(1, 5), [...classColor(0)]);
  assert.deepEqual(px(2, 5), [...classColor(4)]);
  assert.deepEqual(px(3, 3), [...classColor(4)]);
  assert.deepEqual(px(4, 4), [40, 40, 40]);
  const custom = drawBoxes(img, boxes.slice(1), { thickness: 1, color: () => [1, 2, 3] });
  assert.deepEqual([...custom.data.subarray((2 * 10 + 2) * 3, (2 * 10 + 2) * 3 + 3)], [1, 2, 3]);
});

/** Rows of `#` (pixel equal to `color`) and `.`. */
function ascii(img: RgbImage, color: readonly number[]): string[] {
  return Array.from({ length: img.height }, (_, y) =>
    Array.from({ length: img.width }, (_, x) => {
      const o = (y * img.width + x) * img.channels;
      return color.every((v, c) => img.data[o + c] === v) ? "#" : ".";
    }).join(""));
}

Deno.test("drawText() renders the 5x7 font, scaled and clipped", async (t) => {
  await t.step("glyphs and spacing", () => {
    const img = blank(textWidth("0.5"), GLYPH_HEIGHT);
    drawText(img, 0, 0, "0.5", [255, 255, 255]);
    assert.deepEqual(ascii(img, [255, 255, 255]), [
      ".###........#####",
      "#...#.......#....",
      "#..##.......####.",
      "#.#.#...........#",
      "##..#...........#",
      "#...#..##...#...#",
      ".###...##....###.",
    ]);
  });
  await t.step("scale 2 doubles every font pixel; RGBA alpha is set", () => {
    const one = blank(5, 7), two = blank(10, 14, 4);
    drawText(one, 0, 0, "k", [9, 9, 9]);
    drawText(two, 0, 0, "k", [9, 9, 9], 2);
    assert.deepEqual(
      upscale(one, 2).data.filter((_, i) => i % 3 === 0),
      two.data.filter((_, i) => i % 4 === 0),
    );
    const alpha = two.data.filter((_, i) => i % 4 === 3),
      red = two.data.filter((_, i) => i % 4 === 0);
    assert.deepEqual(alpha, red.map((v) => (v === 9 ? 255 : 0)));
  });
  await t.step("clipped at the edges; unknown characters draw as ?", () => {
    const img = blank(4, 4);
    drawText(img, -2, -3, "é", [1, 1, 1]);
    const q = blank(5, 7);
    drawText(q, 0, 0, "?", [1, 1, 1]);
    assert.deepEqual(
      ascii(img, [1, 1, 1]),
      ascii(q, [1, 1, 1]).slice(3).map((r) => r.slice(2) + "."),
    );
    assert.throws(() => drawText(img, 0, 0, "a", [1, 1, 1], 0), RangeError);
  });
});

Deno.test("upscale() repeats each pixel factor x factor times", () => {
  const img = blank(3, 2, 4);
  for (let i = 0; i < img.data.length; i++) img.data[i] = i;
  const big = upscale(img, 3);
  assert.equal(big.width, 9);
  assert.equal(big.height, 6);
  for (let y = 0; y < 6; y++) {
    for (let x = 0; x < 9; x++) {
      const s = (Math.floor(y / 3) * 3 + Math.floor(x / 3)) * 4, o = (y * 9 + x) * 4;
      assert.deepEqual([...big.data.subarray(o, o + 4)], [...img.data.subarray(s, s + 4)]);
    }
  }
  assert.deepEqual(upscale(img, 1).data, img.data);
  assert.throws(() => upscale(img, 1.5), RangeError);
});

Deno.test("drawBoxes() with captions: a tab in the class colour holding the caption", () => {
  const img = blank(60, 40, 3, 40);
  const box: DrawnBox = { box: [10, 20, 50, 38], classId: 1, score: 0.5, label: "b" };
  const out = drawBoxes(img, [box], { captions: true, thickness: 1 });
  const c = [...classColor(1)];
  // "b 0.50" is 6 characters: 35 px wide, plus 1 px padding each side; 9 px high, above the box.
  const tab = ascii(out, c).slice(11, 20).map((r) => r.slice(10, 47));
  const text = ascii(out, [...textColorOn(classColor(1))]).slice(12, 19).map((r) =>
    r.slice(11, 46)
  );
  for (let y = 0; y < 9; y++) {
    for (let x = 0; x < 37; x++) {
      const inText = y >= 1 && y <= 7 && x >= 1 && x <= 35 && text[y - 1][x - 1] === "#";
      assert.equal(tab[y][x], inText ? "." : "#", `tab pixel (${x}, ${y})`);
    }
  }
  const b = blank(5, 7);
  drawText(b, 0, 0, "b", [1, 1, 1]);
  assert.deepEqual(text.map((r) => r.slice(0, 5)), ascii(b, [1, 1, 1]));
  assert.ok(ascii(out, c)[10].slice(10, 47).includes("."), "nothing above the tab");
  // Without captions, only outlines (the default).
  assert.deepEqual(
    drawBoxes(img, [box], { thickness: 1 }).data.slice(0, 60 * 19 * 3),
    img.data.slice(0, 60 * 19 * 3),
  );
  // A box at the top edge gets its tab inside; one at the right edge is shifted left.
  const edge = drawBoxes(img, [{ box: [55, 0, 60, 30], classId: 1, label: "xy" }], {
    captions: true,
  });
  const row = ascii(edge, c)[0];
  assert.equal(row.indexOf("#"), 60 - (textWidth("xy") + 2));
  assert.throws(() => drawBoxes(img, [box], { captions: true, textScale: 0 }), RangeError);
  // Two captions of one box do not cover each other: the last one's goes above the box, the
  // first one's inside its top; scores have 2 significant digits.
  const twice = drawBoxes(img, [{ ...box, classId: 2, score: 0.0234 }, box], { captions: true });
  assert.deepEqual(ascii(twice, [...classColor(1)])[11].slice(10, 47), "#".repeat(37));
  assert.deepEqual(ascii(twice, [...classColor(2)])[20].slice(10, 47 + 6), "#".repeat(43));
  const small = blank(5, 7);
  drawText(small, 0, 0, "3", [1, 1, 1]); // "b 0.023": the 7th character
  const digits = ascii(twice, [...textColorOn(classColor(2))]).slice(21, 28);
  assert.deepEqual(digits.map((r) => r.slice(11 + 6 * 6, 11 + 6 * 6 + 5)), ascii(small, [1, 1, 1]));
});

Deno.test("fillRect() and textColorOn()", () => {
  const img = blank(5, 4, 4, 7);
  fillRect(img, [-1, 1.4, 2.6, 9], [1, 2, 3]);
  assert.deepEqual(ascii(img, [1, 2, 3, 255]), [".....", "###..", "###..", "###.."]);
  fillRect(img, [0, 0, 5, NaN], [1, 2, 3]);
  assert.equal(ascii(img, [1, 2, 3, 255])[0], ".....");
  assert.deepEqual(textColorOn([255, 255, 0]), [0, 0, 0]);
  assert.deepEqual(textColorOn([0x7f, 0x7f, 0x7f]), [255, 255, 255]);
});

Deno.test("toBase64() agrees with node:buffer", () => {
  for (const n of [0, 1, 2, 3, 100, 0x8000, 0x8000 * 2 + 5]) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 131 + 7) & 255);
    assert.equal(toBase64(bytes), Buffer.from(bytes).toString("base64"), `${n} bytes`);
  }
});

Deno.test("detectionsSvg()", async (t) => {
  const img = blank(40, 30);
  for (let i = 0; i < img.data.length; i++) img.data[i] = (i * 37) & 255;
  const boxes: DrawnBox[] = [
    { box: [5, 20, 30, 28], classId: 2, score: 0.8765 },
    { box: [0, 0, 10, 10], classId: 12, label: `<cat & "dog">` },
    { box: [1, 2, 3, NaN], classId: 1 },
  ];
  const svg = await detectionsSvg(img, boxes, { classNames: ["a", "b", "car"] });

  await t.step("embeds the exact image as PNG", async () => {
    const m = svg.match(/href="data:image\/png;base64,([A-Za-z0-9+/=]+)"/);
    assert.ok(m);
    const png = new Uint8Array(Buffer.from(m[1], "base64"));
    const back = await decodePng(png);
    assert.equal(back.width, 40);
    assert.equal(back.height, 30);
    assert.deepEqual(back.data, img.data);
    assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"'));
  });

  await t.step("boxes, colours and captions", () => {
    const groups = svg.split('<g class="det"').slice(1);
    assert.equal(groups.length, 2, "the non-finite box is skipped");
    assert.ok(groups[0].includes(`stroke="${PALETTE[2]}"`));
    assert.ok(
      groups[0].includes('<rect x="6" y="21" width="23" height="6" fill="none"'),
      "stroke centred inside the box",
    );
    assert.ok(groups[0].includes(">car 0.88</text>"));
    assert.ok(groups[0].includes('y="6" width='), "tab above the box");
    assert.ok(groups[1].includes(`fill="${PALETTE[2]}"`), "class 12 wraps to palette 2");
    assert.ok(groups[1].includes(">&lt;cat &amp; &quot;dog&quot;&gt;</text>"));
    assert.ok(groups[1].includes('<rect x="0" y="0" width='), "tab inside at the top edge");
    assert.ok(!svg.includes("<cat"));
  });

  await t.step("RGBA images work; others are rejected", async () => {
    const rgba = await detectionsSvg(blank(2, 2, 4, 255), []);
    assert.ok(rgba.includes("data:image/png;base64,"));
    await assert.rejects(detectionsSvg(blank(2, 2, 2), []), TypeError);
  });
});
