/**
 * Error classes callers may want to catch.
 *
 * @module
 */

/** No WebGPU adapter could be found or a device could not be created. */
export class GpuUnavailableError extends Error {
  /** The class name. */
  override name = "GpuUnavailableError";
}

/** A WGSL kernel failed to compile; the message holds line:column and the source line. */
export class ShaderCompileError extends Error {
  /** The class name. */
  override name = "ShaderCompileError";
}

/** The GPU reported a validation or out-of-memory error, or the device was lost. */
export class GpuError extends Error {
  /** The class name. */
  override name = "GpuError";
}

/** The native backend cannot run here: no FFI, no permission for it, or no OpenBLAS. */
export class NativeUnavailableError extends Error {
  /** The class name. */
  override name = "NativeUnavailableError";
}
