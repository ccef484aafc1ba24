import numpy as np
import pytest
from sklearn.metrics import f1_score, log_loss, mean_squared_error

from common import metrics


def test_rmse_of_logs_is_rmse_of_log_prices():
    y_true = np.array([100_000.0, 200_000.0, 350_000.0])
    y_pred = np.array([110_000.0, 190_000.0, 300_000.0])
    expected = np.sqrt(mean_squared_error(np.log(y_true), np.log(y_pred)))
    assert metrics.rmse_of_logs(y_true, y_pred) == pytest.approx(expected, rel=1e-12)
    # Hand-computed: log ratios 0.0953, -0.0513, -0.1542
    assert metrics.RMSE_OF_LOGS(y_true, y_pred) == pytest.approx(0.10875, abs=1e-5)
    assert not metrics.RMSE_OF_LOGS.greater_is_better and metrics.RMSE_OF_LOGS.better(0.1, 0.2)


def test_rmse_of_logs_refuses_non_positive_values():
    with pytest.raises(ValueError):
        metrics.rmse_of_logs([1.0, 2.0], [1.0, 0.0])


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


# The tabular metrics, each against scikit-learn on the same arrays.
from sklearn import metrics as sk  # noqa: E402


def _binary(seed=2, rows=500):
    rng = np.random.default_rng(seed)
    y_true = (rng.random(rows) < 0.3).astype(int)
    scores = np.clip(0.3 * y_true + rng.random(rows) * 0.7, 0, 1)
    return y_true, scores


def test_accuracy_matches_sklearn_on_labels_and_rows_of_labels():
    rng = np.random.default_rng(3)
    labels = np.array(["cat", "dog", "eel"])[rng.integers(0, 3, 300)]
    guesses = np.where(rng.random(300) < 0.6, labels, "dog")
    assert metrics.ACCURACY(labels, guesses) == pytest.approx(sk.accuracy_score(labels, guesses))
    matrix_true, matrix_pred = rng.integers(0, 2, (50, 3)), rng.integers(0, 2, (50, 3))
    assert metrics.accuracy(matrix_true, matrix_pred) == pytest.approx(sk.accuracy_score(matrix_true, matrix_pred))
    assert metrics.ACCURACY.greater_is_better and metrics.ACCURACY.output == "label"


def test_roc_auc_matches_sklearn_binary_multiclass_and_multilabel():
    y_true, scores = _binary()
    assert metrics.ROC_AUC(y_true, scores) == pytest.approx(sk.roc_auc_score(y_true, scores))
    rng = np.random.default_rng(4)
    classes = rng.integers(0, 3, 400)
    probabilities = rng.dirichlet(np.ones(3), 400) + np.eye(3)[classes] * 0.3
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    assert metrics.roc_auc(classes, probabilities) == pytest.approx(
        sk.roc_auc_score(classes, probabilities, multi_class="ovr", average="macro"))
    labels = rng.integers(0, 2, (400, 4))
    scores4 = labels * 0.2 + rng.random((400, 4))
    assert metrics.roc_auc(labels, scores4) == pytest.approx(np.mean([sk.roc_auc_score(labels[:, j], scores4[:, j]) for j in range(4)]))


def test_binary_log_loss_matches_sklearn_and_clips():
    y_true, scores = _binary()
    assert metrics.BINARY_LOG_LOSS(y_true, scores) == pytest.approx(sk.log_loss(y_true, np.clip(scores, 1e-15, 1 - 1e-15)))
    assert metrics.binary_log_loss([1], [0.0]) == pytest.approx(-np.log(1e-15))
    assert not metrics.BINARY_LOG_LOSS.greater_is_better and metrics.BINARY_LOG_LOSS.output == "probability"


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(5)
    y_true = rng.gamma(2.0, 50.0, 300)
    y_pred = np.abs(y_true + rng.normal(0, 20, 300))
    assert metrics.RMSE(y_true, y_pred) == pytest.approx(np.sqrt(sk.mean_squared_error(y_true, y_pred)))
    assert metrics.MAE(y_true, y_pred) == pytest.approx(sk.mean_absolute_error(y_true, y_pred))
    assert metrics.ROOT_MEAN_SQUARED_LOG_ERROR(y_true, y_pred) == pytest.approx(sk.root_mean_squared_log_error(y_true, y_pred))
    with pytest.raises(ValueError):
        metrics.root_mean_squared_log_error([1.0], [-0.5])


def test_f1_binary_and_macro_match_sklearn():
    y_true, scores = _binary()
    assert metrics.F1(y_true, scores > 0.5) == pytest.approx(sk.f1_score(y_true, scores > 0.5))
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 4, 300)
    guesses = np.where(rng.random(300) < 0.5, labels, 0)
    assert metrics.F1_MACRO(labels, guesses) == pytest.approx(sk.f1_score(labels, guesses, average="macro"))
    matrix_true, matrix_pred = rng.integers(0, 2, (80, 3)), rng.integers(0, 2, (80, 3))
    assert metrics.f1_macro(matrix_true, matrix_pred) == pytest.approx(sk.f1_score(matrix_true, matrix_pred, average="macro"))


@pytest.mark.parametrize("spelling, name", [
    ("LogLoss", "logloss"), ("log_loss", "logloss"), ("Log Loss", "logloss"), ("RMSE", "rmse"),
    ("RootMeanSquaredError", "rmse"), ("MeanAbsoluteError", "mae"), ("CategorizationAccuracy", "accuracy"),
    ("AUC", "auc"), ("roc_auc", "auc"), ("Area Under ROC Curve", "auc"), ("RMSLE", "rmsle"), ("F1Score", "f1"),
    ("f1_macro", "f1_macro"), ("MacroF1", "f1_macro")])
def test_platform_spellings_are_aliases(spelling, name):
    assert metrics.canonical(spelling) == name


def test_log_loss_follows_the_task_and_unknown_names_list_the_known():
    assert metrics.resolve("logloss", "binary") is metrics.BINARY_LOG_LOSS
    assert metrics.resolve("LogLoss", "multiclass") is metrics.MULTICLASS_LOG_LOSS
    assert metrics.resolve("log_loss", "multilabel") is metrics.MEAN_BINARY_LOG_LOSS
    assert metrics.resolve("RMSLE", "regression") is metrics.ROOT_MEAN_SQUARED_LOG_ERROR
    with pytest.raises(ValueError, match="known: accuracy, auc, logloss"):
        metrics.canonical("kappa")
