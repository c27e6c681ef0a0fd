/**
 * Baseline detection losses as autograd tensor ops: sigmoid focal loss,
 * (binary) cross entropy, L1 / smooth L1, IoU / GIoU, the Dice mask loss,
 * and the Rank & Sort recipe helpers (score-weighted averaging,
 * self-balance).
 *
 * @module
 */

export * from "./balance.ts";
export * from "./common.ts";
export * from "./cross_entropy.ts";
export * from "./dice_loss.ts";
export * from "./focal_loss.ts";
export * from "./iou_loss.ts";
export * from "./regression.ts";
