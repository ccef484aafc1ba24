"""A small tabular competition with every column kind, as a platform ships one: train.csv,
test.csv and sample_submission.csv, and the test's answers in answers/solution.csv (in
submission shape).

The target depends on a number, a category, a date's month, words of a free-text column
and a number with missing cells, so a pipeline that reads any kind wrongly scores worse.
String ids in shuffled order, so nothing about the answer is in the id or the row order.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common import io

CITIES = {"Lagos": 1.0, "Nairobi": -0.5, "Accra": 0.3, "Kigali": -1.0, "Dakar": 0.6}
WORDS = {"good": 1, "great": 1, "nice": 1, "fine": 1, "bad": -1, "awful": -1, "poor": -1, "slow": -1,
         "the": 0, "and": 0, "service": 0, "food": 0}
CLASSES = ("high", "low", "mid", "top")  # the sample's column order: sorted, as platforms list them
ROWS = {"small": 600, "full": 20_000}


def make(out: Path, task: str = "binary", rows: int = 600, seed: int = 0) -> Path:
    """Write a competition for `task` ("regression", "binary", "multiclass") into `out`:
    `rows` train rows and half as many test rows."""
    if task not in ("regression", "binary", "multiclass"):
        raise io.InputError(f"synthetic task {task!r}; known: regression, binary, multiclass")
    out = Path(out)
    rng = np.random.default_rng(seed)
    total = rows + rows // 2
    amount = rng.normal(size=total)
    level = rng.uniform(0, 10, total)
    city = rng.choice(list(CITIES), total)
    dates = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 730, total), unit="D")
    vocabulary = np.array(list(WORDS))
    reviews = [" ".join(rng.choice(vocabulary, rng.integers(5, 10))) for _ in range(total)]
    tone = np.array([sum(WORDS[w] for w in review.split()) for review in reviews], dtype=float)
    signal = (amount + 0.25 * level + pd.Series(city).map(CITIES).to_numpy() + 0.4 * tone
              + 0.8 * np.sin(2 * np.pi * dates.month.to_numpy() / 12))
    frame = pd.DataFrame({
        "row_id": [f"R{number:06d}" for number in rng.permutation(total)],
        "amount": amount.round(4), "level": level.round(3), "city": city,
        "visited": dates.strftime("%Y-%m-%d"), "review": reviews,
    })
    frame.loc[rng.random(total) < 0.05, "amount"] = np.nan  # missing cells, as real files have
    noise = rng.normal(0, 1, total)
    if task == "regression":
        target = {"price": np.round(np.exp(3 + (signal + 0.3 * noise) / 4), 2)}
        sample_values = {"price": 0.0}
    elif task == "binary":
        target = {"outcome": (signal + noise > 2.5).astype(int)}
        sample_values = {"outcome": 0}
    else:
        levels = np.digitize(signal + 0.7 * noise, [1.0, 2.5, 4.0])
        target = {"grade": np.array(["low", "mid", "high", "top"])[levels]}
        sample_values = {name: 0.25 for name in CLASSES}
    train = frame.iloc[:rows].assign(**{k: v[:rows] for k, v in target.items()})
    test = frame.iloc[rows:].reset_index(drop=True)
    io.write_csv(train, out / "train.csv")
    io.write_csv(test, out / "test.csv")
    io.write_csv(pd.DataFrame({"row_id": test["row_id"], **sample_values}), out / "sample_submission.csv")
    answers = pd.DataFrame({"row_id": test["row_id"]})
    if task == "multiclass":
        for name in CLASSES:
            answers[name] = (target["grade"][rows:] == name).astype(int)
    else:
        for name, values in target.items():
            answers[name] = values[rows:]
    io.write_csv(answers, out / "answers" / "solution.csv")
    return out


def synth(out: Path, seed: int = 0, scale: str = "small") -> None:
    make(out, "binary", ROWS[scale], seed)
