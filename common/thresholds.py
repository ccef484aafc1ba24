"""Decision rules for F1: the exact F1-optimal threshold, per-class thresholds, and
top-k rules that carry a positive rate from validation to test.

F1 is not a sum over rows, so no per-row loss optimises it: a model ranks, and a rule
picks how many of the top-ranked rows to flag. The functions here find that rule
exactly on labelled data and carry it to unlabelled data.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Threshold:
    """Flag a row when its score is >= `threshold`; the figures this gives."""

    threshold: float
    f1: float
    precision: float
    recall: float
    predicted_positives: int
    positives: int

    def apply(self, scores) -> np.ndarray:
        return np.asarray(scores) >= self.threshold


@dataclass(frozen=True)
class Curve:
    """F1, precision and recall at every threshold that can be optimal."""

    thresholds: np.ndarray  # ascending, distinct
    f1: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    predicted_positives: np.ndarray
    positives: int


def _check(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true).ravel()
    scores = np.asarray(scores).ravel()
    if y_true.shape != scores.shape:
        raise ValueError(f"{len(y_true)} labels but {len(scores)} scores")
    if scores.dtype.kind not in "fiub":
        raise ValueError(f"scores must be numbers, got dtype {scores.dtype}")
    if scores.dtype.kind == "f" and np.isnan(scores).any():
        raise ValueError("scores hold NaN; a threshold cannot rank them")
    return y_true.astype(bool), scores


def f1_curve(y_true, scores) -> Curve:
    """F1 at each distinct score held by a positive, in O(n log n).

    Only those thresholds can be optimal: raising a threshold past a score held only
    by negatives removes false positives and keeps every true positive. Counting
    "scores >= t" by binary search in the sorted scores (a cumulative count) flags
    tied scores together, as `scores >= t` does."""
    y_true, scores = _check(y_true, scores)
    ordered = np.sort(scores)
    positive_scores = np.sort(scores[y_true])
    positives = len(positive_scores)
    if positives == 0:
        empty = np.array([], dtype=float)
        return Curve(empty, empty, empty, empty, np.array([], dtype=np.int64), 0)
    first_of_run = np.ones(positives, dtype=bool)
    first_of_run[1:] = positive_scores[1:] != positive_scores[:-1]
    candidates = positive_scores[first_of_run]
    true_positives = positives - np.flatnonzero(first_of_run)
    predicted = len(scores) - np.searchsorted(ordered, candidates, side="left")
    f1 = 2.0 * true_positives / (predicted + positives)
    return Curve(candidates, f1, true_positives / predicted, true_positives / positives, predicted, positives)


def best_threshold(y_true, scores) -> Threshold:
    """The exact F1-optimal threshold (the highest one when several tie).

    With no positive row every threshold scores 0; the rule then flags nothing."""
    curve = f1_curve(y_true, scores)
    if curve.positives == 0:
        return Threshold(float("inf"), 0.0, 0.0, 0.0, 0, 0)
    best = len(curve.f1) - 1 - int(np.argmax(curve.f1[::-1]))
    return Threshold(curve.thresholds[best].item(), float(curve.f1[best]), float(curve.precision[best]),
                     float(curve.recall[best]), int(curve.predicted_positives[best]), curve.positives)


def per_class_thresholds(y_true, scores) -> list[Threshold]:
    """Multi-label: the F1-optimal threshold of each column on its own."""
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    if y_true.ndim != 2 or y_true.shape != scores.shape:
        raise ValueError(f"need two (rows, classes) arrays of one shape, got {y_true.shape} and {scores.shape}")
    return [best_threshold(y_true[:, column], scores[:, column]) for column in range(y_true.shape[1])]


def apply_per_class(scores, thresholds: list[Threshold]) -> np.ndarray:
    scores = np.asarray(scores)
    cutoffs = np.array([t.threshold for t in thresholds], dtype=float)
    return (scores >= cutoffs[None, :]).astype(np.int8)


def top_k(scores, k: int) -> np.ndarray:
    """Flag exactly the `k` highest scores; ties are broken by position (earlier first)."""
    scores = np.asarray(scores).ravel()
    k = int(np.clip(k, 0, len(scores)))
    flags = np.zeros(len(scores), dtype=bool)
    flags[np.argsort(-scores, kind="stable")[:k]] = True
    return flags


@dataclass(frozen=True)
class RateRule:
    """Flag `flags_per_expected` rows per expected positive: the k highest, with
    k = flags_per_expected x sum(probabilities).

    Fitted where labels are known, applied where they are not: when the test period
    holds fewer incidents, the probabilities sum to less and fewer rows are flagged,
    which a fixed share of rows would not do."""

    flags_per_expected: float

    def count(self, probabilities) -> int:
        return int(round(self.flags_per_expected * float(np.asarray(probabilities, dtype=np.float64).sum())))

    def apply(self, probabilities) -> np.ndarray:
        return top_k(probabilities, self.count(probabilities))


def fit_rate_rule(y_true, probabilities) -> RateRule:
    """The rate rule that reproduces the F1-optimal number of flags on labelled data."""
    best = best_threshold(y_true, probabilities)
    expected = float(np.asarray(probabilities, dtype=np.float64).sum())
    return RateRule(best.predicted_positives / expected if expected > 0 else 0.0)


def expected_f1_count(probabilities) -> int:
    """How many of the top rows to flag to maximise the expected F1 when the
    probabilities are calibrated: k maximising 2 * sum(top-k p) / (k + sum(p)).

    Needs no labels, so it applies to the test period directly."""
    p = np.sort(np.asarray(probabilities, dtype=np.float64).ravel())[::-1]
    if len(p) == 0 or p.sum() <= 0:
        return 0
    gain = np.cumsum(p)
    k = np.arange(1, len(p) + 1)
    return int(np.argmax(2.0 * gain / (k + gain[-1]))) + 1


def best_accuracy_threshold(y_true, scores) -> tuple[float, float]:
    """(threshold, accuracy): flag rows whose score is >= threshold, with the threshold
    that maximises accuracy on labelled data, in O(n log n) (the lowest when several tie,
    so flagging all rows is considered too)."""
    y_true, scores = _check(y_true, scores)
    order = np.sort(np.unique(scores))
    # For each candidate t: correct = positives with score >= t + negatives with score < t.
    positive_at_or_above = len(scores[y_true]) - np.searchsorted(np.sort(scores[y_true]), order, side="left")
    negative_below = np.searchsorted(np.sort(scores[~y_true]), order, side="left")
    correct = positive_at_or_above + negative_below
    candidates = np.append(order, np.inf)  # inf: flag nothing
    correct = np.append(correct, np.count_nonzero(~y_true))
    best = int(np.argmax(correct))
    return float(candidates[best]), float(correct[best] / len(scores))


def best_macro_f1_threshold(y_true, scores, candidates: int = 400) -> tuple[float, float]:
    """(threshold, macro F1) for a binary task scored by the mean of both classes' F1:
    checked on `candidates` quantiles of the scores (macro F1 has no one-pass exact rule)."""
    y_true, scores = _check(y_true, scores)
    grid = np.unique(np.quantile(scores, np.linspace(0, 1, candidates)))
    positives = np.count_nonzero(y_true)
    ordered_positive = np.sort(scores[y_true])
    ordered = np.sort(scores)
    true_positive = positives - np.searchsorted(ordered_positive, grid, side="left")
    flagged = len(scores) - np.searchsorted(ordered, grid, side="left")
    false_positive = flagged - true_positive
    false_negative = positives - true_positive
    true_negative = len(scores) - positives - false_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        f1_positive = np.nan_to_num(2 * true_positive / (2 * true_positive + false_positive + false_negative))
        f1_negative = np.nan_to_num(2 * true_negative / (2 * true_negative + false_negative + false_positive))
    macro = (f1_positive + f1_negative) / 2
    best = int(np.argmax(macro))
    return float(grid[best]), float(macro[best])


# Log-loss calibration: one temperature on the logits, fitted on out-of-fold predictions.
# A single parameter cannot overfit the rows it is fitted on, and it fixes what blending
# and averaging fold models do to probabilities (they come out too timid or too sure).
def logits(probabilities: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) for one column of probabilities, log(p) for one column per class."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p) if p.ndim == 1 else np.log(p)


def calibrate(probabilities, temperature: float) -> np.ndarray:
    """Probabilities with their logits divided by `temperature` (rows renormalised when
    there is one column per class)."""
    scaled = logits(probabilities) / temperature
    if scaled.ndim == 1:
        return 1.0 / (1.0 + np.exp(-scaled))
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(y_true, probabilities) -> float:
    """The temperature that minimises log loss; `y_true` is 0/1 for one column of
    probabilities, or class indices for one column per class."""
    from scipy.optimize import minimize_scalar

    y_true = np.asarray(y_true)
    probabilities = np.asarray(probabilities, dtype=np.float64)

    def loss(log_temperature: float) -> float:
        p = np.clip(calibrate(probabilities, float(np.exp(log_temperature))), 1e-15, 1 - 1e-15)
        if p.ndim == 1:
            return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))
        return float(-np.mean(np.log(p[np.arange(len(p)), y_true.astype(int)])))

    # Sharpening is capped at 2x (temperature >= 0.5): predictions that separate the
    # labelled rows would otherwise pull the temperature to zero and the test to ruin.
    result = minimize_scalar(loss, bounds=(np.log(0.5), 3.0), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def plot_f1(y_true, scores, path: Path | str, marks: dict[str, float] | None = None, title: str = "") -> Path:
    """A PNG of F1, precision and recall against the threshold; `marks` draws
    named thresholds (the chosen rule, the validation optimum) as vertical lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common import plots

    curve = f1_curve(y_true, scores)
    step = max(1, len(curve.thresholds) // 4000)
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for values, label in ((curve.f1, "F1"), (curve.precision, "precision"), (curve.recall, "recall")):
        axis.plot(curve.thresholds[::step], values[::step], label=label, linewidth=1.2 if label == "F1" else 0.8)
    if len(curve.thresholds) and curve.thresholds[0] > 0:
        axis.set_xscale("log")
    for name, value in (marks or {}).items():
        if np.isfinite(value):
            axis.axvline(value, linestyle="--", linewidth=0.8, color="gray")
            axis.annotate(name, (value, 0.95), rotation=90, fontsize=7, ha="right", va="top", xycoords=("data", "axes fraction"))
    best = best_threshold(y_true, scores)
    axis.set(xlabel="threshold (flag when score >= threshold)", ylim=(0, 1),
             title=title or f"best F1 {best.f1:.4f} at {best.threshold:.4g} ({best.predicted_positives} flags, {best.positives} positives)")
    axis.legend(loc="upper right")
    return plots.save(figure, path)
