"""compete blend: weights fitted on the runs' out-of-fold predictions, a nested CV, a
validated submission, refused when the runs' folds differ."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import blend, io
from common.metrics import F1, RMSE_OF_LOGS

QUICK = ("--fast", "--quiet", "--set", "folds=3")


@pytest.fixture(scope="module")
def two_runs(compete, house_data, tmp_path_factory):
    """A linear and a tree run of house-prices on the same three folds: they err differently."""
    work = tmp_path_factory.mktemp("blend")
    compete("run", "house-prices", "--data", house_data, *QUICK, "--set", "models=lasso", "--run-dir", "lasso", cwd=work)
    compete("run", "house-prices", "--data", house_data, *QUICK, "--set", "models=catboost", "--set", "iterations=200",
            "--run-dir", "catboost", cwd=work)
    return work


@pytest.mark.slow
def test_a_blend_of_two_runs_scores_at_least_the_better_in_nested_cv(compete, house_data, two_runs, tracking_store):
    result = compete("blend", "house-prices", "lasso", "catboost", "--data", house_data, cwd=two_runs)
    lines = result.stdout.strip().splitlines()
    own = {Path(line.split(":")[0]).name: float(line.split("cv rmsle: ")[1].split(",")[0]) for line in lines[:2]}
    assert set(own) == {"lasso", "catboost"}
    assert lines[-3].startswith("cv rmsle: ") and lines[-1].startswith("submission: ")   # as `compete run` prints them
    blended = float(lines[-3].split(": ")[1])
    assert blended <= min(own.values()), result.stdout
    run_dir = two_runs / lines[-2].split(": ", 1)[1]
    submission = two_runs / lines[-1].split(": ", 1)[1]
    compete("validate", "house-prices", submission, "--data", house_data)

    # the blend is a run: its config lists the members, its metrics the nested figure its own OOF gives
    config = json.loads((run_dir / "config.json").read_text())
    assert [Path(member).name for member in config["blend"]["members"]] == ["lasso", "catboost"]
    oof = pd.read_csv(run_dir / "out_of_fold.csv")
    assert RMSE_OF_LOGS(oof["truth:SalePrice"].to_numpy(), oof["SalePrice"].to_numpy()) == pytest.approx(blended, abs=1e-5)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    weights = metrics["blend_weights"]
    assert all(weight > 0.05 for weight in weights.values()) and sum(weights.values()) == pytest.approx(1)
    # the submission is the weighted geometric mean of the members' test predictions
    tests = [pd.read_csv(two_runs / name / "test_predictions.csv") for name in ("lasso", "catboost")]
    expected = np.expm1(sum(weights[name] * np.log1p(frame["SalePrice"]) for name, frame in zip(("lasso", "catboost"), tests)))
    assert np.allclose(pd.read_csv(submission)["SalePrice"], expected, atol=0.01)
    from mlflow.tracking import MlflowClient
    tags = MlflowClient(tracking_store).get_run(metrics["mlflow_run_id"]).data.tags
    assert tags["blend"] == "lasso,catboost"

    # `compete runs` names the blend that made the run; --compare puts two runs side by side
    table = compete("runs", "house-prices", cwd=two_runs).stdout
    assert [line for line in table.splitlines() if line.startswith(run_dir.name)][0].rstrip().endswith("blend of lasso,catboost")
    compared = compete("runs", "house-prices", "--compare", "lasso", "catboost", cwd=two_runs).stdout.splitlines()
    assert compared[0].split() == ["lasso", "catboost"]
    rows = {line.split()[0]: line.split()[1:] for line in compared[1:] if line.strip()}
    assert rows["models"] == ["lasso", "catboost"] and rows["iterations"] == ["None", "200"]
    assert float(rows["cv"][1]) == pytest.approx(own["lasso"], abs=1e-5)
    assert "folds" not in rows and "seed" not in rows   # only what differs


@pytest.mark.slow
def test_runs_with_other_folds_or_without_predictions_are_refused_by_name(compete, house_data, two_runs):
    compete("run", "house-prices", "--data", house_data, "--fast", "--quiet", "--set", "models=lasso", "--set", "folds=2",
            "--run-dir", "two_folds", cwd=two_runs)
    blends = lambda: sorted((two_runs / "runs").glob("*/*-blend"))  # noqa: E731
    before = blends()
    refused = compete("blend", "house-prices", "lasso", "two_folds", "--data", house_data, cwd=two_runs, check=False)
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr.startswith("error: two_folds: its folds differ from those of lasso (")
    assert "blend runs made with the same folds and seed" in refused.stderr
    old = two_runs / "old"
    old.mkdir()
    for name in ("config.json", "metrics.json"):
        (old / name).write_bytes((two_runs / "lasso" / name).read_bytes())
    refused = compete("blend", "house-prices", "lasso", "old", "--data", house_data, cwd=two_runs, check=False)
    assert refused.exit_code == 2 and "old: keeps no out-of-fold predictions (out_of_fold.csv)" in refused.stderr
    assert blends() == before   # a refused blend leaves no run behind


def _member(scores: np.ndarray, truth: np.ndarray, fold: np.ndarray) -> blend.Member:
    ids = pd.Series([str(i) for i in range(len(truth))], name="id")
    return blend.Member(Path("run"), ids, fold, scores[:, None], truth[:, None].astype(float), ids, scores[:, None],
                        ["label"], None)


def test_a_label_metric_pools_probabilities_and_refits_its_threshold():
    """F1: each fold's threshold is fitted on the other folds' pooled probabilities; two
    runs with independent errors blend better than either alone."""
    generator = np.random.default_rng(0)
    truth = (generator.random(3000) < 0.2).astype(int)
    fold = np.arange(3000) % 3 + 1
    noisy = [1 / (1 + np.exp(-(2.0 * (truth - 0.5) * 2 + generator.normal(0, 1.6, 3000)))) for _ in range(2)]
    members = [_member(scores, truth, fold) for scores in noisy]
    how = blend.kind(F1, [m.predictions for m in members])
    assert how == "logit"
    together, _ = blend.nested(F1, how, members)
    assert set(np.unique(together)) <= {0.0, 1.0}   # labels, decided by the refitted threshold
    alone = [F1(truth, blend.nested(F1, how, [member])[0][:, 0]) for member in members]
    assert F1(truth, together[:, 0]) > max(alone) + 0.01


def test_pools_follow_the_metric():
    values = [np.array([[0.2], [0.9]]), np.array([[0.6], [0.9]])]
    logit = blend.pool("logit", np.array([0.5, 0.5]), values)[:, 0]
    assert logit[0] == pytest.approx(1 / (1 + np.exp(-(np.log(0.2 / 0.8) + np.log(0.6 / 0.4)) / 2)))
    prices = [np.array([[100.0]]), np.array([[400.0]])]
    assert blend.pool("log", np.array([0.5, 0.5]), prices)[0, 0] == pytest.approx(np.sqrt(101 * 401) - 1)
    classes = [np.array([[0.7, 0.2, 0.1]]), np.array([[0.1, 0.2, 0.7]])]
    pooled = blend.pool("softmax", np.array([0.5, 0.5]), classes)
    assert pooled.sum() == pytest.approx(1) and pooled[0, 0] == pytest.approx(pooled[0, 2])
    with pytest.raises(io.InputError, match="not probabilities"):
        blend.kind(F1, [np.array([[3.0]])])


def test_runs_validated_on_one_held_out_split_blend_on_the_rows_they_have():
    """serengeti keeps its held-out sequences only, all in fold 1: the blend cuts them into
    parts for its nested figure (each part's weights fitted on the others) and says so."""
    generator = np.random.default_rng(1)
    truth = (generator.random((1000, 3)) < 0.3).astype(int)
    hold_out = np.ones(1000, dtype=int)
    logit = lambda noise: 1 / (1 + np.exp(-(3.0 * (truth - 0.5) + generator.normal(0, noise, truth.shape))))  # noqa: E731
    members = [blend.Member(Path(name), pd.Series(map(str, range(1000)), name="id"), hold_out, logit(noise),
                            truth.astype(float), pd.Series(["t"], name="id"), np.full((1, 3), 0.5), ["a", "b", "c"], None)
               for name, noise in (("run1", 2.0), ("run2", 2.0))]
    parts, held_out = blend.blend_folds(hold_out)
    assert held_out and sorted(np.bincount(parts)[1:]) == [200] * 5
    own, held_out = blend.blend_folds(np.arange(1000) % 3 + 1)
    assert not held_out and (own == np.arange(1000) % 3 + 1).all()   # K folds stay the runs' own
    from common.metrics import MEAN_BINARY_LOG_LOSS as metric
    how = blend.kind(metric, [m.predictions for m in members])
    together, by_part = blend.nested(metric, how, members)
    assert len(by_part) == 5   # not one fold fitted on nothing
    alone = [metric(truth, member.predictions) for member in members]
    assert metric(truth, together) < min(alone) - 0.01   # independent errors: the pool beats either run
    assert blend.note(False, 1000, True).startswith("nested on the runs' one held-out split (1000 rows, no K folds)")


def test_runs_whose_rows_differ_are_refused_naming_both():
    truth, fold = np.array([0, 1, 0, 1]), np.array([1, 1, 2, 2])
    first, second = _member(np.full(4, 0.5), truth, fold), _member(np.full(4, 0.5), truth, fold)
    first.run_dir, second.run_dir = Path("runs/a"), Path("runs/b")
    second.ids = pd.Series(["0", "1", "2", "9"], name="id")
    with pytest.raises(io.InputError) as error:
        blend.check_alike([first, second])
    assert str(error.value) == (f"{Path('runs/b')}: its out-of-fold rows differ from those of {Path('runs/a')} "
                                f"(4 rows against 4): blend runs made on the same data (and a held-out split: the same "
                                f"seed and split options)")


@pytest.mark.slow
@pytest.mark.extended   # by default: blends on one held-out split and the refusals by name, without uberct (this file)
def test_two_uberct_runs_blend_on_their_validation_block_and_other_rows_are_refused(compete, competition_data, tmp_path):
    """uberct validates out of time on one block, its halves the folds: two runs blend on
    those rows (probabilities pooled, the F1 threshold refitted), the submission is that
    threshold on the pooled test probabilities; a run whose rows differ is refused by name."""
    data = competition_data("uberct")
    quick = ("--fast", "--quiet")
    compete("run", "uberct", "--data", data, *quick, "--run-dir", "deep", cwd=tmp_path)
    compete("run", "uberct", "--data", data, *quick, "--set", "depth=3", "--set", "learning_rate=0.3", "--run-dir", "shallow",
            cwd=tmp_path)
    result = compete("blend", "uberct", "deep", "shallow", "--data", data, cwd=tmp_path)
    lines = result.stdout.strip().splitlines()
    assert lines[-3].startswith("cv f1: ") and lines[-1].startswith("submission: ")
    run_dir, submission = (tmp_path / line.split(": ", 1)[1] for line in lines[-2:])
    compete("validate", "uberct", submission, "--data", data)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    oof = pd.read_csv(run_dir / "out_of_fold.csv")
    assert set(oof["fold"]) == {1, 2} and set(oof["prediction"]) <= {0, 1}   # the halves; labels by the refitted threshold
    assert F1(oof["truth:prediction"], oof["prediction"]) == pytest.approx(float(lines[-3].split(": ")[1]), abs=1e-5)
    weights = metrics["blend_weights"]
    tests = {name: pd.read_csv(tmp_path / name / "test_predictions.csv") for name in ("deep", "shallow")}
    assert all(frame["prediction"].between(0, 1).all() and frame["prediction"].nunique() > 2 for frame in tests.values())
    logit = sum(weights[name] * np.log(frame["prediction"] / (1 - frame["prediction"])) for name, frame in tests.items())
    flags = (1 / (1 + np.exp(-logit)) >= metrics["blend_threshold"]).astype(int)
    made = pd.read_csv(submission).set_index("datetime x segment_id")["prediction"]
    differ = made.loc[tests["deep"]["datetime x segment_id"]].to_numpy() != flags.to_numpy()
    assert flags.sum() > 0 and differ.mean() < 0.001   # (weights kept to 6 decimals: a row on the threshold may flip)

    fewer = tmp_path / "fewer"
    shutil.copytree(tmp_path / "shallow", fewer)
    kept = pd.read_csv(fewer / "out_of_fold.csv")
    kept.iloc[:-1].to_csv(fewer / "out_of_fold.csv", index=False)
    refused = compete("blend", "uberct", "deep", "fewer", "--data", data, cwd=tmp_path, check=False)
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr.strip() == (f"error: fewer: its out-of-fold rows differ from those of deep ({len(kept) - 1} rows "
                                      f"against {len(kept)}): blend runs made on the same data (and a held-out "
                                      f"split: the same seed and split options)")


def test_two_runs_of_a_generic_table_blend(compete, tmp_path, monkeypatch):
    """A PLATFORM:SLUG table keeps out_of_fold.csv too: a linear run and a tree run of a
    regression blend, in process, into a validated submission (its format and metric read
    from the data, as a run reads them)."""
    generator = np.random.default_rng(0)
    x = generator.normal(size=(360, 2))
    target = 3 * x[:, 0] + np.sin(3 * x[:, 1]) + generator.normal(0, 0.2, 360)
    folder = tmp_path / "data"
    folder.mkdir()
    pd.DataFrame({"row_id": range(300), "a": x[:300, 0], "b": x[:300, 1], "y": target[:300]}).to_csv(folder / "train.csv", index=False)
    pd.DataFrame({"row_id": range(300, 360), "a": x[300:, 0], "b": x[300:, 1]}).to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"row_id": range(300, 360), "y": 0.0}).to_csv(folder / "sample_submission.csv", index=False)
    monkeypatch.chdir(tmp_path)
    quick = ("--metric", "rmse", "--data", folder, "--fast", "--quiet", "--set", "folds=3")
    compete.in_process("run", "kaggle:table", *quick, "--set", "models=linear", "--run-dir", "linear", check=True)
    compete.in_process("run", "kaggle:table", *quick, "--set", "models=catboost", "--set", "iterations=150",
                       "--run-dir", "trees", check=True)
    oof = pd.read_csv(tmp_path / "linear" / "out_of_fold.csv")
    assert oof.columns.tolist() == ["row_id", "fold", "y", "truth:y"] and set(oof["fold"]) == {1, 2, 3}
    assert np.allclose(oof["truth:y"], target[:300], atol=1e-6)
    result = compete.in_process("blend", "kaggle:table", "linear", "trees", "--data", folder, "--metric", "rmse", check=True)
    lines = result.stdout.strip().splitlines()
    own = [float(line.split("cv rmse: ")[1].split(",")[0]) for line in lines[:2]]
    blended = float(lines[-3].split(": ")[1])
    assert blended < max(own) - 0.1 and blended <= min(own) + 0.005   # nested: near the better run, far from the worse
    compete.in_process("validate", "kaggle:table", lines[-1].split(": ", 1)[1], "--data", folder, check=True)
