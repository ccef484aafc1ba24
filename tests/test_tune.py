"""compete tune: declared search spaces, an Optuna study whose trials are runs, resumed
after a kill, reproducible from the --set line it prints."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from common import io
from common.options import Options, describe, option, search_space

ROOT = Path(__file__).resolve().parents[1]

# Lasso alone on two folds: a trial takes seconds on the real house-prices rows.
QUICK = ("--fast", "--quiet", "--set", "models=lasso", "--set", "folds=2")
SEARCH = ("--search", "lasso_alpha=0.0001..0.01", "--search", "trim_sigmas=2.5..5")


@dataclass
class Knobs(Options):
    lr: float = option(0.01, "learning rate", above=0, search=(1e-4, 1e-1), log=True)
    depth: int = option(6, "tree depth", minimum=1, maximum=16, search=(3, 10))
    loss: str = option("rmse", "loss", choices=("rmse", "mae"))
    width: int = option(32, "not searched unless asked", minimum=1)


def test_search_space_is_read_from_the_declaration_and_overridden_by_search():
    space = {dimension.name: dimension for dimension in search_space(Knobs)}
    assert set(space) == {"lr", "depth", "loss"}
    assert (space["lr"].low, space["lr"].high, space["lr"].log, space["lr"].integer) == (1e-4, 1e-1, True, False)
    assert (space["depth"].low, space["depth"].high, space["depth"].integer) == (3, 10, True)
    assert space["loss"].choices == ("rmse", "mae")
    overridden = {d.name: d for d in search_space(Knobs, {"width": "16..64", "loss": "mae", "depth": "4..5"})}
    assert (overridden["width"].low, overridden["width"].high, overridden["width"].integer) == (16, 64, True)
    assert overridden["loss"].choices == ("mae",) and (overridden["depth"].low, overridden["depth"].high) == (4, 5)
    rows = {row.name: row.doc for row in describe(Knobs)}
    assert rows["lr"] == "learning rate (> 0; search 0.0001..0.1 log)" and rows["loss"] == "loss (one of 'rmse', 'mae')"


def test_search_outside_the_allowed_range_or_choices_is_one_line():
    with pytest.raises(io.InputError, match=r"^--search depth: 20 is out of range; it must be >= 1 and <= 16$"):
        search_space(Knobs, {"depth": "3..20"})
    with pytest.raises(io.InputError, match=r"--search loss: 'huber' is not allowed"):
        search_space(Knobs, {"loss": "rmse,huber"})
    with pytest.raises(io.InputError, match=r"unknown option 'lrr'"):
        search_space(Knobs, {"lrr": "1..2"})
    with pytest.raises(ValueError, match="outside its allowed range"):
        option(5, "folds", minimum=2, search=(1, 10))
    with pytest.raises(io.InputError, match=r"loss: 'huber' is not allowed; it must be one of 'rmse', 'mae'"):
        Knobs(loss="huber")


@pytest.mark.parametrize("name", ["house-prices", "uberct", "birdcall", "serengeti", "kaggle:example"])
def test_each_competition_declares_a_search_space_whose_defaults_lie_inside_it(name):
    from competitions import REGISTRY
    options = REGISTRY.competition(name).options
    space = search_space(options)
    assert len(space) >= 3, f"{name} declares only {[d.name for d in space]}"
    defaults = options()
    for dimension in space:
        value = getattr(defaults, dimension.name)
        if value is None:  # "decided for you" (by --fast): searched values replace the decision
            continue
        if dimension.choices is not None:
            assert value in dimension.choices, (name, dimension)
        else:
            assert dimension.low <= value <= dimension.high, (name, dimension, value)


def _tune(data, storage, *extra, trials=3) -> list:
    return [sys.executable, "-c", "import cli; cli.main()", "tune", "house-prices", "--data", str(data), "--trials",
            str(trials), "--storage", storage, *QUICK, *SEARCH, *extra]


# Extended to keep CI under 20 min (38 s): `compete tune` runs end to end by default in
# test_a_generic_competition_is_tuned_in_the_direction_of_the_metric_guessed_from_its_folder;
# this one adds the kill, the resume from the study's storage and the printed --set line.
@pytest.mark.slow
@pytest.mark.extended
def test_tune_resumes_after_a_kill_and_its_set_line_reproduces_the_best(compete, house_data, tmp_path, tracking_store):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "MLFLOW_TRACKING_URI": tracking_store}
    process = subprocess.Popen(_tune(house_data, storage), cwd=tmp_path, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:  # kill -9 as soon as the first trial has ended: the second is under way
        lines.append(line)
        if line.startswith("trial 0:"):
            time.sleep(1.0)
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert any(line.startswith("trial 0: cv rmsle") for line in lines), "".join(lines)

    import optuna
    (name,) = optuna.get_all_study_names(storage)
    first = optuna.load_study(study_name=name, storage=storage).trials
    assert [t.state.name for t in first] == ["COMPLETE", "RUNNING"]   # the kill left trial 1 running

    resumed = compete("tune", "house-prices", "--data", house_data, "--trials", 3, "--storage", storage, *QUICK, *SEARCH,
                      cwd=tmp_path)
    out = resumed.stdout
    assert "trial 1: killed before it ended; its options run again" in out
    assert "trial 0:" not in out   # a finished trial is never run again
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.trials
    assert trials[1].state.name == "FAIL" and "killed" in trials[1].user_attrs["interrupted"]
    assert trials[2].params == trials[1].params   # the trial the kill cut short, run again with its options
    ended = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(ended) == 3
    counted = re.search(rf"study {name} \(.*\): (\d+) complete, (\d+) pruned, 0 failed, 1 interrupted and run again", out)
    assert counted and int(counted[1]) + int(counted[2]) == 3, out

    # every completed trial is a normal run: run directory with its OOF, tagged in MLflow with the study
    best = study.best_trial
    run_dir = tmp_path / best.user_attrs["run_dir"]
    assert (run_dir / "out_of_fold.csv").is_file() and (run_dir / "test_predictions.csv").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["study"] == name and metrics["trial"] == best.number
    from mlflow.tracking import MlflowClient
    tagged = MlflowClient(tracking_store).get_run(metrics["mlflow_run_id"]).data.tags
    assert tagged["study"] == name and tagged["trial"] == str(best.number)

    # the last line is the --set line: `compete run` with it scores what the best trial scored
    best_line = [line for line in out.splitlines() if line.startswith("best: ")][0]
    assert f"trial {best.number}, cv rmsle: {best.value:.5f}" in best_line
    set_line = out.strip().splitlines()[-1].split()
    assert set_line[0] == "--set" and f"lasso_alpha={best.params['lasso_alpha']!r}" in set_line
    again = compete("run", "house-prices", "--data", house_data, "--quiet", *set_line, cwd=tmp_path)
    assert f"cv rmsle: {best.value:.5f}" in again.stdout


@pytest.mark.slow
@pytest.mark.extended   # by default: the resumed study reproducing its best and the generic direction (this file)
def test_same_seed_same_study_and_a_failed_trial_is_recorded_with_its_reason(compete, house_data, tmp_path):
    studies = []
    for label in ("a", "b"):
        storage = f"sqlite:///{tmp_path / label}.db"
        compete("tune", "house-prices", "--data", house_data, "--trials", 2, "--storage", storage, *QUICK, *SEARCH,
                cwd=tmp_path)
        import optuna
        (name,) = optuna.get_all_study_names(storage)
        studies.append(optuna.load_study(study_name=name, storage=storage).trials)
    assert [t.params for t in studies[0]] == [t.params for t in studies[1]]
    assert [round(t.value, 6) for t in studies[0]] == [round(t.value, 6) for t in studies[1]]

    # a value the model cannot take fails its trial with one line, and the study goes on
    storage = f"sqlite:///{tmp_path / 'failing.db'}"
    result = compete("tune", "house-prices", "--data", house_data, "--trials", 2, "--storage", storage, *QUICK,
                     "--search", "trim_sigmas=0.0001..0.0002", cwd=tmp_path, check=False)
    assert result.exit_code == 1, result.output
    assert result.stdout.count(": failed: ") == 2 and "0 complete" in result.stdout and "2 failed" in result.stdout
    import optuna
    (name,) = optuna.get_all_study_names(storage)
    assert all(t.state.name == "FAIL" and t.user_attrs["failure"] for t in optuna.load_study(study_name=name, storage=storage).trials)


def test_a_generic_competition_is_tuned_in_the_direction_of_the_metric_guessed_from_its_folder(compete, tmp_path):
    """No --metric: a binary sample guesses a metric to maximise; the study must maximise it
    (the class's default RMSE would have minimised it)."""
    import numpy as np
    import optuna
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 3))
    frame = pd.DataFrame(x.round(4), columns=["a", "b", "c"]).assign(id=range(160), label=(x[:, 0] > 0).astype(int))
    frame.iloc[:120].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[120:].drop(columns="label").to_csv(tmp_path / "test.csv", index=False)
    frame.iloc[120:][["id"]].assign(label=0).to_csv(tmp_path / "sample_submission.csv", index=False)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    result = compete.in_process("tune", "kaggle:directions", "--data", tmp_path, "--trials", 1, "--storage", storage,
                                "--fast", "--quiet", "--set", "models=linear", "--set", "folds=2",
                                "--search", "encode_above=10..40")
    assert result.exit_code == 0, result.output
    (summary,) = optuna.get_all_study_summaries(storage)
    assert summary.direction == optuna.study.StudyDirection.MAXIMIZE
