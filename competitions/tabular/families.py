"""The model families the generic table cross-validates: the one place a family is
registered. A family is a name in `KNOWN` and a maker in `makers`: a function of no
arguments returning a fresh model with fit(X, y[, sample_weight]), predict(X),
refit(X, y, fold_models) and summary() (model.py's and text.py's classes are the examples).

The `models` option names them; auto is the text families when free text dominates the
columns (text.py), with the transformer (transformer.py) when `backbone` names a model,
else the table families the budget affords (model.plan).
"""
from __future__ import annotations

from typing import Callable

from common import io
from competitions.tabular import model as M
from competitions.tabular import text as T
from competitions.tabular import transformer as TR

KNOWN = (*M.TABLE_FAMILIES, *T.FAMILIES, TR.FAMILY)


def chosen(models: str, text_layout: T.TextLayout | None, backbone: str | None = None) -> list[str] | None:
    """The families the `models` option names; None: the plan picks them from the data's
    shape. A transformer joins auto's text families when `backbone` names one."""
    families = [name.strip() for name in models.split(",") if name.strip()]
    if families == ["auto"]:
        return [*T.FAMILIES, *([TR.FAMILY] if TR.joins(backbone) else [])] if text_layout else None
    unknown = [name for name in families if name not in KNOWN]
    if unknown or families == []:
        raise io.InputError(f"models={models!r}: known families are auto, {', '.join(M.TABLE_FAMILIES)}, "
                            f"{', '.join(T.FAMILIES)}, {TR.FAMILY}")
    return families


def makers(prepared, task: str, metric, seed: int) -> dict[str, Callable[[], object]]:
    """A maker for each of `prepared.families`, in their order."""
    X, columns, plan, encoded, outputs = prepared.X, prepared.columns, prepared.plan, prepared.encoded, prepared.outputs
    numeric = [c for c in X.columns if c not in columns.of("categorical")]
    loss = {"mae": "MAE"}.get(metric.name) if task == "regression" else None
    every = {
        "catboost": lambda: M.CatBoostModel(task, list(X.columns), columns.of("categorical"), plan, seed, loss),
        "lightgbm": lambda: M.LightGBMModel(task, list(X.columns), columns.of("categorical"), encoded, plan, seed, outputs, loss),
        "xgboost": lambda: M.XGBoostModel(task, list(X.columns), columns.of("categorical"), encoded, plan, seed, outputs, loss),
        "extratrees": lambda: M.ExtraTreesModel(task, list(X.columns), columns.of("categorical"), encoded, plan, seed,
                                                outputs),
        "svm": lambda: M.SupportVectorModel(task, list(X.columns), columns.of("categorical"), encoded, plan, seed, outputs),
        "knn": lambda: M.NeighboursModel(task, list(X.columns), columns.of("categorical"), encoded, plan, seed, outputs),
        "linear": lambda: M.LinearModel(task, numeric, columns.of("categorical"), columns.of("text"), seed, encoded,
                                        plan.tune_linear),
        "spline": lambda: M.SplineModel(task, numeric, columns.of("categorical"), columns.of("text"), seed, encoded),
        "tfidf": lambda: T.TfidfLogistic(task, prepared.vectors, seed),
        "nbsvm": lambda: T.NaiveBayesLogistic(task, prepared.vectors, seed),
        "transformer": lambda: TR.Transformer(prepared.transformer),
    }
    return {name: every[name] for name in prepared.families}
