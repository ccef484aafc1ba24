"""The generic table's training: each family's K-fold out-of-fold predictions (repeated on
other splits as the plan affords; model.cross_validate), cut to the time budget as they
run (schedule.py), telling a tune's pruner the figure of each fold, then the final model
of each family the combination keeps.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from common import callbacks
from competitions.tabular import data as D
from competitions.tabular import features as F
from competitions.tabular import inference
from competitions.tabular import model as M
from competitions.tabular import schedule as S
from competitions.tabular.prepare import Prepared

log = logging.getLogger("compete")


@dataclass
class CrossValidated:
    oof: dict[str, np.ndarray]          # each family's out-of-fold predictions (mean over the repeats)
    fold_of: np.ndarray                 # each row's fold in the first split
    fold_models: dict[str, list]        # each family's fold models, folds x repeats
    seconds: dict[str, float]           # each family's training seconds
    repeats: int
    cuts: list[str]                     # what the schedule cut to keep the budget (empty: the plan ran whole)


def cross_validate(data: D.TabularData, prepared: Prepared, makers: dict, options, name: str,
                   started: float | None = None) -> CrossValidated:
    """`started`: the clock time the fit began (time.perf_counter), from which the time
    budget counts; None: now."""
    from common.progress import tqdm  # a bar on a terminal, plain lines in a log

    target, metric, plan = data.target, data.metric, prepared.plan
    y, truth, log_target = prepared.y, prepared.truth, prepared.log_target
    kinds = {kind: len(prepared.columns.of(kind)) for kind in F.KINDS}
    repeats = plan.repeats if any(family in M.TABLE_FAMILIES for family in makers) else 1
    log.info("%s: %s, %d rows (%d unlabelled left out), %d features (%s), metric %s, %d folds%s%s%s",
             name, target.task, len(prepared.X), data.train.attrs.get("unlabelled_rows", 0), len(data.features),
             ", ".join(f"{n} {k}" for k, n in kinds.items() if n), metric.name, plan.folds,
             f" x {repeats} repeats" if repeats > 1 else "",
             f", catboost {plan.iterations} rounds at lr {plan.learning_rate:.3g}" if "catboost" in makers else "",
             f", lightgbm/xgboost {plan.rounds} rounds at lr {plan.boosted_learning_rate:.3g}"
             if {"lightgbm", "xgboost"} & set(makers) else "")

    def fold_figure(fold: int, predictions: dict, done: np.ndarray) -> None:
        """For a tune's pruner: the metric of the families' plain mean on the rows done so
        far, its decision fitted on them (comparable across trials at the same fold)."""
        if callbacks.listened():
            mean = np.mean([predictions[family][done] for family in predictions], axis=0)
            decided = M.fit_decision(target.task, metric, y[done], mean).apply(mean)
            callbacks.scored(fold, metric(truth[done], inference.values(decided, target, log_target, metric,
                                                                        as_indices=True)))

    schedules = []

    def schedule(todo: list[S.Fit]) -> S.Schedule:
        categorical = len(prepared.columns.of("categorical"))
        planned = M.fold_seconds(plan, len(prepared.X), prepared.X.shape[1] - categorical, categorical, target.task,
                                 prepared.outputs)
        # the families refitted on every row after the CV (the others' final model is their fold models' mean)
        refitted = [family for family in makers if family not in M.BAGGED
                    or (options.final == "refit" and family == "catboost")]
        end = (started if started is not None else time.perf_counter()) + S.CV_SHARE * options.time_budget
        models = prepared.outputs if target.task == "multilabel" else 1
        rounds = {"catboost": plan.iterations * models, "lightgbm": plan.rounds * models, "xgboost": plan.rounds * models}
        schedules.append(S.Schedule(todo, planned, end, {f: rounds[f] for f in makers if f in M.BOOSTED}, refitted,
                                    S.DROP_SLACK * options.time_budget))
        return schedules[-1]

    with tqdm(total=plan.folds * repeats * len(makers), desc=name, disable=options.quiet) as bar:
        oof, fold_of, fold_models, seconds = M.cross_validate(prepared.frame, y, makers, target.task, plan.folds,
                                                              options.seed, bar.update, weights=prepared.row_weights,
                                                              repeats=repeats, after_fold=fold_figure,
                                                              schedule=schedule)
    return CrossValidated(oof, fold_of, fold_models, seconds, repeats, cuts(schedules[0], fold_models))


def cuts(schedule: S.Schedule, fold_models: dict) -> list[str]:
    """What the schedule cut, in words for the report."""
    said = [f"{family} dropped" for family in schedule.dropped]
    bagged = {family: len(models) for family, models in fold_models.items()}
    if schedule.cut_repeats:
        said.append("later CV repeats cut: fold models per family " + ", ".join(f"{f} {n}" for f, n in bagged.items()))
    if schedule.least_share < 1:
        said.append(f"boosted rounds cut to as few as {schedule.least_share:.0%} of the plan's (larger steps)")
    stopped = sum(getattr(model, "cut_", None) is not None for models in fold_models.values() for model in models)
    if stopped:
        said.append(f"{stopped} fold fit(s) stopped at their deadline with fewer trees")
    return said


def refit(crossed: CrossValidated, weights: dict[str, float], prepared: Prepared, options) -> tuple[dict, dict]:
    """Each family the combination gives weight: its fold models' mean (a boosted family
    with final=bag) or one model on every row; and every family's seconds, refit included.
    The text vectors' cached training matrix is dropped afterwards (not saved with the model)."""
    final, seconds = {}, dict(crossed.seconds)
    for family, weight in weights.items():
        if weight > 0:  # a family the blend gives nothing is not refitted
            started = time.perf_counter()
            first = crossed.fold_models[family][0]
            if options.final == "bag" and hasattr(first, "bag"):
                final[family] = first.bag(crossed.fold_models[family])
            else:
                final[family] = first.refit(prepared.frame, prepared.y, crossed.fold_models[family],
                                            **({} if prepared.row_weights is None
                                               else {"sample_weight": prepared.row_weights}))
            seconds[family] += time.perf_counter() - started
            log.info("final %-8s on all %d rows %.1fs %s", family, len(prepared.y), time.perf_counter() - started,
                     final[family].summary())
    if prepared.vectors is not None:
        prepared.vectors.forget()
    return final, seconds
