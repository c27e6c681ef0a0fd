/**
 * Exact minimum-cost linear assignment on the host (DETR's Hungarian
 * matching): shortest augmenting paths with Dijkstra over reduced costs and
 * dual potentials (Jonker-Volgenant style, as described by Crouse, "On
 * implementing 2D rectangular assignment algorithms", IEEE TAES 2016; the
 * method of `scipy.optimize.linear_sum_assignment`).
 *
 * A tall matrix (more rows than columns, e.g. queries x targets) is solved
 * transposed, so that every path search starts from one of the fewer lines.
 * Everything is float64; ties are broken by a fixed scan order (and, among
 * equally short paths, an unassigned column first), so equal inputs give
 * equal results. The order and the arithmetic follow scipy's, so that its
 * choice among equally cheap assignments is ours too on the fixture's tied
 * cases (tests/detectors/hungarian_test.ts); no other solver is promised that.
 *
 * @module
 */

/** What {@linkcode hungarian} returns: `min(rows, cols)` pairs, ascending by row. */
export interface HungarianResult {
  /** `[K]` row of each pair, strictly ascending. */
  rows: Int32Array;
  /** `[K]` column given to `rows[k]`. */
  cols: Int32Array;
}

/**
 * Assigns rows to columns at the least total cost: `min(rows, cols)` pairs,
 * each row and each column used at most once (every row when `rows <= cols`,
 * every column otherwise), minimising the sum of `cost[row * cols + col]`
 * over the pairs. `Infinity` marks a forbidden pair.
 *
 * The result is exact in float64 arithmetic and deterministic: ties between
 * equally cheap assignments are broken by a fixed order, the same each call.
 * Cost `O(n² m)` at worst for `n = min(rows, cols)`, `m = max(rows, cols)`.
 *
 * @example Three queries, two targets
 * ```ts
 * import { hungarian } from "./hungarian.ts";
 * import assert from "node:assert/strict";
 *
 * const cost = Float64Array.of(
 *   4, 1, // query 0
 *   2, 3, // query 1
 *   5, 0, // query 2
 * );
 * const { rows, cols } = hungarian(cost, 3, 2);
 * assert.deepEqual(Array.from(rows), [1, 2]);
 * assert.deepEqual(Array.from(cols), [0, 1]);
 * ```
 *
 * @param cost `[rows * cols]` costs, row-major; `Infinity` forbids a pair.
 * @param rows Number of rows.
 * @param cols Number of columns.
 * @returns The chosen pairs, ascending by row.
 * @throws {TypeError} When `rows` or `cols` is not a non-negative integer or
 *   `cost.length !== rows * cols`.
 * @throws {RangeError} When an entry is NaN or `-Infinity` ("invalid numeric
 *   entries"), or when no complete assignment avoids the `Infinity` entries
 *   ("the cost matrix is infeasible").
 */
export function hungarian(cost: ArrayLike<number>, rows: number, cols: number): HungarianResult {
  checkMatrix(cost, rows, cols);
  if (rows === 0 || cols === 0) return { rows: new Int32Array(0), cols: new Int32Array(0) };
  const tall = rows > cols;
  const n = tall ? cols : rows, m = tall ? rows : cols;
  const wide = new Float64Array(n * m);
  if (tall) {
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) wide[c * m + r] = cost[r * cols + c];
    }
  } else {
    wide.set(cost);
  }
  const colOfRow = solveWide(wide, n, m, tall ? "column" : "row");
  if (!tall) return { rows: Int32Array.from({ length: n }, (_, r) => r), cols: colOfRow };
  // Transposed: line i of `wide` is column i, matched to row colOfRow[i]; list them by row.
  const colOf = new Int32Array(rows).fill(-1);
  for (let c = 0; c < n; c++) colOf[colOfRow[c]] = c;
  const outRows = new Int32Array(n), outCols = new Int32Array(n);
  for (let r = 0, k = 0; r < rows; r++) {
    if (colOf[r] < 0) continue;
    outRows[k] = r;
    outCols[k++] = colOf[r];
  }
  return { rows: outRows, cols: outCols };
}

function checkMatrix(cost: ArrayLike<number>, rows: number, cols: number): void {
  for (const [name, v] of [["rows", rows], ["cols", cols]] as const) {
    if (!Number.isInteger(v) || v < 0) {
      throw new TypeError(`hungarian: ${name} must be a non-negative integer, got ${v}`);
    }
  }
  if (cost.length !== rows * cols) {
    throw new TypeError(
      `hungarian: cost has ${cost.length} entries, but a ${rows} x ${cols} matrix needs ${
        rows * cols
      }`,
    );
  }
  for (let k = 0; k < cost.length; k++) {
    const v = cost[k];
    if (Number.isNaN(v) || v === -Infinity) {
      throw new RangeError(
        `hungarian: cost[${Math.floor(k / cols)}][${k % cols}] is ${v}: ` +
          "the matrix contains invalid numeric entries (NaN and -Infinity are not allowed)",
      );
    }
  }
}

/**
 * Solves an `n x m` matrix with `n <= m`, adding one line at a time: a
 * Dijkstra search over reduced costs `cost - u - v` from the new line finds
 * the cheapest augmenting path to a free column, the potentials `u`, `v` are
 * updated to keep reduced costs non-negative, and the path is flipped.
 * Returns the column of each line.
 */
function solveWide(cost: Float64Array, n: number, m: number, lineName: string): Int32Array {
  const u = new Float64Array(n), v = new Float64Array(m);
  const dist = new Float64Array(m); // shortest reduced path length to each column
  const via = new Int32Array(m); // the line the shortest path reaches each column from
  const colOfRow = new Int32Array(n).fill(-1), rowOfCol = new Int32Array(m).fill(-1);
  const open = new Int32Array(m); // columns not yet settled, open[0 .. count)
  const settled = new Int32Array(m); // columns settled by this search, in order
  const reached = new Int32Array(n); // lines reached by this search, in order

  for (let start = 0; start < n; start++) {
    for (let k = 0; k < m; k++) open[k] = m - 1 - k;
    let count = m;
    dist.fill(Infinity);
    let numSettled = 0, numReached = 0;
    let row = start, reach = 0, sink = -1;
    while (sink < 0) {
      reached[numReached++] = row;
      const base = row * m, ur = u[row];
      let pick = -1, nearest = Infinity;
      for (let k = 0; k < count; k++) {
        const j = open[k];
        // Evaluated left to right: the rounding is part of the tie behaviour.
        const d = reach + cost[base + j] - ur - v[j];
        if (d < dist[j]) {
          dist[j] = d;
          via[j] = row;
        }
        const dj = dist[j];
        if (dj < nearest || (dj === nearest && rowOfCol[j] < 0)) {
          nearest = dj;
          pick = k;
        }
      }
      if (nearest === Infinity) {
        throw new RangeError(
          `hungarian: the cost matrix is infeasible: no assignment of ${n} pairs avoids the ` +
            `Infinity entries (${lineName} ${start} cannot be added)`,
        );
      }
      reach = nearest;
      const col = open[pick];
      open[pick] = open[--count];
      settled[numSettled++] = col;
      if (rowOfCol[col] < 0) sink = col;
      else row = rowOfCol[col];
    }
    u[start] += reach;
    for (let k = 1; k < numReached; k++) {
      const i = reached[k];
      u[i] += reach - dist[colOfRow[i]];
    }
    for (let k = 0; k < numSettled; k++) {
      const j = settled[k];
      v[j] -= reach - dist[j];
    }
    for (let col = sink;;) {
      const i = via[col];
      rowOfCol[col] = i;
      const next = colOfRow[i];
      colOfRow[i] = col;
      if (i === start) break;
      col = next;
    }
  }
  return colOfRow;
}
