"""Hosting: a leakage audit of a built competition.

For every signal a participant can read without looking at the content - the ids,
the row order of the CSVs, file sizes, durations or dimensions, the format, bytes per
second, tags, timestamps - a cross-validated model tries to predict the label, and
separately whether a file is in train or test. Its accuracy is compared with chance
(always answering the most common value) by a one-sided binomial test, Bonferroni
corrected over every check, and must also beat chance by a margin: a leak is a
signal that predicts clearly better than chance, not noise that happens to.

Generic over media: files are described through common.media by their magic bytes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import io, media

log = logging.getLogger("compete")

ALPHA = 0.001     # family-wise false-alarm rate over all checks
MARGIN = 0.05     # and accuracy must beat chance by at least this much
ID_CHARACTERS = 12
IMAGE_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "I", "F", "I;16")


@dataclass
class Check:
    signal: str
    target: str          # "label" or "side" (train or test)
    accuracy: float
    chance: float
    p_value: float
    leak: bool
    note: str = ""

    def row(self) -> dict:
        return {"signal": self.signal, "target": self.target, "accuracy": self.accuracy, "chance": self.chance,
                "p_value": self.p_value, "verdict": "LEAK" if self.leak else ("skipped" if np.isnan(self.accuracy) else "ok"),
                "note": self.note}


@dataclass
class AuditReport:
    checks: list[Check]
    files: int

    @property
    def leaks(self) -> list[Check]:
        return [check for check in self.checks if check.leak]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([check.row() for check in self.checks])


def inventory(directory: Path) -> pd.DataFrame:
    """One row per participant file: id, split, label (test labels from answers/ when
    the host has them), row position in its CSV, and its path."""
    directory = Path(directory)
    train_source = io.find(directory, "Train.csv")
    train = io.read_csv(train_source, dtype=str, keep_default_na=False)
    if train.shape[1] < 2:
        raise io.InputError(f"{train_source}: needs an id column and a label column")
    id_column, label_column = train.columns[0], train.columns[1]
    rows = pd.DataFrame({"ID": train[id_column], "split": "train", "label": train[label_column],
                         "position": np.arange(len(train)) / max(len(train) - 1, 1)})
    sample_source = io.find(directory, "SampleSubmission.csv", required=False)
    if sample_source is not None:
        test_ids = io.read_csv(sample_source, dtype=str, keep_default_na=False).iloc[:, 0]
        test = pd.DataFrame({"ID": test_ids, "split": "test", "label": None,
                             "position": np.arange(len(test_ids)) / max(len(test_ids) - 1, 1)})
        answers = _test_labels(directory / "answers")
        if answers is not None:
            test["label"] = test["ID"].map(answers)
        rows = pd.concat([rows, test], ignore_index=True)
    paths = {}
    for folder in ("Train", "Test"):
        root = next((p for p in directory.iterdir() if p.is_dir() and p.name.lower() == folder.lower()), None)
        if root is not None:
            for path in root.rglob("*"):
                if path.is_file():
                    paths[(folder.lower(), path.stem.upper())] = path
    rows["path"] = [paths.get((s, str(i).upper())) for s, i in zip(rows["split"], rows["ID"])]
    missing = rows["path"].isna()
    if missing.any():
        log.warning("%d listed id(s) have no file, e.g. %s; their file signals are not audited",
                    int(missing.sum()), rows.loc[missing, "ID"].iloc[0])
    return rows


def _test_labels(answers: Path) -> dict | None:
    if not answers.is_dir():
        return None
    labels = answers / "test_labels.csv"
    if labels.is_file():
        frame = io.read_csv(labels, dtype=str, keep_default_na=False)
        return dict(zip(frame.iloc[:, 0], frame.iloc[:, 1]))
    solution = answers / "solution.csv"
    if solution.is_file():
        frame = io.read_csv(solution)
        values = frame.iloc[:, 1:]
        return dict(zip(frame.iloc[:, 0].astype(str), values.columns[values.to_numpy().argmax(axis=1)]))
    return None


def signals(rows: pd.DataFrame, quiet: bool = True) -> dict[str, pd.DataFrame | pd.Series]:
    """What a participant sees of each file besides its content, by signal name:
    numeric frames, and tags as text."""
    from common.progress import tqdm  # a bar on a terminal, plain lines in a log
    ids = rows["ID"].astype(str)
    codes = np.array([[ord(c) for c in (i[:ID_CHARACTERS] + "\0" * ID_CHARACTERS)[:ID_CHARACTERS]] for i in ids], dtype=float)
    digits = ids.str.extract(r"(\d+)\D*$")[0].astype(float).fillna(-1)
    described = []
    for path in tqdm(rows["path"], desc="reading files", unit="file", disable=quiet):
        described.append(_describe(path))
    info = pd.DataFrame(described, index=rows.index)
    return {
        "id": pd.DataFrame(np.column_stack([codes, ids.str.len(), digits]), index=rows.index),
        "order": rows[["position"]].astype(float),
        "size": info[["bytes"]],
        "duration": info[["seconds", "width", "height"]],
        "format": info[["kind_code", "sample_rate", "channels", "mode_code"]],
        "bytes_per_second": info[["bytes_per_second"]],
        "timestamp": info[["mtime"]],
        "tags": info["tags"],
    }


def _describe(path) -> dict:
    empty = {"bytes": np.nan, "seconds": np.nan, "width": np.nan, "height": np.nan, "kind_code": np.nan,
             "sample_rate": np.nan, "channels": np.nan, "mode_code": np.nan, "bytes_per_second": np.nan,
             "mtime": np.nan, "tags": ""}
    if path is None:
        return empty
    path = Path(path)
    stat = path.stat()
    found = dict(empty, bytes=float(stat.st_size), mtime=float(stat.st_mtime))
    kind = media.sniff_file(path)
    kinds = media.AUDIO_KINDS + media.IMAGE_KINDS
    found["kind_code"] = float(kinds.index(kind)) if kind in kinds else -1.0
    if kind in media.AUDIO_KINDS:
        info = media.audio_info(path)
        found.update(seconds=info["seconds"], sample_rate=info["sample_rate"], channels=info["channels"])
        if info["seconds"] and info["seconds"] > 0:
            found["bytes_per_second"] = stat.st_size / info["seconds"]
    elif kind in media.IMAGE_KINDS:
        info = media.image_info(path)
        mode = info["mode"]
        found.update(width=info["width"], height=info["height"], mode_code=float(IMAGE_MODES.index(mode)) if mode in IMAGE_MODES else -1.0)
    found["tags"] = " ".join(f"{k}={v}" for k, v in sorted(media.tags(path).items()))
    return found


def audit(directory: Path, folds: int = 5, seed: int = 0, alpha: float = ALPHA, margin: float = MARGIN,
          quiet: bool = True) -> AuditReport:
    """Every signal against the label and against the side; see the module docstring."""
    rows = inventory(directory)
    features = signals(rows, quiet=quiet)
    targets = {"label": rows["label"], "side": rows["split"]}
    plans = [(signal, target) for target in targets for signal in features]
    tests = len(plans)
    checks = []
    for signal, target in plans:
        y = targets[target]
        known = y.notna().to_numpy() & (y.astype(str) != "").to_numpy()
        checks.append(_check(signal, target, features[signal], y, known, folds, seed, alpha / tests, margin))
    return AuditReport(checks, len(rows))


def _check(signal: str, target: str, X, y: pd.Series, known: np.ndarray, folds: int, seed: int,
           alpha: float, margin: float) -> Check:
    from scipy.stats import binomtest
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = y[known].astype(str).to_numpy()
    X = X[known]
    counts = pd.Series(y).value_counts()
    chance = float(counts.iloc[0] / len(y)) if len(y) else np.nan
    skipped = lambda note: Check(signal, target, np.nan, chance, np.nan, False, note)  # noqa: E731
    if len(counts) < 2:
        return skipped("one class only")
    if isinstance(X, pd.Series):
        text = X.fillna("").astype(str)
        if (text == text.iloc[0]).all():
            return skipped("no tags" if text.iloc[0] == "" else "the same tags on every file")
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        model = make_pipeline(TfidfVectorizer(token_pattern=r"[^\s=]+"), LogisticRegression(max_iter=2000))
        values = text.to_numpy()
    else:
        values = X.to_numpy(dtype=float)
        values = values[:, ~np.all(np.isnan(values), axis=0)] if values.size else values
        if values.shape[1] == 0:
            return skipped("not available for these files")
        values = np.nan_to_num(values, nan=-1.0)
        if np.all(values == values[0]):
            return skipped("the same for every file")
        from sklearn.ensemble import RandomForestClassifier
        model = RandomForestClassifier(n_estimators=30, min_samples_leaf=2, random_state=seed, n_jobs=1)
    splits = int(min(folds, counts.iloc[-1])) if counts.iloc[-1] >= 2 else 2
    if counts.iloc[-1] < 2:
        from sklearn.model_selection import KFold
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        splitter = StratifiedKFold(n_splits=max(2, splits), shuffle=True, random_state=seed)
    predicted = cross_val_predict(model, values, y, cv=splitter)
    correct = int((predicted == y).sum())
    accuracy = correct / len(y)
    p_value = float(binomtest(correct, len(y), chance, alternative="greater").pvalue) if chance < 1 else 1.0
    leak = bool(p_value < alpha and accuracy - chance >= margin)
    return Check(signal, target, accuracy, chance, p_value, leak)
