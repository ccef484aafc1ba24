"""The contract every registered competition keeps, like scikit-learn's check_estimator:
small data -> load -> fit --fast -> predict -> the file validates -> same seed, same
bytes -> score -> broken input is one line naming the file and the row.

Everything goes through the real command line on data the project makes (`compete
data synth`, or the offline `fetch` where a competition has no generator), so a fifth
competition is checked by adding its registry entry and nothing here. The entry itself
(what `compete list` prints without importing the class) is checked against the class.
"""
from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from common import io
from common.competition import Competition
from common.registry import GENERIC
from competitions import REGISTRY, example_names


@dataclass
class Case:
    name: str
    competition: Competition
    data: Path
    work: Path
    submission: Path
    run_dir: Path
    stdout: str
    stderr: str
    loaded: object      # what `load` returned, in this process


# slow: a --fast run of every competition (shared with its own tests), and a second fit
@pytest.fixture(scope="module", params=[pytest.param(name, marks=pytest.mark.slow) for name in example_names()])
def case(request, fast_run) -> Case:
    """One competition's small data and its `compete run --fast --seed 0` (conftest's
    fast_run, shared with the competition's own tests: each trains once per session)."""
    run = fast_run(request.param)
    competition = REGISTRY.competition(run.name)
    loaded = competition.load(run.data)  # a PLATFORM:SLUG competition's format and metric come with it
    return Case(run.name, competition, run.data, run.work, run.submission, run.run_dir, run.stdout, run.stderr, loaded)


@pytest.mark.parametrize("name", sorted(REGISTRY.entries))
def test_the_registry_entry_agrees_with_the_class(name):
    entry = REGISTRY.entries[name]
    competition = REGISTRY.competition(REGISTRY.example_names()[-1] if name == GENERIC else name)   # kaggle:example for GENERIC
    assert type(competition) is REGISTRY.competition_class(name)
    if name != GENERIC:
        assert (competition.name, competition.platform, competition.metric.name) == (name, entry.platform, entry.metric)
    assert entry.summary == competition.description and entry.summary and "\n" not in entry.summary
    assert entry.data_files == tuple(competition.data_files)
    assert entry.sources == tuple(competition.data_sources())


def test_it_declares_the_protocol(case):
    competition = case.competition
    assert isinstance(competition, Competition)
    assert competition.platform in {"kaggle", "zindi", "drivendata"} and competition.slug
    options = competition.options()
    assert (options.seed, options.fast, options.quiet) == (0, False, False)


def test_load_reads_the_data_and_the_sample(case):
    assert case.loaded is not None
    sample = case.competition.sample(case.data)
    assert sample.columns[0] == case.competition.submission_for(case.loaded).id_column and len(sample) > 0


def test_run_reports_what_fit_learned_and_what_it_was_given(case):
    metric = case.competition.metric_for(case.loaded).name
    cv = float(re.search(rf"^cv {re.escape(metric)}: (-?[0-9.]+)$", case.stdout, re.M).group(1))
    assert f"submission: {case.submission}" in case.stdout
    metrics = json.loads((case.run_dir / "metrics.json").read_text())
    assert metrics["metric"] == metric and metrics["cv_score"] == pytest.approx(cv, abs=1e-5)
    assert metrics["fold_scores"] and all(math.isfinite(score) for score in metrics["fold_scores"])
    assert metrics["cv_score_note"] and metrics["submission"] == str(case.submission)
    config = json.loads((case.run_dir / "config.json").read_text())
    assert config["competition"] == case.name
    assert config["options"]["fast"] is True and config["options"]["seed"] == 0
    assert set(config["options"]) == {row.name for row in _fields(case.competition.options)}


RESULT_LINE = re.compile(r"^(cv \S+: -?[0-9.]+|run: .+|submission: .+)$")


def test_stdout_holds_the_result_lines_only_and_a_log_gets_whole_lines(case):
    """Progress and the log go to stderr (fastai's bars and epoch table once went to
    stdout); where stderr is not a terminal, as here, they are whole lines."""
    assert case.stdout.splitlines() and all(RESULT_LINE.match(line) for line in case.stdout.splitlines()), case.stdout
    assert case.stderr and "\r" not in case.stderr and "\x1b[" not in case.stderr


def test_the_submission_validates(case, compete):
    result = compete("validate", case.name, case.submission, "--data", case.data)
    assert result.stdout.strip() == f"{case.submission}: valid"


def test_same_seed_same_bytes_through_fit_then_predict(case, compete):
    run_dir, again = case.work / "fit-only", case.work / "again.csv"
    quiet = compete("fit", case.name, "--data", case.data, "--fast", "--seed", 0, "--quiet", "--run-dir", run_dir,
                    cwd=case.work)
    assert quiet.stderr == "" and all(RESULT_LINE.match(line) for line in quiet.stdout.splitlines())  # --quiet is quiet
    compete("predict", case.name, "--data", case.data, "--run-dir", run_dir, "--out", again, cwd=case.work)
    assert again.read_bytes() == case.submission.read_bytes()


def test_score_with_the_platform_metric(case, compete, tmp_path):
    answers = case.data / "answers"
    if not answers.is_dir():  # real data without a key: the submission as its own truth scores perfectly
        answers = tmp_path / "answers"
        answers.mkdir()
        shutil.copy(case.submission, answers / "solution.csv")
    metric = json.loads((case.run_dir / "metrics.json").read_text())["metric"]  # what the run was scored by
    result = compete("score", case.name, case.submission, "--answers", answers, "--metric", metric)
    scores = dict(line.split(": ") for line in result.stdout.splitlines())
    assert math.isfinite(float(scores[metric]))
    if answers.parent == tmp_path:
        frame = pd.read_csv(case.submission).iloc[:, 1:].to_numpy(dtype=float)
        values = frame if frame.shape[1] > 1 else frame[:, 0]
        assert float(scores[metric]) == pytest.approx(case.competition.metric_for(case.loaded)(values, values), abs=1e-6)


def test_a_broken_submission_exits_1_listing_every_problem(case, compete, tmp_path):
    frame = pd.read_csv(case.submission, dtype=str, keep_default_na=False)
    id_column = case.competition.submission_for(case.loaded).id_column
    broken = pd.concat([frame.iloc[:-1], frame.iloc[:1]])   # the last id missing, the first twice
    broken.iloc[1, 1] = "not-a-number"
    path = tmp_path / "broken.csv"
    broken.to_csv(path, index=False)
    result = compete("validate", case.name, path, "--data", case.data, check=False)
    assert result.returncode == 1
    for kind in ("missing_ids", "duplicate_ids"):
        assert kind in result.stdout, result.stdout
    assert "not_a_number" in result.stdout or "out_of_domain" in result.stdout, result.stdout  # labels are not numbers
    assert str(frame[id_column].iloc[-1]) in result.stdout
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = compete("validate", case.name, empty, "--data", case.data, check=False)
    assert result.returncode == 1 and "empty: the file is empty" in result.stdout


def test_a_corrupted_sample_row_is_one_line_naming_it(case, compete, tmp_path):
    broken = tmp_path / "data"
    shutil.copytree(case.data, broken, ignore=shutil.ignore_patterns("answers"), symlinks=True)
    sample = io.find(broken, case.competition.submission_for(case.loaded).sample_file)
    lines = sample.path.read_text().splitlines()
    lines[3] += ",extra"   # data row 3, line 4 of the file: one field too many
    sample.path.write_text("\n".join(lines) + "\n")
    result = compete("validate", case.name, case.submission, "--data", broken, check=False)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sample.path.name in result.stderr and re.search(r"\b(line|row) [34]\b", result.stderr), result.stderr


def _fields(options: type):
    from common.options import describe
    return describe(options)


# Stateless as scikit-learn's estimators: what a run learns (the format and metric read
# from the folder too) comes back as data and model, never as attributes of the object.
# Not slow: a generic table and a folder of images, small enough to fit here in seconds.
GENERIC_CASES = [("kaggle:example", "table", {"models": "linear"}, "accuracy"),
                 ("kaggle:aerial-cactus-identification", "images", {"width": 8, "epochs": 1}, "auc")]


@pytest.mark.parametrize("name,kind,given,guessed", GENERIC_CASES, ids=[case[1] for case in GENERIC_CASES])
def test_load_fit_predict_write_nothing_on_a_generic_competition(name, kind, given, guessed, tmp_path):
    from common.submission import validate
    from competitions.tabular import media_synth, synth
    data_dir, run_dir = tmp_path / "data", tmp_path / "run"
    run_dir.mkdir()
    if kind == "table":
        synth.make(data_dir, "binary", 200, seed=0)
    else:
        media_synth.make(data_dir, "aerial-cactus-identification", rows=120, seed=0)
    competition = REGISTRY.competition(name)
    before = dict(vars(competition))
    data = competition.load(data_dir)
    model, _ = competition.fit(data, competition.options(fast=True, quiet=True, **given), run_dir)
    frame = competition.predict(model, data)
    assert vars(competition).keys() == before.keys()
    assert all(vars(competition)[key] is value for key, value in before.items()), vars(competition)
    assert competition.submission is None   # the object still knows no format: the data carries it
    assert competition.metric_for(data).name == competition.metric_for(data, model).name == guessed
    format = competition.submission_for(data, model)
    assert format == competition.submission_for(data) and format.sample_file == "sample_submission.csv"
    assert validate(frame, competition.sample(data_dir), format) == []


def test_load_and_predict_write_nothing_on_the_competition(case):
    """Every registered competition, on the model its --fast run saved (no second fit)."""
    competition = REGISTRY.competition(case.name)
    before = dict(vars(competition))
    data = competition.load(case.data)
    competition.predict(competition.load_model(case.run_dir), data)
    assert vars(competition).keys() == before.keys()
    assert all(vars(competition)[key] is value for key, value in before.items()), vars(competition)
