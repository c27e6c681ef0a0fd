"""scipy's linear_sum_assignment on a float64 matrix written by bench/hungarian_table.ts.

Usage: hungarian_scipy.py PATH ROWS COLS REPS
Prints one JSON line: median and minimum ms of REPS calls after one warm-up call, the total cost
of the assignment and the scipy version.
"""

import json
import sys
import time

import numpy as np
import scipy
from scipy.optimize import linear_sum_assignment


def main() -> None:
    path, rows, cols, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    cost = np.fromfile(path, dtype="<f8").reshape(rows, cols)
    r, c = linear_sum_assignment(cost)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        linear_sum_assignment(cost)
        times.append((time.perf_counter() - t0) * 1e3)
    total = 0.0
    for i, j in zip(r.tolist(), c.tolist()):
        total += cost[i, j]
    print(json.dumps({
        "median_ms": float(np.median(times)),
        "min_ms": min(times),
        "total": total,
        "scipy_version": scipy.__version__,
    }))


if __name__ == "__main__":
    main()
