"""The generic table's preparation: what `fit` reads off the data before any model trains.

The column kinds and whether free text dominates them (text.py), the families the
`models` option and the budget choose (families.py, model.plan), the features fitted on
train + test cells, the target as the models learn it (class indices; log1p for RMSLE)
and as the metric scores it, the categoricals target-encoded out of fold (encoding.py),
the row weights of a check-split file, and the text families' TF-IDF vocabularies.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from common import io
from competitions.tabular import data as D
from competitions.tabular import encoding as E
from competitions.tabular import families as families_of
from competitions.tabular import features as F
from competitions.tabular import model as M
from competitions.tabular import text as T
from competitions.tabular import transformer as TR

log = logging.getLogger("compete")


@dataclass
class Prepared:
    columns: F.Columns
    layout: T.TextLayout | None          # how free text dominates the columns; None: a plain table
    families: list[str]                  # the families to cross-validate, in the plan's order
    features: F.Features                 # fitted on train + test cells
    X: pd.DataFrame                      # the training rows' tree features
    frame: pd.DataFrame                  # X beside the raw text columns: what every family's fit reads
    y: np.ndarray                        # the target as the models learn it
    log_target: bool                     # y is log1p of the target (RMSLE)
    truth: np.ndarray                    # the target as the metric scores it
    outputs: int                         # classes of a multi-class target, else target columns
    plan: M.Plan
    encoded: list[str]                   # categoricals target-encoded out of fold
    vectors: T.TextVectors | None        # the text families' vocabularies; None without them
    row_weights: np.ndarray | None
    transformer: TR.Plan | None = None   # the fine-tune's plan (transformer.py); None without it


def prepare(data: D.TabularData, options, name: str) -> Prepared:
    target, metric = data.target, data.metric
    columns = F.describe(data.train, data.test, data.features)
    layout = T.recognise(data.train, data.test, columns.kinds, data.train_source.name, data.layout.test.name)
    asked = families_of.chosen(options.models, layout, options.backbone)
    features = F.Features(columns, seed=options.seed).fit(data.train, data.test)
    X = features.trees(data.train)
    y, log_target = target_values(data)
    refuse_constant_labels(data, y)
    outputs = len(target.classes) if target.task == "multiclass" else len(target.columns)
    categorical = len(columns.of("categorical"))
    plan = M.plan(len(X), X.shape[1] - categorical, categorical, target.task, outputs, options.time_budget,
                  options.fast, options.folds or None, tuple(asked) if asked else None, options.bags or 0,
                  options.final == "refit", bins(X, columns.of("categorical")))
    families = list(plan.families)
    log.info("%s: layout %s -> models %s", name, layout.describe() if layout else
             "table (no free-text column dominates)", ", ".join(families))
    if options.iterations:
        plan = dataclasses.replace(plan, iterations=options.iterations, early_stopping=max(50, options.iterations // 10))
    plan = dataclasses.replace(plan, learning_rate=options.learning_rate or plan.learning_rate, depth=options.depth,
                               leaves=options.leaves or plan.leaves)
    encoded = E.high_cardinality(pd.concat([data.train[columns.of("categorical")], data.test[columns.of("categorical")]]),
                                 columns.of("categorical"), options.encode_above)
    readers = [family for family in families if family in M.TARGET_ENCODED]
    if encoded and readers:
        log.info("target-encoded out of fold (for %s): %s", ", ".join(readers), ", ".join(encoded))
    frame = pd.concat([X, data.train[columns.of("text")]], axis=1)
    vectors = None
    if any(family in T.FAMILIES for family in families):
        vectors = text_vectors(data, options, columns, features, frame)
    transformer = TR.plan(options, target.task, outputs, columns.of("text"), data.train, data.test, y, plan.folds) \
        if TR.FAMILY in families else None
    return Prepared(columns, layout, families, features, X, frame, y, log_target, truth(data), outputs, plan, encoded,
                    vectors, row_weights(data, options, families), transformer)


def bins(X: pd.DataFrame, categorical: list[str]) -> int:
    """The numeric columns' distinct values, each up to model.MAX_BINS, summed: what a boosting
    round's split search costs on small data (model.round_seconds)."""
    numeric = X.drop(columns=[c for c in categorical if c in X.columns])
    return int(numeric.nunique().clip(upper=M.MAX_BINS).sum())


def text_vectors(data: D.TabularData, options, columns: F.Columns, features: F.Features,
                 frame: pd.DataFrame) -> T.TextVectors:
    """The text families' vocabularies, fitted on train + test cells (no labels) once, so
    the folds and families share them; the training rows' matrix kept for the folds."""
    if data.target.task == "regression":
        raise io.InputError(f"models={options.models!r}: the text families classify; {data.target.columns[0]} is a "
                            f"regression target (use catboost, linear)")
    vectors = T.TextVectors(columns.of("text"), columns.of("categorical"), columns.of("numeric"))
    vectors.fit(pd.concat([frame, pd.concat([features.trees(data.test), data.test[columns.of("text")]], axis=1)],
                          ignore_index=True))
    vectors.remember(frame)
    log.info("text features: %d TF-IDF word and character n-grams, %d other columns", vectors.text_width,
             len(vectors.categorical) + len(vectors.numeric))
    return vectors


def target_values(data: D.TabularData) -> tuple[np.ndarray, bool]:
    """The target as the models learn it, and whether that is log1p of it: class indices
    in the target's class order, a 0/1 matrix of labels, numbers (log1p of them when the
    metric scores logs of values >= 0)."""
    target = data.target
    if target.task == "regression":
        y = pd.to_numeric(data.train[target.columns[0]]).to_numpy(dtype=float)
        if data.metric.output == "nonnegative":
            if (y < 0).any():
                raise io.InputError(f"{data.train_source}: {target.columns[0]} holds negative values; "
                                    f"{data.metric.name} needs values >= 0")
            return np.log1p(y), True
        return y, False
    if target.task == "multilabel":
        return data.train[target.columns].apply(pd.to_numeric).to_numpy(dtype=int), False
    index = {value: i for i, value in enumerate(target.classes)}
    return data.train[target.columns[0]].map(index).to_numpy(dtype=int), False


def truth(data: D.TabularData) -> np.ndarray:
    """The target as the metric scores it: the numbers themselves, else as the models learn it."""
    if data.target.task == "regression":
        return pd.to_numeric(data.train[data.target.columns[0]]).to_numpy(dtype=float)
    return target_values(data)[0]


def refuse_constant_labels(data: D.TabularData, y: np.ndarray) -> None:
    """A 0/1 label column with one value teaches nothing (one value of a single target
    is refused when the target is read)."""
    if data.target.task == "multilabel":
        for j, column in enumerate(data.target.columns):
            if len(np.unique(y[:, j])) < 2:
                raise io.InputError(f"{data.train_source}: label column {column!r} holds one value only, "
                                    f"{int(y[0, j])}, in all {len(y)} labelled rows")


def row_weights(data: D.TabularData, options, families: list[str]) -> np.ndarray | None:
    """Each training row's weight from `options.weights` (a check-split file), or None."""
    if options.weights is None:
        return None
    unweighted = [family for family in families or () if family not in M.TABLE_FAMILIES]
    if unweighted:
        raise io.InputError(f"weights={options.weights}: the {', '.join(unweighted)} family takes no row weights; "
                            f"use models=catboost,lightgbm,xgboost,linear")
    if data.id_column not in data.train.columns:
        raise io.InputError(f"weights={options.weights}: {data.train_source.name} has no {data.id_column} column "
                            f"to match the weights' ids with")
    from common.adversarial import read_weights
    return read_weights(options.weights, data.train[data.id_column])
