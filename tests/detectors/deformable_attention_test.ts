import assert from "node:assert/strict";
import {
  DeformableAttention,
  levelLayout,
} from "../../detectors/deformable_detr/deformable_attention.ts";
import { uniform } from "../../tensor/nn/init.ts";
import { Rng } from "../../tensor/rng.ts";
import { tensor } from "../../tensor/tensor.ts";
import { assertClose, CPU, NATIVE, nativeBackend, randomArray } from "../tensor/helpers.ts";

/** `x W^T + b` on the host: `x` `[R, I]`, `W` `[O, I]`. */
function affine(x: Float32Array, w: Float32Array, b: Float32Array, rows: number): Float64Array {
  const o = b.length, i = w.length / o;
  const out = new Float64Array(rows * o);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < o; k++) {
      let s = b[k];
      for (let j = 0; j < i; j++) s += x[r * i + j] * w[k * i + j];
      out[r * o + k] = s;
    }
  }
  return out;
}

/**
 * Naive multi-scale deformable attention of one image, written from the
 * Deformable-DETR paper: projections, softmax over levels x points, sampling
 * locations from the reference points, bilinear sampling at `(x W - 0.5, y H - 0.5)`
 * with zeros outside, weighted sum, output projection.
 */
function naive(
  p: Record<string, Float32Array>,
  query: Float32Array,
  input: Float32Array,
  refs: Float32Array,
  refDim: 2 | 4,
  shapes: [number, number][],
  sizes: { e: number; m: number; l: number; pts: number; lq: number; s: number },
): Float64Array {
  const { e, m, l, pts, lq, s } = sizes, d = e / m;
  const value = affine(input, p["value_proj.weight"], p["value_proj.bias"], s);
  const off = affine(query, p["sampling_offsets.weight"], p["sampling_offsets.bias"], lq);
  const logit = affine(query, p["attention_weights.weight"], p["attention_weights.bias"], lq);
  const starts = shapes.map((_, k) => shapes.slice(0, k).reduce((a, [h, w]) => a + h * w, 0));
  const mid = new Float32Array(lq * e);
  for (let q = 0; q < lq; q++) {
    for (let h = 0; h < m; h++) {
      const base = (q * m + h) * l * pts;
      const mx = Math.max(...Array.from(logit.subarray(base, base + l * pts)));
      const ex = Array.from(logit.subarray(base, base + l * pts), (v) => Math.exp(v - mx));
      const z = ex.reduce((a, b) => a + b, 0);
      for (let lv = 0; lv < l; lv++) {
        const [H, W] = shapes[lv];
        for (let k = 0; k < pts; k++) {
          const o = ((q * m + h) * l * pts + lv * pts + k) * 2;
          let x: number, y: number;
          if (refDim === 2) {
            x = refs[2 * q] + off[o] / W;
            y = refs[2 * q + 1] + off[o + 1] / H;
          } else {
            x = refs[4 * q] + (off[o] / pts) * refs[4 * q + 2] * 0.5;
            y = refs[4 * q + 1] + (off[o + 1] / pts) * refs[4 * q + 3] * 0.5;
          }
          const a = ex[lv * pts + k] / z;
          const px = x * W - 0.5, py = y * H - 0.5;
          const x0 = Math.floor(px), y0 = Math.floor(py);
          for (const [yy, wy] of [[y0, 1 - (py - y0)], [y0 + 1, py - y0]]) {
            for (const [xx, wx] of [[x0, 1 - (px - x0)], [x0 + 1, px - x0]]) {
              if (xx < 0 || yy < 0 || xx >= W || yy >= H) continue;
              const at = starts[lv] + yy * W + xx;
              for (let c = 0; c < d; c++) {
                mid[q * e + h * d + c] += a * wy * wx * value[at * e + h * d + c];
              }
            }
          }
        }
      }
    }
  }
  return affine(mid, p["output_proj.weight"], p["output_proj.bias"], lq);
}

for (const backend of [CPU, ...(NATIVE ? [nativeBackend()] : [])]) {
  for (const refDim of [2, 4] as const) {
    Deno.test(`DeformableAttention (${backend.name}, ${refDim}-d references) equals a naive reference`, async () => {
      const sizes = { e: 8, m: 2, l: 2, pts: 3, lq: 5, s: 3 * 4 + 2 * 1 };
      const shapes: [number, number][] = [[3, 4], [2, 1]];
      const rng = new Rng(7);
      const attn = new DeformableAttention(
        { embedDim: sizes.e, numHeads: sizes.m, numLevels: sizes.l, numPoints: sizes.pts },
        rng,
        backend,
      );
      // Random weights everywhere (the initial attention weights are all zero).
      const params: Record<string, Float32Array> = {};
      for (const [name, t] of attn.namedParameters()) {
        uniform(t, rng, -0.8, 0.8);
        params[name] = (await t.data()) as Float32Array;
      }
      const query = randomArray(sizes.lq * sizes.e, 1);
      const input = randomArray(sizes.s * sizes.e, 2);
      const refs = randomArray(sizes.lq * refDim, 3, 0.1, 0.9);
      const out = attn.forward({
        query: tensor(query, [1, sizes.lq, sizes.e], { backend }),
        referencePoints: tensor(refs, [1, sizes.lq, refDim], { backend }),
        input: tensor(input, [1, sizes.s, sizes.e], { backend }),
        layout: levelLayout(shapes),
      });
      assert.deepEqual(out.shape, [1, sizes.lq, sizes.e]);
      const want = naive(params, query, input, refs, refDim, shapes, sizes);
      assertClose(await out.data(), want, 1e-4, 1e-5);
    });
  }
}

Deno.test("DeformableAttention starts as Deformable-DETR: offsets on a ring, uniform weights", async () => {
  const attn = new DeformableAttention(
    { embedDim: 8, numHeads: 4, numLevels: 2, numPoints: 2 },
    new Rng(0),
    CPU,
  );
  const bias = await attn.samplingOffsets.bias!.data();
  // Head h points along angle 2πh/4 scaled to a unit max-norm; point k at distance k + 1.
  const dirs = [[1, 0], [0, 1], [-1, 0], [0, -1]];
  dirs.forEach(([dx, dy], h) => {
    for (let lv = 0; lv < 2; lv++) {
      for (let k = 0; k < 2; k++) {
        const o = ((h * 2 + lv) * 2 + k) * 2;
        assert.ok(
          Math.abs(bias[o] - dx * (k + 1)) < 1e-6 && Math.abs(bias[o + 1] - dy * (k + 1)) < 1e-6,
        );
      }
    }
  });
  assert.ok((await attn.attentionWeights.weight.data()).every((v) => v === 0));
  assert.ok((await attn.samplingOffsets.weight.data()).every((v) => v === 0));
});
