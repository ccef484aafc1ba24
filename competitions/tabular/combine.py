"""The generic table's combination: the families' out-of-fold predictions blended
(non-negative weights) or stacked (a level-2 model; stack.py), each scored in nested CV
and the better kept when `combiner` is auto, then the decision the metric asks for
(labels from a threshold, calibrated probabilities; model.fit_decision), fitted on
every row. The CV is the nested figure: each fold scored with a combination and a
decision fitted on the other folds only.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from common.metrics import Metric
from competitions.tabular import inference
from competitions.tabular import model as M
from competitions.tabular import stack as stacking

log = logging.getLogger("compete")


@dataclass
class Combined:
    names: list[str]                     # the families combined, in their cross-validation order (an optional one
                                         # left out when the nested CV is no better with it)
    chosen: str                          # "blend" or "stack"
    tried: list[str]                     # the kinds scored in nested CV
    cv_by_combiner: dict[str, float]     # each kind tried: its nested CV
    combiner: object                     # stack.Blend or stack.Stack, fitted on every row
    blended: np.ndarray                  # its out-of-fold combination, before the decision
    decision: M.Decision                 # fitted on every row
    honest: np.ndarray                   # nested: each fold's decided predictions, fitted on the other folds
    weights: dict[str, float]            # each family's blend weight (1 each under a stack)
    cv_score: float                      # the chosen kind's nested CV
    fold_scores: list[float]             # the same, fold by fold
    by_family: dict[str, float]          # each family cross-validated alone, its decision fitted on all its rows (not nested)
    fold_scores_by_family: dict[str, list[float]]


def combine(oof: dict[str, np.ndarray], fold_of: np.ndarray, y: np.ndarray, truth: np.ndarray, target, metric: Metric,
            log_target: bool, how: str, seed: int) -> Combined:
    def scored(predictions: np.ndarray, rows=slice(None)) -> float:
        return float(metric(truth[rows], inference.values(predictions, target, log_target, metric, as_indices=True)))

    task, every = target.task, list(oof)
    folds = range(int(fold_of.max()) + 1)
    # Blend and stack each scored in nested CV; auto keeps the stack only when it is better.
    tried = ["blend", "stack"] if how == "auto" and len(every) > 1 else [how]
    tried = ["blend" if kind == "auto" else kind for kind in tried]

    def best(names: list[str]):
        nested = {kind: stacking.nested({n: oof[n] for n in names}, y, fold_of, task, metric, kind, seed)
                  for kind in tried}
        figures = {kind: scored(nested[kind][0]) for kind in tried}
        chosen = tried[0]
        for kind in tried[1:]:
            if metric.better(figures[kind], figures[chosen]):
                chosen = kind
        return nested, figures, chosen

    # An optional family (model.OPTIONAL) joins only when the combination's nested CV is
    # better with it by OPTIONAL_GAIN: on a few hundred rows the blend's weights are noisy
    # enough that a family adding nothing can still cost a little. Each is tried in turn on
    # what joined before it (forward selection): one that helps is not held back by
    # another that does not (diabetes: the extra trees add nothing, k nearest neighbours do).
    optional = [n for n in every if n in M.OPTIONAL]
    names = [n for n in every if n not in optional] if len(every) > len(optional) else every
    nested, cv_by_combiner, chosen = best(names)
    for family in optional if names is not every else ():
        tried_with = [n for n in every if n in names or n == family]
        other = best(tried_with)
        if better_by(metric, other[1][other[2]], cv_by_combiner[chosen], M.OPTIONAL_GAIN):
            log.info("nested cv %s with %s %.5f, without %.5f: kept", metric.name, family, other[1][other[2]],
                     cv_by_combiner[chosen])
            (nested, cv_by_combiner, chosen), names = other, tried_with
        else:
            log.info("nested cv %s without %s %.5f, with %.5f: %s left out", metric.name, family,
                     cv_by_combiner[chosen], other[1][other[2]], family)
    combiner = stacking.make(chosen, task, metric, names, seed).fit([oof[n] for n in names], y)
    blended = combiner.apply([oof[n] for n in names])
    decision = M.fit_decision(task, metric, y, blended)
    honest = nested[chosen][0]
    weights = combiner.weights if chosen == "blend" else np.ones(len(names))
    own = {n: M.fit_decision(task, metric, y, oof[n]) for n in every}
    by_family = {n: scored(own[n].apply(oof[n])) for n in every}
    fold_scores_by_family = {n: [scored(own[n].apply(oof[n][fold_of == f]), fold_of == f) for f in folds] for n in every}
    if len(tried) > 1:
        log.info("nested cv %s: %s; %s kept", metric.name,
                 ", ".join(f"{kind} {score:.5f}" for kind, score in cv_by_combiner.items()), chosen)
    log.info("%s; decision: %s", combiner.words(), decision.words())
    explain(metric, cv_by_combiner[chosen], by_family, decision, chosen)
    return Combined(names, chosen, tried, cv_by_combiner, combiner, blended, decision, honest,
                    dict(zip(names, map(float, weights))), cv_by_combiner[chosen],
                    [scored(honest[fold_of == f], fold_of == f) for f in folds], by_family, fold_scores_by_family)


def better_by(metric: Metric, score: float, other: float, gain: float) -> bool:
    """Whether `score` is better than `other` by more than `gain` of it (a share)."""
    margin = gain * abs(other)
    return score > other + margin if metric.greater_is_better else score < other - margin


def explain(metric: Metric, cv_score: float, by_model: dict[str, float], decision: M.Decision,
            combined: str = "blend") -> None:
    """Say which figure is nested, and why the blend can score below a model of its own:
    the blend's cv fits its weights and decision on the other folds only; a model's own
    figure fits its decision on the very rows it is scored on."""
    shown = ", ".join(f"{name} {score:.5f}" for name, score in by_model.items())
    log.info("cv %s %.5f is the %s's, nested: each fold scored with %s and a decision fitted on the other "
             "folds only; each model alone: %s (not nested)", metric.name, cv_score, combined,
             "weights" if combined == "blend" else "a level-2 model", shown)
    best = max(by_model, key=lambda name: by_model[name] if metric.greater_is_better else -by_model[name])
    if metric.better(by_model[best], cv_score):
        if decision.kind != "identity":
            reason = (f"{best}'s figure fits its decision ({decision.words()}) on the very rows it is scored on, "
                      f"which flatters it; the blend's fits nothing on the fold it scores")
        else:
            reason = (f"{best}'s figure fits nothing on the rows it scores, and the blend weights, fitted on the "
                      f"other folds, do worse on each held-out fold than {best} alone (the models are close, or "
                      f"the folds small)")
        log.info("the %s scores below %s alone (%.5f against %.5f): %s; the nested figure is the one to expect "
                 "of the submission", combined, best, cv_score, by_model[best], reason)
