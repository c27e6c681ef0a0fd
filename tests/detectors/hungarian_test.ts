/**
 * `hungarian()` against scipy 1.10.1's `linear_sum_assignment` (tests/fixtures/detr/hungarian.json)
 * and against brute force on small random matrices.
 *
 * Asserted: the total cost of every fixture case (1e-12 absolute, 1e-15 relative for
 * `large_entries_12x5`), the indices exactly where `optimum_unique`, scipy's error kinds; a
 * valid assignment of `min(rows, cols)` pairs ascending by row everywhere; the brute-force optimum
 * on 300 random matrices with ties and forbidden pairs; equal results on repeated and on
 * permuted-but-equal inputs; clear errors on bad input.
 */

import assert from "node:assert/strict";
import { hungarian, type HungarianResult } from "../../detectors/hungarian.ts";
import { Rng } from "../../tensor/rng.ts";

// deno-lint-ignore no-explicit-any
type Json = any;
const cases: Json[] = JSON.parse(
  Deno.readTextFileSync(new URL("../fixtures/detr/hungarian.json", import.meta.url)),
).cases;

const flat = (m: number[][]) => Float64Array.from(m.flat());

function total(cost: ArrayLike<number>, cols: number, r: HungarianResult): number {
  let sum = 0;
  for (let k = 0; k < r.rows.length; k++) sum += cost[r.rows[k] * cols + r.cols[k]];
  return sum;
}

/** `min(rows, cols)` pairs, rows strictly ascending, columns distinct, all in range. */
function assertAssignment(r: HungarianResult, rows: number, cols: number): void {
  const k = Math.min(rows, cols);
  assert.equal(r.rows.length, k);
  assert.equal(r.cols.length, k);
  const used = new Set<number>();
  for (let i = 0; i < k; i++) {
    if (i > 0) assert.ok(r.rows[i] > r.rows[i - 1], "rows ascending");
    assert.ok(r.rows[i] >= 0 && r.rows[i] < rows);
    assert.ok(r.cols[i] >= 0 && r.cols[i] < cols);
    used.add(r.cols[i]);
  }
  assert.equal(used.size, k, "columns distinct");
}

/** The least total over all assignments of min(rows, cols) pairs (Infinity if none is finite). */
function bruteForce(cost: Float64Array, rows: number, cols: number): number {
  const tall = rows > cols;
  const n = tall ? cols : rows, m = tall ? rows : cols;
  const at = (i: number, j: number) => tall ? cost[j * cols + i] : cost[i * cols + j];
  const used = new Uint8Array(m);
  const search = (i: number): number => {
    if (i === n) return 0;
    let best = Infinity;
    for (let j = 0; j < m; j++) {
      if (used[j]) continue;
      used[j] = 1;
      best = Math.min(best, at(i, j) + search(i + 1));
      used[j] = 0;
    }
    return best;
  };
  return search(0);
}

Deno.test("hungarian() equals scipy's linear_sum_assignment on the fixture", async (t) => {
  for (const c of cases) {
    await t.step(c.name, () => {
      const [rows, cols] = c.shape;
      const cost = flat(c.cost);
      const e = c.expected;
      if (e.error) {
        assert.throws(() => hungarian(cost, rows, cols), (err: Error) => {
          assert.ok(err instanceof RangeError);
          assert.match(err.message, new RegExp(e.error));
          return true;
        });
        return;
      }
      const r = hungarian(cost, rows, cols);
      assertAssignment(r, rows, cols);
      const got = total(cost, cols, r);
      const tol = c.name === "large_entries_12x5" ? 1e-15 * Math.abs(e.total_cost) : 1e-12;
      assert.ok(Math.abs(got - e.total_cost) <= tol, `total ${got} vs ${e.total_cost}`);
      if (e.optimum_unique) {
        assert.deepEqual(Array.from(r.rows), e.row_ind);
        assert.deepEqual(Array.from(r.cols), e.col_ind);
      }
    });
  }

  await t.step("ties fall where scipy puts them (same scan order)", () => {
    for (const c of cases.filter((c) => c.expected.optimum_unique === false)) {
      const r = hungarian(flat(c.cost), c.shape[0], c.shape[1]);
      assert.deepEqual(Array.from(r.rows), c.expected.row_ind, c.name);
      assert.deepEqual(Array.from(r.cols), c.expected.col_ind, c.name);
    }
  });

  await t.step("a transposed matrix gives the transposed assignment", () => {
    const tall = cases.find((c) => c.name === "rect_30x7_uniform");
    const wide = cases.find((c) => c.name === "rect_7x30_transposed");
    const a = hungarian(flat(tall.cost), 30, 7), b = hungarian(flat(wide.cost), 7, 30);
    const pairs = (rows: Int32Array, cols: Int32Array) =>
      Array.from(rows, (r, k) => `${r},${cols[k]}`).sort();
    assert.deepEqual(pairs(a.rows, a.cols), pairs(b.cols, b.rows));
  });
});

Deno.test("hungarian() reaches the brute-force optimum on small random matrices", () => {
  const rng = new Rng(15);
  let infeasible = 0;
  for (let trial = 0; trial < 300; trial++) {
    const rows = 1 + Math.floor(rng.uniform() * 6), cols = 1 + Math.floor(rng.uniform() * 6);
    const kind = trial % 3; // 0: uniform, 1: integer ties, 2: with forbidden pairs
    const cost = Float64Array.from({ length: rows * cols }, () => {
      if (kind === 2 && rng.uniform() < 0.4) return Infinity;
      return kind === 1 ? Math.floor(rng.uniform() * 3) - 1 : rng.uniform() * 2 - 1;
    });
    const best = bruteForce(cost, rows, cols);
    const what = `trial ${trial}, ${rows} x ${cols}`;
    if (best === Infinity) {
      infeasible++;
      assert.throws(() => hungarian(cost, rows, cols), /infeasible/, what);
      continue;
    }
    const r = hungarian(cost, rows, cols);
    assertAssignment(r, rows, cols);
    assert.ok(Math.abs(total(cost, cols, r) - best) <= 1e-12, what);
  }
  assert.ok(infeasible > 5 && infeasible < 100, `${infeasible} infeasible trials`);
});

Deno.test("hungarian() is deterministic on ties", async (t) => {
  const ties = cases.find((c) => c.name === "ties_integer_10x4");
  const cost = flat(ties.cost);

  await t.step("repeated calls give the same pairs", () => {
    const first = hungarian(cost, 10, 4);
    for (let i = 0; i < 5; i++) assert.deepEqual(hungarian(cost.slice(), 10, 4), first);
  });

  await t.step("a row permutation that leaves the matrix equal gives the same pairs", () => {
    // Rows 3..5 repeat rows 0..2: swapping the two halves yields an equal matrix.
    const dup = cases.find((c) => c.name === "duplicate_rows_6x3");
    const m: number[][] = dup.cost;
    const permuted = flat([3, 4, 5, 0, 1, 2].map((i) => m[i]));
    assert.deepEqual(permuted, flat(m));
    assert.deepEqual(hungarian(permuted, 6, 3), hungarian(flat(m), 6, 3));
  });

  await t.step("a row permutation of a unique optimum permutes the pairs", () => {
    const c = cases.find((c) => c.name === "rect_100x12_uniform");
    const perm = Array.from({ length: 100 }, (_, i) => (i * 37) % 100); // new row i = old perm[i]
    const r = hungarian(flat(perm.map((i) => c.cost[i])), 100, 12);
    const mapped = Array.from(r.rows, (row, k) => [perm[row], r.cols[k]]).sort((a, b) =>
      a[0] - b[0]
    );
    assert.deepEqual(mapped.map((p) => p[0]), c.expected.row_ind);
    assert.deepEqual(mapped.map((p) => p[1]), c.expected.col_ind);
  });
});

Deno.test("hungarian() rejects bad input with a clear error", async (t) => {
  await t.step("NaN names the entry", () => {
    const cost = Float64Array.of(1, 2, 3, NaN, 5, 6);
    assert.throws(
      () => hungarian(cost, 2, 3),
      (e: Error) =>
        e instanceof RangeError && /cost\[1\]\[0\] is NaN/.test(e.message) &&
        /invalid numeric entries/.test(e.message),
    );
  });
  await t.step("-Infinity names the entry", () => {
    assert.throws(
      () => hungarian(Float64Array.of(1, -Infinity, 3, 4), 2, 2),
      /cost\[0\]\[1\] is -Infinity: the matrix contains invalid numeric entries/,
    );
  });
  await t.step("an infeasible matrix (a row of Infinity)", () => {
    const cost = Float64Array.of(1, 2, 3, Infinity, Infinity, Infinity);
    assert.throws(
      () => hungarian(cost, 2, 3),
      (e: Error) => e instanceof RangeError && /cost matrix is infeasible/.test(e.message),
    );
  });
  await t.step("an infeasible tall matrix (a column of Infinity)", () => {
    const cost = Float64Array.of(1, Infinity, 2, Infinity, 3, Infinity);
    assert.throws(() => hungarian(cost, 3, 2), /infeasible.*column 1 cannot be added/);
  });
  await t.step("rows * cols != cost.length", () => {
    assert.throws(
      () => hungarian(new Float64Array(5), 2, 3),
      (e: Error) =>
        e instanceof TypeError && /5 entries, but a 2 x 3 matrix needs 6/.test(e.message),
    );
  });
  await t.step("negative or fractional sizes", () => {
    assert.throws(
      () => hungarian(new Float64Array(0), -1, 0),
      /rows must be a non-negative integer/,
    );
    assert.throws(() => hungarian(new Float64Array(3), 1.5, 2), TypeError);
  });
  await t.step("an empty side gives no pairs", () => {
    assert.deepEqual(hungarian(new Float64Array(0), 0, 4), {
      rows: new Int32Array(0),
      cols: new Int32Array(0),
    });
  });
});
