"""serengeti on synthetic --scale full: mean binary log loss of `compete run` against
the named baseline measured in the same run, the class prior (every test sequence
predicted with the training label frequencies), on the held-out test season's answers.

Target: model / prior <= 0.5.
Usage: python bench/serengeti_full.py [DATA_DIR]   (synthesises --scale full when absent; ~20 min on 2 cores)
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _command import ROOT, compete  # noqa: E402 (bench/ is the script's folder)
sys.path.insert(0, str(ROOT))


def main():
    from common.metrics import MEAN_BINARY_LOG_LOSS
    from competitions.serengeti.data import CLASSES, ID

    scratch = Path(tempfile.mkdtemp(prefix="bench-serengeti-"))
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else scratch / "data"
    if not (data / "train_metadata.csv").exists():
        started = time.perf_counter()
        compete("data", "synth", "serengeti", "--out", data, "--scale", "full", "--seed", "0")
        print(f"synth --scale full: {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    run_dir, submission = scratch / "run", scratch / "submission.csv"
    compete("run", "serengeti", "--data", data, "--run-dir", run_dir, "--out", submission, "--quiet")
    seconds = time.perf_counter() - started
    metrics = json.loads((run_dir / "metrics.json").read_text())
    truth = pd.read_csv(data / "answers" / "solution.csv").set_index(ID)
    predicted = pd.read_csv(submission).set_index(ID).loc[truth.index]
    prior = pd.read_csv(data / "train_labels.csv")[list(CLASSES)].mean().to_numpy()
    model = MEAN_BINARY_LOG_LOSS(truth[list(CLASSES)].to_numpy(), predicted[list(CLASSES)].to_numpy())
    baseline = MEAN_BINARY_LOG_LOSS(truth[list(CLASSES)].to_numpy(), np.tile(prior, (len(truth), 1)))
    print(f"compete run: {seconds:.0f} s, {metrics['epochs']} epochs max, {metrics['train_images']} training images")
    print(f"validation season: model {metrics['cv_score']:.5f}, prior {metrics['prior_baseline']:.5f}, ratio {metrics['ratio_to_prior']:.3f}")
    print(f"test season:       model {model:.5f}, prior {baseline:.5f}, ratio {model / baseline:.3f} (target <= 0.5)")


if __name__ == "__main__":
    main()
