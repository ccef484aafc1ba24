"""The one protocol every competition implements, and the registry of them.

Like scikit-learn's estimators, every competition answers the same few calls, so the
CLI, the notebooks and the tests never grow a branch per competition. Like timm, a
decorator registers each class by name; lookup of an unknown name fails with the list
of known ones.
"""
from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from common import io
from common.metrics import Metric
from common.submission import SubmissionFormat, read_submission, validate

Data = Any   # what `load` returns: typed frames, a media index; each competition's own
Model = Any  # what `fit` returns and `predict` consumes


@dataclass
class Config:
    """What a run was asked to do. Everything here lands in the run's config.json."""

    seed: int = 0
    fast: bool = False
    quiet: bool = False
    options: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


@runtime_checkable
class Competition(Protocol):
    name: str
    platform: str
    slug: str
    metric: Metric
    submission: SubmissionFormat

    def load(self, data_dir: Path) -> Data: ...
    def fit(self, data: Data, config: Config, run_dir: Path) -> Model: ...
    def predict(self, model: Model, data: Data) -> pd.DataFrame: ...
    def synth(self, out_dir: Path, seed: int, scale: str) -> None: ...


class BaseCompetition:
    """Shared defaults so a competition only writes what is its own.

    Subclasses set the class attributes and implement `load`, `fit`, `predict`
    (and `synth` where the project generates data for it)."""

    name: str
    platform: str
    slug: str
    metric: Metric
    submission: SubmissionFormat
    description: str = ""
    data_files: tuple[str, ...] = ()  # files whose presence means "data is here"
    runtime_profile: str | None = None
    """The hidden-test runtime a code submission runs in (a name of common/runtimes,
    e.g. "hakuna-madata"): `package` builds for it, `runtime test` and `submit` emulate
    it. None for a competition whose submission is a file."""

    # Model persistence: a pickle unless the competition keeps weights its own way.
    def save_model(self, model: Model, run_dir: Path) -> None:
        io.write_bytes(Path(run_dir) / "model.pkl", pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))

    def load_model(self, run_dir: Path) -> Model:
        path = Path(run_dir) / "model.pkl"
        if not path.is_file():
            raise io.InputError(f"{path}: no trained model here; run `compete fit {self.name}` first")
        with open(path, "rb") as handle:
            return pickle.load(handle)

    def synth(self, out_dir: Path, seed: int, scale: str) -> None:
        raise io.InputError(f"{self.name}: no synthetic data generator; use the platform's files")

    def sample(self, data_dir: Path) -> pd.DataFrame:
        source = io.find(data_dir, self.submission.sample_file)
        return read_submission(source)

    def validate(self, submission: pd.DataFrame, data_dir: Path):
        """Problems of `submission` against the sample file in `data_dir`."""
        return validate(submission, self.sample(data_dir), self.submission)

    # Scoring against known truth (synthetic data, hosting, a private key).
    def read_answers(self, answers: Path, columns: list[str]) -> pd.DataFrame:
        """The truth in submission shape: the CSV in `answers` (or `answers` itself) that
        holds the id column and every one of `columns`; solution.csv is looked at first."""
        answers = Path(answers)
        candidates = [answers] if answers.is_file() else sorted(
            answers.glob("*.csv"), key=lambda p: (p.stem.lower() not in ("solution", "answers"), p.name))
        wanted = [self.submission.id_column, *columns]
        for candidate in candidates:
            if candidate.name.lower() == self.submission.sample_file.lower() and not answers.is_file():
                continue
            header = io.read_csv(candidate, nrows=0)
            if all(column in header.columns for column in wanted):
                return io.read_csv(candidate, dtype={self.submission.id_column: str})
        raise io.InputError(f"{answers}: no CSV with the columns {', '.join(wanted[:6])}{'...' if len(wanted) > 6 else ''}")

    def score(self, submission: pd.DataFrame, answers: Path) -> dict[str, float]:
        """Score a submission with the platform's metric against the truth in `answers`."""
        id_column = self.submission.id_column
        if id_column not in submission.columns:
            raise io.InputError(f"submission has no {id_column!r} column")
        value_columns = [c for c in submission.columns if c != id_column]
        truth = self.read_answers(answers, value_columns)
        truth = truth.assign(**{id_column: truth[id_column].astype(str)}).set_index(id_column)
        predicted = submission.assign(**{id_column: submission[id_column].astype(str)}).set_index(id_column)
        absent = predicted.index.difference(truth.index)
        if len(absent):
            raise io.InputError(f"{answers}: no answer for id {absent[0]} ({len(absent)} ids in all)")
        truth = truth.loc[predicted.index, value_columns]
        y_true = truth.to_numpy(dtype=float)
        y_pred = predicted[value_columns].apply(pd.to_numeric).to_numpy(dtype=float)
        if y_true.shape[1] == 1:
            y_true, y_pred = y_true[:, 0], y_pred[:, 0]
        return {self.metric.name: self.metric(y_true, y_pred)}


_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: add a competition to the registry under its `name`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"competition {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    _load_entries()
    return sorted(_REGISTRY)


def get(name: str) -> Competition:
    _load_entries()
    if name not in _REGISTRY:
        raise io.InputError(f"unknown competition {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]()


def _load_entries() -> None:
    import competitions  # noqa: F401  (importing registers every entry)


def write_json(path: Path, payload: dict) -> Path:
    return io.write_text(path, json.dumps(payload, indent=2, default=_jsonable) + "\n")


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
