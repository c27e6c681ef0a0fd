/**
 * Worker side of {@linkcode DetectionLoader}: decodes, transforms and
 * normalises one image per message and posts the typed arrays back
 * (transferred, not copied).
 *
 * @module
 */

import { prepareSample, type PrepareSettings, type SourceItem } from "./loader.ts";

interface Job {
  id: number;
  item: SourceItem;
  settings: PrepareSettings;
  seed: number;
}

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<Job>) => void) | null;
  postMessage(message: unknown, transfer?: Transferable[]): void;
};

scope.onmessage = async (e: MessageEvent<Job>) => {
  const { id, item, settings, seed } = e.data;
  try {
    const result = await prepareSample(item, undefined, settings, seed);
    const transfer: Transferable[] = [result.chw.buffer as ArrayBuffer];
    if (result.masks) transfer.push(result.masks.buffer as ArrayBuffer);
    scope.postMessage({ id, ok: true, result }, transfer);
  } catch (err) {
    const error = err instanceof Error
      ? { name: err.name, message: err.message }
      : { name: "Error", message: String(err) };
    scope.postMessage({ id, ok: false, error });
  }
};
