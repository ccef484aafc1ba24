"""The DrivenData runner: no API, so `submit` builds the bundle, proves it in the local
hidden-test runtime, and prints what to upload where; the other verbs say where to look."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from common.runtimes import runner
from competitions import REGISTRY

needs_sandbox = pytest.mark.skipif(not runner.sandbox_available()[0], reason="unshare --net --mount unavailable here")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serengeti")
    REGISTRY.competition("serengeti").synth(out, seed=3, scale="small")
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """An untrained network starting at a prior: a real bundle, built fast."""
    import torch

    from competitions.serengeti import model as serengeti_model
    torch.manual_seed(0)
    prior = np.full(len(serengeti_model.CLASSES), 0.02)
    path = tmp_path_factory.mktemp("run") / "20300101-seed0"
    path.mkdir()
    serengeti_model.SerengetiModel(serengeti_model.SerengetiNet().start_at(prior), prior).save(path / serengeti_model.WEIGHTS)
    return path


def bundle_writing(path: Path, body: str) -> Path:
    """A hand-made bundle whose main.py writes `body` as submission.csv."""
    main = f"open('submission.csv', 'w').write({body!r})\n"  # beside main.py, as the runtime takes it
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("main.py", main)
        archive.writestr("bundle.json", json.dumps({"competition": "serengeti"}))
    return path


@needs_sandbox
def test_submit_builds_proves_and_says_where_to_upload(compete, data, run_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = compete.in_process("submit", "serengeti", run_dir, "--data", data, "-m", "prior net")
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "submissions" / "serengeti" / "20300101-seed0.zip"
    assert bundle.is_file() and "main.py" in zipfile.ZipFile(bundle).namelist()
    assert "wrote a valid submission" in result.output and "DrivenData has no upload API" in result.output
    assert "ran as the hakuna-madata runtime would" in result.output
    assert str(bundle) in result.output and "description: prior net" in result.output


@needs_sandbox
def test_a_bundle_writing_an_invalid_file_is_refused(compete, data, tmp_path):
    bad = bundle_writing(tmp_path / "bad.zip", "seq_id,empty\nSER_S99#X#1#1,2.0\n")
    result = compete.in_process("submit", "serengeti", bad, "--data", data, "-m", "x")
    assert result.exit_code == 1
    assert "not ready to upload" in result.output and "submission.csv is invalid" in result.output


@needs_sandbox
def test_dry_run_of_a_built_bundle(compete, data, tmp_path):
    good = bundle_writing(tmp_path / "copy.zip", (data / "submission_format.csv").read_text())
    result = compete.in_process("submit", "serengeti", good, "--data", data, "-m", "format as is", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output and "copy.zip" in result.output


def test_submit_refuses_what_is_neither_a_run_nor_a_bundle(compete, data, tmp_path):
    stray = tmp_path / "predictions.csv"
    stray.write_text("seq_id\n")
    result = compete.in_process("submit", "serengeti", stray, "--data", data, "-m", "x")
    assert result.exit_code == 2 and "run directory" in result.output and "submission.zip" in result.output


@pytest.mark.parametrize("command", [("data", "download", "serengeti", "--out", "somewhere"),
                                     ("submissions", "serengeti"), ("leaderboard", "serengeti")])
def test_the_verbs_without_an_api_say_where_to_go(compete, command):
    result = compete.in_process(*command)
    assert result.exit_code == 2
    assert "DrivenData offers no" in result.output and "drivendata.org/competitions" in result.output
    assert len(result.output.strip().splitlines()) == 1


@needs_sandbox
def test_a_platform_named_competition_is_submitted_with_the_profile_given(compete, data, tmp_path):
    """drivendata:SLUG declares no runtime profile: `submit` takes --profile as `runtime
    test` does, and without it says so in one line, before running anything."""
    good = bundle_writing(tmp_path / "copy.zip", (data / "submission_format.csv").read_text())
    name = "drivendata:hakuna-ma-data"
    missing = compete.in_process("submit", name, good, "--data", data, "-m", "format as is")
    assert missing.exit_code == 2
    assert missing.output.strip() == f"error: {name}: no runtime profile; pass --profile (see `compete runtime profiles`)"
    assert not (tmp_path / "copy.runtime").exists()
    result = compete.in_process("submit", name, good, "--data", data, "-m", "format as is", "--profile", "hakuna-madata")
    assert result.exit_code == 0, result.output
    assert "ran as the hakuna-madata runtime would" in result.output and "wrote a valid submission" in result.output
    assert (tmp_path / "copy.runtime" / "log.txt").is_file()


def test_profile_is_refused_for_a_competition_that_takes_a_file(compete, tmp_path):
    sample = tmp_path / "sample_submission.csv"
    sample.write_text("Id,SalePrice\n1461,1\n")
    result = compete.in_process("submit", "house-prices", sample, "--data", tmp_path, "-m", "x", "--profile", "hakuna-madata")
    assert result.exit_code == 2 and "--profile is for code submissions" in result.output
