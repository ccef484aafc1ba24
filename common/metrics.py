"""Each platform's metric, defined exactly as the platform scores it.

A `Metric` knows its direction, so model selection and threshold search never have
to guess whether a bigger number is better.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

EPSILON = 1e-15  # the clip Kaggle/Zindi/DrivenData apply before taking logs


# What a metric scores, which is what a submission must hold and what a model's raw
# output is turned into: class labels, probabilities, any ranking score, any number, or
# a number >= 0 (a log1p of it is taken).
OUTPUTS = ("label", "probability", "score", "value", "nonnegative", "positive")


@dataclass(frozen=True)
class Metric:
    name: str
    function: Callable[[np.ndarray, np.ndarray], float]
    greater_is_better: bool
    output: str = "value"

    def __post_init__(self):
        if self.output not in OUTPUTS:
            raise ValueError(f"unknown metric output {self.output!r}; known: {', '.join(OUTPUTS)}")

    def __call__(self, y_true, y_pred) -> float:
        return float(self.function(np.asarray(y_true), np.asarray(y_pred)))

    def better(self, a: float, b: float) -> bool:
        """True when score `a` beats score `b`."""
        return a > b if self.greater_is_better else a < b


def rmse_of_logs(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Kaggle House Prices: RMSE between log(predicted) and log(observed). Not Kaggle's
    RMSLE (`root_mean_squared_log_error`, log(1 + value)), though the competition and
    its runs call it "rmsle"."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if (y_true <= 0).any() or (y_pred <= 0).any():
        raise ValueError("rmsle needs strictly positive values (log of a price)")
    return float(np.sqrt(np.mean((np.log(y_pred) - np.log(y_true)) ** 2)))


def f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Binary F1 on 0/1 predictions over all rows; 0 when nothing is predicted or true."""
    y_true = np.asarray(y_true).astype(bool).ravel()
    y_pred = np.asarray(y_pred).astype(bool).ravel()
    true_positives = np.count_nonzero(y_true & y_pred)
    denominator = np.count_nonzero(y_true) + np.count_nonzero(y_pred)
    return 0.0 if denominator == 0 else 2.0 * true_positives / denominator


def multiclass_log_loss(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Zindi multi-class log loss: rows normalised to sum to one, clipped at 1e-15.

    `y_true` is either class indices (n,) or a one-hot matrix (n, k).
    """
    probabilities = np.asarray(y_pred, dtype=float)
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    probabilities = np.clip(probabilities, EPSILON, 1 - EPSILON)
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    y_true = np.asarray(y_true)
    if y_true.ndim == 1:
        picked = probabilities[np.arange(len(y_true)), y_true.astype(int)]
    else:
        picked = np.sum(y_true * probabilities, axis=1)
    return float(-np.mean(np.log(picked)))


def mean_binary_log_loss(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """DrivenData Serengeti: binary log loss averaged over every label column and row."""
    y_true = np.asarray(y_true, dtype=float)
    p = np.clip(np.asarray(y_pred, dtype=float), EPSILON, 1 - EPSILON)
    return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))


def binary_log_loss(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Log loss of one probability per row (of the positive class), clipped at 1e-15."""
    return mean_binary_log_loss(np.asarray(y_true, dtype=float).ravel(), np.asarray(y_pred, dtype=float).ravel())


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of rows whose label is exactly right (every column of the row, when several)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.shape} labels but {y_pred.shape} predictions")
    same = y_true == y_pred
    return float(np.mean(same.all(axis=1) if same.ndim == 2 else same))


def roc_auc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """ROC AUC of a score; with several columns, the mean of each column's AUC (Kaggle's
    "mean column-wise ROC AUC", which is also one-vs-rest macro AUC for one-hot classes)."""
    from sklearn.metrics import roc_auc_score
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if y_pred.ndim == 2 and y_true.ndim == 1:  # class indices against one column per class
        y_true = np.eye(y_pred.shape[1])[y_true.astype(int)]
    return float(roc_auc_score(y_true, y_pred, average="macro"))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    return float(np.sqrt(np.mean((y_pred - y_true) ** 2)))


def root_mean_squared_log_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Kaggle's RMSLE: RMSE of log(1 + value); values must be >= 0. (House Prices
    scores log(value) instead: `rmse_of_logs` above.)"""
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if (y_true < 0).any() or (y_pred < 0).any():
        raise ValueError("rmsle needs values >= 0 (it takes log(1 + value))")
    return float(np.sqrt(np.mean((np.log1p(y_pred) - np.log1p(y_true)) ** 2)))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    return float(np.mean(np.abs(y_pred - y_true)))


def f1_macro(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """F1 of each class (or each column of a 0/1 matrix), averaged with equal weights; a
    class never predicted nor true counts 0, as scikit-learn's default does."""
    from sklearn.metrics import f1_score
    return float(f1_score(np.asarray(y_true), np.asarray(y_pred), average="macro", zero_division=0))


# House Prices' metric keeps the name its runs, metrics.json and the leaderboard show;
# `--metric rmsle` means Kaggle's RMSLE, ROOT_MEAN_SQUARED_LOG_ERROR below.
RMSE_OF_LOGS = Metric("rmsle", rmse_of_logs, greater_is_better=False, output="positive")
F1 = Metric("f1", f1, greater_is_better=True, output="label")
MULTICLASS_LOG_LOSS = Metric("log_loss", multiclass_log_loss, greater_is_better=False, output="probability")
MEAN_BINARY_LOG_LOSS = Metric("mean_binary_log_loss", mean_binary_log_loss, greater_is_better=False, output="probability")

ACCURACY = Metric("accuracy", accuracy, greater_is_better=True, output="label")
ROC_AUC = Metric("auc", roc_auc, greater_is_better=True, output="score")
BINARY_LOG_LOSS = Metric("logloss", binary_log_loss, greater_is_better=False, output="probability")
RMSE = Metric("rmse", rmse, greater_is_better=False, output="value")
ROOT_MEAN_SQUARED_LOG_ERROR = Metric("rmsle", root_mean_squared_log_error, greater_is_better=False, output="nonnegative")
MAE = Metric("mae", mae, greater_is_better=False, output="value")
F1_MACRO = Metric("f1_macro", f1_macro, greater_is_better=True, output="label")

# `--metric` names and the platforms' own spellings of them (Kaggle's evaluationMetric,
# scikit-learn's function names, Zindi's page titles), compared without case, spaces,
# dashes or underscores.
NAMES = {
    "accuracy": ("accuracy", "categorizationaccuracy", "accuracyscore", "classificationaccuracy"),
    "auc": ("auc", "rocauc", "areaunderroccurve", "rocaucscore", "aucroc", "meancolumnwiserocauc"),
    "logloss": ("logloss", "binarylogloss", "multiclassloss", "multiclasslogloss", "crossentropy",
                "mlogloss", "meancolumnwiselogloss", "binarycrossentropy"),
    "rmse": ("rmse", "rootmeansquarederror", "meancolumnwiserootmeansquarederror"),
    "rmsle": ("rmsle", "rootmeansquaredlogerror", "rootmeansquaredlogarithmicerror"),
    "mae": ("mae", "meanabsoluteerror"),
    "f1": ("f1", "f1score", "binaryf1", "meanf1score"),
    "f1_macro": ("f1macro", "macrof1", "macrof1score", "f1scoremacro"),
}
_BY_SPELLING = {spelling: name for name, spellings in NAMES.items() for spelling in spellings}
_LOG_LOSS_BY_TASK = {"binary": BINARY_LOG_LOSS, "multiclass": MULTICLASS_LOG_LOSS, "multilabel": MEAN_BINARY_LOG_LOSS}
_FIXED = {"accuracy": ACCURACY, "auc": ROC_AUC, "rmse": RMSE, "rmsle": ROOT_MEAN_SQUARED_LOG_ERROR, "mae": MAE,
          "f1": F1, "f1_macro": F1_MACRO}


def canonical(name: str) -> str:
    """The `--metric` name for `name` or any platform's spelling of it, e.g. "LogLoss",
    "log_loss", "MeanAbsoluteError"; an unknown name fails listing the known ones."""
    key = "".join(character for character in str(name).lower() if character.isalnum())
    if key not in _BY_SPELLING:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(NAMES)} (or a platform's spelling of one)")
    return _BY_SPELLING[key]


def resolve(name: str, task: str = "binary") -> Metric:
    """The metric `name` means for a task ("regression", "binary", "multiclass",
    "multilabel"): log loss is binary for one probability column, multi-class for one
    column per class that sums to one, and the mean binary loss of independent labels."""
    name = canonical(name)
    if name == "logloss":
        return _LOG_LOSS_BY_TASK.get(task, BINARY_LOG_LOSS)
    return _FIXED[name]
