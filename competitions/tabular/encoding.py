"""Out-of-fold target encoding of high-cardinality categoricals, for the families that
have no native categoricals (LightGBM and XGBoost past a few categories, the linear model).

A column with many categories becomes the smoothed mean target of its category. Fitted on
a fold's training rows only (the family's `fit` sees nothing else), and inside those rows
cross-fitted: each training row is encoded by a mapping learned on the other inner folds,
so a tree never meets its own row's label in a feature (a pure-noise id column would
otherwise look like a perfect predictor). Rows to predict are encoded by the mapping of
all the training rows. scikit-learn's TargetEncoder does exactly this (`fit_transform`
cross-fits, `transform` does not); this module only chooses the columns and lays the
result out as frame columns.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

ENCODE_ABOVE = 30  # distinct values (train + test cells) above which a categorical is target-encoded
INNER_FOLDS = 5


def high_cardinality(frame: pd.DataFrame, categorical: list[str], above: int) -> list[str]:
    """The categorical columns with more than `above` distinct values: read from cells
    alone (train + test, no labels), so every fold encodes the same columns."""
    return [column for column in categorical if frame[column].nunique(dropna=False) > above]


class TargetEncoding:
    """`columns` replaced by their out-of-fold mean target (one column per class for
    several classes, per label for several labels)."""

    def __init__(self, columns: list[str], task: str, seed: int):
        self.columns, self.task, self.seed = columns, task, seed

    def _encoders(self, y: np.ndarray):
        from sklearn.preprocessing import TargetEncoder

        def make(target_type):
            import inspect
            if inspect.signature(TargetEncoder).parameters["shuffle"].default != "deprecated":  # before 1.9
                return TargetEncoder(target_type=target_type, smooth="auto", cv=INNER_FOLDS, shuffle=True,
                                     random_state=self.seed)
            # 1.9 on: the same seeded, shuffled inner folds as a splitter (stratified for classes, as before)
            from sklearn.model_selection import KFold, StratifiedKFold
            splitter = StratifiedKFold if target_type in ("binary", "multiclass") else KFold
            return TargetEncoder(target_type=target_type, smooth="auto",
                                 cv=splitter(INNER_FOLDS, shuffle=True, random_state=self.seed))
        if self.task == "multilabel":
            return [(make("binary"), y[:, j]) for j in range(y.shape[1])]
        target_type = {"regression": "continuous", "binary": "binary", "multiclass": "multiclass"}[self.task]
        return [(make(target_type), y)]

    def _names(self, width: int, part: int) -> list[str]:
        per_column = width // len(self.columns)
        suffix = [""] if per_column == 1 else [f"_{k}" for k in range(per_column)]
        return [f"{column}__target{'' if part == 0 else part}{end}" for column in self.columns for end in suffix]

    def _frame(self, X: pd.DataFrame, matrices: list[np.ndarray]) -> pd.DataFrame:
        parts = [pd.DataFrame(matrix, index=X.index, columns=self._names(matrix.shape[1], part))
                 for part, matrix in enumerate(matrices)]
        return pd.concat([X.drop(columns=self.columns), *parts], axis=1)

    def fit_transform(self, X: pd.DataFrame, y: np.ndarray) -> pd.DataFrame:
        if not self.columns:
            return X
        cells = X[self.columns].astype(str)
        self.encoders_ = []
        matrices = []
        for encoder, target in self._encoders(np.asarray(y)):
            matrices.append(encoder.fit_transform(cells, target))
            self.encoders_.append(encoder)
        return self._frame(X, matrices)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        if not self.columns:
            return X
        cells = X[self.columns].astype(str)
        return self._frame(X, [encoder.transform(cells) for encoder in self.encoders_])
