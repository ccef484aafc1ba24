"""`compete new NAME --platform P`: a working skeleton competition and its registry entry.

The package it writes runs at once (`compete data synth NAME`, `compete run NAME`, the
contract suite): a generator of a small competition in the platform's layout with its
answer key (synth.py), a baseline (model.py), the options dataclass and the class
(__init__.py), and a starter notebook. A newcomer replaces them stage by stage, keeping
it green. Files are written from templates here rather than copied from a built-in
package, which would carry that competition's particulars.
"""
from __future__ import annotations

import json
import keyword
import re
from pathlib import Path
from string import Template

from common import io
from common.registry import PLATFORMS, Registry

# Each platform's usual file names and id column (Kaggle's sample_submission.csv and id,
# Zindi's Train.csv/SampleSubmission.csv and ID, DrivenData's submission_format.csv).
LAYOUTS = {
    "kaggle": {"train": "train.csv", "test": "test.csv", "sample": "sample_submission.csv", "id": "id"},
    "zindi": {"train": "Train.csv", "test": "Test.csv", "sample": "SampleSubmission.csv", "id": "ID"},
    "drivendata": {"train": "train.csv", "test": "test.csv", "sample": "submission_format.csv", "id": "id"},
}
TITLES = {"kaggle": "Kaggle", "zindi": "Zindi", "drivendata": "DrivenData"}
NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
MARKER = "# `compete new` adds its entry above this line"


def write(registry: Registry, competitions_dir: Path, name: str, platform: str) -> list[Path]:
    """Write competitions_dir/MODULE/ (__init__.py, synth.py, model.py), the notebook
    beside competitions_dir (../notebooks/NAME.ipynb) and the entry in
    competitions_dir/__init__.py; return the files written. Nothing is written when
    NAME is taken or not a name."""
    if platform not in PLATFORMS:
        raise io.InputError(f"--platform {platform}: unknown platform; known: {', '.join(PLATFORMS)}")
    if not NAME.fullmatch(name):
        raise io.InputError(f"{name!r}: a competition's name is lower-case letters and digits, words joined by '-' "
                            f"(e.g. wind-power)")
    module = name.replace("-", "_")
    package = Path(competitions_dir) / module
    notebook = Path(competitions_dir).parent / "notebooks" / f"{name}.ipynb"
    table = Path(competitions_dir) / "__init__.py"
    if name in registry.entries or keyword.iskeyword(module):
        raise io.InputError(f"{name!r}: already a competition's name (`compete list`); choose another")
    for taken in (package, notebook):
        if taken.exists():
            raise io.InputError(f"{taken}: exists already; choose another name")
    source = table.read_text()
    if source.count(MARKER) != 1:
        raise io.InputError(f"{table}: no line {MARKER!r} to add the entry above; add it to the table by hand")

    layout = LAYOUTS[platform]
    values = {"name": name, "module": module, "platform": platform, "title": TITLES[platform],
              "class_name": "".join(word.capitalize() for word in name.split("-")),
              "summary": f"{TITLES[platform]}, a skeleton from `compete new`: a 0/1 target from four numbers, AUC",
              **layout}
    quoted = {key: json.dumps(value) for key, value in values.items()}   # Python string literals, in double quotes
    files = {package / "__init__.py": Template(PACKAGE).substitute(values, **{f"{k}_": v for k, v in quoted.items()}),
             package / "synth.py": Template(SYNTH).substitute(values),
             package / "model.py": Template(MODEL).substitute(values),
             notebook: _notebook(values)}
    entry = Template(ENTRY).substitute(values, **{f"{k}_": v for k, v in quoted.items()})
    for path, text in files.items():
        io.write_text(path, text)
    io.write_text(table, source.replace(f"    {MARKER}", entry + f"    {MARKER}"))   # last: never an entry without its package
    return [*files, table]


ENTRY = """\
    Entry($name_, "competitions.$module:$class_name", $platform_, "auc",
          $summary_,
          data_files=($train_, $test_, $sample_), sources=("synth", "download")),
"""

PACKAGE = '''\
"""$name: $summary.

Written by `compete new $name --platform $platform` as a working skeleton: synth.py makes
a small competition in $title's layout with its answers, model.py is the baseline. Replace
them stage by stage (the platform's files in `load`, your model in model.py), keeping
`compete run $name --fast` and the contract suite (tests/test_contract.py) passing. Its
registry entry, in competitions/__init__.py, says what this class says.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common import io
from common.competition import BaseCompetition, OutOfFold, Report
from common.metrics import ROC_AUC
from common.options import Options, option
from common.submission import SubmissionFormat

log = logging.getLogger("compete")

TRAIN, TEST, SAMPLE = $train_, $test_, $sample_
ID, TARGET = $id_, "target"
FEATURES = ["x1", "x2", "x3", "x4"]


@dataclass
class ${class_name}Options(Options):
    folds: int | None = option(None, "cross-validation folds; None: 3 with --fast, 5", minimum=2)
    c: float = option(1.0, "the logistic regression's inverse L2 penalty (less: more regularised)", above=0,
                      search=(0.01, 100.0), log=True)


@dataclass
class ${class_name}Data:
    train: pd.DataFrame   # ID, FEATURES, TARGET (0 or 1)
    test: pd.DataFrame    # ID, FEATURES, in the sample's order


class $class_name(BaseCompetition):
    name = $name_
    platform = $platform_
    slug = $name_   # the platform's id for the competition
    metric = ROC_AUC
    submission = SubmissionFormat(SAMPLE, id_column=ID, domain="probability", columns=(TARGET,))
    options = ${class_name}Options
    description = $summary_
    data_files = (TRAIN, TEST, SAMPLE)
    float_format = "%.6f"

    def synth(self, out_dir: Path, seed: int, scale: str) -> None:
        from competitions.$module import synth
        synth.write(Path(out_dir), seed, scale)

    def load(self, data_dir: Path) -> ${class_name}Data:
        return ${class_name}Data(read(io.find(data_dir, TRAIN), [*FEATURES, TARGET]), read(io.find(data_dir, TEST), FEATURES))

    def fit(self, data: ${class_name}Data, options: ${class_name}Options, run_dir: Path):
        # scikit-learn and matplotlib load here, not at import: `compete list` and --help stay light
        from common import plots
        from competitions.$module import model

        folds = options.folds or (3 if options.fast else 5)
        X, y = data.train[FEATURES].to_numpy(), data.train[TARGET].to_numpy(dtype=int)
        predicted, fold = model.cross_validate(X, y, folds, options.seed, options.c)
        cv_score = self.metric(y, predicted)
        log.info("%s: %d rows, %d folds, cv %s %.5f", self.name, len(y), folds, self.metric.name, round(cv_score, 6))
        model.plot_out_of_fold(y, predicted, Path(run_dir) / "out_of_fold.png",
                               plots.cv_title(f"{self.name} out of fold", self.metric.name, cv_score))
        report = Report(
            cv_score=cv_score,
            fold_scores=[self.metric(y[fold == k], predicted[fold == k]) for k in range(folds)],
            note=f"all {len(y)} rows, out of fold, {folds} stratified folds",
            decisions={"folds": folds, "rows": len(y)},
            out_of_fold=OutOfFold(predictions=pd.DataFrame({ID: data.train[ID], TARGET: predicted}),
                                  truth=data.train[[ID, TARGET]], fold=fold))
        return model.fit(X, y, options.c), report

    def predict(self, model, data: ${class_name}Data) -> pd.DataFrame:
        return pd.DataFrame({ID: data.test[ID], TARGET: model.predict_proba(data.test[FEATURES].to_numpy())[:, 1]})


def read(source, columns: list[str]) -> pd.DataFrame:
    """The file's ids as text and `columns` as numbers; a bad cell is one line naming it."""
    frame = io.read_table(source, [ID, *columns], dtype=str, keep_default_na=False)
    io.unique(frame, ID, source)
    numbers = {column: io.numbers(frame, column, source, ID, required=True) for column in columns}
    if TARGET in numbers and not numbers[TARGET].isin([0, 1]).all():
        raise io.InputError(f"{source}: {TARGET} holds values other than 0 and 1")
    return pd.DataFrame({ID: frame[ID], **numbers})
'''

SYNTH = '''\
"""A small competition in $title's layout with its answer key: four numbers per row and
a 0/1 target two of them drive (so a baseline has something to find), the test's
truth in answers/solution.csv, where `compete score` looks for it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from competitions.$module import FEATURES, ID, SAMPLE, TARGET, TEST, TRAIN

ROWS = {"small": (600, 200), "full": (60_000, 20_000)}   # train, test


def write(out_dir: Path, seed: int, scale: str) -> None:
    train_rows, test_rows = ROWS[scale]
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(train_rows + test_rows, len(FEATURES))).round(4)
    odds = 1.5 * values[:, 0] - values[:, 1] + 0.5 * values[:, 0] * values[:, 2]
    target = (rng.random(len(values)) < 1 / (1 + np.exp(-odds))).astype(int)
    frame = pd.DataFrame({ID: np.arange(1, len(values) + 1), **dict(zip(FEATURES, values.T)), TARGET: target})
    train, test = frame.iloc[:train_rows], frame.iloc[train_rows:]
    io.write_csv(train, out_dir / TRAIN)
    io.write_csv(test.drop(columns=TARGET), out_dir / TEST)
    io.write_csv(pd.DataFrame({ID: test[ID], TARGET: 0.5}), out_dir / SAMPLE)
    io.write_csv(test[[ID, TARGET]], out_dir / "answers" / "solution.csv")
'''

MODEL = '''\
"""The baseline: standardised features into a logistic regression, cross-validated out
of fold. `fit` in __init__.py calls these three; put your model here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def fit(X: np.ndarray, y: np.ndarray, c: float):
    return make_pipeline(StandardScaler(), LogisticRegression(C=c)).fit(X, y)


def cross_validate(X: np.ndarray, y: np.ndarray, folds: int, seed: int, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Each row's probability from the model that did not see it, and the row's fold (0-based)."""
    predicted, fold = np.zeros(len(y)), np.zeros(len(y), dtype=int)
    for k, (train, valid) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y)):
        predicted[valid] = fit(X[train], y[train], c).predict_proba(X[valid])[:, 1]
        fold[valid] = k
    return predicted, fold


def plot_out_of_fold(y: np.ndarray, predicted: np.ndarray, path: Path, title: str) -> Path:
    """How the out-of-fold probabilities of the two classes separate, titled with the CV."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common import plots

    figure, axis = plt.subplots(figsize=(6, 4))
    for label, rows in ((0, "target 0"), (1, "target 1")):
        axis.hist(predicted[y == label], bins=np.linspace(0, 1, 21), alpha=0.6, label=rows)
    axis.set(xlabel="out-of-fold probability", ylabel="rows", title=title)
    axis.legend()
    return plots.save(figure, path)
'''

NOTEBOOK_CELLS = [
    ("markdown", """\
# $name ($title) — starter notebook

A skeleton written by `compete new`: a 0/1 target from four numbers, scored by AUC. Point
`COMPETE_DATA` at the platform's unzipped folder; without it the notebook makes a small
synthetic copy (same layout, known answers)."""),
    ("code", """\
import os
from pathlib import Path

import pandas as pd

import common
from common import runs
from competitions import REGISTRY

# Work in the checkout, as the command line does, whatever folder Jupyter started in:
# data/, runs/ and submissions/ are the README's folders and nothing lands in notebooks/.
# COMPETE_HOME moves the whole workspace (the tests point it at a temporary folder).
os.chdir(os.environ.get("COMPETE_HOME") or Path(common.__file__).resolve().parents[1])

competition = REGISTRY.competition("$name")
data_dir = Path(os.environ.get("COMPETE_DATA", "data/$name"))
if not (data_dir / "$train").exists():
    competition.synth(data_dir, seed=0, scale="small")
sorted(p.name for p in data_dir.iterdir())"""),
    ("markdown", """\
## 1. One call

`runs.run` is what `compete run $name --data DIR` does: load, cross-validate, fit, predict
and write a validated submission; the run directory keeps out_of_fold.csv and a plot
titled with the CV."""),
    ("code", """\
result = runs.run(competition, data_dir, competition.options(seed=0, fast=True, quiet=True))
print(f"CV {result.metric}: {result.cv_score:.4f}")
print("run:", result.run_dir)
pd.read_csv(result.submission).head(3)"""),
    ("markdown", """\
## 2. Scoring against known answers

Synthetic data comes with `answers/`; `compete score $name FILE --answers DIR/answers` does the same."""),
    ("code", """\
from common.submission import read_submission

answers = data_dir / "answers"
if answers.is_dir():
    print(competition.score(read_submission(result.submission), answers))"""),
]


def _notebook(values: dict) -> str:
    import nbformat
    make = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"display_name": "Python 3", "language": "python",
                                                                 "name": "python3"}})
    notebook.cells = [make[kind](Template(text).substitute(values)) for kind, text in NOTEBOOK_CELLS]
    for number, cell in enumerate(notebook.cells):
        cell.id = f"cell-{number}"   # fixed ids: the same command writes the same file
    return nbformat.writes(notebook) + "\n"
