"""`compete list` and `compete --help` against the baseline of what listing imported
before the registry was a leaf: every competition's model modules (torch, scikit-learn,
catboost through them). Prints the median wall of each over a few runs and the ratio.

    python bench/cli_startup.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from _command import ROOT, compete  # noqa: E402 (bench/ is the script's folder)

# What `compete list` imported when the registry imported every competition package.
BASELINE = ("import competitions.house_prices.model, competitions.birdcall.model, competitions.serengeti.model, "
            "competitions.uberct.model, common.trainers, common.loaders")


def baseline_seconds() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", BASELINE], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    baseline = statistics.median(baseline_seconds() for _ in range(repeats))
    listing = statistics.median(compete("list")[0] for _ in range(repeats))
    helping = statistics.median(compete("--help")[0] for _ in range(repeats))
    print(f"baseline (importing the model modules, as listing did): {baseline:.2f} s")
    print(f"compete list:   {listing:.2f} s  ({listing / baseline:.2f} x the baseline)")
    print(f"compete --help: {helping:.2f} s  ({helping / baseline:.2f} x the baseline)")


if __name__ == "__main__":
    main()
