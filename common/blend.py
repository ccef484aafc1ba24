"""`compete blend`: one submission from several runs, weighted on their out-of-fold predictions.

Every run keeps its out-of-fold predictions in submission shape (out_of_fold.csv, with
each row's fold and the truth) and its test predictions (test_predictions.csv);
common/runs.py writes both. A blend needs runs made on the same rows with the same folds:
otherwise one run's "out of fold" row was another's training row and the weights would be
fitted on leaked predictions, so such runs are refused, named.

The weights are non-negative and sum to one, fitted for the competition's metric:
probabilities are pooled log-linearly (the weighted mean of their logits, or of their
logs for rows of class probabilities), prices and other positive numbers geometrically
(the weighted mean of their logs, what a log-scale metric rewards), other numbers as a
weighted mean. For a label metric (F1, accuracy) the runs' scores are pooled as
probabilities and the metric's own decision rule (the threshold that maximises it) is
fitted again on the blend. The blend's CV is nested: the weights (and the threshold) for
each fold are fitted on the other folds only, so it is as honest as each run's own.

A competition that validates on one held-out split (serengeti's last season) keeps those
rows only, all in fold 1: the blend works on the rows it has, cutting them into parts for
its nested figure (blend_folds), and says so in its cv_score_note.

The blend is a run of its own: a run directory whose config.json lists the member runs,
its own out-of-fold and test predictions (so a blend can be blended), a validated
submission, and an MLflow run tagged with its members.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import io, runs, thresholds, tracking
from common.competition import Competition, OutOfFold, write_json
from common.metrics import EPSILON, Metric
from common.submission import align_to_sample, validate, write

log = logging.getLogger("compete")


@dataclass
class Member:
    run_dir: Path
    ids: pd.Series
    fold: np.ndarray
    predictions: np.ndarray       # (rows, columns)
    truth: np.ndarray
    test_ids: pd.Series
    test: np.ndarray
    columns: list[str]
    cv_score: float | None        # the run's own, from its metrics.json


@dataclass
class BlendResult:
    run_dir: Path
    submission: Path
    cv_score: float
    members: list[tuple[Path, float | None, float]]   # run, its own cv, its weight
    metric: str


def find(competition: Competition, run: str | Path, root: Path | str = tracking.ROOT) -> Path:
    """A run given as its folder, or as its name under runs/COMP/."""
    path = Path(run)
    if not path.is_dir() and (Path(root) / competition.name / str(run)).is_dir():
        path = Path(root) / competition.name / str(run)
    return runs.check_run(competition, path)


def read_member(competition: Competition, run_dir: Path) -> Member:
    oof_file, test_file = run_dir / runs.OUT_OF_FOLD, run_dir / runs.TEST_PREDICTIONS
    for file, what in ((oof_file, "out-of-fold predictions"), (test_file, "test predictions")):
        if not file.is_file():
            raise io.InputError(f"{run_dir}: keeps no {what} ({file.name}): run it again with this version of compete "
                                f"to blend it")
    oof = io.read_csv(oof_file)
    test = io.read_csv(test_file)
    id_column = oof.columns[0]
    truth_columns = [c for c in oof.columns if c.startswith("truth:")]
    columns = [c[len("truth:"):] for c in truth_columns]
    missing = [c for c in [id_column, *columns] if c not in test.columns]
    if missing:
        raise io.InputError(f"{test_file}: no column {missing[0]!r}, which {oof_file.name} has")
    metrics = runs.read_metrics(run_dir)
    return Member(run_dir, oof[id_column].astype(str), oof["fold"].to_numpy(int), oof[columns].to_numpy(float),
                  oof[truth_columns].to_numpy(float), test[id_column].astype(str), test[columns].to_numpy(float), columns,
                  metrics.get("cv_score"))


def check_alike(members: list[Member]) -> None:
    """Same rows, same folds, same columns and test rows as the first run, or one line naming the run that differs."""
    first = members[0]
    for member in members[1:]:
        if member.columns != first.columns:
            raise io.InputError(f"{member.run_dir}: predicts {', '.join(member.columns)}, {first.run_dir} predicts "
                                f"{', '.join(first.columns)}: not runs of one competition's format")
        if len(member.ids) != len(first.ids) or not (member.ids.to_numpy() == first.ids.to_numpy()).all():
            raise io.InputError(f"{member.run_dir}: its out-of-fold rows differ from those of {first.run_dir} "
                                f"({len(member.ids)} rows against {len(first.ids)}): blend runs made on the same data "
                                f"(and a held-out split: the same seed and split options)")
        moved = int((member.fold != first.fold).sum())
        if moved:
            raise io.InputError(f"{member.run_dir}: its folds differ from those of {first.run_dir} ({moved} of "
                                f"{len(first.fold)} rows in another fold): blend runs made with the same folds and seed")
        if len(member.test_ids) != len(first.test_ids) or not (member.test_ids.to_numpy() == first.test_ids.to_numpy()).all():
            raise io.InputError(f"{member.run_dir}: its test predictions are for other rows than those of {first.run_dir}")


def kind(metric: Metric, values: list[np.ndarray]) -> str:
    """How predictions are pooled: "logit" (probabilities, and the scores of a label
    metric), "softmax" (rows of class probabilities), "log" (positive numbers), "mean"."""
    if metric.output in ("probability", "label", "score"):
        within = all(np.nanmin(v) >= 0 and np.nanmax(v) <= 1 for v in values)
        if within:
            rows_sum_to_one = values[0].shape[1] > 1 and np.allclose(values[0].sum(axis=1), 1, atol=1e-3)
            return "softmax" if rows_sum_to_one and metric.output == "probability" else "logit"
        if metric.output == "label":
            raise io.InputError(f"{metric.name}: the runs' scores are not probabilities in [0, 1]; a label metric's blend "
                                f"pools probabilities and fits its threshold again")
        return "mean"
    if metric.output in ("positive", "nonnegative"):
        return "log"
    return "mean"


def pool(how: str, weights: np.ndarray, values: list[np.ndarray]) -> np.ndarray:
    if how == "mean":
        return sum(w * v for w, v in zip(weights, values))
    if how == "log":
        return np.expm1(sum(w * np.log1p(np.clip(v, 0, None)) for w, v in zip(weights, values)))
    if how == "softmax":
        logs = sum(w * np.log(np.clip(v, EPSILON, 1)) for w, v in zip(weights, values))
        logs = logs - logs.max(axis=1, keepdims=True)
        return np.exp(logs) / np.exp(logs).sum(axis=1, keepdims=True)
    # each column its own binary probability (thresholds.logits takes 2-d input for class rows)
    logits = sum(w * (np.log(np.clip(v, EPSILON, 1 - EPSILON)) - np.log1p(-np.clip(v, EPSILON, 1 - EPSILON)))
                 for w, v in zip(weights, values))
    return 1.0 / (1.0 + np.exp(-logits))


def _shaped(array: np.ndarray) -> np.ndarray:
    return array[:, 0] if array.shape[1] == 1 else array


def decide(metric: Metric, truth: np.ndarray, pooled: np.ndarray) -> float | None:
    """A label metric's decision rule fitted on labelled rows: the threshold that maximises
    F1 or accuracy on the pooled probabilities (one 0/1 column). None: no decision."""
    if metric.output != "label":
        return None
    if pooled.shape[1] != 1:
        raise io.InputError(f"{metric.name}: blending label predictions is done for one 0/1 column only")
    if metric.name == "accuracy":
        return float(thresholds.best_accuracy_threshold(truth[:, 0], pooled[:, 0])[0])
    return float(thresholds.best_threshold(truth[:, 0], pooled[:, 0]).threshold)


def applied(threshold: float | None, pooled: np.ndarray) -> np.ndarray:
    return pooled if threshold is None else (pooled >= threshold).astype(float)


def score(metric: Metric, truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(metric(_shaped(truth), _shaped(predicted)))


def fit_weights(metric: Metric, how: str, values: list[np.ndarray], truth: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to one, found by SLSQP on the simplex: the metric's
    own loss for numbers and probabilities; log loss of the pooled probabilities for a
    label metric (F1 and accuracy are flat between thresholds, nothing to descend)."""
    count = len(values)
    if count == 1:
        return np.ones(1)
    from scipy.optimize import minimize

    def loss(weights):
        pooled = pool(how, weights, values)
        if metric.output == "label":
            p = np.clip(pooled, EPSILON, 1 - EPSILON)
            return float(-np.mean(truth * np.log(p) + (1 - truth) * np.log(1 - p)))
        value = score(metric, truth, pooled)
        return -value if metric.greater_is_better else value
    start = np.full(count, 1.0 / count)
    result = minimize(loss, start, method="SLSQP", bounds=[(0.0, 1.0)] * count,
                      constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0},), options={"ftol": 1e-12})
    weights = np.clip(result.x if result.success else start, 0.0, None)
    return weights / weights.sum() if weights.sum() > 0 else start


HOLD_OUT_PARTS = 5   # a hold-out's rows are cut into this many parts for the blend's nested figure


def blend_folds(fold: np.ndarray) -> tuple[np.ndarray, bool]:
    """The folds the blend's nested CV runs over: the runs' own K folds, or, for runs that
    validate on one held-out split (every row in one fold), that split cut into
    HOLD_OUT_PARTS parts by row (a fixed shuffle), the weights of each part fitted on the
    others. Returns the folds and whether the rows are a hold-out."""
    if len(np.unique(fold)) > 1:
        return fold, False
    from sklearn.model_selection import KFold
    parts = np.zeros(len(fold), dtype=int)
    for number, (_, inside) in enumerate(KFold(min(HOLD_OUT_PARTS, len(fold)), shuffle=True, random_state=0).split(fold)):
        parts[inside] = number + 1
    return parts, True


def nested(metric: Metric, how: str, members: list[Member]) -> tuple[np.ndarray, list[float]]:
    """Out-of-fold blended predictions with each fold's weights (and threshold) fitted on
    the other folds; returns them (decided) and each fold's score. A hold-out is cut into
    parts first (blend_folds)."""
    truth, (fold, _) = members[0].truth, blend_folds(members[0].fold)
    values = [member.predictions for member in members]
    blended = np.zeros_like(truth, dtype=float)
    by_fold = []
    for each in np.unique(fold):
        inside = fold == each
        weights = fit_weights(metric, how, [v[~inside] for v in values], truth[~inside])
        threshold = decide(metric, truth[~inside], pool(how, weights, [v[~inside] for v in values]))
        blended[inside] = applied(threshold, pool(how, weights, [v[inside] for v in values]))
        by_fold.append(score(metric, truth[inside], blended[inside]))
    return blended, by_fold


def note(decided: bool, rows: int, hold_out: bool) -> str:
    fitted = f"the weights{' and threshold' if decided else ''}"
    if hold_out:
        return (f"nested on the runs' one held-out split ({rows} rows, no K folds): cut into {min(HOLD_OUT_PARTS, rows)} "
                f"parts, {fitted} for each part fitted on the others")
    return f"nested: {fitted} for each fold fitted on the other folds, all {rows} rows"


def blend(competition: Competition, run_list: list, data_dir: Path, out: Path | None = None,
          root: Path | str = tracking.ROOT) -> BlendResult:
    if len(run_list) < 2:
        raise io.InputError("blend: give two runs or more")
    if out is not None:
        runs.check_output(out)
    run_dirs = [find(competition, run, root) for run in run_list]
    twice = [run for run in run_dirs if sum(other.resolve() == run.resolve() for other in run_dirs) > 1]
    if twice:
        raise io.InputError(f"{twice[0]}: given twice")
    members = [read_member(competition, run_dir) for run_dir in run_dirs]
    check_alike(members)
    sample = competition.sample(Path(data_dir))  # before any work: a blend that cannot be submitted never starts
    data = competition.data_for_format(data_dir)
    metric, format = competition.metric_for(data), competition.submission_for(data)
    truth, values = members[0].truth, [member.predictions for member in members]
    how = kind(metric, values)
    started = time.perf_counter()
    honest, fold_scores = nested(metric, how, members)
    cv_score = score(metric, truth, honest)
    weights = fit_weights(metric, how, values, truth)
    pooled = pool(how, weights, values)
    threshold = decide(metric, truth, pooled)
    test_pooled = pool(how, weights, [member.test for member in members])

    run_dir = runs.new_run_dir(competition, None, root, label="blend")
    try:
        with runs.logging_to(run_dir, quiet=True), tracking.scope() as tracker:
            config = {"competition": competition.name, "data": str(Path(data_dir).resolve()), "options": {},
                      "blend": {"members": [str(member.run_dir.resolve()) for member in members], "pool": how}}
            write_json(run_dir / "config.json", config)
            first = members[0]
            oof = pd.DataFrame({first.ids.name or "id": first.ids})
            id_column = oof.columns[0]
            runs.keep_out_of_fold(OutOfFold(
                pd.concat([oof, pd.DataFrame(honest, columns=first.columns)], axis=1),
                pd.concat([oof, pd.DataFrame(truth, columns=first.columns)], axis=1), first.fold - 1), run_dir)
            io.write_csv(pd.concat([pd.DataFrame({id_column: first.test_ids}),
                                    pd.DataFrame(test_pooled, columns=first.columns)], axis=1), run_dir / runs.TEST_PREDICTIONS)
            frame = pd.concat([pd.DataFrame({id_column: first.test_ids}),
                               pd.DataFrame(applied(threshold, test_pooled), columns=first.columns)], axis=1)
            if threshold is not None:
                frame[first.columns] = frame[first.columns].astype(int)
            frame = align_to_sample(frame, sample, format)
            problems = validate(frame, sample, format)
            if problems:
                raise io.InputError(f"{competition.name}: the blend does not make a valid submission: {problems[0]}")
            names = [member.run_dir.name for member in members]
            tracker.start(competition.name, run_dir, {f"weight_{name}": round(float(w), 6) for name, w in zip(names, weights)},
                          tags={"competition": competition.name, "platform": competition.platform, "metric": metric.name,
                                "blend": ",".join(names), "blend_members": ",".join(
                                    str(runs.read_metrics(m.run_dir).get("mlflow_run_id", "")) for m in members),
                                "run_dir": str(run_dir.resolve())},
                          greater_is_better=metric.greater_is_better)
            out = Path(out) if out else Path("submissions") / competition.name / f"{run_dir.name}.csv"
            path = write(frame, out, float_format=competition.float_format)
            record = runs.record(
                run_dir, metric=metric.name, cv_score=round(cv_score, 6),
                cv_score_note=note(threshold is not None, len(truth), blend_folds(members[0].fold)[1]),
                fold_scores=[round(s, 6) for s in fold_scores], blend_pool=how,
                blend_weights={name: round(float(w), 6) for name, w in zip(names, weights)},
                blend_threshold=threshold, members_cv={name: m.cv_score for name, m in zip(names, members)},
                fit_seconds=round(time.perf_counter() - started, 2), submission=str(path.resolve()),
                submissions=[{"file": str(path.resolve()), "sha256": io.sha256(path)}],
                **({"mlflow_run_id": tracker.run_id, "mlflow_tracking_uri": tracking.shown(tracker.uri)} if tracker.active else {}))
            log.info("blend of %s: weights %s, nested cv %s %.5f", ", ".join(names),
                     ", ".join(f"{w:.3f}" for w in weights), metric.name, cv_score)
            tracker.log_record(record)
            tracker.log_artifacts(run_dir, extra=(path,))
    except BaseException:
        import shutil
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return BlendResult(run_dir, path, cv_score, [(m.run_dir, m.cv_score, float(w)) for m, w in zip(members, weights)],
                       metric.name)
