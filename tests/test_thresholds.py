"""common.thresholds: the exact F1-optimal threshold against brute force, ties, the
per-class and top-k rules, and the plot."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.metrics import f1
from common.thresholds import (RateRule, apply_per_class, best_threshold, expected_f1_count, f1_curve, fit_rate_rule,
                               per_class_thresholds, plot_f1, top_k)


def brute_force(y_true, scores) -> float:
    return max([f1(y_true, scores >= t) for t in np.unique(scores)] + [0.0])


@pytest.mark.parametrize("seed", range(30))
def test_best_threshold_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    y_true = rng.random(n) < rng.uniform(0.01, 0.5)
    # Few distinct values, so many rows tie; sometimes the labels carry signal.
    scores = rng.integers(0, int(rng.integers(1, 12)), n) + rng.uniform(0, 3) * y_true * rng.random(n).round(1)
    best = best_threshold(y_true, scores)
    assert best.f1 == pytest.approx(brute_force(y_true, scores), abs=1e-12)
    if y_true.any():
        assert f1(y_true, best.apply(scores)) == pytest.approx(best.f1, abs=1e-12)
        assert best.predicted_positives == int((scores >= best.threshold).sum())


def test_tied_scores_are_flagged_together():
    y_true = np.array([1, 0, 0, 1, 0])
    scores = np.array([0.9, 0.9, 0.9, 0.1, 0.1])
    best = best_threshold(y_true, scores)
    # Flagging the three tied rows (F1 0.4) or all five (F1 4/7): never a split tie.
    assert best.threshold == 0.1 and best.f1 == pytest.approx(4 / 7)
    curve = f1_curve(y_true, scores)
    assert list(curve.predicted_positives) == [5, 3]


def test_no_positive_flags_nothing():
    best = best_threshold(np.zeros(5), np.arange(5.0))
    assert best.f1 == 0 and not best.apply(np.arange(5.0)).any()


def test_nan_scores_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        best_threshold([0, 1], [0.5, np.nan])


def test_per_class_thresholds_are_each_columns_own():
    rng = np.random.default_rng(1)
    y_true = rng.random((200, 3)) < 0.2
    scores = rng.random((200, 3)) + 0.3 * y_true
    thresholds = per_class_thresholds(y_true, scores)
    flags = apply_per_class(scores, thresholds)
    for column, threshold in enumerate(thresholds):
        assert threshold.f1 == pytest.approx(brute_force(y_true[:, column], scores[:, column]))
        assert f1(y_true[:, column], flags[:, column]) == pytest.approx(threshold.f1)


def test_top_k_flags_exactly_k_breaking_ties_by_position():
    flags = top_k(np.array([0.5, 0.9, 0.5, 0.5, 0.1]), 3)
    assert flags.tolist() == [True, True, True, False, False]
    assert top_k(np.array([0.2, 0.1]), 10).sum() == 2


def test_rate_rule_reproduces_the_optimum_and_scales_with_expected_positives():
    rng = np.random.default_rng(2)
    p = rng.beta(1, 40, 20_000)
    y_true = rng.random(p.size) < p
    rule = fit_rate_rule(y_true, p)
    best = best_threshold(y_true, p)
    assert rule.count(p) == best.predicted_positives
    assert f1(y_true, rule.apply(p)) == pytest.approx(best.f1, abs=2e-3)
    assert fit_rate_rule(pd.Series(y_true), pd.Series(p)) == rule  # columns of a frame work as well
    # Half the expected incidents: half the flags.
    assert RateRule(rule.flags_per_expected).count(p / 2) == pytest.approx(best.predicted_positives / 2, abs=1)


def test_expected_f1_count_maximises_the_plug_in_expected_f1():
    rng = np.random.default_rng(3)
    p = rng.beta(1, 20, 500)
    ordered = np.sort(p)[::-1]
    expected = [2 * ordered[:k].sum() / (k + p.sum()) for k in range(1, len(p) + 1)]
    assert expected_f1_count(p) == int(np.argmax(expected)) + 1


def test_plot_writes_a_png(tmp_path):
    rng = np.random.default_rng(4)
    y_true = rng.random(1000) < 0.1
    path = plot_f1(y_true, rng.random(1000) + y_true, tmp_path / "f1.png", marks={"chosen": 0.8})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_accuracy_threshold_is_the_brute_force_optimum():
    from common.thresholds import best_accuracy_threshold
    rng = np.random.default_rng(11)
    y = rng.random(300) < 0.4
    scores = np.round(y * 0.3 + rng.random(300), 2)  # ties on purpose
    threshold, accuracy = best_accuracy_threshold(y, scores)
    brute = max(np.mean((scores >= t) == y) for t in list(np.unique(scores)) + [np.inf])
    assert accuracy == pytest.approx(brute) and np.mean((scores >= threshold) == y) == pytest.approx(brute)


def test_macro_f1_threshold_beats_the_half_cut():
    from sklearn.metrics import f1_score
    from common.thresholds import best_macro_f1_threshold
    rng = np.random.default_rng(12)
    y = rng.random(500) < 0.15
    scores = np.clip(y * 0.25 + rng.random(500) * 0.5, 0, 1)
    threshold, macro = best_macro_f1_threshold(y, scores)
    assert macro == pytest.approx(f1_score(y, scores >= threshold, average="macro"))
    assert macro >= f1_score(y, scores >= 0.5, average="macro")


def test_temperature_calibration_lowers_log_loss_of_overconfident_probabilities():
    from sklearn.metrics import log_loss
    from common.thresholds import calibrate, fit_temperature
    rng = np.random.default_rng(13)
    truth = rng.random(2000)
    y = (rng.random(2000) < truth).astype(int)
    overconfident = 1 / (1 + np.exp(-3 * np.log(truth / (1 - truth))))
    temperature = fit_temperature(y, overconfident)
    assert temperature == pytest.approx(3.0, rel=0.2)
    assert log_loss(y, calibrate(overconfident, temperature)) < log_loss(y, overconfident)
    classes = rng.integers(0, 3, 1000)
    sharp = np.full((1000, 3), 0.01) + np.eye(3)[np.where(rng.random(1000) < 0.7, classes, (classes + 1) % 3)] * 0.97
    calibrated = calibrate(sharp, fit_temperature(classes, sharp))
    assert np.allclose(calibrated.sum(axis=1), 1) and log_loss(classes, calibrated) < log_loss(classes, sharp)
