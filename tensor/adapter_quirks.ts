/**
 * Workarounds for particular WebGPU adapters, decided once from the adapter's description, in
 * this one place. The WebGPU backend reads them when it is created; hardware adapters get none.
 *
 * @module
 */

/** What the WebGPU backend does differently on an adapter. */
export interface AdapterQuirks {
  /**
   * Bind groups a generation makes before the backend releases it (`tensor/bind_groups.ts`),
   * or 0 to leave bind groups to the garbage collector. Mesa's lavapipe (the Vulkan llvmpipe;
   * Mesa 25.0.7 is Debian 13's) backs every descriptor set with its own memory mapping and
   * does not check that the mapping succeeded: the bind groups waiting for the collector
   * exhaust `vm.max_map_count` and the driver crashes (`docs/mesa25_crash.md`). The adapter
   * does not report the Mesa version, so every llvmpipe adapter releases bind groups in
   * generations.
   */
  readonly bindGroupsPerGeneration: number;
}

/**
 * Bind groups per generation on llvmpipe: a default training step makes ~2,400 launches that
 * bind ~1,200 distinct groups, so a generation lasts several steps and holds ~12,000 mappings
 * at most.
 */
const LLVMPIPE_BIND_GROUPS_PER_GENERATION = 8192;

/**
 * The quirks of the adapter described by `description` (`GPUAdapterInfo.description`).
 *
 * @example llvmpipe releases bind groups in generations; other adapters need nothing
 * ```ts
 * import assert from "node:assert/strict";
 * import { adapterQuirks } from "./adapter_quirks.ts";
 *
 * assert.equal(adapterQuirks("llvmpipe (LLVM 15.0.6, 256 bits)").bindGroupsPerGeneration, 8192);
 * assert.equal(adapterQuirks("NVIDIA H100 80GB HBM3").bindGroupsPerGeneration, 0);
 * ```
 *
 * @param description The adapter's description.
 * @returns The workarounds the backend applies.
 */
export function adapterQuirks(description: string): AdapterQuirks {
  return {
    bindGroupsPerGeneration: /llvmpipe|lavapipe/i.test(description)
      ? LLVMPIPE_BIND_GROUPS_PER_GENERATION
      : 0,
  };
}
