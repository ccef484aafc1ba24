"""house-prices: wall time and CV of `compete run` (default and --fast) against a named
baseline measured in the same run: CatBoost with default settings on the raw columns,
5-fold CV (the "simple CatBoost" most notebooks start from).

Every CV here is out of fold on all 1,460 rows (the two huge partial sales included),
the figure `compete run` prints; the one with those two rows left out of the score is
shown beside it, labelled.
Targets: default run <= 300 s, --fast <= 60 s, default all-rows CV RMSLE <= 0.118.
Usage: python bench/house_prices_run.py [DATA_DIR]   (fetches the real data when absent)
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from _command import ROOT, compete  # noqa: E402 (bench/ is the script's folder)
sys.path.insert(0, str(ROOT))


def baseline(data_dir: Path) -> tuple[float, float]:
    """Default CatBoost on raw columns, categoricals native, 5-fold CV of log prices."""
    from catboost import CatBoostRegressor
    started = time.perf_counter()
    train = pd.read_csv(data_dir / "train.csv", keep_default_na=False, na_values=[""])
    y = np.log(train.pop("SalePrice").to_numpy())
    X = train.drop(columns="Id")
    categorical = [c for c in X.columns if X[c].dtype == object or str(X[c].dtype) == "str"]
    X[categorical] = X[categorical].astype(str)
    oof = np.zeros(len(y))
    for fit_rows, valid_rows in KFold(5, shuffle=True, random_state=0).split(X):
        model = CatBoostRegressor(verbose=False, random_seed=0, allow_writing_files=False, cat_features=categorical)
        model.fit(X.iloc[fit_rows], y[fit_rows])
        oof[valid_rows] = model.predict(X.iloc[valid_rows])
    return time.perf_counter() - started, float(np.sqrt(np.mean((oof - y) ** 2)))


def main() -> None:
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "data" / "house-prices"
    if not (data_dir / "train.csv").exists():
        compete("data", "fetch", "house-prices", "--out", data_dir)
    with tempfile.TemporaryDirectory() as work:
        results = {}
        for label, flags in (("fast", ["--fast"]), ("default", [])):
            seconds, out = compete("run", "house-prices", "--data", data_dir, "--out", Path(work) / f"{label}.csv",
                                   "--run-dir", Path(work) / label, "--quiet", *flags)
            without = json.loads((Path(work) / label / "metrics.json").read_text())["cv_score_without_outliers"]
            results[label] = (seconds, float(re.search(r"cv rmsle: ([0-9.]+)", out).group(1)), without)
    base_seconds, base_cv = baseline(data_dir)
    print(f"baseline  default CatBoost, raw columns: {base_seconds:7.1f} s   CV RMSLE {base_cv:.5f} (all 1460 rows)")
    for label, budget in (("fast", 60), ("default", 300)):
        seconds, cv, without = results[label]
        print(f"{label:8}  compete run house-prices:        {seconds:7.1f} s   CV RMSLE {cv:.5f} (all 1460 rows; "
              f"{without:.5f} with the 2 outliers left out of the score)   time x{seconds / base_seconds:.2f} of baseline, "
              f"{seconds / budget:.0%} of the {budget} s budget, CV x{cv / base_cv:.3f} of baseline")
    print(f"load average (1, 5, 15 min) at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"target all-rows CV <= 0.118: {'met' if results['default'][1] <= 0.118 else 'MISSED'}")


if __name__ == "__main__":
    main()
