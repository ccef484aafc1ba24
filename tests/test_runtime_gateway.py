"""common/runtimes/gateway.py: the rerun of a `kaggle_evaluation` competition. The
notebook serves `predict` in its sandbox (public files only); the competition's gateway,
in a second sandbox that alone holds the hidden test, calls it at host `inference_server`
over a private link, with its own limits, and writes submission.parquet and result.json,
which the run reads back: a failure is one line naming Kaggle's class and the gateway's
error, a success is validated, kept and scored.

The competition is synthetic: the project's stand-in package (tests/fixtures/
kaggle_evaluation, the demo gateway: one predict call per `batch` of test.csv) copied into
a public and a hidden data folder. The gateway's limits are shortened through the
stand-in's own variables (COMPETE_STARTUP_LIMIT_SECONDS, COMPETE_RESPONSE_TIMEOUT_SECONDS),
which the run passes from compete's environment to the gateway's sandbox.
"""
from __future__ import annotations

import json
import shutil
import textwrap
import uuid
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import psutil
import pytest

from common.runtimes import network, runner

pytest.importorskip("grpc")
needs_sandbox = pytest.mark.skipif(not runner.sandbox_available()[0] or not network.available()[0],
                                   reason="no mount/network namespaces or no iproute2 here")

FIXTURE = Path(__file__).parent / "fixtures" / "kaggle_evaluation"
SLUG = "demo-gateway"
INPUT = f"/kaggle/input/competitions/{SLUG}"
# the public test: three batches; the hidden one: a batch of 5 rows, then one of 2
PUBLIC = pd.DataFrame({"id": [10, 11, 12, 20, 21, 30], "batch": [1, 1, 1, 2, 2, 3], "x": [1.0, 2, 3, 4, 5, 6]})
HIDDEN = pd.DataFrame({"id": [100, 101, 102, 103, 104, 200, 201], "batch": [1, 1, 1, 1, 1, 2, 2],
                       "x": [0.5, 1.5, 2.5, 3.5, 4.5, 7.0, 8.0]})

# A notebook written as Kaggle's kaggle_evaluation notebooks are. predict answers 2x + 0.5
# where the truth is 2x (RMSE 0.5) and fails loudly if the notebook can see anything but
# the public test: another test.csv at either input path, or a host path of the hidden
# folder. {before} runs before the server is made, {body} inside predict.
CELLS = [
    """\
import os, subprocess, sys, time
import grpc                      # the Kaggle image has grpcio
import pandas as pd
folder = '{input}' if os.path.isdir('{input}') else '/kaggle/input/{slug}'
sys.path.append(folder)          # as Kaggle's notebooks reach the package in the competition's files
import kaggle_evaluation.demo_inference_server
# a process that outlives nothing: the rerun must leave none of the notebook's behind
sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', '{marker}'], start_new_session=True)
print('sleeper started', sleeper.pid, flush=True)
{before}""",
    """\
calls = 0

def predict(batch):
    global calls
    calls += 1
    for place in ('{input}', '/kaggle/input/{slug}'):
        seen = sorted(pd.read_csv(os.path.join(place, 'test.csv'))['id'])
        if seen != {public_ids}:
            raise RuntimeError(f'the notebook sees another test than the public one at {{place}}: {{seen}}')
    for path in {host_paths}:
        if os.path.exists(path):
            raise RuntimeError(f'the notebook can read the hidden folder: {{path}}')
{body}
    return pd.DataFrame({{'prediction': batch['x'] * 2 + 0.5}})""",
    """\
server = kaggle_evaluation.demo_inference_server.DemoInferenceServer(predict)
if os.getenv('KAGGLE_IS_COMPETITION_RERUN'):
    server.serve()
else:
    server.run_local_gateway((folder,))""",
]


def competition_folder(folder: Path, test: pd.DataFrame) -> Path:
    """A competition's files as Kaggle ships a kaggle_evaluation competition: the package,
    the test, a sample; the answers beside them for scoring (never shown)."""
    folder.mkdir(parents=True)
    shutil.copytree(FIXTURE, folder / "kaggle_evaluation", ignore=shutil.ignore_patterns("__pycache__"))
    test.to_csv(folder / "test.csv", index=False)
    test[["id"]].assign(prediction=0.0).to_csv(folder / "sample_submission.csv", index=False)
    (folder / "answers").mkdir()
    test[["id"]].assign(prediction=2 * test["x"]).to_csv(folder / "answers" / "solution.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway")
    return competition_folder(root / "public", PUBLIC), competition_folder(root / "hidden", HIDDEN)


def make_package(folder: Path, hidden: Path, body: str = "", before: str = "") -> tuple[Path, str]:
    """A package folder as `compete package` writes it, holding the notebook; returns it
    and the marker of the notebook's background process."""
    marker = f"compete-gateway-test-{uuid.uuid4().hex}"
    fields = {"input": INPUT, "slug": SLUG, "marker": marker, "public_ids": sorted(PUBLIC["id"]),
              "host_paths": [str(hidden), str(hidden / "test.csv"), str(hidden / "answers")],
              "before": textwrap.dedent(before), "body": textwrap.indent(textwrap.dedent(body), "    ")}
    kernel = folder / "kernel"
    kernel.mkdir(parents=True)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(cell.format(**fields)) for cell in CELLS]
    nbformat.write(notebook, kernel / "notebook.ipynb")
    (kernel / "kernel-metadata.json").write_text(json.dumps({
        "id": "OWNER/demo-gateway-notebook", "title": "demo gateway notebook", "code_file": "notebook.ipynb",
        "language": "python", "kernel_type": "notebook", "is_private": True, "enable_gpu": False, "enable_tpu": False,
        "enable_internet": False, "competition_sources": [SLUG], "dataset_sources": [], "kernel_sources": [],
        "model_sources": []}))
    (folder / "compete-package.json").write_text(json.dumps({
        "competition": f"kaggle:{SLUG}", "metric": "rmse", "platform": "kaggle", "profile": "kaggle-notebook",
        "slug": SLUG, "kernel": "kernel", "dataset": None, "output": "submission.csv"}))
    return folder, marker


def rerun(compete, package: Path, data, *options):
    public, hidden = data
    return compete.in_process("runtime", "test", package, "--data", public, "--hidden", hidden,
                              "--profile", "kaggle-notebook", *options)


def results(package: Path) -> Path:
    return package.with_name(package.name + ".runtime")


def left_behind(marker: str) -> list[int]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if marker in (process.info["cmdline"] or []):
            found.append(process.pid)
    return found


# ---------------------------------------------------------------- what passes

@needs_sandbox
def test_a_served_notebook_passes_the_gateway_holds_the_hidden_test_and_nothing_is_left(compete, data, tmp_path):
    hidden = data[1]
    package, marker = make_package(tmp_path / "package", hidden)
    result = rerun(compete, package, data, "--out", tmp_path / "kept.parquet")
    assert result.exit_code == 0, result.output
    assert "passed on kaggle-notebook" in result.output
    # the gateway read the hidden test (the notebook's predict refuses to run where it can see it)
    kept = pd.read_parquet(tmp_path / "kept.parquet")
    assert list(kept.columns) == ["id", "prediction"]                       # row ids first
    assert list(kept["id"]) == list(HIDDEN["id"])
    assert np.allclose(kept["prediction"], 2 * HIDDEN["x"] + 0.5)
    assert f"score against {hidden / 'answers'}: rmse 0.500000" in result.output
    assert "to the gateway alone" in result.output
    assert json.loads((results(package) / "result.json").read_text()) == {"Succeeded": True}
    log = (results(package) / "log.txt").read_text()
    assert "sleeper started" in log
    # serve() never returns in the rerun: the notebook's sandbox was stopped, and all in it killed
    assert left_behind(marker) == []
    assert "gateway" in json.loads((results(package) / "resources.json").read_text())


@needs_sandbox
def test_a_slow_first_call_passes_a_slow_later_call_fails_at_the_deadline(compete, data, tmp_path, monkeypatch):
    monkeypatch.setenv("COMPETE_RESPONSE_TIMEOUT_SECONDS", "1")
    first, _ = make_package(tmp_path / "first", data[1], body="if calls == 1:\n    time.sleep(3)")
    result = rerun(compete, first, data)
    assert result.exit_code == 0, result.output                              # no deadline on the first call
    later, marker = make_package(tmp_path / "later", data[1], body="if calls == 2:\n    time.sleep(30)")
    result = rerun(compete, later, data)
    assert result.exit_code == 1
    assert "FAILED: Notebook Timeout: GRPC_DEADLINE_EXCEEDED: a predict call after the first passed" in result.output
    assert left_behind(marker) == []


# ---------------------------------------------------------------- what fails, and how

@needs_sandbox
def test_a_server_that_never_starts_fails_at_the_start_limit(compete, data, tmp_path, monkeypatch):
    monkeypatch.setenv("COMPETE_STARTUP_LIMIT_SECONDS", "2")
    package, marker = make_package(tmp_path / "package", data[1], before="time.sleep(120)")
    result = rerun(compete, package, data)
    assert result.exit_code == 1
    assert "FAILED: Notebook Timeout: SERVER_NEVER_STARTED: no inference server answered" in result.output
    resources = json.loads((results(package) / "resources.json").read_text())
    assert resources["wall_seconds"] < 60                                    # stopped, not waited for
    assert left_behind(marker) == []


@needs_sandbox
def test_a_wrong_row_count_is_the_gateways_invalid_submission(compete, data, tmp_path):
    package, _ = make_package(tmp_path / "package", data[1], body="if len(batch) == 5:\n    return pd.DataFrame({'prediction': [0.0] * 4})")
    result = rerun(compete, package, data, "--out", tmp_path / "kept.parquet")
    assert result.exit_code == 1
    assert ("FAILED: Submission Scoring Error: INVALID_SUBMISSION: Invalid predictions: expected 5 rows but received 4"
            in result.output)
    assert not (tmp_path / "kept.parquet").exists()


@needs_sandbox
def test_an_exception_in_predict_and_one_before_serving_are_the_notebooks(compete, data, tmp_path):
    package, _ = make_package(tmp_path / "predict", data[1], body="raise ValueError('model file missing')")
    result = rerun(compete, package, data)
    assert result.exit_code == 1
    assert "FAILED: Notebook Threw Exception: SERVER_RAISED_EXCEPTION: model file missing" in result.output
    package, _ = make_package(tmp_path / "before", data[1], before="raise FileNotFoundError('weights.pt')")
    result = rerun(compete, package, data)
    assert result.exit_code == 1
    assert "FAILED: Notebook Threw Exception: FileNotFoundError: weights.pt" in result.output


@needs_sandbox
def test_the_time_cap_bounds_the_whole_rerun(compete, data, tmp_path):
    package, marker = make_package(tmp_path / "package", data[1], body="time.sleep(120)")   # the first call: no deadline
    result = rerun(compete, package, data, "--time-limit", 8)
    assert result.exit_code == 1
    assert "FAILED: Notebook Timeout: the rerun passed the time cap of 8 s" in result.output
    assert left_behind(marker) == []


@needs_sandbox
def test_the_hidden_folders_own_gateway_runs_and_its_crash_is_named(compete, data, tmp_path):
    """The hidden folder may carry its own package: that one is the gateway's. One that
    cannot even start (here a module it imports is missing, as polars is for Kaggle's
    own package in an environment without it) leaves no result.json: said in one line."""
    public, hidden = data
    broken = tmp_path / "hidden"
    shutil.copytree(hidden, broken)
    gateway = broken / "kaggle_evaluation" / "demo_gateway.py"
    gateway.write_text("import compete_absent_module\n" + gateway.read_text())
    package, _ = make_package(tmp_path / "package", broken)
    result = rerun(compete, package, (public, broken))
    assert result.exit_code == 1
    assert ("FAILED: the gateway kaggle_evaluation.demo_gateway ended without result.json (exit 1): "
            "ModuleNotFoundError: No module named 'compete_absent_module'") in result.output


def test_a_package_without_a_gateway_module_is_refused_in_one_line(compete, data, tmp_path):
    public, hidden = data
    bare = tmp_path / "public"
    shutil.copytree(public, bare)
    (bare / "kaggle_evaluation" / "demo_gateway.py").rename(bare / "kaggle_evaluation" / "demo.py")
    package, _ = make_package(tmp_path / "package", hidden)
    result = compete.in_process("runtime", "test", package, "--data", bare, "--profile", "kaggle-notebook")
    if not runner.sandbox_available()[0] or not network.available()[0]:
        assert result.exit_code == 2 and "cannot be built here" in result.output
        return
    assert result.exit_code == 2
    assert f"{bare / 'kaggle_evaluation'}: the rerun runs the competition's gateway" in result.output
    assert "Traceback" not in result.output
