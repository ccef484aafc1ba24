"""The generic table's out-of-fold output: oof.csv (each family's and the final
prediction of every training row, with its fold and target), and what `compete blend`
reads: every row's prediction in submission shape (common.competition.OutOfFold) and,
for a 0/1 label metric, the test's blended probabilities before the threshold.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from common.competition import OutOfFold
from competitions.tabular import data as D
from competitions.tabular import inference


def write(data: D.TabularData, oof: dict[str, np.ndarray], honest: np.ndarray, fold_of: np.ndarray, log_target: bool,
          run_dir: Path) -> Path:
    """RUN_DIR/oof.csv: id, fold (from 1), the target, oof_FAMILY for each family and
    oof_final (the nested decided predictions), a column per class or label where there are several."""
    target = data.target
    frame = pd.DataFrame({"fold": fold_of + 1})
    if data.id_column in data.train.columns:
        frame.insert(0, data.id_column, data.train[data.id_column].to_numpy())
    for column in target.columns:
        frame[column] = data.train[column].to_numpy()
    for name, values in {**{f"oof_{n}": v for n, v in oof.items()}, "oof_final": honest}.items():
        values = np.asarray(values)
        if target.task == "regression" and log_target:
            values = np.expm1(values)
        if values.ndim == 1:
            frame[name] = values
        else:
            labels = target.classes if target.task == "multiclass" else target.columns
            for j, label in enumerate(labels):
                frame[f"{name}_{label}"] = values[:, j]
    path = Path(run_dir) / "oof.csv"
    io.write_csv(frame, path, float_format="%.6g")
    return path


def blends_labels(target: D.Target) -> bool:
    """A label metric's run can be blended when its labels are one 0/1 column (the blend
    pools probabilities and refits the threshold); other labels cannot be pooled."""
    return target.task == "binary" and [str(c) for c in target.classes] == ["0", "1"]


def for_blend(data: D.TabularData, honest: np.ndarray, blended: np.ndarray, fold_of: np.ndarray, truth: np.ndarray,
              log_target: bool) -> OutOfFold | None:
    """Every training row's out-of-fold prediction in submission shape: the nested one
    the CV scores, or for a label metric the blended probability before the threshold
    (the families' weights fitted on every row). None where a blend could not use it."""
    target, metric = data.target, data.metric
    if data.id_column not in data.train.columns or (metric.output == "label" and not blends_labels(target)):
        return None
    ids = data.train[[data.id_column]].astype(str).reset_index(drop=True)
    scores = blended if metric.output == "label" else inference.values(honest, target, log_target, metric)
    if target.class_columns:
        truth = np.eye(len(target.classes))[truth.astype(int)]
    return OutOfFold(pd.concat([ids, shaped(scores, target)], axis=1), pd.concat([ids, shaped(truth, target)], axis=1),
                     fold_of)


def test_scores(model, data: D.TabularData) -> pd.DataFrame | None:
    """For a 0/1 label metric the test's blended probabilities before the threshold;
    else None (the submission's values are the scores)."""
    if model.metric.output != "label" or not blends_labels(model.target):
        return None
    X = pd.concat([model.features.trees(data.test), data.test[model.features.columns.of("text")]], axis=1)
    ids = data.test[[data.id_column]].astype(str).reset_index(drop=True)
    return pd.concat([ids, shaped(model.ensemble.blended(X), model.target)], axis=1)


def shaped(values: np.ndarray, target: D.Target) -> pd.DataFrame:
    """Scores laid out as the submission's value columns."""
    if target.task == "multilabel":
        return pd.DataFrame(np.asarray(values), columns=target.columns)
    if target.class_columns:
        matrix = values if np.ndim(values) == 2 else np.column_stack([1 - values, values])
        return pd.DataFrame(matrix, columns=target.class_columns)
    return pd.DataFrame({target.sample_columns[0]: np.asarray(values)})
