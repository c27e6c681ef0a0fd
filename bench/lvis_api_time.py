"""lvis-api timing for bench/lvis_eval_bench.ts: LVISResults + LVISEval.run() on one fixture.

Needs lvis-api (the folder holding its `lvis/` package) and pycocotools on the import path; only
lvis/lvis.py, lvis/results.py and lvis/eval.py are imported (the package's __init__ also imports
its plotting module, which needs OpenCV and matplotlib).

Run: /usr/bin/python3 bench/lvis_api_time.py --lvis-api DIR --fixture FILE [--iou-type bbox]
[--reps 3]; prints one JSON object on stdout: median and min milliseconds of the timed part
(results loading, evaluate, accumulate, summarize; the ground truth is loaded once, untimed) and
the 13 results, so that the caller can check them against the fixture.
"""

import argparse
import copy
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
import types


def import_lvis(root):
    sys.path.insert(0, root)
    package = types.ModuleType("lvis")
    package.__path__ = [os.path.join(root, "lvis")]
    sys.modules["lvis"] = package
    lvis = importlib.import_module("lvis.lvis")
    results = importlib.import_module("lvis.results")
    evaluation = importlib.import_module("lvis.eval")
    return lvis.LVIS, results.LVISResults, evaluation.LVISEval


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lvis-api", required=True)
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--iou-type", default="bbox", choices=["bbox", "segm"])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    LVIS, LVISResults, LVISEval = import_lvis(args.lvis_api)
    import numpy
    import pycocotools

    logging_off = __import__("logging")
    logging_off.disable(logging_off.WARNING)
    with open(args.fixture) as f:
        fixture = json.load(f)
    gt_json = {k: fixture[k] for k in ("images", "categories", "annotations")}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(gt_json, f)
        gt_path = f.name
    try:
        gt = LVIS(gt_path)
    finally:
        os.unlink(gt_path)
    times = []
    results = None
    for _ in range(args.reps):
        dets = copy.deepcopy(fixture["detections"])
        t0 = time.perf_counter()
        res = LVISResults(gt, dets)
        ev = LVISEval(gt, res, iou_type=args.iou_type)
        ev.run()
        times.append((time.perf_counter() - t0) * 1000)
        results = dict(ev.get_results())
    print(json.dumps({
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "reps": args.reps,
        "results": {k: float(v) for k, v in results.items()},
        "numpy": numpy.__version__,
        "pycocotools": getattr(pycocotools, "__version__", "unknown"),
        "python": sys.version.split()[0],
    }))


if __name__ == "__main__":
    main()
