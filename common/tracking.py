"""Every run in MLflow, under an experiment named for the competition.

Where: MLflow's own `MLFLOW_TRACKING_URI` (a server, a database), else a SQLite store
beside the run directories, `runs/mlflow.db` with artifacts in `runs/mlartifacts/`,
which needs no server: `mlflow ui --backend-store-uri sqlite:///runs/mlflow.db`.

What: the options and seed as params; the numbers in metrics.json (`cv_score`, per-fold
scores as a series over the folds, `fit_seconds`) and `wall_seconds` as metrics; each
epoch's train/valid loss from the shared trainer, live, through `EpochMetrics` (a fastai
callback `common.trainers.train` adds while a run is tracked); metrics.json, config.json,
the log, the history, the plots and the submission as artifacts. `lb_score` is added
when `compete submit --wait` learns the public score.

Tracking never breaks a run: the first failure (no server, a refused request, a full
disk) is one warning line, and the run goes on untracked, keeping its files. MLflow
retries a request 7 times over about 4 minutes by default; here it retries twice, 10 s
at most each (unless the user set MLflow's variables), and a server is first probed with
one short request, so an unreachable one costs seconds, once.

Only common/runs.py calls this module. mlflow takes 2 s to import and fastai 6 s, so both
are imported on first use: `compete list` and `--help` load neither.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger("compete")

ROOT = Path("runs")                 # where run directories and the default store live
STORE = "mlflow.db"
ARTIFACTS = "mlartifacts"
PROBE_TIMEOUT = 3.0                 # seconds for the one request that tells a server is there
MLFLOW_LIMITS = {                   # MLflow's own variables, set only where the user did not
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
ARTIFACT_FILES = ("metrics.json", "config.json", "log.txt", "history.csv")

# How MLflow 3's UI opens an experiment. Its kind tag (mlflow/mlflow,
# mlflow/server/js/src/experiment-tracking/constants.ts @ 02e6205fe532953c2e5a599f5c7109029dc4aed8:
# ExperimentKind.CUSTOM_MODEL_DEVELOPMENT = 'custom_model_development'; the hook that reads
# "mlflow.experimentKind" sends such an experiment to its Runs tab, a GenAI one to Overview or
# Traces). From 3.17 the UI takes the kind from its "workflow type" instead, the sidebar's
# GenAI / Machine learning switch, remembered per browser and read first from the URL's
# `workflowType` (mlflow/server/js/src/common/contexts/WorkflowTypeContext.tsx @
# e088e6518df7c547c6aa5053faaaecd79ac73d12; default 'genai'), so `browse_link` carries it.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"
# A saved view of the runs table is an experiment tag "mlflow.sharedViewState.<id>" holding
# {"name", "createdAt", "state"}, `state` the view as JSON (the UI state's `selectedColumns`,
# keys written "metrics.`name`", and the search facets' `orderByKey`/`orderByAsc`); the views
# menu lists it and the URL's `viewStateShareKey=<id>` applies it (mlflow/mlflow,
# .../experiment-page/utils/savedViewEnvelope.ts @ 9f4968cdd68ed44f80d0a56f3d3fd1ce53634a63,
# .../experiment-page/models/ExperimentPageUIState.tsx @ 0d2cf4e3ab1cb5952df42b8fff18dea9be49b2e6).
VIEW_ID = "compete"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_ID}"
VIEW_COLUMNS = ("metrics.`cv_score`", "metrics.`lb_score`", "metrics.`wall_seconds`", "params.`seed`", "params.`fast`")
_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")


def store_uri() -> str:
    """`MLFLOW_TRACKING_URI`, else the SQLite store under runs/ (made absolute)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(ROOT / STORE).resolve()}"


def shown(uri: str) -> str:
    """The URI without a password or token in it, for messages and metrics.json."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        return urlunsplit((parts.scheme, host + (f":{parts.port}" if parts.port else ""), parts.path, "", ""))
    return uri


def _artifact_root(uri: str, experiment: str) -> str | None:
    """Beside a local SQLite store, its artifacts (a folder per experiment); a server
    decides for itself."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / ARTIFACTS / key(experiment)).resolve().as_uri()
    return None


def experiment_tags(greater_is_better: bool) -> dict[str, str]:
    """What compete sets on the experiments it creates: the training kind, and a saved view
    of the runs table with the CV score (and the leaderboard's, and the time) as columns,
    best run first."""
    import json
    state = {"selectedColumns": list(VIEW_COLUMNS), "orderByKey": VIEW_COLUMNS[0], "orderByAsc": not greater_is_better}
    view = {"name": "compete: CV and leaderboard", "createdAt": 0, "state": json.dumps(state)}
    return {EXPERIMENT_KIND_TAG: TRAINING_KIND, VIEW_TAG: json.dumps(view)}


def browse_link(experiment_id: str, uri: str | None = None) -> str:
    """Where MLflow's UI shows an experiment's runs with the saved view: the server itself,
    or `mlflow ui` on a local store (which serves on 127.0.0.1:5000)."""
    uri = uri or store_uri()
    page = f"#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={VIEW_ID}"
    if uri.startswith(("http://", "https://")):
        return f"{shown(uri).rstrip('/')}/{page}"
    return f"mlflow ui --backend-store-uri {shown(uri)}, then open http://127.0.0.1:5000/{page}"


class Unreachable(Exception):
    """The tracking store cannot be reached or used."""


def reason(error: BaseException) -> str:
    """A failure in a few words: for MLflow's "API request to ... failed with exception
    ... (Caused by X('why'))", the why."""
    text = " ".join(str(error).split())
    caused = re.search(r"Caused by \w+\((?:'|\")?(.*?)(?:'|\")?\)\)?$", text)
    return (caused.group(1) if caused else text)[:200] or type(error).__name__


def _probe(uri: str) -> None:
    """One short request to an HTTP server: any answer, even a refusal, means it is there."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests
    try:
        requests.get(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT)
    except requests.RequestException as error:
        raise Unreachable(f"no answer from {shown(uri)} within {PROBE_TIMEOUT:.0f} s "
                          f"({type(error).__name__})") from None


@functools.cache
def _mlflow():
    """mlflow, imported once, with its chatter (database set-up, retries) kept off the terminal."""
    for name, value in MLFLOW_LIMITS.items():
        os.environ.setdefault(name, value)
    import mlflow
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return mlflow


def client(uri: str | None = None):
    """An MlflowClient for `uri` (default `store_uri()`), after probing a server."""
    uri = uri or store_uri()
    _probe(uri)
    if not uri.startswith("sqlite:///"):
        return _mlflow().MlflowClient(tracking_uri=uri)
    # MLflow creates a new SQLite store by running its migrations on first use, and two
    # processes doing it at once break each other ("duplicate column name", "table ...
    # already exists"): one makes it, under a lock beside it, the others wait and find it made.
    from filelock import FileLock
    database = Path(uri[len("sqlite:///"):])
    database.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{database}.lock", timeout=120):
        connection = _mlflow().MlflowClient(tracking_uri=uri)
        connection.search_experiments(max_results=1)  # the store is made (or checked) here, inside the lock
    return connection


def key(name: str) -> str:
    """A metric or param name MLflow accepts (letters, digits, _ - . / and spaces)."""
    return _KEY.sub("_", str(name))[:250]


def numbers(record: dict, prefix: str = "") -> Iterator[tuple[str, float, int]]:
    """(key, value, step) for every finite number in a metrics.json record: a list of
    numbers becomes a series over its index (per-fold scores, fold 0 first), a dict is
    flattened with '/'. Strings and other values stay in metrics.json, an artifact."""
    for name, value in record.items():
        name = f"{prefix}{name}"
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            yield key(name), float(value), 0
        elif isinstance(value, dict):
            yield from numbers(value, f"{name}/")
        elif isinstance(value, (list, tuple)) and value and all(
                isinstance(item, (int, float)) and not isinstance(item, bool) and math.isfinite(item) for item in value):
            for step, item in enumerate(value):
                yield key(name), float(item), step


@dataclass
class Tracker:
    """One compete run's MLflow run. After the first failure every call does nothing."""

    uri: str = field(default_factory=store_uri)
    run_id: str | None = None
    experiment: str | None = None
    run_dir: Path | None = None
    failed: bool = False
    started: float = field(default_factory=time.perf_counter)
    _client: object = None

    @classmethod
    def reopen(cls, run_id: str, uri: str | None = None) -> "Tracker":
        """The tracker of a finished run in the store `uri` it was made in (as metrics.json
        has it, without secrets: `MLFLOW_TRACKING_URI` gives them back when it is that store)."""
        current = store_uri()
        return cls(uri=current if uri is None or shown(current) == uri else uri, run_id=run_id)

    def _connection(self):
        if self._client is None:
            self._client = client(self.uri)
        return self._client

    @property
    def active(self) -> bool:
        return self.run_id is not None and not self.failed

    def _call(self, what: str, action) -> None:
        if self.failed:
            return
        try:
            action()
        except Exception as error:  # tracking must never stop a run: one line, then silence
            self.failed = True
            log.warning("warning: tracking stopped, %s %s failed (%s); the run goes on, its files are in its run directory",
                        shown(self.uri), what, reason(error))

    def start(self, experiment: str, run_dir: Path, params: dict, tags: dict, greater_is_better: bool = True) -> None:
        """Open the MLflow run (once), named for `run_dir`, in `experiment` (created on first
        use, with `experiment_tags`; an older one gets those it lacks)."""
        if self.run_id is not None or self.failed:
            return
        self.run_dir = Path(run_dir).resolve()

        def action():
            from mlflow.entities import Param
            from mlflow.exceptions import MlflowException
            from mlflow.tracking.context.registry import resolve_tags
            connection = self._connection()
            wanted = experiment_tags(greater_is_better)
            found = connection.get_experiment_by_name(experiment)
            if found is None:
                try:
                    experiment_id = connection.create_experiment(
                        experiment, artifact_location=_artifact_root(self.uri, experiment), tags=wanted)
                except MlflowException:  # another run created it a moment ago
                    found = connection.get_experiment_by_name(experiment)
                    if found is None:
                        raise
            if found is not None:
                experiment_id = found.experiment_id
                for name, value in wanted.items():
                    if name not in found.tags:
                        connection.set_experiment_tag(experiment_id, name, value)
            run = connection.create_run(experiment_id, run_name=self.run_dir.name, tags=resolve_tags(
                {key(name): str(value) for name, value in tags.items()}))
            self.run_id, self.experiment = run.info.run_id, experiment
            connection.log_batch(self.run_id, params=[Param(key(name), str(value)[:6000]) for name, value in params.items()])
        self._call("starting a run", action)

    def log_metrics(self, values, step: int | None = None) -> None:
        """`values`: a dict of numbers, or (key, value, step) triples."""
        if not self.active:
            return
        triples = [(key(name), float(value), step or 0) for name, value in values.items()] if isinstance(values, dict) \
            else list(values)
        if not triples:
            return

        def action():
            from mlflow.entities import Metric
            stamp = int(time.time() * 1000)
            self._connection().log_batch(self.run_id, metrics=[Metric(name, value, stamp, step) for name, value, step in triples])
        self._call("logging metrics", action)

    def log_record(self, record: dict) -> None:
        """Every number of a metrics.json record (see `numbers`)."""
        self.log_metrics(numbers(record))

    def log_artifacts(self, run_dir: Path, extra: tuple[Path, ...] = ()) -> None:
        """metrics.json, config.json, log.txt, history.csv and every PNG of the run, and `extra`."""
        if not self.active:
            return
        run_dir = Path(run_dir)
        files = [run_dir / name for name in ARTIFACT_FILES if (run_dir / name).is_file()]
        files += sorted(path for path in run_dir.rglob("*.png") if "checkpoints" not in path.relative_to(run_dir).parts)
        files += [Path(path) for path in extra if Path(path).is_file()]

        def action():
            for path in files:
                folder = path.parent.relative_to(run_dir).as_posix() if path.is_relative_to(run_dir) else "submission"
                self._connection().log_artifact(self.run_id, str(path), None if folder == "." else folder)
        self._call("saving artifacts", action)

    def finish(self, status: str) -> None:
        if not self.active:
            return
        self.log_metrics({"wall_seconds": round(time.perf_counter() - self.started, 2)})
        self._call("closing the run", lambda: self._connection().set_terminated(self.run_id, status))


_current: Tracker | None = None
_tags: dict = {}


def extra_tags() -> dict:
    """Tags every run started inside `tagged` carries (a tune's study and trial)."""
    return dict(_tags)


@contextlib.contextmanager
def tagged(**tags) -> Iterator[None]:
    """Runs started inside carry `tags` in MLflow, e.g. the study a trial belongs to."""
    global _tags
    before, _tags = _tags, {**_tags, **tags}
    try:
        yield
    finally:
        _tags = before


@contextlib.contextmanager
def scope() -> Iterator[Tracker]:
    """The tracker of the run being made. `compete run` opens one around fit and predict,
    so both land in one MLflow run; a scope inside it joins it. The outermost scope closes
    the run: FINISHED, FAILED on an error, KILLED on Ctrl-C."""
    global _current
    if _current is not None:
        yield _current
        return
    tracker = _current = Tracker()
    status = "FAILED"
    try:
        yield tracker
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        _current = None
        tracker.finish(status)


def epoch_callbacks() -> list:
    """What the shared trainer adds to its callbacks: an EpochMetrics while a run is tracked."""
    if _current is None or not _current.active:
        return []
    return [epoch_metrics_class()(_current)]


@functools.cache
def epoch_metrics_class() -> type:
    """fastai's Callback is the base, and fastai takes 6 s to import: the class is made on
    first use so that a run without the trainer never imports it."""
    from fastai.callback.core import Callback

    class EpochMetrics(Callback):
        """Each epoch's losses and metrics to MLflow, step = epoch. A trainer whose folder
        is below the run's (one network per fold) prefixes them with that path, e.g.
        `cnn/fold1/valid_loss`."""
        order = 56  # after the Recorder (50) has the epoch's values

        def __init__(self, tracker: Tracker):
            self.tracker = tracker

        def after_epoch(self):
            names, values = list(self.recorder.metric_names), list(self.recorder.log)
            prefix = ""
            if self.tracker.run_dir is not None:
                with contextlib.suppress(ValueError):
                    below = Path(self.learn.path).resolve().relative_to(self.tracker.run_dir)
                    prefix = "" if str(below) == "." else below.as_posix() + "/"
            self.tracker.log_metrics([(key(prefix + str(name)), number, int(self.epoch))
                                      for name, number in ((n, _number(v)) for n, v in zip(names, values))
                                      if name not in ("epoch", "time") and number is not None])

    return EpochMetrics


def _number(value) -> float | None:
    """A finite float from a recorder value (python, numpy or a 0-d tensor), else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def experiment_id(experiment: str, uri: str | None = None) -> str | None:
    """The id of `experiment` in the store, None when nothing was tracked there yet."""
    uri = uri or store_uri()
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        return None  # looking must not create an empty store
    try:
        found = client(uri).get_experiment_by_name(experiment)
    except Exception:  # noqa: BLE001 (a link is a convenience: `past_runs` reports a broken store)
        return None
    return found.experiment_id if found else None


def past_runs(experiment: str, uri: str | None = None) -> list[dict]:
    """The experiment's runs, newest first (the 1000 newest): id, name, status, start
    time (ms), metrics, params and tags. Empty when nothing was tracked there yet."""
    uri = uri or store_uri()
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        return []  # looking must not create an empty store
    from common import io
    try:
        connection = client(uri)
        found = connection.get_experiment_by_name(experiment)
        if found is None:
            return []
        runs = connection.search_runs([found.experiment_id], order_by=["attributes.start_time DESC"], max_results=1000)
    except Exception as error:  # an unreachable server or a broken store: one line
        raise io.InputError(f"{shown(uri)}: cannot read the tracked runs of {experiment} ({reason(error)})") from None
    return [{"run_id": run.info.run_id, "name": run.info.run_name, "status": run.info.status,
             "start_time": run.info.start_time, "metrics": dict(run.data.metrics), "params": dict(run.data.params),
             "tags": dict(run.data.tags)} for run in runs]


def plot_cv_against_leaderboard(cv, lb, labels, path: Path, title: str, metric: str, competition: str = "COMP") -> Path:
    """A PNG of each run's leaderboard score against its CV score, with the line where
    they agree: the gap a competitor lives by."""
    from common import io
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axis = plt.subplots(figsize=(6, 5))
    axis.scatter(cv, lb, color="tab:blue")
    for x, y, label in zip(cv, lb, labels):
        axis.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if len(cv):
        low, high = min(min(cv), min(lb)), max(max(cv), max(lb))
        pad = (high - low) * 0.05 or abs(high) * 0.05 or 0.05
        axis.plot([low - pad, high + pad], [low - pad, high + pad], color="grey", linestyle="--", linewidth=1,
                  label="leaderboard = CV")
        axis.legend(loc="best", fontsize=8)
    else:  # an empty frame reads as a broken plot: say why it is empty and what fills it
        axis.text(0.5, 0.5, "no run has both a CV and a leaderboard score yet:\n"
                            f"`compete submit {competition} FILE --wait` records the public score",
                  ha="center", va="center", transform=axis.transAxes, fontsize=9, color="dimgrey")
        axis.set(xticks=[], yticks=[])
    axis.set(xlabel=f"CV {metric}", ylabel=f"public leaderboard {metric}", title=title)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    with io.atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120)
    plt.close(figure)
    return Path(path)
