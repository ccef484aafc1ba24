"""`compete score` for a PLATFORM:SLUG competition: a submission against the truth in
submission shape, with the metric `--metric` names, the task read from the values
(labels compare as text; space-separated tags as one 0/1 column per tag; one-hot columns
as classes; other numbers as they are).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from common import metrics as metric_table
from competitions.tabular import media as MD


def score(truth: pd.DataFrame, predicted: pd.DataFrame, metric_name: str) -> dict[str, float]:
    """`truth` and `predicted`: the value columns of the same rows, in the same order."""
    value_columns = list(predicted.columns)
    label_metric = metric_table.resolve(metric_name).output == "label"
    if label_metric and len(value_columns) == 1 and MD.is_tags(pd.concat([truth.iloc[:, 0], predicted.iloc[:, 0]])):
        # space-separated tags (media.py): one 0/1 column per tag, scored as multi-label
        y_true, y_pred = MD.tag_matrices(truth.iloc[:, 0], predicted.iloc[:, 0])
        task = "multilabel"
    elif label_metric and len(value_columns) == 1:
        labels = sorted(set(truth.iloc[:, 0].astype(str)) | set(predicted.iloc[:, 0].astype(str)))
        index = {label: i for i, label in enumerate(labels)}
        y_true = truth.iloc[:, 0].astype(str).map(index).to_numpy()
        y_pred = predicted.iloc[:, 0].astype(str).map(index).to_numpy()
        task = "binary" if len(labels) <= 2 else "multiclass"
    else:
        y_true = truth.apply(pd.to_numeric).to_numpy(dtype=float)
        y_pred = predicted.apply(pd.to_numeric).to_numpy(dtype=float)
        one_hot = y_true.shape[1] > 1 and np.allclose(y_true.sum(axis=1), 1.0)
        task = "multiclass" if one_hot else "multilabel" if y_true.shape[1] > 1 else "binary"
        if y_true.shape[1] == 1:
            y_true, y_pred = y_true[:, 0], y_pred[:, 0]
    metric = metric_table.resolve(metric_name, task)
    return {metric.name: metric(y_true, y_pred)}
