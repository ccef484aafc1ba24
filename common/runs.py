"""Run directories and the load -> fit -> predict -> validate pipeline behind the CLI.

A run directory `runs/<competition>/<run-id>/` holds everything a run decided:
config.json, metrics.json (which always carries `cv_score`), the log, out-of-fold
predictions, plots and the model files.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from common import distributed, io, parallel
from common.competition import Competition, Config, write_json
from common.submission import align_to_sample, validate, write

log = logging.getLogger("compete")


@dataclass
class RunResult:
    run_dir: Path
    submission: Path | None
    cv_score: float | None
    metric: str


def new_run_dir(competition: Competition, seed: int, root: Path | str = "runs") -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = Path(root) / competition.name / f"{stamp}-seed{seed}"
    run_dir, suffix = base, 1
    while run_dir.exists():
        suffix += 1
        run_dir = base.with_name(f"{base.name}-{suffix}")
    run_dir.mkdir(parents=True)
    return run_dir


@contextlib.contextmanager
def logging_to(run_dir: Path, quiet: bool):
    """Log to `run_dir/log.txt` always and to stderr unless quiet."""
    log.setLevel(logging.INFO)
    handlers = [logging.FileHandler(Path(run_dir) / "log.txt")]
    if not quiet:
        handlers.append(logging.StreamHandler(sys.stderr))
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


def fit(competition: Competition, data_dir: Path, config: Config, run_dir: Path | None = None, scheduler=None):
    """Load and train; returns (model, data, run_dir). The model is saved in run_dir.

    Under torchrun every process runs this; rank 0 alone writes the run directory.
    `scheduler`: a Dask scheduler address for the data stages (common.parallel)."""
    with parallel.using(scheduler):
        return _fit(competition, data_dir, config, run_dir)


def _fit(competition: Competition, data_dir: Path, config: Config, run_dir: Path | None):
    distributed.start()
    chosen = run_dir is not None
    if distributed.is_main():
        run_dir = Path(run_dir) if chosen else new_run_dir(competition, config.seed)
        run_dir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(distributed.broadcast(str(run_dir)))
    if not distributed.is_main():
        return _fit_beside_rank_zero(competition, data_dir, config, run_dir)
    with logging_to(run_dir, config.quiet):
        write_json(run_dir / "config.json", {"competition": competition.name, "data": str(Path(data_dir).resolve()), **config.to_json()})
        log.info("data stages: %s; training on %d process(es)", parallel.describe(), distributed.world_size())
        started = time.perf_counter()
        try:
            data = competition.load(Path(data_dir))
        except io.InputError:
            if not chosen:  # bad input trained nothing: leave no empty run behind
                shutil.rmtree(run_dir, ignore_errors=True)
                for folder in (run_dir.parent, run_dir.parent.parent):  # runs/COMP, runs, when empty
                    with contextlib.suppress(OSError):
                        folder.rmdir()
            raise
        model = competition.fit(data, config, run_dir)
        competition.save_model(model, run_dir)
        metrics = record(run_dir, fit_seconds=round(time.perf_counter() - started, 2), world_size=distributed.world_size())
        if "cv_score" in metrics:
            log.info("cv %s = %.5f", competition.metric.name, metrics["cv_score"])
    distributed.barrier()
    return model, data, run_dir


def _fit_beside_rank_zero(competition: Competition, data_dir: Path, config: Config, run_dir: Path):
    """A rank > 0 under torchrun trains alongside rank 0 (the trainer's collectives) and
    writes nothing of the run: what the competition writes lands in a scratch folder,
    removed after; no progress, no log on the terminal."""
    scratch = Path(tempfile.mkdtemp(prefix=f"compete-rank{distributed.rank()}-"))
    try:
        with logging_to(scratch, quiet=True):
            data = competition.load(Path(data_dir))
            model = competition.fit(data, dataclasses.replace(config, quiet=True), scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    distributed.barrier()
    return model, data, run_dir


def predict(competition: Competition, data_dir: Path, model, out: Path, data=None, scheduler=None) -> Path:
    """Predict, align to the sample, validate, and write `out` atomically.

    An invalid frame is never written: the problems are raised instead."""
    data = data if data is not None else competition.load(Path(data_dir))
    with parallel.using(scheduler):
        frame = competition.predict(model, data)
    sample = competition.sample(Path(data_dir))
    frame = align_to_sample(frame, sample, competition.submission)
    problems = validate(frame, sample, competition.submission)
    if problems:
        raise io.InputError(f"{competition.name}: the predictions do not make a valid submission: {problems[0]}")
    float_format = getattr(competition, "float_format", None)
    return write(frame, out, float_format=float_format)


def run(competition: Competition, data_dir: Path, config: Config, out: Path | None = None, run_dir: Path | None = None,
        scheduler=None) -> RunResult:
    with parallel.using(scheduler):  # one connection for both stages
        return _run(competition, data_dir, config, out, run_dir)


def _run(competition: Competition, data_dir: Path, config: Config, out: Path | None, run_dir: Path | None) -> RunResult:
    model, data, run_dir = fit(competition, data_dir, config, run_dir)
    if not distributed.is_main():  # rank 0 predicts and writes the submission
        return RunResult(run_dir, None, None, competition.metric.name)
    out = Path(out) if out else Path("submissions") / competition.name / f"{run_dir.name}.csv"
    with logging_to(run_dir, config.quiet):
        path = predict(competition, data_dir, model, out, data=data)
        log.info("submission written: %s", path)
    metrics = record(run_dir, submission=str(path))
    return RunResult(run_dir, path, metrics.get("cv_score"), competition.metric.name)
