"""birdcall: the CNN against the named baseline measured in the same run, on synthetic
--scale full data: pooled log-mel statistics + logistic regression, cross-validated on
the same folds. Also the calibrated blend (nested CV), the test-set score against the
answer key, wall time and peak memory.

Targets: CNN OOF log loss <= 0.5 x the baseline's, and <= 0.6 absolute (uniform: 3.69).
Usage: python bench/birdcall_model.py [DATA_DIR]   (synthesises --scale full when absent)
"""
from __future__ import annotations

import json
import resource
import sys
import tempfile
from pathlib import Path

from _command import ROOT, compete  # noqa: E402 (bench/ is the script's folder)
sys.path.insert(0, str(ROOT))


def main() -> None:
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "data" / "birdcall-synth-full"
    if not (data_dir / "Train.csv").exists():
        compete("data", "synth", "birdcall", "--out", data_dir, "--scale", "full")
    with tempfile.TemporaryDirectory() as work:
        seconds, _ = compete("run", "birdcall", "--data", data_dir, "--out", Path(work) / "submission.csv",
                             "--run-dir", Path(work) / "run", "--quiet")
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        metrics = json.loads((Path(work) / "run" / "metrics.json").read_text())
        _, scored = compete("score", "birdcall", Path(work) / "submission.csv", "--answers", data_dir / "answers")
    test = dict(line.split(": ") for line in scored.strip().splitlines())
    baseline, cnn = metrics["cv_baseline_log_loss"], metrics["cv_cnn_log_loss"]
    print(f"{metrics['usable_clips']} usable training clips, {metrics['folds']} folds, network {metrics['network']}")
    print(f"{'':44s} {'log loss':>9s} {'accuracy':>9s}")
    print(f"{'baseline: pooled stats + logistic regr. (OOF)':44s} {baseline:9.4f} {metrics['cv_baseline_accuracy']:9.3f}")
    print(f"{'baseline, calibrated (nested CV)':44s} {metrics['cv_baseline_calibrated_log_loss']:9.4f}")
    print(f"{'CNN, TTA over crops (OOF)':44s} {cnn:9.4f} {metrics['cv_cnn_accuracy']:9.3f}")
    print(f"{'calibrated blend (nested CV)':44s} {metrics['cv_score']:9.4f} {metrics['cv_accuracy']:9.3f}")
    print(f"{'calibrated blend on the test answers':44s} {float(test['log_loss']):9.4f} {float(test['accuracy']):9.3f}")
    print(f"CNN / baseline = {cnn / baseline:.3f} (target <= 0.5; against the calibrated baseline "
          f"{cnn / metrics['cv_baseline_calibrated_log_loss']:.3f}); CNN {cnn:.3f} (target <= 0.6); "
          f"calibration {metrics['calibration']}")
    print(f"compete run: {seconds:.0f} s wall, peak RSS {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
