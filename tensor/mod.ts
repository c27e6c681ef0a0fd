/**
 * The tensor engine: tensors on WebGPU or the CPU, kernels, autograd and ops.
 *
 * @module
 */

export type { Backend, BackendName, HostStats, KernelTime, Storage } from "./backend.ts";
export { encodeMs } from "./backend.ts";
export type { DType, TypedArray } from "./dtype.ts";
export { cpu, defaultDevice, hasGpu, hasNative, initBackend, native, webgpu } from "./device.ts";
export {
  type AdapterFacts,
  type AdapterKind,
  adapterProfile,
  type DeviceProfile,
  type GemmTiles,
  HARDWARE_PATHS,
  hostProfile,
  isSoftwareAdapter,
  type PathMode,
  preferredTiles,
  type ProfileLimits,
  withProfile,
} from "./device_profile.ts";
export {
  GpuError,
  GpuUnavailableError,
  NativeUnavailableError,
  ShaderCompileError,
} from "./errors.ts";
export type {
  BufferBinding,
  CpuTwin,
  Kernel,
  Launch,
  ParamType,
  ParamValues,
  UniformWindow,
} from "./kernel.ts";
export {
  copyInto,
  empty,
  type GradNode,
  keep,
  Tensor,
  tensor,
  type TensorOptions,
  tidy,
  tidyAsync,
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
export { full, type FullOptions, ones, zeros } from "./ops/creation.ts";
export { matmul, type MatmulOptions, type MatmulTile } from "./ops/matmul.ts";
export { conv2d, type Conv2dOptions as Conv2dOpOptions } from "./ops/conv.ts";
export {
  convTranspose2d,
  type ConvTranspose2dOptions as ConvTranspose2dOpOptions,
} from "./ops/conv_transpose.ts";
export {
  avgPool2d,
  maxPool2d,
  type Pool2dOptions,
  type PoolMode,
  upsampleNearest2d,
} from "./ops/pool.ts";
export { roiAlign, type RoiAlignOptions } from "./ops/roi_align.ts";
export { gridSample, type GridSampleOptions } from "./ops/grid_sample.ts";
export { msDeformAttn } from "./ops/ms_deform_attn.ts";
export { concat, pad, slice, split, stack } from "./ops/concat.ts";
export { gather, indexSelect, scatterAdd } from "./ops/index.ts";
export {
  argsort,
  sort,
  type SortOptions,
  type SortResult,
  topk,
  type TopkOptions,
} from "./ops/sort.ts";
export { cumsum, exclusiveScan, type ScanOptions } from "./ops/scan.ts";
export { logSoftmax, softmax } from "./ops/softmax.ts";
export {
  batchNorm,
  type BatchNormOptions as BatchNormOpOptions,
  groupNorm,
  type ReluOption,
} from "./ops/norm.ts";
export { layerNorm, type LayerNormOptions as LayerNormOpOptions } from "./ops/layer_norm.ts";
export { erf, gelu } from "./ops/activation.ts";
export { dropout } from "./ops/dropout.ts";
export { linear } from "./ops/linear.ts";
export {
  additiveMask,
  type AttentionDropout,
  blockedBias,
  scaledDotProductAttention,
} from "./ops/attention.ts";
export { sinePositionEncoding, type SinePositionOptions } from "./ops/position_encoding.ts";
export { rand, randn, type RandomTensorOptions, Rng } from "./rng.ts";
export { type AnyModule, type LoadStateOptions, Module } from "./nn/module.ts";
export {
  AvgPool2d,
  Conv2d,
  type Conv2dOptions,
  ConvTranspose2d,
  type ConvTranspose2dOptions,
  MaxPool2d,
  type Pair,
  type Pool2dLayerOptions,
} from "./nn/conv.ts";
export {
  BatchNorm2d,
  type BatchNormOptions,
  Flatten,
  GroupNorm,
  type GroupNormOptions,
  type PlacementOptions,
  ReLU,
  Sequential,
} from "./nn/layers.ts";
export { Linear, type LinearOptions } from "./nn/linear.ts";
export {
  Dropout,
  Embedding,
  type EmbeddingOptions,
  GELU,
  LayerNorm,
  type LayerNormOptions,
} from "./nn/transformer.ts";
export {
  type AttentionMasks,
  MultiheadAttention,
  type MultiheadAttentionOptions,
} from "./nn/attention.ts";
export * as init from "./nn/init.ts";
export {
  type ArenaUpdate,
  clipGradNorm,
  gradNorm,
  Optimizer,
  type OptimizerOptions,
} from "./optim/optimizer.ts";
export { SGD, type SgdOptions } from "./optim/sgd.ts";
export { AdamW, type AdamWOptions } from "./optim/adamw.ts";
export {
  composeSchedules,
  constantSchedule,
  cosineSchedule,
  linearWarmup,
  type LrSchedule,
  multiStepSchedule,
  stepSchedule,
} from "./optim/schedules.ts";
export {
  type CheckpointMetadata,
  decodeSafetensors,
  encodeSafetensors,
  type HostTensor,
  loadCheckpoint,
  loadSafetensors,
  type OptimizerStateHolder,
  parseSafetensors,
  type SafetensorsEntry,
  type SafetensorsFile,
  saveCheckpoint,
  saveSafetensors,
  type StateHolder,
} from "./safetensors.ts";
export { readStateDict, type StateDictDType, type StateDictEntry } from "./state_dict.ts";
