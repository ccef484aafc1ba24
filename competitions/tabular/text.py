"""Free-text competitions: recognising a CSV whose features are mostly free text (Kaggle's
nlp-getting-started, spooky-author-identification, jigsaw-style 0/1 label columns), and
the two classic text model families it gets instead of the trees.

Both families see the same sparse features, fitted once on the train + test cells (no
label is looked at): each text column's word 1-2 gram and character 2-5 gram TF-IDF with
sublinear tf, the categorical columns one-hot (a tweet's keyword, its location), the
numbers standardised.

- `tfidf`: logistic regression on those features, C chosen by an inner stratified CV on
  the rows it is given (nested inside the outer folds).
- `nbsvm`: Wang & Manning's NB-SVM in its logistic form: the binarised features scaled by
  each target's naive-Bayes log-count ratio, then a logistic regression per target (one
  against the rest for several classes, one per label for 0/1 label columns), C again by
  inner CV.

They plug into the tabular package's out-of-fold CV, log-linear blend and metric decision
(F1/accuracy thresholds from common/thresholds.py, temperature for log loss), so a text
competition keeps the one protocol and the one loader.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from common import io
from competitions.tabular import features as F

log = logging.getLogger("compete")

FAMILIES = ("tfidf", "nbsvm")
# Text must hold most of what the rows say, and be a fair share of the columns: a table
# with one review column among ten numbers stays a table.
TEXT_CHARACTER_SHARE = 0.6
TEXT_COLUMN_SHARE = 1 / 3
# Five steps of 4x (3.3x for NB-SVM): with four, the bench's runs chose the grid's edge
# (TF-IDF C 16 on the authors and comments, NB-SVM 0.03 on the tweets).
C_GRID = (0.25, 1.0, 4.0, 16.0, 64.0)
# NB-scaled features are log-count ratios times presence, several times larger than a
# TF-IDF weight: the same fit needs a smaller C.
NB_C_GRID = (0.009, 0.03, 0.1, 0.3, 1.0)
INNER_FOLDS = 3
WORD_FEATURES, CHARACTER_FEATURES = 200_000, 200_000
NB_SMOOTHING = 1.0


@dataclass
class TextLayout:
    """What the recognition found: the text columns and the share of characters they hold."""

    text: list[str]
    others: dict[str, str]      # other feature column -> its kind
    share: float                # of the feature cells' characters, in the text columns

    def describe(self) -> str:
        others = ", ".join(f"{c} ({k})" for c, k in self.others.items()) or "none"
        columns = ", ".join(repr(c) for c in self.text)
        return f"free-text CSV: text column{'s' if len(self.text) > 1 else ''} {columns} {'hold' if len(self.text) > 1 else 'holds'} {self.share:.0%} of " \
               f"the feature characters; other columns: {others}"


def _characters(values: pd.Series) -> int:
    return int(values.fillna("").astype(str).str.len().sum())


def recognise(train: pd.DataFrame, test: pd.DataFrame, kinds: dict[str, str], train_name: str,
              test_name: str) -> TextLayout | None:
    """The text layout when free text dominates the features, else None (a table).
    A text column empty in every row of train or of the test is refused: a model would
    learn nothing from it, or predict every test row alike."""
    text = [column for column, kind in kinds.items() if kind == "text"]
    if not text:
        return None
    for column in text:
        for frame, name in ((train, train_name), (test, test_name)):
            if column in frame.columns and not frame[column].fillna("").astype(str).str.strip().ne("").any():
                raise io.InputError(f"{name}: column {column!r} (free text) is empty in every row")
    sizes = {column: _characters(train[column]) + _characters(test[column]) for column in kinds}
    share = sum(sizes[c] for c in text) / max(sum(sizes.values()), 1)
    if share < TEXT_CHARACTER_SHARE or len(text) / len(kinds) < TEXT_COLUMN_SHARE:
        return None
    return TextLayout(text, {c: k for c, k in kinds.items() if c not in text}, round(share, 4))


def refuse_empty(train: pd.DataFrame, test: pd.DataFrame, features: list[str], train_name: str, test_name: str) -> None:
    """Checked when the files are read, before any work: every feature empty in every row
    leaves nothing to learn, and a column that is free text in one file and empty in every
    row of the other is a broken export; one line each, not a model of the prior."""
    def filled(frame: pd.DataFrame) -> pd.Series:
        return frame[features].fillna("").astype(str).apply(lambda column: column.str.strip().ne("").any())
    in_train, in_test = filled(train), filled(test)
    if not (in_train | in_test).any():
        raise io.InputError(f"{train_name}: every feature column ({', '.join(features[:6])}) is empty in every row")
    for column in features:
        for filled_here, other, name in ((in_test, train, train_name), (in_train, test, test_name)):
            if filled_here[column] and not (in_train & in_test)[column]:
                source = test if other is train else train
                if F.column_kind(source[column]) == "text":
                    raise io.InputError(f"{name}: column {column!r} (free text) is empty in every row")


class TextVectors:
    """Rows of a frame -> one sparse matrix (text TF-IDF, one-hot categories, scaled numbers).

    Fitted once on train + test cells. The matrix of the frame it was fitted on is kept,
    keyed by each row's cells, so the folds and families slice it instead of re-reading
    the text (the character n-grams are the slow part); a row with the same cells has the
    same features, so a match by content is exact."""

    def __init__(self, text: list[str], categorical: list[str], numeric: list[str]):
        self.text, self.categorical, self.numeric = text, categorical, numeric
        self._memo = None

    @property
    def columns(self) -> list[str]:
        return [*self.text, *self.categorical, *self.numeric]

    def fit(self, frame: pd.DataFrame) -> TextVectors:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        self.vectorizers = []
        for column in self.text:
            cells = self._cells(frame, column)
            for analyzer, ngrams, limit in (("word", (1, 2), WORD_FEATURES), ("char_wb", (2, 5), CHARACTER_FEATURES)):
                words = {"token_pattern": r"(?u)\b\w+\b"} if analyzer == "word" else {}  # one-letter words count
                vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, min_df=2, max_features=limit,
                                             sublinear_tf=True, strip_accents="unicode", dtype=np.float32, **words)
                try:
                    vectorizer.fit(cells)
                except ValueError:  # no term in two rows: nothing this analyser can learn
                    continue
                self.vectorizers.append((column, analyzer, vectorizer))
        self.onehot = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=2, dtype=np.float32).fit(
            frame[self.categorical].astype(str)) if self.categorical else None
        self.scaler = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()).fit(
            frame[self.numeric].astype(float)) if self.numeric else None
        self.text_width = sum(len(v.vocabulary_) for _, _, v in self.vectorizers)
        return self

    @staticmethod
    def _cells(frame: pd.DataFrame, column: str) -> pd.Series:
        return frame[column].fillna("").astype(str)

    def transform(self, frame: pd.DataFrame) -> sparse.csr_matrix:
        blocks = [vectorizer.transform(self._cells(frame, column)) for column, _, vectorizer in self.vectorizers]
        if self.onehot is not None:
            blocks.append(sparse.csr_matrix(self.onehot.transform(frame[self.categorical].astype(str))))
        if self.scaler is not None:
            blocks.append(sparse.csr_matrix(np.clip(self.scaler.transform(frame[self.numeric].astype(float)), -5, 5)))
        if not blocks:
            return sparse.csr_matrix((len(frame), 0), dtype=np.float32)
        return sparse.hstack(blocks, format="csr", dtype=np.float32)

    def _keys(self, frame: pd.DataFrame) -> np.ndarray:
        return pd.util.hash_pandas_object(frame[self.columns].astype(str), index=False).to_numpy()

    def remember(self, frame: pd.DataFrame) -> sparse.csr_matrix:
        matrix = self.transform(frame)
        keys = pd.Series(np.arange(len(frame)), index=self._keys(frame))
        self._memo = (keys[~keys.index.duplicated()], matrix)
        return matrix

    def matrix(self, frame: pd.DataFrame) -> sparse.csr_matrix:
        if self._memo is not None:
            keys, matrix = self._memo
            rows = keys.reindex(self._keys(frame))
            if rows.notna().all():
                return matrix[rows.to_numpy(dtype=int)]
        return self.transform(frame)

    def forget(self) -> None:
        self._memo = None

    def __getstate__(self):
        return {**self.__dict__, "_memo": None}  # the saved model carries the vocabularies, not the train matrix

    def binary(self, matrix: sparse.csr_matrix) -> sparse.csr_matrix:
        """Presence of each text n-gram and category (NB-SVM's features); numbers left out:
        a log-count ratio needs counts."""
        width = matrix.shape[1] - (len(self.numeric) if self.scaler is not None else 0)
        binary = matrix[:, :width].copy()
        binary.data = (binary.data > 0).astype(np.float32)
        return binary


class _Constant:
    """A target with one value in the rows given (a rare label absent from a fold)."""

    def __init__(self, value: float):
        self.value, self.C_ = float(value), np.nan

    def probability(self, matrix) -> np.ndarray:
        return np.full(matrix.shape[0], self.value)


class _Logistic:
    """One binary or multi-class logistic regression, C chosen from `grid` by inner
    stratified CV on log loss (or fixed at `C`).

    Solvers measured on 1,000-1,500 synthetic tweets / sentences (~18k features): binary,
    liblinear's dual 0.05 s against 0.9 s primal and 1.7 s lbfgs (the dual is the small
    side when features outnumber rows); multinomial, saga at tol 1e-3 0.27 s against 2-4 s
    lbfgs, the same held-out log loss (0.428 vs 0.427)."""

    def __init__(self, seed: int, C: float | None = None, grid: tuple = C_GRID):
        self.seed, self.C, self.grid = seed, C, grid

    def fit(self, matrix, y: np.ndarray):
        from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
        from sklearn.model_selection import StratifiedKFold

        classes = np.unique(y)
        if len(classes) == 2:
            solver = {"solver": "liblinear", "dual": bool(matrix.shape[1] > matrix.shape[0]), "max_iter": 1000}
        else:
            solver = {"solver": "saga", "tol": 1e-3, "max_iter": 300}
        matrix = matrix.astype(np.float64)  # what both solvers work in: one copy, not one per C
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few members of a class in an inner fold; saga's iteration cap
            if self.C is not None:
                self.model_ = LogisticRegression(C=self.C, random_state=self.seed, **solver)
                self.model_.fit(matrix, y)
                self.C_ = self.C
                return self
            inner = min(INNER_FOLDS, int(np.bincount(np.searchsorted(classes, y)).min()))
            if inner < 2:  # a class too rare to split: the middle of the grid
                return _Logistic(self.seed, self.grid[len(self.grid) // 2]).fit(matrix, y)
            self.model_ = LogisticRegressionCV(Cs=list(self.grid), cv=StratifiedKFold(inner, shuffle=True, random_state=self.seed),
                                               scoring="neg_log_loss", random_state=self.seed, **solver)
            self.model_.fit(matrix, y)
            self.C_ = float(np.atleast_1d(self.model_.C_)[0])
        return self

    def probabilities(self, matrix) -> np.ndarray:
        return self.model_.predict_proba(matrix)

    def probability(self, matrix) -> np.ndarray:
        return self.probabilities(matrix)[:, 1]


def _binary(seed: int, matrix, y: np.ndarray, C: float | None, grid: tuple = C_GRID):
    return _Constant(y[0]) if len(np.unique(y)) < 2 else _Logistic(seed, C, grid).fit(matrix, y)


class TfidfLogistic:
    """Logistic regression on the TF-IDF features: multinomial for several classes, one per
    label for 0/1 label columns."""

    name = "tfidf"
    grid = C_GRID

    def __init__(self, task: str, vectors: TextVectors, seed: int, C: list | None = None):
        self.task, self.vectors, self.seed, self.C = task, vectors, seed, C

    def fit(self, X: pd.DataFrame, y: np.ndarray):
        matrix = self.vectors.matrix(X)
        if self.task == "multilabel":
            self.models_ = [_binary(self.seed, matrix, y[:, j], self.C[j] if self.C else None) for j in range(y.shape[1])]
        elif self.task == "multiclass":
            self.models_ = [_Logistic(self.seed, self.C[0] if self.C else None, self.grid).fit(matrix, y)]
        else:
            self.models_ = [_binary(self.seed, matrix, y, self.C[0] if self.C else None)]
        return self

    def chosen(self) -> list[float]:
        return [model.C_ for model in self.models_]

    def refit(self, X, y, folds: list) -> TfidfLogistic:
        """The final model on every row at the C the folds chose (their median, per target):
        the inner CV already spoke five times."""
        C = [float(np.nanmedian(column)) if not np.isnan(column).all() else self.grid[1]
             for column in np.array([fold.chosen() for fold in folds], dtype=float).T]
        return type(self)(self.task, self.vectors, self.seed, C).fit(X, y)

    def summary(self) -> str:
        return "C " + ", ".join("-" if np.isnan(c) else f"{c:g}" for c in self.chosen())

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        matrix = self.vectors.matrix(X)
        if self.task == "multiclass":
            return self.models_[0].probabilities(matrix)
        if self.task == "multilabel":
            return np.column_stack([model.probability(matrix) for model in self.models_])
        return self.models_[0].probability(matrix)


class NaiveBayesLogistic(TfidfLogistic):
    """NB-SVM (Wang & Manning 2012) with a logistic loss: per target, the binarised
    features times the log-count ratio r = log((p/|p|) / (q/|q|)), p and q the smoothed
    feature counts of the target's positive and negative rows."""

    name = "nbsvm"
    grid = NB_C_GRID

    def _targets(self, y: np.ndarray) -> np.ndarray:
        if self.task == "multilabel":
            return y
        if self.task == "multiclass":
            return (y[:, None] == np.arange(self.classes_)[None, :]).astype(int)
        return y[:, None]

    def fit(self, X: pd.DataFrame, y: np.ndarray):
        binary = self.vectors.binary(self.vectors.matrix(X))
        self.classes_ = int(y.max()) + 1 if self.task == "multiclass" else 0
        self.ratios_, self.models_ = [], []
        for j, target in enumerate(self._targets(y).T):
            positive, negative = target == 1, target == 0
            p = NB_SMOOTHING + np.asarray(binary[positive].sum(axis=0)).ravel()
            q = NB_SMOOTHING + np.asarray(binary[negative].sum(axis=0)).ravel()
            ratio = (np.log(p / p.sum()) - np.log(q / q.sum())).astype(np.float32)
            self.ratios_.append(ratio)
            self.models_.append(_binary(self.seed, binary.multiply(ratio).tocsr(), target, self.C[j] if self.C else None,
                                        self.grid))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        binary = self.vectors.binary(self.vectors.matrix(X))
        columns = np.column_stack([model.probability(binary.multiply(ratio).tocsr())
                                   for ratio, model in zip(self.ratios_, self.models_)])
        if self.task == "multiclass":
            # One against the rest: each row's scores made a distribution (the temperature
            # the decision fits afterwards sets how sharp).
            columns = np.clip(columns, 1e-9, None)
            return columns / columns.sum(axis=1, keepdims=True)
        return columns if self.task == "multilabel" else columns[:, 0]
