"""The one protocol every competition implements.

Like scikit-learn's estimators, every competition answers the same few calls, so the
CLI, the notebooks and the tests never grow a branch per competition:

    load(data_dir) -> data
    fit(data, options, run_dir) -> (model, Report)     options: an instance of `options`
    predict(model, data) -> submission frame
    synth(out_dir, seed, scale)

Stateless, as scikit-learn's estimators: nothing a run learns is written on the
object. A competition whose format and metric are read from its data folder (the
generic PLATFORM:SLUG) returns them with the data; callers ask `metric_for(data, model)`
and `submission_for(data, model)`, the class's own for every other competition.

`options` is the competition's dataclass of run knobs (common/options.py); every
optional hook is declared on BaseCompetition with its default, so nothing is found by
getattr. `fit` returns what it learned in a Report; common/runs.py alone writes it to
metrics.json.

The registry of them is common/registry.py, over a table it is given (competitions/
builds it): nothing here knows a competition.
"""
from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from common import io
from common.metrics import Metric
from common.options import Options
from common.submission import (InvalidSubmission, Problem, SubmissionFormat, is_empty, read_sample, read_submission,
                               submission_source, validate)

Data = Any   # what `load` returns: typed frames, a media index; each competition's own
Model = Any  # what `fit` returns and `predict` consumes


@dataclass
class OutOfFold:
    """The submitted model's out-of-fold predictions, what `compete blend` combines: one
    row per training row in submission shape (the id column and the submission's columns;
    for a label metric, the scores before the decision that makes labels), `truth` the
    known answers in the same shape, `fold` each row's CV fold. common/runs.py keeps it
    in the run as out_of_fold.csv."""

    predictions: pd.DataFrame
    truth: pd.DataFrame
    fold: np.ndarray


@dataclass
class Report:
    """What `fit` learned; common/runs.py writes it to metrics.json (flat: cv_score,
    cv_score_note, fold_scores, then every decision under its own key)."""

    cv_score: float                     # the honest estimate of the platform's metric
    fold_scores: list[float]            # the submitted model's score on each fold (one for a hold-out)
    note: str = ""                      # how cv_score was measured, in a sentence
    decisions: dict[str, Any] = field(default_factory=dict)   # thresholds, weights, counts, timings
    out_of_fold: OutOfFold | None = None  # what a blend of this run needs; None: the run cannot be blended

    def metrics(self, metric: Metric) -> dict[str, Any]:
        return {"metric": metric.name, "cv_score": round(float(self.cv_score), 6), "cv_score_note": self.note,
                "fold_scores": [round(float(score), 6) for score in self.fold_scores], **self.decisions}


@runtime_checkable
class Competition(Protocol):
    name: str
    platform: str
    slug: str
    metric: Metric
    submission: SubmissionFormat | None
    options: type

    def load(self, data_dir: Path) -> Data: ...
    def metric_for(self, data: Data, model: Model | None = None) -> Metric: ...
    def submission_for(self, data: Data, model: Model | None = None) -> SubmissionFormat: ...
    def data_for_format(self, data_dir: Path) -> Data | None: ...
    def fit(self, data: Data, options: Options, run_dir: Path) -> tuple[Model, Report]: ...
    def predict(self, model: Model, data: Data) -> pd.DataFrame: ...
    def synth(self, out_dir: Path, seed: int, scale: str) -> None: ...


class BaseCompetition:
    """Shared defaults so a competition only writes what is its own.

    Subclasses set the class attributes and implement `load`, `fit`, `predict` (and
    `synth` where the project generates data for it). Every optional hook is declared
    here with its default; a competition overrides the ones that are its own."""

    name: ClassVar[str]
    platform: ClassVar[str]             # one of common.registry.PLATFORMS
    slug: ClassVar[str]                 # the platform's id for the competition
    metric: ClassVar[Metric]
    submission: ClassVar[SubmissionFormat | None]
    """The submission's format; None: read from the data folder by `load` (the generic
    PLATFORM:SLUG), and `submission_for(data)` is the one to ask."""
    options: ClassVar[type] = Options   # the dataclass of run knobs; subclass Options
    description: ClassVar[str] = ""
    data_files: ClassVar[tuple[str, ...]] = ()  # files whose presence means "data is here"
    url: ClassVar[str | None] = None
    """The competition's page on its platform, where a manual upload goes; None: the
    platform's usual address for `slug`."""
    float_format: ClassVar[str | None] = None
    """printf format for the submission's floats (e.g. "%.6f"); None: pandas' shortest repr."""
    bundle_entry: ClassVar[str | None] = None
    """A code competition's "module:function" that the bundle's main.py calls; None:
    the submission is a file, not code (common/packaging.py)."""
    bundle_files: ClassVar[tuple[str, ...]] = ()
    """Files of a run directory a code bundle carries beside main.py (weights)."""
    runtime_profile: ClassVar[str | None] = None
    """The hidden-test runtime a code submission runs in (a name of common/runtimes,
    e.g. "hakuna-madata"): `package` builds for it, `runtime test` and `submit` emulate
    it. None for a competition whose submission is a file."""

    # Stateless, as scikit-learn's estimators: a competition whose format and metric are
    # read from its folder returns them with the data; `load`, `fit` and `predict` write
    # nothing on the object, and the callers ask these two.
    def metric_for(self, data: Data, model: Model | None = None) -> Metric:
        """The metric a run on `data` is scored by (that `model` was fitted to score, when
        given). Default: the competition's own."""
        return self.metric

    def submission_for(self, data: Data, model: Model | None = None) -> SubmissionFormat:
        """The format of the submission made for `data` (by `model`, when given).
        Default: the competition's own."""
        return self.submission

    def data_for_format(self, data_dir: Path) -> Data | None:
        """What `metric_for` and `submission_for` need before any model: the data loaded
        from `data_dir` where the format is read from the folder (`submission` None, the
        generic PLATFORM:SLUG), else None (the class's own serve)."""
        return self.load(Path(data_dir)) if self.submission is None else None

    def bundle(self, run_dir: Path, profile=None) -> tuple[str | None, tuple[str, ...]]:
        """The inference entry and the run files a code submission of the run in
        `run_dir` ships for `profile` (a common.runtimes Profile, or None): `bundle_entry`
        and `bundle_files`, unless the competition serves runs of several kinds (the
        generic one: a table's pickle, a media run's network in the form the runtime reads)."""
        return self.bundle_entry, self.bundle_files

    def test_scores(self, model: Model, data: Data) -> pd.DataFrame | None:
        """The test predictions a blend combines, in submission shape: for a label metric
        the scores before the decision that makes labels (what `OutOfFold.predictions`
        holds for the training rows). None: the submission's own values are those
        (numbers, probabilities), and common/runs.py keeps the submission itself."""
        return None

    def adversarial_frames(self, data: Data) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        """The training and the test rows as the model sees them (the id column first,
        then the features both have), for `compete check-split`. None: the data is not a
        table (images, audio), and check-split says so."""
        return None

    def fetch(self, out: Path, from_zip: Path | None = None) -> list[Path]:
        """Write the real data into `out` without the platform's API (an offline copy,
        or `from_zip` as downloaded); returns the files written. Default: there is none."""
        raise io.InputError(f"{self.name}: no offline copy of the real data; try `compete data synth {self.name}` "
                            f"or `compete data download {self.name}`")

    def data_sources(self) -> list[str]:
        """Where this competition's data can come from: fetch, synth, download."""
        cls = type(self)
        own = [hook for hook, overridden in (("fetch", cls.fetch is not BaseCompetition.fetch),
                                             ("synth", cls.synth is not BaseCompetition.synth)) if overridden]
        return [*own, "download"]

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
        return read_sample(io.find(data_dir, self.submission.sample_file), self.submission)

    def validate(self, submission: pd.DataFrame, data_dir: Path):
        """Problems of `submission` against the sample file in `data_dir`."""
        return validate(submission, self.sample(data_dir), self.submission)

    def validate_file(self, file: Path, data_dir: Path) -> list[Problem]:
        """Problems of the submission file `file`; an empty file is a problem, not an
        error. A file that is absent or cannot be parsed is an InputError."""
        file = Path(file)
        if not file.is_file():
            raise io.InputError(f"{file}: file not found")
        if is_empty(submission_source(file)[0]):
            sample = self.sample(data_dir)
            return [Problem("empty", f"the file is empty; expected the header {','.join(map(str, sample.columns[:6]))}"
                                     f"{',...' if len(sample.columns) > 6 else ''} and {len(sample)} rows")]
        return self.validate(read_submission(file), data_dir)

    # Scoring against known truth (synthetic data, hosting, a private key).
    def read_answers(self, answers: Path, columns: list[str], format: SubmissionFormat | None = None) -> pd.DataFrame:
        """The truth in submission shape: the CSV in `answers` (or `answers` itself) that
        holds the id column and every one of `columns`; solution.csv is looked at first.

        The competition's own data files (train.csv, the sample) are never the truth:
        scoring test predictions against training labels would print a meaningless number.
        `format`: the submission's, when the competition has none of its own (file_format)."""
        format = format or self.submission
        answers = Path(answers)
        candidates = [answers] if answers.is_file() else sorted(
            answers.glob("*.csv"), key=lambda p: (p.stem.lower() not in ("solution", "answers"), p.name))
        own = {name.lower() for name in (*self.data_files, format.sample_file)}
        wanted = [format.id_column, *columns]
        refused = []
        for candidate in candidates:
            if all(column in io.header_names(candidate) for column in wanted):
                if candidate.name.lower() in own:
                    refused.append(candidate.name)
                    continue
                return io.read_table(candidate, wanted, dtype=str, keep_default_na=False)
        if refused:
            raise io.InputError(f"{answers}: {', '.join(refused)} is the competition's own data, not the answers to the test set; "
                                f"point --answers at the host's answer key (e.g. DATA/answers/solution.csv)")
        raise io.InputError(f"{answers}: no CSV with the columns {', '.join(wanted[:6])}{'...' if len(wanted) > 6 else ''}")

    def score_file(self, file: Path, answers: Path) -> dict[str, float]:
        """`compete score`: read `file`, validate it against the truth as `validate` does
        against the sample (a partial file, a blank or a text value is a list of problems,
        exit 1, never a score), then `score` it."""
        submission = read_submission(file)
        format = self.file_format(submission)
        columns = list(format.columns) or [str(c) for c in submission.columns if c != format.id_column]
        truth = self.read_answers(answers, columns, format)
        problems = validate(submission, truth[[format.id_column, *columns]], format)
        if problems:
            raise InvalidSubmission(file, problems)
        return self.score(submission, answers)

    def file_format(self, submission: pd.DataFrame) -> SubmissionFormat:
        """The format to check `submission` against with no data folder at hand: the
        competition's own; for one whose format is read from its data (None), the
        submission's first column is its id, as on every platform, and a value is only
        checked to be there (a label domain with no labels listed)."""
        return self.submission or SubmissionFormat(
            "", id_column=str(submission.columns[0]) if len(submission.columns) else "id", domain="label")

    def score(self, submission: pd.DataFrame, answers: Path) -> dict[str, float]:
        """Score a valid submission with the platform's metric against the truth in `answers`."""
        id_column = self.submission.id_column
        columns = list(self.submission.columns) or [c for c in submission.columns if c != id_column]
        truth = self.read_answers(answers, columns)
        truth = truth.set_index(truth[id_column].astype(str))
        predicted = submission.set_index(submission[id_column].astype(str))
        truth = truth.loc[predicted.index, columns]
        y_true = truth.apply(pd.to_numeric, errors="raise").to_numpy(dtype=float)
        y_pred = predicted[columns].apply(pd.to_numeric).to_numpy(dtype=float)
        if y_true.shape[1] == 1:
            y_true, y_pred = y_true[:, 0], y_pred[:, 0]
        return {self.metric.name: self.metric(y_true, y_pred)}


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
