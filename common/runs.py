"""Run directories and the load -> fit -> predict -> validate pipeline behind the CLI.

A run directory `runs/<competition>/<run-id>/` holds everything a run decided:
config.json (the competition, the data folder and every option the run was given),
metrics.json (the Report `fit` returned: `cv_score`, `fold_scores` and the decisions,
then timings and the submission; this module alone writes it), the log, out-of-fold
predictions, plots and the model files. The same run is tracked in MLflow
(common/tracking.py, called from here only): metrics.json names it (`mlflow_run_id`).

A run that fails leaves no run directory behind. One interrupted (Ctrl-C, or SIGTERM from
a scheduler's time limit) leaves none either, unless it holds a checkpoint to resume
from: then it is kept, marked interrupted, and the same command resumes it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from common import callbacks, distributed, io, parallel, tracking
from common.competition import Competition, Report, write_json
from common.metrics import Metric
from common.options import Options, describe
from common.submission import align_to_sample, validate, write

log = logging.getLogger("compete")

OUT_OF_FOLD = "out_of_fold.csv"    # Report.out_of_fold: id, fold, the submission's columns, then truth:COLUMN
TEST_PREDICTIONS = "test_predictions.csv"  # the test predictions a blend combines (submission shape)
CHECKPOINTS = "checkpoints"        # where common/trainers.py (and any resumable fit) keeps what a resume needs
INTERRUPTED = "interrupted.json"   # beside config.json in a run kept after an interrupt


@dataclass
class RunResult:
    run_dir: Path
    submission: Path | None
    cv_score: float | None
    metric: str


def new_run_dir(competition: Competition, seed: int | None, root: Path | str = tracking.ROOT, label: str | None = None) -> Path:
    """A fresh runs/COMP/<time>-seed<N> folder (<time>-<label> for a run of another kind, e.g. a blend)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = Path(root) / competition.name / f"{stamp}-{label or f'seed{seed}'}"
    run_dir, suffix = base, 1
    while run_dir.exists():
        suffix += 1
        run_dir = base.with_name(f"{base.name}-{suffix}")
    run_dir.mkdir(parents=True)
    return run_dir


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM during a run. `exit_code` follows the shell's convention for a
    command ended by a signal (128 + its number: 130 for Ctrl-C, 143 for SIGTERM), so a
    scheduler or a script tells an interrupt from a failed check (1) or bad input (2)."""

    def __init__(self, number: int = signal.SIGINT, message: str = "interrupted"):
        super().__init__(message)
        self.number, self.message = int(number), message

    @property
    def exit_code(self) -> int:
        return 128 + self.number


_received: int | None = None  # the last signal raised on: a library (CatBoost) may re-raise it bare


@contextlib.contextmanager
def interruptible():
    """SIGTERM raises as Ctrl-C does (Python's default for it is to die on the spot, leaving
    the run directory and an MLflow run stuck in RUNNING), both as `Interrupted`, so the
    cleanup below runs; the handlers before are restored after. Signals reach the main
    thread only: elsewhere this changes nothing."""
    global _received
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received = None

    def interrupt(number, frame):
        global _received
        _received = number
        raise Interrupted(number)
    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def holds_checkpoint(run_dir: Path) -> bool:
    """A file in a checkpoints folder anywhere in the run (one per network, e.g. per fold)."""
    return any(path.is_file() for path in Path(run_dir).rglob(f"{CHECKPOINTS}/*"))


def _after_interrupt(run_dir: Path, competition: Competition, error: KeyboardInterrupt, created: bool) -> Interrupted:
    """Keep a run that can resume (marked, for the same command to find it), remove one that
    cannot; the Interrupted returned says which."""
    number = error.number if isinstance(error, Interrupted) else _received or signal.SIGINT  # CatBoost re-raises bare
    if holds_checkpoint(run_dir):
        write_json(Path(run_dir) / INTERRUPTED, {"signal": signal.Signals(number).name,
                                                 "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        return Interrupted(number, f"interrupted; the same command resumes (from {run_dir})")
    if created:
        discard(run_dir, competition, error)
        return Interrupted(number, "interrupted; nothing was kept (no checkpoint to resume from)")
    return Interrupted(number, f"interrupted; {run_dir} holds no checkpoint: the same command starts it over")


def interrupted_run(competition: Competition, settings: dict, root: Path | str = tracking.ROOT) -> Path | None:
    """The newest interrupted run of these very settings under runs/COMP, claimed for this
    call (its mark removed, so two commands never resume the same run), else None."""
    for mark in sorted((Path(root) / competition.name).glob(f"*/{INTERRUPTED}"), reverse=True):
        config = mark.parent / "config.json"
        try:
            if _differences(json.loads(config.read_text()), settings):
                continue
            mark.unlink()
        except (OSError, json.JSONDecodeError):  # claimed by another command meanwhile, or not a run's config
            continue
        return mark.parent
    return None


def check_output(path: Path, option: str = "--out") -> Path:
    """The file `path` can be written, checked before any work: not a folder, and a folder
    this user may write in holds it (or will, once made)."""
    path = Path(path)
    if path.is_dir():
        raise io.InputError(f"{option} {path}: is a folder; name the file to write in it (e.g. {path / 'submission.csv'})")
    return check_writable(path, option)


def check_writable(path: Path, option: str) -> Path:
    """The nearest folder of `path` that exists is a folder this user may write in."""
    path = Path(path)
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise io.InputError(f"{option} {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise io.InputError(f"{option} {path}: cannot write in {folder} (permission denied)")
    return path


class ProgressAwareHandler(logging.StreamHandler):
    """Writes each record above any progress bar instead of through it: tqdm.write
    clears the bars, prints the line and redraws them, so on a terminal a log line and a
    bar never share a row."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 (logging's own contract: a handler never raises)
            self.handleError(record)


@contextlib.contextmanager
def logging_to(run_dir: Path, quiet: bool):
    """Log to `run_dir/log.txt` always and to stderr unless quiet."""
    log.setLevel(logging.INFO)
    handlers = [logging.FileHandler(Path(run_dir) / "log.txt")]
    if not quiet:
        handlers.append(ProgressAwareHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()


def record(run_dir: Path, **metrics) -> dict:
    """Merge `metrics` into run_dir/metrics.json and return the whole record."""
    path = Path(run_dir) / "metrics.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(metrics)
    write_json(path, current)
    return current


def read_metrics(run_dir: Path) -> dict:
    path = Path(run_dir) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}


def fit(competition: Competition, data_dir: Path, options: Options | None = None, run_dir: Path | None = None,
        scheduler=None):
    """Load and train; returns (model, data, run_dir). The model is saved in run_dir,
    the options in config.json and the Report `fit` returned in metrics.json.

    Under torchrun every process runs this; rank 0 alone writes the run directory.
    `scheduler`: a Dask scheduler address for the data stages (common.parallel).
    A run directory this call creates is removed again when the call fails, so a failed
    command leaves no run behind; a reused one is resumed (same settings) or refused."""
    options = competition.options() if options is None else options
    if not isinstance(options, competition.options):
        raise TypeError(f"{competition.name} takes {competition.options.__name__}, not {type(options).__name__}")
    with interruptible(), parallel.using(scheduler):
        return _fit(competition, data_dir, options, run_dir)


def _settings(competition: Competition, data_dir: Path, options: Options) -> dict:
    """What config.json records, and what a run must match to be resumed."""
    return {"competition": competition.name, "data": str(Path(data_dir).resolve()), "options": asdict(options)}


def _fit(competition: Competition, data_dir: Path, options: Options, run_dir: Path | None):
    distributed.start()
    settings = _settings(competition, data_dir, options)
    created = True
    if distributed.is_main():
        run_dir = run_dir if run_dir is not None else interrupted_run(competition, settings)
        if run_dir is None:
            run_dir = new_run_dir(competition, options.seed)
        else:
            run_dir = check_writable(run_dir, "--run-dir")
            created = open_run_dir(run_dir, settings)
    run_dir = Path(distributed.broadcast(str(run_dir)))
    if not distributed.is_main():
        return _fit_beside_rank_zero(competition, data_dir, options, run_dir)
    try:
        with logging_to(run_dir, options.quiet), tracking.scope() as tracker, io.counting_unusable() as unusable:
            write_json(run_dir / "config.json", settings)
            started = time.perf_counter()
            data = stage("load", data_dir, run_dir, competition.load, Path(data_dir))
            # after load: bad input stays one line on the terminal
            log.info("data stages: %s; training on %d process(es)", parallel.describe(), distributed.world_size())
            metric = competition.metric_for(data)
            _track(tracker, competition, metric, options, run_dir, data_dir)
            model, report = stage("fit", run_dir, run_dir, competition.fit, data, options, run_dir)
            if not isinstance(report, Report):
                raise TypeError(f"{competition.name}.fit must return (model, Report), not {type(report).__name__}")
            stage("save", run_dir, run_dir, competition.save_model, model, run_dir)
            if report.out_of_fold is not None:
                keep_out_of_fold(report.out_of_fold, run_dir)
            # rows the checks left out, by file and kind (common/io.py), beside what fit learned
            found = {"unusable_rows": unusable} if unusable else {}
            metrics = record(run_dir, **report.metrics(metric), **found,
                             fit_seconds=round(time.perf_counter() - started, 2), world_size=distributed.world_size())
            log.info("cv %s = %.5f", metric.name, metrics["cv_score"])
            tracker.log_record(metrics)
            tracker.log_artifacts(run_dir)
    except KeyboardInterrupt as error:
        raise _after_interrupt(run_dir, competition, error, created) from None
    except Exception as error:
        if created:
            discard(run_dir, competition, error)
        raise
    distributed.barrier()
    return model, data, run_dir


def keep_out_of_fold(out_of_fold, run_dir: Path) -> Path:
    """out_of_fold.csv: id, fold (1-based), the predicted columns, then `truth:COLUMN`."""
    predictions, truth = out_of_fold.predictions.reset_index(drop=True), out_of_fold.truth.reset_index(drop=True)
    id_column = predictions.columns[0]
    if len(truth) != len(predictions) or len(out_of_fold.fold) != len(predictions) or \
            not (truth[id_column].astype(str) == predictions[id_column].astype(str)).all():
        raise ValueError("out_of_fold: predictions, truth and fold must hold the same rows in the same order")
    frame = pd.concat([predictions[[id_column]], pd.DataFrame({"fold": pd.Series(out_of_fold.fold).astype(int) + 1}),
                       predictions.drop(columns=[id_column]),
                       truth.drop(columns=[id_column]).add_prefix("truth:")], axis=1)
    return io.write_csv(frame, Path(run_dir) / OUT_OF_FOLD)


def keep_test_predictions(competition: Competition, model, data, submission: Path, run_dir: Path) -> Path:
    """test_predictions.csv: what a blend combines for the test rows (the submission
    itself, unless the competition's `test_scores` gives scores before its decision)."""
    scores = competition.test_scores(model, data)
    target = Path(run_dir) / TEST_PREDICTIONS
    if scores is None:
        return io.write_bytes(target, Path(submission).read_bytes())
    return io.write_csv(scores, target)


def open_run_dir(run_dir: Path, settings: dict) -> bool:
    """Make `run_dir`, or reuse it for the same run: True when this call created it.

    A folder holding a run with other settings is refused (mixing two runs' metrics,
    checkpoints and submission in one folder would make both unreadable); with the same
    settings the run resumes from its checkpoints and its old metrics are dropped."""
    if not run_dir.exists() or (run_dir.is_dir() and not any(run_dir.iterdir())):
        existed = run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
        return not existed
    config = run_dir / "config.json"
    if not run_dir.is_dir() or not config.is_file():
        raise io.InputError(f"{run_dir}: exists and is not a run directory (no config.json); pass a new or empty --run-dir")
    try:
        previous = json.loads(config.read_text())
    except json.JSONDecodeError:
        raise io.InputError(f"{config}: not a run's config (unreadable JSON); pass a new --run-dir") from None
    changed = _differences(previous, settings)
    if changed:
        raise io.InputError(f"{run_dir}: holds a run with other settings ({'; '.join(changed[:3])}); "
                            f"rerun with the same ones to resume it, or pass a new --run-dir")
    (run_dir / "metrics.json").unlink(missing_ok=True)  # the resumed run writes its own record
    (run_dir / INTERRUPTED).unlink(missing_ok=True)
    log.info("resuming the run in %s", run_dir)
    return False


def _differences(before: dict, after: dict, prefix: str = "") -> list[str]:
    """What differs between two settings records, ignoring how loudly they ran."""
    changed = []
    for key in sorted(set(before) | set(after)):
        if key == "quiet":
            continue
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            changed.append(f"{prefix}{key} {old!r} -> {new!r}")
    return changed


def stage(name: str, subject, run_dir: Path, function, *args):
    """Call one stage; an unexpected error becomes a StageFailed naming the stage and
    `subject` (the data folder, the run), with the traceback written to the run's log.txt
    only (the terminal gets one line)."""
    try:
        return function(*args)
    except (io.InputError, callbacks.Stop):  # a listener's Stop (a pruned trial) is no failure of the stage
        raise
    except Exception as error:
        import traceback
        with open(Path(run_dir) / "log.txt", "a") as handle:
            handle.write(f"{name} failed on {subject}:\n{''.join(traceback.format_exception(error))}")
        raise StageFailed(f"{name} failed on {subject}: {type(error).__name__}: {' '.join(str(error).split())[:200]}; "
                          f"traceback in {Path(run_dir) / 'log.txt'}") from error


def discard(run_dir: Path, competition: Competition, error: Exception) -> None:
    """Remove a run directory a failed call created; an unexpected error's log is kept
    in the cache (logs/) first, and its message points there."""
    log_file = Path(run_dir) / "log.txt"
    if isinstance(error, StageFailed) and log_file.is_file():
        kept = io.cache_dir("logs") / f"{competition.name}-{Path(run_dir).name}.log.txt"
        shutil.copyfile(log_file, kept)
        error.args = (str(error).replace(str(log_file), str(kept)),)
    shutil.rmtree(run_dir, ignore_errors=True)
    for folder in (run_dir.parent, run_dir.parent.parent):  # runs/COMP and runs, when they are empty
        with contextlib.suppress(OSError):
            folder.rmdir()


class StageFailed(io.Unexpected):
    """An unexpected error inside a stage (load, fit, predict): one line naming the
    stage and its file, the traceback kept in a log the message points at."""


def _track(tracker: tracking.Tracker, competition: Competition, metric: Metric, options: Options, run_dir: Path,
           data_dir: Path) -> None:
    """Open the run's MLflow record: the options (quiet aside) as params; metrics.json names it."""
    params = {name: value for name, value in asdict(options).items() if name != "quiet"}
    tracker.start(competition.name, run_dir, params, tags={
        "competition": competition.name, "platform": competition.platform, "metric": metric.name,
        "data": str(Path(data_dir).resolve()), "run_dir": str(run_dir.resolve()), **tracking.extra_tags()},
        greater_is_better=metric.greater_is_better)
    if tracker.active:
        record(run_dir, mlflow_run_id=tracker.run_id, mlflow_tracking_uri=tracking.shown(tracker.uri))


def _fit_beside_rank_zero(competition: Competition, data_dir: Path, options: Options, run_dir: Path):
    """A rank > 0 under torchrun trains alongside rank 0 (the trainer's collectives) and
    writes nothing of the run: what the competition writes lands in a scratch folder,
    removed after; no progress, no log on the terminal."""
    scratch = Path(tempfile.mkdtemp(prefix=f"compete-rank{distributed.rank()}-"))
    try:
        with logging_to(scratch, quiet=True):
            data = competition.load(Path(data_dir))
            model, _ = competition.fit(data, dataclasses.replace(options, quiet=True), scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    distributed.barrier()
    return model, data, run_dir


def check_run(competition: Competition, run_dir: Path) -> Path:
    """`run_dir` is a finished run of `competition`, or one line saying what it is."""
    run_dir = Path(run_dir)
    config = run_dir / "config.json"
    if not config.is_file():
        raise io.InputError(f"{run_dir}: not a run directory (no config.json); train one with `compete fit {competition.name}`")
    try:
        trained = json.loads(config.read_text()).get("competition")
    except (json.JSONDecodeError, AttributeError):
        raise io.InputError(f"{config}: not a run's config (unreadable JSON)") from None
    if trained != competition.name:
        raise io.InputError(f"{run_dir}: a run of {trained}, not {competition.name}; pass a run directory of "
                            f"`compete fit {competition.name}`")
    return run_dir


def predict(competition: Competition, data_dir: Path, model, out: Path, data=None, scheduler=None) -> Path:
    """Predict, align to the sample, validate, and write `out` atomically.

    An invalid frame is never written: the problems are raised instead."""
    data = data if data is not None else competition.load(Path(data_dir))
    with parallel.using(scheduler):
        frame = competition.predict(model, data)
    sample = competition.sample(Path(data_dir))
    format = competition.submission_for(data, model)  # the format of what the model makes, read from the folder or not
    frame = align_to_sample(frame, sample, format)
    problems = validate(frame, sample, format)
    if problems:
        raise io.InputError(f"{competition.name}: the predictions do not make a valid submission: {problems[0]}")
    return write(frame, out, float_format=competition.float_format)


def run(competition: Competition, data_dir: Path, options: Options | None = None, out: Path | None = None,
        run_dir: Path | None = None, scheduler=None) -> RunResult:
    options = competition.options() if options is None else options
    if out is not None:
        check_output(out)  # before any work: a fit whose submission cannot be written never starts
    with interruptible(), parallel.using(scheduler), tracking.scope():  # one connection, and one MLflow run, for both stages
        return _run(competition, data_dir, options, out, run_dir)


def _run(competition: Competition, data_dir: Path, options: Options, out: Path | None, run_dir: Path | None) -> RunResult:
    competition.sample(Path(data_dir))  # checked before training: a run that cannot end in a submission never starts
    if run_dir is None and distributed.is_main():
        run_dir = interrupted_run(competition, _settings(competition, data_dir, options))
    fresh = run_dir is None or not Path(run_dir).exists() or not any(Path(run_dir).iterdir())
    model, data, run_dir = fit(competition, data_dir, options, run_dir)
    if not distributed.is_main():  # rank 0 predicts and writes the submission
        return RunResult(run_dir, None, None, competition.metric_for(data, model).name)
    out = Path(out) if out else Path("submissions") / competition.name / f"{run_dir.name}.csv"
    try:
        with logging_to(run_dir, options.quiet):
            path = stage("predict", data_dir, run_dir, predict, competition, data_dir, model, out, data)
            stage("keep test predictions", data_dir, run_dir, keep_test_predictions, competition, model, data, path, run_dir)
            log.info("submission written: %s", path)
    except KeyboardInterrupt as error:
        raise _after_interrupt(run_dir, competition, error, fresh) from None
    except Exception as error:
        if fresh:
            discard(run_dir, competition, error)
        raise
    with tracking.scope() as tracker:
        metrics = _made(run_dir, path, tracker)
    return RunResult(run_dir, path, metrics.get("cv_score"), competition.metric_for(data, model).name)


def predict_from(competition: Competition, data_dir: Path, run_dir: Path, out: Path, scheduler=None) -> Path:
    """`predict` with the model trained in `run_dir`; the run records the file it made
    (metrics.json, and its MLflow run), so `submit --wait` finds where a score belongs."""
    check_output(out)
    check_run(competition, run_dir)
    with logging_to(run_dir, quiet=True):
        model = stage("load model", run_dir, run_dir, competition.load_model, run_dir)
        path = stage("predict", data_dir, run_dir, predict, competition, data_dir, model, out, None, scheduler)
    made = read_metrics(run_dir)
    tracker = tracking.Tracker.reopen(made["mlflow_run_id"], made.get("mlflow_tracking_uri")) \
        if made.get("mlflow_run_id") else tracking.Tracker()
    _made(run_dir, path, tracker)
    return path


def _made(run_dir: Path, path: Path, tracker: tracking.Tracker) -> dict:
    """Record a submission file the run made: the latest as `submission`, each one with
    its checksum in `submissions` (what `find_run` looks for); an artifact in MLflow."""
    made = {"file": str(Path(path).resolve()), "sha256": io.sha256(path)}
    earlier = [entry for entry in read_metrics(run_dir).get("submissions", []) if entry != made]
    metrics = record(run_dir, submission=made["file"], submissions=earlier + [made])
    tracker.log_artifacts(run_dir, extra=(Path(path),))
    return metrics


def find_run(competition: Competition, file: Path, root: Path | str = tracking.ROOT) -> Path | None:
    """The run directory that made the submission `file`: by its path, else by its bytes
    (a copy, a move), among runs/COMP/*, newest first."""
    file = Path(file)
    digest, where = io.sha256(file), file.resolve()
    made = [(path.parent, read_metrics(path.parent).get("submissions", []))
            for path in sorted((Path(root) / competition.name).glob("*/metrics.json"), reverse=True)]
    for run_dir, entries in made:
        if any(Path(entry["file"]).resolve() == where and entry["sha256"] == digest for entry in entries):
            return run_dir
    for run_dir, entries in made:
        if any(entry["sha256"] == digest for entry in entries):
            return run_dir
    return None


def record_leaderboard(competition: Competition, file: Path, score: float, reference: str | None = None,
                       run_dir: Path | None = None) -> Path | None:
    """Write the public score of `file` as `lb_score` on the run it came from (`run_dir`
    when the caller knows it, e.g. from a code package's manifest; metrics.json and
    MLflow); returns that run directory, or None when no run made `file`."""
    run_dir = find_run(competition, file) if run_dir is None else (Path(run_dir) if Path(run_dir).is_dir() else None)
    if run_dir is None:
        return None
    metrics = record(run_dir, lb_score=score, lb_reference=reference,
                     lb_scored_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if metrics.get("mlflow_run_id"):
        tracker = tracking.Tracker.reopen(metrics["mlflow_run_id"], metrics.get("mlflow_tracking_uri"))
        tracker.log_metrics({"lb_score": score})
        tracker.log_artifacts(run_dir)
    return run_dir


def history(competition: Competition) -> pd.DataFrame:
    """Past tracked runs, newest first: run, CV, leaderboard score, options that differ
    from the defaults, wall time, status; `attrs["metric"]` the metric the runs recorded."""
    defaults = {row.name: str(row.default) for row in describe(competition.options)}  # as MLflow keeps params: text
    rows = []
    found = tracking.past_runs(competition.name)
    for past in found:
        params, metrics = past["params"], past["metrics"]
        changed = {name: value for name, value in params.items() if defaults.get(name) != value}
        tags = past.get("tags", {})
        made_by = f"study {tags['study']} #{tags.get('trial', '')}" if tags.get("study") else \
            f"blend of {tags['blend']}" if tags.get("blend") else ""
        rows.append({
            "run": past["name"],
            "cv": metrics.get("cv_score"),
            "lb": metrics.get("lb_score"),
            "options": " ".join(f"{name}={value}" for name, value in sorted(changed.items())),
            "wall": _duration(metrics.get("wall_seconds")),
            "status": past["status"].lower(),
            "from": made_by,
        })
    table = pd.DataFrame(rows, columns=["run", "cv", "lb", "options", "wall", "status", "from"])
    # the metric the runs recorded (a PLATFORM:SLUG run's is its folder's, not the class default)
    named = {past.get("tags", {}).get("metric") for past in found} - {None}
    table.attrs["metric"] = named.pop() if len(named) == 1 else competition.metric.name
    return table


def compare(competition: Competition, first: str | Path, second: str | Path, root: Path | str = tracking.ROOT) -> pd.DataFrame:
    """Two runs side by side: their scores, then every option (or blend member) that differs."""
    found = []
    for run in (first, second):
        path = Path(run)
        if not path.is_dir() and (Path(root) / competition.name / str(run)).is_dir():
            path = Path(root) / competition.name / str(run)
        found.append(check_run(competition, path))
    configs = [json.loads((path / "config.json").read_text()) for path in found]
    metrics = [read_metrics(path) for path in found]
    # each run records the metric it was scored by (a PLATFORM:SLUG one is its folder's, not the class's)
    named = {m.get("metric") for m in metrics if m.get("metric")}
    rows = [("cv " + (named.pop() if len(named) == 1 else competition.metric.name), *(m.get("cv_score") for m in metrics)),
            ("lb", *(m.get("lb_score") for m in metrics)),
            ("from", *(f"study {m['study']} #{m.get('trial')}" if m.get("study") else
                       f"blend of {','.join(Path(p).name for p in c['blend']['members'])}" if c.get("blend") else ""
                       for m, c in zip(metrics, configs)))]
    options = [{**c.get("options", {}), **({"members": ",".join(Path(p).name for p in c["blend"]["members"])}
                                           if c.get("blend") else {})} for c in configs]
    for name in sorted(set(options[0]) | set(options[1]), key=lambda key: list(options[0]).index(key) if key in options[0] else 10**6):
        if name != "quiet" and options[0].get(name) != options[1].get(name):
            rows.append((name, *(str(option.get(name, "")) for option in options)))
    frame = pd.DataFrame(rows, columns=["", found[0].name, found[1].name] if found[0].name != found[1].name
                         else ["", str(found[0]), str(found[1])])
    return frame.astype(object).where(frame.notna(), "")


def browse_link(competition: Competition) -> str | None:
    """Where MLflow's UI shows the competition's runs, the CV score a column, best first."""
    found = tracking.experiment_id(competition.name)
    return tracking.browse_link(found) if found else None


def tracking_store() -> str:
    """Where runs are tracked, with no secret in it."""
    return tracking.shown(tracking.store_uri())


def plot_history(competition: Competition, table: pd.DataFrame, path: Path) -> tuple[Path, int]:
    """CV against leaderboard score for the runs that have both; returns (path, how many)."""
    both = table.dropna(subset=["cv", "lb"])
    tracking.plot_cv_against_leaderboard(both["cv"].tolist(), both["lb"].tolist(), both["run"].tolist(), path,
                                         f"{competition.name}: CV against the leaderboard",
                                         table.attrs.get("metric", competition.metric.name), competition.name)
    return Path(path), len(both)


def _duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return ""
    minutes, rest = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d}"
