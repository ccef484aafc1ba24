"""Build a submission frame and validate it against the platform's sample file.

Validation lists every problem, not just the first, with up to ten examples per kind,
so a competitor fixes a file in one pass instead of one upload per mistake.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common import io

MAX_EXAMPLES = 10

# What a prediction column may hold.
DOMAINS = {
    "positive": "a number > 0",
    "binary": "0 or 1",
    "probability": "a probability in [0, 1]",
    "any": "a finite number",
}


@dataclass(frozen=True)
class SubmissionFormat:
    """How a competition's submission looks: the sample file it must match, the id
    column, and the domain of every prediction column."""

    sample_file: str
    id_column: str
    domain: str = "any"

    def __post_init__(self):
        if self.domain not in DOMAINS:
            raise ValueError(f"unknown domain {self.domain!r}; known: {', '.join(DOMAINS)}")


@dataclass
class Problem:
    kind: str
    message: str
    examples: list = field(default_factory=list)
    count: int = 0

    def __str__(self) -> str:
        shown = ", ".join(map(str, self.examples[:MAX_EXAMPLES]))
        more = f" (+{self.count - len(self.examples[:MAX_EXAMPLES])} more)" if self.count > MAX_EXAMPLES else ""
        return f"{self.kind}: {self.message}" + (f" [{shown}{more}]" if shown else "")


def _problem(kind: str, message: str, examples) -> Problem:
    examples = list(examples)
    return Problem(kind, message, examples[:MAX_EXAMPLES], len(examples))


def read_submission(path: Path | str) -> pd.DataFrame:
    """Read a submission with every cell as text, so validation sees what was written."""
    return io.read_csv(path, dtype=str, keep_default_na=False)


def validate(submission: pd.DataFrame, sample: pd.DataFrame, format: SubmissionFormat) -> list[Problem]:
    """Every way `submission` differs from what the platform accepts; empty when valid.

    Both frames may be read as text (`read_submission`) or hold typed values."""
    problems: list[Problem] = []
    expected, found = list(map(str, sample.columns)), list(map(str, submission.columns))
    if found != expected:
        missing = [c for c in expected if c not in found]
        unexpected = [c for c in found if c not in expected]
        detail = []
        if missing:
            detail.append(f"missing {missing[:MAX_EXAMPLES]}")
        if unexpected:
            detail.append(f"unexpected {unexpected[:MAX_EXAMPLES]}")
        if not missing and not unexpected:
            first = next(i for i, (a, b) in enumerate(zip(found, expected)) if a != b)
            detail.append(f"column {first + 1} is {found[first]!r}, expected {expected[first]!r}")
        problems.append(Problem("header", f"header must be {','.join(expected[:6])}{',...' if len(expected) > 6 else ''} in that order; " + "; ".join(detail)))

    if len(submission) != len(sample):
        problems.append(Problem("row_count", f"{len(submission)} rows, expected {len(sample)}"))

    id_column = format.id_column
    if id_column in submission.columns:
        ids = submission[id_column].astype(str)
        expected_ids = sample[id_column].astype(str)
        duplicated = ids[ids.duplicated()].unique()
        if len(duplicated):
            problems.append(_problem("duplicate_ids", f"{len(duplicated)} id(s) appear more than once", duplicated))
        expected_set = set(expected_ids)
        found_set = set(ids)
        missing_ids = [i for i in expected_ids if i not in found_set]
        if missing_ids:
            problems.append(_problem("missing_ids", f"{len(missing_ids)} id(s) of the sample are absent", missing_ids))
        unknown = [i for i in ids.unique() if i not in expected_set]
        if unknown:
            problems.append(_problem("unknown_ids", f"{len(unknown)} id(s) are not in the sample", unknown))
    else:
        ids = pd.Series(np.arange(len(submission)).astype(str), index=submission.index)
        problems.append(Problem("missing_id_column", f"no {id_column!r} column"))

    value_columns = [c for c in submission.columns if c != id_column and c in expected]
    problems.extend(_value_problems(submission, value_columns, ids, format.domain))
    return problems


def _value_problems(submission: pd.DataFrame, columns, ids: pd.Series, domain: str) -> list[Problem]:
    not_numbers, not_finite, outside = [], [], []
    for column in columns:
        raw = submission[column]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        text = raw.astype(str).str.strip().str.lower()
        is_nan_text = text.isin(["nan", "", "na", "null", "none", "inf", "-inf", "+inf", "infinity", "-infinity"])
        unparsed = np.isnan(values) & ~is_nan_text.to_numpy()
        nonfinite = ~np.isfinite(values) & ~unparsed
        for mask, sink in ((unparsed, not_numbers), (nonfinite, not_finite)):
            for position in np.flatnonzero(mask):
                sink.append(f"{ids.iloc[position]}/{column}={raw.iloc[position]!r}")
        finite = np.isfinite(values)
        if domain == "positive":
            bad = finite & (values <= 0)
        elif domain == "binary":
            bad = finite & ~np.isin(values, [0.0, 1.0])
        elif domain == "probability":
            bad = finite & ((values < 0) | (values > 1))
        else:
            bad = np.zeros_like(finite)
        for position in np.flatnonzero(bad):
            outside.append(f"{ids.iloc[position]}/{column}={raw.iloc[position]}")
    problems = []
    if not_numbers:
        problems.append(_problem("not_a_number", f"{len(not_numbers)} value(s) are not numbers", not_numbers))
    if not_finite:
        problems.append(_problem("non_finite", f"{len(not_finite)} value(s) are NaN or infinite", not_finite))
    if outside:
        problems.append(_problem("out_of_domain", f"{len(outside)} value(s) are not {DOMAINS[domain]}", outside))
    return problems


def align_to_sample(predictions: pd.DataFrame, sample: pd.DataFrame, format: SubmissionFormat) -> pd.DataFrame:
    """Order rows as the sample lists its ids and columns as its header."""
    frame = predictions.copy()
    frame[format.id_column] = frame[format.id_column].astype(str)
    order = sample[format.id_column].astype(str)
    frame = frame.set_index(format.id_column).reindex(order).reset_index()
    return frame[list(sample.columns)]


def write(frame: pd.DataFrame, path: Path | str, float_format: str | None = None) -> Path:
    """Write a submission atomically: a crash never leaves half a file."""
    return io.write_csv(frame, path, float_format=float_format)
