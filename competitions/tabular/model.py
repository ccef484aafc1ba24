"""K-fold out-of-fold CV of CatBoost (native categoricals), LightGBM and XGBoost (few
categories native, many target-encoded out of fold: encoding.py), a linear model
(one-hot, scaled numbers, TF-IDF text) and extremely randomised trees (joining the
combination only when its nested CV gains), each bagged over the folds; a blend or a stack
fitted on their out-of-fold predictions (stack.py), and the decision that turns combined
predictions into what the metric scores.

Predictions travel in one representation per task: regression a vector (on the log1p
scale when the metric is RMSLE), binary the probability of the second class, multiclass
one column per class, multilabel one probability column per label.
"""
from __future__ import annotations

import dataclasses
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

# A boosting round's cost on 2 idle cores, per output (a class of a multi-class target
# counts as OUTPUT_EXPONENT of one): a row term, a bin term and a fixed one. Measured per
# round (the difference of 240 and 40 rounds; bench figures at load 1-6, scaled to idle)
# on random normal columns (1,000 x 64, 5,000 x 20, 300 x 10: 254 bins a column) and on
# digits' 900 x 64 pixels (17 values each, 881 bins in all): each round cost digits ~8x
# less than random columns of its shape, so on small data a round's cost is the split search
# over the columns' bins (B), not the rows. The row term's cost a cell grows from A_SMALL
# to A_LARGE as the data leaves the cache (half way at CACHE_CELLS: NYC flights, 4.4M
# cells, keeps the cost measured on it before). CatBoost's categorical column costs
# CATEGORICAL_COST numeric cells at A_LARGE (its target statistics; House Prices: 1,065 rows,
# 34 numeric and 45 categorical columns, ~11 ms a round idle). The run is sized to its time
# budget from the data alone (shape and distinct values), so the same data and budget give
# the same plan (and bytes) on any machine.
SECONDS_PER_CELL_ITERATION = 3.5e-8     # CatBoost's A_LARGE
CATBOOST_CELL_SMALL = 5e-9              # CatBoost's A_SMALL
CATBOOST_SECONDS_PER_BIN = 4e-7         # B: a column's bin, each round (up to MAX_BINS a column)
CATEGORICAL_COST = 6
SECONDS_PER_ITERATION = 3e-4  # fixed overhead of one boosting round (tree build, evaluation)
CACHE_CELLS = 1_000_000
MAX_BINS = 254                # CatBoost's border_count, LightGBM's max_bin - 1, XGBoost's max_bin - 2
# A class costs this power of one output: CatBoost's and XGBoost's ~0.8 (CatBoost 10 classes
# 5.4-10.6x one output, XGBoost 6-9x), LightGBM grows a tree per class (6.5-12x).
OUTPUT_EXPONENT = {"catboost": 0.8, "lightgbm": 1.0, "xgboost": 0.8}
STOPPING_SHARE = 0.15  # of a fold's training rows, held aside for CatBoost's early stopping
# Rounds of the final model on every row, per round the folds stopped at: it learns from
# 1 / ((1 - 1/K) (1 - STOPPING_SHARE)) ~ 1.5x the rows at K=5; a little more, not 1.5x more.
REFIT_ROUNDS = 1.2


# LightGBM's and XGBoost's cost, taken as the same (histogram trees; one thread below
# THREADED_CELLS); a categorical counts as one numeric column (native with few categories,
# a target-encoded number with many) of MAX_BINS bins.
BOOSTED_SECONDS_PER_CELL_ITERATION = 2e-8   # A_LARGE
BOOSTED_CELL_SMALL = 3e-9                    # A_SMALL
BOOSTED_SECONDS_PER_BIN = 2e-7
BOOSTED_SECONDS_PER_ITERATION = 1.5e-4
BOOSTED = ("catboost", "lightgbm", "xgboost")
TABLE_FAMILIES = ("catboost", "lightgbm", "xgboost", "linear", "extratrees", "svm", "knn", "spline")
# What the automatic choice gives up first when the budget cannot afford every family at
# MINIMUM_ROUNDS: the extremely randomised trees (an extra on small data), XGBoost (the
# closest to LightGBM), then CatBoost (the slowest a round).
DROPPED_FIRST = ("spline", "knn", "svm", "extratrees", "xgboost", "catboost")
# The extremely randomised trees: trees a forest, the fewest rows a leaf, and their cost.
# A family the combination keeps only when its nested CV is better with it, by more than
# OPTIONAL_GAIN of it (combine.py): a family that adds nothing measurable is not kept.
OPTIONAL = ("extratrees", "svm", "knn", "spline")
# The families whose submission model is the mean of their fold models (the others are
# fitted again on every row after the CV), and those reading the out-of-fold target encodings.
BAGGED = (*BOOSTED, "extratrees", "svm", "knn")
TARGET_ENCODED = ("lightgbm", "xgboost", "linear", "extratrees", "svm", "knn", "spline")
# The support vector machine's rows at most (its fit grows with their square) and its cost:
# seconds a row squared x column, idle (SVC with its 5-fold Platt scaling, 6 fits).
SVM_ROWS = 5000
SVM_SECONDS_PER_CELL = 6e-8
# k nearest neighbours: on up to KNN_ROWS rows (a prediction compares a row with every
# training row), k from KNN_KS and the weighting by a KNN_FOLDS-fold inner CV, and the cost
# of the search: seconds a row squared x column, idle (len(KNN_KS) x 2 x KNN_FOLDS fits).
KNN_ROWS = 5000
KNN_KS = (3, 5, 8, 12, 18, 25, 35, 50)
KNN_FOLDS = 5
KNN_SECONDS_PER_CELL = 3e-8
OPTIONAL_GAIN = 1e-3
FOREST_TREES = 300
FOREST_LEAF = 2
FOREST_SECONDS_PER_CELL = 1e-8  # a tree's seconds a row x log2(rows) x column tried, idle (300 trees: 1,000-20,000 rows x 10-64 columns, 6-20 ns at load 6)
MINIMUM_ROUNDS = 300
# On small data the budget affords many CV repeats: each makes every row's out-of-fold
# prediction a mean over one more model that did not see it (the combination's nested CV
# less noisy) and bags K more models for the test.
MAXIMUM_REPEATS = 10
LONGER = 3
# Threads for LightGBM and XGBoost, from the data's size alone (a count read off the machine
# would change the bytes from one machine to the next): one on small data, where a second
# thread's synchronisation costs more than it gives (on 300 rows x 30 columns, 100 rounds,
# 2 busy cores: LightGBM 0.5 s on one thread, 6.5 s on two; XGBoost 1.4 s against 23 s), two
# (the cores the budget is meant for) above.
THREADED_CELLS = 2_000_000
# Seconds a fold fit of any family costs besides its rounds (the model set up, the target
# encoding, the fold's predictions; the linear model's whole fit): on small data these, not
# the rounds, decide how many CV repeats fit in the budget. Wine (140 rows), 60 fits: 2.5 s
# a fit at load 15 on 2 cores, so about 1 s on idle ones.
FIT_SECONDS = 1.0
# The linear model's fit grows with the cells (one-hot, quantiles, the solver): on NYC flights
# (60,000 training rows, 18 columns) 18-22 s a fold at load 16 on 2 cores, ~2 us a cell idle.
LINEAR_SECONDS_PER_CELL = 2e-6
# The logistic model's C, chosen by an inner CV on log loss where the rows are few (each fold
# fit then costs len(LINEAR_CS) x LINEAR_TUNED_FOLDS + 1 fits), else LINEAR_C: on small data
# the fixed C underfits a class boundary the data draws sharply (penguins' out-of-fold log
# loss 0.064 at C 0.5, 0.025 with C chosen (8); wine 0.089 against 0.058). Not with free
# text: its TF-IDF columns make a fit ~20x dearer (the `reviews` bench table, 2,400 rows:
# 13 s against 0.6 s at load 16), and it chose 0.5 there.
LINEAR_C = 0.5
LINEAR_CS = (0.05, 0.2, 0.5, 2.0, 8.0, 32.0)
LINEAR_TUNED_FOLDS = 3
LINEAR_TUNED_ROWS = 5000
# The knots of the ridge's spline scaling (LinearModel._scalings): cubic, so 2 + SPLINE_KNOTS columns a number.
SPLINE_KNOTS = 4
# A numeric column's missing-cell indicator joins the linear model only where at least this
# many training rows miss it: learned from one row, it made the model 0.99 sure that any row
# missing the same cells was that row's class (penguins: one training row with no
# measurements; the hold-out's other such row, of another species, cost 6.3 nats).
MISSING_FLAG_ROWS = 10
# LightGBM's leaves grow with the rows (leaves_for): about a leaf for each LEAF_ROWS rows.
LEAF_ROWS = 2000
MAXIMUM_LEAVES = 127
BUDGET_SHARE = 0.7  # of the budget for the boosted families' rounds; the rest: features, linear, stack


@dataclass(frozen=True)
class Plan:
    folds: int
    iterations: int
    learning_rate: float
    early_stopping: int
    depth: int = 6
    linear: bool = True
    families: tuple = ("catboost", "linear")
    repeats: int = 1              # times the K-fold CV runs, with other splits: K x repeats bagged models
    rounds: int = 1000            # LightGBM's and XGBoost's maximum rounds
    boosted_learning_rate: float = 0.05
    leaves: int = 31              # LightGBM's leaves a tree (XGBoost: depth 6)
    tune_linear: bool = False     # the logistic model's C chosen by an inner CV (`tuned`)
    bins: int = 0                 # the numeric columns' distinct values, each up to MAX_BINS (0: untold)


def plan(rows: int, numeric: int, categorical: int, task: str, outputs: int, budget: float, fast: bool,
         folds: int | None, families: tuple | None = None, repeats: int = 0, refit: bool = False,
         bins: int | None = None) -> Plan:
    """Folds, families, repeats of the CV and each boosted family's rounds for the time
    budget (seconds for the whole fit), from the data's shape alone: the same data and
    budget give the same plan (and bytes) on any machine. `families` None: chosen here,
    every table family when the budget affords each MINIMUM_ROUNDS, else the ones
    DROPPED_FIRST go; `repeats` 0: as many CV repeats (up to MAXIMUM_REPEATS) as the
    budget affords at full rounds: more bagged models on small data, one pass on large."""
    folds = folds or (3 if fast else 5)
    models_per_fold = outputs if task == "multilabel" else 1
    per_iteration = round_seconds(rows, numeric, categorical, task, outputs, bins)
    fits = {name: (folds + (1.5 if refit and name == "catboost" else 0)) * models_per_fold for name in BOOSTED}
    share = BUDGET_SHARE * budget
    ceiling = 300 if fast else 2000
    # the linear model's C (classes) and numbers' scaling by an inner CV on few rows
    tune_linear = not fast and (tuned(rows, task) or (task == "regression" and rows <= LINEAR_TUNED_ROWS))

    # families without rounds; the text families (tfidf, nbsvm, a transformer) cost as the linear model
    unrounded = {name: folds * seconds
                 for name, seconds in unrounded_seconds(rows, numeric, categorical, task, tune_linear).items()}

    def cost(chosen, rounds, times=1):
        return times * sum(fits[name] * per_iteration[name] * rounds + folds * models_per_fold * FIT_SECONDS
                           if name in BOOSTED else unrounded.get(name, unrounded["linear"]) for name in chosen)
    if families is None:
        chosen = [name for name in TABLE_FAMILIES if (name != "svm" or (rows <= SVM_ROWS and task != "multilabel"))
                  and (name != "knn" or (rows <= KNN_ROWS and task != "multilabel"))
                  and (name != "spline" or (rows <= LINEAR_TUNED_ROWS and task == "regression" and numeric > 0))]
        for name in DROPPED_FIRST:
            if name in chosen and cost(chosen, MINIMUM_ROUNDS) > share:
                chosen.remove(name)
        families = tuple(chosen)
    boosted = [name for name in families if name in BOOSTED] or ["catboost"]

    def rounds_for(times: int) -> dict[str, int]:
        # Each boosted family an equal share of the time: its rounds as many as that affords.
        rounds_share = max(share - cost(families, 0, times), 0.2 * share)  # what the fits' fixed costs leave
        return {name: int(rounds_share / len(boosted) / (times * fits[name] * per_iteration[name])) for name in BOOSTED}
    if not repeats:  # as many as leave each boosted family of the plan its ceiling of rounds
        repeats = 1 if fast else max([1] + [r for r in range(1, MAXIMUM_REPEATS + 1)
                                            if min(rounds_for(r)[name] for name in boosted) >= ceiling])
    affordable = rounds_for(repeats)
    # The repeats are sized at `ceiling` rounds; what they leave goes to more rounds, up to
    # LONGER x ceiling: a fit early stopping ends sooner is unchanged, one still learning at
    # the ceiling (digits, 10 classes: CatBoost's and LightGBM's best round 1,996-1,999 of
    # 2,000) goes on.
    longest = ceiling if fast else LONGER * ceiling
    iterations = int(np.clip(affordable["catboost"], 100, longest))
    rounds = int(np.clip(min(affordable["lightgbm"], affordable["xgboost"]), 100, longest))
    # Fewer rounds need larger steps to reach the same fit; early stopping ends the rest.
    learning_rate = float(np.clip(0.06 * np.sqrt(2000 / iterations), 0.06, 0.3))
    boosted_learning_rate = float(np.clip(0.04 * np.sqrt(2000 / rounds), 0.04, 0.3))
    return Plan(folds, iterations, round(learning_rate, 4), max(50, iterations // 10), families=tuple(families),
                repeats=repeats, rounds=rounds, boosted_learning_rate=round(boosted_learning_rate, 4),
                leaves=leaves_for(rows), tune_linear=tune_linear, bins=bins or 0)


def leaves_for(rows: int) -> int:
    """LightGBM's leaves a tree: rows / LEAF_ROWS to the nearest power of 2, less one, from
    31 (its default; up to ~90,000 rows) to MAXIMUM_LEAVES (from ~180,000). Many rows hold interactions a
    31-leaf tree needs many rounds to draw (NYC flights, 196k rows, one fold: log loss 0.4342
    at 31 leaves, still learning at its 969th round, 0.4279 at 127, best round 571, in less
    time); on small data more leaves only overfit sooner."""
    return int(np.clip(2 ** np.round(np.log2(max(rows, 1) / LEAF_ROWS)) - 1, 31, MAXIMUM_LEAVES))


def round_seconds(rows: int, numeric: int, categorical: int, task: str, outputs: int,
                  bins: int | None = None) -> dict[str, float]:
    """The estimated seconds of one boosting round of each boosted family on idle cores.
    `bins`: the numeric columns' distinct values, each up to MAX_BINS, summed (None: MAX_BINS
    each)."""
    classes = outputs if task == "multiclass" else 1
    bins = numeric * MAX_BINS if bins is None else bins
    cells = rows * (numeric + categorical)
    cached = cells / (cells + CACHE_CELLS)   # 0: the data in the cache, 1: far out of it

    def per_cell(small, large):
        return small + (large - small) * cached
    catboost = (rows * numeric * per_cell(CATBOOST_CELL_SMALL, SECONDS_PER_CELL_ITERATION) + bins * CATBOOST_SECONDS_PER_BIN
                + rows * categorical * CATEGORICAL_COST * SECONDS_PER_CELL_ITERATION + SECONDS_PER_ITERATION)
    boosted = (cells * per_cell(BOOSTED_CELL_SMALL, BOOSTED_SECONDS_PER_CELL_ITERATION)
               + (bins + categorical * MAX_BINS) * BOOSTED_SECONDS_PER_BIN + BOOSTED_SECONDS_PER_ITERATION)
    return {"catboost": catboost * classes ** OUTPUT_EXPONENT["catboost"],
            "lightgbm": boosted * classes ** OUTPUT_EXPONENT["lightgbm"],
            "xgboost": boosted * classes ** OUTPUT_EXPONENT["xgboost"]}


def linear_seconds(rows: int, columns: int, tune: bool) -> float:
    """The estimated seconds of one fold fit of the linear model on idle cores."""
    fits = 2 * (len(LINEAR_CS) * LINEAR_TUNED_FOLDS + 1) if tune else 1  # two scalings for classes (a ridge's third, the spline, is cheap)
    return FIT_SECONDS + fits * rows * columns * LINEAR_SECONDS_PER_CELL


def forest_seconds(rows: int, columns: int, task: str) -> float:
    """The estimated seconds of one fold fit of the extremely randomised trees on idle
    cores: each tree sorts nothing (random cut points) but scans each node's rows for every
    column it tries (all for numbers, the square root for classes), ~log2(rows) levels deep."""
    tried = columns if task == "regression" else np.sqrt(columns)
    return FIT_SECONDS + FOREST_TREES * rows * np.log2(max(rows, 2)) * tried * FOREST_SECONDS_PER_CELL


def svm_seconds(rows: int, columns: int) -> float:
    """The estimated seconds of one fold fit of the support vector machine on idle cores."""
    return FIT_SECONDS + rows * rows * columns * SVM_SECONDS_PER_CELL


def neighbours_seconds(rows: int, columns: int) -> float:
    """The estimated seconds of one fold fit of k nearest neighbours (its inner CV's search) on idle cores."""
    return FIT_SECONDS + rows * rows * columns * KNN_SECONDS_PER_CELL


def unrounded_seconds(rows: int, numeric: int, categorical: int, task: str, tune_linear: bool) -> dict[str, float]:
    """The estimated seconds of one fold fit of each table family without rounds, on idle
    cores: what the plan sizes the budget with and the CV's schedule compares against."""
    columns = numeric + categorical
    return {"linear": linear_seconds(rows, columns, tune_linear),
            "extratrees": forest_seconds(rows, columns, task),
            "svm": svm_seconds(rows, columns),
            "knn": neighbours_seconds(rows, columns),
            "spline": linear_seconds(rows, numeric * (SPLINE_KNOTS + 2) + categorical, False)}


def fold_seconds(plan: Plan, rows: int, numeric: int, categorical: int, task: str, outputs: int) -> dict[str, float]:
    """The plan's estimate of one fold fit of each table family in it, on idle cores and at
    its full rounds (early stopping often ends sooner): what the CV's schedule
    (schedule.py) compares the measured seconds with."""
    models_per_fold = outputs if task == "multilabel" else 1
    per_iteration = round_seconds(rows, numeric, categorical, task, outputs, plan.bins or None)
    rounds = {"catboost": plan.iterations, "lightgbm": plan.rounds, "xgboost": plan.rounds}
    unrounded = unrounded_seconds(rows, numeric, categorical, task, plan.tune_linear)
    return {name: models_per_fold * (per_iteration[name] * rounds[name] + FIT_SECONDS) if name in BOOSTED
            else unrounded[name] for name in plan.families if name in TABLE_FAMILIES}


def shrunk(plan: Plan, share: float) -> Plan:
    """`plan` with its boosted families' rounds cut to `share` of them (schedule.py, when
    the machine runs slower than planned), each learning rate grown as model.plan grows
    it for fewer rounds (by the square root), up to 0.3 (or the rate as given, if larger)."""
    if share >= 1:
        return plan

    def faster(rate):
        return max(rate, min(0.3, rate / np.sqrt(share)))
    return dataclasses.replace(plan, iterations=max(20, int(plan.iterations * share)),
                               learning_rate=faster(plan.learning_rate) if plan.learning_rate else plan.learning_rate,
                               rounds=max(20, int(plan.rounds * share)),
                               boosted_learning_rate=faster(plan.boosted_learning_rate))


def splitter(task: str, y, folds: int, seed: int):
    if task in ("binary", "multiclass"):
        counts = np.bincount(np.asarray(y, dtype=int))
        if counts.min() >= folds:
            return StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    return KFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)))


def stopping_split(task: str, y, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows a boosted family fits on and the STOPPING_SHARE it stops early on."""
    from sklearn.model_selection import train_test_split
    stratify = None
    if task in ("binary", "multiclass") and np.bincount(np.asarray(y, dtype=int)).min() >= 2:
        stratify = y
    return train_test_split(np.arange(len(y)), test_size=STOPPING_SHARE, random_state=seed, stratify=stratify)


class FoldBag:
    """A family's final model as its fold models' mean prediction: every row was trained
    on by K-1 of them, and the budget goes to the folds instead of one more fit."""

    def __init__(self, models: list):
        self.models = list(models)
        self.name = self.models[0].name

    def predict(self, X) -> np.ndarray:
        return np.mean([model.predict(X) for model in self.models], axis=0)

    def summary(self) -> str:
        return f"the mean of its {len(self.models)} fold models"


class CatBoostModel:
    """CatBoost with the categorical columns native; early stopping on the fold's held-out rows."""

    name = "catboost"
    deadline = None  # a clock time a fold fit stops growing trees at (schedule.py); None: its rounds decide

    def __init__(self, task: str, columns: list[str], categorical: list[str], plan: Plan, seed: int, loss: str | None = None):
        self.task, self.columns, self.categorical, self.plan, self.seed, self.loss = task, columns, categorical, plan, seed, loss

    def _one(self, X, y, X_valid, y_valid, loss, rounds: int | None = None, weight=None, weight_valid=None,
             deadline=None):
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
        model.fit(train, eval_set=valid, use_best_model=valid is not None,
                  callbacks=[CatBoostStop(deadline)] if deadline is not None else None)
        return model

    def fit(self, X, y, sample_weight=None):
        """Early stopping watches a share of the training rows, never the fold's held-out
        rows: stopping where those score best would make the out-of-fold predictions (and
        the blend and calibration fitted on them) look better than the test will.
        `sample_weight`: each row's weight (a check-split file), for both shares."""
        from competitions.tabular.schedule import Deadline
        fit_rows, stop_rows = stopping_split(self.task, y, self.seed)
        X_fit, X_stop = X.iloc[fit_rows], X.iloc[stop_rows]
        weights = {} if sample_weight is None else {"weight": np.asarray(sample_weight)[fit_rows],
                                                    "weight_valid": np.asarray(sample_weight)[stop_rows]}
        deadline = weights["deadline"] = Deadline(self.deadline)
        if self.task == "multilabel":
            self.models_ = [self._one(X_fit, y[fit_rows, j], X_stop, y[stop_rows, j], "Logloss", **weights)
                            for j in range(y.shape[1])]
        else:
            default = {"regression": "RMSE", "binary": "Logloss", "multiclass": "MultiClass"}[self.task]
            self.models_ = [self._one(X_fit, y[fit_rows], X_stop, y[stop_rows], self.loss or default, **weights)]
        # the best round may be round 0 (a fit its deadline stopped at once): None only means no stopping set
        self.best_iterations_ = [int(self.plan.iterations if m.get_best_iteration() is None else m.get_best_iteration())
                                 for m in self.models_]
        self.cut_ = deadline.rounds / (self.plan.iterations * len(self.models_)) if deadline.stopped else None
        self.rounds_, self.growing_ = deadline.rounds, deadline.growing  # the rounds grown and their seconds
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

    def bag(self, folds: list["CatBoostModel"]) -> FoldBag:
        return FoldBag(folds)

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


def tuned(rows: int, task: str, y=None) -> bool:
    """Whether the logistic model chooses its C by an inner CV (the plan asks it when not
    `fast`): few rows, one label and, given `y`, every class in each inner fold's training
    rows (two rows of it an inner fold)."""
    if task not in ("binary", "multiclass") or rows > LINEAR_TUNED_ROWS:
        return False
    return y is None or np.bincount(np.asarray(y, dtype=int)).min() >= 2 * LINEAR_TUNED_FOLDS


def inner_score(estimator) -> float:
    """An estimator's inner-CV figure at its chosen regularisation, greater better: RidgeCV's
    (minus the leave-one-out squared error), LogisticRegressionCV's (minus the log loss, the
    mean over its folds); 0 for an estimator with none (one candidate then)."""
    if getattr(estimator, "best_score_", None) is not None:
        return float(estimator.best_score_)
    scores = getattr(estimator, "scores_", None)
    if not scores:
        return 0.0
    folds = np.asarray(next(iter(scores.values())) if isinstance(scores, dict) else scores)
    return float(folds.reshape(folds.shape[0], -1).mean(axis=0).max())


class LinearModel:
    """Ridge or logistic regression on imputed quantile-scaled numbers, one-hot categories
    and each text column's TF-IDF: a different family from the trees, so it blends well."""

    name = "linear"

    def __init__(self, task: str, numeric: list[str], categorical: list[str], text: list[str], seed: int,
                 encoded: list[str] | tuple = (), tune: bool = False):
        self.task, self.numeric, self.categorical, self.text, self.seed = task, numeric, categorical, text, seed
        self.encoded = list(encoded)  # categoricals with many categories: target-encoded out of fold, then scaled
        self.tune = tune              # C by an inner CV where `tuned` allows (Plan.tune_linear)

    def _pipeline(self, rows: int, y=None, scaling: str = "quantile"):
        from sklearn.compose import ColumnTransformer
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.impute import MissingIndicator, SimpleImputer
        from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV
        from sklearn.multioutput import MultiOutputClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, QuantileTransformer, SplineTransformer, StandardScaler

        parts = []
        numeric = self.numeric + self.encoded_columns_
        categorical = [column for column in self.categorical if column not in self.encoded]
        if numeric:
            scaler = (StandardScaler() if scaling == "standard" else
                      make_pipeline(StandardScaler(), SplineTransformer(n_knots=SPLINE_KNOTS, extrapolation="linear"))
                      if scaling == "spline" else
                      QuantileTransformer(n_quantiles=min(1000, max(10, rows)), output_distribution="normal",
                                          random_state=self.seed))
            parts.append(("numeric", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), scaler),
                          numeric))
        if self.flagged_:
            parts.append(("missing", MissingIndicator(features="all"), self.flagged_))
        if categorical:
            parts.append(("categorical", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=2), categorical))
        for column in self.text:
            parts.append((f"text_{column}", TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=20_000,
                                                             sublinear_tf=True), column))
        columns = ColumnTransformer(parts, sparse_threshold=1.0)
        if self.task == "regression":
            estimator = RidgeCV(alphas=np.logspace(-2, 3, 11))
        else:
            estimator = LogisticRegression(C=LINEAR_C, max_iter=3000, random_state=self.seed)
            if self.tune and tuned(rows, self.task, y) and not self.text:  # TF-IDF: each fit ~20x a table's
                # shuffled: a file's rows often come sorted by the class
                inner = StratifiedKFold(LINEAR_TUNED_FOLDS, shuffle=True, random_state=self.seed)
                estimator = LogisticRegressionCV(Cs=LINEAR_CS, cv=inner, scoring="neg_log_loss", max_iter=3000,
                                                 random_state=self.seed)
            if self.task == "multilabel":
                estimator = MultiOutputClassifier(estimator)
        return make_pipeline(columns, estimator)

    def _scalings(self, rows: int, y) -> tuple[str, ...]:
        """The numbers' scalings the inner CV chooses between: quantiles to a normal (robust
        to outliers and skew) and, where the model is tuned on few rows without text, the
        plain standardised values too, which keep a linear effect linear (diabetes' ridge,
        5-fold CV RMSE 57.2 on quantiles against 55.6; digits' logistic log loss 0.208
        against 0.133; wine 0.052 against 0.023; breast cancer 0.113 against 0.116)."""
        inner = (self.task == "regression" or tuned(rows, self.task, y)) and self.task != "multilabel"
        return ("quantile", "standard") if self.tune and inner and not self.text and self.numeric_columns_ else ("quantile",)

    def _frame(self, X: pd.DataFrame, y=None) -> pd.DataFrame:
        from competitions.tabular.encoding import TargetEncoding
        X = X[self.numeric + self.categorical + self.text].copy()
        for column in self.text:
            X[column] = X[column].fillna("").astype(str)
        encoded = [column for column in getattr(self, "encoded", []) if column in self.categorical]
        if y is not None:
            self.encoding_ = TargetEncoding(encoded, self.task, self.seed)
            before = set(X.columns)
            X = self.encoding_.fit_transform(X, y)
            self.encoded_columns_ = [column for column in X.columns if column not in before]
            return X
        return self.encoding_.transform(X) if hasattr(self, "encoding_") else X

    def fit(self, X, y, sample_weight=None):
        self.encoded = getattr(self, "encoded", [])
        frame = self._frame(X, np.asarray(y))
        numeric = self.numeric + self.encoded_columns_
        self.numeric_columns_ = numeric
        self.flagged_ = [column for column in numeric if frame[column].isna().sum() >= MISSING_FLAG_ROWS]
        # a row weight reaches the pipeline's last step, the estimator (scikit-learn's step__param routing)
        weights = {} if sample_weight is None else {"__sample_weight": np.asarray(sample_weight)}
        fitted = {}
        for scaling in self._scalings(len(X), y):
            pipeline = self._pipeline(len(X), y, scaling)
            fitted[scaling] = pipeline.fit(frame, y, **{pipeline.steps[-1][0] + k: v for k, v in weights.items()})
        # the scaling whose inner CV (the fold's training rows only) scored better
        self.scaling_ = max(fitted, key=lambda scaling: inner_score(fitted[scaling][-1]))
        self.model_ = fitted[self.scaling_]
        # A linear model extrapolates without bound (a house of twice the largest area
        # priced at twice the largest price); trees never leave the range they saw.
        self.range_ = (float(np.min(y)), float(np.max(y))) if self.task == "regression" else None
        return self

    def refit(self, X, y, folds: list["LinearModel"], sample_weight=None) -> "LinearModel":
        return type(self)(self.task, self.numeric, self.categorical, self.text, self.seed, self.encoded,
                          self.tune).fit(X, y, sample_weight)

    def summary(self) -> str:
        alpha = getattr(self.model_[-1], "alpha_", None)  # RidgeCV's choice
        chosen = getattr(self.model_[-1], "C_", None)     # LogisticRegressionCV's (one per class, all the same)
        scaling = f" ({self.scaling_} numbers)" if getattr(self, "scaling_", "quantile") != "quantile" else ""
        return (f"alpha {alpha:g}" if alpha is not None else f"C {np.ravel(chosen)[0]:g}" if chosen is not None
                else "") + scaling

    def predict(self, X) -> np.ndarray:
        X = self._frame(X)
        if self.task == "regression":
            return np.clip(self.model_.predict(X), *self.range_)
        probabilities = self.model_.predict_proba(X)
        if self.task == "multilabel":
            return np.column_stack([p[:, 1] for p in probabilities])
        return probabilities[:, 1] if self.task == "binary" else probabilities


class SplineModel(LinearModel):
    """The ridge on a cubic spline of each standardised number (SPLINE_KNOTS knots; one-hot
    categories as the linear model's): an additive curve per column, which neither the
    straight ridge nor the trees' steps draw. Diabetes, out of fold: alone 54.45 RMSE against
    the ridge's 54.98, and the combination's nested CV 54.29 -> 54.18 beside the ridge and
    the SVM. Numbers only, on up to LINEAR_TUNED_ROWS rows (model.plan)."""

    name = "spline"

    def _scalings(self, rows: int, y) -> tuple[str, ...]:
        return ("spline",) if self.numeric_columns_ else ("quantile",)


_GPU = None


def gpu() -> bool:
    """Whether a CUDA device is there (asked of torch once, and only when a boosted family
    runs): the boosted families train on it then. Results on a GPU differ from the CPU's."""
    global _GPU
    if _GPU is None:
        try:
            import torch
            _GPU = bool(torch.cuda.is_available())
        except (ImportError, RuntimeError, OSError):  # no torch, or a broken CUDA install: the CPU
            _GPU = False
    return _GPU


class BoostedModel:
    """What LightGBM and XGBoost share: categoricals with few categories native (pandas
    categories fixed on the fold's training rows), many target-encoded out of fold
    (encoding.py), early stopping on a share of the training rows as CatBoost does, one
    model per label for several labels."""

    name = ""
    deadline = None  # a clock time a fold fit stops growing trees at (schedule.py); None: its rounds decide

    def __init__(self, task: str, columns: list[str], categorical: list[str], encoded: list[str], plan: Plan,
                 seed: int, outputs: int, loss: str | None = None):
        self.task, self.columns, self.categorical, self.encoded = task, columns, categorical, encoded
        self.plan, self.seed, self.outputs, self.loss = plan, seed, outputs, loss

    def threads(self, X: pd.DataFrame) -> int:
        return 1 if X.shape[0] * X.shape[1] < THREADED_CELLS else 2

    def _frame(self, X: pd.DataFrame, y=None) -> pd.DataFrame:
        from competitions.tabular.encoding import TargetEncoding
        X = X[self.columns]
        native = [column for column in self.categorical if column not in self.encoded]
        if y is not None:
            self.encoding_ = TargetEncoding(self.encoded, self.task, self.seed)
            X = self.encoding_.fit_transform(X, y)
            self.categories_ = {column: sorted(X[column].astype(str).unique()) for column in native}
        else:
            X = self.encoding_.transform(X)
        X = X.copy()
        for column in native:  # a category the training rows never held is missing
            X[column] = pd.Categorical(X[column].astype(str), categories=self.categories_[column])
        return X

    def fit(self, X, y, sample_weight=None):
        y = np.asarray(y)
        self.best_iterations_ = []
        frame = self._frame(X, y)
        fit_rows, stop_rows = stopping_split(self.task, y, self.seed)
        X_fit, X_stop = frame.iloc[fit_rows], frame.iloc[stop_rows]
        self.weight_ = None if sample_weight is None else np.asarray(sample_weight)[fit_rows]
        from competitions.tabular.schedule import Deadline
        deadline = Deadline(self.deadline)
        if self.task == "multilabel":
            self.models_ = [self._one(X_fit, y[fit_rows, j], X_stop, y[stop_rows, j], "binary", deadline)
                            for j in range(y.shape[1])]
        else:
            self.models_ = [self._one(X_fit, y[fit_rows], X_stop, y[stop_rows], self.task, deadline)]
        self.cut_ = deadline.rounds / (self.plan.rounds * len(self.models_)) if deadline.stopped else None
        self.rounds_, self.growing_ = deadline.rounds, deadline.growing  # the rounds grown and their seconds
        return self

    def refit(self, X, y, folds: list, sample_weight=None) -> FoldBag:
        return FoldBag(folds)

    def bag(self, folds: list) -> FoldBag:
        return FoldBag(folds)

    def summary(self) -> str:
        return f"best iteration {', '.join(map(str, self.best_iterations_))} of {self.plan.rounds}"

    def _probabilities(self, model, X) -> np.ndarray:
        """Every class's column, also for a class the fold's training rows lacked."""
        seen = model.predict_proba(X)
        if self.task != "multiclass" or seen.shape[1] == self.outputs:
            return seen
        full = np.zeros((len(X), self.outputs))
        full[:, np.asarray(model.classes_, dtype=int)] = seen
        return full

    def predict(self, X) -> np.ndarray:
        frame = self._frame(X)
        if self.task == "regression":
            return self.models_[0].predict(frame)
        if self.task == "multilabel":
            return np.column_stack([m.predict_proba(frame)[:, 1] for m in self.models_])
        probabilities = self._probabilities(self.models_[0], frame)
        return probabilities[:, 1] if self.task == "binary" else probabilities


class ExtraTreesModel(BoostedModel):
    """scikit-learn's extremely randomised trees (AutoGluon leans on them for small data):
    grown deep on random splits and averaged, so their errors differ from the boosted
    families' and they can add to a blend; no rounds to size or cut. Categoricals as
    LightGBM reads them (few: the category's code; many: target-encoded out of fold), missing
    cells left for the trees (scikit-learn >= 1.6 sends them down the better side)."""

    name = "extratrees"

    def _codes(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        for column in frame.columns:
            if isinstance(frame[column].dtype, pd.CategoricalDtype):
                frame[column] = frame[column].cat.codes.replace(-1, np.nan).astype(float)
        return frame

    def fit(self, X, y, sample_weight=None):
        from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor
        y = np.asarray(y)
        frame = self._codes(self._frame(X, y))
        kind = ExtraTreesRegressor if self.task == "regression" else ExtraTreesClassifier
        # every column a split for numbers, as AutoGluon's; sqrt(columns) for classes (scikit-learn's default):
        # leaves of at least FOREST_LEAF rows, so a leaf's class shares are not all 0 or 1 (log loss)
        self.model_ = kind(n_estimators=FOREST_TREES, min_samples_leaf=FOREST_LEAF, random_state=self.seed,
                           n_jobs=self.threads(X), max_features=1.0 if self.task == "regression" else "sqrt")
        self.model_.fit(frame, y, sample_weight=sample_weight)
        self.best_iterations_ = [FOREST_TREES]
        return self

    def threads(self, X: pd.DataFrame) -> int:
        return 2  # trees are independent: both cores on any size (the forest's bytes do not depend on it)

    def summary(self) -> str:
        return f"{FOREST_TREES} trees"

    def predict(self, X) -> np.ndarray:
        frame = self._codes(self._frame(X))
        if self.task == "regression":
            return self.model_.predict(frame)
        probabilities = self.model_.predict_proba(frame)
        if self.task == "multilabel":  # one array per label; a label with one value in the fold: one column
            return np.column_stack([self._columns(p, classes, "binary") for p, classes in zip(probabilities, self.model_.classes_)])
        return self._columns(probabilities, self.model_.classes_, self.task)

    def _columns(self, probabilities: np.ndarray, classes, task: str) -> np.ndarray:
        """scikit-learn's predict_proba, over the classes the fold's rows held -> the 1 class's
        column (binary: zeros when the fold had none) or every class's (multi-class: zeros for
        a class the fold lacked)."""
        if task == "binary":
            classes = list(classes)
            return probabilities[:, classes.index(1)] if 1 in classes else np.zeros(len(probabilities))
        full = np.zeros((len(probabilities), self.outputs))
        full[:, np.asarray(classes, dtype=int)] = probabilities
        return full


class DistanceModel(ExtraTreesModel):
    """What the distance-based families (the SVM, k nearest neighbours) share: one target
    only, read on `distances`' columns, predicted as scikit-learn's pipeline gives it."""

    described = "these models"   # how the refusal of several 0/1 labels names the family

    def _fit_frame(self, X, y) -> pd.DataFrame:
        if self.task == "multilabel":
            from common import io
            raise io.InputError(f"models={self.name}: {self.described} fit one target only, not several "
                                f"0/1 labels (use the other families)")
        return self._frame(X, np.asarray(y))

    def predict(self, X) -> np.ndarray:
        frame = as_objects(self._frame(X))
        if self.task == "regression":
            return self.model_.predict(frame)
        return self._columns(self.model_.predict_proba(frame), self.model_.classes_, self.task)


class SupportVectorModel(DistanceModel):
    """A support vector machine with the RBF kernel (scikit-learn's SVC, probabilities by its
    own 5-fold Platt scaling; SVR on the standardised target for numbers) on standardised
    numbers and one-hot categories: a smooth, distance-based fit the trees cannot draw (digits'
    pixels: alone 0.133 log loss, yet the combination's nested CV 0.0625 -> 0.0569). Its cost
    grows with the rows squared: the plan offers it on up to SVM_ROWS rows only."""

    name = "svm"
    described = "support vector machines"

    def fit(self, X, y, sample_weight=None):
        from sklearn.compose import TransformedTargetRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC, SVR
        frame, y = self._fit_frame(X, y), np.asarray(y)
        if self.task == "regression":
            estimator = TransformedTargetRegressor(SVR(), transformer=StandardScaler())
        else:
            estimator = SVC(probability=True, random_state=self.seed)
        self.model_ = make_pipeline(distances(frame), estimator)
        weights = {} if sample_weight is None else {f"{self.model_.steps[-1][0]}__sample_weight": np.asarray(sample_weight)}
        self.model_.fit(as_objects(frame), y, **weights)
        self.best_iterations_ = [0]
        return self

    def summary(self) -> str:
        return "RBF kernel"


def distances(frame: pd.DataFrame):
    """The columns as the distance-based families (the SVM, k nearest neighbours) read them:
    numbers imputed and standardised (each column weighs the same in a distance), categories
    one-hot (native ones; many-valued ones arrive target-encoded, as numbers)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    native = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    numbers = [c for c in frame.columns if c not in native]
    parts = [("numbers", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()),
              numbers)] if numbers else []
    if native:
        parts.append(("categories", OneHotEncoder(handle_unknown="ignore"), native))
    return ColumnTransformer(parts)


def as_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """Pandas categories as plain objects, which scikit-learn's one-hot encoder reads."""
    return frame.astype({c: object for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)})


class NeighboursModel(DistanceModel):
    """k nearest neighbours (scikit-learn's KNeighbors) on the SVM's columns (`distances`):
    a row predicted by the rows most like it, a local average no tree or linear model draws
    (AutoGluon fits two on small data). k and the weighting (uniform, or by inverse
    distance) chosen by an inner CV on the fold's training rows (KNN_FOLDS folds; squared
    error for numbers, log loss for classes). Its cost grows with the rows squared: the
    plan offers it on up to KNN_ROWS rows only."""

    name = "knn"
    described = "k nearest neighbours"

    def fit(self, X, y, sample_weight=None):
        from sklearn.model_selection import GridSearchCV
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
        from sklearn.pipeline import Pipeline
        frame, y = self._fit_frame(X, y), np.asarray(y)
        columns, frame = distances(frame), as_objects(frame)
        regression = self.task == "regression"
        inner = (KFold if regression else StratifiedKFold)(KNN_FOLDS, shuffle=True, random_state=self.seed)
        if not regression and np.bincount(y.astype(int)).min() < KNN_FOLDS:
            inner = KFold(KNN_FOLDS, shuffle=True, random_state=self.seed)
        # k up to what the inner folds' training rows hold; sample weights are not a KNeighbors notion
        ks = [k for k in KNN_KS if k <= len(y) * (KNN_FOLDS - 1) // KNN_FOLDS] or [1]
        estimator = KNeighborsRegressor() if regression else KNeighborsClassifier()
        search = GridSearchCV(Pipeline([("columns", columns), ("neighbours", estimator)]),
                              {"neighbours__n_neighbors": ks, "neighbours__weights": ["uniform", "distance"]},
                              cv=inner, scoring="neg_mean_squared_error" if regression else "neg_log_loss", n_jobs=1)
        search.fit(frame, y)
        self.model_ = search.best_estimator_
        self.chosen_ = (search.best_params_["neighbours__n_neighbors"], search.best_params_["neighbours__weights"])
        self.best_iterations_ = [0]
        return self

    def summary(self) -> str:
        return f"k {self.chosen_[0]}, {self.chosen_[1]} weights"


class CatBoostStop:
    """CatBoost's callback: training ends when the fit's deadline (schedule.Deadline) is due;
    use_best_model keeps the best round so far."""

    def __init__(self, deadline):
        self.deadline = deadline

    def after_iteration(self, info) -> bool:
        return not self.deadline.due()


def lightgbm_stop(deadline, stopping):
    """LightGBM's callback: training ends when the deadline is due, at early stopping's best
    round so far (`stopping`, the early_stopping callback, runs before it)."""
    import lightgbm

    def callback(env):
        if deadline.due() and stopping.best_iter:
            raise lightgbm.callback.EarlyStopException(stopping.best_iter[0], stopping.best_score_list[0])
    callback.order = 40  # after early stopping's 30
    return callback


def xgboost_stop(deadline):
    """XGBoost's callback: training ends when the deadline is due; the early stopping
    callback's best round so far is what predict uses."""
    import xgboost

    class Stop(xgboost.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log) -> bool:
            return deadline.due()
    return Stop()


class LightGBMModel(BoostedModel):
    name = "lightgbm"

    def _one(self, X, y, X_stop, y_stop, task: str, deadline):
        import lightgbm
        settings = dict(n_estimators=self.plan.rounds, learning_rate=self.plan.boosted_learning_rate,
                        num_leaves=self.plan.leaves, min_child_samples=int(np.clip(len(X) // 100, 5, 20)),
                        subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0,
                        random_state=self.seed, verbose=-1, deterministic=True, force_row_wise=True, n_jobs=self.threads(X),
                        max_cat_to_onehot=4, min_data_per_group=20, cat_smooth=10)
        if gpu():
            settings["device_type"] = "gpu"
        if task == "regression":
            model = lightgbm.LGBMRegressor(objective="l1" if self.loss == "MAE" else "l2", **settings)
        else:
            model = lightgbm.LGBMClassifier(**settings)
        import inspect
        # LightGBM 4.7 renamed eval_set (and warns on it); older releases (a platform's image) know only that
        stop = ({"eval_X": (X_stop,), "eval_y": (y_stop,)} if "eval_X" in inspect.signature(model.fit).parameters
                else {"eval_set": [(X_stop, y_stop)]})
        stopping = lightgbm.early_stopping(max(30, self.plan.rounds // 10), verbose=False)
        model.fit(X, y, sample_weight=self.weight_, callbacks=[stopping, lightgbm_stop(deadline, stopping)], **stop)
        self.best_iterations_.append(int(model.best_iteration_ or self.plan.rounds))
        return model


class XGBoostModel(BoostedModel):
    name = "xgboost"

    def _one(self, X, y, X_stop, y_stop, task: str, deadline):
        import xgboost
        settings = dict(n_estimators=self.plan.rounds, learning_rate=self.plan.boosted_learning_rate, max_depth=6,
                        min_child_weight=1.0, subsample=0.8, colsample_bytree=0.8, reg_lambda=1.0,
                        tree_method="hist", enable_categorical=True, max_cat_to_onehot=4,
                        early_stopping_rounds=max(30, self.plan.rounds // 10), random_state=self.seed, n_jobs=self.threads(X),
                        device="cuda" if gpu() else "cpu", callbacks=[xgboost_stop(deadline)])
        if task == "regression":
            model = xgboost.XGBRegressor(objective="reg:absoluteerror" if self.loss == "MAE" else "reg:squarederror",
                                         **settings)
        else:
            model = xgboost.XGBClassifier(**settings)
            present = np.unique(y)
            if task == "multiclass" and len(present) < self.outputs:
                # XGBoost wants the classes 0..n-1: the fold's own, mapped back in `_probabilities`
                model.fit(X, np.searchsorted(present, y), sample_weight=self.weight_,
                          eval_set=[(X_stop, np.searchsorted(present, y_stop))], verbose=False)
                model.classes_ = present
                return self._remember(model.set_params(callbacks=None))
        model.fit(X, y, sample_weight=self.weight_, eval_set=[(X_stop, y_stop)], verbose=False)
        return self._remember(model.set_params(callbacks=None))  # the callback's class is local: not pickled

    def _remember(self, model):
        best = getattr(model, "best_iteration", None)
        # none: early stopping never judged a round (a deadline stopped the first; the callbacks
        # ask in turn and stop at the first that says so): every round grown is kept
        self.best_iterations_.append(int(best + 1 if best is not None else model.get_booster().num_boosted_rounds()))
        return model


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
    stacker: object = None       # stack.Stack when the stack beat the blend in nested CV; None: the blend

    def blended(self, X: pd.DataFrame) -> np.ndarray:
        stacker = getattr(self, "stacker", None)  # absent from runs pickled before the stack
        if stacker is not None:
            return stacker.apply([self.models[name].predict(X) for name in stacker.names])
        names = [name for name, weight in self.weights.items() if weight > 0]
        return blend(self.task, [self.weights[name] for name in names], [self.models[name].predict(X) for name in names])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.decision.apply(self.blended(X))


def cross_validate(X: pd.DataFrame, y: np.ndarray, families: dict, task: str, folds: int, seed: int, progress=None,
                   weights: np.ndarray | None = None, repeats: int = 1, after_fold=None, schedule=None):
    """Out-of-fold predictions of every family, the fold of each row, the fitted fold
    models and the seconds each family took. `weights`: each row's, passed to every fit. With `repeats` the K-fold CV runs again on
    other splits (seed + repeat): each row's prediction is its mean over the repeats (every
    one from a model that did not see the row), K x repeats models bagged per family; the
    fold of a row is its fold in the first split. `after_fold(fold, predictions, done)`,
    when given, hears after each fold of the first split every family's predictions of
    the rows done so far (`done`, a mask): what a tune's pruner judges a trial on.
    `schedule`: a function of the fits to do (schedule.Fit, in order) returning a
    schedule.Schedule that cuts them to the time budget as they run: fewer repeats (a row
    then averages the repeats that reached it), fewer rounds (a model with a `plan`) and a
    deadline for a fit's trees (a model with a `deadline` stops growing them there), a
    family dropped."""
    from competitions.tabular.schedule import Fit
    fold_of = np.zeros(len(X), dtype=int)
    oof, models, seconds = {}, {name: [] for name in families}, {name: 0.0 for name in families}
    first, done, reached = {}, np.zeros(len(X), dtype=bool), {}
    splits = [list(splitter(task, y, folds, seed + repeat)) for repeat in range(repeats)]
    todo = [Fit(repeat, fold, name) for repeat in range(repeats) for fold in range(folds) for name in families]
    timing = schedule(todo) if schedule is not None else None
    while True:
        fit, deadline, share = timing.next() if timing is not None else (todo[0] if todo else None, None, 1.0)
        if fit is None:
            break
        train_index, valid_index = splits[fit.repeat][fit.fold]
        if fit.repeat == 0:
            fold_of[valid_index] = fit.fold
        started = time.perf_counter()
        model = families[fit.family]()
        if hasattr(model, "deadline"):
            model.deadline = deadline
        if share < 1 and hasattr(model, "plan"):
            model.plan = shrunk(model.plan, share)
        model.fit(X.iloc[train_index], y[train_index], **({} if weights is None else {"sample_weight": weights[train_index]}))
        predicted = model.predict(X.iloc[valid_index])
        if fit.family not in oof:
            oof[fit.family] = np.zeros((len(X),) + predicted.shape[1:])
            reached[fit.family] = np.zeros(len(X))
        oof[fit.family][valid_index] += predicted
        reached[fit.family][valid_index] += 1
        if after_fold is not None and fit.repeat == 0:
            first.setdefault(fit.family, np.zeros((len(X),) + predicted.shape[1:]))[valid_index] = predicted
        models[fit.family].append(model)
        took = time.perf_counter() - started
        seconds[fit.family] += took
        grown = getattr(model, "cut_", None)
        log.info("fold %d%s %-8s %.1fs %s%s", fit.fold + 1, f" of repeat {fit.repeat + 1}" if repeats > 1 else "",
                 fit.family, took, model.summary(),
                 f" (stopped at its deadline, {grown:.0%} of its rounds)" if grown is not None else "")
        if timing is not None:
            timing.done(fit, took, getattr(model, "rounds_", 0), getattr(model, "growing_", None))
        else:
            todo.pop(0)
        if progress:
            progress()
        left = timing.todo if timing is not None else todo
        if after_fold is not None and fit.repeat == 0 and not any(f.repeat == 0 and f.fold == fit.fold for f in left):
            done[valid_index] = True
            after_fold(fit.fold, {name: first[name] for name in first if name not in getattr(timing, "dropped", ())},
                       done)
    for name in getattr(timing, "dropped", ()):
        for kept in (oof, models, seconds, reached):
            kept.pop(name, None)
    for name in oof:  # each row's mean over the repeats that reached it (every row: the first)
        oof[name] /= reached[name].reshape((-1,) + (1,) * (oof[name].ndim - 1))
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
