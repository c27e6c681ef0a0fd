/**
 * **brl**: bucketed ranking-based losses for object detection, on Deno's
 * WebGPU, with its own WGSL tensor kernels, autograd and a CPU twin, and a
 * native backend (OpenBLAS through FFI) for machines without a GPU.
 *
 * - Engine: {@linkcode tensor}, ops such as {@linkcode matmul} and
 *   {@linkcode conv2d}, {@linkcode backward}, `nn` layers, {@linkcode SGD} and
 *   {@linkcode AdamW}, safetensors checkpoints.
 * - Boxes: format conversions, {@linkcode boxIou} and {@linkcode bboxOverlaps}
 *   (IoU, IoF, GIoU), {@linkcode batchedNms} and its torchvision-equal host
 *   twins {@linkcode nmsIndices} and {@linkcode batchedNmsIndices},
 *   {@linkcode mapRoiLevels} (mmdetection's RoI-to-FPN-level rule) and
 *   {@linkcode DeltaXywhCoder}.
 * - Losses: float64 references of AP, aLRP, RS, BAP and BRS
 *   ({@linkcode rankSortLoss}, ...), their tensor ops under `F`
 *   (`F.bucketedRankSort`, ...), and the baselines ({@linkcode sigmoidFocalLoss},
 *   {@linkcode giouLoss}, ...).
 * - Data: COCO and LVIS files, Cityscapes' fine polygons as COCO instances
 *   ({@linkcode loadCityscapes}), the pycocotools-identical `mask` API, PNG/JPEG,
 *   the synthetic `shapes` dataset, transforms and a worker loader (with LVIS'
 *   repeat-factor sampling, {@linkcode repeatFactors}).
 * - Evaluation: {@linkcode evaluateCoco} (as pycocotools), {@linkcode evaluateLrp}
 *   and {@linkcode evaluateLvis} (as lvis-api).
 * - Detectors: {@linkcode buildDetector} builds any {@linkcode Detector} from its
 *   config ({@linkcode Atss}, {@linkcode Paa}, Faster and Cascade R-CNN as
 *   {@linkcode TwoStageDetector}), trained by {@linkcode train}; the Mask R-CNN
 *   mask pieces {@linkcode maskTargets}, {@linkcode pasteMask} and {@linkcode diceLoss}. DETR-style
 *   one-to-one matching: {@linkcode hungarian} (equal to scipy's
 *   `linear_sum_assignment`) and {@linkcode detrMatch} (Deformable-DETR's
 *   matching cost, {@linkcode BRS_DETR_MATCH} weights as an option), used by
 *   {@linkcode CoDetr} (Co-Deformable-DETR, and BRS-DETR with `loss: "brs"`).
 *
 * Call {@linkcode initBackend} once to pick a backend (WebGPU on a hardware
 * adapter, else native, else WebGPU on a software adapter, else the CPU);
 * tensors are then created on it by default.
 *
 * @example Gradients on whichever backend is available
 * ```ts
 * import { backward, initBackend, mul, sum, tensor } from "./mod.ts";
 *
 * await initBackend();
 * const x = tensor([1, 2, 3], undefined, { requiresGrad: true });
 * backward(sum(mul(x, x)));
 * console.log(await x.grad!.data()); // Float32Array [2, 4, 6]
 * ```
 *
 * @example The Rank & Sort loss and its bucketed form on plain arrays
 * ```ts
 * import { bucketedRankSortLoss, rankSortLoss } from "./mod.ts";
 *
 * const logits = [2.0, 0.5, 1.2, -1.0, 0.9];
 * const targets = [0.9, 0, 0.6, 0, 0]; // IoUs of positives; 0 = negative
 * const rs = rankSortLoss(logits, targets, { delta: 0.5 });
 * const brs = bucketedRankSortLoss(logits, targets, { delta: 0.5 });
 * console.log(rs.loss.toFixed(4), brs.loss.toFixed(4));
 * ```
 *
 * @example DETR matching: each target of an image takes its own query
 * ```ts
 * import { BRS_DETR_MATCH, detrMatch, hungarian } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const { rows, cols } = hungarian(Float64Array.of(4, 1, 2, 3, 5, 0), 3, 2); // 3 x 2 costs
 * assert.deepEqual([Array.from(rows), Array.from(cols)], [[1, 2], [0, 1]]);
 *
 * const pred = { // 1 image, 3 queries, 2 classes; boxes normalised cxcywh
 *   logits: Float32Array.of(3, -3, -3, 3, -3, -3),
 *   boxes: Float32Array.of(0.3, 0.3, 0.2, 0.2, 0.7, 0.7, 0.2, 0.2, 0.5, 0.5, 0.9, 0.9),
 *   numQueries: 3,
 *   numClasses: 2,
 * };
 * const targets = [{ labels: [1, 0], boxes: [0.7, 0.7, 0.2, 0.2, 0.3, 0.3, 0.2, 0.2] }];
 * const [m] = detrMatch(pred, targets, BRS_DETR_MATCH);
 * assert.deepEqual([Array.from(m.queryIndex), Array.from(m.targetIndex)], [[0, 1], [1, 0]]);
 * ```
 *
 * @module
 */

export * from "./tensor/mod.ts";

export * from "./losses/reference/mod.ts";
export {
  fastBucketedApLoss,
  type FastBucketedOptions,
  fastBucketedRankSortLoss,
} from "./losses/fast/mod.ts";
export * from "./losses/baselines/mod.ts";
export * as F from "./losses/ops/mod.ts";

export * as mask from "./data/mask.ts";
export type * from "./data/coco_types.ts";
export {
  CocoIndex,
  type DatasetFormat,
  loadCoco,
  loadCocoResults,
  parseCoco,
  type ParseCocoOptions,
  parseCocoResults,
  stringifyCocoResults,
  toCocoDetections,
  writeCocoResults,
} from "./data/coco.ts";
export {
  CITYSCAPES_CLASSES,
  CITYSCAPES_SPLITS,
  cityscapesCategories,
  cityscapesImageDir,
  type CityscapesInstances,
  type CityscapesSplit,
  loadCityscapes,
  parseCityscapesPolygons,
} from "./data/cityscapes.ts";
export type * from "./data/lvis_types.ts";
export { isLvisDataset, loadLvis, parseLvis } from "./data/lvis.ts";
export { LVIS_REPEAT_THRESHOLD, repeatFactors, repeatIndices } from "./data/repeat_factors.ts";
export { type DecodedImage, decodeImage, loadImage, toRgb } from "./data/image.ts";
export { decodePng, encodePng, type EncodePngOptions } from "./data/png.ts";
export { decodeJpeg } from "./data/jpeg.ts";
export {
  generateShapes,
  generateShapesSplits,
  SHAPE_CLASSES,
  shapesCategories,
  type ShapesOptions,
  type ShapesSplit,
  writeShapes,
} from "./data/shapes.ts";
export {
  applyTransforms,
  flipSample,
  IMAGENET_MEAN,
  IMAGENET_STD,
  type JitterOptions,
  jitterSample,
  normalizeImage,
  padTo,
  resizeBilinear,
  resizeSample,
  type Sample,
  type SampleMeta,
  type TransformOptions,
} from "./data/transforms.ts";
export {
  type Batch,
  cocoSource,
  DetectionLoader,
  type LoaderOptions,
  type LoaderSource,
  memorySource,
  type SourceItem,
} from "./data/loader.ts";

export {
  COCO_AREA_LABELS,
  COCO_AREA_RANGES,
  COCO_IOU_THRESHOLDS,
  COCO_MAX_DETS,
  COCO_RECALL_THRESHOLDS,
  type IouType,
} from "./eval/params.ts";
export {
  COCO_STAT_NAMES,
  type CocoCategoryResult,
  type CocoEvalOptions,
  type CocoEvalResult,
  evaluateCoco,
  formatSummary,
} from "./eval/coco_eval.ts";
export {
  evaluateLrp,
  type LrpCategoryResult,
  type LrpEvalOptions,
  type LrpEvalResult,
} from "./eval/lrp.ts";
export { evaluateCocoAndLrp } from "./eval/coco_and_lrp.ts";
export {
  evaluateLvis,
  formatLvisSummary,
  LVIS_STAT_NAMES,
  type LvisCategoryResult,
  type LvisCategoryStatName,
  type LvisEvalOptions,
  type LvisEvalResult,
  type LvisStatName,
  type LvisStats,
} from "./eval/lvis_eval.ts";
export {
  LVIS_DETECTION_STATUS,
  LVIS_FREQUENCIES,
  LVIS_MAX_DETS,
  type LvisDetectionStatus,
} from "./eval/lvis_prepare.ts";

export {
  buildDetector,
  type BuildOptions,
  DETECTOR_BUILDERS,
  DETECTOR_KINDS,
  DETECTOR_LOSSES,
  type DetectorBuilders,
  type DetectorKind,
  type DetectorModelConfig,
} from "./detectors/build.ts";
export { type Detector, type DetectorLosses } from "./detectors/detector.ts";
export {
  AnchorDetector,
  type AnchorDetectorConfig,
  type AnchorDetectorParts,
  anchorLossInputs,
  buildAnchorParts,
} from "./detectors/anchor_detector.ts";
export { Atss, type AtssModelConfig, type AtssParts, buildAtss } from "./detectors/atss.ts";
export {
  buildPaa,
  Paa,
  type PaaAssignment,
  type PaaLosses,
  type PaaModelConfig,
  type PaaParts,
  type PaaTestSettings,
} from "./detectors/paa.ts";
export {
  PAA_LOSS_TABLE,
  PAA_LOSSES,
  type PaaLoss,
  paaLoss,
  type PaaLossEntry,
  reassignScores,
} from "./detectors/paa_losses.ts";
export {
  PAA_ASSIGN,
  type PaaCandidates,
  paaCandidates,
  paaReassignBatch,
  type PaaReassignBatchOptions,
  type PaaReassignment,
} from "./detectors/paa_targets.ts";
export { scoreVoting, type ScoreVotingOptions } from "./detectors/score_voting.ts";
export {
  fitGmm2,
  type Gmm2Fit,
  type GmmArithmetic,
  type GmmCovariance,
  type GmmIteration,
  type GmmOptions,
  type PaaGtResult,
  paaReassign,
  type PaaReassignInput,
  type PaaReassignResult,
  paaSelect,
  type PaaSelection,
  paaSeparate,
  type PaaSeparation,
} from "./detectors/paa_gmm.ts";
export {
  buildTwoStage,
  type MaskBranchSettings,
  type ProposalSettings,
  type RoiHeadSettings,
  type RoiStage,
  type RoiStageSpec,
  type RpnSettings,
  TWO_STAGE_LOSSES,
  type TwoStageCommonConfig,
  TwoStageDetector,
  type TwoStageLoss,
  type TwoStageParts,
  type TwoStageTestSettings,
} from "./detectors/two_stage.ts";
export { buildFasterRcnn, type FasterRcnnModelConfig } from "./detectors/faster_rcnn.ts";
export { buildMaskRcnn, type MaskRcnnModelConfig } from "./detectors/mask_rcnn.ts";
export {
  MaskBranch,
  type MaskSettings,
  type MaskTargets,
  type RoiPooler,
  sampleMaskRois,
} from "./detectors/mask_branch.ts";
export { FcnMaskHead, type MaskHeadConfig } from "./detectors/heads/mask_head.ts";
export {
  buildCascadeRcnn,
  type CascadeRcnnModelConfig,
  type CascadeStageConfig,
} from "./detectors/cascade_rcnn.ts";
export {
  ATSS_LOSS_TABLE,
  ATSS_LOSSES,
  type AtssLoss,
  atssLoss,
  type AtssLossEntry,
  type AtssLossInputs,
  rankingTargetVector,
} from "./detectors/atss_losses.ts";
export {
  assignBatch,
  type AtssTargets,
  type BatchPositives,
  centernessTargets,
  gatherPositives,
} from "./detectors/atss_targets.ts";
export { type AnchorConfig, type Anchors, generateAnchors } from "./detectors/anchors.ts";
export {
  batchProposals,
  type ProposalOptions,
  type Proposals,
  RPN_ANCHORS,
  rpnAnchors,
  rpnProposals,
} from "./detectors/rpn.ts";
export {
  decodeUnitHost,
  RPN_UNIT_ANCHOR,
  RPN_UNIT_CODER,
  rpnLoss,
  type RpnLossOptions,
  type RpnTargetOptions,
  type RpnTargets,
  rpnTargets,
} from "./detectors/rpn_loss.ts";
export { roiLoss, type RoiLossOptions } from "./detectors/roi_loss.ts";
export {
  checkSamplerSettings,
  drawSorted,
  ROI_SAMPLER,
  RPN_SAMPLER,
  sampleCandidates,
  type SampledCandidates,
  samplerRng,
  samplerSeed,
  type SamplerSettings,
} from "./detectors/random_sampler.ts";
export {
  rpnBaselineLoss,
  type RpnBaselineLossOptions,
  type RpnSampledTargetOptions,
  type RpnSampledTargets,
  rpnSampledTargets,
  STOCK_RPN_CODER,
} from "./detectors/rpn_baseline_loss.ts";
export {
  type RoiBaselineBox,
  roiBaselineLoss,
  type RoiBaselineLossOptions,
  sampleRoiTargets,
} from "./detectors/roi_baseline_loss.ts";
export {
  type RoiLossInputs,
  type RpnLossInputs,
  softmaxWithoutBackground,
  TWO_STAGE_LOSS_TABLE,
  TWO_STAGE_RANKING_LOSSES,
  twoStageLoss,
  type TwoStageLossEntry,
  type TwoStageRankingLoss,
} from "./detectors/two_stage_losses.ts";
export {
  type RoiDetectionOptions,
  type RoiDetections,
  roiDetections,
} from "./detectors/roi_postprocess.ts";
export {
  roiAssignOptions,
  type RoiTargetOptions,
  type RoiTargets,
  roiTargets,
} from "./detectors/roi_targets.ts";
export { maskTargets, maskTargetsSoft } from "./detectors/mask_targets.ts";
export {
  pasteMask,
  pasteMasksToRle,
  pasteMaskValues,
  type PasteWindow,
  pasteWindow,
} from "./detectors/paste_masks.ts";
export { type Assignment, atssAssign } from "./detectors/atss_assigner.ts";
export {
  ASSIGN_IGNORED,
  ASSIGN_NEGATIVE,
  maxIouAssign,
  type MaxIouAssignment,
  type MaxIouAssignOptions,
  RPN_ASSIGN,
} from "./detectors/max_iou_assigner.ts";
export { hungarian, type HungarianResult } from "./detectors/hungarian.ts";
export {
  BRS_DETR_MATCH,
  DEFORMABLE_DETR_MATCH,
  type DetrImageMatch,
  detrMatch,
  type DetrMatchCost,
  detrMatchCost,
  type DetrMatchOptions,
  type DetrPredictions,
  type DetrTargets,
} from "./detectors/detr_matcher.ts";
export {
  AUX_RCNN_LOSS,
  buildCoDetr,
  CoDetr,
  type CoDetrAtssConfig,
  type CoDetrEncoding,
  type CoDetrModelConfig,
} from "./detectors/co_detr.ts";
export {
  DeformableAttention,
  type DeformableAttentionConfig,
  type DeformableAttentionInput,
  type LevelLayout,
  levelLayout,
} from "./detectors/deformable_detr/deformable_attention.ts";
export {
  BoxMlp,
  ChannelMapper,
  type DecoderInput,
  DecoderLayer,
  type DeformableTransformerConfig,
  type EncoderInput,
  EncoderLayer,
  encoderProposals,
  encoderReferencePoints,
  FeedForward,
  inverseSigmoid,
  inverseSigmoidHost,
  proposalPosEmbedHost,
} from "./detectors/deformable_detr/transformer.ts";
export {
  DETR_LOSSES,
  type DetrLoss,
  type DetrSetLoss,
  detrSetLoss,
  type DetrSetTargets,
  matchedTargets,
} from "./detectors/deformable_detr/detr_losses.ts";
export { auxiliaryQueries, type AuxQueries } from "./detectors/deformable_detr/aux_queries.ts";
export {
  AuxRcnn,
  type AuxRcnnStep,
  CO_DETR_ROI_GIOU_WEIGHT,
  type CoDetrRcnnConfig,
  roiPositives,
} from "./detectors/deformable_detr/aux_rcnn.ts";
export { ResNet, RESNET50, type ResNetConfig } from "./detectors/backbones/resnet.ts";
export { Fpn, type FpnExtraLevels } from "./detectors/necks/fpn.ts";
export { AtssHead, type AtssHeadConfig, type AtssHeadOutput } from "./detectors/heads/atss_head.ts";
export {
  RpnHead,
  type RpnHeadConfig,
  type RpnHeadOutput,
  type RpnLevelOutput,
} from "./detectors/heads/rpn_head.ts";
export {
  type BBoxHeadConfig,
  type BBoxHeadOutput,
  multiRoiAlign,
  type MultiRoiAlignOptions,
  Shared2FcBBoxHead,
} from "./detectors/heads/roi_head.ts";
export { type NormKind } from "./detectors/norm_layer.ts";
export {
  bboxOverlaps,
  type BboxOverlapsOptions,
  boxIou,
  cxcywhToXyxy,
  cxcywhToXyxyHost,
  type OverlapOptions,
  xywhToXyxy,
  xyxyToCxcywh,
  xyxyToXywh,
} from "./boxes/box_ops.ts";
export { type OverlapMode } from "./boxes/iou.ts";
export { DeltaXywhCoder, type DeltaXywhCoderOptions } from "./boxes/coder.ts";
export {
  batchedNms,
  batchedNmsHost,
  batchedNmsIndices,
  type HostBoxes,
  nmsIndices,
  type NmsOptions,
  type NmsResult,
} from "./boxes/nms.ts";
export { mapRoiLevels } from "./boxes/roi_levels.ts";
export {
  denseDetections,
  type DenseLevel,
  type DensePostprocessOptions,
  type Detections,
  postprocessDetections,
  readDetections,
} from "./detectors/postprocess.ts";

export type {
  DataSettings,
  DetectorConfig,
  FileSplits,
  SamplingSettings,
  TrainSettings,
} from "./configs/types.ts";
export { ATSS_TINY_SHAPES } from "./configs/atss_tiny_shapes.ts";
export { ATSS_R50_COCO } from "./configs/atss_r50_coco.ts";
export { PAA_TINY_SHAPES } from "./configs/paa_tiny_shapes.ts";
export { PAA_R50_COCO } from "./configs/paa_r50_coco.ts";
export { FASTER_RCNN_TINY_SHAPES } from "./configs/faster_rcnn_tiny_shapes.ts";
export { FASTER_RCNN_R50_COCO } from "./configs/faster_rcnn_r50_coco.ts";
export { CASCADE_RCNN_TINY_SHAPES } from "./configs/cascade_rcnn_tiny_shapes.ts";
export { CASCADE_RCNN_R50_COCO } from "./configs/cascade_rcnn_r50_coco.ts";
export { MASK_RCNN_TINY_SHAPES } from "./configs/mask_rcnn_tiny_shapes.ts";
export { MASK_RCNN_R50_COCO } from "./configs/mask_rcnn_r50_coco.ts";
export { MASK_RCNN_R50_CITYSCAPES } from "./configs/mask_rcnn_r50_cityscapes.ts";
export { MASK_RCNN_R50_LVIS } from "./configs/mask_rcnn_r50_lvis.ts";
export { BRS_DETR_TINY_SHAPES } from "./configs/brs_detr_tiny_shapes.ts";
export { CO_DETR_TINY_SHAPES } from "./configs/co_detr_tiny_shapes.ts";
export { BRS_DETR_R50_COCO } from "./configs/brs_detr_r50_coco.ts";
export { train, type TrainOptions, type TrainResult } from "./engine/train.ts";
export { buildOptimizer, lrFactorOf } from "./engine/optimizer.ts";
export {
  type StepLosses,
  type TrainingOptimizer,
  trainingOptimizer,
  trainStep,
} from "./engine/train_step.ts";
export { loadModel, type RestoredModel } from "./engine/model_io.ts";
export {
  loadBackbonePretrained,
  loadPretrained,
  type LoadPretrainedOptions,
  loadStateEntries,
  type NameMap,
  type PretrainedMismatch,
  type PretrainedReport,
  type PretrainedTarget,
  TORCHVISION_RESNET,
  TORCHVISION_RESNET50_URL,
} from "./engine/pretrained.ts";
export type { RunEvaluation } from "./engine/evaluate_run.ts";
