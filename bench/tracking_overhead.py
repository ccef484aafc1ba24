"""What tracking a run in MLflow costs: `compete fit house-prices --fast` tracked in a
local store (made anew, then existing) against the baseline, the same fit with tracking
off (a tracking URI where nothing listens: one refused probe, then no MLflow at all).

    .venv/bin/python bench/tracking_overhead.py
"""
from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from _command import compete  # noqa: E402 (bench/ is the script's folder)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as scratch:
        scratch = Path(scratch)
        data = scratch / "house-prices"
        compete("data", "fetch", "house-prices", "--out", data)
        store = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{scratch / 'mlflow.db'}"}
        off = {**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{_closed_port()}"}
        timings = {}
        for name, env in (("untracked (baseline)", off), ("tracked, new store", store), ("tracked, existing store", store)):
            timings[name], _ = compete("fit", "house-prices", "--data", data, "--fast", "--quiet",
                                       "--run-dir", scratch / name.replace(" ", "-").replace(",", ""), env=env)
        baseline = timings["untracked (baseline)"]
        for name, seconds in timings.items():
            print(f"{name:26s} {seconds:7.1f} s  {seconds / baseline:5.2f}x the untracked fit")


if __name__ == "__main__":
    main()
