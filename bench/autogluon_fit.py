"""AutoGluon-Tabular on one competition folder, run by bench/tabular_generic.py inside its
own venv (bench/.venv-autogluon): never imported by compete, which does not depend on it.

    python autogluon_fit.py FOLDER LABEL METRIC PRESET SECONDS OUT

Fits `TabularPredictor` on FOLDER/train.csv (the id column left out) with `presets=PRESET`
and `time_limit=SECONDS`, and writes OUT in the shape tabular_generic.score reads: the id,
then the positive class's probability (two classes), one column per class (more), or the
number (RMSLE: fitted on log1p of the label with RMSE, as the generic path does).
"""
from __future__ import annotations

import sys
import tempfile

import numpy as np
import pandas as pd
from autogluon.tabular import TabularPredictor

EVAL_METRIC = {"logloss": "log_loss", "rmse": "root_mean_squared_error", "rmsle": "root_mean_squared_error",
               "mae": "mean_absolute_error", "accuracy": "accuracy", "auc": "roc_auc"}


def main() -> None:
    folder, label, metric, preset, seconds, out = sys.argv[1:7]
    classes = metric in ("logloss", "accuracy", "auc")
    train = pd.read_csv(f"{folder}/train.csv", dtype={label: str} if classes else None).drop(columns="id")
    test = pd.read_csv(f"{folder}/test.csv")
    if metric == "rmsle":
        train[label] = np.log1p(train[label].astype(float))
    with tempfile.TemporaryDirectory() as scratch:
        # a folder that does not exist yet: best_quality's sub-fit (dynamic stacking) refuses one already there
        predictor = TabularPredictor(label=label, eval_metric=EVAL_METRIC[metric], path=f"{scratch}/predictor",
                                     verbosity=1)
        predictor.fit(train, presets=preset, time_limit=float(seconds))
        features = test.drop(columns="id")
        frame = pd.DataFrame({"id": test["id"].astype(str)})
        if classes:
            probabilities = predictor.predict_proba(features)
            names = sorted(map(str, probabilities.columns))
            probabilities.columns = [str(c) for c in probabilities.columns]
            if len(names) == 2:
                frame[label] = probabilities[names[1]].to_numpy()
            else:
                for name in names:
                    frame[name] = probabilities[name].to_numpy()
        else:
            predicted = predictor.predict(features).to_numpy(dtype=float)
            frame[label] = np.clip(np.expm1(predicted), 0, None) if metric == "rmsle" else predicted
    frame.to_csv(out, index=False)


if __name__ == "__main__":
    main()
