"""The Kaggle rerun emulation's overhead, against the named baseline measured in the same
run: the same house-prices notebook executed directly with nbclient (a kernel of this
interpreter, the inputs laid out as Kaggle lays them out, under a scratch folder instead
of /kaggle, no sandbox, no environment check).

The emulation (`compete runtime test PACKAGE --data DIR`) adds: reading and checking the
package against the kaggle-notebook profile, the data view, the sandbox (mount, PID,
network namespaces, the cgroups, the ext4-backed writable folders), the notebook
executed there by nbclient, the output validated and scored. Both write the same bytes.

Usage: python bench/kaggle_rerun.py [--full] [--repeats N]
  default: a --fast house-prices run on the real Kaggle data (fetched offline); --full
  trains the default model (about 5 minutes on 2 cores) first. Only the notebook's runs
  are timed, `repeats` times each (median).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _command import compete


def direct(package: Path, data: Path, where: Path) -> tuple[float, Path]:
    """Execute the package's notebook with nbclient, outside any sandbox: the competition's
    files at input/competitions/SLUG, the dataset at input/DATASET-SLUG, working/ the working
    directory, the notebook's /kaggle paths pointed there. Wall seconds and the output."""
    import nbformat
    from nbclient import NotebookClient

    manifest = json.loads((package / "compete-package.json").read_text())
    inputs, working = where / "input", where / "working"
    shutil.rmtree(where, ignore_errors=True)
    shutil.copytree(data, inputs / "competitions" / manifest["slug"], ignore=shutil.ignore_patterns("answers"))
    shutil.copytree(package / manifest["dataset"], inputs / manifest["dataset_id"].split("/")[1])
    working.mkdir(parents=True)
    notebook = nbformat.read(package / "kernel" / manifest["code_file"], as_version=4)
    for cell in notebook.cells:
        cell.source = cell.source.replace("/kaggle/input", str(inputs)).replace("/kaggle/working", str(working))
    started = time.perf_counter()
    NotebookClient(notebook, timeout=3600, kernel_name="python3", resources={"metadata": {"path": str(working)}}).execute()
    return time.perf_counter() - started, working / manifest["output"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="train the default house-prices model, not --fast")
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    load = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="bench-kaggle-rerun-"))
    try:
        data, run_dir, package = scratch / "data", scratch / "run", scratch / "package"
        compete("data", "fetch", "house-prices", "--out", data)
        fit_seconds, _ = compete("fit", "house-prices", "--data", data, "--run-dir", run_dir, "--quiet",
                                 *([] if arguments.full else ["--fast"]))
        compete("package", "house-prices", "--run-dir", run_dir, "--profile", "kaggle-notebook", "--out", package)
        baseline, emulated, inside = [], [], []
        for repeat in range(arguments.repeats):
            seconds, written = direct(package, data, scratch / "direct")
            baseline.append(seconds)
            seconds, printed = compete("runtime", "test", package, "--data", data, "--out", scratch / "rerun.csv")
            emulated.append(seconds)
            inside.append(json.loads((scratch / "package.runtime" / "resources.json").read_text())["wall_seconds"])
            same = written.read_bytes() == (scratch / "rerun.csv").read_bytes()
        score = next((line for line in printed.splitlines() if "rmse" in line.lower()), "")
        base, whole, sandboxed = (statistics.median(values) for values in (baseline, emulated, inside))
        print(f"house-prices ({'default' if arguments.full else '--fast'} run, fit {fit_seconds:.0f} s), "
              f"{arguments.repeats} repeat(s), load {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
        print(f"baseline, the notebook run directly with nbclient: {base:.1f} s")
        print(f"compete runtime test (the whole command):          {whole:.1f} s   ratio {whole / base:.2f}")
        print(f"  of which the notebook in the sandbox:             {sandboxed:.1f} s   ratio {sandboxed / base:.2f}")
        print(f"same submission bytes: {same}" + (f"; {score.strip()}" if score else ""))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
