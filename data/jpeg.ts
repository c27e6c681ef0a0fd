import type { DecodedImage } from "./image.ts";

/** Decode a JPEG file (placeholder until the decoder lands). */
export function decodeJpeg(_bytes: Uint8Array, name = "<memory>"): DecodedImage {
  throw new SyntaxError(`Cannot decode JPEG "${name}": not implemented`);
}
