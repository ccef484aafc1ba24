"""House Prices inference from a run's files alone: load model.pkl, read test.csv,
predict, write the submission in the sample's shape, validated.

`compete predict` (through HousePrices.predict) and the Kaggle notebook that
`compete package` builds run this same code, so both give the same file. The notebook
runs it on Kaggle's image with only this module and what it imports vendored beside the
model: it imports numpy, pandas, scikit-learn, scipy and catboost (through the pickled
model) and nothing of the training stack (no MLflow, no click, no registry).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from common.submission import align_to_sample, read_sample, validate, write
from competitions.house_prices.data import ID, SUBMISSION, TARGET, read_test

MODEL = "model.pkl"
FLOAT_FORMAT = "%.2f"   # cents: the sample's prices are whole dollars


def load_model(folder: Path):
    """The HouseModel a run saved in `folder`."""
    # The pickle names classes of these modules; importing them here also makes
    # packaging's import tracer ship them with this one.
    from competitions.house_prices import features, model  # noqa: F401

    return io.read_pickle(Path(folder) / MODEL, "run `compete fit house-prices` first")


def predict(model, test: pd.DataFrame) -> pd.DataFrame:
    """One price per test row: the blend of the run's models, back from the log scale."""
    from competitions.house_prices import features as house_features

    prices = np.exp(model.predict_log(house_features.features(test, model.engineered)))
    return pd.DataFrame({ID: test[ID].astype(str), TARGET: prices})


def run(bundle_dir: Path, data_dir: Path, out: Path) -> Path:
    """Predict the test file in `data_dir` with the model in `bundle_dir` and write `out`
    in the order of the sample submission; an invalid result is an error, never a file."""
    frame = predict(load_model(bundle_dir), read_test(data_dir))
    sample = read_sample(io.find(data_dir, SUBMISSION.sample_file), SUBMISSION)
    frame = align_to_sample(frame, sample, SUBMISSION)
    problems = validate(frame, sample, SUBMISSION)
    if problems:
        raise io.InputError(f"house-prices: the predictions do not make a valid submission: {problems[0]}")
    return write(frame, out, float_format=FLOAT_FORMAT)
