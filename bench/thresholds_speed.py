"""Exact F1-optimal threshold on 10 million scores: common.thresholds.best_threshold
against the named baseline, scikit-learn's precision_recall_curve + argmax of F1, in the
same run and on the same data. Target: <= 2 s, and faster than the baseline.

Scores are rounded to 4 decimals so many are tied, as model probabilities often are.

Usage: python bench/thresholds_speed.py [--rows 10000000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.thresholds import best_threshold  # noqa: E402

TARGET_SECONDS = 2.0


def sklearn_best(y_true, scores) -> tuple[float, float]:
    from sklearn.metrics import precision_recall_curve
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, np.finfo(float).tiny)
    best = int(np.argmax(f1[:-1]))
    return float(thresholds[best]), float(f1[best])


def fastest(function, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    rng = np.random.default_rng(0)
    y_true = rng.random(arguments.rows) < 0.004
    scores = np.round(rng.beta(1, 30, arguments.rows) + 0.02 * y_true * rng.random(arguments.rows), 4)

    ours_seconds, ours = fastest(lambda: best_threshold(y_true, scores), arguments.repeats)
    theirs_seconds, (threshold, f1) = fastest(lambda: sklearn_best(y_true, scores), arguments.repeats)
    assert abs(ours.f1 - f1) < 1e-12, (ours, f1)
    print(f"{arguments.rows:,} scores ({int(y_true.sum()):,} positive, {len(np.unique(scores)):,} distinct), best of {arguments.repeats}")
    print(f"  common.thresholds.best_threshold        {ours_seconds:6.3f} s   F1 {ours.f1:.6f} at {ours.threshold:.4f}")
    print(f"  sklearn precision_recall_curve + argmax {theirs_seconds:6.3f} s   F1 {f1:.6f} at {threshold:.4f}")
    print(f"  speed-up over sklearn: {theirs_seconds / ours_seconds:.1f}x; "
          f"target <= {TARGET_SECONDS} s {'PASS' if ours_seconds <= TARGET_SECONDS and ours_seconds < theirs_seconds else 'FAIL'}")


if __name__ == "__main__":
    main()
