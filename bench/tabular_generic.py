"""The generic tabular pipeline (`compete run kaggle:SLUG --metric M`) against a named
baseline measured in the same script: CatBoost with its default settings on the raw
columns (strings as native categoricals), on public data sets that can be had offline.

Each data set becomes a competition folder as a platform ships it (train.csv, test.csv,
sample_submission.csv) from a seeded hold-out split, with the hold-out's answers kept
aside; both contenders are scored on the same hold-out with the same metric.

    ratio = generic error / baseline error   (< 1: the generic pipeline is better; for
            AUC and accuracy the error is 1 - score)

Target: ratio < 1 on every data set, each generic run within 600 s on 2 cores.
Data: House Prices through `compete data fetch house-prices` (the real Kaggle rows);
scikit-learn's bundled diabetes, breast cancer, wine and digits; the Palmer penguins
(the public `palmerpenguins` wheel, read out of the zip as house-prices does, never
installed).
Usage: python bench/tabular_generic.py [NAME ...]   (default: every data set)
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from _command import ROOT, compete  # noqa: E402 (bench/ is the script's folder)
sys.path.insert(0, str(ROOT))

from common import metrics  # noqa: E402

BUDGET = 600.0
PENGUINS_WHEEL = "palmerpenguins==0.1.6"


def house_prices(work: Path) -> tuple[pd.DataFrame, str, str]:
    folder = work / "house-prices-source"
    if not (folder / "train.csv").exists():
        compete("data", "fetch", "house-prices", "--out", folder)
    frame = pd.read_csv(folder / "train.csv", dtype=str, keep_default_na=False, na_values=[""]).drop(columns="Id")
    return frame, "SalePrice", "rmsle"


def _sklearn(loader, target: str) -> pd.DataFrame:
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [re.sub(r"[^0-9A-Za-z_]+", "_", str(c)) for c in frame.columns]
    if target != "target":
        frame = frame.rename(columns={"target": target})
    return frame


def diabetes(work: Path):
    from sklearn.datasets import load_diabetes
    return _sklearn(load_diabetes, "progression"), "progression", "rmse"


def breast_cancer(work: Path):
    from sklearn.datasets import load_breast_cancer
    return _sklearn(load_breast_cancer, "malignant"), "malignant", "logloss"


def wine(work: Path):
    from sklearn.datasets import load_wine
    frame = _sklearn(load_wine, "cultivar")
    frame["cultivar"] = frame["cultivar"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    return frame, "cultivar", "logloss"


def digits(work: Path):
    from sklearn.datasets import load_digits
    return _sklearn(load_digits, "digit"), "digit", "logloss"


def penguins(work: Path):
    """Species from island, sex and measurements, with the missing cells left in."""
    folder = work / "wheel"
    if not list(folder.glob("palmerpenguins-*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", PENGUINS_WHEEL, "-d", folder],
                       check=True, capture_output=True)
    wheel = next(folder.glob("palmerpenguins-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        member = next(name for name in archive.namelist() if name.endswith("penguins.csv"))
        with archive.open(member) as handle:
            frame = pd.read_csv(handle)
    return frame.dropna(subset=["species"]), "species", "logloss"


DATA_SETS = {"house-prices": house_prices, "diabetes": diabetes, "breast-cancer": breast_cancer,
             "wine": wine, "digits": digits, "penguins": penguins}


def competition_folder(frame: pd.DataFrame, target: str, metric: str, out: Path, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """train.csv / test.csv / sample_submission.csv from a 75/25 split, as a platform
    ships them: ids, the test without its target, a sample in the metric's shape."""
    rng = np.random.default_rng(seed)
    frame = frame.reset_index(drop=True)
    frame.insert(0, "id", [f"r{i:05d}" for i in rng.permutation(len(frame))])
    test_rows = rng.random(len(frame)) < 0.25
    train, test = frame[~test_rows].reset_index(drop=True), frame[test_rows].reset_index(drop=True)
    out.mkdir(parents=True, exist_ok=True)
    train.to_csv(out / "train.csv", index=False)
    test.drop(columns=target).to_csv(out / "test.csv", index=False)
    classes = sorted(frame[target].dropna().astype(str).unique())
    if metrics.canonical(metric) == "logloss" and len(classes) > 2:
        sample = pd.DataFrame({"id": test["id"], **{c: 1.0 / len(classes) for c in classes}})
    else:
        sample = pd.DataFrame({"id": test["id"], target: 0.5 if metric == "logloss" else train[target].astype(str).iloc[0]})
    sample.to_csv(out / "sample_submission.csv", index=False)
    return train, test


def score(metric_name: str, truth: pd.Series, predicted: pd.DataFrame, classes: list[str]) -> float:
    """The metric on hold-out truth; `predicted` holds the sample's value columns."""
    if metrics.canonical(metric_name) == "logloss":
        if len(classes) > 2:
            index = truth.astype(str).map({c: i for i, c in enumerate(classes)}).to_numpy()
            return metrics.resolve("logloss", "multiclass")(index, predicted[classes].to_numpy(dtype=float))
        y = (truth.astype(str) == classes[1]).to_numpy(dtype=float)
        return metrics.resolve("logloss", "binary")(y, predicted.iloc[:, 0].to_numpy(dtype=float))
    metric = metrics.resolve(metric_name, "regression")
    return metric(pd.to_numeric(truth).to_numpy(dtype=float), predicted.iloc[:, 0].to_numpy(dtype=float))


def error(metric_name: str, value: float) -> float:
    return 1.0 - value if metrics.resolve(metric_name).greater_is_better else value


def baseline(train: pd.DataFrame, test: pd.DataFrame, target: str, metric_name: str, classes: list[str]) -> tuple[float, pd.DataFrame]:
    """CatBoost's defaults on the raw columns: strings native, numbers as read."""
    from catboost import CatBoostClassifier, CatBoostRegressor
    started = time.perf_counter()
    X = train.drop(columns=["id", target])
    X_test = test[X.columns]
    for frame in (X, X_test):
        for column in frame.columns:
            numbers = pd.to_numeric(frame[column], errors="coerce")
            frame[column] = numbers if numbers.notna().sum() == frame[column].notna().sum() else frame[column]
    categorical = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    for frame in (X, X_test):
        frame[categorical] = frame[categorical].fillna("nan").astype(str)
    settings = dict(verbose=False, random_seed=0, allow_writing_files=False, cat_features=categorical)
    if metrics.canonical(metric_name) == "logloss":
        model = CatBoostClassifier(**settings).fit(X, train[target].astype(str))
        probabilities = model.predict_proba(X_test)
        order = [list(model.classes_).index(c) for c in classes]
        predicted = (pd.DataFrame(probabilities[:, order], columns=classes) if len(classes) > 2
                     else pd.DataFrame({target: probabilities[:, order[1]]}))
    else:
        y = pd.to_numeric(train[target]).to_numpy(dtype=float)
        predicted = pd.DataFrame({target: CatBoostRegressor(**settings).fit(X, y).predict(X_test)})
        if metrics.canonical(metric_name) == "rmsle":
            predicted[target] = predicted[target].clip(lower=0)
    return time.perf_counter() - started, predicted


def main() -> None:
    wanted = sys.argv[1:] or list(DATA_SETS)
    unknown = [name for name in wanted if name not in DATA_SETS]
    if unknown:
        sys.exit(f"unknown data set(s) {unknown}; known: {', '.join(DATA_SETS)}")
    rows, missed = [], []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for name in wanted:
            frame, target, metric_name = DATA_SETS[name](work)
            folder = work / name
            train, test = competition_folder(frame, target, metric_name, folder)
            classes = sorted(frame[target].dropna().astype(str).unique())
            truth = test[target]
            base_seconds, base_predicted = baseline(train, test, target, metric_name, classes)
            base_value = score(metric_name, truth, base_predicted, classes)
            out = work / f"{name}.csv"
            seconds, _ = compete("run", f"kaggle:bench-{name}", "--data", folder, "--metric", metric_name,
                                 "--out", out, "--run-dir", work / f"run-{name}", "--quiet",
                                 "--set", f"time_budget={BUDGET:g}")
            predicted = pd.read_csv(out, dtype={"id": str}).set_index("id").loc[test["id"]].reset_index(drop=True)
            value = score(metric_name, truth, predicted, classes)
            ratio = error(metric_name, value) / error(metric_name, base_value)
            rows.append((name, len(train), len(test), metric_name, base_value, base_seconds, value, seconds, ratio))
            if not (ratio < 1 and seconds <= BUDGET):
                missed.append(name)
            print(f"{name:14} {len(train):5d} train {len(test):5d} held out  {metric_name:8}  baseline {base_value:.5f} "
                  f"({base_seconds:6.1f} s)  generic {value:.5f} ({seconds:6.1f} s)  ratio {ratio:.3f}", flush=True)
    print(f"target: ratio < 1 and <= {BUDGET:.0f} s on every data set: "
          + ("met" if not missed else f"MISSED on {', '.join(missed)}"))


if __name__ == "__main__":
    main()
