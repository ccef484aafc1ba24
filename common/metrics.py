"""Each platform's metric, defined exactly as the platform scores it.

A `Metric` knows its direction, so model selection and threshold search never have
to guess whether a bigger number is better.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

EPSILON = 1e-15  # the clip Kaggle/Zindi/DrivenData apply before taking logs


@dataclass(frozen=True)
class Metric:
    name: str
    function: Callable[[np.ndarray, np.ndarray], float]
    greater_is_better: bool

    def __call__(self, y_true, y_pred) -> float:
        return float(self.function(np.asarray(y_true), np.asarray(y_pred)))

    def better(self, a: float, b: float) -> bool:
        """True when score `a` beats score `b`."""
        return a > b if self.greater_is_better else a < b


def rmsle(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Kaggle House Prices: RMSE between log(predicted) and log(observed)."""
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


RMSLE = Metric("rmsle", rmsle, greater_is_better=False)
F1 = Metric("f1", f1, greater_is_better=True)
MULTICLASS_LOG_LOSS = Metric("log_loss", multiclass_log_loss, greater_is_better=False)
MEAN_BINARY_LOG_LOSS = Metric("mean_binary_log_loss", mean_binary_log_loss, greater_is_better=False)
