"""birdcall: wall time of `compete run birdcall --fast` on synthetic --scale small data,
from a cold feature cache, against the target of 120 s on 2 cores; and the same with a
warm cache. The named baseline for the score: a uniform guess (ln 40 = 3.689).

Usage: python bench/birdcall_fast.py
"""
from __future__ import annotations

import math
import os
import re
import resource
import tempfile
from pathlib import Path

from _command import compete  # noqa: E402 (bench/ is the script's folder)


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        env = {**os.environ, "COMPETE_CACHE": str(work / "cache")}
        synth_seconds, _ = compete("data", "synth", "birdcall", "--out", work / "data", "--scale", "small", env=env)
        rows = []
        for label in ("cold cache", "warm cache"):
            seconds, out = compete("run", "birdcall", "--data", work / "data", "--fast", "--quiet",
                                   "--out", work / f"{label}.csv", "--run-dir", work / label.replace(" ", "-"), env=env)
            rows.append((label, seconds, float(re.search(r"cv log_loss: ([0-9.]+)", out).group(1))))
        _, scored = compete("score", "birdcall", work / "cold cache.csv", "--answers", work / "data" / "answers", env=env)
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(f"{os.cpu_count()} cores; synth --scale small: {synth_seconds:.1f} s")
    for label, seconds, cv in rows:
        print(f"compete run --fast, {label}: {seconds:6.1f} s (target < 120 s: {seconds / 120:.2f} of it), CV log loss {cv:.4f}")
    print("test answers:", ", ".join(line.strip() for line in scored.strip().splitlines()),
          f"(uniform guess: {math.log(40):.3f})")
    print(f"peak RSS of a child: {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
