import assert from "node:assert/strict";
import { decodeJpeg } from "../../data/jpeg.ts";
import { decodeImage } from "../../data/image.ts";

const FIX = new URL("../fixtures/data/", import.meta.url);
/**
 * JPEG fixtures were written by ImageMagick 6.9 / libjpeg-turbo 2.1 and the expected pixels are
 * libjpeg-turbo's own decode (`convert f.jpg rgb:-`). Our float IDCT and colour conversion round
 * differently from libjpeg's integer ones, so each channel may differ by up to 2 levels.
 */
const TOLERANCE = 2;

Deno.test("decodeJpeg matches libjpeg-turbo within +-2 per channel", async (t) => {
  const expected: Record<string, { width: number; height: number; data: number[] }> = JSON.parse(
    await Deno.readTextFile(new URL("jpeg_expected.json", FIX)),
  );
  for (const [name, exp] of Object.entries(expected)) {
    await t.step(name, async () => {
      const img = await decodeImage(await Deno.readFile(new URL(name, FIX)), name);
      assert.equal(img.width, exp.width);
      assert.equal(img.height, exp.height);
      assert.equal(img.channels, 3);
      let worst = 0, at = -1;
      for (let i = 0; i < exp.data.length; i++) {
        const d = Math.abs(img.data[i] - exp.data[i]);
        if (d > worst) worst = d, at = i;
      }
      assert.ok(worst <= TOLERANCE, `${name}: off by ${worst} at byte ${at}`);
    });
  }
});

Deno.test("decodeJpeg errors name the file", () => {
  assert.throws(
    () => decodeJpeg(new Uint8Array([0xff, 0xd8, 0xff, 0xd9]), "empty.jpg"),
    (e: Error) => e instanceof SyntaxError && /"empty\.jpg": no frame/.test(e.message),
  );
  // SOF3 (lossless) is not supported
  const sof3 = new Uint8Array([
    0xff,
    0xd8,
    0xff,
    0xc3,
    0,
    11,
    8,
    0,
    1,
    0,
    1,
    1,
    1,
    0x11,
    0,
    0xff,
    0xd9,
  ]);
  assert.throws(() => decodeJpeg(sof3, "l.jpg"), /"l\.jpg": unsupported coding process \(SOF3\)/);
});
