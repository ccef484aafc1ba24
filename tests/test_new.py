"""`compete new NAME --platform P`: a skeleton that works at once. Each test writes it into a
copy of the project's code under tmp_path (a folder with a space), never into the checkout."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT
from PIL import Image


def project_copy(tmp_path: Path) -> Path:
    """cli.py, common/, the registry's table and the tests that check a competition."""
    copy = tmp_path / "a copy"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "common", copy / "common", ignore=ignore)
    for file in ("cli.py", "pyproject.toml", "competitions/__init__.py", "tests/conftest.py", "tests/test_contract.py",
                 "tests/test_notebooks.py"):
        (copy / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / file, copy / file)
    return copy


def test_new_writes_a_skeleton_that_synthesises_runs_and_scores(compete, tmp_path):
    copy, work = project_copy(tmp_path), tmp_path / "work"
    work.mkdir()
    table = (ROOT / "competitions" / "__init__.py").read_bytes()
    there = {"env": {"PYTHONPATH": str(copy)}, "cwd": work}   # not the checkout: `python -c` imports from cwd first

    written = compete("new", "wind-power", "--platform", "zindi", **there).stdout.splitlines()
    package = copy / "competitions" / "wind_power"
    assert written[:5] == [str(package / "__init__.py"), str(package / "synth.py"), str(package / "model.py"),
                           str(copy / "notebooks" / "wind-power.ipynb"), str(copy / "competitions" / "__init__.py")]
    assert not (ROOT / "competitions" / "wind_power").exists() and (ROOT / "competitions" / "__init__.py").read_bytes() == table
    rows = {line.split()[0]: line.split()[1:] for line in compete("list", **there).stdout.splitlines()}
    assert rows["wind-power"] == ["zindi", "auc", "absent", "(synth/download)"]

    data = work / "data"
    compete("data", "synth", "wind-power", "--out", data, **there)
    assert {"Train.csv", "Test.csv", "SampleSubmission.csv"} <= {path.name for path in data.iterdir()}   # Zindi's names
    run = compete("run", "wind-power", "--data", data, "--fast", "--out", work / "submission.csv", "--run-dir",
                  work / "run", **there).stdout
    cv = float(re.search(r"^cv auc: ([0-9.]+)$", run, re.M).group(1))
    assert cv > 0.75   # the synthetic target is driven by two of the four numbers: the baseline finds them
    out_of_fold = pd.read_csv(work / "run" / "out_of_fold.csv")
    assert len(out_of_fold) == 600 and set(out_of_fold["fold"]) == {1, 2, 3}
    assert f"cv auc {cv:.5f}" in Image.open(work / "run" / "out_of_fold.png").text["Title"]
    scored = compete("score", "wind-power", work / "submission.csv", "--answers", data / "answers", **there).stdout
    assert float(scored.split("auc: ")[1]) > 0.75
    assert json.loads((work / "run" / "config.json").read_text())["options"]["c"] == 1.0

    # refused before anything is written (here, in process: these never reach the checkout)
    for args, says in ((("house-prices", "--platform", "kaggle"), "already a competition's name"),
                       (("Wind Power", "--platform", "kaggle"), "lower-case letters and digits"),
                       (("solar", "--platform", "kaggel"), "'kaggel' is not one of")):
        refused = compete.in_process("new", *args)
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 or "kaggel" in args   # click's usage error has its own lines
    assert not (ROOT / "competitions" / "solar").exists() and (ROOT / "competitions" / "__init__.py").read_bytes() == table


@pytest.mark.slow   # the contract suite and the notebook on the skeleton, in a pytest of its own: ~1 min
@pytest.mark.extended   # the skeleton's synth, run and score: the test above
def test_the_contract_suite_and_the_notebook_pass_on_a_new_skeleton_at_once(compete, tmp_path):
    copy = project_copy(tmp_path)
    # cwd: `python -c` imports from the folder it runs in first, which must not be the checkout
    compete("new", "solar-output", "--platform", "drivendata", env={"PYTHONPATH": str(copy)}, cwd=tmp_path)
    assert not (ROOT / "competitions" / "solar_output").exists()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "solar-output",
                           "tests/test_contract.py", "tests/test_notebooks.py"],
                          cwd=copy, capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONPATH": str(copy)})
    assert done.returncode == 0, done.stdout[-3000:]
    counts = re.search(r"(\d+) passed", done.stdout)
    assert counts and int(counts.group(1)) >= 11 and "failed" not in done.stdout.splitlines()[-1], done.stdout[-3000:]
