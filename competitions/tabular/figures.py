"""The generic table's plots, each titled with the CV the run prints (common/plots.py):
predicted against actual for a regression, else the blended probabilities' reliability
and the confusion matrix (the submitted decision when the metric scores labels), or
each label's AUC for a multi-label target.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common import plots
from common.metrics import Metric
from competitions.tabular import data as D
from competitions.tabular import inference


def plot(name: str, cv_score: float, truth: np.ndarray, honest: np.ndarray, blended: np.ndarray, y: np.ndarray,
         target: D.Target, metric: Metric, log_target: bool, run_dir: Path) -> None:
    title = plots.cv_title(f"{name} out-of-fold", metric.name, cv_score)
    run_dir = Path(run_dir)
    if target.task == "regression":
        plots.predicted_vs_actual(truth, inference.values(honest, target, log_target, metric),
                                  run_dir / "predicted_vs_actual.png", title, f"actual {target.columns[0]}")
        return
    if target.task == "multilabel":
        plots.reliability(blended.ravel(), y.ravel().astype(float), run_dir / "calibration.png", title,
                          "predicted probability of the label", "observed frequency")
        from sklearn.metrics import roc_auc_score
        scores = {column: float(roc_auc_score(y[:, j], blended[:, j])) for j, column in enumerate(target.columns)
                  if len(np.unique(y[:, j])) == 2}
        plots.per_label_scores(scores, run_dir / "per_label_auc.png", f"{title}: AUC by label", "ROC AUC")
        return
    # Reliability: how often the true class is the predicted one, per confidence bin.
    probabilities = blended if blended.ndim == 2 else np.column_stack([1 - blended, blended])
    plots.reliability(probabilities.max(axis=1), (probabilities.argmax(axis=1) == y).astype(float),
                      run_dir / "calibration.png", title, "confidence (blended out-of-fold probability)", "accuracy")
    if metric.output == "label":
        predicted = honest
    else:
        predicted = blended.argmax(axis=1) if blended.ndim == 2 else (blended >= 0.5).astype(int)
    plots.confusion_matrix(y, predicted, [str(c) for c in target.classes], run_dir / "confusion_matrix.png",
                           f"{title}: confusion")
