/**
 * The kernel-parity suite that runs inside the page (bundled for the browser by
 * `in_chromium.ts`): each case runs on the WebGPU backend and on the CPU twin and compares
 * outputs and gradients elementwise. No Deno or `node:` APIs here.
 *
 * @module
 */

import {
  add,
  type Backend,
  backward,
  bucketedRankSortLoss,
  conv2d,
  cpu,
  F,
  groupNorm,
  HARDWARE_PATHS,
  matmul,
  max,
  mean,
  min,
  mul,
  relu,
  Rng,
  softmax,
  sort,
  sum,
  type Tensor,
  tensor,
  webgpu,
  withProfile,
} from "../../mod.ts";

/** One case's outcome. */
export interface CaseResult {
  /** Case name. */
  name: string;
  /** Whether every output matched. */
  ok: boolean;
  /** The first mismatch or error; empty when `ok`. */
  detail: string;
  /** Milliseconds of the WebGPU run (compile included on first use). */
  ms: number;
}

/** What the suite reports. */
export interface SuiteReport {
  /** The adapter's vendor and architecture. */
  adapter: string;
  /** Per case, in order. */
  results: CaseResult[];
}

/** Outputs of a case, by name, read back as float64. */
type Outputs = Record<string, ArrayLike<number>>;

interface Case {
  name: string;
  atol: number;
  rtol: number;
  /** The case chooses its own paths (else it runs on the default and on the hardware paths). */
  ownPaths?: boolean;
  run(backend: Backend): Promise<Outputs>;
}

/** Uniform floats in `[lo, hi)` from a seeded generator. */
function randomArray(length: number, seed: number, lo = -1, hi = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length }, () => rng.uniform(lo, hi));
}

/** A leaf tensor that records gradients. */
function leaf(data: Float32Array, shape: number[], backend: Backend): Tensor {
  return tensor(data, shape, { backend, requiresGrad: true });
}

/** Reads tensors back, names kept. */
async function read(named: Record<string, Tensor | null>): Promise<Outputs> {
  const out: Outputs = {};
  for (const [name, t] of Object.entries(named)) {
    if (!t) throw new Error(`${name} is missing (no gradient?)`);
    out[name] = await t.data();
  }
  return out;
}

/** Backpropagates `Σ y ⊙ w` for a fixed random `w`, so that every output element matters. */
function backwardWeighted(y: Tensor, seed: number): void {
  const w = tensor(randomArray(y.size, seed), [...y.shape], { backend: y.backend });
  backward(sum(mul(y, w)));
}

const CASES: Case[] = [
  {
    name: "matmul [37, 53] x [53, 29], forward and both gradients",
    atol: 1e-4,
    rtol: 1e-4,
    async run(backend) {
      const a = leaf(randomArray(37 * 53, 1), [37, 53], backend);
      const b = leaf(randomArray(53 * 29, 2), [53, 29], backend);
      const c = matmul(a, b);
      backwardWeighted(c, 3);
      return await read({ c, da: a.grad, db: b.grad });
    },
  },
  {
    name: "matmul 128 x 96 x 160, transposed B",
    atol: 1e-4,
    rtol: 1e-4,
    async run(backend) {
      const a = tensor(randomArray(128 * 96, 4), [128, 96], { backend });
      const b = tensor(randomArray(160 * 96, 5), [160, 96], { backend });
      return await read({ c: matmul(a, b, { transposeB: true }) });
    },
  },
  {
    name: "conv2d 3x3 stride 2 pad 1 with bias, forward and gradients",
    atol: 1e-4,
    rtol: 1e-4,
    async run(backend) {
      const x = leaf(randomArray(2 * 5 * 13 * 11, 6), [2, 5, 13, 11], backend);
      const w = leaf(randomArray(7 * 5 * 3 * 3, 7), [7, 5, 3, 3], backend);
      const bias = leaf(randomArray(7, 8), [7], backend);
      const y = conv2d(x, w, { bias, stride: 2, padding: 1 });
      backwardWeighted(y, 9);
      return await read({ y, dx: x.grad, dw: w.grad, db: bias.grad });
    },
  },
  {
    name: "conv2d 1x1 and 3x3 chain with relu",
    atol: 1e-4,
    rtol: 1e-4,
    async run(backend) {
      const x = leaf(randomArray(1 * 8 * 16 * 16, 10), [1, 8, 16, 16], backend);
      const w1 = leaf(randomArray(16 * 8, 11, -0.5, 0.5), [16, 8, 1, 1], backend);
      const w2 = leaf(randomArray(4 * 16 * 9, 12, -0.3, 0.3), [4, 16, 3, 3], backend);
      const y = conv2d(relu(conv2d(x, w1)), w2, { padding: 1 });
      backwardWeighted(y, 13);
      return await read({ y, dx: x.grad, dw1: w1.grad, dw2: w2.grad });
    },
  },
  {
    name: "groupNorm 8 groups, forward and gradients",
    atol: 1e-4,
    rtol: 1e-3,
    async run(backend) {
      const x = leaf(randomArray(2 * 16 * 6 * 5, 14, -2, 3), [2, 16, 6, 5], backend);
      const g = leaf(randomArray(16, 15, 0.5, 1.5), [16], backend);
      const b = leaf(randomArray(16, 16), [16], backend);
      const y = groupNorm(x, 8, g, b);
      backwardWeighted(y, 17);
      return await read({ y, dx: x.grad, dg: g.grad, db: b.grad });
    },
  },
  {
    name: "groupNorm on the workgroup kernels (hardware paths), plain and with a fused ReLU",
    atol: 1e-4,
    rtol: 1e-3,
    ownPaths: true,
    run: (backend) =>
      withProfile(backend, HARDWARE_PATHS, async () => {
        // Rows of 6 planes of 6 (an invocation per plane in the backward sums), of 3 x 85 = 255
        // and of 2 x 35,000 elements (a tree per plane).
        const out: Outputs = {};
        const cases = [[[2, 24, 6], 4], [[2, 12, 85], 4], [[1, 2, 35_000], 1]] as const;
        for (const [shape, groups] of cases) {
          for (const relu of [false, true]) {
            const size = shape[0] * shape[1] * shape[2], c = shape[1];
            const x = leaf(randomArray(size, 21, -2, 3), [...shape], backend);
            const g = leaf(randomArray(c, 22, 0.5, 1.5), [c], backend);
            const b = leaf(randomArray(c, 23), [c], backend);
            const y = groupNorm(x, groups, g, b, 1e-5, { relu });
            backwardWeighted(y, 24);
            const got = await read({ y, dx: x.grad, dg: g.grad, db: b.grad });
            for (const [name, v] of Object.entries(got)) {
              out[`${name} [${shape}]${relu ? " relu" : ""}`] = v;
            }
          }
        }
        return out;
      }),
  },
  {
    name: "sum, mean, max, min on the workgroup kernels (hardware paths), over several axes",
    atol: 1e-3,
    rtol: 1e-4,
    ownPaths: true,
    run: (backend) =>
      withProfile(backend, HARDWARE_PATHS, async () => {
        const x = tensor(randomArray(3 * 257 * 5, 25), [3, 257, 5], { backend });
        const long = tensor(randomArray(70_000, 26), [70_000], { backend });
        const many = tensor(randomArray(20_000 * 3, 27), [20_000, 3], { backend });
        return await read({
          sum: sum(x, [0, 2]),
          mean: mean(x, 1, true),
          max: max(x, [1, 2]),
          min: min(x, 0),
          sumAll: sum(long),
          maxAll: max(long),
          rows: sum(many, 1),
        });
      }),
  },
  {
    name: "softmax over 1000 columns",
    atol: 1e-6,
    rtol: 1e-4,
    async run(backend) {
      const x = tensor(randomArray(3 * 1000, 18, -8, 8), [3, 1000], { backend });
      return await read({ y: softmax(x) });
    },
  },
  {
    name: "sort 5000 values descending, with indices",
    atol: 0,
    rtol: 0,
    async run(backend) {
      const x = tensor(randomArray(5000, 19), [5000], { backend });
      const { values, indices } = sort(x, { descending: true });
      return await read({ values, indices });
    },
  },
  {
    name: "F.bucketedRankSort on 3000 anchors, losses and logit gradients",
    atol: 1e-5,
    rtol: 1e-4,
    async run(backend) {
      const { logits, targets } = rankingInputs(3000, 20);
      const s = leaf(logits, [logits.length], backend);
      const y = tensor(targets, [targets.length], { backend });
      const { rankingLoss, sortingLoss } = F.bucketedRankSort(s, y);
      backward(add(rankingLoss, sortingLoss));
      const ranking = await rankingLoss.data(), sorting = await sortingLoss.data();
      // The float64 reference (losses/reference) as a third opinion on both backends.
      const ref = bucketedRankSortLoss(logits, targets, { delta: 0.5 });
      return {
        ranking,
        sorting,
        grad: await s.grad!.data(),
        refRanking: [ranking[0] - ref.rankingLoss],
        refSorting: [sorting[0] - ref.sortingLoss],
      };
    },
  },
];

/** Logits and IoU targets of a dense detector: 5% positives, a few ignored. */
function rankingInputs(n: number, seed: number): { logits: Float32Array; targets: Float32Array } {
  const rng = new Rng(seed);
  const logits = new Float32Array(n), targets = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = rng.uniform();
    targets[i] = u < 0.05 ? rng.uniform(0.1, 1) : u < 0.07 ? -1 : 0;
    logits[i] = rng.normal(targets[i] > 0 ? 1 : -1, 1.5);
  }
  return { logits, targets };
}

/** The first element where `|a - e| > atol + rtol |e|`, or an empty string. */
function mismatch(
  name: string,
  a: ArrayLike<number>,
  e: ArrayLike<number>,
  atol: number,
  rtol: number,
) {
  if (a.length !== e.length) return `${name}: length ${a.length} != ${e.length}`;
  for (let i = 0; i < e.length; i++) {
    if (Number.isNaN(a[i]) && Number.isNaN(e[i])) continue;
    if (!(Math.abs(a[i] - e[i]) <= atol + rtol * Math.abs(e[i]))) {
      return `${name}[${i}]: WebGPU ${a[i]}, CPU ${e[i]} (atol ${atol}, rtol ${rtol})`;
    }
  }
  return "";
}

/**
 * Runs every case on WebGPU and on the CPU twin: on WebGPU once with the adapter's own profile
 * and once with the hardware adapters' kernels forced (`HARDWARE_PATHS`: shared-memory matmul,
 * implicit-GEMM convolution, workgroup reductions), except cases that choose their own paths.
 *
 * @param only Run only cases whose name contains this text.
 */
export async function runSuite(only = ""): Promise<SuiteReport> {
  const gpu = await webgpu();
  const host = cpu();
  const results: CaseResult[] = [];
  const runs = CASES.filter((c) => c.name.includes(only)).flatMap((c) =>
    c.ownPaths ? [{ ...c, gpuRun: c.run }] : [
      { ...c, gpuRun: c.run },
      {
        ...c,
        name: `${c.name} [hardware paths]`,
        gpuRun: (backend: Backend) => withProfile(backend, HARDWARE_PATHS, () => c.run(backend)),
      },
    ]
  );
  for (const c of runs) {
    const started = performance.now();
    try {
      const got = await c.gpuRun(gpu);
      const ms = performance.now() - started;
      const want = await c.run(host);
      let detail = "";
      for (const name of Object.keys(want)) {
        const tol = name.startsWith("ref") ? 1e-3 : c.atol;
        detail ||= name.startsWith("ref")
          ? mismatch(name, got[name], [0], tol, 0)
          : mismatch(name, got[name], want[name], c.atol, c.rtol);
      }
      results.push({ name: c.name, ok: detail === "", detail, ms });
    } catch (error) {
      const detail = String((error as Error)?.stack ?? error);
      results.push({ name: c.name, ok: false, detail, ms: performance.now() - started });
    }
  }
  return { adapter: gpu.description, results };
}
