"""uberct's panel at scale: the features and the prediction over every segment-hour of
the test period, rows/s and peak memory at 1x, 10x and 50x the real size (1,174,496
rows = 544 segments x 2,159 hours), on the single-machine path (the named baseline:
the whole feature frame, then one predict) against Dask (a LocalCluster of 2 worker
processes, 1 thread each: chunks of rows built and predicted on the workers, only the
probabilities come back).

The rows are synthetic: the test grid of the small synthetic competition repeated to
the row count (every feature is a function of its row, so the work per row is real).
Each case runs in a fresh process, timed after a 1,000-row warm-up (imports on the
workers); memory is its peak RSS (ru_maxrss) and, for Dask, the largest worker's, both
less the peak before the panel (imports, model, the row indices).

Target: the Dask client's memory stays flat (bytes per row ~24: the row indices and
probabilities), against ~200 for the baseline; a baseline case whose estimate exceeds
--max-gb is skipped and said so.
Usage: python bench/uberct_panel_dask.py [--factors 1 10 50] [--base-rows 1174496] [--max-gb 6] [--engines single dask]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _command import ROOT, compete  # noqa: E402 (bench/ is the script's folder)

REAL_ROWS = 1_174_496

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
import numpy as np
from common import parallel
from competitions import REGISTRY
from competitions.uberct import features, panel

data_dir, run_dir, rows_wanted, engine = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
competition = REGISTRY.competition("uberct")
data, model = competition.load(data_dir), competition.load_model(run_dir)
context = features.Context(data, model.block_days)
grid = context.test_rows(data)
take = np.resize(np.arange(len(grid)), rows_wanted)
rows = features.Rows(grid.segment[take], grid.hour[take], grid.as_of[take])
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
cluster = None
if engine == "dask":
    from dask.distributed import LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
with parallel.using(cluster.scheduler_address if cluster else None) as client:
    panel.probabilities(model, context, features.Rows(rows.segment[:1000], rows.hour[:1000], rows.as_of[:1000]))  # imports, warm
    before = peak()
    workers_before = max(client.run(peak).values()) if client else 0
    started = time.perf_counter()
    p = panel.probabilities(model, context, rows)
    seconds = time.perf_counter() - started
    workers = max(client.run(peak).values()) - workers_before if client else 0
print(json.dumps(dict(rows=len(p), seconds=seconds, client_mb=peak() - before, worker_mb=workers, mean=float(p.mean()))))
if cluster:
    cluster.close()
"""


def case(data: Path, run: Path, rows: int, engine: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), str(data), str(run), str(rows), engine],
                          env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{engine} at {rows} rows failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--base-rows", type=int, default=REAL_ROWS, help="rows at 1x (default: the real test grid)")
    parser.add_argument("--max-gb", type=float, default=6.0, help="skip a baseline case estimated above this")
    parser.add_argument("--engines", nargs="+", choices=["single", "dask"], default=["single", "dask"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-uberct-panel-") as work:
        work = Path(work)
        env = {**os.environ, "MLFLOW_TRACKING_URI": (work / "mlruns").as_uri()}  # keep the bench out of the user's store
        compete("data", "synth", "uberct", "--out", work / "data", env=env)
        compete("fit", "uberct", "--data", work / "data", "--fast", "--quiet", "--run-dir", work / "run", env=env)
        print(f"{'x':>4} {'rows':>11} {'engine':>7} {'rows/s':>10} {'client MB':>10} {'B/row':>7} {'worker MB':>10}")
        results, per_row = {}, None
        for factor in args.factors:
            rows = args.base_rows * factor
            for engine in args.engines:
                if engine == "single" and per_row and per_row * rows / 1e9 > args.max_gb:
                    print(f"{factor:>4} {rows:>11,} {engine:>7}  skipped: estimated {per_row * rows / 1e9:.1f} GB > --max-gb")
                    continue
                result = results[factor, engine] = case(work / "data", work / "run", rows, engine)
                bytes_per_row = result["client_mb"] * 2**20 / rows
                if engine == "single":
                    per_row = max(per_row or 0, bytes_per_row)
                print(f"{factor:>4} {rows:>11,} {engine:>7} {rows / result['seconds']:>10,.0f} {result['client_mb']:>10,.0f} "
                      f"{bytes_per_row:>7.0f} {result['worker_mb']:>10,.0f}")
        for factor in args.factors:
            single, dask = results.get((factor, "single")), results.get((factor, "dask"))
            if single and dask:
                assert abs(single["mean"] - dask["mean"]) < 1e-12, "the two paths disagree"
                print(f"{factor}x: dask/single rows/s {single['seconds'] / dask['seconds']:.2f}, "
                      f"client memory dask/single {dask['client_mb'] / max(single['client_mb'], 1):.3f}")
        first, last = min(args.factors), max(args.factors)
        if first != last and (first, "dask") in results and (last, "dask") in results:
            print(f"dask client memory {last}x/{first}x: {results[last, 'dask']['client_mb'] / max(results[first, 'dask']['client_mb'], 1):.2f} "
                  f"(rows grew {last // first}x)")


if __name__ == "__main__":
    main()
