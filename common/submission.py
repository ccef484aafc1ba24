"""Build a submission frame and validate it against the platform's sample file.

Validation lists every problem, not just the first, with up to ten examples per kind,
so a competitor fixes a file in one pass instead of one upload per mistake.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from common import io

MAX_EXAMPLES = 10

# What a prediction column may hold.
DOMAINS = {
    "positive": "a number > 0",
    "nonnegative": "a number >= 0",
    "binary": "0 or 1",
    "probability": "a probability in [0, 1]",
    "label": "one of the labels",
    "any": "a finite number",
}

# The domain a submission's values must lie in, for each kind of metric output
# (common.metrics.OUTPUTS): a ranking score (AUC) may be any number.
DOMAIN_OF_OUTPUT = {"label": "label", "probability": "probability", "score": "any", "value": "any",
                    "nonnegative": "nonnegative", "positive": "positive"}


@dataclass(frozen=True)
class SubmissionFormat:
    """How a competition's submission looks: the sample file it must match, the id
    column, and the domain of every prediction column."""

    sample_file: str
    id_column: str
    domain: str = "any"
    labels: tuple[str, ...] = ()  # the accepted values when domain is "label"
    columns: tuple[str, ...] = ()  # the prediction columns in the platform's order; () = whatever the sample has

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


class InvalidSubmission(io.CheckFailed):
    """A submission that fails validation: the CLI lists every problem and exits 1."""

    def __init__(self, file, problems: list[Problem], context: str = ""):
        self.file, self.problems, self.context = file, problems, context
        super().__init__(f"{self.lines()[0]}: {problems[0]}")

    def lines(self) -> list[str]:
        head = f"{self.file}: {self.context + ', ' if self.context else ''}{len(self.problems)} problem(s)"
        return [head, *(f"  {problem}" for problem in self.problems)]


def _problem(kind: str, message: str, examples) -> Problem:
    examples = list(examples)
    return Problem(kind, message, examples[:MAX_EXAMPLES], len(examples))


GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip


def submission_source(path: Path | str) -> tuple[io.Source, str | None]:
    """The CSV a submission file holds, and its compression ("gzip", "zip" or None):
    as the platforms' uploads accept it, plain, gzip-compressed (FILE.csv.gz), or a zip
    of exactly one CSV (Kaggle's upload takes both). Told by the file's first bytes,
    not its name. A zip of no CSV or of several fails in one line."""
    source = io.find_file(path)
    with open(source.path, "rb") as handle:
        magic = handle.read(4)
    if magic.startswith(GZIP_MAGIC):
        return io.Source(source.path, compression="gzip"), "gzip"
    if magic not in ZIP_MAGICS:
        return source, None
    import zipfile
    try:
        with zipfile.ZipFile(source.path) as archive:
            names = [name for name in archive.namelist() if not name.endswith("/")]
    except zipfile.BadZipFile as error:
        raise io.InputError(f"{source.path}: a zip that cannot be read ({error})") from None
    csvs = [name for name in names if name.lower().endswith(".csv") and "__MACOSX" not in name
            and not Path(name).name.startswith(".")]
    if len(csvs) != 1:
        held = (f"holds {len(csvs)} CSVs ({', '.join(csvs[:4])}{', ...' if len(csvs) > 4 else ''})" if csvs else
                f"holds no CSV ({', '.join(names[:4]) + (', ...' if len(names) > 4 else '') if names else 'it is empty'})")
        raise io.CheckFailed(f"{source.path}: a zipped submission must hold exactly one CSV; this one {held}")
    return io.Source(source.path, csvs[0]), "zip"


def described(path: Path | str) -> str:
    """The file as output names it: `submission.csv.gz (gzip)`, or just its path."""
    _, compression = submission_source(path)
    return f"{path} ({compression})" if compression else str(path)


@contextlib.contextmanager
def plain_csv(path: Path | str) -> Iterator[Path]:
    """`path` itself when it is a plain CSV; else its CSV decompressed into a temporary
    folder (removed after), named as the CSV inside: for a platform that takes only a
    plain CSV."""
    source, compression = submission_source(path)
    if compression is None:
        yield Path(path)
        return
    name = Path(source.member).name if source.member else Path(path).name.removesuffix(".gz").removesuffix(".GZ")
    with tempfile.TemporaryDirectory(prefix=io.TEMP_PREFIX) as folder:
        target = Path(folder) / (name if name.lower().endswith(".csv") else f"{name}.csv")
        with source.open() as handle, open(target, "wb") as out:
            shutil.copyfileobj(handle, out, 1 << 20)
        yield target


def is_empty(source: io.Source) -> bool:
    """Nothing but whitespace in the file (or the CSV it compresses)."""
    with source.open() as handle:
        return not any(block.strip() for block in iter(lambda: handle.read(1 << 20), b""))


def read_submission(path: Path | str) -> pd.DataFrame:
    """Read a submission with every cell as text, so validation sees what was written.
    A gzip-compressed file or a zip of one CSV is read as the platforms read it
    (`submission_source`).

    Unreadable files (not UTF-8, another separator, a last row cut short) fail here,
    naming the row; a file the platform would parse is left to `validate`."""
    source, _ = submission_source(path)
    if not io.header_line(source).strip():  # an empty file is an invalid submission (exit 1), not unreadable input
        return pd.DataFrame()
    return io.read_table(source, min_rows=0, complete=False, dtype=str, keep_default_na=False)


def read_sample(source, format: SubmissionFormat) -> pd.DataFrame:
    """The platform's sample submission, checked against the competition's own columns
    before anything trains: a sample that lost a column (or gained one) would silently
    change what the model predicts."""
    frame = io.read_table(source, [format.id_column], dtype=str, keep_default_na=False)
    found = [str(c) for c in frame.columns if c != format.id_column]
    if format.columns and found != list(format.columns):
        missing = [c for c in format.columns if c not in found]
        unexpected = [c for c in found if c not in format.columns]
        detail = "; ".join(part for part in (
            f"missing {', '.join(missing[:5])}" + ("..." if len(missing) > 5 else "") if missing else "",
            f"unexpected {', '.join(unexpected[:5])}" if unexpected else "",
            "the columns are in another order" if not missing and not unexpected else "") if part)
        raise io.InputError(f"{source}: its columns are not the competition's {len(format.columns)} "
                            f"({', '.join(format.columns[:3])}{', ...' if len(format.columns) > 3 else ''}): {detail}")
    if list(frame.columns).index(format.id_column) != 0:
        raise io.InputError(f"{source}: {format.id_column} must be the first column")
    ids = frame[format.id_column].str.strip()
    blank = ids == ""
    if blank.any():
        raise io.InputError(f"{source}: row {int(blank.to_numpy().nonzero()[0][0]) + 2}: {format.id_column} is blank")
    io.unique(frame, format.id_column, source)
    return frame


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
    if format.domain == "label":
        problems.extend(_label_problems(submission, value_columns, ids, format.labels))
    else:
        problems.extend(_value_problems(submission, value_columns, ids, format.domain))
    return problems


def _label_problems(submission: pd.DataFrame, columns, ids: pd.Series, labels: tuple[str, ...]) -> list[Problem]:
    """Labels compare as text, or as numbers when every label is one ("1" == "1.0")."""
    numeric_labels = pd.to_numeric(pd.Series(labels, dtype=object), errors="coerce")
    as_numbers = len(labels) > 0 and numeric_labels.notna().all()
    outside = []
    for column in columns:
        raw = submission[column]
        if as_numbers:
            values = pd.to_numeric(raw, errors="coerce")
            bad = ~values.isin(numeric_labels.to_numpy(dtype=float))
        else:
            bad = ~raw.astype(str).isin(labels) if labels else raw.astype(str).str.strip().eq("")
        for position in np.flatnonzero(bad.to_numpy()):
            outside.append(f"{ids.iloc[position]}/{column}={io.shown(raw.iloc[position])}")
    if not outside:
        return []
    accepted = ", ".join(labels[:MAX_EXAMPLES]) + (", ..." if len(labels) > MAX_EXAMPLES else "") if labels else "a label"
    return [_problem("out_of_domain", f"{len(outside)} value(s) are not one of the labels ({accepted})", outside)]


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
                sink.append(f"{ids.iloc[position]}/{column}={io.shown(raw.iloc[position])}")
        finite = np.isfinite(values)
        if domain == "positive":
            bad = finite & (values <= 0)
        elif domain == "nonnegative":
            bad = finite & (values < 0)
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


# What platforms call their sample: sample_submission.csv, SampleSubmission.csv,
# gender_submission.csv (Titanic), submission_format.csv (DrivenData), ...
SAMPLE_NAME_HINTS = ("sample", "submission", "format", "template", "example")


@dataclass(frozen=True)
class SampleLayout:
    """A sample submission read by content: its id column, its value columns, and the
    test file that lists the same ids. `long` is one value column; `wide` is several
    (one per class for probabilities, or one per target)."""

    source: io.Source
    id_column: str
    value_columns: tuple[str, ...]
    test: io.Source

    @property
    def shape(self) -> str:
        return "long" if len(self.value_columns) == 1 else "wide"


def _looks_like_sample(name: str) -> bool:
    lowered = name.lower()
    return any(hint in lowered for hint in SAMPLE_NAME_HINTS)


def _ids(source: io.Source, column: str) -> pd.Series:
    return io.read_csv(source, usecols=[column], dtype=str, keep_default_na=False)[column]


def infer_sample(data_dir: Path | str) -> SampleLayout:
    """Find the sample submission of a data folder by its content: a CSV whose first
    column holds exactly the ids of another CSV (the test file) that has none of its
    other columns. Files named like a sample are tried first; when two unnamed files
    list each other's ids, the one with fewer columns is the sample.

    A file named like a sample whose ids are not the test's is one error naming both."""
    sources = io.csv_sources(data_dir)
    if not sources:
        raise io.InputError(f"{data_dir}: no CSV file (looked loose, one folder down and in *.zip)")
    headers = {source: [str(c) for c in io.read_csv(source, nrows=0).columns] for source in sources}
    named = [source for source in sources if _looks_like_sample(source.name)]
    unnamed = sorted((s for s in sources if s not in named), key=lambda s: len(headers[s]))
    failure = None
    for candidate in named + unnamed:
        columns = headers[candidate]
        if len(columns) < 2:
            continue
        id_column, values = columns[0], columns[1:]
        partners = [s for s in sources if s != candidate and id_column in headers[s] and not set(values) & set(headers[s])]
        if not partners:
            if candidate in named and failure is None:
                failure = (f"{candidate}: looks like the sample submission, but no other CSV has its id column "
                           f"{id_column!r} without its value columns (the test file); found "
                           + ", ".join(s.name for s in sources if s != candidate))
            continue
        ids = _ids(candidate, id_column)
        expected = set(ids)
        for partner in partners:
            partner_ids = _ids(partner, id_column)
            if set(partner_ids) == expected:
                return SampleLayout(candidate, id_column, tuple(values), partner)
        if candidate in named and failure is None:
            partner = partners[0]
            partner_ids = _ids(partner, id_column)
            found = set(partner_ids)
            absent = [i for i in ids if i not in found]
            extra = [i for i in partner_ids if i not in expected]
            example = (f"id {absent[0]!r} of the sample is not in {partner.name}" if absent
                       else f"id {extra[0]!r} of {partner.name} is not in the sample")
            failure = (f"{candidate}: its {id_column!r} ids are not the test file's ({partner}): {example}; "
                       f"{len(absent)} sample id(s) absent from the test, {len(extra)} test id(s) absent from the sample")
    raise io.InputError(failure or f"{data_dir}: no sample submission found: no CSV lists another CSV's ids in its "
                                   f"first column (looked at {', '.join(s.name for s in sources)})")
