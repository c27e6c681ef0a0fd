import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  classColor,
  detectionsSvg,
  drawBoxes,
  type DrawnBox,
  type RgbImage,
  strokeRect,
  toBase64,
} from "../../cli/draw.ts";
import { decodePng } from "../../data/png.ts";
import { PALETTE } from "../../cli/svg_chart.ts";

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
