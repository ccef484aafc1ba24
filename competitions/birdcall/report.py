"""What a birdcall run reports beside its model: the nested CV of the calibrated blend
(by fold), the baseline's and the CNN's own figures, the calibration, and the plots
(the nested out-of-fold confusion, the CNN's loss by epoch), titled with the CV."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common import plots, sound
from common.competition import Report
from common.metrics import MULTICLASS_LOG_LOSS
from competitions.birdcall import folds as bird_folds
from competitions.birdcall.data import BirdData


def report(data: BirdData, clips, fold_of: np.ndarray, folds: int, oof_baseline: np.ndarray, oof_cnn: np.ndarray | None,
           calibration, calibrated: np.ndarray, nested: np.ndarray, settings, options, seconds: float) -> Report:
    y = clips.y
    baseline_score = MULTICLASS_LOG_LOSS(y, np.clip(oof_baseline, 1e-15, 1))
    decisions = {
        "cv_accuracy": round(float((calibrated.argmax(1) == y).mean()), 6),
        "cv_baseline_log_loss": round(baseline_score, 6),
        "cv_baseline_accuracy": round(float((oof_baseline.argmax(1) == y).mean()), 6),
        "calibration": {"cnn_weight": calibration.blend, "temperature": round(calibration.temperature, 6), "floor": calibration.floor,
                        **({"class_bias": [round(b, 4) for b in calibration.bias]} if calibration.bias else {})},
        "folds": folds, "train_clips": len(data.train), "usable_clips": len(y), "quarantined_train": clips.quarantined,
        "model": "baseline" if options.fast else "cnn+baseline",
        "train_seconds": round(seconds, 2),
    }
    if oof_cnn is not None:
        decisions["cv_baseline_calibrated_log_loss"] = round(sound.nested_score(oof_baseline, None, y, fold_of), 6)
        decisions["cv_cnn_log_loss"] = round(MULTICLASS_LOG_LOSS(y, np.clip(oof_cnn, 1e-15, 1)), 6)
        decisions["cv_cnn_accuracy"] = round(float((oof_cnn.argmax(1) == y).mean()), 6)
        decisions["network"] = sound.settings_dict(settings)
    return Report(
        cv_score=MULTICLASS_LOG_LOSS(y, nested),
        fold_scores=[MULTICLASS_LOG_LOSS(y[fold_of == fold], nested[fold_of == fold]) for fold in range(folds)],
        note=("nested: blend weight, temperature, class bias and floor for each fold fitted on the other folds' OOF; "
              "not nested: each fold's CNN keeps its epoch of lowest loss on that fold's own held-out clips"
              if oof_cnn is not None else
              "nested: temperature and floor for each fold fitted on the other folds' OOF"),
        decisions=decisions,
        out_of_fold=bird_folds.out_of_fold(clips, fold_of, list(data.species), nested))


def plot(data: BirdData, y: np.ndarray, nested: np.ndarray, cv_score: float, metric: str, folds: int, with_cnn: bool,
         run_dir: Path) -> None:
    title = plots.cv_title("birdcall", metric, cv_score)
    plots.confusion_matrix(y, nested.argmax(1), list(data.species), Path(run_dir) / "confusion_matrix.png",
                           f"{title} (nested OOF, top species)")
    if with_cnn:
        plots.training_curves({f"fold {k + 1}": Path(run_dir) / "cnn" / f"fold{k + 1}" / "history.csv" for k in range(folds)},
                              Path(run_dir) / "training_curves.png", f"{title}: CNN loss by epoch")
