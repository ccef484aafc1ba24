"""The run machinery: what lands where, and a terminal that stays readable; options and
outputs checked before any work; an interrupted run."""
import io as text_io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from tqdm import tqdm

from common.runs import ProgressAwareHandler


def test_log_lines_and_progress_bars_do_not_share_a_row():
    stream = text_io.StringIO()
    handler = ProgressAwareHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("compete.test-progress")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with tqdm(total=10, file=stream, desc="folds", ncols=60, mininterval=0) as bar:
            bar.update(3)
            logger.warning("fold 3 done")
            bar.update(3)
    finally:
        logger.removeHandler(handler)
    # What a terminal shows on each row: the text after the row's last carriage return.
    rows = [row.split("\r")[-1] for row in stream.getvalue().split("\n")]
    assert "fold 3 done" in rows
    assert rows[-2].startswith("folds:  60%")  # the bar is drawn again below the line


def test_where_nothing_redraws_a_row_progress_is_whole_lines_at_an_interval(monkeypatch):
    from common.progress import PlainBar
    from common.progress import tqdm as progress
    monkeypatch.setenv("TQDM_MININTERVAL", "0.2")
    stream = text_io.StringIO()  # not a terminal: a log file, a pipe
    handler = ProgressAwareHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("compete.test-plain-progress")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        bar = progress(range(10), desc="folds", file=stream)
        assert isinstance(bar, PlainBar)
        for step in bar:
            time.sleep(0.05)
            if step == 5:
                logger.warning("fold 5 done")
        with progress(total=3, desc="short", file=stream) as quick:  # shorter than the interval: says nothing
            quick.update(3)
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and "\x1b[" not in stream.getvalue()
    assert "fold 5 done" in lines and not any(line.startswith("short") for line in lines)
    shown = [line for line in lines if line.startswith("folds:")]
    assert 2 <= len(shown) < 10  # a line per 0.2 s of a 0.5 s stage and the last figures, not one per step
    assert shown[-1].startswith("folds: 100%") and "10/10" in shown[-1]


def test_a_bar_whose_making_a_signal_cut_short_says_nothing_when_collected(monkeypatch):
    """Ctrl-C or a run's SIGTERM can land inside tqdm's __init__, before the bar has a row; the half-made
    bar is collected later, and its close must not raise there (CI saw "'PlainBar' object has no attribute
    'pos'" as a run's last line of stderr, after "interrupted; nothing was kept")."""
    import gc
    from common.progress import PlainBar

    def interrupted(*_):
        raise KeyboardInterrupt
    monkeypatch.setattr(PlainBar, "_get_free_pos", interrupted)
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with pytest.raises(KeyboardInterrupt):
        PlainBar(range(3), file=text_io.StringIO())
    gc.collect()
    assert unraisable == []


# ---- checked before any work, and interrupted cleanly: through the real CLI on house-prices


def test_options_and_the_output_path_are_checked_before_any_work(compete, house_data, tmp_path):
    result = compete("run", "house-prices", "--data", house_data, "--set", "folds=1", check=False, cwd=tmp_path)
    assert (result.returncode, result.stderr) == (2, "error: house-prices: folds: 1 is out of range; it must be >= 2\n")
    folder = tmp_path / "out"
    folder.mkdir()
    result = compete("run", "house-prices", "--data", house_data, "--fast", "--out", folder, check=False, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: --out {folder}: is a folder")
    result = compete("predict", "house-prices", "--data", house_data, "--run-dir", tmp_path, "--out", folder,
                     check=False, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith(f"error: --out {folder}: is a folder")
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = compete("run", "house-prices", "--data", house_data, "--fast", "--out", locked / "new" / "s.csv",
                         check=False, cwd=tmp_path)
        assert result.returncode == 2 and f"cannot write in {locked}" in result.stderr
    assert not (tmp_path / "runs").exists()  # no run was started: nothing was loaded or fitted


def _start(arguments, work: Path, tracking_store: str) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "MLFLOW_TRACKING_URI": tracking_store}
    return subprocess.Popen([sys.executable, "-c", "import cli; cli.main()", *map(str, arguments)], cwd=work,
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _tracked_run(work: Path, process: subprocess.Popen, previous: str | None = None) -> tuple[Path, str]:
    """The run directory once its MLflow run is open (metrics.json names it): (folder, run id)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        for metrics in (work / "runs" / "house-prices").glob("*/metrics.json"):
            with_id = json.loads(metrics.read_text() or "{}").get("mlflow_run_id")
            if with_id and with_id != previous:
                return metrics.parent, with_id
        time.sleep(0.1)
    raise AssertionError(f"no tracked run appeared: {process.communicate()}")


def _status(run_id: str) -> str:
    import mlflow
    return mlflow.MlflowClient().get_run(run_id).info.status


@pytest.mark.slow
def test_an_interrupted_run_leaves_nothing_unless_it_can_resume_and_its_mlflow_run_is_killed(house_data, tmp_path,
                                                                                            tracking_store):
    command = ["run", "house-prices", "--data", house_data, "--fast"]
    # SIGTERM (a scheduler's time limit) with nothing to resume from: no run directory at all.
    process = _start(command, tmp_path, tracking_store)
    run_dir, run_id = _tracked_run(tmp_path, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert stderr.splitlines()[-1] == "interrupted; nothing was kept (no checkpoint to resume from)"
    assert "Traceback" not in stderr and not run_dir.exists()
    assert _status(run_id) == "KILLED"
    # Ctrl-C in a run holding a checkpoint (as the trainer's runs do): kept, and said so.
    process = _start(command, tmp_path, tracking_store)
    run_dir, run_id = _tracked_run(tmp_path, process)
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"what a resume needs")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.splitlines()[-1] == f"interrupted; the same command resumes (from {run_dir.relative_to(tmp_path)})"
    assert (run_dir / "interrupted.json").is_file() and _status(run_id) == "KILLED"
    # The same command resumes that very run directory, and makes no other.
    process = _start(command, tmp_path, tracking_store)
    resumed, resumed_id = _tracked_run(tmp_path, process, previous=run_id)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert resumed == run_dir and process.returncode == 143, stderr
    assert [path.name for path in (tmp_path / "runs" / "house-prices").iterdir()] == [run_dir.name]
    assert (run_dir / "interrupted.json").is_file() and _status(resumed_id) == "KILLED"  # and resumable again


def test_a_bug_in_a_stage_names_the_stage_but_is_not_bad_input(tmp_path):
    """An unexpected error inside a stage exits 2 (DESIGN.md) with one line naming the
    stage, but it is a bug, never reported as the user's input (io.InputError)."""
    from common import io, runs
    with pytest.raises(runs.StageFailed) as raised:
        runs.stage("fit", tmp_path, tmp_path, lambda: 1 / 0)
    assert not isinstance(raised.value, io.InputError) and raised.value.exit_code == 2
    assert str(raised.value).startswith(f"fit failed on {tmp_path}: ZeroDivisionError: division by zero; traceback in ")
    assert "ZeroDivisionError" in (tmp_path / "log.txt").read_text()
