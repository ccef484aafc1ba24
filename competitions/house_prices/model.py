"""House Prices models: K-fold CV with out-of-fold predictions, a blend fitted on them,
and final models trained on every row. All models learn log(SalePrice).

Every row is trained on and every row is scored: the test set has its own abnormal and
partial sales, so a CV that leaves the awkward rows out overstates the model. Linear
models are made robust instead (clipped inputs, refitted without the rows they cannot
explain)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.linear_model import ElasticNet, Lasso
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVR

from common import callbacks
from competitions.house_prices import features as house_features

log = logging.getLogger("compete")


class CatBoostNative(BaseEstimator, RegressorMixin):
    """CatBoost on the engineered frame with its categorical columns left native, `bags`
    models seeded apart (seed, seed + 100, ...) and their predictions averaged."""

    def __init__(self, iterations: int = 1000, learning_rate: float = 0.05, depth: int = 6, l2_leaf_reg: float = 3.0,
                 seed: int = 0, bags: int = 1):
        self.iterations = iterations
        self.learning_rate = learning_rate
        self.depth = depth
        self.l2_leaf_reg = l2_leaf_reg
        self.seed = seed
        self.bags = bags

    def fit(self, X: pd.DataFrame, y, sample_weight=None):
        from catboost import CatBoostRegressor
        self.categorical_ = house_features.categorical_columns(X)
        frame = self._frame(X)
        self.models_ = [CatBoostRegressor(
            iterations=self.iterations, learning_rate=self.learning_rate, depth=self.depth,
            l2_leaf_reg=self.l2_leaf_reg, loss_function="RMSE", random_seed=self.seed + 100 * bag, verbose=False,
            allow_writing_files=False, thread_count=-1, cat_features=self.categorical_,
            max_ctr_complexity=1)  # no categorical combinations: 2x faster, no loss here
            .fit(frame, y, sample_weight=sample_weight) for bag in range(self.bags)]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        frame = self._frame(X)
        return np.mean([model.predict(frame) for model in self.models_], axis=0)

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        X = X.copy()
        for column in self.categorical_:
            X[column] = X[column].astype(object).where(X[column].notna(), "Missing").astype(str)
        return X


class CodedTrees(BaseEstimator, RegressorMixin):
    """A gradient-boosted tree library's regressor (LightGBM or XGBoost) on the engineered
    frame, each categorical column as the codes of the levels seen at fit (unseen or
    missing: NaN, which both libraries route down a learned branch).

    Codes rather than the libraries' own categorical splits: LightGBM's and XGBoost's
    category handling differ in what they accept (pandas categories, enable_categorical),
    and ordered codes keep one frame for both and a model that pickles plainly."""

    def __init__(self, library: str = "lightgbm", trees: int = 1000, learning_rate: float = 0.03, leaves: int = 8,
                 column_share: float = 0.3, row_share: float = 0.8, seed: int = 0):
        self.library = library
        self.trees = trees
        self.learning_rate = learning_rate
        self.leaves = leaves
        self.column_share = column_share
        self.row_share = row_share
        self.seed = seed

    def fit(self, X: pd.DataFrame, y, sample_weight=None):
        self.categorical_ = house_features.categorical_columns(X)
        self.levels_ = {column: sorted(X[column].dropna().astype(str).unique()) for column in self.categorical_}
        if self.library == "lightgbm":
            from lightgbm import LGBMRegressor
            # Shallow trees on few rows: the settings of the field's public kernels
            # (num_leaves 4-6, min_data_in_leaf 6, bagging, a fifth of the columns per tree).
            self.model_ = LGBMRegressor(
                n_estimators=self.trees, learning_rate=self.learning_rate, num_leaves=self.leaves,
                min_child_samples=6, subsample=self.row_share, subsample_freq=1, colsample_bytree=self.column_share,
                max_bin=63, random_state=self.seed, n_jobs=2, deterministic=True, force_col_wise=True, verbose=-1)
        else:
            from xgboost import XGBRegressor
            # leaves -> depth: the same number of terminal nodes at most
            self.model_ = XGBRegressor(
                n_estimators=self.trees, learning_rate=self.learning_rate, max_depth=max(1, int(np.log2(self.leaves))),
                subsample=self.row_share, colsample_bytree=self.column_share, min_child_weight=1.5, reg_alpha=0.4,
                reg_lambda=0.9, tree_method="hist", random_state=self.seed, n_jobs=2)
        self.model_.fit(self._frame(X), y, sample_weight=sample_weight)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict(self._frame(X))

    def _frame(self, X: pd.DataFrame) -> np.ndarray:
        X = X.copy()
        for column in self.categorical_:
            codes = {level: float(code) for code, level in enumerate(self.levels_[column])}
            X[column] = X[column].astype(object).where(X[column].notna(), None).map(codes).astype(float)
        return X.to_numpy(dtype=float)


class Trimmed(BaseEstimator, RegressorMixin):
    """Fit, drop the training rows whose residual exceeds `sigmas` robust standard
    deviations (1.4826 x the median absolute deviation), refit on the rest.

    Squared loss lets a few sales that are not market prices (foreclosures, partial
    sales of unfinished houses) pull every coefficient; this finds them inside each
    fold from the data, where a fixed rule would be chosen by looking at all of it.
    Hand-written: scikit-learn's RANSAC resamples at random and HuberRegressor has no
    L1 penalty and is slow here."""

    def __init__(self, estimator=None, sigmas: float = 3.0):
        self.estimator = estimator
        self.sigmas = sigmas

    def fit(self, X, y, sample_weight=None):
        y = np.asarray(y, dtype=float)
        residual = y - clone(self.estimator).fit(X, y, **_routed(self.estimator, sample_weight)).predict(X)
        spread = 1.4826 * np.median(np.abs(residual - np.median(residual)))
        self.inliers_ = np.abs(residual - np.median(residual)) <= self.sigmas * spread
        rows = X.iloc[self.inliers_] if isinstance(X, pd.DataFrame) else X[self.inliers_]
        kept = None if sample_weight is None else np.asarray(sample_weight)[self.inliers_]
        self.model_ = clone(self.estimator).fit(rows, y[self.inliers_], **_routed(self.estimator, kept))
        return self

    def predict(self, X) -> np.ndarray:
        return self.model_.predict(X)


# --- row weights (issue 24: a check-split --weights file); None: every row counts alike ---

def _routed(estimator, sample_weight) -> dict:
    """`sample_weight` as a fit argument `estimator` takes: a pipeline routes it to its last step."""
    if sample_weight is None:
        return {}
    steps = getattr(estimator, "steps", None)
    return {f"{steps[-1][0]}__sample_weight": sample_weight} if steps else {"sample_weight": sample_weight}


def fit_weighted(model, X: pd.DataFrame, y: np.ndarray, weights: np.ndarray | None, rows=None):
    """Fit `model` on `rows` (all when None), each weighted by `weights` when given."""
    if rows is not None:
        X, y, weights = X.iloc[rows], y[rows], None if weights is None else weights[rows]
    return model.fit(X, y) if weights is None else model.fit(X, y, sample_weight=weights)


def candidates(frame: pd.DataFrame, options) -> dict:
    """The models to cross-validate and blend (`options.models`, with the options'
    hyperparameters); linear ones on one-hot features, trimmed. CatBoost trains on every
    row: a tree can learn from one huge partial sale what the next one sells for, where a
    linear model can only extrapolate. (Kernel ridge was dropped: with every row scored its
    blend weight was 0.)

    Measured and not kept (nested all-rows CV, mean of fold seeds 0, 1, 2; these four with one
    CatBoost 0.11777 = 0.11669, 0.11727, 0.11934, with two bagged 0.11742): + LightGBM 0.11787; + kernel ridge, sklearn GBR
    (huber) and LightGBM 0.11804; a ridge stack level instead of the blend 0.11806; linear
    models trimmed at 4 sigmas 0.11777; squares and logs of the size and quality columns
    0.11786; inputs unclipped (winsorize 1.0) w/o outliers 0.1101 for Lasso alone but 0.11909
    in the blend. Down-weighting the two huge partial sales (0.01) in the training folds
    only, fold seed 0: CatBoost 0.11823 -> 0.12166, the blend 0.11669 -> 0.11862 (better
    on the other rows, 0.11118 -> 0.11052, but those two are missed by 1.1 in log price).
    Those two rows hold 9-14% of the squared error: fold seed 2 puts both in one fold, where
    no model has a partial sale of a mansion to learn from and every one misses each by
    1.1-1.3 (CatBoost 1.21, 1.27), so even 0.107 on the other rows leaves that seed at 0.1159."""
    seed = options.seed
    linear = lambda model: Trimmed(make_pipeline(house_features.linear_preprocessor(frame, options.winsorize), model),  # noqa: E731
                                   sigmas=options.trim_sigmas)
    makers = {
        "lasso": lambda: linear(Lasso(alpha=options.lasso_alpha, max_iter=50_000, random_state=seed)),
        "elastic_net": lambda: linear(ElasticNet(alpha=options.elastic_net_alpha, l1_ratio=options.l1_ratio,
                                                 max_iter=50_000, random_state=seed)),
        "svr": lambda: linear(SVR(C=options.svr_c, epsilon=options.svr_epsilon, gamma=options.svr_gamma)),
        "catboost": lambda: CatBoostNative(
            iterations=options.iterations or (400 if options.fast else 2000),
            learning_rate=options.learning_rate or (0.1 if options.fast else 0.04),
            depth=options.depth, l2_leaf_reg=options.l2_leaf_reg, seed=seed,
            bags=options.catboost_bags or (1 if options.fast else 2)),
        **{library: (lambda library=library: CodedTrees(
            library, trees=options.boosted_trees or (300 if options.fast else 2000),
            learning_rate=options.boosted_learning_rate or (0.05 if options.fast else 0.01), leaves=options.leaves,
            column_share=options.column_share, row_share=options.row_share, seed=seed))
           for library in ("lightgbm", "xgboost")},
    }
    wanted = {name.strip() for name in options.models.split(",")}
    return {name: make() for name, make in makers.items() if name in wanted}


@dataclass
class HouseModel:
    models: dict                 # name -> fitted model on all training rows
    weights: dict                # name -> blend weight (non-negative, sum 1)
    feature_columns: list = field(default_factory=list)
    engineered: bool = True      # the features it was trained on (house_features.features)

    def predict_log(self, X: pd.DataFrame) -> np.ndarray:
        X = X[self.feature_columns]
        return sum(weight * self.models[name].predict(X) for name, weight in self.weights.items() if weight > 0)


def blend_weights(oof: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to one that minimise squared error on OOF predictions."""
    weights, _ = nnls(oof, y)
    if weights.sum() == 0:
        weights = np.ones(oof.shape[1])
    return weights / weights.sum()


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def cross_validate(X: pd.DataFrame, y: np.ndarray, models: dict, folds: int, seed: int, progress=None, weights=None):
    """Out-of-fold log predictions for every row and model, each fold's models trained
    on every other row (weighted by `weights` when given)."""
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    oof = np.zeros((len(X), len(models)))
    fold_scores = {name: [] for name in models}
    fold_of = np.zeros(len(X), dtype=int)
    for fold, (train_index, valid_index) in enumerate(splitter.split(X)):
        fold_of[valid_index] = fold
        for column, (name, model) in enumerate(models.items()):
            started = time.perf_counter()
            fitted = fit_weighted(clone(model), X, y, weights, train_index)
            oof[valid_index, column] = fitted.predict(X.iloc[valid_index])
            fold_scores[name].append(rmse(oof[valid_index, column], y[valid_index]))
            log.info("fold %d %-12s rmsle %.5f  (%.1fs)", fold + 1, name, fold_scores[name][-1], time.perf_counter() - started)
            if progress:
                progress()
        # the best model's mean over the folds so far: comparable between runs at the same fold
        callbacks.scored(fold, min(np.mean(scores) for scores in fold_scores.values()))
    return oof, fold_of, fold_scores


def nested_blend(oof: np.ndarray, y: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    """Honest blended OOF predictions: the weights for each fold are fitted on the other folds' OOF."""
    blended = np.zeros(len(y))
    for fold in np.unique(fold_of):
        inside = fold_of == fold
        blended[inside] = oof[inside] @ blend_weights(oof[~inside], y[~inside])
    return blended
