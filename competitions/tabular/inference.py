"""Tabular inference from a run's files alone: load model.pkl, read the test file the
sample names, predict, write the submission in the sample's shape, validated.

`compete predict` (through Tabular.predict) and the Kaggle notebook `compete package`
builds share these functions, so both give the same file. The notebook runs them on
Kaggle's image with only this module and what it imports vendored beside the model:
numpy, pandas, scikit-learn, scipy, catboost, lightgbm and xgboost (through the pickled
model; text.py for the free-text families; torch and transformers for a fine-tuned
transformer, transformer_inference.py), nothing of the training stack (no MLflow, no click, no registry).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from common.metrics import Metric
from common.submission import DOMAIN_OF_OUTPUT, SubmissionFormat, align_to_sample, validate, write
from competitions.tabular import data as D

MODEL = "model.pkl"


def load_model(folder: Path):
    """The TabularModel a run saved in `folder`."""
    # The pickle names classes of these modules; importing them here also makes
    # packaging's import tracer ship them with this one.
    from competitions.tabular import encoding, features, model, stack, text  # noqa: F401
    from competitions.tabular import transformer_inference

    # a fine-tuned transformer is read from the folder's transformer/, not from the pickle
    return transformer_inference.attach(io.read_pickle(Path(folder) / MODEL, "run `compete fit` first"), folder)


def submission_format(target: D.Target, metric: Metric, sample_name: str, id_column: str) -> SubmissionFormat:
    """The format a submission for `metric` has: the domain follows the metric."""
    domain = DOMAIN_OF_OUTPUT[metric.output]
    labels = ()
    if domain == "label":
        # a column per class (a wide sample) or per label holds 0/1; one column holds the class
        labels = ("0", "1") if target.task == "multilabel" or target.class_columns else tuple(map(str, target.classes))
    if metric.output == "probability" and target.task == "regression":
        domain = "any"
    return SubmissionFormat(sample_name, id_column=id_column, domain=domain, labels=labels)


def values(predictions: np.ndarray, target: D.Target, log_target: bool, metric: Metric, as_indices: bool = False):
    """Decided predictions on the metric's scale (indices for labels when `as_indices`)."""
    if target.task == "regression":
        values = np.expm1(predictions) if log_target else predictions
        return np.clip(values, 0, None) if log_target else values
    if metric.output == "probability" and target.task != "multilabel":
        return np.clip(predictions, 1e-6, 1 - 1e-6)
    return predictions


def predict(model, test: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """The submission frame for the `test` rows (every cell text, as read)."""
    X = model.features.trees(test)
    X = pd.concat([X, test[model.features.columns.of("text")]], axis=1)
    decided = model.ensemble.predict(X)
    predicted = values(decided, model.target, model.log_target, model.metric)
    return shaped(predicted, model.target, model.metric, test[id_column], id_column)


def shaped(predicted: np.ndarray, target: D.Target, metric: Metric, ids, id_column: str) -> pd.DataFrame:
    """Values on the metric's scale laid out as the submission holds them."""
    frame = pd.DataFrame({id_column: np.asarray(ids).astype(str)})
    if target.task == "regression":
        frame[target.sample_columns[0]] = predicted
    elif target.task == "multilabel":
        for j, column in enumerate(target.columns):
            frame[column] = predicted[:, j]
    elif metric.output == "label" and target.class_columns:   # the chosen class's column 1, the others 0
        chosen = predicted.astype(int)
        for i, column in enumerate(target.class_columns):
            frame[column] = (chosen == i).astype(int)
    elif metric.output == "label":
        frame[target.sample_columns[0]] = np.asarray(target.classes, dtype=object)[predicted.astype(int)]
    elif target.class_columns:
        matrix = predicted if predicted.ndim == 2 else np.column_stack([1 - predicted, predicted])
        for i, column in enumerate(target.class_columns):
            frame[column] = matrix[:, i]
    else:
        frame[target.sample_columns[0]] = predicted
    return frame


def run(bundle_dir: Path, data_dir: Path, out: Path) -> Path:
    """Predict the test file of `data_dir` (the one its sample submission lists) with the
    model in `bundle_dir` and write `out` in the sample's order; an invalid result is an
    error, never a file."""
    model = load_model(bundle_dir)
    layout, test = D.read_test(Path(data_dir))
    frame = predict(model, test, layout.id_column)
    format = submission_format(model.target, model.metric, layout.source.name, layout.id_column)
    sample = D.read_sample(layout)
    frame = align_to_sample(frame, sample, format)
    problems = validate(frame, sample, format)
    if problems:
        raise io.InputError(f"{layout.source}: the predictions do not make a valid submission: {problems[0]}")
    return write(frame, out)
