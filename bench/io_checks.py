"""What the input checks cost: common.io.read_table (encoding, separator, header, every
row's field count, the last line) against the named baseline, common.io.read_csv (pandas
alone), on a file the size of uberct's SampleSubmission.csv (1,174,496 rows), read as
text as the loaders read it. Same data, same run. Target: the checks add <= 50%.

Usage: python bench/io_checks.py [--rows 1174496] [--repeats 3]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import io  # noqa: E402

TARGET_RATIO = 1.5


def best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_174_496)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="compete-bench-io-"))
    try:
        rng = np.random.default_rng(0)
        hours = pd.date_range("2019-01-01 01:00", periods=2159, freq="h").strftime("%Y-%m-%d %H:%M:%S")
        segments = [f"S{i:06d}" for i in range(-(-args.rows // len(hours)))]
        ids = [f"{hour} x {segment}" for segment in segments for hour in hours][: args.rows]
        path = io.write_csv(pd.DataFrame({"datetime x segment_id": ids, "prediction": rng.integers(0, 2, len(ids))}),
                            folder / "SampleSubmission.csv")
        options = dict(dtype=str, keep_default_na=False)
        baseline = best_of(args.repeats, lambda: io.read_csv(path, **options))
        checked = best_of(args.repeats, lambda: io.read_table(path, ["datetime x segment_id", "prediction"], **options))
        ratio = checked / baseline
        print(f"{args.rows} rows, {path.stat().st_size / 1e6:.1f} MB: read_csv (baseline) {baseline:.2f} s, "
              f"read_table (checked) {checked:.2f} s; ratio {ratio:.2f} (target <= {TARGET_RATIO})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
