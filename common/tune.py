"""`compete tune`: an Optuna study over a competition's declared options.

The search space is the options dataclass's own declaration (common/options.py: a search
range or choices per option; `--search` overrides). Every trial is a normal run
(common/runs.py: a run directory, out-of-fold predictions, a submission, an MLflow run in
the competition's experiment tagged with the study and the trial). Optuna samples with TPE
and prunes with its MedianPruner on the figures the fit reports after each fold
(common/callbacks.py); a competition whose fit reports none is never pruned.

The study lives in a storage Optuna knows (SQLite beside the runs by default, or any URL
with `--storage`, so several machines run trials of one study as Optuna's own distributed
mode does): a killed `tune` resumes where it stopped, the trial the kill cut short run
again with the same options. The sampler is seeded per trial from the seed and the trial's
number, so the same seed gives the same study, resumed or not.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from common import callbacks, io, runs, tracking
from common.competition import Competition
from common.options import Dimension, make_options, search_space

log = logging.getLogger("compete")

STUDIES = "studies.db"   # the default storage, beside the runs of the competition


@dataclass
class TuneResult:
    study: str
    storage: str
    counts: dict[str, int]          # complete, pruned, failed
    best_value: float | None
    best_trial: int | None
    best_run: str | None
    best_options: dict              # what the best trial was given: --set line


def default_storage(competition: Competition, root: Path | str = tracking.ROOT) -> str:
    folder = Path(root) / competition.name
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / STUDIES).resolve()}"


def study_name(competition: Competition, data_dir: Path, given: dict, space: list[Dimension]) -> str:
    """The same command names the same study (so it resumes); other settings, another."""
    settings = {"data": str(Path(data_dir).resolve()), "given": {k: str(v) for k, v in sorted(given.items()) if k != "quiet"},
                "space": [dimension.text() for dimension in space]}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return f"{competition.name}-seed{given.get('seed', 0)}-{digest}"


def distributions(space: list[Dimension]) -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    made = {}
    for dimension in space:
        if dimension.choices is not None:
            made[dimension.name] = CategoricalDistribution(list(dimension.choices))
        elif dimension.integer:
            made[dimension.name] = IntDistribution(int(dimension.low), int(dimension.high), log=dimension.log)
        else:
            made[dimension.name] = FloatDistribution(float(dimension.low), float(dimension.high), log=dimension.log)
    return made


def tune(competition: Competition, data_dir: Path, trials: int, given: dict, search: dict[str, str] | None = None,
         minutes: float | None = None, storage: str | None = None, name: str | None = None,
         progress: Callable[[str], None] = print) -> TuneResult:
    """Run trials until the study holds `trials` finished ones (or `minutes` have passed);
    returns the study's best. `given`: the options set for every trial (--set, --fast, ...)."""
    import optuna

    space = search_space(competition.options, search)
    fixed = [dimension.name for dimension in space if dimension.name in given and dimension.name not in (search or {})]
    space = [dimension for dimension in space if dimension.name not in fixed]  # --set wins over a declared range
    if not space:
        raise io.InputError(f"{competition.name}: no option to search; declare search ranges or pass --search KEY=LOW..HIGH")
    make_options(competition.options, given)  # a bad --set is one line before any study is made
    seed = int(make_options(competition.options, given).seed)
    storage = storage or default_storage(competition)
    name = name or study_name(competition, data_dir, given, space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # a metric read from the folder (a guessed AUC) sets the direction, not the class's default RMSE
    metric = competition.metric_for(competition.data_for_format(data_dir))
    try:
        study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                    direction="maximize" if metric.greater_is_better else "minimize",
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
    except Exception as error:  # an unreachable database, a bad URL: one line
        raise io.InputError(f"--storage {tracking.shown(storage)}: cannot open the study ({tracking.reason(error)})") from None
    study.set_user_attr("competition", competition.name)
    study.set_user_attr("space", [dimension.text() for dimension in space])
    wanted = distributions(space)
    _rerun_killed(study, progress)
    progress(f"study {name} in {tracking.shown(storage)}: searching {', '.join(d.text() for d in space)}")
    deadline = time.monotonic() + minutes * 60 if minutes else None
    while _finished(study) < trials:
        if deadline is not None and time.monotonic() >= deadline:
            progress(f"time is up ({minutes:g} min): stopping before the next trial")
            break
        number = len(study.trials)
        # seeded per trial: the same seed gives the same study, whether it ran at one go or resumed
        study.sampler = optuna.samplers.TPESampler(seed=seed * 100_003 + number,
                                                   n_startup_trials=max(2, min(10, trials // 2)))
        trial = study.ask(wanted)
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        _run_trial(competition, data_dir, given, study, trial, progress)
    return summary(competition, study, tracking.shown(storage))


def _run_trial(competition, data_dir, given, study, trial, progress) -> None:
    from optuna.trial import TrialState

    sampled = dict(trial.params)
    options = make_options(competition.options, {**given, **sampled}, source=f"trial {trial.number}")
    reported: list[tuple[int, float]] = []

    def listen(step: int, value: float) -> None:
        reported.append((step, value))
        trial.report(value, step)
        if trial.should_prune():
            raise callbacks.Stop(f"pruned after step {step + 1} (a fold, or an epoch): {value:.5f} is worse than the median of "
                                 f"the trials before")
    started = time.perf_counter()
    try:
        with callbacks.listening(listen), tracking.tagged(study=study.study_name, trial=trial.number):
            result = runs.run(competition, data_dir, options)
    except callbacks.Stop as stop:
        trial.set_user_attr("pruned", str(stop))
        study.tell(trial, state=TrialState.PRUNED)
        progress(f"trial {trial.number}: {stop}")
        return
    except KeyboardInterrupt:
        trial.set_user_attr("interrupted", "Ctrl-C or SIGTERM; its options run again when the study resumes")
        study.tell(trial, state=TrialState.FAIL)
        study.enqueue_trial(sampled, user_attrs={"rerun_of": trial.number})
        raise
    except Exception as error:  # noqa: BLE001 (a failed trial is recorded, the study goes on)
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        trial.set_user_attr("failure", reason)
        study.tell(trial, state=TrialState.FAIL)
        progress(f"trial {trial.number}: failed: {reason}")
        return
    runs.record(result.run_dir, study=study.study_name, trial=trial.number)
    trial.set_user_attr("run_dir", str(result.run_dir))
    trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
    if not reported:
        trial.set_user_attr("pruning", f"{competition.name} reports no per-fold score: not pruned")
    if result.cv_score is None:
        trial.set_user_attr("failure", "the run reported no cv score")
        study.tell(trial, state=TrialState.FAIL)
        progress(f"trial {trial.number}: failed: the run reported no cv score")
        return
    study.tell(trial, float(result.cv_score))
    progress(f"trial {trial.number}: cv {result.metric}: {result.cv_score:.5f}  {_words(sampled)}  run: {result.run_dir}")


def _finished(study) -> int:
    """Trials that ended on their own: complete, pruned or failed; one cut short by a kill
    or Ctrl-C is not counted (its options run again)."""
    from optuna.trial import TrialState
    ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sum(1 for trial in study.get_trials(deepcopy=False, states=ended) if "interrupted" not in trial.user_attrs)


def _rerun_killed(study, progress) -> None:
    """Trials left RUNNING by a process of this machine that is gone (a kill -9, a power
    cut) are marked failed and their options queued to run again first. Trials of other
    machines are theirs to finish."""
    from optuna.trial import TrialState
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") != host or pid is None or _alive(int(pid)):
            continue
        study._storage.set_trial_user_attr(trial._trial_id, "interrupted", f"killed (process {pid} is gone); run again")
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        study.enqueue_trial(dict(trial.params), user_attrs={"rerun_of": trial.number})
        progress(f"trial {trial.number}: killed before it ended; its options run again")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def summary(competition: Competition, study, storage: str) -> TuneResult:
    from optuna.trial import TrialState
    trials = study.get_trials(deepcopy=False)
    counts = {"complete": sum(t.state == TrialState.COMPLETE for t in trials),
              "pruned": sum(t.state == TrialState.PRUNED for t in trials),
              "failed": sum(t.state == TrialState.FAIL and "interrupted" not in t.user_attrs for t in trials),
              "interrupted": sum("interrupted" in t.user_attrs for t in trials)}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        return TuneResult(study.study_name, storage, counts, None, None, None, {})
    best = study.best_trial
    config = json.loads((Path(best.user_attrs["run_dir"]) / "config.json").read_text()) \
        if best.user_attrs.get("run_dir") and (Path(best.user_attrs["run_dir"]) / "config.json").is_file() else None
    defaults = dataclasses.asdict(competition.options())
    # the --set line: every option the best trial was given that is not a default
    chosen = {k: v for k, v in (config["options"] if config else best.params).items()
              if k != "quiet" and defaults.get(k) != v}
    chosen.update(best.params)
    return TuneResult(study.study_name, storage, counts, best.value, best.number, best.user_attrs.get("run_dir"), chosen)


def set_line(options: dict) -> str:
    """`--set a=1 --set b=x`: the options that reproduce a trial with `compete run`."""
    return " ".join(f"--set {name}={_text(value)}" for name, value in options.items())


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _words(params: dict) -> str:
    return " ".join(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}" for name, value in params.items())
