"""house-prices: a 20-trial `compete tune` and a `compete blend` of its best three trials,
each CV beside the default run's (the named baseline, measured here), with wall times.

All CVs are out of fold on all 1,460 rows; the blend's is nested. The study and the runs go
to a scratch folder (its own runs/ and MLflow store), so the checkout is left untouched.
Usage: python bench/tune_blend.py [DATA_DIR] [--trials N] [--full]   (--fast runs unless --full;
fetches the real data when DATA_DIR is absent)
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _command import COMMAND, ROOT  # noqa: E402 (bench/ is the script's folder)


def compete(work: Path, *args) -> tuple[float, str]:
    started = time.perf_counter()
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    done = subprocess.run([*COMMAND, *map(str, args)], cwd=work, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"compete {' '.join(map(str, args))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - started, done.stdout


def cv(out: str) -> float:
    return float(re.findall(r"^cv rmsle: ([0-9.]+)", out, re.M)[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", type=Path)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--full", action="store_true", help="full runs (minutes each) instead of --fast")
    arguments = parser.parse_args()
    speed = () if arguments.full else ("--fast",)
    with tempfile.TemporaryDirectory(prefix="compete-bench-") as folder:
        work = Path(folder)
        data = arguments.data or work / "data"
        if arguments.data is None:
            compete(work, "data", "fetch", "house-prices", "--out", data)
        data = Path(data).resolve()
        default_wall, out = compete(work, "run", "house-prices", "--data", data, "--quiet", *speed)
        default_cv = cv(out)
        tune_wall, out = compete(work, "tune", "house-prices", "--data", data, "--trials", arguments.trials, "--quiet", *speed)
        import optuna
        storage = f"sqlite:///{work / 'runs' / 'house-prices' / 'studies.db'}"
        (name,) = optuna.get_all_study_names(storage)
        study = optuna.load_study(study_name=name, storage=storage)
        complete = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
        best_three = [t.user_attrs["run_dir"] for t in complete[:3]]
        blend_wall, blended = compete(work, "blend", "house-prices", *best_three, "--data", data)
        states = {state: sum(t.state.name == state for t in study.trials) for state in ("COMPLETE", "PRUNED", "FAIL")}
        print(f"house-prices{'' if arguments.full else ' --fast'}, real data, 1,460 rows, CV RMSLE out of fold on every row")
        print(f"default run (baseline)      cv {default_cv:.5f}   wall {default_wall:7.1f} s")
        print(f"tune, {arguments.trials} trials            best {complete[0].value:.5f}   wall {tune_wall:7.1f} s   "
              f"({states['COMPLETE']} complete, {states['PRUNED']} pruned, {states['FAIL']} failed)")
        print(f"blend of the best three     cv {cv(blended):.5f}   wall {blend_wall:7.1f} s   (nested)")
        print(f"ratios to the default: tune best {complete[0].value / default_cv:.3f}, blend {cv(blended) / default_cv:.3f}")
        print(out.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
