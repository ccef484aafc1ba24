"""Any PLATFORM:SLUG tabular competition through the real CLI: run on small data for
regression, binary and multi-class; validate, score and submit --dry-run against the
local platform servers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.runtimes import runner

from competitions.tabular import model as M
from competitions.tabular.synth import make


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tabular")
    return {task: make(root / task, task, rows=400, seed=1) for task in ("regression", "binary", "multiclass")}


def _run(compete, name: str, data: Path, metric: str, work: Path, *extra) -> tuple[str, Path, Path]:
    out, run_dir = work / f"{metric}.csv", work / f"run-{metric}"
    result = compete("run", name, "--data", data, "--metric", metric, "--fast", "--quiet", "--out", out,
                     "--run-dir", run_dir, *extra, cwd=work)
    return result.stdout, out, run_dir


def _score(compete, name: str, file: Path, answers: Path, metric: str) -> float:
    printed = compete("score", name, file, "--answers", answers, "--metric", metric).stdout
    return float(printed.split(":")[-1])


def _assert_plots_claim_the_printed_cv(printed: str, metric: str, run_dir: Path, names: list[str]) -> None:
    from PIL import Image
    cv = float(printed.split(f"cv {metric}: ")[1].split()[0])
    for name in names:
        with Image.open(run_dir / name) as plot:   # saved by plots.save: the title in the PNG's Title chunk
            assert f"cv {metric} {cv:.5f}" in plot.text["Title"], name


@pytest.mark.slow
def test_regression_with_rmsle_trains_on_the_log_and_beats_the_median(compete, folders, tmp_path):
    data = folders["regression"]
    printed, out, run_dir = _run(compete, "kaggle:demo-prices", data, "rmsle", tmp_path)
    assert "cv rmsle:" in printed and f"submission: {out}" in printed
    submission = pd.read_csv(out)
    assert list(submission.columns) == ["row_id", "price"] and (submission["price"] >= 0).all()
    assert compete("validate", "kaggle:demo-prices", out, "--data", data).returncode == 0
    truth = pd.read_csv(data / "answers" / "solution.csv").set_index("row_id").loc[submission["row_id"], "price"]
    median = float(np.sqrt(np.mean((np.log1p(truth) - np.log1p(truth.median())) ** 2)))
    score = _score(compete, "kaggle:demo-prices", out, data / "answers", "rmsle")
    assert score < 0.6 * median
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["metric"] == "rmsle" and metrics["task"] == "regression"
    assert metrics["column_kinds"] == {"amount": "numeric", "level": "numeric", "city": "categorical",
                                       "visited": "date", "review": "text"}
    # auto: every family on small data; the optional ones combined only where they help
    assert set(metrics["models"]) == set(M.TABLE_FAMILIES)
    assert {"catboost", "lightgbm", "xgboost", "linear"} <= set(metrics["blend_weights"]) <= set(metrics["models"])
    assert (run_dir / "oof.csv").is_file()
    _assert_plots_claim_the_printed_cv(printed, "rmsle", run_dir, ["predicted_vs_actual.png"])


@pytest.mark.slow
@pytest.mark.extended   # by default: test_text's tweets (an OOF threshold for F1), the contract's same bytes for kaggle:example
def test_binary_accuracy_gives_labels_from_an_oof_threshold_and_same_seed_same_bytes(compete, folders, tmp_path):
    data = folders["binary"]
    printed, out, run_dir = _run(compete, "kaggle:demo-outcome", data, "accuracy", tmp_path)
    submission = pd.read_csv(out)
    assert set(submission["outcome"].unique()) <= {0, 1}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["decision"]["kind"] == "threshold" and 0 < metrics["decision"]["threshold"] < 1
    logged = (run_dir / "log.txt").read_text()
    assert "decision: the positive class where the blended probability is at least" in logged
    assert "is the blend's, nested" in logged and "Decision(" not in logged
    _assert_plots_claim_the_printed_cv(printed, "accuracy", run_dir, ["calibration.png", "confusion_matrix.png"])
    truth = pd.read_csv(data / "answers" / "solution.csv")["outcome"]
    majority = max(truth.mean(), 1 - truth.mean())
    assert _score(compete, "kaggle:demo-outcome", out, data / "answers", "accuracy") > majority + 0.05
    again = tmp_path / "again"
    again.mkdir()
    _, second, _ = _run(compete, "kaggle:demo-outcome", data, "accuracy", again)
    assert second.read_bytes() == out.read_bytes()


@pytest.mark.slow
@pytest.mark.extended   # multi-class log loss end to end: test_text's authors run; the stack's: test_tabular_stack
def test_multiclass_log_loss_writes_calibrated_probabilities_per_class(compete, folders, tmp_path):
    data = folders["multiclass"]
    printed, out, run_dir = _run(compete, "zindi:demo-grades", data, "LogLoss", tmp_path)
    assert "cv log_loss:" in printed
    submission = pd.read_csv(out)
    assert list(submission.columns) == ["row_id", "high", "low", "mid", "top"]
    assert np.allclose(submission[["high", "low", "mid", "top"]].sum(axis=1), 1.0, atol=1e-6)
    score = _score(compete, "zindi:demo-grades", out, data / "answers", "logloss")
    assert score < 0.75 * np.log(4)  # well under the uniform guess
    assert json.loads((run_dir / "metrics.json").read_text())["decision"]["kind"] == "temperature"


@pytest.mark.slow
@pytest.mark.extended   # a rarer sample shape; the table path by default: test_tabular's rmsle run, the contract suite
def test_accuracy_on_a_sample_with_a_column_per_class_writes_the_chosen_class_as_one_hot(compete, tmp_path):
    """A label metric on a wide sample (a column per class): each row's most probable
    class is 1 in its column and 0 elsewhere (a KeyError at predict before)."""
    data = make(tmp_path / "grades", "multiclass", rows=400, seed=2)
    printed, out, _ = _run(compete, "zindi:demo-grades", data, "accuracy", tmp_path)
    assert "cv accuracy:" in printed
    submission = pd.read_csv(out)
    classes = ["high", "low", "mid", "top"]
    assert list(submission.columns) == ["row_id", *classes]
    assert submission[classes].isin([0, 1]).all().all() and (submission[classes].sum(axis=1) == 1).all()
    compete("validate", "zindi:demo-grades", out, "--data", data, "--metric", "accuracy")
    answers = pd.read_csv(next((data / "answers").glob("*.csv")))
    majority = answers[classes].mean().max()
    assert _score(compete, "zindi:demo-grades", out, data / "answers", "accuracy") > majority + 0.05


def test_bad_metric_and_bad_sample_are_one_line_and_leave_no_run(compete, folders, tmp_path):
    data = folders["binary"]
    result = compete("run", "kaggle:demo", "--data", data, "--metric", "kappa", "--fast", check=False, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "unknown metric 'kappa'" in result.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("train.csv", "test.csv"):
        (broken / name).write_bytes((data / name).read_bytes())
    sample = pd.read_csv(data / "sample_submission.csv")
    sample.loc[0, "row_id"] = "NOT-A-TEST-ID"
    sample.to_csv(broken / "sample_submission.csv", index=False)
    result = compete("run", "kaggle:demo", "--data", broken, "--metric", "auc", "--fast", check=False, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "sample_submission.csv" in result.stderr and "'NOT-A-TEST-ID'" in result.stderr
    assert not (tmp_path / "runs").exists()


def _variant(data: Path, folder: Path, separator: str = ",", **changes) -> Path:
    """A copy of `data` whose train.csv has `changes` (column -> value or values) and `separator`."""
    folder.mkdir()
    for name in ("test.csv", "sample_submission.csv"):
        (folder / name).write_bytes((data / name).read_bytes())
    pd.read_csv(data / "train.csv", dtype=str).assign(**changes).to_csv(folder / "train.csv", index=False, sep=separator)
    return folder


def test_the_generic_path_refuses_what_it_cannot_learn_in_one_line(compete, folders, tmp_path, monkeypatch):
    """A constant target of any task, a train file with another separator, and a metric
    that does not fit the target: one line naming the file and the column, exit 2, no run."""
    monkeypatch.chdir(tmp_path)
    regression, binary = folders["regression"], folders["binary"]
    multilabel = _variant(binary, tmp_path / "multilabel", other=0)
    pd.read_csv(binary / "sample_submission.csv").assign(other=0).to_csv(multilabel / "sample_submission.csv", index=False)
    cases = [
        (_variant(regression, tmp_path / "flat-price", price=250.0), "rmse",
         ["train.csv", "column 'price' (the target) holds one value only, '250.0'"]),
        (_variant(binary, tmp_path / "one-class", outcome=1), "auc",
         ["train.csv", "column 'outcome' (the target) holds one value only, '1'"]),
        (multilabel, "logloss", ["train.csv", "label column 'other' holds one value only"]),
        (_variant(binary, tmp_path / "semicolons", separator=";"), "auc",
         ["train.csv: fields are separated by semicolons (';'), not ','"]),
        (_variant(binary, tmp_path / "tabs", separator="\t"), "auc", ["train.csv: fields are separated by tabs"]),
        (binary, "rmsle", ["train.csv", "column 'outcome'", "a binary target, but rmsle scores numbers",
                           "metrics that fit: accuracy, auc, logloss, f1, f1_macro"]),
        (regression, "accuracy", ["train.csv", "column 'price'", "a regression target, but accuracy scores classes",
                                  "metrics that fit: rmse, rmsle, mae"]),
    ]
    for data, metric, said in cases:
        result = compete.in_process("run", "kaggle:demo", "--data", data, "--metric", metric, "--fast", "--quiet")
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, (data.name, result.output)
        assert all(part in result.stderr for part in said), (data.name, result.stderr)
        assert "CatBoost" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_the_log_says_which_figure_is_nested_and_why_a_blend_can_score_below_a_model(caplog):
    from common.metrics import ACCURACY
    from competitions.tabular.combine import explain
    from competitions.tabular.model import Decision
    with caplog.at_level("INFO", logger="compete"):
        explain(ACCURACY, 0.80, {"catboost": 0.83, "linear": 0.75}, Decision("threshold", threshold=0.4321))
    said = caplog.text
    assert "cv accuracy 0.80000 is the blend's, nested" in said and "catboost 0.83000, linear 0.75000 (not nested)" in said
    assert "the blend scores below catboost alone (0.80000 against 0.83000)" in said
    assert "the positive class where the blended probability is at least 0.432" in said and "Decision(" not in said
    caplog.clear()
    with caplog.at_level("INFO", logger="compete"):
        explain(ACCURACY, 0.90, {"catboost": 0.83, "linear": 0.75}, Decision("threshold", threshold=0.5))
    assert "scores below" not in caplog.text  # nothing to explain when the blend is best


# validate / submit --dry-run for PLATFORM:SLUG against the local platform servers.
from test_platforms_kaggle import kaggle  # noqa: E402,F401  (the fixture: a local Kaggle)
from test_platforms_zindi import zindi  # noqa: E402,F401  (the fixture: a local Zindi)


def _labels_file(data: Path, tmp_path: Path) -> Path:
    sample = pd.read_csv(data / "sample_submission.csv")
    path = tmp_path / "labels.csv"
    sample.assign(outcome=np.arange(len(sample)) % 2).to_csv(path, index=False)
    return path


def test_validate_follows_the_metric_domain(compete, folders, tmp_path):
    data = folders["binary"]
    good = _labels_file(data, tmp_path)
    assert compete.in_process("validate", "kaggle:demo-outcome", good, "--data", data).exit_code == 0
    probabilities = tmp_path / "probabilities.csv"
    pd.read_csv(good).assign(outcome=0.7).to_csv(probabilities, index=False)
    result = compete.in_process("validate", "kaggle:demo-outcome", probabilities, "--data", data)
    assert result.exit_code == 1 and "not one of the labels (0, 1)" in result.output
    # Scored by AUC, the same probabilities are what the platform wants.
    assert compete.in_process("validate", "kaggle:demo-outcome", probabilities, "--data", data, "--metric", "auc").exit_code == 0
    pd.read_csv(good).assign(outcome=1.5).to_csv(probabilities, index=False)
    result = compete.in_process("validate", "kaggle:demo-outcome", probabilities, "--data", data, "--metric", "LogLoss")
    assert result.exit_code == 1 and "not a probability in [0, 1]" in result.output


def test_submit_dry_run_to_a_kaggle_slug(compete, kaggle, folders, tmp_path):
    data = folders["binary"]
    result = compete.in_process("submit", "kaggle:demo-outcome", _labels_file(data, tmp_path), "--data", data, "-m", "try", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output and "4 submission(s) left" in result.output
    assert "GetSubmissionLimits" in kaggle.names()
    assert not {"StartSubmissionUpload", "CreateSubmission"} & set(kaggle.names())


def test_submit_dry_run_to_a_zindi_slug_and_a_refused_invalid_file(compete, zindi, folders, tmp_path, monkeypatch):
    from test_platforms_zindi import SLUG
    data = folders["binary"]
    result = compete.in_process("submit", f"zindi:{SLUG}", _labels_file(data, tmp_path), "--data", data, "-m", "x", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output and "submission(s) left today" in result.output
    assert zindi.routes() == ["signin", "competition", "submissions"] and zindi.uploads == []
    bad = tmp_path / "bad.csv"
    pd.read_csv(data / "sample_submission.csv").iloc[:-1].to_csv(bad, index=False)
    result = compete.in_process("submit", f"zindi:{SLUG}", bad, "--data", data, "-m", "x")
    assert result.exit_code != 0 and "row_count" in result.output and zindi.uploads == []


def test_package_from_a_folder_and_runtime_test_for_a_drivendata_slug(compete, tmp_path):
    """A code competition of any slug: your folder zipped as pack-submission does, then run
    as the runtime would, its output checked against the hidden-test folder's format."""
    if not runner.sandbox_available()[0]:
        pytest.skip("no mount/network namespaces here")
    code = tmp_path / "code"
    code.mkdir()
    (code / "main.py").write_text(
        "import csv\n"
        "rows = list(csv.reader(open('data/submission_format.csv')))\n"
        "with open('submission.csv', 'w', newline='') as out:\n"
        "    writer = csv.writer(out)\n"
        "    writer.writerow(rows[0])\n"
        "    writer.writerows([row[0], '0.25'] for row in rows[1:])\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "test_features.csv").write_text("uid,size\na1,3\nb2,4\n")
    (data / "submission_format.csv").write_text("uid,score\na1,0\nb2,0\n")
    bundle = tmp_path / "submission.zip"
    packaged = compete("package", "drivendata:any-challenge", "--from", code, "--out", bundle)
    assert packaged.stdout.strip() == str(bundle)
    result = compete("runtime", "test", bundle, "--data", data, "--competition", "drivendata:any-challenge",
                     "--profile", "snomed-ct", "--out", tmp_path / "out.csv", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "out.csv").read_text().splitlines() == ["uid,score", "a1,0.25", "b2,0.25"]
    (code / "main.py").write_text("open('submission.csv', 'w').write('uid,score\\na1,0.25\\n')\n")
    compete("package", "drivendata:any-challenge", "--from", code, "--out", bundle)
    failed = compete("runtime", "test", bundle, "--data", data, "--competition", "drivendata:any-challenge",
                     "--profile", "snomed-ct", check=False)
    assert failed.returncode == 1 and "row_count" in failed.stdout + failed.stderr


def test_download_then_validate_a_kaggle_slug(compete, kaggle, tmp_path):
    out = tmp_path / "downloaded"
    result = compete.in_process("data", "download", "kaggle:house-prices-advanced-regression-techniques", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert {"train.csv", "test.csv", "sample_submission.csv"} <= {path.name for path in out.iterdir()}
    assert "DownloadDataFiles" in kaggle.names()
    checked = compete.in_process("validate", "kaggle:house-prices-advanced-regression-techniques", out / "sample_submission.csv",
                      "--data", out)
    assert checked.exit_code == 0, checked.output


def test_a_smoke_run_of_a_drivendata_slug_keeps_the_first_rows_of_its_folders_sample(compete, tmp_path):
    """PLATFORM:SLUG has its format only from the folder: `--smoke` reads the sample from there."""
    if not runner.sandbox_available()[0]:
        pytest.skip("no mount/network namespaces here")
    code, data = tmp_path / "code", tmp_path / "data"
    code.mkdir()
    data.mkdir()
    (code / "main.py").write_text(
        "import csv\n"
        "rows = list(csv.reader(open('data/submission_format.csv')))\n"
        "with open('submission.csv', 'w', newline='') as out:\n"
        "    csv.writer(out).writerows([rows[0]] + [[row[0], '0.25'] for row in rows[1:]])\n")
    (data / "train.csv").write_text("uid,size,score\nt1,1,0.5\nt2,2,0.1\nt3,3,0.3\nt4,3,0.9\nt5,5,0.2\n")
    (data / "test_features.csv").write_text("uid,size\na1,3\nb2,4\nc3,5\n")
    (data / "submission_format.csv").write_text("uid,score\na1,0\nb2,0\nc3,0\n")
    bundle = tmp_path / "submission.zip"
    compete("package", "drivendata:any-challenge", "--from", code, "--out", bundle)
    result = compete("runtime", "test", bundle, "--data", data, "--competition", "drivendata:any-challenge",
                     "--profile", "snomed-ct", "--smoke", 2, "--out", tmp_path / "out.csv")
    assert "smoke run: the first 2 row(s) of submission_format.csv" in result.stdout + result.stderr
    assert (tmp_path / "out.csv").read_text().splitlines() == ["uid,score", "a1,0.25", "b2,0.25"]
