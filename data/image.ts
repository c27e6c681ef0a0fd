/**
 * Decoded images and format dispatch (PNG or JPEG by their magic bytes).
 *
 * @module
 */

import { decodeJpeg } from "./jpeg.ts";
import { decodePng } from "./png.ts";

/** A decoded image: `height * width * channels` bytes in HWC order, RGB or RGBA. */
export interface DecodedImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** 3 (RGB) or 4 (RGBA). Encoders also take 1 (gray) and 2 (gray + alpha). */
  channels: number;
  /** Pixel bytes, `data[(y * width + x) * channels + c]`. */
  data: Uint8Array;
}

/**
 * Decode PNG or JPEG bytes, chosen by the file's signature.
 *
 * ```ts ignore
 * const img = await decodeImage(await Deno.readFile("a.jpg"), "a.jpg");
 * ```
 *
 * @param bytes File contents.
 * @param name File name for error messages.
 * @returns The image (RGB, or RGBA when the PNG has alpha).
 * @throws {SyntaxError} Naming the file and the reason when it does not decode.
 */
export async function decodeImage(bytes: Uint8Array, name = "<memory>"): Promise<DecodedImage> {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e) {
    return await decodePng(bytes, name);
  }
  if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xd8) return decodeJpeg(bytes, name);
  throw new SyntaxError(`Cannot decode image "${name}": not a PNG or JPEG file`);
}

/**
 * Read and decode an image file.
 *
 * @param path File path or URL.
 * @returns The image.
 */
export async function loadImage(path: string | URL): Promise<DecodedImage> {
  return await decodeImage(await Deno.readFile(path), String(path));
}

/**
 * Drop the alpha channel (or expand gray) so the result has 3 channels.
 *
 * @param image Image with 1 to 4 channels.
 * @returns An RGB image (the same object when it is already RGB).
 */
export function toRgb(image: DecodedImage): DecodedImage {
  const { width, height, channels, data } = image;
  if (channels === 3) return image;
  const out = new Uint8Array(width * height * 3);
  for (let p = 0, q = 0; p < width * height; p++, q += 3) {
    const s = p * channels;
    if (channels >= 3) {
      out[q] = data[s], out[q + 1] = data[s + 1], out[q + 2] = data[s + 2];
    } else out[q] = out[q + 1] = out[q + 2] = data[s];
  }
  return { width, height, channels: 3, data: out };
}
