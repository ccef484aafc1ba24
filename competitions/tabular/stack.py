"""The level above the families: how their out-of-fold predictions become one.

Two combiners, each fitted on out-of-fold predictions and scored in a nested CV (for
fold k fitted on the other folds' out-of-fold rows, then applied to fold k's):
- the blend (model.py): non-negative weights summing to one, the simplest stack;
- the stack: a ridge regression on the families' predictions for numbers, a logistic
  regression on their logits for classes (per label for several labels), free to weigh a
  family negatively or shift and sharpen the pool.
`choose` keeps the stack only when its nested score beats the blend's. The out-of-fold
predictions themselves come from fold models that saw the other folds' rows, as in every
stack of this kind: the level-2 CV is nested, the level-1 predictions it learns from are
the usual out-of-fold ones.
"""
from __future__ import annotations

import numpy as np

from common import thresholds
from common.metrics import Metric
from competitions.tabular import model as M

STACK_ALPHAS = np.logspace(-3, 3, 13)
STACK_C = 1.0  # logistic level-2: a handful of inputs, mild shrinkage towards the equal pool


class Blend:
    kind = "blend"

    def __init__(self, task: str, metric: Metric, names: list[str]):
        self.task, self.metric, self.names = task, metric, list(names)

    def fit(self, predictions: list[np.ndarray], y: np.ndarray) -> "Blend":
        self.weights = M.blend_weights(self.task, predictions, y, M.blend_loss(self.task, self.metric),
                                       not M.ranked(self.task, self.metric))
        return self

    def apply(self, predictions: list[np.ndarray]) -> np.ndarray:
        return M.blend(self.task, self.weights, predictions)

    def used(self) -> list[str]:
        return [name for name, weight in zip(self.names, self.weights) if weight > 0]

    def words(self) -> str:
        return "blend weights: " + ", ".join(f"{n}={w:.3f}" for n, w in zip(self.names, self.weights))

    def described(self) -> dict:
        return {name: round(float(weight), 6) for name, weight in zip(self.names, self.weights)}


class Stack:
    kind = "stack"

    def __init__(self, task: str, metric: Metric, names: list[str], seed: int = 0):
        self.task, self.metric, self.names, self.seed = task, metric, list(names), seed

    def _inputs(self, predictions: list[np.ndarray], label: int | None = None) -> np.ndarray:
        if self.task == "regression":
            return np.column_stack(predictions)
        if label is not None:
            return np.column_stack([thresholds.logits(p[:, label]) for p in predictions])
        return np.column_stack([thresholds.logits(p) for p in predictions])

    def _logistic(self):
        from sklearn.linear_model import LogisticRegression
        return LogisticRegression(C=STACK_C, max_iter=2000, random_state=self.seed)

    def fit(self, predictions: list[np.ndarray], y: np.ndarray) -> "Stack":
        if self.task == "regression":
            from sklearn.linear_model import RidgeCV
            self.models_ = [RidgeCV(alphas=STACK_ALPHAS).fit(self._inputs(predictions), y)]
            self.range_ = (float(np.min(y)), float(np.max(y)))
        elif self.task == "multilabel":
            self.models_ = [self._logistic().fit(self._inputs(predictions, j), y[:, j]) for j in range(y.shape[1])]
        else:
            self.models_ = [self._logistic().fit(self._inputs(predictions), y)]
            self.classes_ = predictions[0].shape[1] if self.task == "multiclass" else 2
        return self

    def apply(self, predictions: list[np.ndarray]) -> np.ndarray:
        if self.task == "regression":
            return np.clip(self.models_[0].predict(self._inputs(predictions)), *self.range_)
        if self.task == "multilabel":
            return np.column_stack([m.predict_proba(self._inputs(predictions, j))[:, 1] for j, m in enumerate(self.models_)])
        model = self.models_[0]
        seen = model.predict_proba(self._inputs(predictions))
        if self.task == "binary":
            return seen[:, list(model.classes_).index(1)] if 1 in model.classes_ else np.zeros(len(seen))
        full = np.full((len(seen), self.classes_), 1e-6)
        full[:, np.asarray(model.classes_, dtype=int)] = seen
        return full / full.sum(axis=1, keepdims=True)

    def used(self) -> list[str]:
        return list(self.names)

    def words(self) -> str:
        kind = "ridge on the predictions" if self.task == "regression" else "logistic regression on the logits"
        return f"stack: a {kind} of {', '.join(self.names)}"

    def described(self) -> dict:
        """Each family's coefficients (for several classes: on each class's logit, flattened)."""
        coefficients = [np.ravel(model.coef_) for model in self.models_]
        width = len(coefficients[0]) // len(self.names)
        return {name: [round(float(c[i * width + k]), 6) for c in coefficients for k in range(width)]
                for i, name in enumerate(self.names)}


def make(kind: str, task: str, metric: Metric, names: list[str], seed: int):
    return Stack(task, metric, names, seed) if kind == "stack" else Blend(task, metric, names)


def nested(oof: dict, y: np.ndarray, fold_of: np.ndarray, task: str, metric: Metric, kind: str, seed: int = 0):
    """Each fold's predictions with the combiner and the decision fitted on the other folds
    only: the CV score of what the submission will do. Returns (decided, combined)."""
    names = list(oof)
    decided = combined = None
    for fold in np.unique(fold_of):
        inside, outside = fold_of == fold, fold_of != fold
        combiner = make(kind, task, metric, names, seed).fit([oof[n][outside] for n in names], y[outside])
        decision = M.fit_decision(task, metric, y[outside], combiner.apply([oof[n][outside] for n in names]))
        pooled = combiner.apply([oof[n][inside] for n in names])
        applied = decision.apply(pooled)
        if decided is None:
            decided = np.zeros((len(y),) + applied.shape[1:], dtype=applied.dtype)
            combined = np.zeros((len(y),) + pooled.shape[1:])
        decided[inside], combined[inside] = applied, pooled
    return decided, combined
