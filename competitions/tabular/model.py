"""K-fold out-of-fold CV of CatBoost (native categoricals) and a linear model (one-hot,
scaled numbers, TF-IDF text), a blend fitted on their out-of-fold predictions, and the
decision that turns blended predictions into what the metric scores.

Predictions travel in one representation per task: regression a vector (on the log1p
scale when the metric is RMSLE), binary the probability of the second class, multiclass
one column per class, multilabel one probability column per label.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from common import thresholds
from common.metrics import Metric

if TYPE_CHECKING:
    from competitions.tabular import data as D
    from competitions.tabular import features as F

log = logging.getLogger("compete")

# CatBoost's cost on 2 cores, estimated once on House Prices (1,065 rows, 34 numeric and
# 45 categorical columns: 77 ms a round at load average 14, so ~11 ms on idle cores):
# seconds per round per row and column, a
# categorical column counting as CATEGORICAL_COST numeric ones (its target statistics).
# The run is sized to its time budget from the data's shape alone, so the same data and
# budget give the same plan (and bytes) on any machine.
SECONDS_PER_CELL_ITERATION = 3.5e-8
CATEGORICAL_COST = 6
SECONDS_PER_ITERATION = 2e-3  # fixed overhead of one boosting round (tree build, evaluation)
STOPPING_SHARE = 0.15  # of a fold's training rows, held aside for CatBoost's early stopping
# Rounds of the final model on every row, per round the folds stopped at: it learns from
# 1 / ((1 - 1/K) (1 - STOPPING_SHARE)) ~ 1.5x the rows at K=5; a little more, not 1.5x more.
REFIT_ROUNDS = 1.2


@dataclass(frozen=True)
class Plan:
    folds: int
    iterations: int
    learning_rate: float
    early_stopping: int
    depth: int = 6
    linear: bool = True


def plan(rows: int, numeric: int, categorical: int, task: str, outputs: int, budget: float, fast: bool,
         folds: int | None) -> Plan:
    """Folds and CatBoost's size for the time budget (seconds for the whole fit)."""
    folds = folds or (3 if fast else 5)
    models_per_fold = outputs if task == "multilabel" else 1
    cells = rows * (numeric + CATEGORICAL_COST * categorical)
    per_iteration = cells * SECONDS_PER_CELL_ITERATION * (outputs if task == "multiclass" else 1) + SECONDS_PER_ITERATION
    # K folds and the final model on every row (about 1.5 folds' worth of rows).
    affordable = int(0.7 * budget / ((folds + 1.5) * models_per_fold * per_iteration))
    ceiling = 300 if fast else 2000
    iterations = int(np.clip(affordable, 100, ceiling))
    # Fewer rounds need larger steps to reach the same fit; early stopping ends the rest.
    learning_rate = float(np.clip(0.06 * np.sqrt(2000 / iterations), 0.06, 0.3))
    return Plan(folds, iterations, round(learning_rate, 4), max(50, iterations // 10))


def splitter(task: str, y, folds: int, seed: int):
    if task in ("binary", "multiclass"):
        counts = np.bincount(np.asarray(y, dtype=int))
        if counts.min() >= folds:
            return StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    return KFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)))


class CatBoostModel:
    """CatBoost with the categorical columns native; early stopping on the fold's held-out rows."""

    name = "catboost"

    def __init__(self, task: str, columns: list[str], categorical: list[str], plan: Plan, seed: int, loss: str | None = None):
        self.task, self.columns, self.categorical, self.plan, self.seed, self.loss = task, columns, categorical, plan, seed, loss

    def _one(self, X, y, X_valid, y_valid, loss, rounds: int | None = None, weight=None, weight_valid=None):
        from catboost import CatBoostClassifier, CatBoostRegressor, Pool
        kind = CatBoostRegressor if self.task == "regression" else CatBoostClassifier
        model = kind(iterations=rounds or self.plan.iterations, learning_rate=self.plan.learning_rate or None,
                     depth=self.plan.depth, loss_function=loss, random_seed=self.seed, verbose=False,
                     allow_writing_files=False, thread_count=-1,
                     early_stopping_rounds=self.plan.early_stopping if X_valid is not None else None,
                     # no combinations of categories: 2.7x faster on House Prices, and the
                     # trees still split on each one (competitions/house_prices/model.py agrees)
                     max_ctr_complexity=1)
        train = Pool(X[self.columns], y, cat_features=self.categorical, weight=weight)
        valid = Pool(X_valid[self.columns], y_valid, cat_features=self.categorical, weight=weight_valid) \
            if X_valid is not None else None
        model.fit(train, eval_set=valid, use_best_model=valid is not None)
        return model

    def fit(self, X, y, sample_weight=None):
        """Early stopping watches a share of the training rows, never the fold's held-out
        rows: stopping where those score best would make the out-of-fold predictions (and
        the blend and calibration fitted on them) look better than the test will.
        `sample_weight`: each row's weight (a check-split file), for both shares."""
        from sklearn.model_selection import train_test_split
        stratify = None
        if self.task in ("binary", "multiclass") and np.bincount(np.asarray(y, dtype=int)).min() >= 2:
            stratify = y
        fit_rows, stop_rows = train_test_split(np.arange(len(X)), test_size=STOPPING_SHARE, random_state=self.seed,
                                               stratify=stratify)
        X_fit, X_stop = X.iloc[fit_rows], X.iloc[stop_rows]
        weights = {} if sample_weight is None else {"weight": np.asarray(sample_weight)[fit_rows],
                                                    "weight_valid": np.asarray(sample_weight)[stop_rows]}
        if self.task == "multilabel":
            self.models_ = [self._one(X_fit, y[fit_rows, j], X_stop, y[stop_rows, j], "Logloss", **weights)
                            for j in range(y.shape[1])]
        else:
            default = {"regression": "RMSE", "binary": "Logloss", "multiclass": "MultiClass"}[self.task]
            self.models_ = [self._one(X_fit, y[fit_rows], X_stop, y[stop_rows], self.loss or default, **weights)]
        self.best_iterations_ = [int(m.get_best_iteration() or self.plan.iterations) for m in self.models_]
        return self

    def refit(self, X, y, folds: list["CatBoostModel"], sample_weight=None) -> "CatBoostModel":
        """The final model on every row, with no rows held aside: as many rounds as the
        folds stopped at on average, plus a share for the larger training set."""
        rounds = np.mean([fold.best_iterations_ for fold in folds], axis=0) * REFIT_ROUNDS
        final = CatBoostModel(self.task, self.columns, self.categorical, self.plan, self.seed, self.loss)
        if self.task == "multilabel":
            final.models_ = [final._one(X, y[:, j], None, None, "Logloss", max(1, int(r)), weight=sample_weight)
                             for j, r in enumerate(rounds)]
        else:
            default = {"regression": "RMSE", "binary": "Logloss", "multiclass": "MultiClass"}[self.task]
            final.models_ = [final._one(X, y, None, None, self.loss or default, max(1, int(rounds[0])), weight=sample_weight)]
        final.best_iterations_ = [int(r) for r in rounds]
        return final

    def summary(self) -> str:
        return f"best iteration {', '.join(map(str, self.best_iterations_))} of {self.plan.iterations}"

    def predict(self, X) -> np.ndarray:
        X = X[self.columns]
        if self.task == "regression":
            return self.models_[0].predict(X)
        if self.task == "multilabel":
            return np.column_stack([m.predict_proba(X)[:, 1] for m in self.models_])
        probabilities = self.models_[0].predict_proba(X)
        return probabilities[:, 1] if self.task == "binary" else probabilities


class LinearModel:
    """Ridge or logistic regression on imputed quantile-scaled numbers, one-hot categories
    and each text column's TF-IDF: a different family from the trees, so it blends well."""

    name = "linear"

    def __init__(self, task: str, numeric: list[str], categorical: list[str], text: list[str], seed: int):
        self.task, self.numeric, self.categorical, self.text, self.seed = task, numeric, categorical, text, seed

    def _pipeline(self, rows: int):
        from sklearn.compose import ColumnTransformer
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression, RidgeCV
        from sklearn.multioutput import MultiOutputClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, QuantileTransformer

        parts = []
        if self.numeric:
            parts.append(("numeric", make_pipeline(
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                QuantileTransformer(n_quantiles=min(1000, max(10, rows)), output_distribution="normal",
                                    random_state=self.seed)), self.numeric))
        if self.categorical:
            parts.append(("categorical", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=2), self.categorical))
        for column in self.text:
            parts.append((f"text_{column}", TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=20_000,
                                                             sublinear_tf=True), column))
        columns = ColumnTransformer(parts, sparse_threshold=1.0)
        if self.task == "regression":
            estimator = RidgeCV(alphas=np.logspace(-2, 3, 11))
        else:
            estimator = LogisticRegression(C=0.5, max_iter=3000, random_state=self.seed)
            if self.task == "multilabel":
                estimator = MultiOutputClassifier(estimator)
        return make_pipeline(columns, estimator)

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        X = X[self.numeric + self.categorical + self.text].copy()
        for column in self.text:
            X[column] = X[column].fillna("").astype(str)
        return X

    def fit(self, X, y, sample_weight=None):
        pipeline = self._pipeline(len(X))
        # a row weight reaches the pipeline's last step, the estimator (scikit-learn's step__param routing)
        weights = {} if sample_weight is None else {f"{pipeline.steps[-1][0]}__sample_weight": np.asarray(sample_weight)}
        self.model_ = pipeline.fit(self._frame(X), y, **weights)
        # A linear model extrapolates without bound (a house of twice the largest area
        # priced at twice the largest price); trees never leave the range they saw.
        self.range_ = (float(np.min(y)), float(np.max(y))) if self.task == "regression" else None
        return self

    def refit(self, X, y, folds: list["LinearModel"], sample_weight=None) -> "LinearModel":
        return LinearModel(self.task, self.numeric, self.categorical, self.text, self.seed).fit(X, y, sample_weight)

    def summary(self) -> str:
        alpha = getattr(self.model_[-1], "alpha_", None)  # RidgeCV's choice; logistic regression has none
        return f"alpha {alpha:g}" if alpha is not None else ""

    def predict(self, X) -> np.ndarray:
        X = self._frame(X)
        if self.task == "regression":
            return np.clip(self.model_.predict(X), *self.range_)
        probabilities = self.model_.predict_proba(X)
        if self.task == "multilabel":
            return np.column_stack([p[:, 1] for p in probabilities])
        return probabilities[:, 1] if self.task == "binary" else probabilities


BLEND_STEP = 0.05  # of the weight grid searched when the metric scores an order (AUC)


def ranked(task: str, metric: Metric) -> bool:
    """Whether the metric scores only the order of one score per row or label (AUC): the
    blend is then chosen by the metric itself. Measured on a synthetic jigsaw layout, log
    loss gave all the weight to the better-calibrated NB-SVM while plain TF-IDF ranked
    better on every label (out-of-fold AUC 0.955 vs 0.916 on the rarest)."""
    return metric.output == "score" and task in ("binary", "multilabel")


def blend_loss(task: str, metric: Metric):
    """What the blend weights minimise on out-of-fold predictions: log loss for classes
    (smooth, and what calibrated probabilities need), minus the metric when it scores an
    order (`ranked`), the metric's own error for numbers."""
    if ranked(task, metric):
        return lambda y, p: -float(metric(y, p))
    if task == "regression":
        if metric.name == "mae":
            return lambda y, p: float(np.mean(np.abs(p - y)))
        return lambda y, p: float(np.sqrt(np.mean((p - y) ** 2)))

    def log_loss(y, p):
        p = np.clip(p, 1e-15, 1 - 1e-15)
        if task == "multiclass":
            return float(-np.mean(np.log(p[np.arange(len(y)), y.astype(int)])))
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return log_loss


def blend(task: str, weights, predictions: list[np.ndarray]) -> np.ndarray:
    """Numbers: the weighted mean. Probabilities: the weighted mean of the families'
    logits (a log-linear pool) through the sigmoid or softmax, which keeps the sharp
    family's certainty where a plain mean of probabilities would dilute it; how sure the
    result should be is the calibration's business (`fit_decision`)."""
    if task == "regression":
        return sum(w * p for w, p in zip(weights, predictions))
    logits = sum(w * thresholds.logits(p) for w, p in zip(weights, predictions))
    if task == "multiclass":
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-logits))


def blend_weights(task: str, predictions: list[np.ndarray], y: np.ndarray, loss, smooth: bool = True) -> np.ndarray:
    """Non-negative weights summing to one that minimise `loss` of the blend; a loss with
    no gradient (`smooth` False: an order metric) is searched on a grid of the simplex."""
    count = len(predictions)
    if count == 1:
        return np.ones(1)
    if not smooth and count <= 3:
        import itertools
        steps = int(round(1 / BLEND_STEP))
        candidates = [np.array([*head, steps - sum(head)]) / steps
                      for head in itertools.product(range(steps + 1), repeat=count - 1) if sum(head) <= steps]
        losses = [loss(y, blend(task, weights, predictions)) for weights in candidates]
        return candidates[int(np.argmin(losses))]  # the first best: ties keep the earlier (deterministic)
    if not smooth:
        loss = blend_loss(task, Metric("logloss", None, greater_is_better=False, output="probability"))
    from scipy.optimize import minimize

    def objective(weights):
        return loss(y, blend(task, weights, predictions))
    start = np.full(count, 1.0 / count)
    result = minimize(objective, start, method="SLSQP", bounds=[(0.0, 1.0)] * count,
                      constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0},), options={"ftol": 1e-10})
    weights = np.clip(result.x if result.success else start, 0.0, None)
    return weights / weights.sum() if weights.sum() > 0 else start


@dataclass
class Decision:
    """How blended predictions become submission values, fitted on labelled rows."""

    kind: str                 # "identity", "temperature", "threshold", "argmax", "per_class"
    temperature: float = 1.0
    threshold: float = 0.5
    per_class: list = field(default_factory=list)

    def words(self) -> str:
        """The decision as a log line says it."""
        if self.kind == "temperature":
            return f"probabilities calibrated by temperature {self.temperature:.3f}"
        if self.kind == "threshold":
            return f"the positive class where the blended probability is at least {self.threshold:.3f}"
        if self.kind == "argmax":
            return "the most probable class"
        if self.kind == "per_class":
            shown = ", ".join(f"{threshold:.3f}" for threshold in self.per_class[:6])
            return f"each label where its probability is at least its own threshold ({shown}{', ...' if len(self.per_class) > 6 else ''})"
        return "the blended predictions as they are"

    def apply(self, predictions: np.ndarray) -> np.ndarray:
        if self.kind == "temperature":
            return thresholds.calibrate(predictions, self.temperature)
        if self.kind == "threshold":
            return (predictions >= self.threshold).astype(int)
        if self.kind == "argmax":
            return np.argmax(predictions, axis=1)
        if self.kind == "per_class":
            return (predictions >= np.asarray(self.per_class)[None, :]).astype(int)
        return predictions


def fit_decision(task: str, metric: Metric, y: np.ndarray, predictions: np.ndarray) -> Decision:
    """Labels for label metrics (an OOF threshold for a binary or per-label decision),
    temperature-calibrated probabilities for log loss, the raw prediction otherwise."""
    if metric.output == "probability":
        if task == "multilabel":
            return Decision("identity")  # independent labels: blended probabilities, clipped
        return Decision("temperature", temperature=thresholds.fit_temperature(y, predictions))
    if metric.output != "label":
        return Decision("identity")
    if task == "multiclass":
        return Decision("argmax")
    if task == "multilabel":
        if metric.name == "accuracy":
            return Decision("per_class", per_class=[thresholds.best_accuracy_threshold(y[:, j], predictions[:, j])[0]
                                                    for j in range(y.shape[1])])
        return Decision("per_class", per_class=[t.threshold for t in thresholds.per_class_thresholds(y, predictions)])
    if metric.name == "f1":
        return Decision("threshold", threshold=thresholds.best_threshold(y, predictions).threshold)
    if metric.name == "f1_macro":
        return Decision("threshold", threshold=thresholds.best_macro_f1_threshold(y, predictions)[0])
    return Decision("threshold", threshold=thresholds.best_accuracy_threshold(y, predictions)[0])


@dataclass
class Ensemble:
    """Each family's final model (trained on every row), their blend weights and the decision."""

    models: dict                 # name -> the family's final model
    weights: dict                # name -> blend weight
    decision: Decision
    task: str = "regression"

    def blended(self, X: pd.DataFrame) -> np.ndarray:
        names = [name for name, weight in self.weights.items() if weight > 0]
        return blend(self.task, [self.weights[name] for name in names], [self.models[name].predict(X) for name in names])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.decision.apply(self.blended(X))


def cross_validate(X: pd.DataFrame, y: np.ndarray, families: dict, task: str, folds: int, seed: int, progress=None,
                   weights: np.ndarray | None = None):
    """Out-of-fold predictions of every family, the fold of each row, the fitted fold
    models and the seconds each family took. `weights`: each row's, passed to every fit."""
    split = list(splitter(task, y, folds, seed))
    fold_of = np.zeros(len(X), dtype=int)
    oof, models, seconds = {}, {name: [] for name in families}, {name: 0.0 for name in families}
    for fold, (train_index, valid_index) in enumerate(split):
        fold_of[valid_index] = fold
        for name, make in families.items():
            started = time.perf_counter()
            model = make().fit(X.iloc[train_index], y[train_index],
                               **({} if weights is None else {"sample_weight": weights[train_index]}))
            predicted = model.predict(X.iloc[valid_index])
            if name not in oof:
                oof[name] = np.zeros((len(X),) + predicted.shape[1:])
            oof[name][valid_index] = predicted
            models[name].append(model)
            seconds[name] += time.perf_counter() - started
            log.info("fold %d %-8s %.1fs %s", fold + 1, name, time.perf_counter() - started, model.summary())
            if progress:
                progress()
    return oof, fold_of, models, seconds


def honest_predictions(oof: dict, y: np.ndarray, fold_of: np.ndarray, task: str, metric: Metric) -> np.ndarray:
    """Each fold's final predictions with the blend weights and the decision fitted on
    the other folds only: the CV score of what the submission will do, not of a rule
    fitted on the rows it is scored on."""
    names = list(oof)
    loss, smooth = blend_loss(task, metric), not ranked(task, metric)
    final = None
    for fold in np.unique(fold_of):
        inside, outside = fold_of == fold, fold_of != fold
        weights = blend_weights(task, [oof[n][outside] for n in names], y[outside], loss, smooth)
        decision = fit_decision(task, metric, y[outside], blend(task, weights, [oof[n][outside] for n in names]))
        applied = decision.apply(blend(task, weights, [oof[n][inside] for n in names]))
        if final is None:
            final = np.zeros((len(y),) + applied.shape[1:], dtype=applied.dtype)
        final[inside] = applied
    return final


@dataclass
class TabularModel:
    """What a run saves (model.pkl) and inference loads: the ensemble, the features fitted
    on the run's cells, the target and the metric it was fitted to score."""

    ensemble: Ensemble
    features: F.Features
    target: D.Target
    metric: Metric
    log_target: bool              # trained on log1p(y) for RMSLE
    tree_columns: list[str]
