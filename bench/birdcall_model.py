"""birdcall: the default `compete run birdcall` on synthetic --scale full data (the real
competition's size: 1,857 train, 911 test clips), scored on the test answers, against
the named baseline fitted in this script on the same cached log-mels: a clip-averaged
spectrum (per-band mean, spread, percentiles, flux) + logistic regression, which
cannot tell a confusable pair apart. Also the run's parts: the fast model (spectrum +
time statistics + logistic regression), the CNN, their calibrated blend (nested CV),
wall time, peak memory and the machine's load.

Target (issue 23): test log loss <= 0.20 on two data seeds (`--seed` of the synthetic data:
0 and 1) within 30 minutes on 2 cores.
Usage: python bench/birdcall_model.py [DATA_DIR [SEED]]   (synthesises --scale full with --seed SEED when absent)
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from _command import ROOT, compete  # noqa: E402 (bench/ is the script's folder)
sys.path.insert(0, str(ROOT))

TARGET_LOG_LOSS, TARGET_SECONDS = 0.20, 30 * 60


def spectrum_baseline(data_dir: Path) -> tuple[float, float]:
    """Test log loss and accuracy of logistic regression on the clip-averaged spectrum
    alone, fitted on every readable training clip; unreadable test clips get the prior."""
    from common.metrics import multiclass_log_loss
    from competitions.birdcall import data as bird_data
    from common import sound as model
    from common import spectrograms as features
    from competitions.birdcall.prepare import MEL_SETTINGS
    data = bird_data.load(data_dir)
    spectra = lambda paths: [m if isinstance(m, str) else features.spectrum(features.normalise(m.astype(np.float32)))  # noqa: E731
                             for m in features.compute(list(paths), MEL_SETTINGS, quiet=True)]
    train = spectra(data.train["path"])
    usable = [i for i, s in enumerate(train) if not isinstance(s, str)]
    y = data.train["label"].to_numpy()[usable]
    fitted = model.fit_baseline(np.stack([train[i] for i in usable]), y)
    test = spectra(data.test["path"])
    classes = len(data.species)
    probabilities = np.tile((np.bincount(y, minlength=classes) + 1.0) / (len(y) + classes), (len(test), 1))
    readable = [i for i, s in enumerate(test) if not isinstance(s, str)]
    probabilities[readable] = model.class_probabilities(fitted, np.stack([test[i] for i in readable]), classes)
    truth = pd.read_csv(data_dir / "answers" / "test_labels.csv").set_index("ID").loc[data.test["ID"], "common_name"]
    answers = truth.map({name: k for k, name in enumerate(data.species)}).to_numpy()
    return multiclass_log_loss(answers, probabilities), float((probabilities.argmax(1) == answers).mean())


def main() -> None:
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "data" / "birdcall-synth-full"
    if not (data_dir / "Train.csv").exists():
        compete("data", "synth", "birdcall", "--out", data_dir, "--scale", "full", "--seed", sys.argv[2] if len(sys.argv) > 2 else "0")
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as work:
        seconds, _ = compete("run", "birdcall", "--data", data_dir, "--out", Path(work) / "submission.csv",
                             "--run-dir", Path(work) / "run", "--quiet")
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        metrics = json.loads((Path(work) / "run" / "metrics.json").read_text())
        _, scored = compete("score", "birdcall", Path(work) / "submission.csv", "--answers", data_dir / "answers")
    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    test = dict(line.split(": ") for line in scored.strip().splitlines())
    test_loss = float(test["log_loss"])
    baseline_loss, baseline_accuracy = spectrum_baseline(data_dir)
    print(f"{metrics['usable_clips']} usable training clips, {metrics['folds']} folds, network {metrics['network']}")
    print(f"{'':52s} {'log loss':>9s} {'accuracy':>9s}")
    print(f"{'named baseline: spectrum + logistic regr. (test)':52s} {baseline_loss:9.4f} {baseline_accuracy:9.3f}")
    print(f"{'fast model: spectrum + time stats + LR (OOF)':52s} {metrics['cv_baseline_log_loss']:9.4f} {metrics['cv_baseline_accuracy']:9.3f}")
    print(f"{'fast model, calibrated (nested CV)':52s} {metrics['cv_baseline_calibrated_log_loss']:9.4f}")
    print(f"{'CNN, TTA over crops (OOF)':52s} {metrics['cv_cnn_log_loss']:9.4f} {metrics['cv_cnn_accuracy']:9.3f}")
    print(f"{'calibrated blend (nested CV, the printed cv)':52s} {metrics['cv_score']:9.4f} {metrics['cv_accuracy']:9.3f}")
    print(f"{'calibrated blend on the test answers':52s} {test_loss:9.4f} {float(test['accuracy']):9.3f}")
    print(f"test log loss {test_loss:.4f}: {test_loss / TARGET_LOG_LOSS:.2f} x the {TARGET_LOG_LOSS} target "
          f"({'met' if test_loss <= TARGET_LOG_LOSS else 'NOT met'}), {test_loss / baseline_loss:.3f} x the named baseline; "
          f"calibration {({k: v for k, v in metrics['calibration'].items() if k != 'class_bias'})}"
          f"{' + a bias per class' if 'class_bias' in metrics['calibration'] else ''}")
    print(f"compete run: {seconds:.0f} s wall ({seconds / TARGET_SECONDS:.2f} x the 30-minute budget), "
          f"peak RSS {peak_gb:.2f} GB, {os.cpu_count()} cores")
    print(f"uptime before: {load_before}\nuptime after:  {load_after}")


if __name__ == "__main__":
    main()
