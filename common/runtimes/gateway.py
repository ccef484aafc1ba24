"""The rerun of a `kaggle_evaluation` competition: the notebook serves, the competition's
gateway calls it from a container of its own, and only the gateway holds the hidden test.

As Kaggle runs it (Kaggle's kaggle_evaluation read at
yashwilk/mitsui-commodity-prediction-challenge@c7fd205fab265a20ff7b6732c10b782c9ce3c7a7,
`kaggle_evaluation/core/{base_gateway,relay,templates}.py` and `mitsui_gateway.py`):
- the notebook's sandbox is notebook.py's, KAGGLE_IS_COMPETITION_RERUN set, so that
  `InferenceServer(predict).serve()` starts the gRPC server and blocks; it sees the
  competition's public files, never the hidden test;
- the gateway's sandbox holds the competition's files with the hidden test over the
  public one (answers/ never), at the paths its defaults read (/kaggle/input/<slug>/ and
  /kaggle/input/competitions/<slug>/, the kaggle_evaluation package inside them), the
  competition folder on PYTHONPATH, its own /kaggle/working as the working directory
  where it writes submission.parquet and result.json, and runs
  `python -m kaggle_evaluation.<comp>_gateway` with KAGGLE_IS_COMPETITION_RERUN set (its
  `__main__` runs the gateway on its default paths only then);
- the two are joined by a private link (network.open_link): the gateway's /etc/hosts
  maps `inference_server`, the host its client dials in the rerun, to the notebook's end;
  nothing else is reachable from either;
- the gateway keeps its own limits (900 s for the server to start, counted from its first
  call; no deadline on that call; the competition's deadline on later ones), the rerun's
  time cap bounds both; when the gateway ends the notebook's sandbox is stopped (serve()
  never returns in the rerun) and everything in it killed.

The gateway's result.json names the failure by its GatewayRuntimeErrorType; CLASSES maps
each to the failure class Kaggle's submission page shows.
"""
from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from common import io
from common.runtimes import runner

if TYPE_CHECKING:
    from common.runtimes.sandbox import Outcome

PACKAGE = "kaggle_evaluation"
SERVER_HOST = "inference_server"   # base_gateway.py: relay.Client('inference_server' if IS_RERUN else 'localhost')
OUTPUT = "submission.parquet"
RESULT = "result.json"
LOG = "gateway-log.txt"
RESULTS = (OUTPUT, RESULT, LOG)    # what a run leaves in the results folder besides the notebook's
GRACE_SECONDS = 2.0   # a notebook that ends first: the gateway may still be writing what it had; then it is stopped

# The project's stand-in package (tests/fixtures/kaggle_evaluation) reads these where
# Kaggle's has a constant: passed from compete's own environment to the gateway's
# sandbox, so that a test can shorten the start-up limit or the per-call deadline.
# Kaggle's gateways read neither; unset, the stand-in keeps Kaggle's values.
PASSED_THROUGH = ("COMPETE_STARTUP_LIMIT_SECONDS", "COMPETE_RESPONSE_TIMEOUT_SECONDS")

# GatewayRuntimeErrorType -> Kaggle's failure class (the classes of its Code Competition
# FAQ; which one the submission page shows for each type is not public, so the choice
# follows what each type says went wrong):
CLASSES = {
    # "Unhandled errors are treated as caused by Kaggle" (base_gateway.py): an exception the
    # gateway did not map (GATEWAY_RAISED_EXCEPTION is that default) is the FAQ's Kaggle Error
    "UNSPECIFIED": "Kaggle Error",
    "GATEWAY_RAISED_EXCEPTION": "Kaggle Error",
    # the notebook missed a time limit: not serving within the start-up limit, or a call
    # past the competition's per-call deadline ("exceeded the allowed runtime")
    "SERVER_NEVER_STARTED": "Notebook Timeout",
    "GRPC_DEADLINE_EXCEEDED": "Notebook Timeout",
    # the notebook's own process failed: its predict raised, it registered no such
    # endpoint, its server went away mid-run
    "SERVER_RAISED_EXCEPTION": "Notebook Threw Exception",
    "SERVER_MISSING_ENDPOINT": "Notebook Threw Exception",
    "SERVER_CONNECTION_FAILED": "Notebook Threw Exception",
    # the answers break the format: the FAQ's "wrong number of rows or columns ... invalid
    # submission values"
    "INVALID_SUBMISSION": "Submission Scoring Error",
}


# What a type means where the gateway gives no details (Kaggle's raises both without any)
UNDETAILED = {
    "SERVER_NEVER_STARTED": "no inference server answered within the gateway's start-up limit (Kaggle's: 900 s from "
                            "its first call)",
    "GRPC_DEADLINE_EXCEEDED": "a predict call after the first passed the competition's per-call deadline",
}


def serves(data_dir: Path) -> bool:
    """Whether the competition's public files hold a kaggle_evaluation package: its rerun
    is then a notebook serving and a gateway calling."""
    return (Path(data_dir) / PACKAGE / "__init__.py").is_file()


def gateway_module(view: runner.DataView) -> str:
    """`kaggle_evaluation.<comp>_gateway`: the one `*_gateway.py` at the package's top
    level, in the files the gateway is given (the hidden folder's package where it has one)."""
    names = sorted(Path(name).stem for name in view.files
                   if Path(name).parts[0] == PACKAGE and len(Path(name).parts) == 2 and name.endswith("_gateway.py"))
    folder = view.files[f"{PACKAGE}/__init__.py"].parent if f"{PACKAGE}/__init__.py" in view.files else view.source / PACKAGE
    if len(names) != 1:
        found = f"several ({', '.join(names)})" if names else "none"
        raise io.InputError(f"{folder}: the rerun runs the competition's gateway, the one *_gateway.py at the package's "
                            f"top level; found {found}")
    return f"{PACKAGE}.{names[0]}"


@dataclass
class Rerun:
    notebook: Outcome              # the notebook's sandbox
    gateway: Outcome               # the gateway's
    first: str                     # "notebook" or "gateway": the side that ended on its own first
    output: Path                   # the gateway's working directory (submission.parquet, result.json)
    log: Path                      # the gateway's log
    module: str
    seconds: float


def run(box, profile, slug: str, view: runner.DataView, workdir: Path, log_path: Path, time_limit: float,
        memory_limit: float | None) -> Rerun:
    """The notebook in `box` (notebook.layout's) and the gateway over `view` in a sandbox of
    its own, joined by a private link; returns when both have ended."""
    from common.runtimes import network, notebook, sandbox

    module = gateway_module(view)
    gateway_box = notebook.layout(None, view, profile, slug, workdir / "gateway")
    log = log_path.with_name(LOG)
    log.write_text("")
    inside = profile.data.format(slug=slug)
    environment = {**runner.sandbox_environment(profile), "PYTHONPATH": inside,
                   **{name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}}
    link = network.open_link()
    try:
        box.network = link.server_namespace
        gateway_box.network, gateway_box.hosts = link.client_namespace, {SERVER_HOST: link.server_address}
        ended: queue.Queue = queue.Queue()
        stops = {"notebook": threading.Event(), "gateway": threading.Event()}
        outcomes: dict = {}
        started = time.perf_counter()

        def side(name: str, start) -> None:
            try:
                outcomes[name] = start(stops[name])
            except BaseException as error:  # noqa: BLE001  (raised again in the caller's thread)
                outcomes[name] = error
            finally:
                ended.put(name)

        threads = [threading.Thread(target=side, args=("notebook", lambda stop: notebook.execute(
                       box, profile, log_path, time_limit, memory_limit, True, stop=stop)), daemon=True),
                   threading.Thread(target=side, args=("gateway", lambda stop: sandbox.run(
                       [sys.executable, "-m", module], gateway_box, log, environment,
                       max(1.0, time_limit - (time.perf_counter() - started)), None, stop=stop)), daemon=True)]
        for thread in threads:
            thread.start()
        first = ended.get()
        if first == "gateway":
            stops["notebook"].set()
        else:
            try:
                ended.get(timeout=GRACE_SECONDS)
            except queue.Empty:
                stops["gateway"].set()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
    finally:
        network.close_link(link)
    for outcome in outcomes.values():
        if isinstance(outcome, BaseException):
            raise outcome
    return Rerun(outcomes["notebook"], outcomes["gateway"], first, workdir / "gateway" / "working", log, module, seconds)


def verdict(rerun: Rerun, log_path: Path, time_limit: float, memory_limit: float | None) -> tuple[str, str]:
    """(Kaggle's failure class, why in one line); ("", "") when the gateway succeeded and
    left its submission; a class "" with a reason is the emulation's own failure."""
    from common.runtimes import notebook

    if rerun.notebook.timed_out or rerun.gateway.timed_out:
        return "Notebook Timeout", f"the rerun passed the time cap of {time_limit:g} s; the notebook and the gateway were stopped"
    if rerun.notebook.memory_exceeded:
        return "Notebook Exceeded Allowed Compute", (f"memory limit of {memory_limit:g} GB exceeded "
                                                     f"({rerun.notebook.memory_mode}); the kernel was killed")
    if rerun.first == "notebook" and notebook.status(log_path).get("state") != "ok":
        # it threw, or its kernel died, before or while serving: its own failure says more than the gateway's view of it
        return notebook.failure(rerun.notebook, log_path, rerun.output / OUTPUT, OUTPUT, time_limit, memory_limit)
    result = read_result(rerun.output / RESULT)
    if result is None:
        if rerun.first == "notebook":
            return CLASSES["SERVER_NEVER_STARTED"], (
                "SERVER_NEVER_STARTED: the notebook ran through without serving; in the rerun "
                "InferenceServer(predict).serve() blocks until the gateway is done (call it when "
                "KAGGLE_IS_COMPETITION_RERUN is set)")
        return "", (f"the gateway {rerun.module} ended without {RESULT} (exit {rerun.gateway.returncode}): "
                    f"{runner.last_line(rerun.log.read_text(errors='replace'))} (log: {rerun.log})")
    if result.get("Succeeded") is True:
        if not (rerun.output / OUTPUT).is_file():
            return "", f"the gateway reported success but wrote no {OUTPUT} (log: {rerun.log})"
        return "", ""
    name = str(result.get("ErrorName") or "UNSPECIFIED")
    return CLASSES.get(name, CLASSES["UNSPECIFIED"]), f"{name}: {details(name, result.get('ErrorDetails'))}"


def read_result(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and "Succeeded" in value else None


def details(name: str, text) -> str:
    """The gateway's ErrorDetails in one line: a traceback's last line (the exception)."""
    if not text:
        return UNDETAILED.get(name, "(no details)")
    return runner.last_line(str(text))


def collect(result: runner.RuntimeResult, competition, rerun: Rerun, truth: Path, data_dir: Path, hidden: Path | None,
            out: Path | None, scratch: Path) -> runner.RuntimeResult:
    """Validate the gateway's submission.parquet against the sample of the data the
    gateway was given (`truth`: the hidden one where --hidden has one) as a CSV of the
    sample's shape, which is what the competition's validator and metric read; keep the
    parquet at `out` (default: the results folder) and score it where answers are known."""
    import pandas as pd

    from common.runtimes import notebook
    from common.submission import read_submission

    written = rerun.output / OUTPUT
    try:
        frame = pd.read_parquet(written)
    except Exception as error:  # noqa: BLE001  (pyarrow's errors have no common base but Exception)
        result.failure, result.reason = "Submission Scoring Error", f"{OUTPUT} cannot be read: {' '.join(str(error).split())[:300]}"
        return result
    as_csv = io.write_csv(frame, scratch / "submission.csv")
    try:
        competition.sample(truth)
    except io.InputError as error:   # a competition may ship no sample: the gateway's per-batch checks are all there is
        result.notes.append(f"{OUTPUT} not checked against a sample submission ({error}); the gateway checked the rows "
                            f"of every batch")
        problems = []
    else:
        problems = competition.validate(read_submission(as_csv), truth)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        result.failure, result.reason = "Submission Scoring Error", f"{OUTPUT} is invalid: {problems[0]}{more}"
        return result
    kept = Path(out) if out is not None else result.results / OUTPUT
    io.write_bytes(kept, written.read_bytes())
    result.ok, result.reason, result.submission = True, "ok", kept
    result.notes += notebook.score(competition, as_csv, data_dir, hidden)
    return result
