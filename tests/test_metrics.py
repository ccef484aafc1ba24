import numpy as np
import pytest
from sklearn.metrics import f1_score, log_loss, mean_squared_error

from common import metrics


def test_rmsle_is_rmse_of_log_prices():
    y_true = np.array([100_000.0, 200_000.0, 350_000.0])
    y_pred = np.array([110_000.0, 190_000.0, 300_000.0])
    expected = np.sqrt(mean_squared_error(np.log(y_true), np.log(y_pred)))
    assert metrics.rmsle(y_true, y_pred) == pytest.approx(expected, rel=1e-12)
    # Hand-computed: log ratios 0.0953, -0.0513, -0.1542
    assert metrics.RMSLE(y_true, y_pred) == pytest.approx(0.10875, abs=1e-5)
    assert not metrics.RMSLE.greater_is_better and metrics.RMSLE.better(0.1, 0.2)


def test_rmsle_refuses_non_positive_values():
    with pytest.raises(ValueError):
        metrics.rmsle([1.0, 2.0], [1.0, 0.0])


def test_f1_matches_sklearn_and_handles_empty_cases():
    rng = np.random.default_rng(0)
    y_true = rng.random(1000) < 0.05
    y_pred = rng.random(1000) < 0.1
    assert metrics.f1(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred))
    assert metrics.f1(np.zeros(5), np.zeros(5)) == 0.0       # all zeros scores 0
    assert metrics.f1([1, 0, 1, 0], [1, 0, 0, 1]) == pytest.approx(0.5)
    assert metrics.F1.greater_is_better


def test_multiclass_log_loss_normalises_rows_and_clips():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=200)
    raw = rng.random((200, 4)) * 3  # rows do not sum to one
    normalised = raw / raw.sum(axis=1, keepdims=True)
    assert metrics.multiclass_log_loss(labels, raw) == pytest.approx(log_loss(labels, normalised, labels=range(4)), rel=1e-9)
    one_hot = np.eye(4)[labels]
    assert metrics.multiclass_log_loss(one_hot, raw) == pytest.approx(metrics.multiclass_log_loss(labels, raw))
    # A confident wrong answer costs -log(1e-15) (after renormalisation), not infinity.
    assert metrics.multiclass_log_loss([0], [[0.0, 1.0]]) == pytest.approx(-np.log(1e-15 / (1 + 1e-15)), rel=1e-6)
    # The uniform guess over 40 classes is ln 40.
    assert metrics.multiclass_log_loss(np.arange(40), np.ones((40, 40))) == pytest.approx(np.log(40))


def test_mean_binary_log_loss_averages_every_cell():
    y_true = np.array([[1, 0, 0], [0, 1, 1]])
    y_pred = np.array([[0.9, 0.2, 0.1], [0.3, 0.6, 1.0]])
    cells = [-np.log(0.9), -np.log(0.8), -np.log(0.9), -np.log(0.7), -np.log(0.6), -np.log(1 - 1e-15)]
    assert metrics.mean_binary_log_loss(y_true, y_pred) == pytest.approx(np.mean(cells))
    # Equal-sized columns: the mean over cells is the mean of sklearn's per-column losses.
    clipped = np.clip(y_pred, 0.001, 0.999)
    per_column = [log_loss(y_true[:, j], clipped[:, j], labels=[0, 1]) for j in range(3)]
    assert metrics.mean_binary_log_loss(y_true, clipped) == pytest.approx(np.mean(per_column))
