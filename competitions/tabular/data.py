"""Any tabular competition's files: the sample submission (found by content), the test
file listing its ids, the train file, and what is to be predicted, read from them.

Nothing here knows a competition: the id column and the value columns come from the
sample, the target(s) from the train columns, and the task from the targets and the
metric. Whatever cannot be inferred is one error naming the file and the column.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from common.metrics import Metric
from common.submission import SampleLayout, SubmissionFormat, infer_sample

TASKS = ("regression", "binary", "multiclass", "multilabel")


@dataclass
class Target:
    """What the model learns and how its predictions become submission columns.

    regression: `columns` are train columns, predicted as numbers into the same-named
    sample columns. binary/multiclass with a long sample: `columns[0]` holds a label,
    predicted as a label or as the probability of `classes[1]` (binary). multiclass with a
    wide sample: one probability column per class, `class_columns[i]` for `classes[i]`.
    multilabel: one 0/1 train column per sample column."""

    task: str
    columns: list[str]                 # train column(s) learned
    sample_columns: list[str]          # the sample's value columns, in its order
    classes: list = field(default_factory=list)        # class values as train holds them, sorted
    class_columns: list[str] = field(default_factory=list)  # wide multiclass: sample column per class


@dataclass
class TabularData:
    train: pd.DataFrame       # as read, every column text; the id column kept
    test: pd.DataFrame
    sample: pd.DataFrame      # as read, every cell text
    layout: SampleLayout
    train_source: io.Source
    target: Target
    features: list[str]       # columns the model may use: in train and test, not id, not target
    source: Path
    # The folder's metric and submission format (the domain follows the metric): the
    # generic competition reads them here, so the competition object learns nothing.
    metric: Metric | None = None
    submission: SubmissionFormat | None = None

    @property
    def id_column(self) -> str:
        return self.layout.id_column


def _read(source: io.Source) -> pd.DataFrame:
    # Every cell as text: the column kinds are decided on the values, not on pandas' guess,
    # and ids such as "007" stay as written.
    return io.read_csv(source, dtype=str, keep_default_na=False, na_values=[""])


class NoTrainFile(io.InputError):
    """The folder has the sample and the test but nothing to learn from (a code
    competition's hidden-test folder, or a folder of the sample alone)."""


def find_train(sources: list[io.Source], layout: SampleLayout, test_columns: list[str]) -> io.Source:
    """The CSV holding most of the test file's columns and more (the targets): named
    train* first; neither the sample nor the test."""
    features = set(test_columns) - {layout.id_column}
    best, best_key = None, None
    for source in sources:
        if source in (layout.source, layout.test):
            continue
        columns = set(map(str, io.read_csv(source, nrows=0).columns))
        shared = len(features & columns) / max(len(features), 1)
        extra = columns - set(test_columns)
        if shared < 0.5 or not extra:
            continue
        key = ("train" in source.name.lower(), shared, -len(extra))
        if best_key is None or key > best_key:
            best, best_key = source, key
    if best is None:
        # A train file separated by something else reads as one column: say so, as the
        # built-in competitions do, rather than that there is none.
        others = [source for source in sources if source not in (layout.source, layout.test)]
        for source in sorted(others, key=lambda source: "train" not in source.name.lower()):
            try:
                io.check_separator(source, io.header_line(source))
            except io.InputError as error:
                raise NoTrainFile(str(error)) from None
        raise NoTrainFile(f"{layout.test.path.parent}: no train file: no CSV besides {layout.source.name} and "
                            f"{layout.test.name} holds most of {layout.test.name}'s columns plus the target(s)")
    return best


def _numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce")


def _match_classes(values: list[str], columns: list[str]) -> list[str] | None:
    """The sample column of each class value, if the columns name exactly the classes:
    as written, ignoring case, or as a common prefix + the value (e.g. `class_3`)."""
    for key in (lambda text: text, lambda text: text.lower()):
        by_key = {key(c): c for c in columns}
        if len(by_key) == len(columns) and sorted(by_key) == sorted(key(v) for v in values):
            return [by_key[key(v)] for v in values]
    prefix = _common_prefix(columns)
    if prefix:
        stripped = [c[len(prefix):] for c in columns]
        numeric_values = _numbers(pd.Series(values))
        for candidate_values in (values, [f"{v:g}" for v in numeric_values] if numeric_values.notna().all() else None):
            if candidate_values is not None and sorted(stripped) == sorted(candidate_values):
                return [columns[stripped.index(v)] for v in candidate_values]
    return None


def _common_prefix(columns: list[str]) -> str:
    if len(columns) < 2:
        return ""
    prefix = columns[0]
    for column in columns[1:]:
        while not column.startswith(prefix):
            prefix = prefix[:-1]
    return prefix


def _sorted_classes(values: pd.Series) -> list[str]:
    """Distinct labels, numerically sorted when every one is a number."""
    distinct = sorted(set(values.dropna()))
    numeric = _numbers(pd.Series(distinct))
    if len(distinct) and numeric.notna().all():
        return [value for _, value in sorted(zip(numeric, distinct))]
    return distinct


def infer_target(train: pd.DataFrame, test_columns: list[str], layout: SampleLayout, train_source,
                 metric: Metric | None) -> Target:
    """The train column(s) to learn and the task, from the sample's value columns.

    A long sample names a train column (or, failing that, train has exactly one column
    the test lacks); a wide sample either names train columns (several targets) or the
    classes of one train column (one probability column per class)."""
    values = list(layout.value_columns)
    extra = [c for c in train.columns if c not in test_columns and c != layout.id_column]
    if len(values) == 1:
        column = values[0] if values[0] in train.columns else (extra[0] if len(extra) == 1 else None)
        if column is None:
            raise io.InputError(f"{train_source}: no column {values[0]!r} (the sample's value column), and "
                                f"{len(extra)} columns absent from the test ({', '.join(extra[:6])}) leave the target unclear")
        labels = train[column]
        present = labels.dropna()
        if present.empty:
            raise io.InputError(f"{train_source}: column {column!r} (the target) is empty")
        if present.nunique() < 2:  # nothing to learn, whatever the task: CatBoost would fail deep inside
            raise io.InputError(f"{train_source}: column {column!r} (the target) holds one value only, "
                                f"{present.iloc[0]!r}, in all {len(present)} labelled rows: there is nothing to learn")
        check_metric_fits(present, column, train_source, metric)
        classification = _is_classification(present, metric)
        if not classification:
            numbers = _numbers(present)
            if numbers.isna().any():
                row = int(np.flatnonzero(numbers.isna().to_numpy())[0])
                raise io.InputError(f"{train_source}: row {present.index[row] + 2}: {column}={present.iloc[row]!r} is not a "
                                    f"number, and the metric {metric.name if metric else '(none)'} scores numbers")
            return Target("regression", [column], values)
        classes = _sorted_classes(present)
        task = "binary" if len(classes) == 2 else "multiclass"
        if task == "multiclass" and metric is not None and metric.output in ("probability", "score"):
            raise io.InputError(f"{layout.source}: one value column {values[0]!r} for {len(classes)} classes of "
                                f"{column!r}, but {metric.name} scores probabilities: a multi-class sample has one "
                                f"column per class")
        return Target(task, [column], values, classes)

    if all(v in train.columns for v in values):
        numbers = train[values].apply(_numbers)
        binary = numbers.isin([0.0, 1.0]).all().all() and train[values].notna().all().all()
        if binary and (metric is None or metric.output != "value"):
            constant = [v for v in values if numbers[v].nunique() < 2]
            if constant:
                raise io.InputError(f"{train_source}: label column {constant[0]!r} holds one value only, "
                                    f"{train[constant[0]].iloc[0]!r}, in every row: there is nothing to learn for it")
            return Target("multilabel", values, values, [0, 1])
        raise io.InputError(f"{layout.source}: {len(values)} value columns that are train columns, not all 0/1: "
                            f"several regression targets are not supported yet")
    for column in extra + [c for c in train.columns if c not in extra and c != layout.id_column]:
        classes = _sorted_classes(train[column])
        if len(classes) != len(values):
            continue
        matched = _match_classes(classes, values)
        if matched is not None:
            return Target("multiclass" if len(classes) > 2 else "binary", [column], values, classes, matched)
    raise io.InputError(f"{layout.source}: its {len(values)} value columns ({', '.join(values[:6])}"
                        f"{', ...' if len(values) > 6 else ''}) are neither train columns nor the classes of one "
                        f"train column of {train_source.name}")


CLASSIFICATION_METRICS = ("accuracy", "auc", "logloss", "f1", "f1_macro")
REGRESSION_METRICS = ("rmse", "rmsle", "mae")


def check_metric_fits(labels: pd.Series, column: str, source, metric: Metric | None) -> None:
    """A metric for numbers on a target of two values (0/1, yes/no), or a metric for
    classes on a target of fractional numbers, is a mistake, not a choice: refused naming
    the metrics that fit, where it would otherwise train the wrong kind of model silently."""
    if metric is None:
        return
    distinct = labels.unique()
    numbers = _numbers(pd.Series(distinct))
    if metric.output not in ("label", "probability", "score") and len(distinct) == 2:
        shown = ", ".join(map(repr, _sorted_classes(labels)))
        raise io.InputError(f"{source}: column {column!r} (the target) holds two values ({shown}), a binary target, "
                            f"but {metric.name} scores numbers; metrics that fit: {', '.join(CLASSIFICATION_METRICS)}")
    fractional = numbers.notna().all() and (numbers.round() != numbers).any()
    if metric.output in ("label", "probability", "score") and fractional:
        raise io.InputError(f"{source}: column {column!r} (the target) holds {len(distinct)} numbers with fractions "
                            f"(e.g. {distinct[0]!r}), a regression target, but {metric.name} scores classes; "
                            f"metrics that fit: {', '.join(REGRESSION_METRICS)}")


def guess_metric(target: Target, sample: pd.DataFrame) -> str:
    """A metric when none was given, from what the sample holds: numbers for
    regression, labels when the sample holds whole numbers or words, else probabilities."""
    if target.task == "regression":
        return "rmse"
    if target.class_columns or target.task == "multilabel":
        return "logloss"
    values = pd.to_numeric(sample[target.sample_columns[0]], errors="coerce")
    if values.notna().all() and (values.round() != values).any():
        return "auc" if target.task == "binary" else "logloss"
    return "accuracy"


def _is_classification(labels: pd.Series, metric: Metric | None) -> bool:
    if metric is not None:
        return metric.output in ("label", "probability", "score")
    numbers = _numbers(labels)
    return bool(numbers.isna().any() or labels.nunique() <= 2)


def read_sample(layout: SampleLayout) -> pd.DataFrame:
    return io.read_csv(layout.source, dtype=str, keep_default_na=False)


def read_test(data_dir: Path) -> tuple[SampleLayout, pd.DataFrame]:
    """The sample's layout and the test file it lists, read as `load` reads them, without
    the train file: all that inference reads (competitions/tabular/inference.py)."""
    layout = infer_sample(Path(data_dir))
    return layout, _read(layout.test)


def load(data_dir: Path, metric: Metric | None) -> TabularData:
    data_dir = Path(data_dir)
    layout, test = read_test(data_dir)
    sample = read_sample(layout)
    train_source = find_train(io.csv_sources(data_dir), layout, list(test.columns))
    train = _read(train_source)
    for frame, source in ((train, train_source), (test, layout.test)):
        if layout.id_column in frame.columns:
            ids = frame[layout.id_column]
            duplicated = ids[ids.duplicated()]
            if len(duplicated):
                raise io.InputError(f"{source}: id {duplicated.iloc[0]!r} ({layout.id_column}) appears more than once")
    target = infer_target(train, list(test.columns), layout, train_source, metric)
    missing = train[target.columns].isna().any(axis=1)
    if missing.all():
        raise io.InputError(f"{train_source}: every row lacks the target {target.columns[0]!r}")
    if missing.any():
        # Rows without a label teach nothing: counted, reported, left out of training.
        train = train.loc[~missing].reset_index(drop=True)
    train.attrs["unlabelled_rows"] = int(missing.sum())
    features = [c for c in test.columns if c != layout.id_column and c in train.columns and c not in target.columns]
    if not features:
        raise io.InputError(f"{layout.test}: no feature column shared with {train_source.name}")
    return TabularData(train=train, test=test, sample=sample, layout=layout, train_source=train_source,
                       target=target, features=features, source=data_dir)
