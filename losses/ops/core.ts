/**
 * The shared pipeline of the ranking-loss ops: one forward pass of kernels that computes the
 * loss values and the error-driven gradient on the tensors' backend, with no readback, wrapped
 * in a `customOp` whose backward scales the stored gradient by the upstream gradient of the
 * ranking output.
 *
 * Steps (see `kernels.ts`, `merge_kernels.ts`, `prefix_kernels.ts`): per-chunk positive counts →
 * totals and offsets → compaction of the `P` positives → their merge sort (descending logit,
 * index on ties; `log2 P` passes) → the boundary list (the sorted positives for the bucketed
 * losses; the knees `p ± δ` for the others) → every relevant negative finds its interval by
 * binary search and adds to its column's count and fixed-point sum → interval counts and means
 * → prefix sums over positives and intervals → per-positive errors, each sum over positives or
 * intervals a ramp sum (two binary searches and a prefix lookup), the sorting losses' sums over
 * positives with larger targets from merge-sort levels in target order → per-interval negative
 * weights (ramp sums again) → scatter to the negatives (`O(1)` each) and the positives.
 *
 * Cost: `O(M log P)` for the negatives and `O(P log² P)` for the positives; no buffer is larger
 * than `O(M + P)`. Every data-dependent count stays on the device.
 *
 * On the native backend the bucketed losses skip the pipeline: `native_losses.ts` runs the fast
 * array functions of `losses/fast` on the tensors' memory, with the same outputs and backward.
 *
 * @module
 */

import { customOp, needsGrad } from "../../tensor/autograd.ts";
import type { DType } from "../../tensor/dtype.ts";
import { mul } from "../../tensor/ops/elementwise.ts";
import { gather } from "../../tensor/ops/index.ts";
import { expectDtype, floatOf, launch, launchInto } from "../../tensor/ops/launch.ts";
import { cumsum } from "../../tensor/ops/scan.ts";
import { argsort, sort } from "../../tensor/ops/sort.ts";
import { empty, type Tensor, tensor, tidy } from "../../tensor/tensor.ts";
import {
  alrpLocalisationKernel,
  apEnvelopeKernel,
  boundaryGridKernel,
  CHUNK,
  chunkStatsKernel,
  COLUMN_WG,
  compactKernel,
  edgesKernel,
  finalizeKernel,
  gatherErrorsKernel,
  GRID,
  GRID_CELLS,
  intervalWeightsKernel,
  type LossKind,
  MAX_COLUMNS,
  MAX_POSITIVES,
  partialsKernel,
  positiveGradKernel,
  positiveKernel,
  reduceIntervalsKernel,
  ROWS,
  rowsKernel,
  SCATTER_PER_LANE,
  scatterNegativesKernel,
  sortedBucketsKernel,
  sortedPositiveFlagsKernel,
  sortedPositivesKernel,
  sortFlagsKernel,
  SUB,
  totalsKernel,
  zeroMatrixKernel,
} from "./kernels.ts";
import {
  DOMINANCE_CHANNELS,
  DOMINANCE_OUTPUTS,
  dominanceKernel,
  type DominanceRound,
  gatherRowsKernel,
  mergeLevelKernel,
  targetBoundsKernel,
} from "./merge_kernels.ts";
import { nativeRankingForward, runsNative, scaleInPlace } from "./native_losses.ts";
import { scanKernel, type ScanOp } from "./prefix_kernels.ts";

/** Options of the ranking-loss ops. */
export interface RankingOpOptions {
  /** Half-width `δ >= 0` of the ramp of `H`; `0` is the unit step with `H(0) = 1`. */
  delta?: number;
  /**
   * Upper bound on the number of positives (default `M`); sizes the positive buffers and sets
   * the number of merge passes (`log2`). When the data has more (or more than
   * `MAX_POSITIVES` = 2,097,151), the loss values are NaN and the gradient is 0.
   */
  maxPositives?: number;
  /**
   * Bucketed losses: how each negative finds its bucket. `"search"` (default): binary search
   * among the sorted positives, `O(M log P)`. `"sort"`: the paper's way, a stable sort of all
   * `M` entries (positives first among equal logits), then a running count of positives,
   * `O(M log M)`. Both give the same buckets, hence the same outputs bit for bit (on the
   * native backend too, whose fast array functions have the same two ways).
   */
  bucketing?: "search" | "sort";
}

/** Loss values and gradient of one forward pass (no autograd). */
export interface RankingForward {
  /** Ranking loss `[]` (AP family: the loss). */
  rankingLoss: Tensor;
  /** Sorting loss `[]` (0 for the AP family). */
  sortingLoss: Tensor;
  /** Gradient `[M]` of the loss for an upstream gradient of 1. */
  grad: Tensor;
  /** aLRP only: gradient `[P]` of the localisation loss (`sortingLoss`) w.r.t. the errors. */
  errorGrad?: Tensor;
}

/** Most entries of the partial-sum matrix (3 `u32` each: 128 MiB, WebGPU's least binding size). */
const MAX_MATRIX = Math.floor(2 ** 27 / 12) - MAX_COLUMNS;

const DEFAULT_DELTA: Record<LossKind, number> = { rs: 0.5, brs: 0.5, ap: 1, bap: 1, alrp: 1 };
const NAMES: Record<LossKind, string> = {
  rs: "rankSort",
  brs: "bucketedRankSort",
  ap: "apLoss",
  bap: "bucketedAp",
  alrp: "alrp",
};

/** Checks inputs where they enter; returns the resolved `δ` and positive capacity. */
export function checkInputs(
  kind: LossKind,
  logits: Tensor,
  targets: Tensor,
  options: RankingOpOptions,
): { delta: number; pcap: number } {
  const op = NAMES[kind];
  expectDtype(op, logits, ["f32", "f64"]);
  expectDtype(op, targets, ["f32", "f64"]);
  if (logits.rank !== 1 || targets.rank !== 1 || logits.size !== targets.size) {
    throw new TypeError(
      `${op}: logits [${logits.shape.join(", ")}] and targets [${
        targets.shape.join(", ")
      }] must be 1-D of equal length`,
    );
  }
  if (logits.dtype !== targets.dtype) {
    throw new TypeError(`${op}: logits are ${logits.dtype} but targets are ${targets.dtype}`);
  }
  if (logits.backend !== targets.backend) {
    throw new TypeError(`${op}: logits and targets live on different backends`);
  }
  const delta = options.delta ?? DEFAULT_DELTA[kind];
  if (typeof delta !== "number" || !Number.isFinite(delta) || delta < 0) {
    throw new RangeError(`${op}: delta ${delta} must be a finite number >= 0`);
  }
  const m = logits.size;
  const pcap = options.maxPositives ?? m;
  if (!Number.isInteger(pcap) || pcap < 0) {
    throw new RangeError(`${op}: maxPositives ${pcap} must be an integer >= 0`);
  }
  if (m >= 2 ** 28) throw new RangeError(`${op}: ${m} entries exceed the limit of 2^28`);
  // More positives than the kernels handle make the loss NaN anyway: no larger buffers.
  return { delta, pcap: Math.min(pcap, m, MAX_POSITIVES + 1) };
}

/**
 * The paper's bucketing (option `bucketing: "sort"`): a stable sort of all entries by logit,
 * descending, positives first among equal logits (a sort by a positive flag, then by logit);
 * the bucket of the relevant negative at sorted position `r` is the number of positives
 * sorted at or before it. Writes the bucket ids, by original index, into `qid`.
 */
function bucketsBySort(
  logits: Tensor,
  targets: Tensor,
  fmeta: Tensor,
  posEq1: number,
  qid: Tensor,
): void {
  const f = floatOf(logits), m = logits.size;
  if (m === 0) return;
  tidy(() => {
    const groups = Math.ceil(m / 64);
    const flags = launchInto(sortFlagsKernel(f), [targets], [m], f, { m, pos_eq1: posEq1 }, groups);
    const byFlag = argsort(flags);
    const { indices: order } = sort(gather(logits, 0, byFlag), {
      descending: true,
      payload: byFlag,
    });
    const positive = launchInto(sortedPositiveFlagsKernel(f), [targets, order], [m], "u32", {
      m,
      pos_eq1: posEq1,
    }, groups);
    const pc = cumsum(positive);
    launch(sortedBucketsKernel(f), [logits, targets, order, pc, fmeta], [qid], { m }, groups);
  });
}

/**
 * Runs the forward kernels of loss `kind` on `logits`/`targets` (1-D, same length, f32 on
 * either backend or f64 on the CPU). Returns fresh tensors; nothing is read back. On the native
 * backend BRS and BAP run the fast array functions instead (`native_losses.ts`).
 */
export function rankingForward(
  kind: LossKind,
  logits: Tensor,
  targets: Tensor,
  options: RankingOpOptions = {},
  errors?: Tensor,
): RankingForward {
  const { delta, pcap } = checkInputs(kind, logits, targets, options);
  const { bucketing } = options;
  if (bucketing !== undefined && bucketing !== "search" && bucketing !== "sort") {
    throw new RangeError(`${NAMES[kind]}: unknown bucketing "${bucketing}"`);
  }
  const bySort = bucketing === "sort";
  if (bySort && kind !== "brs" && kind !== "bap") {
    throw new TypeError(`${NAMES[kind]}: bucketing "sort" applies to the bucketed losses only`);
  }
  if ((kind === "alrp") !== (errors !== undefined)) {
    throw new TypeError(`${NAMES[kind]}: regression errors go with aLRP only`);
  }
  if (errors) {
    expectDtype("alrp", errors, [logits.dtype]);
    if (errors.rank !== 1 || errors.backend !== logits.backend) {
      throw new TypeError(
        `alrp: regression errors [${errors.shape.join(", ")}] must be 1-D on the logits' backend`,
      );
    }
  }
  const backend = logits.backend;
  if (runsNative(kind, backend)) {
    // The fast array functions on the tensors' memory; `P` above the pipeline's capacity
    // gives NaN there too.
    const capacity = Math.min(options.maxPositives ?? logits.size, MAX_POSITIVES);
    return nativeRankingForward(kind as "brs" | "bap", logits, targets, {
      delta,
      bucketing,
      capacity,
    }, NAMES[kind]);
  }
  const f: DType = floatOf(logits);
  const m = logits.size;
  const bucketed = kind === "brs" || kind === "bap";
  const sorting = kind === "rs" || kind === "brs";
  const posEq1 = kind === "ap" || kind === "alrp" ? 1 : 0;
  const ne = errors ? errors.size : 0xffffffff;
  const errorGrad = errors
    ? tensor(f === "f64" ? new Float64Array(errors.size) : new Float32Array(errors.size), [
      errors.size,
    ], { backend })
    : undefined;
  const rankingLoss = empty([], f, backend);
  const sortingLoss = empty([], f, backend);
  const grad = empty([m], f, backend);
  const scratch: Tensor[] = [];
  const alloc = (n: number, dtype: DType): Tensor => {
    const t = empty([Math.max(1, n)], dtype, backend);
    scratch.push(t);
    return t;
  };
  try {
    const chunks = Math.max(1, Math.ceil(m / CHUNK));
    const lcap = bucketed || delta === 0 ? pcap : 2 * pcap;
    // Partial-sum matrix: up to 64 columns, never more than O(M) entries, and within the
    // binding size every adapter allows (3 u32 per entry, 128 MiB); `L + 1 <= MAX_MATRIX`.
    const cape = Math.min(MAX_COLUMNS * (lcap + 1), lcap + 1 + 2 * m, MAX_MATRIX) + MAX_COLUMNS;
    const minColumns = Math.min(MAX_COLUMNS, Math.max(1, Math.floor(cape / (lcap + 1))));
    const grid = Math.max(1, Math.min(GRID, pcap + 1));
    const gridGroups = Math.ceil(grid / 64);
    let levels = 0;
    while (2 ** levels < pcap) levels++;
    const cnt = alloc(chunks, "u32"), minp = alloc(chunks, f), maxn = alloc(chunks, f);
    const offs = alloc(chunks, "u32"), info = alloc(16, "u32"), fmeta = alloc(4, f);
    launch(chunkStatsKernel(f), [logits, targets], [cnt, minp, maxn], {
      m,
      chunks,
      pos_eq1: posEq1,
    }, Math.ceil(chunks / 64));
    launch(totalsKernel(f), [cnt, minp, maxn], [offs, info, fmeta], {
      chunks,
      m,
      delta,
      edges: bucketed ? 0 : 1,
      cape,
      pcap,
      ne,
      grid,
    }, 1);
    const cs = alloc(pcap, f), cy = alloc(pcap, f), ci = alloc(pcap, "u32");
    launch(compactKernel(f), [logits, targets, offs, info], [cs, cy, ci], {
      m,
      chunks,
      pos_eq1: posEq1,
      pcap,
    }, Math.ceil(chunks / 64));
    const perPositive = { grid };
    // Launches over the positives and over the intervals take their size from `info`.
    const overPositives = { args: info, index: 8 }, overIntervals = { args: info, index: 11 };
    const rows = (layout: keyof typeof ROWS, ps: Tensor, yv: Tensor, pd: Tensor, umode = 0) => {
      const x = alloc(pcap * ROWS[layout].channels, f);
      launch(
        rowsKernel(f),
        [ps, yv, pd, info],
        [x],
        {
          grid,
          shape: ROWS[layout].id,
          umode,
        },
        gridGroups,
        overPositives,
      );
      return x;
    };
    /** Exclusive prefix of `n` rows (`n = info[slot] + add`, capacity `cap`). */
    const scan = (
      x: Tensor,
      channels: number,
      cap: number,
      slot = 0,
      add = 0,
      op: ScanOp = "sum",
      keep = true,
    ) => {
      const g = keep
        ? alloc((cap + 1) * channels * 2, f)
        : empty([(cap + 1) * channels * 2], f, backend);
      launch(scanKernel(f, channels, op), [x, info], [g], { slot, add }, 1);
      return g;
    };
    /** Merge passes over the positives; `after(level, keys, rows)` sees each level first. */
    const mergeLevels = (
      key: Tensor,
      x: Tensor,
      channels: number,
      after?: (level: number, key: Tensor, x: Tensor) => void,
    ) => {
      const spare: [Tensor, Tensor][] = [];
      for (let level = 0;; level++) {
        after?.(level, key, x);
        if (level === levels) return { key, x };
        // Two buffers per pass alternate (the input level is the caller's).
        if (level < 2) spare.push([alloc(pcap, f), alloc(pcap * channels, f)]);
        const [kb, xb] = spare[level % 2];
        launch(
          mergeLevelKernel(f, channels),
          [key, x, info],
          [kb, xb],
          {
            grid,
            w: 2 ** level,
          },
          gridGroups,
          overPositives,
        );
        key = kb;
        x = xb;
      }
    };
    const iota = rows("iota", cs, cy, cs);
    const byLogit = mergeLevels(cs, iota, 1);
    const ps = alloc(pcap, f), py = alloc(pcap, f), pi = alloc(pcap, "u32");
    const pk = alloc(pcap, "u32");
    launch(
      sortedPositivesKernel(f),
      [byLogit.key, byLogit.x, cy, ci, info],
      [ps, py, pi, pk],
      perPositive,
      gridGroups,
      overPositives,
    );
    // aLRP reads the errors (sorted order) where the others read the targets.
    let py2 = py;
    if (errors) {
      py2 = alloc(pcap, f);
      launch(
        gatherErrorsKernel(f),
        [errors, pk, info],
        [py2],
        perPositive,
        gridGroups,
        overPositives,
      );
    }
    const e = alloc(lcap, f), ea = alloc(pcap, "u32"), eb = alloc(pcap, "u32");
    launch(edgesKernel(f), [ps, info], [e, ea, eb], { grid, delta }, gridGroups, overPositives);
    const mat = alloc(3 * cape, "u32");
    launch(
      zeroMatrixKernel(),
      [info],
      [mat],
      { total: 3 * cape },
      Math.ceil(3 * cape / 256 / 64),
    );
    const subs = Math.max(1, Math.ceil(Math.ceil(m / minColumns) / SUB));
    const columnGroups = Math.ceil(MAX_COLUMNS / COLUMN_WG);
    const qid = alloc(m, "u32");
    if (bySort) {
      bucketsBySort(logits, targets, fmeta, posEq1, qid);
      for (let sub = 0; sub < subs; sub++) {
        launch(partialsKernel(f, true, true), [logits, targets, e, info, fmeta, qid], [mat], {
          m,
          sub,
        }, columnGroups);
      }
    } else {
      // The boundary grid, read through a uniform window, narrows each search to one cell.
      const grid = alloc(GRID_CELLS + 1, "f32");
      launch(boundaryGridKernel(f), [e, info, fmeta], [grid], { unused: 0 }, (GRID_CELLS + 1) / 64);
      const kernel = partialsKernel(f, bucketed);
      const bind = (t: Tensor) => ({ storage: t.storage, dtype: t.dtype, size: t.size });
      for (let sub = 0; sub < subs; sub++) {
        backend.run({
          kernel,
          inputs: [logits, targets, e, info, fmeta].map(bind),
          outputs: [mat, qid].map(bind),
          params: { m, sub },
          workgroups: columnGroups,
          uniformInputs: [{ storage: grid.storage, byteOffset: 0 }],
        });
      }
    }
    const icnt = alloc(lcap + 1, f), imean = alloc(lcap + 1, f), xq = alloc(2 * (lcap + 1), f);
    launch(
      reduceIntervalsKernel(f),
      [mat, e, info, fmeta],
      [icnt, imean, xq],
      { grid },
      gridGroups,
      overIntervals,
    );
    const gq = scan(xq, 2, lcap + 1, 1, 1);
    const xp = rows("positives", ps, py2, ps, sorting ? 1 : errors ? 2 : 0);
    const gp = scan(xp, ROWS.positives.channels, pcap);
    // Sorting losses: sums over the positives with larger targets, level by level.
    let ys: Tensor | undefined, lge = info, lgt = info;
    const dominance = (round: DominanceRound, xs: Tensor) => {
      const channels = DOMINANCE_CHANNELS[round];
      const acc = alloc(pcap * DOMINANCE_OUTPUTS[round], f);
      const k0 = alloc(pcap, f), x0 = alloc(pcap * channels, f);
      launch(
        gatherRowsKernel(f, channels),
        [ps, ys!, xs, info],
        [k0, x0],
        perPositive,
        gridGroups,
        overPositives,
      );
      mergeLevels(k0, x0, channels, (level, key, x) => {
        // One prefix per level, released as soon as its queries are encoded.
        const g = scan(x, channels, pcap, 0, 0, "sum", false);
        try {
          launch(
            dominanceKernel(f, round),
            [key, g, ps, lge, lgt, info],
            [acc],
            { grid, level, first: level === 0 ? 1 : 0, delta },
            gridGroups,
            overPositives,
          );
        } finally {
          g.dispose();
        }
      });
      return acc;
    };
    let dom = ps;
    if (sorting) {
      const byTarget = mergeLevels(py, rows("iota", ps, py, ps), 1);
      ys = byTarget.x;
      lge = alloc(pcap, "u32");
      lgt = alloc(pcap, "u32");
      launch(
        targetBoundsKernel(f),
        [py, byTarget.key, info],
        [lge, lgt],
        perPositive,
        gridGroups,
        overPositives,
      );
      dom = dominance("targets", xp);
    }
    const pd = alloc(8 * pcap, f);
    launch(
      positiveKernel(f, kind),
      [ps, py2, gp, imean, gq, ea, eb, dom, info],
      [pd],
      { grid, delta },
      gridGroups,
      overPositives,
    );
    if (kind === "ap") {
      const gx = scan(rows("precisions", ps, py, pd), 1, pcap, 0, 0, "max");
      launch(apEnvelopeKernel(f), [gx, info], [pd], perPositive, gridGroups, overPositives);
    }
    if (errorGrad) {
      const gl = scan(rows("localisation", ps, py2, pd), 2, pcap);
      launch(
        alrpLocalisationKernel(f),
        [gl, pk, info],
        [pd, errorGrad],
        perPositive,
        gridGroups,
        overPositives,
      );
    }
    const gw = scan(rows("weights", ps, py, pd), 2, pcap);
    const wa = alloc(lcap + 1, f), wb = alloc(lcap + 1, f);
    launch(
      intervalWeightsKernel(f, bucketed),
      [ps, gw, imean, ea, eb, info],
      [wa, wb],
      { grid, delta },
      gridGroups,
      overIntervals,
    );
    if (m > 0) {
      launch(
        scatterNegativesKernel(f),
        [logits, qid, wa, wb, info],
        [grad],
        { m },
        Math.ceil(m / (64 * SCATTER_PER_LANE)),
      );
    }
    const shares = sorting ? dominance("shares", rows("shares", ps, py, pd)) : pd;
    launch(
      positiveGradKernel(f, sorting),
      [pi, pd, shares, info],
      [grad],
      perPositive,
      gridGroups,
      overPositives,
    );
    const gt = scan(rows("totals", ps, py, pd), 2, pcap);
    launch(finalizeKernel(f), [gt, info], [rankingLoss, sortingLoss], { unused: 0 }, 1);
  } catch (error) {
    rankingLoss.dispose();
    sortingLoss.dispose();
    grad.dispose();
    errorGrad?.dispose();
    throw error;
  } finally {
    for (const t of scratch) t.dispose();
  }
  return { rankingLoss, sortingLoss, grad, errorGrad };
}

/**
 * The autograd op of loss `kind`: outputs `[rankingLoss, sortingLoss]`; backward gives
 * `logits` the stored gradient times the upstream gradient of `rankingLoss`
 * (docs/departures.md, Q10: the sorting output's upstream gradient is not used), `targets` none.
 */
export function rankingOp(
  kind: LossKind,
  options: RankingOpOptions,
): (logits: Tensor, targets: Tensor) => Tensor[] {
  return (logits: Tensor, targets: Tensor) => {
    const wanted = needsGrad([logits]);
    return customOp({
      label: `ranking_ops.${kind}`,
      forward: ([s, y]) => {
        const r = rankingForward(kind, s, y, options);
        const outputs = [r.rankingLoss, r.sortingLoss];
        if (!wanted) {
          r.grad.dispose();
          return { outputs };
        }
        return { outputs, saved: [r.grad] };
      },
      // The tape runs each backward once: the stored gradient is released here, or, on the
      // native backend, scaled in place and handed on (no [M] buffer allocated).
      backward: ([gRank], [grad]) => {
        const scaled = gRank && runsNative(kind, grad.backend) ? scaleInPlace(grad, gRank) : null;
        if (scaled) return [scaled, null];
        const out = gRank ? mul(grad, gRank) : null;
        grad.dispose();
        return [out, null];
      },
    })(logits, targets);
  };
}

/**
 * The aLRP autograd op: outputs `[classificationLoss, localisationLoss]`; backward gives
 * `logits` the stored error-driven gradient times the upstream gradient of the classification
 * loss and `errors` the gradient of the localisation loss (ranks detached) times its upstream.
 */
export function alrpOp(
  options: RankingOpOptions,
): (logits: Tensor, targets: Tensor, errors: Tensor) => Tensor[] {
  return (logits: Tensor, targets: Tensor, errors: Tensor) => {
    const wanted = needsGrad([logits, errors]);
    return customOp({
      label: "ranking_ops.alrp",
      forward: ([s, y, e]) => {
        const r = rankingForward("alrp", s, y, options, e);
        const outputs = [r.rankingLoss, r.sortingLoss];
        if (!wanted) {
          r.grad.dispose();
          r.errorGrad!.dispose();
          return { outputs };
        }
        return { outputs, saved: [r.grad, r.errorGrad!] };
      },
      backward: ([gCls, gLoc], [grad, errorGrad]) => {
        const out = [gCls ? mul(grad, gCls) : null, null, gLoc ? mul(errorGrad, gLoc) : null];
        grad.dispose();
        errorGrad.dispose();
        return out;
      },
    })(logits, targets, errors);
  };
}
