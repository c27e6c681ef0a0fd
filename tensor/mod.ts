/**
 * The tensor engine: tensors on WebGPU or the CPU, kernels, autograd and ops.
 *
 * @module
 */

export type { Backend, BackendName, Storage } from "./backend.ts";
export type { DType, TypedArray } from "./dtype.ts";
export { cpu, defaultDevice, hasGpu, initBackend, webgpu } from "./device.ts";
export { GpuError, GpuUnavailableError, ShaderCompileError } from "./errors.ts";
export type { BufferBinding, CpuTwin, Kernel, Launch, ParamType, ParamValues } from "./kernel.ts";
export {
  empty,
  type GradNode,
  keep,
  Tensor,
  tensor,
  type TensorOptions,
  tidy,
} from "./tensor.ts";
export {
  backward,
  type CustomForward,
  customOp,
  type CustomOpSpec,
  detach,
  isGradEnabled,
  noGrad,
} from "./autograd.ts";
export {
  abs,
  add,
  broadcastTo,
  cast,
  clamp,
  div,
  equal,
  exp,
  greater,
  greaterEqual,
  less,
  lessEqual,
  log,
  logSigmoid,
  map,
  type MapExpr,
  maximum,
  minimum,
  mul,
  neg,
  notEqual,
  type Operand,
  pow,
  relu,
  sigmoid,
  sqrt,
  sub,
  tanh,
  where,
} from "./ops/elementwise.ts";
export { argmax, max, mean, min, sum, sumTo } from "./ops/reduce.ts";
export { permute, reshape, transpose } from "./ops/shape.ts";
