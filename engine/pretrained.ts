/**
 * Loading pretrained weights (torchvision's `.pth` downloads, timm / Hugging
 * Face `.safetensors`) into a module, through a name map, with a report of
 * what was loaded, missing, unexpected or of the wrong shape.
 *
 * @module
 */

import type { HostTensor } from "../tensor/safetensors.ts";
import { readStateDict, type StateDictEntry } from "../tensor/state_dict.ts";
import type { Tensor } from "../tensor/tensor.ts";

/**
 * Maps a file's tensor name onto the module's name, or `null` to skip the
 * tensor (a classifier head, a counter).
 */
export type NameMap = (name: string) => string | null;

/**
 * torchvision's (and timm's, which uses the same names) ResNet state-dict
 * names onto this module's {@linkcode ResNet}: `layerK.i.downsample.0/1`
 * become `downsample_conv` / `downsample_bn`, `fc.*` and BN
 * `num_batches_tracked` counters are skipped, and every other name
 * (`conv1`, `bn1`, `layerK.i.convJ`, `layerK.i.bnJ`, BN running
 * statistics) is kept.
 *
 * @example
 * ```ts
 * import { TORCHVISION_RESNET } from "./pretrained.ts";
 * console.log(TORCHVISION_RESNET("layer2.0.downsample.1.running_var"));
 * // layer2.0.downsample_bn.running_var
 * console.log(TORCHVISION_RESNET("fc.weight")); // null
 * ```
 */
export const TORCHVISION_RESNET: NameMap = (name: string): string | null => {
  if (name.startsWith("fc.") || name.endsWith(".num_batches_tracked")) return null;
  return name.replace(/\.downsample\.0\./, ".downsample_conv.")
    .replace(/\.downsample\.1\./, ".downsample_bn.");
};

/** Options of {@linkcode loadPretrained}. */
export interface LoadPretrainedOptions {
  /** The file's format; detected from its bytes when left out (and checked when given). */
  format?: "safetensors" | "pytorch";
  /** File names onto module names (default {@linkcode TORCHVISION_RESNET}). */
  map?: NameMap;
  /**
   * `true` (default): any missing module tensor, unexpected file tensor or
   * shape mismatch is an error naming the keys, and nothing is loaded.
   * `false`: load what matches and report the rest.
   */
  strict?: boolean;
}

/** A tensor whose shape (or element type) differs between the file and the module. */
export interface PretrainedMismatch {
  /** The name in the file. */
  readonly source: string;
  /** The name in the module. */
  readonly target: string;
  /** Shape in the file. */
  readonly fileShape: readonly number[];
  /** Shape in the module. */
  readonly moduleShape: readonly number[];
}

/** What {@linkcode loadPretrained} did. */
export interface PretrainedReport {
  /** Module names that received values. */
  readonly loaded: string[];
  /** Module names the file did not provide. */
  readonly missing: string[];
  /** File names with no module tensor to go to (after the map). */
  readonly unexpected: string[];
  /** File names the map skipped. */
  readonly skipped: string[];
  /** Tensors whose shape or element type differs (not loaded). */
  readonly mismatched: PretrainedMismatch[];
}

/** Something with named tensors to load into (a module). */
export interface PretrainedTarget {
  /** The live tensors by name. */
  stateDict(): Map<string, Tensor>;
  /** Copies values in, validating them. */
  loadStateDict(state: ReadonlyMap<string, HostTensor>, options?: { strict?: boolean }): void;
}

function describe(list: readonly string[]): string {
  return list.length > 8 ? `${list.slice(0, 8).join(", ")}, ... (${list.length})` : list.join(", ");
}

/**
 * Loads a pretrained state dict (a safetensors file or a PyTorch `torch.save`
 * archive, see {@linkcode readStateDict}) into `module`, renaming through
 * `options.map`. BN running statistics load like any other tensor, into
 * frozen BN as well. Floating-point weights of any stored precision arrive
 * as f32.
 *
 * @param module The module to fill (its `stateDict()` names the targets).
 * @param pathOrBytes A file path or URL, or the file's bytes.
 * @returns The report of loaded, missing, unexpected, skipped and mismatched keys.
 * @example
 * ```ts ignore
 * const report = await loadPretrained(resnet, "resnet50-0676ba61.pth");
 * console.log(report.loaded.length, report.skipped); // 318 ["fc.weight", "fc.bias", ...]
 * ```
 */
export async function loadPretrained(
  module: PretrainedTarget,
  pathOrBytes: string | URL | Uint8Array,
  options: LoadPretrainedOptions = {},
): Promise<PretrainedReport> {
  const source = pathOrBytes instanceof Uint8Array ? "buffer" : String(pathOrBytes);
  const bytes = pathOrBytes instanceof Uint8Array ? pathOrBytes : await Deno.readFile(pathOrBytes);
  if (options.format) {
    const zip = bytes.length >= 2 && bytes[0] === 0x50 && bytes[1] === 0x4b;
    if ((options.format === "pytorch") !== zip) {
      throw new TypeError(
        `loadPretrained: "${source}" is not a ${options.format} file (it looks like ${
          zip ? "a PyTorch archive" : "safetensors"
        })`,
      );
    }
  }
  const file = readStateDict(bytes, source);
  return loadStateEntries(module, file, options, source);
}

/**
 * The part of {@linkcode loadPretrained} after reading: matches `file`'s
 * entries to `module`'s tensors through the map and loads them.
 */
export function loadStateEntries(
  module: PretrainedTarget,
  file: ReadonlyMap<string, StateDictEntry>,
  options: LoadPretrainedOptions = {},
  source = "buffer",
): PretrainedReport {
  const map = options.map ?? TORCHVISION_RESNET;
  const strict = options.strict ?? true;
  const own = module.stateDict();
  const state = new Map<string, HostTensor>();
  const report: PretrainedReport = {
    loaded: [],
    missing: [],
    unexpected: [],
    skipped: [],
    mismatched: [],
  };
  const seen = new Set<string>();
  for (const [name, entry] of file) {
    const target = map(name);
    if (target === null) {
      report.skipped.push(name);
      continue;
    }
    const live = own.get(target);
    if (!live) {
      report.unexpected.push(name);
      continue;
    }
    seen.add(target);
    const typeOk = entry.dtype === live.dtype;
    if (!typeOk || entry.shape.join() !== live.shape.join()) {
      report.mismatched.push({
        source: name,
        target,
        fileShape: entry.shape,
        moduleShape: live.shape,
      });
      continue;
    }
    state.set(target, {
      dtype: live.dtype,
      shape: entry.shape,
      data: entry.data as Float32Array | Int32Array,
    });
    report.loaded.push(target);
  }
  for (const name of own.keys()) if (!seen.has(name)) report.missing.push(name);
  if (strict) {
    const problems: string[] = [];
    if (report.missing.length) problems.push(`missing from the file: ${describe(report.missing)}`);
    if (report.unexpected.length) {
      problems.push(`unexpected in the file: ${describe(report.unexpected)}`);
    }
    for (const m of report.mismatched) {
      const what = file.get(m.source)!.dtype === own.get(m.target)!.dtype
        ? `shape [${m.fileShape.join(", ")}] in the file but [${m.moduleShape.join(", ")}]`
        : `${file.get(m.source)!.dtype} in the file but ${own.get(m.target)!.dtype}`;
      problems.push(`"${m.source}" (module "${m.target}") has ${what} in the module`);
    }
    if (problems.length) {
      throw new TypeError(
        `loadPretrained "${source}": ${problems.join("; ")} (strict: false loads the rest)`,
      );
    }
  }
  module.loadStateDict(state, { strict: false });
  return report;
}

/** Where torchvision's ImageNet ResNet-50 weights (the detectors' usual start) come from. */
export const TORCHVISION_RESNET50_URL = "https://download.pytorch.org/models/resnet50-0676ba61.pth";

/**
 * Loads a torchvision/timm ResNet file into `model`'s `backbone.*` tensors
 * (the config's `backbone.pretrained`), before training: every backbone
 * tensor must come from the file, `fc.*` and the BN counters are skipped, and
 * the rest of the model keeps its initialisation.
 *
 * @param model A detector (or any module with its ResNet registered as `backbone`).
 * @param path The `.pth` or `.safetensors` file.
 * @returns The report (names as in the model, `backbone.` included).
 * @throws {Deno.errors.NotFound} When `path` does not exist, saying where torchvision's file comes from.
 * @throws {TypeError} When a backbone tensor is missing from the file, or has another shape.
 */
export async function loadBackbonePretrained(
  model: PretrainedTarget,
  path: string,
): Promise<PretrainedReport> {
  try {
    await Deno.stat(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new Deno.errors.NotFound(
      `backbone.pretrained: "${path}" does not exist. Download torchvision's ImageNet ResNet-50 ` +
        `weights (${TORCHVISION_RESNET50_URL}) or a timm ResNet .safetensors to that path, ` +
        `or pass another file with --pretrained FILE`,
    );
  }
  const report = await loadPretrained(model, path, {
    strict: false,
    map: (name) => {
      const target = TORCHVISION_RESNET(name);
      return target === null ? null : `backbone.${target}`;
    },
  });
  const problems: string[] = [];
  const missing = report.missing.filter((n) => n.startsWith("backbone."));
  if (missing.length) problems.push(`missing from the file: ${describe(missing)}`);
  if (report.unexpected.length) {
    problems.push(`unexpected in the file: ${describe(report.unexpected)}`);
  }
  for (const m of report.mismatched) {
    problems.push(
      `"${m.source}" has shape [${m.fileShape.join(", ")}] in the file but [${
        m.moduleShape.join(", ")
      }] in the backbone`,
    );
  }
  if (problems.length) {
    throw new TypeError(
      `backbone.pretrained "${path}" does not fit the config's backbone: ${problems.join("; ")}`,
    );
  }
  return report;
}
