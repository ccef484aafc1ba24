"""Column kinds read from the values, and the feature frames the models see.

Every raw cell arrives as text. A column is numeric when nearly all its cells parse as
numbers, a date when nearly all parse as dates (then split into parts the trees can cut
on), free text when its cells are long, many-worded and mostly distinct (then TF-IDF,
and a few SVD components of it for the trees), else categorical (native in CatBoost,
one-hot for the linear model).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

KINDS = ("numeric", "categorical", "text", "date")
PARSED_SHARE = 0.95     # share of non-empty cells that must parse for numeric / date
DATE_PATTERN = re.compile(r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?\s*$")
TEXT_WORDS, TEXT_DISTINCT = 4.0, 0.5  # mean words per cell, share of distinct cells
TEXT_COMPONENTS = 16
MISSING = "<missing>"


def column_kind(values: pd.Series) -> str:
    present = values.dropna()
    present = present[present.str.strip() != ""]
    if present.empty:
        return "categorical"
    if pd.to_numeric(present, errors="coerce").notna().mean() >= PARSED_SHARE:
        return "numeric"
    probe = present.iloc[:2000]
    if probe.str.match(DATE_PATTERN).mean() >= PARSED_SHARE and _parse_dates(present).notna().mean() >= PARSED_SHARE:
        return "date"
    words = probe.str.split().str.len().mean()
    if words >= TEXT_WORDS and present.nunique() / len(present) >= TEXT_DISTINCT:
        return "text"
    return "categorical"


def _parse_dates(values: pd.Series) -> pd.Series:
    """Dates as written: month-first and day-first are both tried, the one that parses
    more cells wins (a day-first file has days above 12)."""
    best = None
    for dayfirst in (False, True):
        parsed = pd.to_datetime(values, errors="coerce", dayfirst=dayfirst, format="mixed", utc=True)
        if best is None or parsed.notna().sum() > best.notna().sum():
            best = parsed
    return best.dt.tz_localize(None)


@dataclass
class Columns:
    """What each feature column is, decided once on train + test together."""

    kinds: dict[str, str]
    unparsed: dict[str, int] = field(default_factory=dict)  # numeric/date cells that did not parse

    def of(self, kind: str) -> list[str]:
        return [column for column, k in self.kinds.items() if k == kind]


def describe(train: pd.DataFrame, test: pd.DataFrame, features: list[str]) -> Columns:
    kinds = {}
    for column in features:
        both = pd.concat([train[column], test[column]], ignore_index=True)
        kinds[column] = column_kind(both)
    return Columns(kinds)


def date_parts(values: pd.Series, name: str) -> pd.DataFrame:
    parsed = _parse_dates(values)
    parts = {
        f"{name}__year": parsed.dt.year, f"{name}__month": parsed.dt.month, f"{name}__day": parsed.dt.day,
        f"{name}__weekday": parsed.dt.day_of_week, f"{name}__dayofyear": parsed.dt.day_of_year,
        f"{name}__days": (parsed - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400.0,
    }
    if (parsed.dt.hour.fillna(0) != 0).any() or (parsed.dt.minute.fillna(0) != 0).any():
        parts[f"{name}__hour"] = parsed.dt.hour + parsed.dt.minute / 60.0
    return pd.DataFrame({key: value.astype(float) for key, value in parts.items()}, index=values.index)


class Features:
    """Raw text frames -> (tree frame, linear inputs), fitted on train + test cells (no
    labels are looked at, so fitting on the test's cells leaks nothing)."""

    def __init__(self, columns: Columns, seed: int = 0):
        self.columns = columns
        self.seed = seed

    def fit(self, train: pd.DataFrame, test: pd.DataFrame) -> "Features":
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.text_models = {}
        for column in self.columns.of("text"):
            cells = pd.concat([train[column], test[column]], ignore_index=True).fillna("")
            vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=20_000, sublinear_tf=True)
            try:
                matrix = vectorizer.fit_transform(cells)
            except ValueError:  # every cell empty or too rare: nothing to learn
                continue
            components = min(TEXT_COMPONENTS, matrix.shape[1] - 1)
            svd = TruncatedSVD(components, random_state=self.seed).fit(matrix) if components >= 1 else None
            self.text_models[column] = (vectorizer, svd)
        return self

    def trees(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Numbers as floats, dates as parts, text as SVD components, categories as text."""
        parts = []
        for column, kind in self.columns.kinds.items():
            values = frame[column]
            if kind == "numeric":
                parts.append(pd.to_numeric(values, errors="coerce").astype(float).rename(column).to_frame())
            elif kind == "date":
                parts.append(date_parts(values, column))
            elif kind == "text":
                vectorizer, svd = self.text_models.get(column, (None, None))
                lengths = values.fillna("").str.len().astype(float).rename(f"{column}__length").to_frame()
                parts.append(lengths)
                if svd is not None:
                    reduced = svd.transform(vectorizer.transform(values.fillna("")))
                    parts.append(pd.DataFrame(reduced, index=frame.index,
                                              columns=[f"{column}__svd{i}" for i in range(reduced.shape[1])]))
            else:
                parts.append(values.fillna(MISSING).astype(str).rename(column).to_frame())
        return pd.concat(parts, axis=1)

    def categorical(self) -> list[str]:
        return self.columns.of("categorical")

    def texts(self, frame: pd.DataFrame) -> dict:
        """Each text column's TF-IDF matrix (for the linear model)."""
        return {column: vectorizer.transform(frame[column].fillna("")) for column, (vectorizer, _) in self.text_models.items()}
