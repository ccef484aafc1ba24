"""`compete check-split`: adversarial validation, can a model tell the test rows from the training rows?

A classifier (CatBoost, categoricals native) learns "is this row from test?" on the
competition's own features, out of fold, so every row's probability comes from a model
that never saw it. An AUC near 0.5 means the test looks like the training data and the CV
can be trusted for it; well above, the features it leans on are the ones that give the
test away, and the training rows it rates most test-like are the ones a CV should weigh
most (`--weights`: p / (1 - p), the density ratio of test to train, mean 1). A run reads
that file back with `read_weights` (a competition's `weights` option) and weights its
training rows by it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import io, plots
from common.competition import Competition

log = logging.getLogger("compete")

FOLDS = 5
MOST = 20        # test-like training rows printed


@dataclass
class SplitCheck:
    auc: float
    features: pd.DataFrame     # feature, importance (share of the classifier's), best first
    rows: pd.DataFrame         # id, p_test, weight: every training row, most test-like first
    table: Path
    plot: Path
    weights: Path | None


def check_split(competition: Competition, data_dir: Path, out: Path, seed: int = 0, weights: Path | None = None,
                iterations: int = 150) -> SplitCheck:
    data = competition.load(Path(data_dir))
    frames = competition.adversarial_frames(data)
    if frames is None:
        raise io.InputError(f"{competition.name}: its test rows have no features to compare with the training rows' "
                            f"(check-split reads tables; this competition's data is not one)")
    train, test = frames
    id_column = train.columns[0]
    features = [c for c in train.columns[1:] if c in test.columns]
    both = pd.concat([train[features], test[features]], ignore_index=True)
    is_test = np.r_[np.zeros(len(train), int), np.ones(len(test), int)]
    probability, importance = out_of_fold(both, is_test, seed, iterations)
    from sklearn.metrics import roc_auc_score
    auc = float(roc_auc_score(is_test, probability))
    ranked = pd.DataFrame({"feature": features, "importance": importance / max(importance.sum(), 1e-12)}) \
        .sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
    p_train = probability[: len(train)]
    # p/(1-p) scaled by the class sizes is the density ratio test/train; mean 1 over the training rows
    ratio = np.clip(p_train, 1e-6, 1 - 1e-6) / np.clip(1 - p_train, 1e-6, None) * len(train) / len(test)
    rows = pd.DataFrame({id_column: train[id_column].to_numpy(), "p_test": p_train, "weight": ratio / ratio.mean()}) \
        .sort_values("p_test", ascending=False, kind="stable").reset_index(drop=True)
    out = Path(out)
    table = io.write_csv(rows, out / "test_like_rows.csv", float_format="%.6g")
    io.write_csv(ranked, out / "features.csv", float_format="%.6g")
    plot = plot_split(probability, is_test, auc, out / "check_split.png", competition.name)
    written = io.write_csv(rows[[id_column, "weight"]], Path(weights), float_format="%.6g") if weights else None
    return SplitCheck(auc, ranked, rows, table, plot, written)


def out_of_fold(frame: pd.DataFrame, is_test: np.ndarray, seed: int, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's probability of being a test row from a model trained on the other folds,
    and the feature importances averaged over the folds."""
    from catboost import CatBoostClassifier
    from sklearn.model_selection import StratifiedKFold
    categorical = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    frame = frame.copy()
    for column in categorical:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), "Missing").astype(str)
    probability = np.zeros(len(frame))
    importance = np.zeros(frame.shape[1])
    for train_index, valid_index in StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(frame, is_test):
        model = CatBoostClassifier(iterations=iterations, learning_rate=0.15, depth=4, random_seed=seed, verbose=False,
                                   allow_writing_files=False, thread_count=-1, cat_features=categorical)
        model.fit(frame.iloc[train_index], is_test[train_index])
        probability[valid_index] = model.predict_proba(frame.iloc[valid_index])[:, 1]
        importance += model.get_feature_importance()
    return probability, importance / FOLDS


def plot_split(probability: np.ndarray, is_test: np.ndarray, auc: float, path: Path, name: str) -> Path:
    """How test-like each row looks, training rows against test rows: apart, the split leaks."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axis = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0, 1, 41)
    axis.hist(probability[is_test == 0], bins=bins, alpha=0.6, label="training rows", density=True)
    axis.hist(probability[is_test == 1], bins=bins, alpha=0.6, label="test rows", density=True)
    axis.set(xlabel="out-of-fold probability of being a test row", ylabel="density",
             title=f"{name}: adversarial validation, AUC {auc:.3f}")
    axis.legend()
    plots.save(figure, path)
    return Path(path)


def read_weights(path: Path | str, ids: pd.Series, option: str = "weights") -> np.ndarray:
    """Each training row's weight, in the order of `ids`, from a file `check-split --weights`
    wrote (the id column first, then `weight`). Every training id once and no other, each
    weight a number >= 0, not all 0: else one line naming the file and the id."""
    source = Path(path)
    if not source.is_file():
        raise io.InputError(f"{option}={path}: no such file; write one with `compete check-split COMP --data DIR "
                            f"--weights {path}`")
    frame = io.read_csv(source, dtype=str, keep_default_na=False)
    if len(frame.columns) < 2 or "weight" not in frame.columns[1:]:
        raise io.InputError(f"{source}: expected an id column then 'weight' (as check-split --weights writes), "
                            f"found {', '.join(map(str, frame.columns[:4]))}")
    id_column = frame.columns[0]
    given = frame[id_column].astype(str).str.strip()
    twice = given.duplicated()
    if twice.any():
        raise io.InputError(f"{source}: row {int(np.flatnonzero(twice)[0]) + 2}: {id_column} {given[twice].iloc[0]!r} "
                            f"is listed twice")
    wanted = pd.Series(ids).astype(str).str.strip().reset_index(drop=True)
    unknown = ~given.isin(set(wanted))
    if unknown.any():
        raise io.InputError(f"{source}: row {int(np.flatnonzero(unknown)[0]) + 2}: {id_column} {given[unknown].iloc[0]!r} "
                            f"is not a training row of this data (weights from another data set?)")
    missing = ~wanted.isin(set(given))
    if missing.any():
        raise io.InputError(f"{source}: no weight for training row {id_column} {wanted[missing].iloc[0]!r} "
                            f"({int(missing.sum())} training rows have none)")
    values = pd.to_numeric(frame["weight"], errors="coerce")
    bad = ~np.isfinite(values.to_numpy(dtype=float)) | (values.to_numpy(dtype=float) < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise io.InputError(f"{source}: row {row + 2}: {id_column} {given.iloc[row]!r}: weight {frame['weight'].iloc[row]!r} "
                            f"is not a number >= 0")
    weights = values.set_axis(given).loc[wanted].to_numpy(dtype=float)
    if weights.sum() <= 0:
        raise io.InputError(f"{source}: every weight is 0; nothing would be trained on")
    return weights
