"""uberct at the real scale: for each seed, synthesise the full competition (544
segments, three years, ~54,000 incidents, 1,174,496 submission rows), run
`compete run uberct` under /usr/bin/time -v, and score the submission.

Targets: F1 >= 0.90 x the oracle F1 (the true probabilities with the best threshold in
hindsight, the named baseline), <= 600 s wall and <= 6 GB peak RSS on 2 cores. Also
prints the test F1 every decision rule would have given (the run applies one,
`expected_f1` by default), from the run's saved test
probabilities, so the choice of rule can be checked against the truth.

Usage: python bench/uberct_full.py [--seeds 0 1 2] [--work DIR] [--model-seed N] [--set KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _command import COMMAND, ROOT, compete  # noqa: E402 (bench/ is the script's folder)
sys.path.insert(0, str(ROOT))

from common.thresholds import RateRule, best_threshold, expected_f1_count, top_k  # noqa: E402
import common.metrics  # noqa: E402

WALL_TARGET, RSS_TARGET_GB, RATIO_TARGET = 600.0, 6.0, 0.90


def timed_run(*args) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (GB) of one `compete` call, from GNU time."""
    command = ["/usr/bin/time", "-v", *COMMAND, *map(str, args)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"compete {' '.join(map(str, args))} failed:\n{done.stderr[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return wall, rss_kb / 2**20, done.stdout


def rule_figures(run_dir: Path, answers: Path) -> dict[str, float]:
    import json
    metrics = json.loads((run_dir / "metrics.json").read_text())
    p = pd.read_parquet(run_dir / "test_probabilities.parquet")
    truth = pd.read_csv(answers / "solution.csv", dtype={"datetime x segment_id": str})
    labels = truth.set_index("datetime x segment_id").loc[p["datetime x segment_id"], "prediction"].to_numpy().astype(bool)
    probabilities = p["probability"].to_numpy()

    def f1(flags):
        return common.metrics.f1(labels, flags)

    return {
        "rate": f1(RateRule(metrics["flags_per_expected"]).apply(probabilities)),
        "threshold": f1(probabilities >= metrics["validation_threshold"]),
        "expected_f1": f1(top_k(probabilities, expected_f1_count(probabilities * metrics["calibration"]))),
        "expected_f1_uncalibrated": f1(top_k(probabilities, expected_f1_count(probabilities))),
        "hindsight": best_threshold(labels, probabilities).f1,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", type=Path, help="keep data and runs here (default: a temporary folder)")
    parser.add_argument("--model-seed", type=int, help="the run's --seed (sampling and CatBoost); default: the data's seed")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="an option of the run (compete run --set), repeatable")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        work = arguments.work or Path(temporary)
        rows = []
        for seed in arguments.seeds:
            data = work / f"data-seed{seed}"
            if not (data / "answers" / "solution.csv").is_file():
                compete("data", "synth", "uberct", "--out", data, "--scale", "full", "--seed", seed)
            run_dir, out = work / f"run-seed{seed}", work / f"submission-seed{seed}.csv"
            wall, rss, stdout = timed_run("run", "uberct", "--data", data, "--out", out, "--run-dir", run_dir, "--seed",
                                          seed if arguments.model_seed is None else arguments.model_seed, "--quiet",
                                          *[item for pair in arguments.assignments for item in ("--set", pair)])
            cv = float(re.search(r"cv f1: ([0-9.]+)", stdout).group(1))
            scores = dict(re.findall(r"(\w+): ([0-9.]+)", compete("score", "uberct", out, "--answers", data / "answers")[1]))
            f1, oracle = float(scores["f1"]), float(scores["oracle_f1"])
            rules = rule_figures(run_dir, data / "answers")
            rows.append((seed, cv, f1, oracle, f1 / oracle, wall, rss))
            print(f"seed {seed}: cv F1 {cv:.4f}  test F1 {f1:.4f}  oracle F1 {oracle:.4f}  ratio {f1 / oracle:.3f}  "
                  f"wall {wall:.0f} s  peak RSS {rss:.2f} GB  (load average {os.getloadavg()[1]:.1f} over 5 min: "
                  "the wall target is for an otherwise idle 2-core machine)", flush=True)
            print("         test F1 by rule: " + "  ".join(f"{k} {v:.4f}" for k, v in rules.items()), flush=True)
        ratios = np.array([r[4] for r in rows])
        walls, peaks = np.array([r[5] for r in rows]), np.array([r[6] for r in rows])
        print(f"F1 / oracle: mean {ratios.mean():.3f}, min {ratios.min():.3f} (target >= {RATIO_TARGET}) "
              f"{'PASS' if ratios.min() >= RATIO_TARGET else 'FAIL'}")
        print(f"wall: max {walls.max():.0f} s (target <= {WALL_TARGET:.0f}) {'PASS' if walls.max() <= WALL_TARGET else 'FAIL'}; "
              f"peak RSS: max {peaks.max():.2f} GB (target <= {RSS_TARGET_GB}) {'PASS' if peaks.max() <= RSS_TARGET_GB else 'FAIL'}")


if __name__ == "__main__":
    main()
